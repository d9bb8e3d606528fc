"""Course services: plan a course, change the plan, status, decisions, boosters, oral.

The course view is :func:`ketapain.clinic.courses.course_view`; the front desk's schedule
is :mod:`ketapain.clinic.schedule`.

Only a physician plans, changes a plan, signs a decision or prescribes (role rules in
:mod:`ketapain.clinic.permissions`). A plan with a hard stop is not written unless a
physician overrides each hard stop with a reason; the overrides are kept.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from ketapain.clinic._service import check_day, user_id
from ketapain.clinic.audit import Actor, unit_of_work
from ketapain.clinic.continuation import continuation
from ketapain.clinic.courses import (
    TRANSITIONS,
    Booster,
    Course,
    CoursePlan,
    CourseStatus,
    CourseStatusEvent,
    Decision,
    OralPrescription,
    course_status,
    current_plan,
    decisions,
)
from ketapain.clinic.db import Database
from ketapain.clinic.patients import Patient
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.records import get_or_raise
from ketapain.clinic.screenings import (
    overrides_of,
    patient_inputs,
    record_overrides,
    screening_patient,
)
from ketapain.errors import ConflictError, HardStopError, InvalidValueError
from ketapain.protocols.dosing_weight import WeightPolicy
from ketapain.protocols.findings import Override, blocking, unused_overrides
from ketapain.protocols.library import get_protocol
from ketapain.protocols.planning import Bag, TargetRequest, build_plan
from ketapain.protocols.planning import CoursePlan as PlannedCourse

__all__ = [
    "book_booster",
    "change_status",
    "create_course",
    "decide",
    "prescribe_oral",
    "preview_course",
    "replan",
]


def _plan(
    session: Session,
    *,
    patient_id: uuid.UUID,
    protocol: str,
    start_date: date,
    bag_mg: float,
    bag_ml: float,
    weight_policy: str,
    weight_cap_kg: float | None,
    target_ng_per_ml: float | None,
    overrides: tuple[Override, ...],
    predict: bool,
) -> PlannedCourse:
    chart = screening_patient(session, patient_id, on=start_date)
    proto = get_protocol(protocol)
    if weight_policy not in set(WeightPolicy):
        raise InvalidValueError("weight_policy", f"one of {', '.join(WeightPolicy)}", weight_policy)
    return build_plan(
        chart,
        proto,
        start_date=start_date,
        bag=Bag(drug_mg=bag_mg, volume_ml=bag_ml),
        policy=WeightPolicy(weight_policy),
        weight_cap_kg=weight_cap_kg,
        overrides=overrides,
        target=None if target_ng_per_ml is None else TargetRequest(conc_ng_per_ml=target_ng_per_ml),
        predict_outcome=predict,
    )


def preview_course(
    session: Session,
    actor: Actor,
    *,
    patient_id: uuid.UUID,
    protocol: str,
    start_date: date,
    bag_mg: float,
    bag_ml: float,
    weight_policy: str = "actual",
    weight_cap_kg: float | None = None,
    target_ng_per_ml: float | None = None,
    overrides: Iterable[tuple[str, str]] = (),
) -> PlannedCourse:
    """The plan :func:`create_course` would write, with its prediction; nothing is written.

    Hard stops are findings here, not errors: the physician sees them before approving.
    """
    require(actor, Action.PLAN, "only a physician plans a course")
    get_or_raise(session, Patient, patient_id, "patient")
    return _plan(
        session,
        patient_id=patient_id,
        protocol=protocol,
        start_date=start_date,
        bag_mg=bag_mg,
        bag_ml=bag_ml,
        weight_policy=weight_policy,
        weight_cap_kg=weight_cap_kg,
        target_ng_per_ml=target_ng_per_ml,
        overrides=overrides_of(actor, overrides),
        predict=True,
    )


def _build(
    session: Session,
    actor: Actor,
    *,
    patient_id: uuid.UUID,
    protocol: str,
    start_date: date,
    bag_mg: float,
    bag_ml: float,
    weight_policy: str,
    weight_cap_kg: float | None,
    target_ng_per_ml: float | None,
    overrides: Iterable[tuple[str, str]],
) -> tuple[dict[str, Any], dict[str, Any], tuple[Any, ...]]:
    ov = overrides_of(actor, overrides)
    plan = _plan(
        session,
        patient_id=patient_id,
        protocol=protocol,
        start_date=start_date,
        bag_mg=bag_mg,
        bag_ml=bag_ml,
        weight_policy=weight_policy,
        weight_cap_kg=weight_cap_kg,
        target_ng_per_ml=target_ng_per_ml,
        overrides=ov,
        predict=False,
    )
    chart = plan.patient
    proto = plan.protocol
    unused = unused_overrides(plan.findings, ov)
    if unused:
        raise InvalidValueError("overrides", "codes of hard stops in this plan", unused)
    stops = blocking(plan.findings)
    if stops:
        codes = ", ".join(f.code for f in stops)
        raise HardStopError(
            "overrides",
            f"the plan has hard stops ({codes}); a physician must override each with a reason",
            tuple(stops),
        )
    inputs = {
        "protocol": proto.name,
        "bag_mg": bag_mg,
        "bag_ml": bag_ml,
        "weight_policy": weight_policy,
        "weight_cap_kg": weight_cap_kg,
        "target_ng_per_ml": target_ng_per_ml,
        "chart": patient_inputs(chart),
    }
    return plan.as_dict(), inputs, ov


def create_course(
    db: Database,
    actor: Actor,
    *,
    patient_id: uuid.UUID,
    protocol: str,
    start_date: date,
    bag_mg: float,
    bag_ml: float,
    weight_policy: str = "actual",
    weight_cap_kg: float | None = None,
    target_ng_per_ml: float | None = None,
    overrides: Iterable[tuple[str, str]] = (),
) -> Course:
    """Plan ``protocol`` for the patient from the chart and open a course (status planned)."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.PLAN, "only a physician plans a course")
        by = user_id(actor)
        plan, inputs, ov = _build(
            session,
            actor,
            patient_id=patient_id,
            protocol=protocol,
            start_date=start_date,
            bag_mg=bag_mg,
            bag_ml=bag_ml,
            weight_policy=weight_policy,
            weight_cap_kg=weight_cap_kg,
            target_ng_per_ml=target_ng_per_ml,
            overrides=overrides,
        )
        course = Course(patient_id=patient_id, protocol=inputs["protocol"], recorded_by_id=by)
        session.add(course)
        session.flush()
        session.add(
            CoursePlan(
                course_id=course.id,
                version=1,
                start_date=start_date,
                plan=plan,
                inputs=inputs,
                recorded_by_id=by,
            )
        )
        session.add(
            CourseStatusEvent(
                course_id=course.id,
                sequence=1,
                status=CourseStatus.PLANNED,
                reason="course planned",
                recorded_by_id=by,
            )
        )
        record_overrides(
            session,
            actor,
            patient_id=patient_id,
            overrides=ov,
            context="plan",
            context_id=course.id,
        )
    return course


