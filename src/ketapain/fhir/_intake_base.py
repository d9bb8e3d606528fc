"""What the readers of an intake Bundle share: their verdicts, what an entry asks to
write, the reading context, codes, times and quantities (converted here, at the edge,
with :mod:`ketapain.units`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any, Final

from ketapain.clinic.db import utc_now
from ketapain.clinic.patients import LAB_UNITS, LabTest
from ketapain.units import (
    BILIRUBIN_UMOL_PER_L_PER_MG_PER_DL,
    CREATININE_UMOL_PER_L_PER_MG_PER_DL,
    degf_to_celsius,
    inch_to_cm,
    lb_to_kg,
    umol_per_l_to_mg_per_dl,
)

__all__ = [
    "FINAL",
    "MOLAR",
    "Context",
    "Item",
    "Unreadable",
    "Unsupported",
    "codes",
    "codings",
    "convert",
    "effective",
    "lab_value",
    "number",
    "subject",
    "text_of",
    "when",
]


class Unreadable(Exception):  # noqa: N818 - a reader's verdict, turned into a problem
    """The resource is valid FHIR but its content cannot be charted as given."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class Unsupported(Unreadable):
    """A valid resource that ketapain does not take at intake."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """What one entry asks to write: the kind of row, its values, the patient it is for.

    ``part`` names the vital sign (or body measure) an Observation carries, so that
    the signs charted together at one time can be joined into one row.
    """

    kind: str
    values: dict[str, Any]
    patient: str | None = None
    part: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


# ketapain's unit -> the UCUM units taken for it, with their conversion (ketapain.units).
_UNITS: Final[dict[str, dict[str, Callable[[float], float]]]] = {
    "kg": {"kg": lambda x: x, "g": lambda x: x / 1000.0, "[lb_av]": lb_to_kg},
    "cm": {"cm": lambda x: x, "m": lambda x: x * 100.0, "[in_i]": inch_to_cm},
    "mm[Hg]": {"mm[Hg]": lambda x: x},
    "/min": {"/min": lambda x: x, "{beats}/min": lambda x: x, "{breaths}/min": lambda x: x},
    "%": {"%": lambda x: x},
    "Cel": {"Cel": lambda x: x, "[degF]": degf_to_celsius},
    "U/L": {"U/L": lambda x: x, "[IU]/L": lambda x: x},
    "mg/dL": {"mg/dL": lambda x: x},
    "{score}": {"{score}": lambda x: x, "1": lambda x: x, "{#}": lambda x: x},
}
# umol/L per mg/dL of the tests also reported in molar units (Young 1987).
MOLAR: Final = {
    LabTest.BILIRUBIN: BILIRUBIN_UMOL_PER_L_PER_MG_PER_DL,
    LabTest.CREATININE: CREATININE_UMOL_PER_L_PER_MG_PER_DL,
}
FINAL: Final = ("final", "amended", "corrected")


def codings(concept: Any) -> list[Mapping[str, Any]]:
    if not isinstance(concept, Mapping):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, Mapping)]


def codes(concept: Any, system: str) -> list[str]:
    return [str(c["code"]) for c in codings(concept) if c.get("system") == system and c.get("code")]


def text_of(concept: Any) -> str | None:
    if not isinstance(concept, Mapping):
        return None
    if concept.get("text"):
        return str(concept["text"])
    return next((str(c["display"]) for c in codings(concept) if c.get("display")), None)


def subject(resource: Mapping[str, Any], key: str = "subject") -> str:
    reference = (resource.get(key) or {}).get("reference")
    if not reference:
        raise Unreadable(key, "a reference to the Patient of this Bundle")
    return str(reference)


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What reading an entry needs beyond the entry: the clinic's MRN system, the MRN to
    give a referred patient who has none of the clinic's, the Bundle's infusion sessions,
    and the clinic's time zone (a date without a time is midnight there)."""

    mrn_system: str
    assign_mrn: str | None = None
    session_encounters: frozenset[str] = frozenset()
    tz: tzinfo = UTC


def when(value: Any, path: str, *, tz: tzinfo = UTC, now: datetime | None = None) -> datetime:
    """A FHIR date or dateTime as an aware UTC time; a date alone reads as midnight in
    the clinic's time zone ``tz``."""
    if not isinstance(value, str):
        raise Unreadable(path, "a date or a date and time with its time zone")
    if len(value) == 10:
        t = datetime.combine(date.fromisoformat(value), time(0), tzinfo=tz)
    else:
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise Unreadable(path, f"a date and time, got {value!r}") from None
        if t.tzinfo is None:
            raise Unreadable(path, f"a time with its time zone, got {value!r}")
    t = t.astimezone(UTC)
    if t > (now or utc_now()):
        raise Unreadable(path, f"a time not in the future, got {value}")
    return t


def effective(resource: Mapping[str, Any], tz: tzinfo) -> datetime:
    if "effectiveDateTime" in resource:
        return when(resource["effectiveDateTime"], "effectiveDateTime", tz=tz)
    if "effectiveInstant" in resource:
        return when(resource["effectiveInstant"], "effectiveInstant", tz=tz)
    period = resource.get("effectivePeriod") or {}
    if period.get("start"):
        return when(period["start"], "effectivePeriod.start", tz=tz)
    raise Unreadable("effective[x]", "when it was measured (effectiveDateTime)")


def number(quantity: Any, path: str, unit: str) -> tuple[float, str]:
    """A Quantity's value and unit code (a Quantity may lack a value in FHIR: not here)."""
    if not isinstance(quantity, Mapping) or quantity.get("value") is None:
        raise Unreadable(path, f"a value in {unit}")
    try:
        value = float(quantity["value"])
    except (OverflowError, TypeError, ValueError):
        value = math.inf
    if not math.isfinite(value):
        raise Unreadable(f"{path}.value", f"a finite number in {unit}")
    return value, str(quantity.get("code") or quantity.get("unit") or "")


def convert(quantity: Any, unit: str, path: str) -> float:
    """A Quantity's value in ``unit`` (ketapain's unit), from any UCUM unit listed for it."""
    value, code = number(quantity, path, unit)
    known = _UNITS[unit]
    if code not in known:
        raise Unreadable(f"{path}.code", f"a UCUM unit among {', '.join(known)}, got {code!r}")
    return float(known[code](value))


def lab_value(test: LabTest, quantity: Any, path: str) -> float:
    unit = LAB_UNITS[test][0]
    value, code = number(quantity, path, unit)
    if test in MOLAR and code == "umol/L":
        return umol_per_l_to_mg_per_dl(value, umol_per_l_per_mg_per_dl=MOLAR[test])
    return convert(quantity, unit, path)
