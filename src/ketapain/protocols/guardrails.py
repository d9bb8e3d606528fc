"""Guardrails: soft and hard dose limits from the drug library and the protocol.

Every limit carries its source and where it comes from (the clinic's drug library
profile or the protocol). A value beyond a soft limit yields a ``warning`` finding; beyond
a hard limit a ``hard_stop`` that blocks until a named clinician overrides it with a
reason. Nothing is ever clamped: the value checked is the value planned.

The drug library is a TOML file with one table of limits per setting::

    [profiles.outpatient]
    title = "KETAMINE - CHRONIC PAIN (outpatient)"
    rate_mg_per_kg_h = { soft_min = 0.05, soft_max = 0.5, hard_max = 1.0,
                         source = { authors = "...", year = 2018, journal = "..." } }

A protocol file may add its own limits in a ``[limits]`` table of the same shape.

>>> lib = load_drug_library()
>>> [f.code for f in lib.limits_for("outpatient").check(
...     Quantity.RATE_MG_PER_KG_H, 1.2, what="session 1")]
['rate_mg_per_kg_h.hard_max', 'rate_mg_per_kg_h.soft_max']
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from ketapain._files import key_name
from ketapain.errors import InvalidValueError, ModelFileError, UnknownNameError
from ketapain.protocols import _toml
from ketapain.protocols.findings import Finding, Severity
from ketapain.sources import Source

__all__ = [
    "DRUG_LIBRARY_FILE",
    "DrugLibrary",
    "Limit",
    "LimitSet",
    "Quantity",
    "check_rate",
    "load_drug_library",
]

DRUG_LIBRARY_FILE: Final = Path(__file__).with_name("drug_library.toml")


class Quantity(StrEnum):
    """What a limit bounds."""

    RATE_MG_PER_KG_H = "rate_mg_per_kg_h"
    RATE_MG_PER_H = "rate_mg_per_h"
    BOLUS_MG_PER_KG = "bolus_mg_per_kg"
    SESSION_DOSE_MG_PER_KG = "session_dose_mg_per_kg"
    SESSION_DOSE_MG = "session_dose_mg"
    COURSE_DOSE_MG = "course_dose_mg"
    ORAL_DOSE_MG_PER_KG = "oral_dose_mg_per_kg"
    BAG_CONC_MG_PER_ML = "bag_conc_mg_per_ml"
    WEIGHT_KG = "weight_kg"

    @property
    def unit(self) -> str:
        """The unit, as printed."""
        return _UNITS[self]


_UNITS: Final = {
    Quantity.RATE_MG_PER_KG_H: "mg/kg/h",
    Quantity.RATE_MG_PER_H: "mg/h",
    Quantity.BOLUS_MG_PER_KG: "mg/kg",
    Quantity.SESSION_DOSE_MG_PER_KG: "mg/kg",
    Quantity.SESSION_DOSE_MG: "mg",
    Quantity.COURSE_DOSE_MG: "mg",
    Quantity.ORAL_DOSE_MG_PER_KG: "mg/kg",
    Quantity.BAG_CONC_MG_PER_ML: "mg/mL",
    Quantity.WEIGHT_KG: "kg",
}
# The largest value any limit may name: far above clinical use, below absurd.
_CEILING: Final = {
    Quantity.RATE_MG_PER_KG_H: 45.0,
    Quantity.RATE_MG_PER_H: 5000.0,
    Quantity.BOLUS_MG_PER_KG: 4.5,
    Quantity.SESSION_DOSE_MG_PER_KG: 5000.0,
    Quantity.SESSION_DOSE_MG: 100000.0,
    Quantity.COURSE_DOSE_MG: 1000000.0,
    Quantity.ORAL_DOSE_MG_PER_KG: 7.0,
    Quantity.BAG_CONC_MG_PER_ML: 100.0,
    Quantity.WEIGHT_KG: 400.0,
}
_BOUNDS: Final = ("hard_min", "soft_min", "soft_max", "hard_max")
_REL_TOL: Final = 1e-9


@dataclass(frozen=True, slots=True, kw_only=True)
class Limit:
    """Soft and hard bounds on one quantity, from one origin, with the source."""

    quantity: Quantity
    origin: str
    soft_min: float | None = None
    soft_max: float | None = None
    hard_min: float | None = None
    hard_max: float | None = None
    source: Source | None = None

    def __post_init__(self) -> None:
        given = [(b, getattr(self, b)) for b in _BOUNDS if getattr(self, b) is not None]
        if not given:
            raise InvalidValueError(self.quantity.value, f"at least one of {_BOUNDS}", "none")
        for (name_a, a), (name_b, b) in itertools.pairwise(given):
            if a > b:
                raise InvalidValueError(
                    f"{self.quantity.value}.{name_b}", f"at least {name_a} ({a:g})", b
                )

    def check(self, value: float, *, what: str) -> list[Finding]:
        """Findings for ``value`` (hard before soft; none when within bounds)."""
        unit = self.quantity.unit
        out = []
        for bound, severity, above in (
            ("hard_max", Severity.HARD_STOP, True),
            ("hard_min", Severity.HARD_STOP, False),
            ("soft_max", Severity.WARNING, True),
            ("soft_min", Severity.WARNING, False),
        ):
            limit = getattr(self, bound)
            if limit is None:
                continue
            # A relative tolerance keeps 0.35 x 68 / 68 from exceeding 0.35.
            tol = _REL_TOL * max(abs(limit), 1.0)
            if value <= limit + tol if above else value >= limit - tol:
                continue
            kind = "hard" if severity is Severity.HARD_STOP else "soft"
            side = "above the" if above else "below the"
            word = "maximum" if above else "minimum"
            tail = " Blocked unless a clinician overrides it." if kind == "hard" else ""
            out.append(
                Finding(
                    severity=severity,
                    code=f"{self.quantity.value}.{bound}",
                    reason=f"{what}: {value:.4g} {unit} is {side} {kind} {word} of "
                    f"{limit:g} {unit} ({self.origin}).{tail}",
                    source=self.source,
                )
            )
        return out


@dataclass(frozen=True, slots=True)
class LimitSet:
    """Limits that all apply (a value is checked against each)."""

    limits: tuple[Limit, ...] = ()

    def __add__(self, other: LimitSet) -> LimitSet:
        return LimitSet(self.limits + other.limits)

    def of(self, quantity: Quantity) -> tuple[Limit, ...]:
        """The limits on ``quantity``."""
        return tuple(lim for lim in self.limits if lim.quantity is quantity)

    def check(self, quantity: Quantity, value: float, *, what: str) -> list[Finding]:
        """Findings of every limit on ``quantity``."""
        return [f for lim in self.of(quantity) for f in lim.check(value, what=what)]

    def highest(self, quantity: Quantity) -> float | None:
        """The tightest hard maximum on ``quantity``, or None."""
        values = [lim.hard_max for lim in self.of(quantity) if lim.hard_max is not None]
        return min(values) if values else None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, origin: str, field: str) -> LimitSet:
        """Parse ``{quantity: {soft_min, soft_max, hard_min, hard_max, source}}``."""
        names = {q.value for q in Quantity}
        _toml.keys(data, field.rstrip("."), names | {"title"})
        out = []
        for key, item in data.items():
            if key == "title":
                continue
            q = Quantity(key)
            sub = f"{field}{key}."
            tab = _toml.table(item, sub.rstrip("."))
            _toml.keys(tab, sub.rstrip("."), {*_BOUNDS, "source"})
            bounds = {
                b: _toml.number(tab, b, sub, low=0.0, high=_CEILING[q]) for b in _BOUNDS if b in tab
            }
            try:
                limit = Limit(
                    quantity=q, origin=origin, source=_toml.optional_source(tab, sub), **bounds
                )
            except InvalidValueError as err:
                raise InvalidValueError(f"{field}{err.field}", err.allowed, err.value) from None
            out.append(limit)
        return cls(tuple(out))


@dataclass(frozen=True, slots=True, kw_only=True)
class DrugLibrary:
    """The clinic's limits, one profile per setting (outpatient, inpatient)."""

    profiles: dict[str, LimitSet]
    titles: dict[str, str]
    path: Path

    def limits_for(self, setting: str) -> LimitSet:
        """The profile for ``setting``."""
        if setting not in self.profiles:
            raise UnknownNameError("drug library profile", setting, sorted(self.profiles))
        return self.profiles[setting]