def replan(
    db: Database,
    actor: Actor,
    course_id: uuid.UUID,
    *,
    reason: str,
    start_date: date | None = None,
    bag_mg: float | None = None,
    bag_ml: float | None = None,
    weight_policy: str | None = None,
    weight_cap_kg: float | None = None,
    target_ng_per_ml: float | None = None,
    overrides: Iterable[tuple[str, str]] = (),
) -> CoursePlan:
    """Change a course's plan: a new version from the chart as it stands, with a reason."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.PLAN, "only a physician changes a plan")
        course = get_or_raise(session, Course, course_id, "course")
        status, _ = course_status(session, course_id)
        if status not in (CourseStatus.PLANNED, CourseStatus.IN_PROGRESS):
            raise ConflictError("status", f"a {status} course cannot be replanned")
        old = current_plan(session, course_id)
        given = old.inputs
        plan, inputs, ov = _build(
            session,
            actor,
            patient_id=course.patient_id,
            protocol=course.protocol,
            start_date=start_date or old.start_date,
            bag_mg=bag_mg if bag_mg is not None else given["bag_mg"],
            bag_ml=bag_ml if bag_ml is not None else given["bag_ml"],
            weight_policy=weight_policy or given["weight_policy"],
            weight_cap_kg=weight_cap_kg if weight_cap_kg is not None else given["weight_cap_kg"],
            target_ng_per_ml=target_ng_per_ml
            if target_ng_per_ml is not None
            else given["target_ng_per_ml"],
            overrides=overrides,
        )
        row = CoursePlan(
            course_id=course_id,
            version=old.version + 1,
            start_date=start_date or old.start_date,
            plan=plan,
            inputs=inputs,
            reason=reason,
            recorded_by_id=user_id(actor),
        )
        session.add(row)
        record_overrides(
            session,
            actor,
            patient_id=course.patient_id,
            overrides=ov,
            context="plan",
            context_id=course_id,
        )
    return row


def _set_status(
    session: Session, actor: Actor, course_id: uuid.UUID, status: CourseStatus, reason: str
) -> None:
    now, seq = course_status(session, course_id)
    if status not in TRANSITIONS[now]:
        nxt = ", ".join(TRANSITIONS[now]) or "none (the course is closed)"
        raise ConflictError("status", f"a {now} course cannot become {status}; allowed: {nxt}")
    session.add(
        CourseStatusEvent(
            course_id=course_id,
            sequence=seq + 1,
            status=status,
            reason=reason,
            recorded_by_id=user_id(actor),
        )
    )


def change_status(
    db: Database, actor: Actor, course_id: uuid.UUID, *, status: str, reason: str
) -> None:
    """Move the course to ``status`` (planned -> in progress -> completed / stopped early,
    planned -> cancelled), with a reason."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.CHANGE_COURSE, "only a physician changes a course's status")
        get_or_raise(session, Course, course_id, "course")
        if status not in set(CourseStatus):
            raise InvalidValueError("status", f"one of {', '.join(CourseStatus)}", status)
        if not reason or not reason.strip():
            raise InvalidValueError("reason", "why the status changes", reason)
        _set_status(session, actor, course_id, CourseStatus(status), reason.strip())


