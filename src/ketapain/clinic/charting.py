"""Charting an infusion: hang the bag, pump events, observations, alarms, discharge.

The pump starts only once the pre-infusion checklist is complete
(:mod:`ketapain.clinic.checklist`). A nurse charts and changes rates within the plan:
up to the highest rate of the session's pump program or the phase's titration ceiling.
Above that only a physician may set a rate; above a hard limit of the drug library or
protocol, only a physician with an override and a reason.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from ketapain.clinic._service import check_links, user_id
from ketapain.clinic.accounts import User
from ketapain.clinic.alarms import Alarm, AlarmAcknowledgement, Rule, evaluate
from ketapain.clinic.audit import Actor, unit_of_work
from ketapain.clinic.checklist import checklist_status
from ketapain.clinic.courses import Course, current_plan
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.infusions import (
    EventKind,
    Infusion,
    InfusionEvent,
    delivery,
    next_state,
    pump_state,
)
from ketapain.clinic.observations import (
    DischargeCheck,
    RescueMedication,
    Score,
    SideEffect,
    VitalSigns,
)
from ketapain.clinic.permissions import Action, allowed, require
from ketapain.clinic.records import current, get_or_raise
from ketapain.clinic.screenings import overrides_of, record_overrides
from ketapain.clinic.treatment import start_if_planned
from ketapain.errors import AccessDeniedError, ConflictError, HardStopError, InvalidValueError
from ketapain.protocols.citations import GOLDBERG_2005
from ketapain.protocols.findings import Finding, apply_overrides, blocking, unused_overrides
from ketapain.protocols.guardrails import check_rate, load_drug_library
from ketapain.protocols.library import get_protocol
from ketapain.units import mg_per_kg_h_to_mg_per_h

__all__ = [
    "CHARTING_INTERVAL",
    "CHARTING_INTERVAL_SOURCE",
    "acknowledge_alarm",
    "discharge_check",
    "hang_infusion",
    "infusion_view",
    "open_alarms",
    "pump_event",
    "record_score",
    "record_vitals",
]

# Vital signs every 15 minutes during the infusion: NIBP q15 min in Goldberg 2005
# (Pain Physician 8:175), the outpatient CRPS series the seed protocol follows.
CHARTING_INTERVAL: Final = timedelta(minutes=15)
CHARTING_INTERVAL_SOURCE: Final = GOLDBERG_2005

# Charting devices' clocks differ by seconds; a time further ahead is a typing error.
_CLOCK_SKEW: Final = timedelta(minutes=1)


def _plan_max_rate(plan: dict[str, Any], number: int, dosing_kg: float) -> float:
    session = plan["sessions"][number - 1]
    top = max((st["rate_mg_per_h"] for st in session["steps"]), default=0.0)
    for phase in plan["protocol"]["phases"]:
        t = phase["titration"]
        if phase["name"] == session["phase"] and t is not None:
            ceiling = t["max_rate"] * (dosing_kg if t["unit"] == "mg/kg/h" else 1.0)
            top = max(top, ceiling)
    return float(top)


def hang_infusion(
    db: Database,
    actor: Actor,
    course_id: uuid.UUID,
    *,
    session_number: int,
    bag_mg: float,
    bag_ml: float,
    lot: str,
) -> Infusion:
    """Hang a bag for a planned session; the pump program comes from the plan in force."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.CHART)
        course = get_or_raise(session, Course, course_id, "course")
        plan = current_plan(session, course_id)
        sessions = plan.plan["sessions"]
        if not 1 <= session_number <= len(sessions):
            raise InvalidValueError("session_number", f"1 to {len(sessions)}", session_number)
        start_if_planned(session, actor, course_id)
        dosing_kg = float(plan.plan["dosing_weight"]["dosing_kg"])
        row = Infusion(
            course_id=course_id,
            patient_id=course.patient_id,
            session_number=session_number,
            drug="ketamine",
            bag_mg=bag_mg,
            bag_ml=bag_ml,
            lot=lot,
            dosing_weight_kg=dosing_kg,
            program=sessions[session_number - 1]["steps"],
            plan_version=plan.version,
            plan_max_rate_mg_per_h=_plan_max_rate(plan.plan, session_number, dosing_kg),
            recorded_by_id=user_id(actor),
        )
        session.add(row)
    return row


