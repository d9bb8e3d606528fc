"""The two verbs every record service shares: append a row, append a correction."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from functools import cache
from typing import Any, Final, TypeVar

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from ketapain.clinic.audit import Actor, unit_of_work
from ketapain.clinic.db import Database, column_rows
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.records import Correctable, Record, correct
from ketapain.errors import AccessDeniedError, InvalidValueError, RecordNotFoundError

__all__ = ["add_row", "check_day", "check_links", "check_range", "correct_row", "user_id"]

# The days a clinic books, reviews or asks about: bounds against typing slips and the ends
# of the calendar (where day arithmetic overflows), not clinical numbers.
FIRST_DAY: Final = date(1900, 1, 1)
LAST_DAY: Final = date(2199, 12, 31)

R = TypeVar("R", bound=Record)
C = TypeVar("C", bound=Correctable)


def check_range(field: str, value: float | None, low: float, high: float) -> None:
    """Raise :class:`InvalidValueError` unless ``low <= value <= high`` (None passes)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidValueError(field, f"a number from {low:g} to {high:g}", value)


def check_day(field: str, value: date | None) -> None:
    """Raise :class:`InvalidValueError` unless ``value`` is a calendar day from 1900 to
    2199 (None passes)."""
    if value is None:
        return
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidValueError(field, "a calendar date", value)
    if not FIRST_DAY <= value <= LAST_DAY:
        raise InvalidValueError(field, f"a date from {FIRST_DAY} to {LAST_DAY}", value)


@cache
def _link_queries() -> tuple[Select[uuid.UUID], Select[uuid.UUID]]:
    # Every charted value is checked: two one-column statements, built once (imported
    # here, as the records import this module).
    from ketapain.clinic.infusions import Infusion
    from ketapain.clinic.patients import Patient

    return (
        select(Patient.id).where(Patient.id == bindparam("id")),
        select(Infusion.patient_id).where(Infusion.id == bindparam("id")),
    )


def check_links(session: Session, row: Record) -> None:
    """The patient exists, and an infusion named belongs to that patient."""
    patient_query, owner_query = _link_queries()
    patient_id = getattr(row, "patient_id", None)
    infusion_id = getattr(row, "infusion_id", None)
    owner = (
        None
        if infusion_id is None
        else column_rows(session, owner_query, {"id": infusion_id}).scalar()
    )
    # An infusion's patient exists (a foreign key): only look for another one.
    if (
        patient_id is not None
        and patient_id != owner
        and column_rows(session, patient_query, {"id": patient_id}).scalar() is None
    ):
        raise RecordNotFoundError("patient", patient_id)
    if infusion_id is not None:
        if owner is None:
            raise RecordNotFoundError("infusion", infusion_id)
        if patient_id is not None and owner != patient_id:
            raise InvalidValueError("infusion_id", "an infusion of this patient", str(infusion_id))


def user_id(actor: Actor) -> uuid.UUID:
    """The recording user's id (the system records as no user, so it cannot chart)."""
    if actor.user_id is None:
        raise AccessDeniedError(actor.role, "record clinical data", "records need a user")
    return actor.user_id


def add_row(db: Database, actor: Actor, action: Action, row: R) -> R:
    """Append ``row`` (checked, audited) if the actor may do ``action``."""
    with unit_of_work(db, actor) as session:
        require(actor, action)
        row.recorded_by_id = user_id(actor)
        check_links(session, row)
        session.add(row)
    return row


def correct_row(
    db: Database,
    actor: Actor,
    action: Action,
    model: type[C],
    record_id: uuid.UUID,
    *,
    kind: str,
    reason: str,
    entered_in_error: bool = False,
    changes: dict[str, Any],
) -> C:
    """Append a correction (or retraction) of ``record_id`` with a reason."""
    with unit_of_work(db, actor) as session:
        require(actor, action)
        return correct(
            session,
            model,
            record_id,
            kind=kind,
            reason=reason,
            actor_id=user_id(actor),
            entered_in_error=entered_in_error,
            changes=changes,
        )
