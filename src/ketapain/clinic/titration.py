"""The next session's rate, two ways: the protocol's titration rule and the patient's own
sensitivity.

* **Rule-based** (:func:`ketapain.protocols.titration.next_session_rate`): one protocol
  step up, hold or one step down from the last session's rate, by the relief reached
  against the decision point's target and the tolerability charted in that session
  (sedation, dissociation, blood pressure, stop alarms, severe side effects).
* **Model-based** (:mod:`ketapain.pharmacology.individualisation`): the patient's C50 for
  relief and for side effects, estimated by Bayesian MAP from every NRS and CADSS-6
  charted so far, against the S-ketamine effect-site concentrations the PK model predicts
  for the pump history actually delivered; the rate that reaches the target relief, with
  the predicted relief and side effects and their 90% bands. The estimate updates with
  every score charted.

Both stay within the protocol's and the drug library's hard limits; a suggestion is never
above one. The physician changes the plan (:func:`ketapain.clinic.treatment.replan`) or
the rate at the chair; nothing here writes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ketapain.clinic.alarms import Alarm
from ketapain.clinic.audit import Actor
from ketapain.clinic.courses import Course, current_plan
from ketapain.clinic.db import utc_now
from ketapain.clinic.infusions import EventKind, Infusion, InfusionEvent, PumpState, next_state
from ketapain.clinic.observations import Score, SideEffect, VitalSigns
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.records import current, get_or_raise
from ketapain.clinic.registry import current_demographics
from ketapain.errors import ConflictError, InvalidValueError
from ketapain.pharmacology import Covariates, Output, Schedule, simulate
from ketapain.pharmacology import Infusion as Dose
from ketapain.pharmacology.individualisation import (
    Endpoint,
    SensitivityPrior,
    cadss6_fraction,
    fit_sensitivity,
    relief_fraction,
    suggest_rate,
    unit_rate_concentration,
)
from ketapain.pharmacology.pd import AcuteEffectModel
from ketapain.protocols.guardrails import Quantity, load_drug_library
from ketapain.protocols.library import get_protocol
from ketapain.protocols.schema import Protocol
from ketapain.protocols.titration import next_session_rate

__all__ = ["titration"]

_H: Final = 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class _Given:
    """One infusion given: its rate history and the scores charted with it."""

    infusion: Infusion
    segments: list[tuple[datetime, datetime, float]]  # start, end, mg/h while running
    nrs: list[tuple[datetime, float]]
    cadss6: list[tuple[datetime, float]]


def _segments(
    events: list[InfusionEvent], *, until: datetime
) -> list[tuple[datetime, datetime, float]]:
    """Running intervals at a constant rate (start, end, mg/h), as :func:`delivery` walks
    the pump events."""
    out: list[tuple[datetime, datetime, float]] = []
    state, rate, since = PumpState.NOT_STARTED, 0.0, None
    for ev in events:
        if state is PumpState.RUNNING and since is not None and ev.time_utc > since:
            out.append((since, min(ev.time_utc, until), rate))
        state = next_state(state, EventKind(ev.kind))
        if ev.rate_mg_per_h is not None:
            rate = ev.rate_mg_per_h
        since = ev.time_utc
    if state is PumpState.RUNNING and since is not None and until > since:
        out.append((since, until, rate))
    return out


def _given(session: Session, course_id: uuid.UUID, now: datetime) -> list[_Given]:
    infusions = list(
        session.scalars(
            select(Infusion)
            .where(Infusion.course_id == course_id)
            .order_by(Infusion.session_number, Infusion.recorded_utc)
        )
    )
    latest = {i.session_number: i for i in infusions}  # the last bag hung for a session
    ids = [i.id for i in latest.values()]
    events: dict[uuid.UUID, list[InfusionEvent]] = {i: [] for i in ids}
    for ev in session.scalars(
        select(InfusionEvent)
        .where(InfusionEvent.infusion_id.in_(ids))
        .order_by(InfusionEvent.infusion_id, InfusionEvent.sequence)
    ):
        events[ev.infusion_id].append(ev)
    scores: dict[uuid.UUID, dict[str, list[tuple[datetime, float]]]] = {
        i: {"pain_nrs": [], "cadss6": []} for i in ids
    }
    for sc in session.scalars(
        current(Score)
        .where(Score.infusion_id.in_(ids), Score.instrument.in_(("pain_nrs", "cadss6")))
        .order_by(Score.measured_utc)
    ):
        assert sc.infusion_id is not None
        scores[sc.infusion_id][sc.instrument].append((sc.measured_utc, sc.value))
    return [
        _Given(
            infusion=inf,
            segments=_segments(events[inf.id], until=now),
            nrs=scores[inf.id]["pain_nrs"],
            cadss6=scores[inf.id]["cadss6"],
        )
        for inf in latest.values()
        if events[inf.id]
    ]


def _concentrations(
    protocol: Protocol, given: list[_Given], covariates: Covariates, times: list[datetime]
) -> np.ndarray:
    """S-ketamine effect-site concentration (ng/mL) at ``times`` for the doses given."""
    model = protocol.pk_model()
    t0 = min(seg[0] for g in given for seg in g.segments)
    doses = [
        Dose(
            start_h=(a - t0).total_seconds() / _H,
            duration_h=(b - a).total_seconds() / _H,
            rate_mg_per_h=rate,
        )
        for g in given
        for a, b, rate in g.segments
        if rate > 0 and b > a
    ]
    t = np.array([max((x - t0).total_seconds() / _H, 0.0) for x in times])
    if not doses or t.size == 0:
        return np.zeros_like(t)
    order = np.argsort(t)
    profile = simulate(
        model.parameters(covariates),
        Schedule.of(*doses),
        times_h=t[order],
        outputs=(Output.KETAMINE_EFFECT_SITE,),
    )
    ce = profile.ketamine_effect_site_ng_per_ml
    assert ce is not None  # requested
    out = np.empty_like(t)
    out[order] = model.s_fraction * ce[0]
    return out


def _observations(
    protocol: Protocol, given: list[_Given], covariates: Covariates
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(concentration, fraction) pairs for relief and for side effects."""
    relief_t: list[datetime] = []
    relief_y: list[float] = []
    side_t: list[datetime] = []
    side_y: list[float] = []
    for g in given:
        if not g.segments:
            continue
        start = g.segments[0][0]
        before = [v for t, v in g.nrs if t <= start]
        if before and before[0] > 0:
            for t, v in g.nrs:
                if t > start:
                    relief_t.append(t)
                    relief_y.append(float(relief_fraction(nrs_before=before[-1], nrs_now=v)))
        for t, v in g.cadss6:
            if t > start:
                side_t.append(t)
                side_y.append(float(cadss6_fraction(v)))
    if not any(g.segments for g in given):
        empty = np.zeros(0)
        return {"relief": (empty, empty), "side_effects": (empty, empty)}
    conc = _concentrations(protocol, given, covariates, relief_t + side_t)
    n = len(relief_t)
    return {
        "relief": (conc[:n], np.array(relief_y)),
        "side_effects": (conc[n:], np.array(side_y)),
    }


