"""Error types with messages that name the file, the field, what was expected and what was found.

Every script turns an `A2FError` into one `error: ...` line on stderr and exits with the error's
`exit_code` (2 unless a subclass says otherwise); a traceback is printed only with `--debug`.
"""

from __future__ import annotations


class A2FError(ValueError):
    """Base class for user-facing errors of a2f-jax."""

    exit_code = 2


class ConfigError(A2FError):
    """A configuration value is unknown, missing or of the wrong type."""


class DataError(A2FError):
    """A dataset file is missing, malformed or inconsistent with the rest of the dataset."""


class RunError(A2FError):
    """A run folder (preproc, training, deploy bundle) is missing, incomplete or does not match the request."""


class CheckpointError(RunError):
    """A checkpoint is missing, torn, or does not fit the network being restored."""


class TrainingStopped(A2FError):
    """Training stopped before its last step because of a signal; a checkpoint was saved.

    Exit code 3, so `train.py && deploy.py` never deploys a half-trained model."""

    exit_code = 3


def describe(path: object, field: str | None, expected: str, found: str) -> str:
    """One consistent message layout for data and config errors."""
    where = f"{path}" + (f" [{field}]" if field else "")
    return f"{where}: expected {expected}, found {found}"