def _events(session: Session, infusion_id: uuid.UUID) -> list[InfusionEvent]:
    return list(
        session.scalars(
            select(InfusionEvent)
            .where(InfusionEvent.infusion_id == infusion_id)
            .order_by(InfusionEvent.sequence)
        )
    )


def _check_version(
    session: Session, events: list[InfusionEvent], expected_version: int | None
) -> None:
    """Refuse an event decided on an older state of the pump (optimistic concurrency)."""
    if expected_version is None or expected_version == len(events):
        return
    if expected_version < 0 or expected_version > len(events):
        raise InvalidValueError(
            "expected_version", f"a version from 0 to {len(events)}", expected_version
        )
    names = {uid: name for uid, name in session.execute(select(User.id, User.username))}
    since = "; ".join(
        f"{str(ev.kind).replace('_', ' ')}"
        + ("" if ev.rate_mg_per_h is None else f" to {ev.rate_mg_per_h:g} mg/h")
        + f" by {names.get(ev.recorded_by_id, 'another user')} at {ev.time_utc:%H:%M} UTC"
        for ev in events[expected_version:]
    )
    raise ConflictError(
        "expected_version",
        f"the pump changed since you read it (version {expected_version}, now "
        f"{len(events)}): {since}. Check the pump and chart again.",
    )


def _check_time(t: datetime, last: datetime | None) -> None:
    if t.tzinfo is None:
        raise InvalidValueError("time_utc", "a time with its UTC offset", t.isoformat())
    if t > utc_now() + _CLOCK_SKEW:
        raise InvalidValueError("time_utc", "not in the future", t.isoformat())
    if last is not None and t < last:
        raise InvalidValueError(
            "time_utc", f"at or after the last event ({last.isoformat()})", t.isoformat()
        )


def _rate_findings(
    session: Session,
    actor: Actor,
    infusion: Infusion,
    rate_mg_per_h: float,
    overrides: tuple[tuple[str, str], ...],
) -> tuple[list[Finding], tuple[Any, ...]]:
    course = get_or_raise(session, Course, infusion.course_id, "course")
    protocol = get_protocol(course.protocol)
    limits = load_drug_library().limits_for(protocol.setting.value) + protocol.limits
    findings = check_rate(
        limits,
        rate_mg_per_h=rate_mg_per_h,
        dosing_weight_kg=infusion.dosing_weight_kg,
        what="Rate change",
    )
    if rate_mg_per_h > infusion.plan_max_rate_mg_per_h * (1 + 1e-9):
        detail = (
            f"{rate_mg_per_h:g} mg/h is above the plan's maximum of "
            f"{infusion.plan_max_rate_mg_per_h:.1f} mg/h for this session"
        )
        if not allowed(actor, Action.PLAN):
            raise AccessDeniedError(actor.role, Action.CHANGE_RATE.value, detail)
    ov = overrides_of(actor, overrides)
    unused = unused_overrides(findings, ov)
    if unused:
        raise InvalidValueError("overrides", "codes of hard stops of this rate", unused)
    findings = apply_overrides(findings, ov)
    stops = blocking(findings)
    if stops:
        raise HardStopError(
            "rate_mg_per_h",
            " ".join(f.reason for f in stops) + " A physician's override with a reason is needed.",
            tuple(stops),
        )
    return findings, ov


