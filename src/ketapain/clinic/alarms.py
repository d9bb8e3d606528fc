"""Alarms: every vital sign and sedation score checked against warn and stop thresholds.

The defaults are the monitoring rules of the clinical reference (section 3.1). The stop
values for blood pressure, heart rate and breathing are the do-not-give limits of Mo
2020; SpO2 follows Aldrete 1995; MOAA/S and RASS the scales' own levels. The warn values
are a proposed middle step (reduce the rate, recheck in 5 minutes): no chronic-pain
guideline publishes numeric stop rules, so every value is configurable with a TOML file
(``KETAPAIN_ALARM_THRESHOLDS``)::

    [[rule]]
    signal = "sbp_mmhg"     # a vital sign, "moaas" or "rass"
    level = "stop"          # "warn" or "stop"
    op = ">"                # >, >=, <, <=, or "rise_pct" (rise from the baseline, %)
    value = 180
    source = "Mo 2020, West J Emerg Med 21(2):272-281"

An alarm is a record; a person acknowledges it with a note.

>>> [r.describe(185) for r in DEFAULT_RULES if r.fires(185, baseline=None)
...  and r.signal == "sbp_mmhg"]
['SBP 185 mmHg > 160 (warn)', 'SBP 185 mmHg > 180 (stop)']
"""

from __future__ import annotations

import math
import operator
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ketapain._files import read_toml
from ketapain.clinic.instruments import SESSLER_2002
from ketapain.clinic.records import Record
from ketapain.errors import InvalidValueError
from ketapain.protocols.citations import ALDRETE_1995, MO_2020
from ketapain.sources import CHERNIK_1990, Source

__all__ = [
    "DEFAULT_RULES",
    "Alarm",
    "AlarmAcknowledgement",
    "Rule",
    "load_rules",
]

_OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_LABELS: Final = {
    "sbp_mmhg": ("SBP", "mmHg"),
    "dbp_mmhg": ("DBP", "mmHg"),
    "hr_per_min": ("HR", "/min"),
    "rr_per_min": ("RR", "/min"),
    "spo2_pct": ("SpO2", "%"),
    "temp_c": ("Temperature", "C"),
    "moaas": ("MOAA/S", ""),
    "rass": ("RASS", ""),
}
_DERIVED: Final = Source(
    authors="ketapain clinical reference, section 3.1",
    year=None,
    journal="proposed warn level derived from Mo 2020, Aldrete 1995, Chernik 1990 and the "
    "Spravato label; configurable",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One threshold: signal, level, comparison, value, source."""

    signal: str
    level: str
    op: str
    value: float
    source: Source

    def __post_init__(self) -> None:
        if self.signal not in _LABELS:
            raise InvalidValueError("rule signal", f"one of {', '.join(_LABELS)}", self.signal)
        if self.level not in ("warn", "stop"):
            raise InvalidValueError("rule level", '"warn" or "stop"', self.level)
        if self.op not in (*_OPS, "rise_pct"):
            raise InvalidValueError("rule op", ">, >=, <, <= or rise_pct", self.op)

    def fires(self, value: float, *, baseline: float | None) -> bool:
        """True if ``value`` crosses this threshold (a rise needs a baseline)."""
        if self.op == "rise_pct":
            return baseline is not None and value > baseline * (1.0 + self.value / 100.0)
        return _OPS[self.op](value, self.value)

    def describe(self, value: float) -> str:
        """The alarm in words, e.g. ``SBP 185 mmHg > 180 (stop)``."""
        label, unit = _LABELS[self.signal]
        shown = f"{value:g} {unit}".strip()
        if self.op == "rise_pct":
            return f"{label} {shown} rose more than {self.value:g}% from baseline ({self.level})"
        return f"{label} {shown} {self.op} {self.value:g} ({self.level})"


def _r(signal: str, level: str, op: str, value: float, source: Source) -> Rule:
    return Rule(signal=signal, level=level, op=op, value=value, source=source)


_MO: Final = MO_2020.at(
    "Table 1: do not give with SBP < 90 or > 180, HR < 50 or > 150, RR < 10 or > 30"
)
DEFAULT_RULES: Final = (
    _r("sbp_mmhg", "warn", ">", 160, _DERIVED),
    _r("sbp_mmhg", "warn", "rise_pct", 20, _DERIVED),
    _r("sbp_mmhg", "stop", ">", 180, _MO),
    _r("sbp_mmhg", "stop", "<", 90, _MO),
    _r("dbp_mmhg", "warn", ">", 100, _DERIVED),
    _r("dbp_mmhg", "stop", ">", 110, _DERIVED),
    _r("hr_per_min", "warn", ">", 120, _DERIVED),
    _r("hr_per_min", "warn", "<", 55, _DERIVED),
    _r("hr_per_min", "stop", ">", 150, _MO),
    _r("hr_per_min", "stop", "<", 50, _MO),
    _r("spo2_pct", "warn", "<=", 92, ALDRETE_1995),
    _r("spo2_pct", "stop", "<", 90, ALDRETE_1995),
    _r("rr_per_min", "warn", "<", 10, _MO),
    _r("rr_per_min", "warn", ">", 24, _DERIVED),
    _r("rr_per_min", "stop", "<", 8, _DERIVED),
    _r("rr_per_min", "stop", ">", 30, _MO),
    _r("moaas", "warn", "<=", 3, CHERNIK_1990),
    _r("moaas", "stop", "<=", 2, CHERNIK_1990),
    _r("rass", "warn", "<=", -2, SESSLER_2002),
    _r("rass", "warn", ">=", 2, SESSLER_2002),
    _r("rass", "stop", "<=", -3, SESSLER_2002),
    _r("rass", "stop", ">=", 3, SESSLER_2002),
)


def load_rules(path: Path | None) -> tuple[Rule, ...]:
    """The clinic's rules from a TOML file, or the defaults when ``path`` is None."""
    if path is None:
        return DEFAULT_RULES
    try:
        data = read_toml(path, "alarm thresholds file")
    except OSError as err:
        raise InvalidValueError(
            "alarm thresholds file", f"a readable TOML file ({err})", str(path)
        ) from None
    rules = data.get("rule")
    if not isinstance(rules, list) or not rules:
        raise InvalidValueError("rule", "a list of [[rule]] tables", rules)
    out: list[Rule] = []
    for i, item in enumerate(rules):
        if not isinstance(item, dict) or set(item) != {"signal", "level", "op", "value", "source"}:
            raise InvalidValueError(
                f"rule[{i}]", "a table with signal, level, op, value and source", item
            )
        value = item["value"]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and not math.isfinite(value))
        ):
            # nan or inf would be a threshold no reading ever crosses.
            raise InvalidValueError(f"rule[{i}].value", "a finite number", value)
        out.append(
            _r(
                str(item["signal"]),
                str(item["level"]),
                str(item["op"]),
                float(value),
                Source(authors=str(item["source"]), year=None, journal="clinic alarm rules"),
            )
        )
    return tuple(out)


