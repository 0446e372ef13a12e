"""One exception root for FIN; small named subclasses (programmer errors stay plain asserts)."""


class FinError(Exception):
    """Root of every error FIN raises on purpose."""


class ConfigurationError(FinError):
    """Settings, chart of accounts or schemas are invalid: the worker must not start."""


class SchemaError(FinError):
    """A local Avro schema is malformed or incompatible with the registry."""


class RegistryUnavailableError(FinError):
    """The schema registry did not answer, or answered 5xx: transient, retry."""


class RegistryRequestError(FinError):
    """The schema registry refused a request (4xx other than not-found): permanent."""


class UnbalancedEntryError(FinError):
    """A journal entry whose debits and credits differ reached a balance check: a bug."""