def start_if_planned(session: Session, actor: Actor, course_id: uuid.UUID) -> None:
    """The first infusion puts a planned course in progress."""
    status, _ = course_status(session, course_id)
    if status is CourseStatus.PLANNED:
        _set_status(session, actor, course_id, CourseStatus.IN_PROGRESS, "first infusion started")
    elif status is not CourseStatus.IN_PROGRESS:
        raise ConflictError("course", f"the course is {status}; no infusion can start")


def decide(
    db: Database,
    actor: Actor,
    course_id: uuid.UUID,
    *,
    after_session: int,
    decision: str,
    reason: str,
) -> Decision:
    """Sign a decision after a session, keeping ketapain's recommendation and its inputs
    with it; a stop ends the course early."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.DECIDE, "only a physician signs a decision")
        get_or_raise(session, Course, course_id, "course")
        planned = len(current_plan(session, course_id).plan["sessions"])
        if isinstance(after_session, bool) or not 1 <= after_session <= planned:
            raise InvalidValueError(
                "after_session", f"a session of the plan, 1 to {planned}", after_session
            )
        if any(d.after_session == after_session for d in decisions(session, course_id)):
            raise ConflictError(
                "after_session",
                f"a decision after session {after_session} is signed; correct it instead",
            )
        row = Decision(
            course_id=course_id,
            after_session=after_session,
            decision=decision,
            reason=reason,
            recommendation=continuation(session, actor, course_id, after_session=after_session),
            recorded_by_id=user_id(actor),
        )
        session.add(row)
        if decision == "stop":
            status, _ = course_status(session, course_id)
            target = (
                CourseStatus.CANCELLED
                if status is CourseStatus.PLANNED
                else CourseStatus.STOPPED_EARLY
            )
            _set_status(session, actor, course_id, target, f"decision: {reason}")
    return row


def book_booster(
    db: Database, actor: Actor, course_id: uuid.UUID, *, scheduled_date: date, reason: str
) -> Booster:
    """Book a booster infusion for the course."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.PRESCRIBE, "only a physician books a booster")
        check_day("scheduled_date", scheduled_date)
        get_or_raise(session, Course, course_id, "course")
        row = Booster(
            course_id=course_id,
            scheduled_date=scheduled_date,
            reason=reason,
            recorded_by_id=user_id(actor),
        )
        session.add(row)
    return row


def prescribe_oral(
    db: Database,
    actor: Actor,
    course_id: uuid.UUID,
    *,
    dose_mg: float,
    doses_per_day: int,
    start_date: date,
    end_date: date,
    instructions: str | None = None,
) -> OralPrescription:
    """Prescribe oral ketamine after the infusions."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.PRESCRIBE, "only a physician prescribes")
        get_or_raise(session, Course, course_id, "course")
        row = OralPrescription(
            course_id=course_id,
            dose_mg=dose_mg,
            doses_per_day=doses_per_day,
            start_date=start_date,
            end_date=end_date,
            instructions=instructions,
            recorded_by_id=user_id(actor),
        )
        session.add(row)
    return row