def _tolerability(session: Session, infusion_id: uuid.UUID) -> dict[str, Any]:
    """What the last session showed: deepest sedation, most dissociation, highest BP."""

    def extreme(instrument: str, agg: Any) -> float | None:
        return session.scalar(
            current(Score)
            .where(Score.infusion_id == infusion_id, Score.instrument == instrument)
            .with_only_columns(agg(Score.value))
        )

    bp = session.execute(
        current(VitalSigns)
        .where(VitalSigns.infusion_id == infusion_id)
        .with_only_columns(func.max(VitalSigns.sbp_mmhg), func.max(VitalSigns.dbp_mmhg))
    ).one()
    stop_alarm = session.scalar(
        select(func.count())
        .select_from(Alarm)
        .where(Alarm.infusion_id == infusion_id, Alarm.level == "stop")
    )
    severe = session.scalar(
        current(SideEffect)
        .where(SideEffect.infusion_id == infusion_id, SideEffect.severity == "severe")
        .with_only_columns(func.count())
    )
    moaas = extreme("moaas", func.min)
    return {
        "min_moaas": None if moaas is None else int(moaas),
        "max_cadss6": extreme("cadss6", func.max),
        "max_sbp_mmhg": bp[0],
        "max_dbp_mmhg": bp[1],
        "stop_alarm": bool(stop_alarm),
        "severe_side_effect": bool(severe),
    }


