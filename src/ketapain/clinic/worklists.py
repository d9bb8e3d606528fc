"""Work lists of the home pages: today's chairs, decisions waiting, labs due, and the
courses of a patient.

Each entry says why it is on the list; nothing here writes.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketapain.clinic.audit import Actor
from ketapain.clinic.courses import Course, active_courses, course_status, current_plan, decisions
from ketapain.clinic.db import utc_now
from ketapain.clinic.infusions import Infusion, InfusionEvent, PumpState, pump_state
from ketapain.clinic.patients import LabResult, LabTest
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.records import current
from ketapain.clinic.schedule import booking_header, schedule

__all__ = ["courses_of", "due_labs", "pending_decisions", "todays_chairs"]


def _state(session: Session, infusion_id: uuid.UUID) -> PumpState:
    return pump_state(
        session.scalars(
            select(InfusionEvent.kind)
            .where(InfusionEvent.infusion_id == infusion_id)
            .order_by(InfusionEvent.sequence)
        )
    )


def _latest_infusion(session: Session, course_id: uuid.UUID, number: int) -> Infusion | None:
    return session.scalars(
        select(Infusion)
        .where(Infusion.course_id == course_id, Infusion.session_number == number)
        .order_by(Infusion.recorded_utc.desc())
        .limit(1)
    ).first()


def todays_chairs(session: Session, actor: Actor, *, day: date) -> list[dict[str, Any]]:
    """Sessions booked on ``day`` with the infusion hung for each (if any) and its state."""
    require(actor, Action.READ_CLINICAL)
    rows = []
    for entry in schedule(session, actor, from_date=day, to_date=day):
        inf = None
        if entry["kind"] == "session":
            inf = _latest_infusion(session, uuid.UUID(entry["course_id"]), entry["number"])
        rows.append(
            {
                **entry,
                "infusion_id": None if inf is None else str(inf.id),
                "state": "not hung" if inf is None else str(_state(session, inf.id)),
            }
        )
    return sorted(rows, key=lambda r: (r.get("start") or "", r["patient"]))


def pending_decisions(session: Session, actor: Actor) -> list[dict[str, Any]]:
    """Decision points whose session has been given and stopped, with no decision signed."""
    require(actor, Action.READ_CLINICAL)
    out = []
    for course in active_courses(session):
        plan = current_plan(session, course.id).plan
        signed = {d.after_session for d in decisions(session, course.id)}
        for dp in plan["decision_points"]:
            n = dp["after_session"]
            if n in signed:
                continue
            inf = _latest_infusion(session, course.id, n)
            if inf is None or _state(session, inf.id) is not PumpState.STOPPED:
                continue
            out.append({**booking_header(session, course), **dp})
    return out


def _latest_lab(session: Session, patient_id: uuid.UUID) -> LabResult | None:
    return session.scalars(
        current(LabResult)
        .where(LabResult.patient_id == patient_id, LabResult.test.in_([LabTest.ALT, LabTest.AST]))
        .order_by(LabResult.collected_utc.desc())
        .limit(1)
    ).first()


def due_labs(session: Session, actor: Actor, *, today: date | None = None) -> list[dict[str, Any]]:
    """Liver tests the plan asks for (a ``workup_*`` finding) and not yet on file.

    Due before the series when no ALT/AST is on file; due after the series when the last
    session has passed and no result was collected after it. The date of the latest
    result is shown so that the physician judges whether it is recent enough. The reason
    and source are the finding's.
    """
    require(actor, Action.READ_CLINICAL)
    today = today or utc_now().date()
    out = []
    for course in active_courses(session):
        plan = current_plan(session, course.id).plan
        workups = [f for f in plan["findings"] if f["code"].startswith("workup_")]
        if not workups or not plan["sessions"]:
            continue
        lab = _latest_lab(session, course.patient_id)
        last_day = date.fromisoformat(plan["sessions"][-1]["date"])
        when = None if lab is None else lab.collected_utc.date()
        if when is None:
            due = "before the series"
        elif last_day < today and when <= last_day:
            due = "after the series"
        else:
            continue
        for f in workups:
            out.append(
                {
                    **booking_header(session, course),
                    "due": due,
                    "latest": None if when is None else when.isoformat(),
                    "reason": f["reason"],
                    "source": f["source"],
                }
            )
    return out


def courses_of(session: Session, actor: Actor, patient_id: uuid.UUID) -> list[dict[str, Any]]:
    """The patient's courses, newest first, with status and start date."""
    require(actor, Action.READ_CLINICAL)
    out = []
    for course in session.scalars(
        select(Course).where(Course.patient_id == patient_id).order_by(Course.recorded_utc.desc())
    ):
        status, _ = course_status(session, course.id)
        plan = current_plan(session, course.id)
        out.append(
            {
                "id": str(course.id),
                "protocol": course.protocol,
                "status": str(status),
                "start_date": plan.start_date.isoformat(),
                "sessions": len(plan.plan["sessions"]),
                "plan_version": plan.version,
            }
        )
    return out