def pump_event(
    db: Database,
    actor: Actor,
    infusion_id: uuid.UUID,
    *,
    kind: str,
    rate_mg_per_h: float | None = None,
    rate_mg_per_kg_h: float | None = None,
    reason: str | None = None,
    time_utc: datetime | None = None,
    overrides: tuple[tuple[str, str], ...] = (),
    expected_version: int | None = None,
) -> dict[str, Any]:
    """Chart a pump event: start, rate change, pause, resume or stop.

    ``expected_version`` is the infusion's ``version`` (its number of pump events) the
    nurse saw; when another event was charted since, the event is refused with a
    :class:`ConflictError` naming it, instead of silently following it.
    """
    with unit_of_work(db, actor) as session:
        require(actor, Action.CHANGE_RATE if kind == EventKind.RATE_CHANGE else Action.CHART)
        if kind not in set(EventKind):
            raise InvalidValueError("kind", f"one of {', '.join(EventKind)}", kind)
        infusion = get_or_raise(session, Infusion, infusion_id, "infusion")
        if rate_mg_per_kg_h is not None:
            if rate_mg_per_h is not None:
                raise InvalidValueError(
                    "rate_mg_per_kg_h", "given alone (not with rate_mg_per_h)", rate_mg_per_kg_h
                )
            # mg/kg/h of the dosing weight the plan used, converted once, here.
            rate_mg_per_h = mg_per_kg_h_to_mg_per_h(
                rate_mg_per_kg_h, weight_kg=infusion.dosing_weight_kg
            )
        events = _events(session, infusion_id)
        _check_version(session, events, expected_version)
        next_state(pump_state(ev.kind for ev in events), EventKind(kind))
        t = time_utc or utc_now()
        _check_time(t, events[-1].time_utc if events else None)
        if kind == EventKind.START:
            ready = checklist_status(session, infusion)
            if not ready.complete:
                raise ConflictError(
                    "checklist",
                    "the pre-infusion checklist is not complete: " + " ".join(ready.missing),
                )
        findings: list[Finding] = []
        if rate_mg_per_h is not None and kind in (EventKind.START, EventKind.RATE_CHANGE):
            findings, ov = _rate_findings(session, actor, infusion, rate_mg_per_h, overrides)
            record_overrides(
                session,
                actor,
                patient_id=infusion.patient_id,
                overrides=ov,
                context="infusion",
                context_id=infusion.id,
            )
        elif overrides:
            raise InvalidValueError("overrides", "only with a start or a rate change", overrides)
        row = InfusionEvent(
            infusion_id=infusion_id,
            sequence=len(events) + 1,
            kind=EventKind(kind),
            time_utc=t,
            rate_mg_per_h=rate_mg_per_h,
            reason=reason,
            recorded_by_id=user_id(actor),
        )
        session.add(row)
        session.flush()
        return {"event": row.as_dict(), "findings": [f.as_dict() for f in findings]}


def infusion_view(session: Session, actor: Actor, infusion_id: uuid.UUID) -> dict[str, Any]:
    """The infusion: bag, program, events, delivered dose (computed) and observations."""
    require(actor, Action.READ_CLINICAL)
    inf = get_or_raise(session, Infusion, infusion_id, "infusion")
    events = _events(session, infusion_id)
    d = delivery([e.pump_event() for e in events], until=utc_now())

    def rows(model: Any, order: Any) -> list[dict[str, Any]]:
        return [
            r.as_dict()
            for r in session.scalars(
                current(model).where(model.infusion_id == infusion_id).order_by(order)
            )
        ]

    return {
        "id": str(inf.id),
        "course_id": str(inf.course_id),
        "patient_id": str(inf.patient_id),
        "session_number": inf.session_number,
        "bag": {
            "drug": inf.drug,
            "drug_mg": inf.bag_mg,
            "volume_ml": inf.bag_ml,
            "lot": inf.lot,
            "conc_mg_per_ml": inf.conc_mg_per_ml,
        },
        "dosing_weight_kg": inf.dosing_weight_kg,
        "program": inf.program,
        "plan_version": inf.plan_version,
        "plan_max_rate_mg_per_h": inf.plan_max_rate_mg_per_h,
        # The number of pump events: send it back as expected_version with the next one.
        "version": len(events),
        "state": str(d.state),
        "rate_mg_per_h": d.rate_mg_per_h,
        "rate_ml_per_h": None if d.rate_mg_per_h is None else d.rate_mg_per_h / inf.conc_mg_per_ml,
        "delivered_mg": d.delivered_mg,
        "delivered_mg_per_kg": d.delivered_mg / inf.dosing_weight_kg,
        "delivered_ml": d.delivered_mg / inf.conc_mg_per_ml,
        "bag_remaining_mg": inf.bag_mg - d.delivered_mg,
        "running_h": d.running_h,
        "events": [e.as_dict() for e in events],
        "vitals": rows(VitalSigns, VitalSigns.measured_utc),
        "scores": rows(Score, Score.measured_utc),
        "side_effects": rows(SideEffect, SideEffect.observed_utc),
        "rescue_medications": rows(RescueMedication, RescueMedication.given_utc),
        "discharge": _discharge_state(session, inf),
    }


