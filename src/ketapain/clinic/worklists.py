"""Work lists of the home pages: today's chairs, decisions waiting, labs due, and the
courses of a patient.

Each entry says why it is on the list; nothing here writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketapain.clinic.audit import Actor
from ketapain.clinic.courses import (
    Course,
    Decision,
    active_courses,
    course_status,
    current_plan,
    current_plans,
)
from ketapain.clinic.db import column_rows, utc_now
from ketapain.clinic.infusions import Infusion, InfusionEvent, PumpState, pump_state
from ketapain.clinic.patients import LabResult, LabTest
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.records import current
from ketapain.clinic.schedule import booking_headers, schedule

__all__ = ["courses_of", "due_labs", "pending_decisions", "todays_chairs"]


def _latest_infusions(
    session: Session, course_ids: Collection[uuid.UUID]
) -> dict[tuple[uuid.UUID, int], Infusion]:
    """The latest infusion hung for each (course, session number), in one statement."""
    if not course_ids:
        return {}
    rows = session.scalars(
        select(Infusion).where(Infusion.course_id.in_(course_ids)).order_by(Infusion.recorded_utc)
    )
    return {(i.course_id, i.session_number): i for i in rows}  # the latest of each wins


def _states(session: Session, infusions: Iterable[Infusion]) -> dict[uuid.UUID, PumpState]:
    """The pump state of each infusion, from its events, in one statement."""
    ids = [i.id for i in infusions]
    kinds: dict[uuid.UUID, list[str]] = {i: [] for i in ids}
    if ids:
        rows = column_rows(
            session,
            select(InfusionEvent.infusion_id, InfusionEvent.kind)
            .where(InfusionEvent.infusion_id.in_(ids))
            .order_by(InfusionEvent.infusion_id, InfusionEvent.sequence),
        )
        for infusion_id, kind in rows:
            kinds[infusion_id].append(kind)
    return {i: pump_state(k) for i, k in kinds.items()}


def todays_chairs(session: Session, actor: Actor, *, day: date) -> list[dict[str, Any]]:
    """Sessions booked on ``day`` with the infusion hung for each (if any) and its state."""
    require(actor, Action.READ_CLINICAL)
    booked = schedule(session, actor, from_date=day, to_date=day)
    hung = _latest_infusions(session, {uuid.UUID(e["course_id"]) for e in booked})
    states = _states(session, hung.values())
    rows = []
    for entry in booked:
        inf = None
        if entry["kind"] == "session":
            inf = hung.get((uuid.UUID(entry["course_id"]), entry["number"]))
        rows.append(
            {
                **entry,
                "infusion_id": None if inf is None else str(inf.id),
                "state": "not hung" if inf is None else str(states[inf.id]),
            }
        )
    return sorted(rows, key=lambda r: (r.get("start") or "", r["patient"]))


def pending_decisions(session: Session, actor: Actor) -> list[dict[str, Any]]:
    """Decision points whose session has been given and stopped, with no decision signed."""
    require(actor, Action.READ_CLINICAL)
    courses = active_courses(session)
    ids = [c.id for c in courses]
    plans = current_plans(session, ids)
    signed = {
        (course_id, after)
        for course_id, after in session.execute(
            current(Decision)
            .with_only_columns(Decision.course_id, Decision.after_session)
            .where(Decision.course_id.in_(ids))
        )
    }
    hung = _latest_infusions(session, ids)
    states = _states(session, hung.values())
    headers = booking_headers(session, courses)
    out = []
    for course in courses:
        for dp in plans[course.id]["decision_points"]:
            n = dp["after_session"]
            if (course.id, n) in signed:
                continue
            inf = hung.get((course.id, n))
            if inf is None or states[inf.id] is not PumpState.STOPPED:
                continue
            out.append({**headers[course.id], **dp})
    return out


def _latest_labs(
    session: Session, patient_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, LabResult]:
    """The latest liver test (ALT or AST) of each patient, in one statement."""
    if not patient_ids:
        return {}
    rows = session.scalars(
        current(LabResult)
        .where(
            LabResult.patient_id.in_(patient_ids),
            LabResult.test.in_([LabTest.ALT, LabTest.AST]),
        )
        .order_by(LabResult.collected_utc)
    )
    return {lab.patient_id: lab for lab in rows}  # the latest of each wins


def due_labs(session: Session, actor: Actor, *, today: date | None = None) -> list[dict[str, Any]]:
    """Liver tests the plan asks for (a ``workup_*`` finding) and not yet on file.

    Due before the series when no ALT/AST is on file; due after the series when the last
    session has passed and no result was collected after it. The date of the latest
    result is shown so that the physician judges whether it is recent enough. The reason
    and source are the finding's.
    """
    require(actor, Action.READ_CLINICAL)
    today = today or utc_now().date()
    courses = active_courses(session)
    plans = current_plans(session, [c.id for c in courses])
    headers = booking_headers(session, courses)
    latest = _latest_labs(session, {c.patient_id for c in courses})
    out = []
    for course in courses:
        plan = plans[course.id]
        workups = [f for f in plan["findings"] if f["code"].startswith("workup_")]
        if not workups or not plan["sessions"]:
            continue
        lab = latest.get(course.patient_id)
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
                    **headers[course.id],
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