def _rate_mg_per_kg_h(step: dict[str, Any], dosing_kg: float) -> float:
    per_kg = step.get("rate_mg_per_kg_h")
    return float(per_kg) if per_kg is not None else float(step["rate_mg_per_h"]) / dosing_kg


def _highest_rate(
    protocol: Protocol, phase_max: float | None, dosing_kg: float
) -> tuple[float, str]:
    """The highest rate in mg/kg/h any hard limit allows, and which limit it is."""
    limits = load_drug_library().limits_for(protocol.setting.value) + protocol.limits
    caps: list[tuple[float, str]] = []
    if phase_max is not None:
        caps.append((phase_max, f"the protocol's titration maximum ({phase_max:g} mg/kg/h)"))
    if protocol.max_rate_mg_per_h is not None:
        caps.append(
            (
                protocol.max_rate_mg_per_h / dosing_kg,
                f"the protocol's {protocol.max_rate_mg_per_h:g} mg/h",
            )
        )
    per_kg = limits.highest(Quantity.RATE_MG_PER_KG_H)
    if per_kg is not None:
        caps.append((per_kg, f"the hard maximum of {per_kg:g} mg/kg/h"))
    per_h = limits.highest(Quantity.RATE_MG_PER_H)
    if per_h is not None:
        caps.append((per_h / dosing_kg, f"the hard maximum of {per_h:g} mg/h"))
    if not caps:
        raise InvalidValueError("limits", "a hard maximum rate (protocol or drug library)", None)
    return min(caps)


def _rule(
    session: Session,
    protocol: Protocol,
    plan: dict[str, Any],
    given: list[_Given],
    target: dict[str, Any],
) -> dict[str, Any]:
    """The protocol's titration rule applied to the last session given before ``target``."""
    phase = next(p for p in protocol.phases if p.name == target["phase"])
    planned = max(
        _rate_mg_per_kg_h(st, plan["dosing_weight"]["dosing_kg"]) for st in target["steps"]
    )
    before = [g for g in given if g.infusion.session_number < target["number"]]
    last = before[-1] if before else None
    last_phase = (
        None if last is None else plan["sessions"][last.infusion.session_number - 1]["phase"]
    )
    as_planned = {"action": "as_planned", "rate_mg_per_kg_h": planned}
    if phase.titration is None:
        return {**as_planned, "reasons": [f"The {phase.name} phase has no titration rule."]}
    if last is None or last_phase != phase.name or not last.segments:
        return {**as_planned, "reasons": [f"The first session of the {phase.name} phase."]}
    stop = last.segments[-1][1]
    after = [v for t, v in last.nrs if t >= stop] or [
        v for t, v in last.nrs if t > last.segments[0][0]
    ]
    if not after:
        return {
            **as_planned,
            "action": "chart_first",
            "reasons": [
                f"No NRS charted during or after session {last.infusion.session_number}: "
                "chart it to titrate."
            ],
        }
    baseline = float(plan["baseline_nrs"])
    relief = 1.0 - after[-1] / baseline if baseline > 0 else 0.0
    weight = last.infusion.dosing_weight_kg
    rate_mg_per_h = max(r for _, _, r in last.segments)
    t = phase.titration
    step = next_session_rate(
        last_rate=rate_mg_per_h / weight if t.per_kg else rate_mg_per_h,
        relief_fraction=relief,
        dosing_weight_kg=weight,
        limits=load_drug_library().limits_for(protocol.setting.value) + protocol.limits,
        phase=phase,
        response_target=protocol.response_threshold(),
        protocol_max_rate_mg_per_h=protocol.max_rate_mg_per_h,
        **_tolerability(session, last.infusion.id),
    )
    return {
        "from_session": last.infusion.session_number,
        "relief_fraction": relief,
        **step.as_dict(),
    }


