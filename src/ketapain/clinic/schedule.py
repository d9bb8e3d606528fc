"""The front desk's schedule: sessions and boosters booked between two dates, with who
they are for and the protocol; no doses, no clinical notes."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from ketapain.clinic.audit import Actor
from ketapain.clinic.courses import Booster, Course, active_courses, current_plans
from ketapain.clinic.patients import Demographics
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.records import current
from ketapain.clinic.registry import current_demographics, demographics_of
from ketapain.errors import InvalidValueError

__all__ = ["booking_header", "booking_headers", "schedule"]


def booking_header(session: Session, course: Course) -> dict[str, Any]:
    """Who and what a booking is for: patient (name, id), course, protocol."""
    return _header(course, demographics_of(session, course.patient_id))


def booking_headers(session: Session, courses: list[Course]) -> dict[uuid.UUID, dict[str, Any]]:
    """:func:`booking_header` of each course, by course id, in one statement."""
    demo = current_demographics(session, {c.patient_id for c in courses})
    return {c.id: _header(c, demo[c.patient_id]) for c in courses}


def _header(course: Course, demo: Demographics) -> dict[str, Any]:
    return {
        "patient_id": str(course.patient_id),
        "patient": f"{demo.family_name}, {demo.given_name}",
        "course_id": str(course.id),
        "protocol": course.protocol,
    }


def schedule(
    session: Session, actor: Actor, *, from_date: date, to_date: date
) -> list[dict[str, Any]]:
    """Sessions and boosters booked between two dates: who, when, which protocol.

    What the front desk sees: no doses, no clinical notes.
    """
    require(actor, Action.READ_SCHEDULE)
    if to_date < from_date:
        raise InvalidValueError("to", f"on or after {from_date}", to_date)
    courses = active_courses(session)
    ids = [c.id for c in courses]
    plans = current_plans(session, ids)
    who = booking_headers(session, courses)
    out: list[dict[str, Any]] = []
    for course in courses:
        for s in plans[course.id].plan["sessions"]:
            day = date.fromisoformat(s["date"])
            if from_date <= day <= to_date:
                out.append(
                    {
                        **who[course.id],
                        "kind": "session",
                        "number": s["number"],
                        "date": s["date"],
                        "start": s["start"],
                        "end": s["end"],
                    }
                )
    boosters = session.scalars(
        current(Booster).where(
            Booster.course_id.in_(ids),
            Booster.scheduled_date >= from_date,
            Booster.scheduled_date <= to_date,
        )
    )
    for b in boosters:
        out.append(
            {
                **who[b.course_id],
                "kind": "booster",
                "number": None,
                "date": b.scheduled_date.isoformat(),
                "start": None,
                "end": None,
            }
        )
    return sorted(out, key=lambda r: (r["date"], r["start"] or "", r["patient"]))