def _discharge_state(session: Session, inf: Infusion) -> dict[str, Any]:
    """The latest discharge check and whether the patient may go now, and why not."""
    last = session.scalars(
        current(DischargeCheck)
        .where(DischargeCheck.infusion_id == inf.id)
        .order_by(DischargeCheck.checked_utc.desc())
        .limit(1)
    ).first()
    escort = last is not None and last.escort_confirmed
    reasons = _not_ready(session, inf, current_plan(session, inf.course_id).plan, escort)
    return {
        "checked_utc": None if last is None else last.checked_utc.isoformat(),
        "escort_confirmed": escort,
        "escort_name": None if last is None else last.escort_name,
        "ready": last is not None and not reasons,
        "reasons": reasons,
    }


def _chart_with_alarms(
    session: Session,
    actor: Actor,
    rules: tuple[Rule, ...],
    row: VitalSigns | Score,
    values: dict[str, float | None],
    baselines: dict[str, float | None],
) -> list[Alarm]:
    """Write an observation and the alarms its values raise."""
    check_links(session, row)
    session.add(row)
    session.flush()
    alarms = [
        Alarm(
            patient_id=row.patient_id,
            infusion_id=row.infusion_id,
            vital_signs_id=row.id if isinstance(row, VitalSigns) else None,
            score_id=row.id if isinstance(row, Score) else None,
            signal=rule.signal,
            level=rule.level,
            value=value,
            message=rule.describe(value),
            source=rule.source.cite(),
            recorded_by_id=user_id(actor),
        )
        for rule, value in evaluate(rules, values, baselines)
    ]
    session.add_all(alarms)
    return alarms


def record_vitals(
    db: Database,
    actor: Actor,
    rules: tuple[Rule, ...],
    *,
    patient_id: uuid.UUID,
    infusion_id: uuid.UUID | None = None,
    measured_utc: datetime | None = None,
    **values: Any,
) -> tuple[VitalSigns, list[Alarm]]:
    """Chart vital signs; each value is checked against the alarm rules."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.CHART)
        baseline = None
        if infusion_id is not None:
            baseline = session.scalar(
                current(VitalSigns)
                .with_only_columns(VitalSigns.sbp_mmhg)
                .where(VitalSigns.infusion_id == infusion_id, VitalSigns.sbp_mmhg.is_not(None))
                .order_by(VitalSigns.measured_utc)
                .limit(1)
            )
        row = VitalSigns(
            patient_id=patient_id,
            infusion_id=infusion_id,
            measured_utc=measured_utc or utc_now(),
            recorded_by_id=user_id(actor),
            **values,
        )
        alarms = _chart_with_alarms(
            session, actor, rules, row, dict(values), {"sbp_mmhg": baseline}
        )
    return row, alarms


def record_score(
    db: Database,
    actor: Actor,
    rules: tuple[Rule, ...],
    *,
    patient_id: uuid.UUID,
    instrument: str,
    value: float | None = None,
    items: dict[str, int] | None = None,
    infusion_id: uuid.UUID | None = None,
    measured_utc: datetime | None = None,
) -> tuple[Score, list[Alarm]]:
    """Chart a score; sedation scores are checked against the alarm rules."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.CHART)
        row = Score(
            patient_id=patient_id,
            infusion_id=infusion_id,
            instrument=instrument,
            value=value,
            items=items,
            measured_utc=measured_utc or utc_now(),
            recorded_by_id=user_id(actor),
        )
        alarms = _chart_with_alarms(session, actor, rules, row, {instrument: row.value}, {})
    return row, alarms