def _model(
    protocol: Protocol,
    plan: dict[str, Any],
    given: list[_Given],
    target: dict[str, Any],
    covariates: Covariates,
    side_effect_ceiling: float | None,
) -> dict[str, Any]:
    obs = _observations(protocol, given, covariates)
    acute = AcuteEffectModel()
    relief = fit_sensitivity(
        *obs["relief"], prior=SensitivityPrior.from_acute(acute, endpoint=Endpoint.RELIEF)
    )
    side = fit_sensitivity(
        *obs["side_effects"],
        prior=SensitivityPrior.from_acute(acute, endpoint=Endpoint.SIDE_EFFECTS),
    )
    dosing_kg = float(plan["dosing_weight"]["dosing_kg"])
    actual_kg = float(covariates.weight_kg[0])
    duration_h = (
        datetime.fromisoformat(target["end"]) - datetime.fromisoformat(target["start"])
    ).total_seconds() / _H
    c_unit = unit_rate_concentration(
        protocol.pk_model(),
        weight_kg=actual_kg,
        sex="female" if covariates.female[0] else "male",
        age_y=float(covariates.age_y[0]),
        duration_h=duration_h,
    ) * (dosing_kg / actual_kg)
    phase = next(p for p in protocol.phases if p.name == target["phase"])
    t = phase.titration
    phase_max = None if t is None else (t.max_rate if t.per_kg else t.max_rate / dosing_kg)
    highest, why = _highest_rate(protocol, phase_max, dosing_kg)
    # CADSS-6 has no published cut-off: without the clinic's ceiling the side effects are
    # predicted and shown, and do not bound the rate (a fraction of 1 is never reached).
    ceiling = 1.0 if side_effect_ceiling is None else side_effect_ceiling
    suggestion = suggest_rate(
        relief=relief,
        side_effects=side,
        c_unit_ng_per_ml_per_mg_per_kg_h=c_unit,
        target_relief=protocol.response_threshold(),
        side_effect_ceiling=ceiling,
        max_rate_mg_per_kg_h=highest,
    )
    return {
        "relief": relief.as_dict(),
        "side_effects": side.as_dict(),
        "suggestion": suggestion.as_dict(),
        "rate_mg_per_h": suggestion.rate_mg_per_kg_h * dosing_kg,
        "highest_rate_mg_per_kg_h": highest,
        "highest_rate_limit": why,
        "side_effect_ceiling": side_effect_ceiling,
        "duration_h": duration_h,
    }


def titration(
    session: Session,
    actor: Actor,
    course_id: uuid.UUID,
    *,
    session_number: int | None = None,
    side_effect_ceiling: float | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The suggested rate of the next session (or ``session_number``): the protocol's rule
    and the model's, each with its reasons, limits and sources."""
    require(actor, Action.READ_CLINICAL)
    course = get_or_raise(session, Course, course_id, "course")
    plan = current_plan(session, course_id).plan
    protocol = get_protocol(course.protocol)
    now = now or utc_now()
    given = _given(session, course_id, now)
    done = max((g.infusion.session_number for g in given), default=0)
    sessions = plan["sessions"]
    if session_number is None:
        upcoming = [s for s in sessions if s["number"] > done]
        if not upcoming:
            raise ConflictError("session_number", "every session of the plan has been given")
        target = upcoming[0]
    elif isinstance(session_number, bool) or not 1 <= session_number <= len(sessions):
        raise InvalidValueError("session_number", f"1 to {len(sessions)}", session_number)
    else:
        target = sessions[session_number - 1]
    demo = current_demographics(session, {course.patient_id})[course.patient_id]
    covariates = Covariates.single(
        weight_kg=float(plan["dosing_weight"]["actual_kg"]),
        sex=str(demo.sex),
        age_y=demo.age_y(now.date()),
    )
    return {
        "course_id": str(course_id),
        "session_number": target["number"],
        "phase": target["phase"],
        "date": target["date"],
        "planned_rate_mg_per_kg_h": max(
            _rate_mg_per_kg_h(st, plan["dosing_weight"]["dosing_kg"]) for st in target["steps"]
        ),
        "dosing_weight_kg": plan["dosing_weight"]["dosing_kg"],
        "rule": _rule(session, protocol, plan, given, target),
        "model": _model(protocol, plan, given, target, covariates, side_effect_ceiling),
    }
