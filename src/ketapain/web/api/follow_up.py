"""The API of follow-up: patient-reported outcomes, reminders, patient links.

``POST /portal/{secret}/scores`` is the one route here without credentials: the secret of
a patient link is its credential. An unknown, expired or revoked link gets the same 404,
whatever the body, so that an answer tells nothing about which links exist; the body is
read only after the link is found.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import AwareDatetime, ValidationError

from ketapain.clinic.db import utc_now
from ketapain.clinic.follow_up import OVERDUE_LISTED_DAYS, due_reminders, pro_schedule
from ketapain.clinic.portal import (
    DEFAULT_LINK_VALID_DAYS,
    issue_link,
    list_links,
    resolve_link,
    revoke_link,
    submit,
)
from ketapain.errors import InvalidValueError, field_path
from ketapain.web.api._schemas import Body
from ketapain.web.deps import ActorDep, DbDep, ReadDep, SettingsDep

router = APIRouter(tags=["follow-up"])


class LinkIn(Body):
    """How long the link lasts (days; the clinic's default is 14)."""

    valid_days: int = DEFAULT_LINK_VALID_DAYS


class PortalScoreIn(Body):
    """A questionnaire the patient sends: a value, or the items of an itemised one."""

    instrument: str
    value: float | None = None
    items: dict[str, int] | None = None
    measured_utc: AwareDatetime | None = None


@router.get("/courses/{course_id}/pro-schedule")
def schedule_of_course(
    course_id: uuid.UUID,
    session: ReadDep,
    actor: ActorDep,
    settings: SettingsDep,
    today: date | None = None,
    weekly: Annotated[str, Query(description='"peg" or "bpi"')] = "peg",
    diary_weeks: Annotated[int | None, Query(ge=0, le=12)] = None,
) -> dict[str, Any]:
    """The course's questionnaires: instrument, due date, window, done or overdue."""
    kw: dict[str, Any] = {} if diary_weeks is None else {"diary_weeks": diary_weeks}
    tz = ZoneInfo(settings.timezone)
    return pro_schedule(session, actor, course_id, today=today, tz=tz, weekly=weekly, **kw)


@router.get("/reminders")
def reminders(
    session: ReadDep,
    actor: ActorDep,
    settings: SettingsDep,
    today: date | None = None,
    overdue_days: Annotated[int, Query(ge=0, le=365)] = OVERDUE_LISTED_DAYS,
) -> list[dict[str, Any]]:
    """Patients with questionnaires due today or overdue, with what and since when."""
    tz = ZoneInfo(settings.timezone)
    return due_reminders(
        session,
        actor,
        today=today or _today(tz),
        tz=tz,
        overdue_days=overdue_days,
    )


def _today(tz: ZoneInfo) -> date:
    return utc_now().astimezone(tz).date()


@router.get("/patients/{patient_id}/links")
def links(patient_id: uuid.UUID, session: ReadDep, actor: ActorDep) -> list[dict[str, Any]]:
    """The patient's links (never their secrets), newest first."""
    return list_links(session, actor, patient_id)


@router.post("/patients/{patient_id}/links", status_code=201)
def new_link(patient_id: uuid.UUID, body: LinkIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Issue a link for the patient (nurse, physician): the secret is shown only now."""
    return issue_link(db, actor, patient_id, valid_days=body.valid_days).as_dict()


@router.post("/patients/{patient_id}/links/{link_id}/revoke")
def withdraw_link(
    patient_id: uuid.UUID, link_id: uuid.UUID, db: DbDep, actor: ActorDep
) -> dict[str, Any]:
    """Revoke a link of the patient (nurse, physician)."""
    return revoke_link(db, actor, patient_id, link_id)


@router.post("/portal/{secret}/scores", status_code=201)
async def portal_score(secret: str, request: Request, db: DbDep) -> dict[str, Any]:
    """Send a questionnaire through a patient link (no account; the link is the key)."""
    await run_in_threadpool(resolve_link, db, secret)
    body = _portal_body(await request.body())
    out = await run_in_threadpool(lambda: submit(db, secret, **body.model_dump()))
    result: dict[str, Any] = out.as_dict()
    return result


def _portal_body(raw: bytes) -> PortalScoreIn:
    """The body as a :class:`PortalScoreIn`, or an error naming the first field at fault
    (read here, not by FastAPI, whose validation errors answer anonymous requests 401)."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidValueError("body", "a JSON object", "(not JSON)") from None
    try:
        return PortalScoreIn.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = field_path(*(p if isinstance(p, int) else str(p) for p in first["loc"]))
        raise InvalidValueError(where or "body", first["msg"], first.get("input")) from None
