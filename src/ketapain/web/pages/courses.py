"""The course: sessions done and planned with pain before and after, the decision after
the test infusions with its response figure, boosters, oral follow-on, hanging a bag."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from ketapain.clinic.audit import Actor, reading
from ketapain.clinic.continuation import continuation
from ketapain.clinic.course_safety import course_safety
from ketapain.clinic.courses import CourseStatus, course_view
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.oral_follow_on import oral_proposal
from ketapain.clinic.permissions import Action
from ketapain.clinic.progress import course_progress
from ketapain.clinic.pump import hang_infusion
from ketapain.clinic.registry import patient_record
from ketapain.clinic.titration import titration
from ketapain.clinic.treatment import (
    book_booster,
    change_status,
    decide,
    prescribe_oral,
)
from ketapain.errors import AccessDeniedError, ConflictError, KetapainError
from ketapain.web.deps import DbDep
from ketapain.web.pages._charts import course_pain_chart
from ketapain.web.pages._render import (
    FormReader,
    PageUser,
    PageUserDep,
    field_errors,
    read_form,
    redirect,
    refused_on_page,
    render,
)

__all__ = ["router"]

router = APIRouter()


def _page(
    request: Request, db: DbDep, me: PageUser, course_id: uuid.UUID, **context: Any
) -> Response:
    actor = me.user.actor()
    with reading(db, actor) as session:
        view = course_view(session, actor, course_id)
        progress = course_progress(session, actor, course_id)
        record = patient_record(session, actor, uuid.UUID(view["patient_id"]))
        advice = _advice(session, actor, course_id, view, progress)
    return render(
        request,
        "course.html",
        page_user=me,
        c=view,
        plan=view["plan"],
        progress=progress,
        p=record,
        pain_chart=course_pain_chart(progress),
        statuses=[(s.value, s.value.replace("_", " ")) for s in CourseStatus],
        **advice,
        **context,
    )


def _advice(
    session: Session,
    actor: Actor,
    course_id: uuid.UUID,
    view: dict[str, Any],
    progress: dict[str, Any],
) -> dict[str, Any]:
    """What ketapain recommends on this course: continue or stop, the next rate, the oral
    follow-on; each None where it does not apply."""
    open_course = view["status"] in ("planned", "in_progress")
    points = view["plan"]["decision_points"]
    rec = continuation(session, actor, course_id, progress=progress) if points else None
    try:
        rate = titration(session, actor, course_id) if open_course else None
    except ConflictError:  # every session given
        rate = None
    today = utc_now().date()
    return {
        "recommendation": rec,
        "titration": rate,
        "oral": oral_proposal(session, actor, course_id, on=today),
        "safety": course_safety(session, actor, course_id, today=today),
    }


@router.get("/courses/{course_id}")
def course(request: Request, course_id: uuid.UUID, db: DbDep, me: PageUserDep) -> Response:
    """The course view."""
    return _page(request, db, me, course_id)


def _hang(db: Database, actor: Actor, cid: uuid.UUID, r: FormReader) -> str:
    values: dict[str, Any] = {
        "session_number": r.whole("session_number", required=True),
        "bag_mg": r.number("bag_mg", required=True, what="the ketamine in the bag"),
        "bag_ml": r.number("bag_ml", required=True, what="the bag's volume"),
        "lot": r.text("lot", required=True, what="the lot number"),
    }
    r.done()
    row = hang_infusion(db, actor, cid, **values)
    return f"/infusions/{row.id}"


def _decide(db: Database, actor: Actor, cid: uuid.UUID, r: FormReader) -> str:
    values: dict[str, Any] = {
        "after_session": r.whole("after_session", required=True),
        "decision": r.text("decision", required=True, what="continue or stop"),
        "reason": r.text("reason", required=True, what="the reason"),
    }
    r.done()
    decide(db, actor, cid, **values)
    return f"/courses/{cid}#decisions"


def _booster(db: Database, actor: Actor, cid: uuid.UUID, r: FormReader) -> str:
    values: dict[str, Any] = {
        "scheduled_date": r.day("scheduled_date", required=True),
        "reason": r.text("reason", required=True, what="the reason"),
    }
    r.done()
    book_booster(db, actor, cid, **values)
    return f"/courses/{cid}#follow-on"


def _oral(db: Database, actor: Actor, cid: uuid.UUID, r: FormReader) -> str:
    values: dict[str, Any] = {
        "dose_mg": r.number("dose_mg", required=True, what="the dose"),
        "doses_per_day": r.whole("doses_per_day", required=True),
        "start_date": r.day("start_date", required=True),
        "end_date": r.day("end_date", required=True),
        "instructions": r.text("instructions"),
    }
    r.done()
    prescribe_oral(db, actor, cid, **values)
    return f"/courses/{cid}#follow-on"


def _status(db: Database, actor: Actor, cid: uuid.UUID, r: FormReader) -> str:
    values: dict[str, Any] = {
        "status": r.text("status", required=True, what="the new status"),
        "reason": r.text("reason", required=True, what="the reason"),
    }
    r.done()
    change_status(db, actor, cid, **values)
    return f"/courses/{cid}"


_ACTIONS: Final[dict[str, Callable[[Database, Actor, uuid.UUID, FormReader], str]]] = {
    "infusions": _hang,
    "decisions": _decide,
    "boosters": _booster,
    "oral": _oral,
    "status": _status,
}


@router.post("/courses/{course_id}/{action}")
async def act(
    request: Request, course_id: uuid.UUID, action: str, db: DbDep, me: PageUserDep
) -> Response:
    """Hang a bag, sign a decision, book a booster, prescribe oral, change the status."""
    form = await read_form(request, me.secret)
    handler = _ACTIONS.get(action)
    if handler is None:
        return render(
            request, "error.html", page_user=me, status=404, title="Not found",
            message=f"no course action {action!r}",
        )  # fmt: skip
    try:
        target = handler(db, me.user.actor(), course_id, FormReader(form, me.tz))
    except AccessDeniedError as refused:
        errors = refused_on_page(refused, me.user.actor(), Action.READ_CLINICAL)
        return _page(request, db, me, course_id, status=403, values=form, errors=errors)
    except KetapainError as err:
        return _page(request, db, me, course_id, status=422, values=form, errors=field_errors(err))
    return redirect(target, page_user=me, flash=[("ok", "Saved.")])