def load_drug_library(path: str | Path | None = None) -> DrugLibrary:
    """Read a drug library file (default: the built-in one)."""
    p = Path(path) if path is not None else DRUG_LIBRARY_FILE
    data = _toml.read_toml(p)
    try:
        _toml.keys(data, "", {"profiles"})
        profiles_data = _toml.table(data.get("profiles"), "profiles")
        if not profiles_data:
            raise InvalidValueError("profiles", "at least one profile table", "none")
        profiles, titles = {}, {}
        for name, item in profiles_data.items():
            where = f"profiles.{key_name(name)}"
            tab = _toml.table(item, where)
            title = _toml.text(tab, "title", f"{where}.", default=name)
            profiles[name] = LimitSet.from_mapping(
                tab, origin=f"drug library: {title}", field=f"{where}."
            )
            titles[name] = title
    except ModelFileError:
        raise
    except InvalidValueError as err:
        raise ModelFileError(str(p), err.field, err.allowed, err.value) from None
    return DrugLibrary(profiles=profiles, titles=titles, path=p)


def check_rate(
    limits: LimitSet, *, rate_mg_per_h: float, dosing_weight_kg: float, what: str
) -> list[Finding]:
    """Findings for one infusion rate, in mg/h and per kg of dosing weight.

    >>> lib = load_drug_library().limits_for("outpatient")
    >>> [f.severity.value for f in check_rate(lib, rate_mg_per_h=35, dosing_weight_kg=70,
    ...                                        what="rate change")]
    []
    """
    if not dosing_weight_kg > 0:
        raise InvalidValueError("dosing_weight_kg", "above 0", dosing_weight_kg)
    return limits.check(Quantity.RATE_MG_PER_H, rate_mg_per_h, what=what) + limits.check(
        Quantity.RATE_MG_PER_KG_H, rate_mg_per_h / dosing_weight_kg, what=what
    )
