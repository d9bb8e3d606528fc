"""The API of booking: series calendar, missed sessions, capacity, relapse and boosters."""

from __future__ import annotations

import uuid
from datetime import date, time
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query

from ketapain.clinic.boosters import booster_suggestion, early_completion
from ketapain.clinic.db import utc_now
from ketapain.clinic.rebooking import mark_missed, move_session
from ketapain.clinic.schedule import calendar, capacity, rebook_missed
from ketapain.config import Settings
from ketapain.web.api._schemas import Body
from ketapain.web.deps import ActorDep, DbDep, ReadDep, SettingsDep

router = APIRouter(tags=["booking"])

DayQuery = Annotated[date | None, Query(description="YYYY-MM-DD; default: today (clinic)")]


class MissedIn(Body):
    """Why the session was missed."""

    reason: str


class MoveIn(Body):
    """The new day (and time, default: the session's time), the reason, and whether to
    book beyond the clinic's capacity knowingly."""

    new_date: date
    new_start: time | None = None
    reason: str
    allow_overbook: bool = False


def _today(settings: Settings) -> date:
    return utc_now().astimezone(ZoneInfo(settings.timezone)).date()


@router.get("/courses/{course_id}/calendar")
def course_calendar(course_id: uuid.UUID, session: ReadDep, actor: ActorDep) -> dict[str, Any]:
    """The series calendar in force: moved and missed sessions, chair times, boosters."""
    return calendar(session, actor, course_id)


@router.post("/courses/{course_id}/sessions/{number}/missed", status_code=201)
def missed(
    course_id: uuid.UUID, number: int, body: MissedIn, db: DbDep, actor: ActorDep
) -> dict[str, Any]:
    """Mark a session missed, with the reason."""
    return mark_missed(db, actor, course_id, session_number=number, reason=body.reason)


@router.post("/courses/{course_id}/sessions/{number}/move", status_code=201)
def move(
    course_id: uuid.UUID,
    number: int,
    body: MoveIn,
    db: DbDep,
    actor: ActorDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Move a session (or rebook a missed one); a full slot answers 409 unless overbooked."""
    return move_session(
        db, actor, course_id, session_number=number, settings=settings, **body.model_dump()
    )


@router.get("/courses/{course_id}/sessions/{number}/rebook-suggestion")
def rebook(
    course_id: uuid.UUID,
    number: int,
    session: ReadDep,
    actor: ActorDep,
    settings: SettingsDep,
    today: DayQuery = None,
) -> dict[str, Any]:
    """A free day for a missed session (a suggestion; nothing is written)."""
    return rebook_missed(
        session,
        actor,
        course_id,
        session_number=number,
        today=today or _today(settings),
        settings=settings,
    )


@router.get("/capacity")
def day_capacity(
    session: ReadDep, actor: ActorDep, settings: SettingsDep, day: DayQuery = None
) -> dict[str, Any]:
    """Chairs used and free per 15-minute slot of the day, and the slots over capacity."""
    return capacity(session, actor, day=day or _today(settings), settings=settings)


@router.get("/courses/{course_id}/early-completion")
def early(course_id: uuid.UUID, session: ReadDep, actor: ActorDep) -> dict[str, Any]:
    """Whether the series' goal is reached, so that the course may end early, and why."""
    return early_completion(session, actor, course_id)


@router.get("/courses/{course_id}/booster-suggestion")
def booster(
    course_id: uuid.UUID,
    session: ReadDep,
    actor: ActorDep,
    settings: SettingsDep,
    today: DayQuery = None,
) -> dict[str, Any]:
    """Relapse after the series and whether to suggest a booster, with the history."""
    return booster_suggestion(session, actor, course_id, today=today or _today(settings))
