"""The front desk's schedule: sessions and boosters booked between two dates, with who
they are for and the protocol; no doses, no clinical notes."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from ketapain.clinic.audit import Actor
from ketapain.clinic.courses import Booster, Course, active_courses, current_plan
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.records import current
from ketapain.clinic.registry import demographics_of
from ketapain.errors import InvalidValueError

__all__ = ["booking_header", "schedule"]


def booking_header(session: Session, course: Course) -> dict[str, Any]:
    """Who and what a booking is for: patient (name, id), course, protocol."""
    demo = demographics_of(session, course.patient_id)
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
    out: list[dict[str, Any]] = []
    for course in active_courses(session):
        who = booking_header(session, course)
        plan = current_plan(session, course.id).plan
        for s in plan["sessions"]:
            day = date.fromisoformat(s["date"])
            if from_date <= day <= to_date:
                out.append(
                    {
                        **who,
                        "kind": "session",
                        "number": s["number"],
                        "date": s["date"],
                        "start": s["start"],
                        "end": s["end"],
                    }
                )
        for b in session.scalars(current(Booster).where(Booster.course_id == course.id)):
            if from_date <= b.scheduled_date <= to_date:
                out.append(
                    {
                        **who,
                        "kind": "booster",
                        "number": None,
                        "date": b.scheduled_date.isoformat(),
                        "start": None,
                        "end": None,
                    }
                )
    return sorted(out, key=lambda r: (r["date"], r["start"] or "", r["patient"]))
