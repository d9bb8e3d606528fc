"""What a protocol is: phases of sessions, titration, premedication, discharge rules,
decision points, limits and sources, as frozen values.

A protocol is laid out on a calendar in phases. Each phase repeats one session (its
doses, times in hours from midnight of the session day) on some days: ``sessions``
sessions ``every_days`` apart, weekends skipped or not, or explicit day offsets. A phase
starts the day after the previous one ends (plus ``gap_days``). Its ``trigger`` says
whether it is given as planned, only after a decision point says "continue", or only on
relapse (a booster, not put on the calendar). A titration rule raises every infusion
rate by a fixed step per session up to a ceiling, if the patient tolerates it; the plan
shows that path, and the guardrails check it, because the ceiling is the most the
patient can get.

>>> from ketapain.protocols.library import get_protocol
>>> p = get_protocol("ten-weekdays")
>>> [s.day for s in p.slots()][:6]
[0, 1, 2, 3, 4, 7]
>>> p.schedule().end_h()
277.0
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Final

import numpy as np

from ketapain.errors import InvalidValueError
from ketapain.pharmacology._types import FloatArray
from ketapain.pharmacology.model import Drug, PKModel
from ketapain.pharmacology.models import get_model
from ketapain.pharmacology.schedules import Infusion, OralDose, Route, Schedule
from ketapain.protocols.guardrails import LimitSet
from ketapain.sources import Source

__all__ = [
    "DecisionPoint",
    "Discharge",
    "Phase",
    "Premedication",
    "Protocol",
    "Setting",
    "Slot",
    "Titration",
    "Trigger",
]

_HOURS_PER_DAY = 24.0


# Farrar 2001 (Pain 94:149): a 30% fall on the NRS is "much improved".
RESPONSE_THRESHOLD: Final = 0.30


class Setting(StrEnum):
    """Where the protocol is given."""

    OUTPATIENT = "outpatient"
    INPATIENT = "inpatient"


class Trigger(StrEnum):
    """When a phase is given."""

    SCHEDULED = "scheduled"
    AFTER_DECISION = "after_decision"
    ON_RELAPSE = "on_relapse"


@dataclass(frozen=True, slots=True, kw_only=True)
class Titration:
    """Raise every infusion rate by ``increase`` per session, up to ``max_rate``.

    ``per_kg`` says whether both are mg/kg/h (else mg/h). ``increase_if`` and ``hold_if``
    are the clinical conditions, in words, shown in the plan.
    """

    increase: float
    max_rate: float
    per_kg: bool
    increase_if: str
    hold_if: str
    source: Source | None = None

    def rate(self, base: float, session_index: int) -> float:
        """The rate of the ``session_index``-th session (0 = first) of the phase."""
        return min(base + self.increase * session_index, max(base, self.max_rate))

    @property
    def unit(self) -> str:
        """``mg/kg/h`` or ``mg/h``."""
        return "mg/kg/h" if self.per_kg else "mg/h"


@dataclass(frozen=True, slots=True, kw_only=True)
class Phase:
    """One phase: a session repeated on some days, with an optional titration."""

    name: str
    title: str
    session: Schedule
    days: tuple[int, ...] | None = None
    sessions: int = 1
    every_days: int = 1
    skip_weekends: bool = False
    gap_days: int = 0
    trigger: Trigger = Trigger.SCHEDULED
    titration: Titration | None = None
    note: str = ""

    @property
    def oral(self) -> bool:
        """True when the phase gives oral doses only (a take-home prescription)."""
        return all(d.route is Route.ORAL for d in self.session.doses)

    def session_schedule(self, index: int) -> Schedule:
        """The doses of the ``index``-th session (0 = first), titration applied."""
        t = self.titration
        if t is None or index == 0:
            return self.session
        doses = []
        for d in self.session.doses:
            if isinstance(d, Infusion) and t.per_kg and d.rate_mg_per_kg_h is not None:
                d = replace(d, rate_mg_per_kg_h=t.rate(d.rate_mg_per_kg_h, index))
            elif isinstance(d, Infusion) and not t.per_kg and d.rate_mg_per_h is not None:
                d = replace(d, rate_mg_per_h=t.rate(d.rate_mg_per_h, index))
            doses.append(d)
        return Schedule(tuple(doses))

    def day_offsets(self, start_weekday: int) -> tuple[int, ...]:
        """Days of the sessions from the phase start (weekday 0 = Monday)."""
        if self.days is not None:
            return self.days
        out: list[int] = []
        day = 0
        while len(out) < self.sessions:
            if self.skip_weekends and (start_weekday + day) % 7 >= 5:
                day += 1
                continue
            out.append(day)
            day += self.every_days
        return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class Premedication:
    """A drug given before (or as needed during) each infusion session."""

    drug: str
    route: str
    timing: str
    dose_mg: float | None = None
    prn: bool = False
    source: Source | None = None

    def text(self) -> str:
        """E.g. ``midazolam 2 mg iv, before the infusion``."""
        dose = "" if self.dose_mg is None else f" {self.dose_mg:g} mg"
        prn = " (as needed)" if self.prn else ""
        return f"{self.drug}{dose} {self.route}, {self.timing}{prn}"


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionPoint:
    """A continue/stop decision after infusion session ``after_session`` (1-based).

    ``response_threshold`` is the fall in NRS from baseline, as a fraction, that counts
    as a response at this point: 0.30 by default, the IMMPACT "much improved" change
    (Farrar 2001, Pain 94:149; Dworkin 2008, J Pain 9:105).
    """

    after_session: int
    decision: str
    criterion: str
    source: Source | None = None
    response_threshold: float = RESPONSE_THRESHOLD

    def __post_init__(self) -> None:
        t = self.response_threshold
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t < 1:
            raise InvalidValueError(
                "decision_points.response_threshold", "a fraction above 0 and below 1", t
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Discharge:
    """Observation after each session and the rules for going home."""

    observation_min: float
    escort_home: bool
    no_driving: str
    source: Source | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Slot:
    """One session on the calendar: its phase, number within the phase and day."""

    phase: Phase
    index: int
    day: int

    @property
    def schedule(self) -> Schedule:
        """The session's doses, hours from midnight of course day 0."""
        return self.phase.session_schedule(self.index).shift(self.day * _HOURS_PER_DAY)


