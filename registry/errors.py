"""Errors the registry answers with: each carries its HTTP status and Confluent's error code.

The codes are Confluent Schema Registry's (Karapace uses the same ones), so a third-party client
(confluent-kafka's `SchemaRegistryClient`, the Java client, Karapace's) understands our refusals.
"""

from __future__ import annotations

from errors import FinError


class RegistryError(FinError):
    """A request the registry refuses or cannot serve; the message goes back to the client."""

    http_status: int = 500
    error_code: int = 50001

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SubjectNotFoundError(RegistryError):
    http_status = 404
    error_code = 40401


class VersionNotFoundError(RegistryError):
    http_status = 404
    error_code = 40402


class SchemaNotFoundError(RegistryError):
    http_status = 404
    error_code = 40403


class SubjectSoftDeletedError(RegistryError):
    http_status = 404
    error_code = 40404


class SubjectNotSoftDeletedError(RegistryError):
    http_status = 404
    error_code = 40405


class VersionSoftDeletedError(RegistryError):
    http_status = 404
    error_code = 40406


class VersionNotSoftDeletedError(RegistryError):
    http_status = 404
    error_code = 40407


class SubjectCompatibilityNotConfiguredError(RegistryError):
    http_status = 404
    error_code = 40408


class IncompatibleSchemaError(RegistryError):
    """Confluent answers an incompatible registration with 409 and error_code 409."""

    http_status = 409
    error_code = 409


class InvalidSchemaError(RegistryError):
    http_status = 422
    error_code = 42201


class InvalidVersionError(RegistryError):
    http_status = 422
    error_code = 42202


class InvalidCompatibilityLevelError(RegistryError):
    http_status = 422
    error_code = 42203


class InvalidSubjectError(RegistryError):
    http_status = 422
    error_code = 42208


class SchemaTooLargeError(RegistryError):
    http_status = 422
    error_code = 42209


class StoreError(RegistryError):
    """The `_schemas` topic could not be read or written: nothing was changed in memory."""

    http_status = 500
    error_code = 50001


class StoreTimeoutError(StoreError):
    http_status = 500
    error_code = 50002
