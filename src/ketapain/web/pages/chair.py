"""The infusion chair view: safety holds and the urinary screen, checklist, start,
charting every 15 minutes, rate changes with guardrails, alarms, side effects and rescue
medication, stop, discharge."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ketapain.clinic._service import add_row
from ketapain.clinic.alarms import Rule
from ketapain.clinic.audit import Actor, reading
from ketapain.clinic.charting import (
    CHARTING_INTERVAL,
    CHARTING_INTERVAL_SOURCE,
    acknowledge_alarm,
    discharge_check,
    infusion_view,
    open_alarms,
    record_score,
    record_vitals,
)
from ketapain.clinic.checklist import (
    CONFIRMATIONS,
    FASTING_SOURCE,
    checklist_status,
    record_checklist,
)
from ketapain.clinic.course_safety import holds, review_hold, urinary_screen_status
from ketapain.clinic.courses import current_plan
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.infusions import Infusion
from ketapain.clinic.instruments import INSTRUMENTS
from ketapain.clinic.observations import RESCUE_DRUGS, RescueMedication, Severity, SideEffect
from ketapain.clinic.permissions import Action
from ketapain.clinic.pump import pump_event
from ketapain.clinic.records import get_or_raise
from ketapain.clinic.registry import patient_summary
from ketapain.errors import (
    AccessDeniedError,
    ConflictError,
    HardStopError,
    InvalidValueError,
    KetapainError,
)
from ketapain.web.deps import DbDep, RulesDep
from ketapain.web.pages._charts import infusion_chart
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

__all__ = ["router"]

router = APIRouter()

_VITALS: Final = ("sbp_mmhg", "dbp_mmhg", "hr_per_min", "rr_per_min", "spo2_pct", "temp_c")


def _due(view: dict[str, Any]) -> dict[str, Any]:
    """When the next vital signs are due: every 15 min while the pump is on or paused."""
    if view["state"] not in ("running", "paused"):
        return {"due_utc": None, "overdue": False}
    times = [datetime.fromisoformat(v["measured_utc"]) for v in view["vitals"]]
    start = next(datetime.fromisoformat(e["time_utc"]) for e in view["events"])
    due = max([start, *times]) + CHARTING_INTERVAL
    return {"due_utc": due.isoformat(), "overdue": utc_now() >= due}


def _live(view: dict[str, Any], me: PageUser) -> dict[str, Any]:
    """What the live block shows: the infusion, the next vitals due and the chart."""
    return {
        "i": view,
        "due": _due(view),
        "chart": infusion_chart(view, utc_now(), me.tz),
        "interval_min": int(CHARTING_INTERVAL.total_seconds() // 60),
        "interval_source": CHARTING_INTERVAL_SOURCE.cite(),
    }


def _context(db: Database, me: PageUser, infusion_id: uuid.UUID) -> dict[str, Any]:
    actor = me.user.actor()
    with reading(db, actor) as session:
        inf = get_or_raise(session, Infusion, infusion_id, "infusion")
        plan = current_plan(session, inf.course_id).plan
        view = infusion_view(session, actor, infusion_id, plan=plan)
        ready = checklist_status(session, inf, plan=plan, view=view).as_dict()
        record = patient_summary(session, actor, inf.patient_id)
        alarms = [
            a
            for a in open_alarms(session, actor, patient_id=inf.patient_id)
            if a["infusion_id"] == str(infusion_id)
        ]
        on_hold = [h.as_dict() for h in holds(session, inf.patient_id)]
        urinary = urinary_screen_status(session, inf.patient_id, at=utc_now()).as_dict()
    return {
        **_live(view, me),
        "p": record,
        "plan_session": plan["sessions"][view["session_number"] - 1],
        "discharge_rules": plan.get("discharge"),
        "ready": ready,
        "alarms": alarms,
        "holds": on_hold,
        "urinary": urinary,
        "yes_no": [("", "choose"), ("0", "no"), ("1", "yes")],
        "confirmations": CONFIRMATIONS,
        "fasting_source": FASTING_SOURCE.cite(),
        "instruments": INSTRUMENTS,
        "score_options": [
            (k, f"{v.title} ({v.low:g} to {v.high:g})")
            for k, v in INSTRUMENTS.items()
            if not v.items
        ],
        "item_options": {
            k: [("", "choose"), *((str(n), str(n)) for n in range(v.item_max + 1))]
            for k, v in INSTRUMENTS.items()
            if v.items
        },
        "rescue_drugs": [(d, "other (name it)" if d == "other" else d) for d in RESCUE_DRUGS],
        "severities": [(s.value, s.value) for s in Severity],
    }


def _page(
    request: Request, db: DbDep, me: PageUser, infusion_id: uuid.UUID, **extra: Any
) -> Response:
    return render(request, "chair.html", page_user=me, **_context(db, me, infusion_id), **extra)


@router.get("/infusions/{infusion_id}")
def chair(request: Request, infusion_id: uuid.UUID, db: DbDep, me: PageUserDep) -> Response:
    """The chair view of one infusion."""
    return _page(request, db, me, infusion_id)


@router.get("/infusions/{infusion_id}/live")
def live(request: Request, infusion_id: uuid.UUID, db: DbDep, me: PageUserDep) -> Response:
    """The live part of the chair view (chart, pump state, reminder), for polling."""
    actor = me.user.actor()
    with reading(db, actor) as session:
        view = infusion_view(session, actor, infusion_id)
    html = render(request, "_live.html", page_user=me, **_live(view, me))
    return HTMLResponse(html.body, headers={"Cache-Control": "no-store"})


_Handler = Callable[
    [Database, Actor, tuple[Rule, ...], Infusion, FormReader], list[tuple[str, str]]
]


def _checklist(
    db: Database, actor: Actor, _rules: tuple[Rule, ...], inf: Infusion, r: FormReader
) -> list[tuple[str, str]]:
    out = record_checklist(
        db,
        actor,
        inf.id,
        **{name: r.flag(name) for name in CONFIRMATIONS},
        escort_name=r.text("escort_name"),
        premedication_given=r.choices("premedication_given"),
        premedication_note=r.text("premedication_note"),
    )
    if out["complete"]:
        return [("ok", "Checklist complete: the pump may start.")]
    return [("warning", "Checklist saved; still missing: " + " ".join(out["missing"]))]


def _vitals(
    db: Database, actor: Actor, rules: tuple[Rule, ...], inf: Infusion, r: FormReader
) -> list[tuple[str, str]]:
    values = {k: r.number(k) for k in _VITALS}
    when = r.when("measured_at")
    r.done()
    _, alarms = record_vitals(
        db, actor, rules, patient_id=inf.patient_id, infusion_id=inf.id,
        measured_utc=when, on_oxygen=r.flag("on_oxygen"), **values,
    )  # fmt: skip
    return [("error", f"ALARM ({a.level}): {a.message}") for a in alarms] or [
        ("ok", "Vital signs charted.")
    ]


def _score(
    db: Database, actor: Actor, rules: tuple[Rule, ...], inf: Infusion, r: FormReader
) -> list[tuple[str, str]]:
    name = r.text("instrument", required=True, what="the instrument") or ""
    inst = INSTRUMENTS.get(name)
    items = None
    value = None
    if inst is not None and inst.items:
        items = {k: r.whole(k, required=True, what=f"0 to {inst.item_max}") for k in inst.items}
    else:
        value = r.number("value", required=True, what="the score")
    when = r.when("measured_at")
    r.done()
    row, alarms = record_score(
        db, actor, rules, patient_id=inf.patient_id, infusion_id=inf.id, instrument=name,
        value=value, items=items, measured_utc=when,  # type: ignore[arg-type]
    )  # fmt: skip
    msgs = [("error", f"ALARM ({a.level}): {a.message}") for a in alarms]
    return msgs or [("ok", f"{INSTRUMENTS[name].title}: {row.value:g} charted.")]


def _event(
    db: Database, actor: Actor, _rules: tuple[Rule, ...], inf: Infusion, r: FormReader
) -> list[tuple[str, str]]:
    kind = r.text("kind", required=True, what="the pump event") or ""
    rate = r.number("rate")
    unit = r.text("rate_unit") or "mg/h"
    reason = r.text("reason", required=kind == "rate_change", what="why the rate changes")
    when = r.when("time_at")
    version = r.number("expected_version")
    r.done()
    # The rate field keeps the running rate; only a start or a rate change sends it.
    rates = {}
    if rate is not None and kind in ("start", "rate_change"):
        rates = {"rate_mg_per_kg_h" if unit == "mg/kg/h" else "rate_mg_per_h": rate}
    out = pump_event(
        db, actor, inf.id, kind=kind, reason=reason, time_utc=when,
        overrides=tuple(overrides_in(r.form)),
        expected_version=None if version is None else int(version), **rates,
    )  # fmt: skip
    msgs = [
        ("warning", f"{f['reason']} ({f['source'] or 'drug library'})")
        for f in out["findings"]
        if f["severity"] != "info"
    ]
    return [("ok", f"Pump: {kind.replace('_', ' ')} charted."), *msgs]


def _urinary(
    db: Database, actor: Actor, rules: tuple[Rule, ...], inf: Infusion, r: FormReader
) -> list[tuple[str, str]]:
    inst = INSTRUMENTS["urinary_screen"]
    items = {k: r.whole(k, required=True, what="yes or no") for k in inst.items}
    when = r.when("measured_at")
    r.done()
    row, _ = record_score(
        db, actor, rules, patient_id=inf.patient_id, infusion_id=inf.id,
        instrument=inst.name, items=items, measured_utc=when,  # type: ignore[arg-type]
    )  # fmt: skip
    if row.value > 0:
        return [("error", "Urinary screen positive: infusions are held until a physician "
                 "reviews it.")]  # fmt: skip
    return [("ok", "Urinary screen charted: no symptoms.")]


def _held_id(r: FormReader, name: str) -> uuid.UUID | None:
    raw = r.text(name)
    try:
        return None if raw is None else uuid.UUID(raw)
    except ValueError:
        raise InvalidValueError(name, "the id of the held result", raw) from None


def _review(
    db: Database, actor: Actor, _rules: tuple[Rule, ...], inf: Infusion, r: FormReader
) -> list[tuple[str, str]]:
    outcome = r.text("outcome", required=True, what="resume or keep holding")
    reason = r.text("reason", required=True, what="why")
    lab_result_id, score_id = _held_id(r, "lab_result_id"), _held_id(r, "score_id")
    r.done()
    review_hold(
        db, actor, inf.patient_id, outcome=outcome or "", reason=reason or "",
        lab_result_id=lab_result_id, score_id=score_id,
    )  # fmt: skip
    if outcome == "resume":
        return [("ok", "Hold reviewed: infusions may resume.")]
    return [("warning", "Hold reviewed: infusions stay on hold.")]


def _side_effect(
    db: Database, actor: Actor, _rules: tuple[Rule, ...], inf: Infusion, r: FormReader
) -> list[tuple[str, str]]:
    row = SideEffect(
        patient_id=inf.patient_id, infusion_id=inf.id,
        effect=r.text("effect", required=True, what="the side effect"),
        severity=r.text("severity", required=True, what="mild, moderate or severe"),
        note=r.text("note"),
    )  # fmt: skip
    r.done()
    add_row(db, actor, Action.CHART, row)
    return [("ok", "Side effect charted.")]


def _rescue(
    db: Database, actor: Actor, _rules: tuple[Rule, ...], inf: Infusion, r: FormReader
) -> list[tuple[str, str]]:
    row = RescueMedication(
        patient_id=inf.patient_id, infusion_id=inf.id,
        drug=r.text("drug", required=True, what="the drug"), drug_name=r.text("drug_name"),
        dose_mg=r.number("dose_mg", required=True, what="the dose"),
        route=r.text("route") or "iv", reason=r.text("reason", required=True, what="why"),
    )  # fmt: skip
    r.done()
    add_row(db, actor, Action.CHART, row)
    return [("ok", "Rescue medication charted.")]


def _ack(
    db: Database, actor: Actor, _rules: tuple[Rule, ...], inf: Infusion, r: FormReader
) -> list[tuple[str, str]]:
    alarm_id = r.text("alarm_id", required=True, what="the alarm")
    note = r.text("note", required=True, what="what was done")
    r.done()
    acknowledge_alarm(db, actor, uuid.UUID(str(alarm_id)), note=str(note))
    return [("ok", "Alarm acknowledged.")]


def _discharge(
    db: Database, actor: Actor, _rules: tuple[Rule, ...], inf: Infusion, r: FormReader
) -> list[tuple[str, str]]:
    out = discharge_check(
        db, actor, inf.id, escort_confirmed=r.flag("escort_confirmed"),
        escort_name=r.text("escort_name"), note=r.text("note"),
    )  # fmt: skip
    if out["ready"]:
        return [("ok", "Ready for discharge.")]
    return [("warning", "Not ready for discharge: " + " ".join(out["reasons"]))]


_ACTIONS: Final[dict[str, _Handler]] = {
    "urinary-screen": _urinary,
    "safety-review": _review,
    "checklist": _checklist,
    "vitals": _vitals,
    "score": _score,
    "event": _event,
    "side-effect": _side_effect,
    "rescue": _rescue,
    "ack": _ack,
    "discharge": _discharge,
}


@router.post("/infusions/{infusion_id}/{action}")
async def act(
    request: Request,
    infusion_id: uuid.UUID,
    action: str,
    db: DbDep,
    rules: RulesDep,
    me: PageUserDep,
) -> Response:
    """Chart on the infusion; on an error the form comes back with what was typed."""
    form = await read_form(request, me.secret)
    handler = _ACTIONS.get(action)
    if handler is None:
        return render(
            request, "error.html", page_user=me, status=404, title="Not found",
            message=f"no chair action {action!r}",
        )  # fmt: skip
    with reading(db, me.user.actor()) as session:
        inf = get_or_raise(session, Infusion, infusion_id, "infusion")
    reader = FormReader(form, me.tz)
    try:
        flash = handler(db, me.user.actor(), rules, inf, reader)
    except HardStopError as err:
        stops = [f.as_dict() for f in err.findings]  # type: ignore[attr-defined]
        return _page(
            request, db, me, infusion_id, status=409, values=form,
            errors=field_errors(err), hard_stops=stops,
        )  # fmt: skip
    except ConflictError as err:
        return _page(
            request, db, me, infusion_id, status=409, values=form, errors=field_errors(err)
        )
    except AccessDeniedError as refused:
        errors = refused_on_page(refused, me.user.actor(), Action.READ_CLINICAL)
        return _page(request, db, me, infusion_id, status=403, values=form, errors=errors)
    except KetapainError as err:
        return _page(
            request, db, me, infusion_id, status=422, values=form, errors=field_errors(err)
        )
    return redirect(f"/infusions/{infusion_id}#{action}", page_user=me, flash=flash)
