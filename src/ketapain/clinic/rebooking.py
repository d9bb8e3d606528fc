"""Missed and moved sessions, within the clinic's capacity: the desk's writes on the
calendar of :mod:`ketapain.clinic.booking`.

A move into a slot where the clinic already seats ``min(chairs, nurses_on_duty *
patients_per_nurse)`` patients is refused, naming the slot, unless the desk overbooks
knowingly with a reason (audited as ``overbook``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy.orm import Session

from ketapain.clinic._service import check_day, user_id
from ketapain.clinic.audit import Actor, add_event, unit_of_work
from ketapain.clinic.booking import (
    _DAY,
    _SLOT,
    SLOT_MIN,
    Booking,
    BookingStatus,
    ChangeKind,
    SessionChange,
    bookings_between,
    course_calendar,
)
from ketapain.clinic.courses import Course, CourseStatus, course_status
from ketapain.clinic.db import Database
from ketapain.clinic.permissions import Action, allowed, require
from ketapain.clinic.records import get_or_raise
from ketapain.config import Settings
from ketapain.errors import ConflictError, InvalidValueError

__all__ = [
    "full_slots",
    "mark_missed",
    "move_session",
    "outside_hours",
    "seats",
    "slot_starts",
]


def seats(settings: Settings) -> tuple[int, str]:
    """Patients the clinic seats at once, and what limits it (chairs or nurses)."""
    nurses = settings.nurses_on_duty * settings.patients_per_nurse
    return min(settings.chairs, nurses), "chairs" if settings.chairs <= nurses else "nurses"


def _floor(t: datetime) -> datetime:
    return t.replace(minute=t.minute - t.minute % SLOT_MIN, second=0, microsecond=0)


def slot_starts(start: datetime, end: datetime) -> list[datetime]:
    """Starts of the 15-minute slots that meet ``[start, end)``."""
    out, t = [], _floor(start)
    while t < end:
        out.append(t)
        t += _SLOT
    return out


def full_slots(candidate: Booking, others: Iterable[Booking], settings: Settings) -> list[str]:
    """The slots the candidate would take beyond the clinic's capacity, in words."""
    cap, by = seats(settings)
    others = [
        b for b in others if b.outpatient and b.overlaps(candidate.start, candidate.chair_until)
    ]
    full = []
    for t in slot_starts(candidate.start, candidate.chair_until):
        used = 1 + sum(1 for b in others if b.overlaps(t, t + _SLOT))
        if used > cap:
            full.append(f"{t:%Y-%m-%d %H:%M} ({used} patients, capacity {cap}, limited by {by})")
    return full


def outside_hours(candidate: Booking, settings: Settings) -> list[str]:
    """A warning when the chair time falls outside the opening hours."""
    day = datetime.combine(candidate.start.date(), time())
    opens = day + timedelta(hours=settings.clinic_opens_h)
    closes = day + timedelta(hours=settings.clinic_closes_h)
    if candidate.start < opens or candidate.chair_until > closes:
        return [
            f"The chair time {candidate.start:%H:%M}-{candidate.chair_until:%H:%M} falls outside "
            f"the opening hours {opens:%H:%M}-{closes:%H:%M}."
        ]
    return []


# --- the course's calendar and the desk's changes ------------------------------------


def _session(session: Session, course_id: uuid.UUID, number: int) -> tuple[Course, Booking]:
    """The course (open) and its session ``number`` in force, not given."""
    course = get_or_raise(session, Course, course_id, "course")
    status, _ = course_status(session, course_id)
    if status not in (CourseStatus.PLANNED, CourseStatus.IN_PROGRESS):
        raise ConflictError("status", f"the course is {status}: its sessions cannot be booked")
    sessions = [b for b in course_calendar(session, course) if b.kind == "session"]
    if isinstance(number, bool) or not 1 <= number <= len(sessions):
        raise InvalidValueError(
            "session_number", f"a session of the plan, 1 to {len(sessions)}", number
        )
    row = sessions[number - 1]
    if row.status is BookingStatus.GIVEN:
        raise ConflictError(
            "session_number", f"session {number} was given (a bag was hung): it cannot change"
        )
    return course, row


def _reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidValueError("reason", "why (a non-empty text)", reason)
    return reason.strip()


def mark_missed(
    db: Database, actor: Actor, course_id: uuid.UUID, *, session_number: int, reason: str
) -> dict[str, Any]:
    """Mark a booked session missed, with the reason; its chair is free again."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.BOOK)
        course, row = _session(session, course_id, session_number)
        if row.status is BookingStatus.MISSED:
            raise ConflictError("session_number", f"session {session_number} is already missed")
        change = SessionChange(
            course_id=course_id,
            session_number=session_number,
            kind=ChangeKind.MISSED,
            reason=_reason(reason),
            recorded_by_id=user_id(actor),
        )
        session.add(change)
        session.flush()
        missed = course_calendar(session, course)[session_number - 1]
        return {
            "change": change.as_dict(),
            "session": missed.as_dict(clinical=allowed(actor, Action.READ_CLINICAL)),
        }


def move_session(
    db: Database,
    actor: Actor,
    course_id: uuid.UUID,
    *,
    session_number: int,
    new_date: date,
    new_start: time | None = None,
    reason: str,
    allow_overbook: bool = False,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Move a session (or rebook a missed one) to ``new_date`` at ``new_start`` (default:
    its time in force), keeping its length.

    A slot beyond the clinic's capacity is refused with a :class:`ConflictError` naming it,
    unless ``allow_overbook``: the overbooking is then audited with the reason. A weekend
    in a phase that skips weekends, sessions out of order or a chair time outside the
    opening hours are warnings, not refusals.
    """
    settings = settings or Settings()
    with unit_of_work(db, actor) as session:
        require(actor, Action.BOOK)
        why = _reason(reason)
        check_day("new_date", new_date)
        if new_start is not None and new_start.tzinfo is not None:
            raise InvalidValueError(
                "new_start", "a clock time in the clinic's time zone, without an offset", new_start
            )
        course, row = _session(session, course_id, session_number)
        at = new_start or row.start.time()
        candidate = row.at(datetime.combine(new_date, at))
        # No time kept means the plan's time: keep one only when it differs from that.
        keep = None if at == row.planned_start.time() else at
        full: list[str] = []
        if candidate.outpatient:
            others, _ = bookings_between(
                session, from_date=new_date - _DAY, to_date=new_date, with_closed=True
            )
            others = [b for b in others if (b.course_id, b.number) != (course_id, session_number)]
            full = full_slots(candidate, others, settings)
        if full and not allow_overbook:
            raise ConflictError(
                "new_date",
                f"the clinic is full at {'; '.join(full)}: choose another time, or overbook "
                "knowingly with a reason",
            )
        change = SessionChange(
            course_id=course_id,
            session_number=session_number,
            kind=ChangeKind.MOVED,
            new_date=new_date,
            new_start=keep,
            reason=why,
            recorded_by_id=user_id(actor),
        )
        session.add(change)
        session.flush()
        if full:
            add_event(
                session,
                actor,
                action="overbook",
                entity="session_changes",
                entity_id=str(change.id),
                detail=f"session {session_number} booked beyond capacity at "
                f"{'; '.join(full)}: {why}",
            )
        rows = course_calendar(session, course)
        moved = rows[session_number - 1]
        return {
            "change": change.as_dict(),
            "session": moved.as_dict(clinical=allowed(actor, Action.READ_CLINICAL)),
            "overbooked": full,
            "warnings": [*(w for b in rows for w in b.warnings), *outside_hours(moved, settings)],
        }
