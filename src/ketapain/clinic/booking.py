"""The series calendar as booked: missed and moved sessions on top of the plan's dates,
each booking's chair time, and the clinic's capacity.

A plan puts each session on a date (weekends off where the protocol says so). What
happens at the desk is kept as :class:`SessionChange` rows, appended, never edited: a
session missed, or moved to another day and time. The calendar in force is the plan's
dates with the latest change of each session applied: a moved session keeps its length;
a session given (a bag hung for it) can no longer be missed or moved.

Each booking holds a chair from its start until the end of the infusion plus the
protocol's observation before discharge (the plan's ``discharge.observation_min``; seed
003: "typical recovery time to discharge is approximately two hours"). Boosters (a date
only) sit at the start time and length of the protocol's booster phase. The clinic seats
at most ``min(chairs, nurses_on_duty * patients_per_nurse)`` patients at once (settings of
the clinic, :mod:`ketapain.config`); the day is cut into 15-minute slots from the
opening hour to closing, widened to any booking outside them. Inpatient courses use ward
beds, not the clinic's chairs, and are not counted. A booking into a full slot is refused
unless the desk overbooks knowingly (audited).

The desk's views of this calendar (the schedule, a course's calendar, the day's
capacity, a rebooking suggestion) are in :mod:`ketapain.clinic.schedule`; marking a
session missed and moving one, in :mod:`ketapain.clinic.rebooking`.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Final

from sqlalchemy import ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ketapain.clinic._service import check_range
from ketapain.clinic.courses import (
    Booster,
    Course,
    active_courses,
    current_plans,
)
from ketapain.clinic.infusions import Infusion
from ketapain.clinic.records import Correctable, current
from ketapain.errors import InvalidValueError, KetapainError
from ketapain.protocols.library import get_protocol
from ketapain.protocols.schema import Protocol

__all__ = [
    "SLOT_MIN",
    "Booking",
    "BookingStatus",
    "ChangeKind",
    "SessionChange",
    "bookings_between",
    "course_calendar",
    "protocol_of",
]

# The desk books in quarter hours (a display grain of the clinic, not a clinical number).
SLOT_MIN: Final = 15
_SLOT: Final = timedelta(minutes=SLOT_MIN)
_DAY: Final = timedelta(days=1)


class ChangeKind(StrEnum):
    """What happened to a booked session."""

    MISSED = "missed"
    MOVED = "moved"


class SessionChange(Correctable):
    """A session of a course missed, or moved to ``new_date`` (and ``new_start``)."""

    __tablename__ = "session_changes"
    __copy_on_correct__: ClassVar = (
        "course_id",
        "session_number",
        "kind",
        "new_date",
        "new_start",
        "reason",
    )

    course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courses.id"), index=True)
    session_number: Mapped[int]
    kind: Mapped[ChangeKind] = mapped_column(String(10))
    new_date: Mapped[date | None] = mapped_column(default=None)
    new_start: Mapped[time | None] = mapped_column(default=None)
    reason: Mapped[str] = mapped_column(Text)

    def check(self) -> None:
        if self.kind not in set(ChangeKind):
            raise InvalidValueError("kind", f"one of {', '.join(ChangeKind)}", self.kind)
        check_range("session_number", self.session_number, 1, 1000)
        if self.kind == ChangeKind.MOVED and self.new_date is None:
            raise InvalidValueError("new_date", "the day the session moves to", None)
        if self.kind == ChangeKind.MISSED and (self.new_date or self.new_start):
            raise InvalidValueError("new_date", "none for a missed session", self.new_date)
        if not (self.reason or "").strip():
            raise InvalidValueError("reason", "why (a non-empty text)", self.reason)

    def as_dict(self) -> dict[str, Any]:
        """Session, what happened, the new day and time, the reason."""
        return {
            "id": str(self.id),
            "session_number": self.session_number,
            "kind": str(self.kind),
            "new_date": None if self.new_date is None else self.new_date.isoformat(),
            "new_start": None
            if self.new_start is None
            else self.new_start.isoformat(timespec="minutes"),
            "reason": self.reason,
            "recorded_utc": self.recorded_utc.isoformat(),
        }


class BookingStatus(StrEnum):
    """Where a booking stands in the calendar in force."""

    BOOKED = "booked"
    MOVED = "moved"
    MISSED = "missed"
    GIVEN = "given"


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="minutes")


@dataclass(frozen=True, slots=True, kw_only=True)
class Booking:
    """A session or booster in the calendar in force, with its chair time.

    Times are the clinic's wall clock (naive), as in the plan; ``chair_until`` is the end
    of the infusion plus the observation before discharge.
    """

    course_id: uuid.UUID
    kind: str
    number: int | None
    phase: str
    status: BookingStatus
    planned_start: datetime
    start: datetime
    end: datetime
    observation_min: float
    outpatient: bool = True
    dose_mg: float | None = None
    change: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()

    @property
    def chair_until(self) -> datetime:
        """When the chair is free again: end of the infusion plus the observation."""
        return self.end + timedelta(minutes=self.observation_min)

    @property
    def in_chair(self) -> bool:
        """False for a missed session: it holds no chair."""
        return self.status is not BookingStatus.MISSED

    def at(self, start: datetime) -> Booking:
        """The same booking moved to ``start``, with the same length."""
        return replace(self, start=start, end=start + (self.end - self.start))

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """True if the chair time meets ``[start, end)``."""
        return self.in_chair and self.start < end and self.chair_until > start

    def as_dict(self, *, clinical: bool) -> dict[str, Any]:
        """JSON; the dose only for a clinical reader (the front desk sees none)."""
        out = {
            "kind": self.kind,
            "number": self.number,
            "phase": self.phase,
            "status": str(self.status),
            "date": self.start.date().isoformat(),
            "start": _iso(self.start),
            "end": _iso(self.end),
            "chair_until": _iso(self.chair_until),
            "observation_min": self.observation_min,
            "planned_date": self.planned_start.date().isoformat(),
            "planned_start": _iso(self.planned_start),
            "change": self.change,
            "warnings": list(self.warnings),
        }
        if clinical and self.kind == "session":
            out["dose_mg"] = self.dose_mg
        if not clinical and self.kind == "booster" and self.change is not None:
            out["change"] = {"id": self.change["id"]}  # a booster's reason is clinical
        return out


def protocol_of(course: Course) -> Protocol | None:
    """The course's protocol, or None when its file is no longer at hand."""
    try:
        return get_protocol(course.protocol)
    except (KetapainError, OSError):
        return None


