"""The API of safety over the course: the course's safety view, the holds standing on a
patient's infusions, and a physician's review of a hold."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import Field

from ketapain.clinic.course_safety import course_safety, patient_holds, review_hold
from ketapain.clinic.db import utc_now
from ketapain.web.api._schemas import Body
from ketapain.web.deps import ActorDep, DbDep, ReadDep, SettingsDep

router = APIRouter(tags=["safety"])


class ReviewIn(Body):
    """A physician's review of a hold: the lab result or urinary screen (score) held on,
    ``resume`` or ``keep_holding``, and the reason."""

    lab_result_id: uuid.UUID | None = None
    score_id: uuid.UUID | None = None
    outcome: str
    reason: str = Field(min_length=1)


@router.get("/courses/{course_id}/safety")
def safety(
    course_id: uuid.UUID,
    session: ReadDep,
    actor: ActorDep,
    settings: SettingsDep,
    today: Annotated[date | None, Query(description="YYYY-MM-DD; default: today (clinic)")] = None,
) -> dict[str, Any]:
    """The course's holds, labs due, cumulative dose, blood-pressure trend and oral
    interactions, as of ``today``."""
    day = today or utc_now().astimezone(ZoneInfo(settings.timezone)).date()
    return course_safety(session, actor, course_id, today=day)


@router.get("/patients/{patient_id}/holds")
def holds(patient_id: uuid.UUID, session: ReadDep, actor: ActorDep) -> list[dict[str, Any]]:
    """The holds standing on the patient's infusions, with reason, source and review state."""
    return patient_holds(session, actor, patient_id)


@router.post("/patients/{patient_id}/safety-reviews", status_code=201)
def review(patient_id: uuid.UUID, body: ReviewIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Review a held lab result or urinary screen (physician): resume or keep holding."""
    return review_hold(db, actor, patient_id, **body.model_dump()).as_dict()
