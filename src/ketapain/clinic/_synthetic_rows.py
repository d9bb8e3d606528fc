"""Rows of the synthetic registry: one patient's random numbers, ids and charted state,
and a builder per table.

Each builder returns the dict of every column of its table, as the ORM would insert the
row (a JSON column left empty is JSON ``null``, as the ORM writes it), with ids as the 32
hex digits SQLite stores (:class:`ketapain.clinic._synthetic_writer.Writer` turns them
into UUIDs elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

import numpy as np

from ketapain.clinic.accounts import User
from ketapain.clinic.alarms import Alarm, AlarmAcknowledgement
from ketapain.clinic.checklist import PreInfusionCheck
from ketapain.clinic.courses import Booster, Course, CoursePlan, CourseStatusEvent, Decision
from ketapain.clinic.db import Base
from ketapain.clinic.infusions import Infusion, InfusionEvent
from ketapain.clinic.observations import Score, SideEffect, VitalSigns
from ketapain.clinic.patients import (
    BodyMeasurement,
    Demographics,
    Diagnosis,
    LabResult,
    Medication,
    Patient,
)

__all__ = [
    "ORDER",
    "Chart",
    "Draws",
    "Tables",
    "at",
    "clip",
    "correctable",
    "cumulative",
    "event",
    "new_tables",
    "nrs",
    "pick",
    "record",
    "score",
    "status",
    "user",
    "vitals",
]

Tables = dict[str, list[dict[str, Any]]]

# Parents before children (a correction after the row it corrects, in the same list).
ORDER: Final[tuple[type[Base], ...]] = (
    User,
    Patient,
    Demographics,
    BodyMeasurement,
    Diagnosis,
    Medication,
    LabResult,
    Course,
    CoursePlan,
    CourseStatusEvent,
    Decision,
    Booster,
    Infusion,
    PreInfusionCheck,
    InfusionEvent,
    VitalSigns,
    Score,
    SideEffect,
    Alarm,
    AlarmAcknowledgement,
)

# Random numbers drawn per patient: twice what the longest course uses (about 230
# uniform and 80 normal numbers for 10 sessions and 12 follow-up visits).
_UNIFORMS: Final = 512
_NORMALS: Final = 192
_ROW_BITS: Final = 24  # rows per patient: at most 2**24


def new_tables() -> Tables:
    """An empty list of rows per table."""
    return {model.__tablename__: [] for model in ORDER}


def cumulative(shares: Sequence[tuple[str, float]]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The items and the running sums of their shares, for :func:`pick`."""
    total = 0.0
    edges = []
    for _, share in shares:
        total += share
        edges.append(total)
    return tuple(k for k, _ in shares), tuple(edges)


def pick(u: float, table: tuple[tuple[str, ...], tuple[float, ...]]) -> str:
    """The item of a :func:`cumulative` table whose share holds ``u`` (uniform in [0, 1))."""
    items, edges = table
    for item, edge in zip(items, edges, strict=True):
        if u < edge:
            return item
    return items[-1]


def clip(x: float, low: float, high: float) -> float:
    """``x`` within ``[low, high]``."""
    return low if x < low else high if x > high else x


def score(x: float) -> float:
    """A charted NRS: a whole number from 0 to 10."""
    return float(round(clip(x, 0.0, 10.0)))


def at(day: date, hours: float) -> datetime:
    """``hours`` after midnight (UTC) of ``day``."""
    return datetime.combine(day, time(), UTC) + timedelta(hours=hours)


class Draws:
    """One patient's random numbers (uniform and normal streams) and row ids.

    The same ``seed`` and ``index`` give the same numbers and ids; ids are
    ``prefix | index | row`` so that they are unique in the registry and increase in the
    order rows are made.
    """

    __slots__ = ("_base", "_k", "u", "z")

    def __init__(self, *, seed: int, prefix: int, index: int) -> None:
        g = np.random.default_rng([seed, index])
        uniforms: list[float] = g.random(_UNIFORMS).tolist()
        normals: list[float] = g.standard_normal(_NORMALS).tolist()
        self.u: Callable[[], float] = iter(uniforms).__next__
        self.z: Callable[[], float] = iter(normals).__next__
        self._base = (prefix << 64) | (index << _ROW_BITS)
        self._k = 0

    def id(self) -> str:
        """The next row id: a UUID as 32 hex digits (the text SQLite stores)."""
        self._k += 1
        return f"{self._base | self._k:032x}"

    def between(self, low: float, high: float) -> float:
        """A uniform number in [low, high)."""
        return low + (high - low) * self.u()

    def days(self, low: int, high: int) -> int:
        """A whole number from ``low`` to ``high``, both included."""
        return low + int(self.u() * (high - low + 1))