@dataclass(frozen=True, slots=True, kw_only=True)
class Protocol:
    """A treatment course: phases, rules around each session, limits and sources."""

    name: str
    title: str
    drug: Drug
    model: str
    setting: Setting
    phases: tuple[Phase, ...]
    discharge: Discharge | None = None
    premedication: tuple[Premedication, ...] = ()
    decision_points: tuple[DecisionPoint, ...] = ()
    limits: LimitSet = field(default_factory=LimitSet)
    max_rate_mg_per_h: float | None = None
    description: str = ""
    sources: tuple[Source, ...] = ()
    path: Path | None = None
    # Relapse: NRS back above this fraction of the baseline, i.e. relief below the 30%
    # "much improved" change of Farrar 2001 (0.70 = 1 - 0.30, a derivation).
    relapse_fraction: float = 0.70

    def __post_init__(self) -> None:
        f = self.relapse_fraction
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0 < f <= 1:
            raise InvalidValueError("relapse_fraction", "a fraction above 0 and at most 1", f)

    def response_threshold(self, after_session: int | None = None) -> float:
        """The fall counting as a response at the decision point after ``after_session``
        (default: the first), or :data:`RESPONSE_THRESHOLD` where there is none."""
        for dp in self.decision_points:
            if after_session is None or dp.after_session == after_session:
                return dp.response_threshold
        return RESPONSE_THRESHOLD

    def pk_model(self) -> PKModel:
        """The PK model the protocol is planned with."""
        return get_model(self.model)

    def slots(self, *, start_weekday: int = 0) -> list[Slot]:
        """Every session given unless a decision stops the course (boosters excluded).

        Day 0 is the course start, a ``start_weekday`` (0 = Monday).
        """
        out: list[Slot] = []
        next_day = 0
        for phase in self.phases:
            if phase.trigger is Trigger.ON_RELAPSE:
                continue
            first = next_day + phase.gap_days
            if phase.skip_weekends:
                while (start_weekday + first) % 7 >= 5:
                    first += 1
            offsets = phase.day_offsets((start_weekday + first) % 7)
            out += [Slot(phase=phase, index=i, day=first + d) for i, d in enumerate(offsets)]
            next_day = first + offsets[-1] + 1
        return out

    def boosters(self) -> tuple[Phase, ...]:
        """Phases given only on relapse."""
        return tuple(p for p in self.phases if p.trigger is Trigger.ON_RELAPSE)

    def schedule(self, *, start_weekday: int = 0) -> Schedule:
        """The whole course (boosters excluded), hours from midnight of day 0."""
        slots = self.slots(start_weekday=start_weekday)
        return Schedule.of(*(s.schedule.doses for s in slots))

    def infusion_rates(self) -> list[Infusion]:
        """Every infusion step of the course, titrated, plus each titration ceiling."""
        steps = [d for d in self.schedule().doses if isinstance(d, Infusion)]
        for phase in self.phases:
            t = phase.titration
            for d in phase.session.infusions:
                if t is not None:
                    key = "rate_mg_per_kg_h" if t.per_kg else "rate_mg_per_h"
                    steps.append(replace(d, **{key: t.max_rate}))
        return steps

    @property
    def dosing_weight_cap_kg(self) -> float | None:
        """Weight above which the ``max_rate_mg_per_h`` cap binds, or None."""
        per_kg = [d.rate_mg_per_kg_h for d in self.infusion_rates() if d.rate_mg_per_kg_h]
        if self.max_rate_mg_per_h is None or not per_kg:
            return None
        return self.max_rate_mg_per_h / max(per_kg)

    def dosing_weight_kg(self, weight_kg: FloatArray) -> FloatArray:
        """Weights that apply the rate cap: ``min(weight, cap / highest mg/kg/h rate)``."""
        w = np.asarray(weight_kg, dtype=float)
        cap = self.dosing_weight_cap_kg
        return w if cap is None else np.minimum(w, cap)

    def total_dose_mg(self, weight_kg: float) -> float:
        """Total dose of the course (boosters excluded) for ``weight_kg``, mg."""
        dosing = float(self.dosing_weight_kg(np.array([weight_kg]))[0])
        return self.schedule().total_dose_mg(weight_kg=dosing)

    def check_layout(self) -> None:
        """Raise if sessions overlap or a decision point names a missing session."""
        slots = self.slots()
        for a, b in itertools.pairwise(slots):
            if a.schedule.end_h() > b.schedule.start_h() + 1e-9:
                raise InvalidValueError(
                    f"phases.{b.phase.name}",
                    "sessions that start after the previous session ends",
                    f"day {b.day} starts at {b.schedule.start_h():g} h, before "
                    f"{a.schedule.end_h():g} h",
                )
        n_iv = sum(1 for s in slots if not s.phase.oral)
        for dp in self.decision_points:
            if not 1 <= dp.after_session <= n_iv:
                raise InvalidValueError(
                    "decision_points.after_session", f"1 to {n_iv}", dp.after_session
                )

    @property
    def oral_doses(self) -> tuple[OralDose, ...]:
        """Oral doses of the course (the take-home follow-on)."""
        return self.schedule().oral_doses