def open_alarms(
    session: Session, actor: Actor, *, patient_id: uuid.UUID | None = None
) -> list[dict[str, Any]]:
    """Alarms no one has acknowledged yet: stop alarms first, newest first within a level."""
    require(actor, Action.READ_CLINICAL)
    acked = select(AlarmAcknowledgement.alarm_id)
    query = (
        select(Alarm)
        .where(Alarm.id.not_in(acked))
        .order_by(case((Alarm.level == "stop", 0), else_=1), Alarm.recorded_utc.desc())
    )
    if patient_id is not None:
        query = query.where(Alarm.patient_id == patient_id)
    return [a.as_dict() for a in session.scalars(query)]


def acknowledge_alarm(
    db: Database, actor: Actor, alarm_id: uuid.UUID, *, note: str
) -> dict[str, Any]:
    """Acknowledge an alarm with what was done."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.ACKNOWLEDGE_ALARM)
        alarm = get_or_raise(session, Alarm, alarm_id, "alarm")
        n = session.scalar(
            select(func.count())
            .select_from(AlarmAcknowledgement)
            .where(AlarmAcknowledgement.alarm_id == alarm_id)
        )
        if n:
            raise ConflictError("alarm_id", "the alarm is acknowledged already")
        ack = AlarmAcknowledgement(alarm_id=alarm_id, note=note, recorded_by_id=user_id(actor))
        session.add(ack)
        session.flush()
        return alarm.as_dict([ack])


def discharge_check(
    db: Database,
    actor: Actor,
    infusion_id: uuid.UUID,
    *,
    escort_confirmed: bool,
    escort_name: str | None = None,
    note: str | None = None,
    checked_utc: datetime | None = None,
) -> dict[str, Any]:
    """Record the discharge check and say whether the patient may go home, and why not.

    ``checked_utc`` is when the check was made (default now), for a check charted late.
    """
    with unit_of_work(db, actor) as session:
        require(actor, Action.CHART)
        inf = get_or_raise(session, Infusion, infusion_id, "infusion")
        if checked_utc is not None and checked_utc > utc_now():
            raise InvalidValueError("checked_utc", "a time not in the future", checked_utc)
        row = DischargeCheck(
            patient_id=inf.patient_id,
            infusion_id=infusion_id,
            checked_utc=checked_utc or utc_now(),
            escort_confirmed=escort_confirmed,
            escort_name=escort_name,
            note=note,
            recorded_by_id=user_id(actor),
        )
        session.add(row)
        session.flush()
        plan = current_plan(session, inf.course_id).plan
        reasons = _not_ready(session, inf, plan, escort_confirmed)
        return {"id": str(row.id), "ready": not reasons, "reasons": reasons}


def _not_ready(session: Session, inf: Infusion, plan: dict[str, Any], escort: bool) -> list[str]:
    reasons: list[str] = []
    for name in ("aldrete", "padss"):
        score = session.scalars(
            current(Score)
            .where(Score.infusion_id == inf.id, Score.instrument == name)
            .order_by(Score.measured_utc.desc())
            .limit(1)
        ).first()
        label = "Modified Aldrete" if name == "aldrete" else "PADSS"
        if score is None:
            reasons.append(f"No {label} score charted after the infusion.")
        elif not score.as_dict()["passes"]:
            reasons.append(f"{label} {score.value:g} is below 9 (Aldrete 1995; Chung 1995).")
    discharge = plan.get("discharge")
    if discharge and discharge["escort_home"] and not escort:
        reasons.append("No responsible adult escort confirmed (protocol discharge rules).")
    stop = session.scalars(
        select(InfusionEvent).where(
            InfusionEvent.infusion_id == inf.id, InfusionEvent.kind == EventKind.STOP
        )
    ).first()
    if stop is None:
        reasons.append("The infusion has not been stopped.")
    elif discharge:
        ready_at = stop.time_utc + timedelta(minutes=discharge["observation_min"])
        if utc_now() < ready_at:
            reasons.append(
                f"Observation for {discharge['observation_min']:g} min after the stop runs "
                f"until {ready_at:%H:%M} UTC ({discharge['source'] or 'protocol'})."
            )
    return reasons
