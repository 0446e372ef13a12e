"""The faust internals FIN replaces or reads are still there, in the version they were read in.

A faust upgrade that renames or drops one of them would leave a patch wrapping nothing (or
reading a missing attribute at run time): these tests fail first, naming the patch to review."""

from __future__ import annotations

import inspect

import faust
import pytest

from streams.faust_patches import (
    FAUST_VERSION_REVIEWED,
    commit_guard,
    consumer_in_loop,
    delivery_audit,
    fast_drain,
    fetch_wait,
    quiet_monitor,
)

PATCHES = (commit_guard, consumer_in_loop, delivery_audit, fast_drain, fetch_wait, quiet_monitor)

PATCHED = [
    pytest.param(owner, name, id=f"{module.__name__.rsplit('.', 1)[-1]}:{owner.__name__}.{name}")
    for module in PATCHES
    for owner, name in (*module.REPLACED, *module.READ)
]


def has_attribute(owner: type, name: str) -> bool:
    """A class attribute, or an instance attribute its ``__init__`` (or a base's) assigns."""
    if hasattr(owner, name):
        return True
    return any(
        f"self.{name} " in inspect.getsource(klass) or f"self.{name}:" in inspect.getsource(klass)
        for klass in owner.__mro__
        if klass.__module__.startswith(("faust", "mode"))
    )


def test_the_installed_faust_is_the_version_the_patches_were_written_against() -> None:
    assert faust.__version__ == FAUST_VERSION_REVIEWED, (
        f"faust-streaming {faust.__version__} installed; the patches in streams/faust_patches/ "
        f"were written against {FAUST_VERSION_REVIEWED}: review each, then move the pin"
    )


@pytest.mark.parametrize(("owner", "name"), PATCHED)
def test_the_installed_faust_still_has_what_a_patch_replaces_or_reads(
    owner: type, name: str
) -> None:
    assert has_attribute(owner, name), (
        f"{owner.__module__}.{owner.__name__} no longer has {name}: review streams/faust_patches/"
    )


def test_a_missing_attribute_is_noticed() -> None:
    assert not has_attribute(faust.App, "_fin_no_such_attribute")
