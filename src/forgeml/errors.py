"""User-facing errors.

Every problem a user can fix (a missing file, a wrong column, a malformed spec, an unknown
model) is raised as a `ForgeError` subclass whose message says what happened, what was
expected and how to fix it, naming the received value. The CLI prints the message on one
line and exits with `exit_code`; only bugs show tracebacks.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ForgeError(Exception):
    """Root of every error a user can act on."""

    exit_code: int = 2


class SpecError(ForgeError):
    """The spec, a CLI flag or a keyword argument is invalid."""


class DataError(ForgeError):
    """The data cannot be read or does not fit the task (missing file, wrong columns, ...)."""


class SchemaError(DataError):
    """Data given at predict time does not match the schema the model was trained on."""


class ModelNotFoundError(ForgeError):
    """A model reference (NAME, NAME@ALIAS, NAME/VERSION) does not resolve."""


class RegistryError(ForgeError):
    """The tracking store or model registry refused an operation."""


class IntegrityError(ForgeError):
    """A saved artifact does not match its recorded hash, or is not in a safe format."""


class Interrupted(ForgeError):
    """The user stopped a run (Ctrl-C / SIGTERM); what could be saved for a resume was saved."""

    exit_code = 130


class TrainingError(ForgeError):
    """No model could be trained (every family failed or the budget was too small)."""


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """A ' did you mean ...?' suffix naming the closest choice(s), or '' when none is close.

    Case-insensitive matches come first, so 'price' suggests 'Price'.
    """
    choices = [str(c) for c in choices]
    lowered = {c.lower(): c for c in choices}
    if value.lower() in lowered:
        return f"; did you mean '{lowered[value.lower()]}'?"
    close = difflib.get_close_matches(value, choices, n=3, cutoff=0.6)
    if not close:
        close = [lowered[c] for c in difflib.get_close_matches(value.lower(), list(lowered), n=3, cutoff=0.6)]
    if not close:
        return ""
    return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
