"""The patient file that screening and planning read (JSON).

Every key is documented in the README ("Patient files"); an unknown key, an unknown
diagnosis or history item, a wrong type or an impossible value is an error that names
the field and the allowed values. Example::

    {"age_y": 45, "sex": "female", "weight_kg": 68, "height_cm": 165, "pregnant": false,
     "diagnoses": ["crps_1"], "history": ["uncontrolled_hypertension"],
     "medications": [{"name": "oxycodone", "dose_mg_per_day": 40}],
     "labs": {"alt_u_per_l": 30, "ast_u_per_l": 25, "alt_uln_u_per_l": 40,
              "ast_uln_u_per_l": 40},
     "vitals": {"sbp_mmhg": 128, "dbp_mmhg": 80, "hr_per_min": 72, "spo2_pct": 98}}

>>> p = Patient.from_dict({"age_y": 45, "sex": "female", "weight_kg": 68,
...                        "diagnoses": ["G90.511"]})
>>> p.diagnoses
('crps_1',)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ketapain._files import key_name, read_json
from ketapain.errors import InvalidValueError
from ketapain.protocols.vocabulary import resolve_diagnosis, resolve_history

__all__ = ["Labs", "Medication", "Patient", "Vitals"]

_KEYS: Final = frozenset(
    {
        "patient_id",
        "age_y",
        "sex",
        "weight_kg",
        "height_cm",
        "pregnant",
        "pain_nrs",
        "diagnoses",
        "history",
        "medications",
        "labs",
        "vitals",
    }
)
# Physiological bounds: a value outside is a typing or unit error, not a patient.
_LAB_RANGES: Final = {
    "alt_u_per_l": (0.0, 20000.0),
    "ast_u_per_l": (0.0, 20000.0),
    "alt_uln_u_per_l": (1.0, 500.0),
    "ast_uln_u_per_l": (1.0, 500.0),
    "bilirubin_mg_per_dl": (0.0, 60.0),
    "bilirubin_uln_mg_per_dl": (0.1, 10.0),
}
_VITAL_RANGES: Final = {
    "sbp_mmhg": (40.0, 300.0),
    "dbp_mmhg": (20.0, 200.0),
    "hr_per_min": (20.0, 250.0),
    "spo2_pct": (50.0, 100.0),
    "rr_per_min": (2.0, 80.0),
}


def _num(data: Mapping[str, Any], key: str, prefix: str, low: float, high: float) -> float:
    value = data.get(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise InvalidValueError(f"{prefix}{key}", f"a number from {low:g} to {high:g}", value)
    return float(value)


def _opt(data: Mapping[str, Any], key: str, prefix: str, low: float, high: float) -> float | None:
    return None if data.get(key) is None else _num(data, key, prefix, low, high)


def _table(data: Mapping[str, Any], key: str, allowed: Mapping[str, object]) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise InvalidValueError(key, "an object", value)
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise InvalidValueError(
            f"{key}.{key_name(unknown[0])}", f"one of {', '.join(allowed)}", "given"
        )
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Medication:
    """A current medication: name and daily dose (``dose_mcg_per_h`` for a patch)."""

    name: str
    dose_mg_per_day: float | None = None
    dose_mcg_per_h: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Labs:
    """Liver tests with their upper limits of normal (ULN) from the reporting lab."""

    alt_u_per_l: float | None = None
    ast_u_per_l: float | None = None
    alt_uln_u_per_l: float | None = None
    ast_uln_u_per_l: float | None = None
    bilirubin_mg_per_dl: float | None = None
    bilirubin_uln_mg_per_dl: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Vitals:
    """Baseline vital signs."""

    sbp_mmhg: float | None = None
    dbp_mmhg: float | None = None
    hr_per_min: float | None = None
    spo2_pct: float | None = None
    rr_per_min: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Patient:
    """What screening and planning need to know about a patient."""

    age_y: float
    sex: str
    weight_kg: float
    height_cm: float | None = None
    pregnant: bool = False
    pain_nrs: float | None = None
    patient_id: str | None = None
    diagnoses: tuple[str, ...] = ()
    history: tuple[str, ...] = ()
    medications: tuple[Medication, ...] = ()
    labs: Labs = field(default_factory=Labs)
    vitals: Vitals = field(default_factory=Vitals)

    @classmethod
    def from_dict(cls, data: object) -> Patient:
        """Validate a decoded patient JSON object."""
        if not isinstance(data, Mapping):
            raise InvalidValueError("patient", "a JSON object", type(data).__name__)
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise InvalidValueError(
                key_name(unknown[0]), f"one of {', '.join(sorted(_KEYS))}", "given"
            )
        for key in ("age_y", "sex", "weight_kg"):
            if key not in data:
                raise InvalidValueError(key, "given", None)
        sex = data["sex"]
        if sex not in ("female", "male"):
            raise InvalidValueError("sex", '"female" or "male"', sex)
        pregnant = data.get("pregnant", False)
        if not isinstance(pregnant, bool):
            raise InvalidValueError("pregnant", "true or false", pregnant)
        pid = data.get("patient_id")
        if pid is not None and (not isinstance(pid, str) or not pid.strip()):
            raise InvalidValueError("patient_id", "a non-empty string", pid)
        labs = _table(data, "labs", _LAB_RANGES)
        vitals = _table(data, "vitals", _VITAL_RANGES)
        return cls(
            age_y=_num(data, "age_y", "", 0.0, 120.0),
            sex=sex,
            weight_kg=_num(data, "weight_kg", "", 1.0, 400.0),
            height_cm=_opt(data, "height_cm", "", 50.0, 250.0),
            pregnant=pregnant,
            pain_nrs=_opt(data, "pain_nrs", "", 0.0, 10.0),
            patient_id=pid,
            diagnoses=_codes(data, "diagnoses", resolve_diagnosis),
            history=_codes(data, "history", resolve_history),
            medications=tuple(_medication(m, i) for i, m in enumerate(_list(data, "medications"))),
            labs=Labs(**{k: _opt(labs, k, "labs.", *r) for k, r in _LAB_RANGES.items()}),
            vitals=Vitals(**{k: _opt(vitals, k, "vitals.", *r) for k, r in _VITAL_RANGES.items()}),
        )

    @classmethod
    def from_json_file(cls, path: str | Path) -> Patient:
        """Read a patient JSON file."""
        p = Path(path)
        try:
            data = read_json(p, "patient file")
        except (FileNotFoundError, IsADirectoryError):
            raise InvalidValueError("patient file", "an existing JSON file", str(p)) from None
        return cls.from_dict(data)

    def has(self, *history: str) -> bool:
        """True if any of the history keys is present."""
        return any(h in self.history for h in history)


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise InvalidValueError(key, "an array", value)
    return value


def _codes(data: Mapping[str, Any], key: str, resolve: Any) -> tuple[str, ...]:
    keys = [resolve(item, f"{key}[{i}]") for i, item in enumerate(_list(data, key))]
    return tuple(dict.fromkeys(keys))


def _medication(item: object, i: int) -> Medication:
    prefix = f"medications[{i}]."
    if not isinstance(item, Mapping):
        raise InvalidValueError(prefix.rstrip("."), "an object with a name", item)
    allowed = {"name", "dose_mg_per_day", "dose_mcg_per_h"}
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise InvalidValueError(
            f"{prefix}{key_name(unknown[0])}", f"one of {', '.join(sorted(allowed))}", "given"
        )
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidValueError(f"{prefix}name", "a non-empty string", name)
    return Medication(
        name=" ".join(name.split()),
        dose_mg_per_day=_opt(item, "dose_mg_per_day", prefix, 0.0, 100000.0),
        dose_mcg_per_h=_opt(item, "dose_mcg_per_h", prefix, 0.0, 1000.0),
    )
