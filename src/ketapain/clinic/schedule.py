"""The front desk's views of the calendar in force: the schedule between two dates, a
course's series calendar, the day's chair capacity and a day to rebook a missed session.

What the front desk sees has no doses and no clinical notes; a clinical reader of a
course's calendar also sees each session's dose. The calendar in force (moves, missed
sessions, chair time) is built in :mod:`ketapain.clinic.booking`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy.orm import Session

from ketapain.clinic._service import check_day
from ketapain.clinic.audit import Actor
from ketapain.clinic.booking import (
    SLOT_MIN,
    Booking,
    BookingStatus,
    bookings_between,
    course_calendar,
    protocol_of,
)
from ketapain.clinic.courses import Course, course_status
from ketapain.clinic.permissions import Action, allowed, require
from ketapain.clinic.rebooking import full_slots, outside_hours, seats, slot_starts
from ketapain.clinic.records import get_or_raise
from ketapain.clinic.registry import current_names, demographics_of
from ketapain.config import Settings
from ketapain.errors import ConflictError, InvalidValueError

__all__ = [
    "booking_header",
    "booking_headers",
    "calendar",
    "capacity",
    "rebook_missed",
    "schedule",
]

_DAY: Final = timedelta(days=1)
_SLOT: Final = timedelta(minutes=SLOT_MIN)
# How far ahead a rebooking is searched for, days (a bound of the search, not clinical).
_SEARCH_DAYS: Final = 60


def booking_header(session: Session, course: Course) -> dict[str, Any]:
    """Who and what a booking is for: patient (name, id), course, protocol."""
    demo = demographics_of(session, course.patient_id)
    return _header(course, f"{demo.family_name}, {demo.given_name}")


def booking_headers(session: Session, courses: Iterable[Course]) -> dict[uuid.UUID, dict[str, Any]]:
    """:func:`booking_header` of each course, by course id, in one statement."""
    courses = list(courses)
    names = current_names(session, {c.patient_id for c in courses})
    return {c.id: _header(c, names[c.patient_id]) for c in courses}


def _header(course: Course, name: str) -> dict[str, Any]:
    return {
        "patient_id": str(course.patient_id),
        "patient": name,
        "course_id": str(course.id),
        "protocol": course.protocol,
    }


def _row(b: Booking, *, detail: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"kind": b.kind, "number": b.number, "date": b.start.date().isoformat()}
    if detail or b.kind == "session":
        full = b.as_dict(clinical=False)
        row |= {"start": full["start"], "end": full["end"]}
        if detail:
            row |= {
                k: full[k]
                for k in ("status", "planned_date", "chair_until", "observation_min", "warnings")
            }
            # The desk's reason for a move or a miss; a booster's reason is clinical.
            row["reason"] = b.change["reason"] if b.change and b.kind == "session" else None
    else:  # without detail a booster is a date only, as booked
        row |= {"start": None, "end": None}
    return row


def schedule(
    session: Session, actor: Actor, *, from_date: date, to_date: date, detail: bool = False
) -> list[dict[str, Any]]:
    """Sessions and boosters booked between two dates: who, when, which protocol.

    Sessions are on their days in force (moved ones on their new day). With ``detail``,
    missed sessions are listed too, and every row says its status (booked, moved, missed,
    given), the planned date, the chair time (``chair_until``: the end plus the
    observation before discharge), the reason of a change and any warning; boosters then
    have the booster phase's times. What the front desk sees: no doses, no clinical notes.
    """
    require(actor, Action.READ_SCHEDULE)
    if to_date < from_date:
        raise InvalidValueError("to", f"on or after {from_date}", to_date)
    found, courses = bookings_between(session, from_date=from_date, to_date=to_date)
    who = booking_headers(session, courses.values())
    out = [
        {**who[b.course_id], **_row(b, detail=detail)}
        for b in found
        if detail or b.status is not BookingStatus.MISSED
    ]
    return sorted(out, key=lambda r: (r["date"], r["start"] or "", r["patient"]))


def calendar(session: Session, actor: Actor, course_id: uuid.UUID) -> dict[str, Any]:
    """The course's series calendar in force: each session on its day (booked, moved,
    missed or given) with its chair time, and the boosters; doses for clinical readers."""
    require(actor, Action.READ_SCHEDULE)
    course = get_or_raise(session, Course, course_id, "course")
    rows = course_calendar(session, course)
    clinical = allowed(actor, Action.READ_CLINICAL)
    status, _ = course_status(session, course_id)
    return {
        **booking_header(session, course),
        "status": str(status),
        "sessions": [b.as_dict(clinical=clinical) for b in rows if b.kind == "session"],
        "boosters": [b.as_dict(clinical=clinical) for b in rows if b.kind == "booster"],
        "warnings": [w for b in rows for w in b.warnings],
    }


def capacity(
    session: Session, actor: Actor, *, day: date, settings: Settings | None = None
) -> dict[str, Any]:
    """Chairs used and free and patients per nurse in each 15-minute slot of ``day``, and
    the slots over capacity with who is booked in them.

    The slots run from the opening hour to closing (settings), widened to any booking
    outside them. Each booking holds its chair until ``chair_until``.
    """
    require(actor, Action.READ_SCHEDULE)
    check_day("day", day)
    settings = settings or Settings()
    start = datetime.combine(day, time())
    found, courses = bookings_between(session, from_date=day - _DAY, to_date=day, with_closed=True)
    booked = sorted(
        (b for b in found if b.outpatient and b.overlaps(start, start + _DAY)),
        key=lambda b: b.start,
    )
    who = booking_headers(session, courses.values())
    cap, by = seats(settings)
    first = min([start + timedelta(hours=settings.clinic_opens_h), *(b.start for b in booked)])
    last = max(
        [start + timedelta(hours=settings.clinic_closes_h), *(b.chair_until for b in booked)]
    )
    slots, conflicts = [], []
    for t in slot_starts(max(first, start), min(last, start + _DAY)):
        here = [b for b in booked if b.overlaps(t, t + _SLOT)]
        row = {
            "start": f"{t:%H:%M}",
            "end": f"{t + _SLOT:%H:%M}",
            "chairs_used": len(here),
            "chairs_free": max(settings.chairs - len(here), 0),
            "patients_per_nurse": len(here) / settings.nurses_on_duty,
            "over_capacity": len(here) > cap,
        }
        slots.append(row)
        if row["over_capacity"]:
            names = [{**who[b.course_id], "kind": b.kind, "number": b.number} for b in here]
            conflicts.append({**row, "capacity": cap, "booked": names})
    keys = ("kind", "number", "status", "start", "end", "chair_until")
    return {
        "day": day.isoformat(),
        "chairs": settings.chairs,
        "nurses_on_duty": settings.nurses_on_duty,
        "patients_per_nurse": settings.patients_per_nurse,
        "capacity": cap,
        "limited_by": by,
        "opens": f"{settings.clinic_opens_h:02d}:00",
        "closes": f"{settings.clinic_closes_h:02d}:00",
        "slot_min": SLOT_MIN,
        "bookings": [
            {**who[b.course_id], **{k: b.as_dict(clinical=False)[k] for k in keys}} for b in booked
        ],
        "slots": slots,
        "conflicts": conflicts,
    }


def rebook_missed(
    session: Session,
    actor: Actor,
    course_id: uuid.UUID,
    *,
    session_number: int,
    today: date,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Suggest a day for a missed session; nothing is written (book it with
    :func:`ketapain.clinic.rebooking.move_session`).

    The first weekday (any day in a phase that does not skip weekends) after the last
    session of the phase still booked, not before ``today``, with no other session of the
    course that day and a chair free for the whole chair time at the session's time.
    """
    require(actor, Action.READ_SCHEDULE)
    check_day("today", today)
    settings = settings or Settings()
    course = get_or_raise(session, Course, course_id, "course")
    rows = course_calendar(session, course)
    sessions = [b for b in rows if b.kind == "session"]
    if isinstance(session_number, bool) or not 1 <= session_number <= len(sessions):
        raise InvalidValueError("session_number", f"1 to {len(sessions)}", session_number)
    row = sessions[session_number - 1]
    if row.status is not BookingStatus.MISSED:
        raise ConflictError(
            "session_number", f"session {session_number} is {row.status}, not missed"
        )
    proto = protocol_of(course)
    phase = next((p for p in proto.phases if p.name == row.phase), None) if proto else None
    weekdays_only = phase is None or phase.skip_weekends
    same_phase = [b.start.date() for b in sessions if b.in_chair and b.phase == row.phase]
    after = max(same_phase, default=row.planned_start.date() - _DAY)
    first = max(after + _DAY, today)
    own = {b.start.date() for b in rows if b.in_chair}
    others, _ = bookings_between(
        session, from_date=first - _DAY, to_date=first + _SEARCH_DAYS * _DAY, with_closed=True
    )
    for k in range(_SEARCH_DAYS):
        day = first + k * _DAY
        if (weekdays_only and day.weekday() >= 5) or day in own:
            continue
        candidate = row.at(datetime.combine(day, row.start.time()))
        if candidate.outpatient and full_slots(candidate, others, settings):
            continue
        return _suggestion(candidate, after=after, weekdays_only=weekdays_only) | {
            "warnings": outside_hours(candidate, settings) + _later(candidate, sessions)
        }
    return {
        "session_number": session_number,
        "suggested": None,
        "reason": f"No free day in the {_SEARCH_DAYS} days from {first}: book by hand.",
        "warnings": [],
    }


def _suggestion(b: Booking, *, after: date, weekdays_only: bool) -> dict[str, Any]:
    day = b.start.date()
    return {
        "session_number": b.number,
        "suggested": b.as_dict(clinical=False) | {"status": "suggested"},
        "reason": f"Session {b.number} ({b.phase}) was missed. {day:%A %d %B %Y} is the first "
        f"{'weekday' if weekdays_only else 'day'} after the last booked {b.phase} session "
        f"({after}) with no other session of the course and a chair free "
        f"{b.start:%H:%M}-{b.chair_until:%H:%M}.",
    }


def _later(b: Booking, sessions: list[Booking]) -> list[str]:
    """A warning when later sessions of the course come before the suggested day."""
    later = [
        str(s.number)
        for s in sessions
        if s.in_chair and (s.number or 0) > (b.number or 0) and s.start < b.start
    ]
    if not later:
        return []
    return [f"Sessions {', '.join(later)} come before it: consider moving them too."]