def evaluate(
    rules: Sequence[Rule], values: dict[str, float | None], baselines: dict[str, float | None]
) -> list[tuple[Rule, float]]:
    """The rules that fire for ``values``, most serious first."""
    fired = [
        (rule, v)
        for rule in rules
        if (v := values.get(rule.signal)) is not None
        and rule.fires(v, baseline=baselines.get(rule.signal))
    ]
    return sorted(fired, key=lambda rv: rv[0].level != "stop")


class Alarm(Record):
    """A threshold crossed by an observation; open until a person acknowledges it."""

    __tablename__ = "alarms"

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    infusion_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("infusions.id"), default=None, index=True
    )
    vital_signs_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("vital_signs.id"), default=None
    )
    score_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("scores.id"), default=None)
    signal: Mapped[str] = mapped_column(String(20))
    level: Mapped[str] = mapped_column(String(10))
    value: Mapped[float]
    message: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)

    def as_dict(self, acknowledgements: Sequence[AlarmAcknowledgement] = ()) -> dict[str, Any]:
        """The alarm, and its acknowledgements."""
        return {
            "id": str(self.id),
            "patient_id": str(self.patient_id),
            "infusion_id": None if self.infusion_id is None else str(self.infusion_id),
            "raised_utc": self.recorded_utc.isoformat(),
            "signal": self.signal,
            "level": self.level,
            "value": self.value,
            "message": self.message,
            "source": self.source,
            "acknowledged": bool(acknowledgements),
            "acknowledgements": [a.as_dict() for a in acknowledgements],
        }


class AlarmAcknowledgement(Record):
    """A person's acknowledgement of an alarm, with what was done."""

    __tablename__ = "alarm_acknowledgements"

    alarm_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alarms.id"), index=True)
    note: Mapped[str] = mapped_column(Text)

    def check(self) -> None:
        if not self.note or not self.note.strip():
            raise InvalidValueError("note", "what was done (a non-empty note)", self.note)

    def as_dict(self) -> dict[str, Any]:
        """Who acknowledged, when, and the note."""
        return {
            "by": str(self.recorded_by_id),
            "time_utc": self.recorded_utc.isoformat(),
            "note": self.note,
        }