def _booster_slot(proto: Protocol | None, plan: dict[str, Any]) -> tuple[time, timedelta]:
    """Start and length of a booster: the protocol's booster phase, else the plan's last
    session (a protocol without a booster phase)."""
    phases = () if proto is None else proto.boosters()
    if phases:
        sched = phases[0].session
        start_min = round(sched.start_h() * 60)
        return time(start_min // 60 % 24, start_min % 60), timedelta(
            hours=sched.end_h() - sched.start_h()
        )
    last = plan["sessions"][-1]
    start = datetime.fromisoformat(last["start"])
    return start.time(), datetime.fromisoformat(last["end"]) - start


def _warnings(rows: list[Booking], proto: Protocol | None) -> list[Booking]:
    """Flag a session on a weekend of a phase that skips them, and sessions out of order."""
    weekend = None if proto is None else {p.name for p in proto.phases if p.skip_weekends}
    name = "the protocol" if proto is None else proto.name
    out, last = [], None
    for b in rows:
        found = []
        if b.in_chair and weekend and b.phase in weekend and b.start.weekday() >= 5:
            found.append(
                f"Session {b.number} is on a {b.start:%A} ({b.start.date()}): the {b.phase} "
                f"phase of {name} skips weekends."
            )
        if b.in_chair and last is not None and b.start.date() <= last.start.date():
            found.append(
                f"Session {b.number} ({b.start.date()}) comes on or before session "
                f"{last.number} ({last.start.date()}): the sessions are out of order."
            )
        last = b if b.in_chair else last
        out.append(replace(b, warnings=tuple(found)) if found else b)
    return out


