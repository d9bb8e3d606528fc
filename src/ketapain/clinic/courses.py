"""Courses: the protocol and plan chosen, status, decisions, boosters, oral follow-on.

A course's plan is versioned: changing it appends a new version with a reason (a
physician only). Status is a sequence of events: planned, in progress, then completed,
cancelled or stopped early. A decision to stop after the test infusions stops the
course early.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Collection
from datetime import date
from enum import StrEnum
from typing import Any, ClassVar, Final

from sqlalchemy import (
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from ketapain.clinic._service import check_range
from ketapain.clinic.audit import Actor
from ketapain.clinic.db import READ_ONLY, column_rows
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.records import Correctable, Record, current, get_or_raise
from ketapain.errors import InvalidValueError

__all__ = [
    "TERMINAL",
    "TRANSITIONS",
    "Booster",
    "Course",
    "CoursePlan",
    "CourseStatus",
    "CourseStatusEvent",
    "Decision",
    "OralPrescription",
    "active_courses",
    "course_status",
    "course_view",
    "current_discharge_rules",
    "current_plan",
    "current_plans",
]


class CourseStatus(StrEnum):
    """Where a course stands."""

    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    STOPPED_EARLY = "stopped_early"


TRANSITIONS: Final = {
    CourseStatus.PLANNED: (CourseStatus.IN_PROGRESS, CourseStatus.CANCELLED),
    CourseStatus.IN_PROGRESS: (CourseStatus.COMPLETED, CourseStatus.STOPPED_EARLY),
    CourseStatus.COMPLETED: (),
    CourseStatus.CANCELLED: (),
    CourseStatus.STOPPED_EARLY: (),
}
TERMINAL: Final = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


class Course(Record):
    """A course of treatment of one patient with one protocol."""

    __tablename__ = "courses"

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    protocol: Mapped[str] = mapped_column(String(200))


class CoursePlan(Record):
    """One version of a course's plan (the ``ketapain plan`` JSON) and what it was built from."""

    __tablename__ = "course_plans"
    __table_args__ = (UniqueConstraint("course_id", "version"),)

    course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courses.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    start_date: Mapped[date]
    plan: Mapped[dict[str, Any]]
    inputs: Mapped[dict[str, Any]]
    reason: Mapped[str | None] = mapped_column(Text, default=None)

    def check(self) -> None:
        if self.version > 1 and not (self.reason or "").strip():
            raise InvalidValueError("reason", "why the plan changes", self.reason)


class CourseStatusEvent(Record):
    """A change of a course's status, with the reason."""

    __tablename__ = "course_status_events"
    # The sequence orders events and makes two concurrent changes collide, not interleave.
    __table_args__ = (UniqueConstraint("course_id", "sequence"),)

    course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courses.id"), index=True)
    sequence: Mapped[int]
    status: Mapped[CourseStatus] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text, default=None)

    def check(self) -> None:
        if self.status not in set(CourseStatus):
            raise InvalidValueError("status", f"one of {', '.join(CourseStatus)}", self.status)


class DecisionKind(StrEnum):
    """What a decision point decides."""

    CONTINUE = "continue"
    STOP = "stop"


class Decision(Correctable):
    """A physician's signed decision after a session: continue or stop, with the reason.

    ``recommendation`` keeps what ketapain recommended when the decision was signed and
    the figures it was computed from (:mod:`ketapain.clinic.continuation`).
    """

    __tablename__ = "decisions"
    __copy_on_correct__: ClassVar = (
        "course_id",
        "after_session",
        "decision",
        "reason",
        "recommendation",
    )

    course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courses.id"), index=True)
    after_session: Mapped[int]
    decision: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text)
    recommendation: Mapped[dict[str, Any] | None] = mapped_column(default=None)

    def check(self) -> None:
        if self.decision not in set(DecisionKind):
            raise InvalidValueError("decision", '"continue" or "stop"', self.decision)
        if not (self.reason or "").strip():
            raise InvalidValueError("reason", "why (a non-empty text)", self.reason)
        check_range("after_session", self.after_session, 1, 1000)

    def as_dict(self) -> dict[str, Any]:
        """Decision, session, reason, who signed and when."""
        return {
            "id": str(self.id),
            "after_session": self.after_session,
            "decision": self.decision,
            "reason": self.reason,
            "recommendation": self.recommendation,
            "signed_by": str(self.recorded_by_id),
            "signed_utc": self.recorded_utc.isoformat(),
        }


