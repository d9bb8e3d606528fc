"""Dosing schedules as values: IV boluses, IV infusions (any number of rate steps) and
oral doses, with shifting, repetition on calendar days and concatenation.

Doses are ketamine base. A dose is given either per kilogram (``rate_mg_per_kg_h``,
``dose_mg_per_kg``) or absolutely (``rate_mg_per_h``, ``dose_mg``), never both.

Examples
--------
>>> day = Schedule.of(Infusion(start_h=8, duration_h=4, rate_mg_per_kg_h=0.35))
>>> series = day.repeat_on_days(weekdays(10))
>>> len(series.doses), series.end_h()
(10, 276.0)
>>> series.total_dose_mg(weight_kg=70)
980.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Self

from ketapain._files import key_name, read_json
from ketapain.errors import InvalidValueError
from ketapain.sources import ANDRADE_2019, KETALAR_LABEL, STANPUMP, Source

__all__ = [
    "DOSE_LIMITS",
    "Bolus",
    "Dose",
    "DoseLimit",
    "Infusion",
    "OralDose",
    "Route",
    "Schedule",
    "stepped_infusion",
    "weekdays",
]

_HOURS_PER_DAY: Final = 24.0
_MAX_TIME_H: Final = 24.0 * 366 * 5  # five years: longer courses are not planned


class Route(StrEnum):
    """How a dose is given."""

    IV_BOLUS = "iv_bolus"
    IV_INFUSION = "iv_infusion"
    ORAL = "oral"


@dataclass(frozen=True, slots=True, kw_only=True)
class DoseLimit:
    """The largest dose the engine accepts for one route, with its source."""

    field: str
    max_per_kg: float
    source: Source


# Engine limits: the largest doses anyone gives, so that typing errors (mg for ug, mL for
# mg, per minute for per hour) are caught. Clinical limits are the protocols' business.
DOSE_LIMITS: Final = {
    # STANPUMP's maximum ketamine infusion rate, 0.75 mg/kg/min = 45 mg/kg/h.
    Route.IV_INFUSION: DoseLimit(field="rate_mg_per_kg_h", max_per_kg=45.0, source=STANPUMP),
    # Ketalar label: IV induction 1-4.5 mg/kg.
    Route.IV_BOLUS: DoseLimit(field="dose_mg_per_kg", max_per_kg=4.5, source=KETALAR_LABEL),
    # Oral ketamine in practice: 0.25-7 mg/kg per dose.
    Route.ORAL: DoseLimit(field="dose_mg_per_kg", max_per_kg=7.0, source=ANDRADE_2019),
}


def _number(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidValueError(field, "a finite number", value)
    return float(value)


def _time(field: str, value: object) -> float:
    number = _number(field, value)
    if not -_MAX_TIME_H <= number <= _MAX_TIME_H:
        raise InvalidValueError(field, f"between {-_MAX_TIME_H:g} and {_MAX_TIME_H:g} h", value)
    return number


def _amount(
    prefix: str, route: Route, per_kg: float | None, absolute: float | None, names: tuple[str, str]
) -> None:
    if (per_kg is None) == (absolute is None):
        raise InvalidValueError(f"{prefix}{names[0]}/{names[1]}", "exactly one of the two", None)
    limit = DOSE_LIMITS[route].max_per_kg
    if per_kg is not None:
        value = _number(prefix + names[0], per_kg)
        if not 0 <= value <= limit:
            raise InvalidValueError(
                prefix + names[0],
                f"between 0 and {limit:g} ({DOSE_LIMITS[route].source.short()})",
                per_kg,
            )
    if absolute is not None:
        value = _number(prefix + names[1], absolute)
        # 300 kg at the per-kg limit: a hard ceiling independent of the patient.
        if not 0 <= value <= limit * 300:
            raise InvalidValueError(prefix + names[1], f"between 0 and {limit * 300:g}", absolute)


@dataclass(frozen=True, slots=True, kw_only=True)
class _InstantDose:
    """A dose given at one time: ``dose_mg`` or ``dose_mg_per_kg``, never both."""

    time_h: float
    dose_mg: float | None = None
    dose_mg_per_kg: float | None = None

    @property
    def route(self) -> Route:
        """How the dose is given."""
        raise NotImplementedError

    def __post_init__(self) -> None:
        _time("time_h", self.time_h)
        _amount("", self.route, self.dose_mg_per_kg, self.dose_mg, ("dose_mg_per_kg", "dose_mg"))

    def amount_mg(self, weight_kg: float) -> float:
        """Dose in mg for a patient of ``weight_kg``."""
        if self.dose_mg is not None:
            return self.dose_mg
        return (self.dose_mg_per_kg or 0.0) * weight_kg

    def shifted(self, by_h: float) -> Self:
        """Return the dose moved by ``by_h`` hours."""
        return replace(self, time_h=self.time_h + by_h)

    @property
    def start_h(self) -> float:
        """Time of the dose, h."""
        return self.time_h

    @property
    def end_h(self) -> float:
        """Time of the dose, h (it has no duration)."""
        return self.time_h


@dataclass(frozen=True, slots=True, kw_only=True)
class Bolus(_InstantDose):
    """An IV bolus at ``time_h`` (given instantaneously)."""

    @property
    def route(self) -> Route:
        """How the dose is given."""
        return Route.IV_BOLUS


@dataclass(frozen=True, slots=True, kw_only=True)
class OralDose(_InstantDose):
    """An oral dose swallowed at ``time_h``."""

    @property
    def route(self) -> Route:
        """How the dose is given."""
        return Route.ORAL


@dataclass(frozen=True, slots=True, kw_only=True)
class Infusion:
    """A constant-rate IV infusion from ``start_h`` for ``duration_h`` hours."""

    start_h: float
    duration_h: float
    rate_mg_per_h: float | None = None
    rate_mg_per_kg_h: float | None = None

    def __post_init__(self) -> None:
        _time("start_h", self.start_h)
        duration = _number("duration_h", self.duration_h)
        if not 0 < duration <= _MAX_TIME_H:
            raise InvalidValueError(
                "duration_h", f"greater than 0 and at most {_MAX_TIME_H:g}", self.duration_h
            )
        _amount(
            "",
            Route.IV_INFUSION,
            self.rate_mg_per_kg_h,
            self.rate_mg_per_h,
            ("rate_mg_per_kg_h", "rate_mg_per_h"),
        )

    @property
    def route(self) -> Route:
        """How the dose is given."""
        return Route.IV_INFUSION

    @property
    def end_h(self) -> float:
        """End of the infusion, h."""
        return self.start_h + self.duration_h

    def rate_for(self, weight_kg: float) -> float:
        """Rate in mg/h for a patient of ``weight_kg``."""
        if self.rate_mg_per_h is not None:
            return self.rate_mg_per_h
        return (self.rate_mg_per_kg_h or 0.0) * weight_kg

    def amount_mg(self, weight_kg: float) -> float:
        """Dose in mg delivered over the whole infusion."""
        return self.rate_for(weight_kg) * self.duration_h

    def shifted(self, by_h: float) -> Infusion:
        """Return the infusion moved by ``by_h`` hours."""
        return replace(self, start_h=self.start_h + by_h)


Dose = Bolus | Infusion | OralDose


def stepped_infusion(
    *, start_h: float, steps: Sequence[tuple[float, float]], per_kg: bool = True
) -> tuple[Infusion, ...]:
    """Return consecutive infusions for rate steps ``(duration_h, rate)``.

    Rates are mg/kg/h when ``per_kg`` is true, else mg/h.

    >>> [i.start_h for i in stepped_infusion(start_h=0, steps=[(0.5, 0.1), (3.5, 0.35)])]
    [0.0, 0.5]
    """
    infusions = []
    t = float(start_h)
    for duration_h, rate in steps:
        if per_kg:
            infusions.append(Infusion(start_h=t, duration_h=duration_h, rate_mg_per_kg_h=rate))
        else:
            infusions.append(Infusion(start_h=t, duration_h=duration_h, rate_mg_per_h=rate))
        t += duration_h
    return tuple(infusions)


def weekdays(n: int, *, start_weekday: int = 0) -> tuple[int, ...]:
    """Return day offsets of ``n`` consecutive weekdays, weekends off.

    ``start_weekday`` is 0 for Monday ... 6 for Sunday (a weekend start moves to Monday).

    >>> weekdays(7)
    (0, 1, 2, 3, 4, 7, 8)
    """
    if not 0 <= start_weekday <= 6:
        raise InvalidValueError("start_weekday", "0 (Monday) to 6 (Sunday)", start_weekday)
    days: list[int] = []
    offset = 0
    while len(days) < n:
        if (start_weekday + offset) % 7 < 5:
            days.append(offset)
        offset += 1
    return tuple(days)


@dataclass(frozen=True, slots=True)
class Schedule:
    """An ordered collection of doses."""

    doses: tuple[Dose, ...] = ()

    @classmethod
    def of(cls, *doses: Dose | Iterable[Dose]) -> Schedule:
        """Return a schedule of the given doses (iterables of doses are flattened)."""
        flat: list[Dose] = []
        for d in doses:
            if isinstance(d, Bolus | Infusion | OralDose):
                flat.append(d)
            else:
                flat.extend(d)
        return cls(tuple(sorted(flat, key=lambda x: x.start_h)))

    def __add__(self, other: Schedule) -> Schedule:
        return Schedule.of(*self.doses, *other.doses)

    def shift(self, by_h: float) -> Schedule:
        """Return the schedule moved by ``by_h`` hours."""
        _time("shift by_h", by_h)
        return Schedule(tuple(d.shifted(by_h) for d in self.doses))

    def repeat_on_days(self, days: Iterable[int]) -> Schedule:
        """Return the schedule given on each day offset in ``days`` (day 0 = as is)."""
        return Schedule.of(*(self.shift(day * _HOURS_PER_DAY).doses for day in days))

    def repeat_every(self, *, interval_h: float, times: int) -> Schedule:
        """Return the schedule repeated ``times`` times, ``interval_h`` apart."""
        _number("interval_h", interval_h)
        return Schedule.of(*(self.shift(k * interval_h).doses for k in range(times)))

    @property
    def infusions(self) -> tuple[Infusion, ...]:
        """The IV infusions."""
        return tuple(d for d in self.doses if isinstance(d, Infusion))

    @property
    def boluses(self) -> tuple[Bolus, ...]:
        """The IV boluses."""
        return tuple(d for d in self.doses if isinstance(d, Bolus))

    @property
    def oral_doses(self) -> tuple[OralDose, ...]:
        """The oral doses."""
        return tuple(d for d in self.doses if isinstance(d, OralDose))

    def start_h(self) -> float:
        """Time of the first dose, h (0 for an empty schedule)."""
        return min((d.start_h for d in self.doses), default=0.0)

    def end_h(self) -> float:
        """Time the last dose ends, h (0 for an empty schedule)."""
        return max((d.end_h for d in self.doses), default=0.0)

    def total_dose_mg(self, *, weight_kg: float, route: Route | None = None) -> float:
        """Total dose in mg for a patient of ``weight_kg``, optionally of one route."""
        return sum(d.amount_mg(weight_kg) for d in self.doses if route in (None, d.route))

    def to_dict(self) -> dict[str, Any]:
        """Return the schedule in the JSON form read by :meth:`from_dict`."""
        out: list[dict[str, Any]] = []
        for d in self.doses:
            item: dict[str, Any] = {"route": d.route.value}
            if isinstance(d, Infusion):
                item |= {"start_h": d.start_h, "duration_h": d.duration_h}
                item |= _present(rate_mg_per_h=d.rate_mg_per_h, rate_mg_per_kg_h=d.rate_mg_per_kg_h)
            else:
                item |= {"time_h": d.time_h}
                item |= _present(dose_mg=d.dose_mg, dose_mg_per_kg=d.dose_mg_per_kg)
            out.append(item)
        return {"doses": out}

    @classmethod
    def from_dict(cls, data: object) -> Schedule:
        """Read a schedule from its JSON form; errors name the offending field.

        Infusions may give ``steps`` (a list of ``{"duration_h", "rate_..."}``) instead of
        one ``duration_h`` and rate.
        """
        if not isinstance(data, Mapping) or set(data) != {"doses"}:
            raise InvalidValueError("schedule", 'an object with one key, "doses"', data)
        items = data["doses"]
        if not isinstance(items, list):
            raise InvalidValueError("doses", "a list of dose objects", items)
        doses: list[Dose] = []
        for i, item in enumerate(items):
            try:
                doses.extend(_dose_from_dict(item))
            except InvalidValueError as err:
                raise InvalidValueError(f"doses[{i}].{err.field}", err.allowed, err.value) from None
        return cls.of(*doses)

    @classmethod
    def from_json_file(cls, path: str | Path) -> Schedule:
        """Read a schedule from a JSON file."""
        return cls.from_dict(read_json(Path(path), "schedule file"))


def _present(**values: float | None) -> dict[str, float]:
    return {k: v for k, v in values.items() if v is not None}


_FIELDS: Final = {
    Route.IV_BOLUS: {"route", "time_h", "dose_mg", "dose_mg_per_kg"},
    Route.ORAL: {"route", "time_h", "dose_mg", "dose_mg_per_kg"},
    Route.IV_INFUSION: {
        "route",
        "start_h",
        "duration_h",
        "rate_mg_per_h",
        "rate_mg_per_kg_h",
        "steps",
    },
}


def _dose_from_dict(item: object) -> tuple[Dose, ...]:
    if not isinstance(item, Mapping):
        raise InvalidValueError("dose", "an object", item)
    try:
        route = Route(str(item.get("route")))
    except ValueError:
        raise InvalidValueError(
            "route", f"one of {', '.join(r.value for r in Route)}", item.get("route")
        ) from None
    unknown = sorted(set(item) - _FIELDS[route])
    if unknown:
        raise InvalidValueError(
            key_name(unknown[0]), f"absent for route {route.value}", item[unknown[0]]
        )
    if route is Route.IV_INFUSION:
        if "steps" in item:
            return _steps_from_dict(item)
        for key in ("start_h", "duration_h"):
            if key not in item:
                raise InvalidValueError(key, "given for an infusion", None)
        return (
            Infusion(
                start_h=item["start_h"],
                duration_h=item["duration_h"],
                rate_mg_per_h=item.get("rate_mg_per_h"),
                rate_mg_per_kg_h=item.get("rate_mg_per_kg_h"),
            ),
        )
    if "time_h" not in item:
        raise InvalidValueError("time_h", f"given for route {route.value}", None)
    kind = Bolus if route is Route.IV_BOLUS else OralDose
    return (
        kind(
            time_h=item["time_h"],
            dose_mg=item.get("dose_mg"),
            dose_mg_per_kg=item.get("dose_mg_per_kg"),
        ),
    )


def _steps_from_dict(item: Mapping[str, Any]) -> tuple[Infusion, ...]:
    if "start_h" not in item:
        raise InvalidValueError("start_h", "given for an infusion", None)
    extra = set(item) - {"route", "start_h", "steps"}
    if extra:
        raise InvalidValueError(key_name(sorted(extra)[0]), "absent when steps are given", "given")
    steps = item["steps"]
    if not isinstance(steps, list) or not steps:
        raise InvalidValueError("steps", "a non-empty list", steps)
    out = []
    t = _time("start_h", item["start_h"])
    for j, step in enumerate(steps):
        if not isinstance(step, Mapping) or not set(step) <= {
            "duration_h",
            "rate_mg_per_h",
            "rate_mg_per_kg_h",
        }:
            raise InvalidValueError(f"steps[{j}]", "an object with duration_h and one rate", step)
        try:
            inf = Infusion(
                start_h=t,
                duration_h=step.get("duration_h"),  # type: ignore[arg-type]
                rate_mg_per_h=step.get("rate_mg_per_h"),
                rate_mg_per_kg_h=step.get("rate_mg_per_kg_h"),
            )
        except InvalidValueError as err:
            raise InvalidValueError(f"steps[{j}].{err.field}", err.allowed, err.value) from None
        out.append(inf)
        t = inf.end_h
    return tuple(out)
