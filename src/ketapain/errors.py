"""The exceptions ketapain raises, in one tree.

::

    KetapainError
    ├── InvalidValueError (also a ValueError)   bad input: names the field, the allowed
    │   │                                        range and the value given
    │   └── ModelFileError                       a model file that cannot be used; names
    │                                            the file as well
    ├── UnknownNameError (also a LookupError)    a model or protocol name not in a registry
    ├── SimulationError                          inputs were valid but the engine could not
    │                                            produce a trustworthy answer
    └── RecordError                              the clinical records refuse a request
        ├── RecordNotFoundError (a LookupError)  no record with that id
        ├── ConflictError                        the request contradicts the record (a rate
        │   │                                    change after the stop, a second decision)
        │   └── HardStopError                    a hard limit stands; carries the findings
        ├── AppendOnlyError                      an attempt to edit or delete a clinical record
        ├── AuthenticationError                  unknown user, wrong password, locked account,
        │                                        expired or revoked token
        └── AccessDeniedError (a PermissionError) the user's role does not allow the action

Warnings have their own classes so that callers can filter them precisely::

    KetapainWarning (UserWarning)
    └── ExtrapolationWarning                     covariates outside the population a
                                                 published model was built on

A plan that is well formed but unsafe is *not* an exception: it yields findings
(later layers). Exceptions are for input that cannot be computed with at all.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "AccessDeniedError",
    "AppendOnlyError",
    "AuthenticationError",
    "ConflictError",
    "ExtrapolationWarning",
    "HardStopError",
    "InvalidValueError",
    "KetapainError",
    "KetapainWarning",
    "ModelFileError",
    "RecordError",
    "RecordNotFoundError",
    "SimulationError",
    "UnknownNameError",
    "field_path",
    "key_name",
]


class KetapainError(Exception):
    """Base class of every error raised by ketapain."""


# A key an error may name as it is: a plain word.
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


def key_name(key: object) -> str:
    """``key`` as an error names it: bare when it is a plain word (letters, digits, ``_``
    and ``-``), otherwise quoted with its escapes (``repr``), so that an empty key, one of
    blanks or one with a line break is visible and stays on one line.

    >>> key_name("shoe_size"), key_name(""), key_name("a\\nb"), key_name("x y")
    ('shoe_size', "''", "'a\\\\nb'", "'x y'")
    """
    if isinstance(key, str) and _BARE_KEY.fullmatch(key):
        return key
    return repr(key)


def field_path(*parts: str | int) -> str:
    """A field's path, on one line whatever its keys: ``changes.dose_mg``, ``events.0``,
    ``body['']`` (a key that is not a plain word is quoted, as :func:`key_name` does).

    >>> field_path("changes", "dose_mg"), field_path("events", 0), field_path("body", "")
    ('changes.dose_mg', 'events.0', "body['']")
    """
    out = ""
    for part in parts:
        name = str(part)
        if isinstance(part, int) or name == key_name(name):
            out += f"{'.' if out else ''}{name}"
        else:
            out += f"[{key_name(name)}]"
    return out


class InvalidValueError(KetapainError, ValueError):
    """A value is missing, of the wrong kind, or outside its allowed range.

    Parameters
    ----------
    field : str
        Name of the offending field, with its unit, e.g. ``"weight_kg"``.
    allowed : str
        The allowed range or values, in words, e.g. ``"20 to 300"``.
    value : object
        The value that was given.
    """

    def __init__(self, field: str, allowed: str, value: object) -> None:
        self.field = field
        self.allowed = allowed
        self.value = value
        super().__init__(f"{field} must be {allowed}; got {value!r}")


class ModelFileError(InvalidValueError):
    """A user-defined model file is malformed; the message names the file and field."""

    def __init__(self, path: str, field: str, allowed: str, value: object) -> None:
        self.path = path
        super().__init__(field, allowed, value)
        self.args = (f"{path}: {field} must be {allowed}; got {value!r}",)


class UnknownNameError(KetapainError, LookupError):
    """A name that is not in a registry; the message lists the known names."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = known
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}")

    def __str__(self) -> str:
        # LookupError would otherwise print the repr of the message.
        return str(self.args[0])


class SimulationError(KetapainError):
    """The inputs were valid but no trustworthy result could be computed."""


class RecordError(KetapainError):
    """The clinical records refuse a request."""


class RecordNotFoundError(RecordError, LookupError):
    """No record of that kind with that id."""

    def __init__(self, kind: str, record_id: object) -> None:
        self.kind = kind
        self.record_id = record_id
        super().__init__(f"no {kind} with id {record_id}")

    def __str__(self) -> str:
        return str(self.args[0])


class ConflictError(RecordError):
    """A well-formed request that contradicts the record; ``field`` names what conflicts."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class HardStopError(ConflictError):
    """A hard limit or contraindication stands; nothing was written.

    ``findings`` holds the blocking findings (``ketapain.protocols.findings.Finding``);
    a physician's override with a reason lifts them.
    """

    def __init__(self, field: str, message: str, findings: tuple[object, ...]) -> None:
        super().__init__(field, message)
        self.findings = findings


class AppendOnlyError(RecordError):
    """A clinical record may not be edited or deleted; append a correction instead."""


class AuthenticationError(RecordError):
    """Unknown user, wrong password, locked account, or an expired or revoked token."""


class AccessDeniedError(RecordError, PermissionError):
    """The user's role does not allow the action; the refusal is audited."""

    def __init__(self, role: str, action: str, detail: str = "") -> None:
        self.audited = False  # set once the refusal has its audit entry
        self.role = role
        self.action = action
        text = f"a {role.replace('_', ' ')} may not {action.replace('_', ' ')}"
        super().__init__(f"{text}: {detail}" if detail else text)


class KetapainWarning(UserWarning):
    """Base class of ketapain's warnings."""


class ExtrapolationWarning(KetapainWarning):
    """A model is used outside the population (weight, age) it was estimated in."""