@dataclass(slots=True, kw_only=True)
class Chart:
    """One synthetic patient: who, the latent response, and what has been charted."""

    d: Draws
    out: Tables
    by: str  # the user recording every row
    pid: str
    mrn: str
    intake: date
    start: date
    sex: str
    weight_kg: float
    height_cm: float
    baseline: float  # pain NRS before the course
    responder: bool
    relief: float  # a responder's fall of pain, as a fraction of the baseline
    limit: int  # the highest NRS that counts as a response from the baseline
    opioid: dict[str, Any] | None = None  # the opioid's medication row
    opioid_step: float = 0.0  # the dose step it is prescribed in, mg/day
    significant_session: int = 0  # the session of a moderate or severe effect (0: none)
    effect_rate: float = 0.0  # chance of a side effect in a session
    course_id: str = ""
    last_day: date | None = None  # the last session given, once the course has ended


def record(d: Draws, by: str, t: datetime, row_id: str | None = None) -> dict[str, Any]:
    """The columns every record starts with (a new id unless ``row_id`` is given)."""
    return {"id": row_id or d.id(), "recorded_utc": t, "recorded_by_id": by}


def correctable(d: Draws, by: str, t: datetime) -> dict[str, Any]:
    """The columns every correctable record starts with (not a correction)."""
    return {
        **record(d, by, t),
        "correction_reason": None,
        "entered_in_error": False,
        "corrects_id": None,
    }


def vitals(
    c: Chart, t: datetime, infusion_id: str | None, values: Sequence[float | None]
) -> dict[str, Any]:
    """A vital-signs row: sbp, dbp, hr, rr, spo2, temp in that order."""
    sbp, dbp, hr, rr, spo2, temp = values
    return {
        **correctable(c.d, c.by, t),
        "patient_id": c.pid,
        "infusion_id": infusion_id,
        "measured_utc": t,
        "sbp_mmhg": sbp,
        "dbp_mmhg": dbp,
        "hr_per_min": hr,
        "rr_per_min": rr,
        "spo2_pct": spo2,
        "temp_c": temp,
        "on_oxygen": False,
    }


def nrs(c: Chart, t: datetime, infusion_id: str | None, value: float) -> dict[str, Any]:
    """A pain NRS score."""
    return {
        **correctable(c.d, c.by, t),
        "patient_id": c.pid,
        "infusion_id": infusion_id,
        "measured_utc": t,
        "instrument": "pain_nrs",
        "value": value,
        "items": None,
    }


def event(
    c: Chart,
    t: datetime,
    infusion_id: str,
    sequence: int,
    kind: str,
    rate: float | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """A pump event."""
    return {
        **record(c.d, c.by, t),
        "infusion_id": infusion_id,
        "sequence": sequence,
        "kind": kind,
        "time_utc": t,
        "rate_mg_per_h": rate,
        "reason": reason,
    }


def status(c: Chart, t: datetime, sequence: int, value: str, reason: str) -> dict[str, Any]:
    """A course status event."""
    return {
        **record(c.d, c.by, t),
        "course_id": c.course_id,
        "sequence": sequence,
        "status": value,
        "reason": reason,
    }


def user(*, user_id: str, username: str, created_utc: datetime, secret: str) -> dict[str, Any]:
    """The inactive user that records every synthetic row; its password hash is unusable."""
    return {
        "id": user_id,
        "username": username,
        "full_name": "Synthetic registry (not a person)",
        "role": "physician",
        # Not an Argon2 hash: no password verifies against it.
        "password_hash": f"!synthetic:{secret}",
        "active": False,
        "failed_logins": 0,
        "locked_until_utc": None,
        "created_utc": created_utc,
    }
