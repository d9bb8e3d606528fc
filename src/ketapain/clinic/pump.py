"""The pump: hang a bag, chart pump events (start, rate change, pause, resume, stop).

The pump starts only once the pre-infusion checklist is complete
(:mod:`ketapain.clinic.checklist`) and no safety hold stands
(:func:`ketapain.clinic.course_safety.check_start`). A nurse changes rates within the
plan: up to the highest rate of the session's pump program or the phase's titration
ceiling. Above that only a physician may set a rate; above a hard limit of the drug
library or protocol, only a physician with an override and a reason. An event decided on
an older state of the pump (``expected_version``) is refused, naming what was charted
since.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ketapain.clinic._service import user_id
from ketapain.clinic.accounts import User
from ketapain.clinic.audit import Actor, unit_of_work
from ketapain.clinic.checklist import checklist_status
from ketapain.clinic.course_safety import check_start
from ketapain.clinic.courses import Course, current_plan
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.infusions import (
    EventKind,
    Infusion,
    InfusionEvent,
    next_state,
    pump_state,
)
from ketapain.clinic.permissions import Action, allowed, require
from ketapain.clinic.records import get_or_raise
from ketapain.clinic.screenings import overrides_of, record_overrides
from ketapain.clinic.treatment import start_if_planned
from ketapain.errors import AccessDeniedError, ConflictError, HardStopError, InvalidValueError
from ketapain.protocols.findings import Finding, apply_overrides, blocking, unused_overrides
from ketapain.protocols.guardrails import check_rate, load_drug_library
from ketapain.protocols.library import get_protocol
from ketapain.units import mg_per_kg_h_to_mg_per_h

__all__ = ["events_of", "hang_infusion", "plan_max_rate", "pump_event"]

# Charting devices' clocks differ by seconds; a time further ahead is a typing error.
_CLOCK_SKEW: Final = timedelta(minutes=1)


def plan_max_rate(plan: dict[str, Any], number: int, dosing_kg: float) -> float:
    """The highest rate a nurse may set in session ``number``: the session's highest pump
    step or its phase's titration ceiling (mg/kg/h of the dosing weight), mg/h."""
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
            plan_max_rate_mg_per_h=plan_max_rate(plan.plan, session_number, dosing_kg),
            recorded_by_id=user_id(actor),
        )
        session.add(row)
    return row


# Read on every pump event and every view of the chair: built once.
_EVENTS: Final = (
    select(InfusionEvent)
    .where(InfusionEvent.infusion_id == bindparam("infusion_id"))
    .order_by(InfusionEvent.sequence)
)


def events_of(session: Session, infusion_id: uuid.UUID) -> list[InfusionEvent]:
    """The infusion's pump events in order."""
    return list(session.scalars(_EVENTS, {"infusion_id": infusion_id}))


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
    newer = events[expected_version:]
    who = {ev.recorded_by_id for ev in newer}
    names = dict(session.execute(select(User.id, User.username).where(User.id.in_(who))).all())
    since = "; ".join(
        f"{str(ev.kind).replace('_', ' ')}"
        + ("" if ev.rate_mg_per_h is None else f" to {ev.rate_mg_per_h:g} mg/h")
        + f" by {names.get(ev.recorded_by_id, 'another user')} at {ev.time_utc:%H:%M} UTC"
        for ev in newer
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
        events = events_of(session, infusion_id)
        _check_version(session, events, expected_version)
        next_state(pump_state(ev.kind for ev in events), EventKind(kind))
        t = time_utc or utc_now()
        _check_time(t, events[-1].time_utc if events else None)
        if kind == EventKind.START:
            check_start(session, infusion, time_utc=t)
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
