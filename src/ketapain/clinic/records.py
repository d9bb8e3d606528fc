"""What every clinical record shares: an id, who recorded it and when, and corrections.

Clinical records are append-only. A correction is a new row whose ``corrects_id`` points
at the row it replaces, with a reason; ``entered_in_error`` on the correction retracts the
entry altogether. The current entries are those no other row corrects and that are not
retractions (:func:`current`). A first row may carry a ``correction_reason`` without
``corrects_id``: a result imported from another system that had corrected it there.
The database refuses ``UPDATE`` and ``DELETE`` on these tables (triggers in the first
migration), and the session refuses them before that (:mod:`ketapain.clinic.audit`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from typing import Any, ClassVar, TypeVar

from sqlalchemy import ColumnElement, ForeignKey, Select, Text, bindparam, exists, select
from sqlalchemy.orm import Mapped, Session, aliased, declared_attr, mapped_column
from sqlalchemy.types import TypeDecorator

from ketapain.clinic.db import Base, utc_now
from ketapain.errors import ConflictError, InvalidValueError, RecordNotFoundError, field_path

__all__ = [
    "Correctable",
    "Record",
    "correct",
    "current",
    "current_json_of",
    "current_of",
    "get_or_raise",
]

R = TypeVar("R", bound="Record")
C = TypeVar("C", bound="Correctable")


class Record(Base):
    """An append-only row: id, time recorded, and the user who recorded it."""

    __abstract__ = True
    __append_only__: ClassVar[bool] = True
    # Columns a correction copies unless given (subclasses list their clinical fields).
    __copy_on_correct__: ClassVar[tuple[str, ...]] = ()

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    recorded_utc: Mapped[datetime] = mapped_column(default=utc_now)

    @declared_attr
    def recorded_by_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805 - declared_attr gets the class
        return mapped_column(ForeignKey("users.id"), index=True)

    def check(self) -> None:
        """Raise :class:`InvalidValueError` naming the field if a value is impossible.

        Called for every new row before it is written, corrections included.
        """


class Correctable(Record):
    """A record that can be corrected or retracted by a later row, with a reason."""

    __abstract__ = True
    # The columns the row's JSON is made of, for lists that read them alone (rows, not
    # objects: current_json_of); a subclass that lists them has a static json_of(row).
    __json_columns__: ClassVar[tuple[str, ...]] = ()

    correction_reason: Mapped[str | None] = mapped_column(Text, default=None)
    entered_in_error: Mapped[bool] = mapped_column(default=False)

    @declared_attr
    def corrects_id(cls) -> Mapped[uuid.UUID | None]:  # noqa: N805 - declared_attr gets the class
        return mapped_column(ForeignKey(f"{cls.__tablename__}.id"), default=None, index=True)


def current(model: type[C]) -> Select[C]:
    """Select the rows of ``model`` that are neither corrected nor retractions."""
    return select(model).where(_not_corrected(model), model.entered_in_error.is_(False))


@cache
def current_of(model: type[C], key: str, order: str) -> Select[C]:
    """The current rows of ``model`` whose column ``key`` equals the parameter ``key``,
    ordered by ``order`` (a column name, ``-name`` for descending); run it with
    ``session.scalars(current_of(M, "infusion_id", "measured_utc"), {"infusion_id": x})``.

    Built once per (model, key, order): a statement built anew on every call costs its
    construction and its cache key (about half of a short query's time), so the busy
    views (the chair, charting) reuse these.
    """
    column = getattr(model, order.removeprefix("-"))
    return (
        current(model)
        .where(getattr(model, key) == bindparam(key))
        .order_by(column.desc() if order.startswith("-") else column)
    )


@cache
def current_json_of(model: type[Correctable], key: str, order: str) -> Select[Any]:
    """:func:`current_of` reading only the model's ``__json_columns__``: rows to pass to
    the model's ``json_of``. A busy list (the chair's observations) skips building an
    object per row and reading the columns its JSON does not show.
    """
    if not model.__json_columns__:
        raise TypeError(f"{model.__name__} lists no __json_columns__")
    columns = [getattr(model, name) for name in model.__json_columns__]
    return current_of(model, key, order).with_only_columns(*columns)


@cache
def _not_corrected(model: type[Correctable]) -> ColumnElement[bool]:
    # Built once per model: an alias proxies every column on first use, which costs
    # milliseconds on each call of a busy page.
    later = aliased(model)
    return ~exists().where(later.corrects_id == model.id)


def get_or_raise(session: Session, model: type[R], record_id: uuid.UUID, kind: str) -> R:
    """The row of ``model`` with ``record_id``, or :class:`RecordNotFoundError`."""
    row = session.get(model, record_id)
    if row is None:
        raise RecordNotFoundError(kind, record_id)
    return row


def _coerce(model: type[Correctable], key: str, value: Any) -> Any:
    """Turn JSON text into the column's date or time (other values are checked later)."""
    if not isinstance(value, str):
        return value
    column_type = model.__table__.columns[key].type
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    try:
        kind = column_type.python_type
    except NotImplementedError:
        return value
    try:
        parsed = datetime.fromisoformat(value) if kind is datetime else None
        if kind is date:
            return date.fromisoformat(value)
    except ValueError:
        raise InvalidValueError(key, f"an ISO {kind.__name__}", value) from None
    if parsed is None:
        return value
    if parsed.tzinfo is None:
        raise InvalidValueError(key, "a timezone-aware time (UTC), ISO with its offset", value)
    return parsed


def correct(
    session: Session,
    model: type[C],
    record_id: uuid.UUID,
    *,
    kind: str,
    reason: str,
    actor_id: uuid.UUID,
    entered_in_error: bool = False,
    changes: Mapping[str, Any] | None = None,
) -> C:
    """Append a correction of row ``record_id`` (or its retraction) and return it.

    Only the latest version can be corrected, so that two nurses correcting the same
    entry at once cannot both win silently.
    """
    if not reason or not reason.strip():
        raise InvalidValueError("correction_reason", "a non-empty reason", reason)
    old = get_or_raise(session, model, record_id, kind)
    later = aliased(model)
    newer = session.scalar(select(later.id).where(later.corrects_id == old.id))
    if newer is not None:
        raise ConflictError(
            "corrects_id", f"{kind} {old.id} was already corrected by {newer}; correct that one"
        )
    if old.entered_in_error:
        raise ConflictError("corrects_id", f"{kind} {old.id} is a retraction")
    changes = dict(changes or {})
    unknown = sorted(set(changes) - set(model.__copy_on_correct__))
    if unknown:
        raise InvalidValueError(
            field_path(unknown[0]),
            f"one of {', '.join(model.__copy_on_correct__)}",
            unknown[0],
        )
    values = {k: getattr(old, k) for k in model.__copy_on_correct__}
    values.update({k: _coerce(model, k, v) for k, v in changes.items()})
    row = model(
        **values,
        corrects_id=old.id,
        correction_reason=reason.strip(),
        entered_in_error=entered_in_error,
        recorded_by_id=actor_id,
    )
    session.add(row)
    return row
