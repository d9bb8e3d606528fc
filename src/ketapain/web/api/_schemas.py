"""Request bodies shared by the routers: strict (unknown keys refused), units in names."""

from __future__ import annotations

import types
from typing import Any, Final, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

__all__ = ["ERROR_RESPONSES", "Body", "Correction", "ErrorOut", "OverrideIn"]


class Body(BaseModel):
    """A request body: unknown keys are errors, so a typo never drops a value."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _plain_values(cls, value: Any, info: ValidationInfo) -> Any:
        """Values as JSON writes them: a number is a JSON number (``true`` is not 1 kg,
        ``"70"`` is not 70 kg), a yes/no is ``true`` or ``false`` (not ``1`` or ``"yes"``),
        and no text holds a NUL character (PostgreSQL cannot store one)."""
        loose = _loose(cls.model_fields[info.field_name or ""].annotation, value)
        if loose is not None:
            raise ValueError(loose)
        if _holds_nul(value):
            raise ValueError("text without NUL characters (\\u0000)")
        return value


def _loose(annotation: Any, value: Any) -> str | None:
    """Why ``value`` is not of the JSON type ``annotation`` asks for (None: it is, or the
    annotation is not a number or a yes/no). pydantic's lax mode would convert it."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        kinds = [a for a in get_args(annotation) if a is not type(None)]
        return None if value is None or len(kinds) != 1 else _loose(kinds[0], value)
    if annotation is bool:
        return None if isinstance(value, bool) else f"true or false, not {value!r}"
    if annotation in (int, float):
        return f"a JSON number, not {value!r}" if isinstance(value, bool | str) else None
    if origin is dict and isinstance(value, dict):
        inner = get_args(annotation)[1]
        return next((why for v in value.values() if (why := _loose(inner, v))), None)
    if origin in (list, tuple) and isinstance(value, list | tuple):
        inner = get_args(annotation)[0]
        return next((why for v in value if (why := _loose(inner, v))), None)
    return None


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(v) for v in value)
    return False


class OverrideIn(Body):
    """A physician's override of a hard stop: its code and the reason."""

    code: str = Field(min_length=1)
    reason: str = Field(min_length=1)


class Correction(Body):
    """A correction of a record: the reason, and the changed values (or a retraction)."""

    reason: str = Field(min_length=1)
    entered_in_error: bool = False
    changes: dict[str, object] = Field(default_factory=dict)


class ErrorOut(BaseModel):
    """An error answer: its kind, what went wrong, and the field at fault (if one is);
    some kinds add more (``allowed``, ``errors``, ``findings``)."""

    model_config = ConfigDict(extra="allow")

    error: str
    message: str
    field: str | None


# The error answers every API route may give (ketapain.web.errors), for the OpenAPI document.
ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in (
        (401, "not_authenticated: no, an unknown, an expired or a revoked token"),
        (403, "forbidden: the role does not allow it (audited)"),
        (404, "not_found: no record with that id"),
        (409, "conflict, hard_stop (with findings) or append_only"),
        (422, "invalid_value (with allowed, or errors: every field at fault) or unknown_name"),
        (503, "busy: the server is overloaded; try again (Retry-After)"),
    )
}
