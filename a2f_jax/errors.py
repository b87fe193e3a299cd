"""Error types with messages that name the file, the field, what was expected and what was found."""

from __future__ import annotations


class A2FError(ValueError):
    """Base class for user-facing errors of a2f-jax."""


class ConfigError(A2FError):
    """A configuration value is unknown, missing or of the wrong type."""


class DataError(A2FError):
    """A dataset file is missing, malformed or inconsistent with the rest of the dataset."""


def describe(path: object, field: str | None, expected: str, found: str) -> str:
    """One consistent message layout for data and config errors."""
    where = f"{path}" + (f" [{field}]" if field else "")
    return f"{where}: expected {expected}, found {found}"
