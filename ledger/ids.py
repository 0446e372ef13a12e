"""Name-based (version 5) UUIDs as text, the form FIN's entry and alert ids take.

``uuid5_text(namespace, name) == str(uuid.uuid5(namespace, name))`` for every namespace and name
(a test compares them); it skips building the ``UUID`` object and its integer, which was most of
the cost of the id of every journal entry and alert.
"""

from __future__ import annotations

from hashlib import sha1
from uuid import UUID


def uuid5_text(namespace: UUID, name: str) -> str:
    # As uuid.uuid5 does: SHA-1 is what RFC 4122 prescribes for version 5, not a security hash.
    hashed = sha1(namespace.bytes + name.encode("utf-8"), usedforsecurity=False)
    digest = bytearray(hashed.digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
