"""Infusions: the bag, the pump program and every pump event, with the dose delivered.

The delivered dose is computed from the events (start, rate changes, pauses, resumes,
stop), never typed in: between two events the pump runs at the last programmed rate
unless paused.

>>> from datetime import UTC, datetime, timedelta
>>> t0 = datetime(2026, 12, 7, 9, tzinfo=UTC)
>>> events = [PumpEvent(kind="start", time_utc=t0, rate_mg_per_h=20.0),
...           PumpEvent(kind="rate_change", time_utc=t0 + timedelta(hours=1), rate_mg_per_h=30.0),
...           PumpEvent(kind="stop", time_utc=t0 + timedelta(hours=2))]
>>> delivery(events, until=t0 + timedelta(hours=5)).delivered_mg
50.0
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ketapain.clinic._service import check_range
from ketapain.clinic.records import Record
from ketapain.errors import ConflictError, InvalidValueError

__all__ = [
    "Delivery",
    "EventKind",
    "Infusion",
    "InfusionEvent",
    "PumpEvent",
    "PumpState",
    "delivery",
    "next_state",
    "pump_state",
]

# Largest bag the clinic hangs, and largest ketamine content: bounds against unit slips
# (Ketalar is sold at up to 100 mg/mL in 10 mL vials: 1 g; a bag holds at most 1 L).
_MAX_BAG_ML: Final = 1000.0
_MAX_BAG_MG: Final = 5000.0


class EventKind(StrEnum):
    """A pump event."""

    START = "start"
    RATE_CHANGE = "rate_change"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"


class PumpState(StrEnum):
    """Where the pump stands after the events so far."""

    NOT_STARTED = "not_started"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


# Which events each state allows, and where they lead.
_NEXT: Final = {
    PumpState.NOT_STARTED: {EventKind.START: PumpState.RUNNING, EventKind.STOP: PumpState.STOPPED},
    PumpState.RUNNING: {
        EventKind.RATE_CHANGE: PumpState.RUNNING,
        EventKind.PAUSE: PumpState.PAUSED,
        EventKind.STOP: PumpState.STOPPED,
    },
    PumpState.PAUSED: {
        EventKind.RESUME: PumpState.RUNNING,
        EventKind.RATE_CHANGE: PumpState.PAUSED,
        EventKind.STOP: PumpState.STOPPED,
    },
    PumpState.STOPPED: {},
}


def next_state(state: PumpState, kind: EventKind) -> PumpState:
    """The state after ``kind``; :class:`ConflictError` if ``kind`` is not possible now."""
    nxt = _NEXT[state].get(kind)
    if nxt is None:
        allowed = ", ".join(_NEXT[state]) or "nothing (the infusion has stopped)"
        raise ConflictError("kind", f"a {kind} is not possible when {state}; allowed: {allowed}")
    return nxt


def pump_state(kinds: Iterable[str]) -> PumpState:
    """The state after the events ``kinds`` in order (checked, as :func:`next_state`)."""
    state = PumpState.NOT_STARTED
    for kind in kinds:
        state = next_state(state, EventKind(kind))
    return state


@dataclass(frozen=True, slots=True, kw_only=True)
class PumpEvent:
    """The part of an event the dose arithmetic needs."""

    kind: str
    time_utc: datetime
    rate_mg_per_h: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """Dose delivered so far, the pump state, the rate programmed and the running time."""

    delivered_mg: float
    state: PumpState
    rate_mg_per_h: float | None
    running_h: float


def delivery(events: Sequence[PumpEvent], *, until: datetime) -> Delivery:
    """Integrate the rate history up to ``until`` (or the stop, whichever comes first)."""
    state = PumpState.NOT_STARTED
    rate: float | None = None
    mg = running_h = 0.0
    last = None
    for ev in events:
        if state is PumpState.RUNNING and last is not None and rate is not None:
            h = max(0.0, (min(ev.time_utc, until) - last).total_seconds() / 3600.0)
            mg += rate * h
            running_h += h
        state = next_state(state, EventKind(ev.kind))
        if ev.rate_mg_per_h is not None:
            rate = ev.rate_mg_per_h
        last = ev.time_utc
    if state is PumpState.RUNNING and last is not None and rate is not None and until > last:
        h = (until - last).total_seconds() / 3600.0
        mg += rate * h
        running_h += h
    return Delivery(delivered_mg=mg, state=state, rate_mg_per_h=rate, running_h=running_h)


class Infusion(Record):
    """One bag hung for one session of a course, with its pump program."""

    __tablename__ = "infusions"

    course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courses.id"), index=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    session_number: Mapped[int]
    drug: Mapped[str] = mapped_column(String(40))
    bag_mg: Mapped[float]
    bag_ml: Mapped[float]
    lot: Mapped[str] = mapped_column(String(60))
    dosing_weight_kg: Mapped[float]
    # The planned pump steps of the session (from the plan version in force).
    program: Mapped[list[Any]]
    plan_version: Mapped[int]
    # The highest rate a nurse may set without a physician: the plan's top step or the
    # titration ceiling of the phase, whichever is higher.
    plan_max_rate_mg_per_h: Mapped[float]

    def check(self) -> None:
        check_range("bag_mg", self.bag_mg, 1.0, _MAX_BAG_MG)
        check_range("bag_ml", self.bag_ml, 1.0, _MAX_BAG_ML)
        if not (self.lot or "").strip():
            raise InvalidValueError("lot", "the bag's lot number", self.lot)
        check_range("session_number", self.session_number, 1, 1000)

    @property
    def conc_mg_per_ml(self) -> float:
        """Bag concentration."""
        return self.bag_mg / self.bag_ml


class InfusionEvent(Record):
    """A pump event: who did what, when, why; numbered so that events never interleave."""

    __tablename__ = "infusion_events"
    __table_args__ = (UniqueConstraint("infusion_id", "sequence"),)

    infusion_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("infusions.id"), index=True)
    sequence: Mapped[int]
    kind: Mapped[EventKind] = mapped_column(String(20))
    time_utc: Mapped[datetime]
    rate_mg_per_h: Mapped[float | None] = mapped_column(default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)

    def check(self) -> None:
        if self.kind not in set(EventKind):
            raise InvalidValueError("kind", f"one of {', '.join(EventKind)}", self.kind)
        needs_rate = self.kind in (EventKind.START, EventKind.RATE_CHANGE)
        if needs_rate and self.rate_mg_per_h is None:
            raise InvalidValueError("rate_mg_per_h", f"given for a {self.kind}", None)
        if not needs_rate and self.rate_mg_per_h is not None:
            raise InvalidValueError(
                "rate_mg_per_h", f"not given for a {self.kind}", self.rate_mg_per_h
            )
        # The engine's unit-slip bound, 45 mg/kg/h at 100 kg (STANPUMP); clinical
        # limits are the guardrails'.
        check_range("rate_mg_per_h", self.rate_mg_per_h, 0.0, 4500.0)
        if self.kind == EventKind.RATE_CHANGE and not (self.reason or "").strip():
            raise InvalidValueError("reason", "why the rate changes", self.reason)

    def pump_event(self) -> PumpEvent:
        """The dose-arithmetic view."""
        return PumpEvent(kind=self.kind, time_utc=self.time_utc, rate_mg_per_h=self.rate_mg_per_h)

    def as_dict(self) -> dict[str, Any]:
        """Kind, time, rate, reason, who."""
        return {
            "id": str(self.id),
            "sequence": self.sequence,
            "kind": str(self.kind),
            "time_utc": self.time_utc.isoformat(),
            "rate_mg_per_h": self.rate_mg_per_h,
            "reason": self.reason,
            "by": str(self.recorded_by_id),
        }