def _course_rows(
    course: Course,
    plan: dict[str, Any],
    changes: Mapping[int, SessionChange],
    given: Collection[int],
    boosters: Iterable[Booster],
    *,
    given_only: bool,
) -> list[Booking]:
    """The course's sessions with the latest change of each applied, then its boosters."""
    proto = protocol_of(course)
    discharge = plan.get("discharge") or {}
    base: dict[str, Any] = {
        "course_id": course.id,
        "observation_min": float(discharge.get("observation_min") or 0.0),
        "outpatient": plan["protocol"].get("setting") != "inpatient",
    }
    rows = []
    for s in plan["sessions"]:
        n = s["number"]
        if given_only and n not in given:
            continue
        planned = datetime.fromisoformat(s["start"])
        row = Booking(
            **base,
            kind="session",
            number=n,
            phase=s["phase"],
            status=BookingStatus.GIVEN if n in given else BookingStatus.BOOKED,
            planned_start=planned,
            start=planned,
            end=datetime.fromisoformat(s["end"]),
            dose_mg=s["dose_mg"],
        )
        ch = changes.get(n)
        if ch is not None:
            row = replace(row, change=ch.as_dict())
            if ch.kind == ChangeKind.MOVED and ch.new_date is not None:
                moved = row.at(datetime.combine(ch.new_date, ch.new_start or planned.time()))
                row = replace(moved, status=row.status if n in given else BookingStatus.MOVED)
            elif n not in given:  # a bag hung for it after all: given, not missed
                row = replace(row, status=BookingStatus.MISSED)
        rows.append(row)
    rows = _warnings(rows, proto)
    at, length = _booster_slot(proto, plan)
    for b in sorted(boosters, key=lambda b: b.scheduled_date):
        start = datetime.combine(b.scheduled_date, at)
        rows.append(
            Booking(
                **base,
                kind="booster",
                number=None,
                phase="booster",
                status=BookingStatus.BOOKED,
                planned_start=start,
                start=start,
                end=start + length,
                change={"id": str(b.id), "reason": b.reason},
            )
        )
    return rows


def _build(
    session: Session,
    courses: Iterable[Course],
    boosters: Iterable[Booster],
    *,
    given_only: Collection[uuid.UUID] = (),
    booster_only: Collection[uuid.UUID] = (),
) -> list[Booking]:
    """The calendar in force of ``courses`` in three statements (plans, changes, bags)."""
    courses = list(courses)
    ids = [c.id for c in courses]
    plans = current_plans(session, ids)
    changes: dict[uuid.UUID, dict[int, SessionChange]] = {i: {} for i in ids}
    given: dict[uuid.UUID, set[int]] = {i: set() for i in ids}
    if ids:
        for ch in session.scalars(
            current(SessionChange)
            .where(SessionChange.course_id.in_(ids))
            .order_by(SessionChange.recorded_utc)
        ):
            changes[ch.course_id][ch.session_number] = ch  # the latest of each wins
        for cid, n in session.execute(
            select(Infusion.course_id, Infusion.session_number)
            .where(Infusion.course_id.in_(ids))
            .distinct()
        ):
            given[cid].add(n)
    by_course: dict[uuid.UUID, list[Booster]] = {i: [] for i in ids}
    for b in boosters:
        by_course[b.course_id].append(b)
    out = []
    for c in courses:
        rows = _course_rows(
            c,
            plans[c.id],
            changes[c.id],
            given[c.id],
            by_course[c.id],
            given_only=c.id in given_only,
        )
        out += [r for r in rows if r.kind == "booster" or c.id not in booster_only]
    return out


def course_calendar(session: Session, course: Course) -> list[Booking]:
    """The course's sessions in force and all its boosters (no role check: for services)."""
    boosters = session.scalars(current(Booster).where(Booster.course_id == course.id))
    return _build(session, [course], boosters)


def bookings_between(
    session: Session, *, from_date: date, to_date: date, with_closed: bool = False
) -> tuple[list[Booking], dict[uuid.UUID, Course]]:
    """Bookings in force from ``from_date`` to ``to_date`` and their courses.

    Sessions of courses planned or in progress, boosters of any course; with
    ``with_closed``, also the sessions given of courses closed since (a chair held on the
    day a course completed).
    """
    courses = {c.id: c for c in active_courses(session)}
    rows = session.execute(
        current(Booster)
        .join(Course, Course.id == Booster.course_id)
        .add_columns(Course)
        .where(Booster.scheduled_date >= from_date, Booster.scheduled_date <= to_date)
    ).all()
    booster_only = {c.id for _, c in rows if c.id not in courses}
    closed: set[uuid.UUID] = set()
    if with_closed:
        # Bags hung within a day of the range, whatever the clinic's time zone.
        recent = select(Infusion.course_id).where(
            Infusion.recorded_utc >= datetime.combine(from_date - _DAY, time(), tzinfo=UTC),
            Infusion.recorded_utc < datetime.combine(to_date + 2 * _DAY, time(), tzinfo=UTC),
        )
        for c in session.scalars(select(Course).where(Course.id.in_(recent))):
            if c.id not in courses:
                closed.add(c.id)
                courses[c.id] = c
    booster_only -= closed
    courses |= {c.id: c for _, c in rows}
    found = _build(
        session,
        courses.values(),
        [b for b, _ in rows],
        given_only=closed,
        booster_only=booster_only,
    )
    in_range = [b for b in found if from_date <= b.start.date() <= to_date]
    return in_range, courses


# --- capacity ---------------------------------------------------------------------
