"""Charting an infusion: the infusion view, observations, alarms, discharge.

The bag and the pump events are charted by :mod:`ketapain.clinic.pump`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from ketapain.clinic._service import check_links, user_id
from ketapain.clinic.alarms import Alarm, AlarmAcknowledgement, Rule, evaluate
from ketapain.clinic.audit import Actor, unit_of_work
from ketapain.clinic.courses import current_discharge_rules, current_plan
from ketapain.clinic.db import Database, column_rows, utc_now
from ketapain.clinic.follow_up import pro_alarms
from ketapain.clinic.infusions import (
    EventKind,
    Infusion,
    InfusionEvent,
    delivery,
)
from ketapain.clinic.observations import (
    DischargeCheck,
    RescueMedication,
    Score,
    SideEffect,
    VitalSigns,
)
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.pump import events_of
from ketapain.clinic.records import current, current_json_of, current_of, get_or_raise
from ketapain.errors import ConflictError, InvalidValueError, RecordNotFoundError
from ketapain.protocols.citations import GOLDBERG_2005

__all__ = [
    "CHARTING_INTERVAL",
    "CHARTING_INTERVAL_SOURCE",
    "acknowledge_alarm",
    "discharge_check",
    "infusion_view",
    "open_alarms",
    "record_score",
    "record_vitals",
]

# Vital signs every 15 minutes during the infusion: NIBP q15 min in Goldberg 2005
# (Pain Physician 8:175), the outpatient CRPS series the seed protocol follows.
CHARTING_INTERVAL: Final = timedelta(minutes=15)
CHARTING_INTERVAL_SOURCE: Final = GOLDBERG_2005

# The statements of every charted value and every chair view, built once (records.current_of).
_LAST_DISCHARGE_CHECK: Final = current_of(DischargeCheck, "infusion_id", "-checked_utc").limit(1)
_BASELINE_SBP: Final = (
    current_of(VitalSigns, "infusion_id", "measured_utc")
    .with_only_columns(VitalSigns.sbp_mmhg)
    .where(VitalSigns.sbp_mmhg.is_not(None))
    .limit(1)
)


def infusion_view(
    session: Session, actor: Actor, infusion_id: uuid.UUID, *, plan: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The infusion: bag, program, events, delivered dose (computed) and observations.

    ``plan`` is the course's current plan when the caller has read it already; else only
    its discharge rules are read.
    """
    require(actor, Action.READ_CLINICAL)
    inf = session.get(Infusion, infusion_id)  # a page that has read it reads it once
    if inf is None:
        raise RecordNotFoundError("infusion", infusion_id)
    if plan is None:
        rules = current_discharge_rules(session, inf.course_id)
    else:
        rules = plan.get("discharge")
    events = events_of(session, infusion_id)
    d = delivery([e.pump_event() for e in events], until=utc_now())

    def rows(model: Any, order: str) -> list[dict[str, Any]]:
        found = column_rows(
            session, current_json_of(model, "infusion_id", order), {"infusion_id": infusion_id}
        )
        return [model.json_of(r) for r in found]

    scores = rows(Score, "measured_utc")
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
        "vitals": rows(VitalSigns, "measured_utc"),
        "scores": scores,
        "side_effects": rows(SideEffect, "observed_utc"),
        "rescue_medications": rows(RescueMedication, "given_utc"),
        "discharge": _discharge_state(session, inf, rules, scores, events),
    }


def _discharge_state(
    session: Session,
    inf: Infusion,
    rules: dict[str, Any] | None,
    scores: list[dict[str, Any]],
    events: list[InfusionEvent],
) -> dict[str, Any]:
    """The latest discharge check and whether the patient may go now, and why not."""
    last = session.scalars(_LAST_DISCHARGE_CHECK, {"infusion_id": inf.id}).first()
    escort = last is not None and last.escort_confirmed
    reasons = _not_ready(rules, escort, scores, events)
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
            baseline = column_rows(session, _BASELINE_SBP, {"infusion_id": infusion_id}).scalar()
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
    """Chart a score; sedation scores are checked against the alarm rules, PHQ-9 and
    GAD-7 against the follow-up alerts (:func:`ketapain.clinic.follow_up.pro_alarms`)."""
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
        raised = pro_alarms(row, recorded_by_id=user_id(actor))
        session.add_all(raised)
        alarms += raised
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
        scores = session.scalars(
            current(Score)
            .where(Score.infusion_id == infusion_id, Score.instrument.in_(("aldrete", "padss")))
            .order_by(Score.measured_utc)
        ).all()
        reasons = _not_ready(
            plan.get("discharge"),
            escort_confirmed,
            [s.as_dict() for s in scores],
            events_of(session, infusion_id),
        )
        return {"id": str(row.id), "ready": not reasons, "reasons": reasons}


def _not_ready(
    discharge: dict[str, Any] | None,
    escort: bool,
    scores: Sequence[dict[str, Any]],
    events: Sequence[InfusionEvent],
) -> list[str]:
    """Why the patient may not go home yet (none: ready), from the infusion's current
    scores (their JSON) and its pump events, both in time order; ``discharge`` is the
    plan's discharge rules."""
    reasons: list[str] = []
    for name in ("aldrete", "padss"):
        score = next((s for s in reversed(scores) if s["instrument"] == name), None)
        label = "Modified Aldrete" if name == "aldrete" else "PADSS"
        if score is None:
            reasons.append(f"No {label} score charted after the infusion.")
        elif not score["passes"]:
            reasons.append(f"{label} {score['value']:g} is below 9 (Aldrete 1995; Chung 1995).")
    if discharge and discharge["escort_home"] and not escort:
        reasons.append("No responsible adult escort confirmed (protocol discharge rules).")
    stop = next((e for e in events if e.kind == EventKind.STOP), None)
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
