"""The two verbs every record service shares: append a row, append a correction."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Final, TypeVar

from sqlalchemy.orm import Session

from ketapain.clinic.audit import Actor, unit_of_work
from ketapain.clinic.db import Database
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


def check_links(session: Session, row: Record) -> None:
    """The patient exists, and an infusion named belongs to that patient."""
    from ketapain.clinic.infusions import Infusion
    from ketapain.clinic.patients import Patient

    patient_id = getattr(row, "patient_id", None)
    if patient_id is not None and session.get(Patient, patient_id) is None:
        raise RecordNotFoundError("patient", patient_id)
    infusion_id = getattr(row, "infusion_id", None)
    if infusion_id is not None:
        infusion = session.get(Infusion, infusion_id)
        if infusion is None:
            raise RecordNotFoundError("infusion", infusion_id)
        if patient_id is not None and infusion.patient_id != patient_id:
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