class Booster(Correctable):
    """A booster infusion booked for a date, with the reason (a relapse, a schedule)."""

    __tablename__ = "boosters"
    __copy_on_correct__: ClassVar = ("course_id", "scheduled_date", "reason")

    course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courses.id"), index=True)
    scheduled_date: Mapped[date]
    reason: Mapped[str] = mapped_column(Text)

    def check(self) -> None:
        if not (self.reason or "").strip():
            raise InvalidValueError("reason", "why the booster is booked", self.reason)

    def as_dict(self) -> dict[str, Any]:
        """Date and reason."""
        return {
            "id": str(self.id),
            "scheduled_date": self.scheduled_date.isoformat(),
            "reason": self.reason,
        }


class OralPrescription(Correctable):
    """An oral ketamine prescription following the infusions."""

    __tablename__ = "oral_prescriptions"
    __copy_on_correct__: ClassVar = (
        "course_id",
        "dose_mg",
        "doses_per_day",
        "start_date",
        "end_date",
        "instructions",
    )

    course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courses.id"), index=True)
    dose_mg: Mapped[float]
    doses_per_day: Mapped[int]
    start_date: Mapped[date]
    end_date: Mapped[date]
    instructions: Mapped[str | None] = mapped_column(Text, default=None)

    def check(self) -> None:
        # The oral engine's unit-slip bound is 7 mg/kg (Andrade 2019); per dose here,
        # 500 mg catches mg typed for ug without a weight. Clinical limits: guardrails.
        check_range("dose_mg", self.dose_mg, 0.1, 500.0)
        # Oral follow-on is taken 3-4 times a day (clinical reference section 2, [S36]);
        # 6 bounds typing errors, not the prescription.
        check_range("doses_per_day", self.doses_per_day, 1, 6)
        if self.end_date < self.start_date:
            raise InvalidValueError("end_date", f"on or after {self.start_date}", self.end_date)

    def as_dict(self) -> dict[str, Any]:
        """Dose, frequency and dates."""
        return {
            "id": str(self.id),
            "dose_mg": self.dose_mg,
            "doses_per_day": self.doses_per_day,
            "daily_mg": self.dose_mg * self.doses_per_day,
            "start_date": self.start_date.isoformat(),
            "end_date": self.end_date.isoformat(),
            "instructions": self.instructions,
        }


# session.info key of the plans a read session has read (current_plans).
_PLANS_READ: Final = "ketapain_plans_read"

# Read on every view of a chair: built once.
_CURRENT_PLAN: Final = (
    select(CoursePlan)
    .where(CoursePlan.course_id == bindparam("course_id"))
    .order_by(CoursePlan.version.desc())
    .limit(1)
)


def current_plan(session: Session, course_id: uuid.UUID) -> CoursePlan:
    """The latest version of the course's plan."""
    plan = session.scalars(_CURRENT_PLAN, {"course_id": course_id}).first()
    if plan is None:  # a course is always created with its plan
        raise InvalidValueError("course", "a course with a plan", str(course_id))
    return plan


# The current plan's discharge rules alone: the chair's views read them on every poll,
# and the whole plan (about 10 kB of JSON) is not needed for them.
_CURRENT_DISCHARGE_RULES: Final = _CURRENT_PLAN.with_only_columns(CoursePlan.plan["discharge"])


def current_discharge_rules(session: Session, course_id: uuid.UUID) -> dict[str, Any] | None:
    """``current_plan(...).plan.get("discharge")``, read without the rest of the plan."""
    row = column_rows(session, _CURRENT_DISCHARGE_RULES, {"course_id": course_id}).first()
    if row is None:  # a course is always created with its plan
        raise InvalidValueError("course", "a course with a plan", str(course_id))
    rules: dict[str, Any] | None = row[0]
    return rules


