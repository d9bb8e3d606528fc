"""Courses and plans, status, decisions, boosters, oral follow-on; the schedule."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from ketapain.clinic.continuation import continuation
from ketapain.clinic.courses import course_view
from ketapain.clinic.db import utc_now
from ketapain.clinic.oral_follow_on import oral_proposal, prescription_findings
from ketapain.clinic.schedule import schedule
from ketapain.clinic.titration import titration
from ketapain.clinic.treatment import (
    book_booster,
    change_status,
    create_course,
    decide,
    prescribe_oral,
    replan,
)
from ketapain.web.api._schemas import Body, OverrideIn
from ketapain.web.deps import ActorDep, DbDep, ReadDep

router = APIRouter(tags=["courses"])


class CourseIn(Body):
    """Plan a course from the chart: protocol, start, bag, weight policy, target."""

    protocol: str
    start_date: date
    bag_mg: float
    bag_ml: float
    weight_policy: str = "actual"
    weight_cap_kg: float | None = None
    target_ng_per_ml: float | None = None
    overrides: list[OverrideIn] = Field(default_factory=list)


class ReplanIn(Body):
    """Change the plan: the reason, and whatever changes."""

    reason: str = Field(min_length=1)
    start_date: date | None = None
    bag_mg: float | None = None
    bag_ml: float | None = None
    weight_policy: str | None = None
    weight_cap_kg: float | None = None
    target_ng_per_ml: float | None = None
    overrides: list[OverrideIn] = Field(default_factory=list)


class StatusIn(Body):
    """A new status and the reason."""

    status: str
    reason: str


class DecisionIn(Body):
    """Continue or stop after a session, with the reason."""

    after_session: int
    decision: str
    reason: str


class BoosterIn(Body):
    """A booster's date and reason."""

    scheduled_date: date
    reason: str


class OralIn(Body):
    """An oral prescription."""

    dose_mg: float
    doses_per_day: int
    start_date: date
    end_date: date
    instructions: str | None = None


@router.post("/patients/{patient_id}/courses", status_code=201)
def new_course(
    patient_id: uuid.UUID, body: CourseIn, db: DbDep, actor: ActorDep, session: ReadDep
) -> dict[str, Any]:
    """Plan a course (physician); a hard stop answers 409 with the findings."""
    values = body.model_dump(exclude={"overrides"})
    course = create_course(
        db,
        actor,
        patient_id=patient_id,
        overrides=[(o.code, o.reason) for o in body.overrides],
        **values,
    )
    return course_view(session, actor, course.id)


@router.get("/courses/{course_id}")
def course(course_id: uuid.UUID, session: ReadDep, actor: ActorDep) -> dict[str, Any]:
    """The course: plan in force, status history, decisions, boosters, prescriptions."""
    return course_view(session, actor, course_id)


@router.post("/courses/{course_id}/plans", status_code=201)
def change_plan(course_id: uuid.UUID, body: ReplanIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """A new version of the plan (physician), with the reason."""
    values = body.model_dump(exclude={"overrides"})
    row = replan(
        db, actor, course_id, overrides=[(o.code, o.reason) for o in body.overrides], **values
    )
    return {"course_id": str(course_id), "version": row.version, "plan": row.plan}


@router.post("/courses/{course_id}/status", status_code=201)
def status(course_id: uuid.UUID, body: StatusIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Change the course's status (physician)."""
    change_status(db, actor, course_id, status=body.status, reason=body.reason)
    return {"course_id": str(course_id), "status": body.status}


@router.post("/courses/{course_id}/decisions", status_code=201)
def decision(course_id: uuid.UUID, body: DecisionIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Sign a decision after a session (physician)."""
    return decide(db, actor, course_id, **body.model_dump()).as_dict()


@router.post("/courses/{course_id}/boosters", status_code=201)
def booster(course_id: uuid.UUID, body: BoosterIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Book a booster (physician)."""
    return book_booster(db, actor, course_id, **body.model_dump()).as_dict()


@router.post("/courses/{course_id}/oral-prescriptions", status_code=201)
def oral(
    course_id: uuid.UUID, body: OralIn, db: DbDep, actor: ActorDep, session: ReadDep
) -> dict[str, Any]:
    """Prescribe oral ketamine after the infusions (physician); the answer adds what to
    know: the dose against the Blonk 2010 starting dose, interactions for the oral route."""
    row = prescribe_oral(db, actor, course_id, **body.model_dump())
    findings = prescription_findings(session, course_id, dose_mg=row.dose_mg, on=utc_now().date())
    return {**row.as_dict(), "findings": [f.as_dict() for f in findings]}


@router.get("/courses/{course_id}/oral-proposal")
def proposed_oral(course_id: uuid.UUID, session: ReadDep, actor: ActorDep) -> dict[str, Any]:
    """The oral follow-on ketapain proposes: dose, dates, and the oral-route interactions."""
    return oral_proposal(session, actor, course_id, on=utc_now().date())


@router.get("/courses/{course_id}/continuation")
def recommendation(
    course_id: uuid.UUID,
    session: ReadDep,
    actor: ActorDep,
    after_session: int | None = None,
) -> dict[str, Any]:
    """Continue or stop after the test infusions: the recommendation, its reasons, the
    figures (30%, 50%, 2 points, PGIC, side effects) and the inputs."""
    return continuation(session, actor, course_id, after_session=after_session)


@router.get("/courses/{course_id}/titration")
def next_rate(
    course_id: uuid.UUID,
    session: ReadDep,
    actor: ActorDep,
    session_number: int | None = None,
    side_effect_ceiling: Annotated[float | None, Query(gt=0, le=1)] = None,
) -> dict[str, Any]:
    """The next session's suggested rate: the protocol's rule and the patient's own
    sensitivity (Bayesian MAP), each within the limits, with reasons and bands."""
    return titration(
        session,
        actor,
        course_id,
        session_number=session_number,
        side_effect_ceiling=side_effect_ceiling,
    )


@router.get("/schedule")
def booked(
    session: ReadDep,
    actor: ActorDep,
    from_date: Annotated[date | None, Query(alias="from")] = None,
    to_date: Annotated[date | None, Query(alias="to")] = None,
) -> list[dict[str, Any]]:
    """Sessions and boosters booked between two dates (default: the next 14 days)."""
    start = from_date or utc_now().date()
    return schedule(session, actor, from_date=start, to_date=to_date or start + timedelta(days=14))
