"""Course planning: pick a protocol, see the whole plan with its predicted curves, and
approve it (physician). The preview writes nothing; approving writes the course."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData, ImmutableMultiDict

from ketapain.clinic.audit import reading
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.registry import patient_record
from ketapain.clinic.treatment import create_course, preview_course
from ketapain.errors import AccessDeniedError, KetapainError
from ketapain.protocols.dosing_weight import WeightPolicy
from ketapain.protocols.library import list_protocols
from ketapain.protocols.planning import CoursePlan
from ketapain.web.deps import DbDep
from ketapain.web.pages._charts import prediction_charts
from ketapain.web.pages._render import (
    FormReader,
    PageUser,
    PageUserDep,
    field_errors,
    overrides_in,
    read_form,
    redirect,
    refused_on_page,
    render,
)

__all__ = ["calendar", "router"]

router = APIRouter()

# The planner names the bag's fields as the Bag does; the form as the API does.
_FIELD_NAMES: Final = {"bag drug_mg": "bag_mg", "bag volume_ml": "bag_ml"}


def calendar(plan: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Weeks (Monday to Sunday) from the first session to the last day of oral dosing,
    each day with what happens on it."""
    sessions = plan["sessions"]
    if not sessions:
        return []
    first = date.fromisoformat(sessions[0]["date"])
    last = date.fromisoformat(sessions[-1]["date"])
    oral = plan.get("oral_follow_on")
    if oral:
        last = max(last, date.fromisoformat(oral["end_date"]))
    by_day: dict[date, list[str]] = {}
    for s in sessions:
        by_day.setdefault(date.fromisoformat(s["date"]), []).append(
            f"session {s['number']} ({s['phase']}, {s['duration_h']:g} h)"
        )
    for dp in plan["decision_points"]:
        by_day.setdefault(date.fromisoformat(dp["date"]), []).append("decision")
    day = first - timedelta(days=first.weekday())
    weeks = []
    while day <= last:
        week = []
        for _ in range(7):
            events = list(by_day.get(day, []))
            if oral and oral["start_date"] <= day.isoformat() <= oral["end_date"]:
                events.append(f"oral {oral['dose_mg']:g} mg × {len(oral['times'])}")
            week.append({"date": day, "events": events})
            day += timedelta(days=1)
        weeks.append(week)
    return weeks


def _inputs(r: FormReader) -> dict[str, Any]:
    return {
        "protocol": r.text("protocol", required=True, what="a protocol"),
        "start_date": r.day("start_date", required=True),
        "bag_mg": r.number("bag_mg", required=True, what="the ketamine in the bag"),
        "bag_ml": r.number("bag_ml", required=True, what="the bag's volume"),
        "weight_policy": r.text("weight_policy") or "actual",
        "weight_cap_kg": r.number("weight_cap_kg"),
        "target_ng_per_ml": r.number("target_ng_per_ml"),
    }


def _errors(err: KetapainError) -> dict[str, str]:
    return {_FIELD_NAMES.get(k, k): msg for k, msg in field_errors(err).items()}


def _page(
    request: Request,
    db: DbDep,
    me: PageUser,
    patient_id: uuid.UUID,
    form: FormData | ImmutableMultiDict[str, Any] | None,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> Response:
    actor = me.user.actor()
    plan: CoursePlan | None = None
    errors = dict(errors or {})
    with reading(db, actor) as session:
        require(actor, Action.PLAN, "only a physician plans a course")
        record = patient_record(session, actor, patient_id)
        if form is not None and form.get("protocol"):
            r = FormReader(form, me.tz)  # type: ignore[arg-type]
            values = _inputs(r)
            try:
                r.done()
                plan = preview_course(
                    session, actor, patient_id=patient_id, overrides=overrides_in(form), **values
                )
            except AccessDeniedError:
                raise  # the 403 page names the refusal (audited once)
            except KetapainError as err:
                errors = {**_errors(err), **errors}
    plan_dict = None if plan is None else plan.as_dict()
    return render(
        request,
        "plan.html",
        page_user=me,
        status=422 if errors and status == 200 else status,
        p=record,
        plan=plan_dict,
        summary=None if plan is None or plan.prediction is None else plan.prediction.summary,
        charts={} if plan is None else prediction_charts(plan),
        weeks=[] if plan_dict is None else calendar(plan_dict),
        protocols=[(pr.name, f"{pr.name}: {pr.title}") for pr in list_protocols()],
        policies=[(w.value, w.value) for w in WeightPolicy],
        values=_as_form(form),
        errors=errors,
    )


def _as_form(form: FormData | ImmutableMultiDict[str, Any] | None) -> FormData | None:
    if form is None:
        return None
    items = [(k, v) for k, v in form.multi_items() if k != "_form"]
    return FormData([*items, ("_form", "plan")])


@router.get("/patients/{patient_id}/plan")
def plan_page(request: Request, patient_id: uuid.UUID, db: DbDep, me: PageUserDep) -> Response:
    """The planning form; with a protocol chosen, the whole plan and its prediction."""
    query = request.query_params
    return _page(request, db, me, patient_id, query if query.get("protocol") else None)


@router.post("/patients/{patient_id}/plan")
async def approve(request: Request, patient_id: uuid.UUID, db: DbDep, me: PageUserDep) -> Response:
    """Approve the plan as previewed: the course is written (status planned)."""
    form = await read_form(request, me.secret)
    r = FormReader(form, me.tz)
    values = _inputs(r)
    try:
        r.done()
        course = create_course(
            db, me.user.actor(), patient_id=patient_id, overrides=overrides_in(form), **values
        )
    except AccessDeniedError as refused:
        errors = refused_on_page(refused, me.user.actor(), Action.PLAN)
        return _page(request, db, me, patient_id, form, status=403, errors=errors)
    except KetapainError as err:
        return _page(request, db, me, patient_id, form, status=422, errors=_errors(err))
    return redirect(
        f"/courses/{course.id}", page_user=me, flash=[("ok", "Course approved and planned.")]
    )