def current_plans(
    session: Session, course_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """The latest plan (the ``ketapain plan`` JSON) of each course in ``course_ids``, for
    lists.

    A read session keeps the plans it has read for the rest of its transaction (a page
    that shows the day's chairs and the questionnaires due reads them once). The plans
    are shared: read them, never change them.
    """
    if session.info.get(READ_ONLY):
        tx = session.get_transaction()
        kept = session.info.get(_PLANS_READ)
        if kept is None or kept[0] is not tx:
            kept = session.info[_PLANS_READ] = (tx, {})
        memo: dict[uuid.UUID, dict[str, Any]] = kept[1]
        missing = [i for i in course_ids if i not in memo]
        if missing:
            memo |= _read_plans(session, missing)
        return {i: memo[i] for i in course_ids if i in memo}
    return _read_plans(session, course_ids)


class _PlanRows:
    """The plans decoded, by the id of their row, for the life of the process (the least
    recently used dropped past ``size``). A plan row is a record, never edited: a change
    of plan is a new row, so what a row holds never goes stale."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._rows: OrderedDict[uuid.UUID, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, row_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
        with self._lock:
            found = {i: self._rows[i] for i in row_ids if i in self._rows}
            for i in found:
                self._rows.move_to_end(i)
        return found

    def put(self, rows: dict[uuid.UUID, dict[str, Any]]) -> None:
        with self._lock:
            self._rows.update(rows)
            while len(self._rows) > self._size:
                self._rows.popitem(last=False)


# A plan is about 4 kB of JSON, 17 kB decoded (tracemalloc, a bench/clinic_load.py plan):
# 2,000 plans, some 35 MB per server process at most, hold every active course of a
# large clinic.
PLAN_ROWS_KEPT: Final = 2_000
_PLAN_ROWS: Final = _PlanRows(PLAN_ROWS_KEPT)


def _read_plans(
    session: Session, course_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    if not course_ids:
        return {}
    latest = (
        select(CoursePlan.course_id, func.max(CoursePlan.version).label("version"))
        .where(CoursePlan.course_id.in_(course_ids))
        .group_by(CoursePlan.course_id)
        .subquery()
    )
    rows = column_rows(
        session,
        select(CoursePlan.id, CoursePlan.course_id).join(
            latest,
            and_(
                CoursePlan.course_id == latest.c.course_id,
                CoursePlan.version == latest.c.version,
            ),
        ),
    ).all()
    plans = _PLAN_ROWS.get([row_id for row_id, _ in rows])
    missing = [row_id for row_id, _ in rows if row_id not in plans]
    if missing:
        found = column_rows(
            session, select(CoursePlan.id, CoursePlan.plan).where(CoursePlan.id.in_(missing))
        )
        read: dict[uuid.UUID, dict[str, Any]] = dict(found.all())
        _PLAN_ROWS.put(read)
        plans |= read
    return {course_id: plans[row_id] for row_id, course_id in rows}


def course_status(session: Session, course_id: uuid.UUID) -> tuple[CourseStatus, int]:
    """The course's current status (its latest status event) and that event's sequence."""
    row = session.execute(
        select(CourseStatusEvent.status, CourseStatusEvent.sequence)
        .where(CourseStatusEvent.course_id == course_id)
        .order_by(CourseStatusEvent.sequence.desc())
        .limit(1)
    ).first()
    if row is None:
        return CourseStatus.PLANNED, 0
    return CourseStatus(row[0]), int(row[1])


def active_courses(session: Session) -> list[Course]:
    """Courses planned or in progress, oldest first."""
    # One statement: each course with its latest status event (none: planned).
    latest = (
        select(CourseStatusEvent.course_id, func.max(CourseStatusEvent.sequence).label("sequence"))
        .group_by(CourseStatusEvent.course_id)
        .subquery()
    )
    now = (
        select(CourseStatusEvent.course_id, CourseStatusEvent.status)
        .join(
            latest,
            and_(
                CourseStatusEvent.course_id == latest.c.course_id,
                CourseStatusEvent.sequence == latest.c.sequence,
            ),
        )
        .subquery()
    )
    active = (CourseStatus.PLANNED, CourseStatus.IN_PROGRESS)
    return list(
        session.scalars(
            select(Course)
            .outerjoin(now, now.c.course_id == Course.id)
            .where(or_(now.c.status.is_(None), now.c.status.in_(active)))
            .order_by(Course.recorded_utc)
        )
    )


def decisions(session: Session, course_id: uuid.UUID) -> list[Decision]:
    """The course's current decisions, by session."""
    return list(
        session.scalars(
            current(Decision)
            .where(Decision.course_id == course_id)
            .order_by(Decision.after_session)
        )
    )


def course_view(session: Session, actor: Actor, course_id: uuid.UUID) -> dict[str, Any]:
    """The course: plan in force, status history, decisions, boosters, prescriptions."""
    require(actor, Action.READ_CLINICAL)
    course = get_or_raise(session, Course, course_id, "course")
    plan = current_plan(session, course_id)
    status, _ = course_status(session, course_id)
    events = session.scalars(
        select(CourseStatusEvent)
        .where(CourseStatusEvent.course_id == course_id)
        .order_by(CourseStatusEvent.sequence)
    ).all()
    return {
        "id": str(course.id),
        "patient_id": str(course.patient_id),
        "protocol": course.protocol,
        "status": str(status),
        "status_history": [
            {"status": str(e.status), "reason": e.reason, "time_utc": e.recorded_utc.isoformat()}
            for e in events
        ],
        "plan_version": plan.version,
        "plan_reason": plan.reason,
        "start_date": plan.start_date.isoformat(),
        "plan": plan.plan,
        "decisions": [d.as_dict() for d in decisions(session, course_id)],
        "boosters": [
            b.as_dict()
            for b in session.scalars(current(Booster).where(Booster.course_id == course_id))
        ],
        "oral_prescriptions": [
            o.as_dict()
            for o in session.scalars(
                current(OralPrescription).where(OralPrescription.course_id == course_id)
            )
        ],
    }
