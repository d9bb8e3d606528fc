"""What a nurse charts: vital signs, scores, side effects, rescue medication, discharge.

Every observation belongs to a patient and, during an infusion, to that infusion.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Final

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ketapain.clinic._service import check_range
from ketapain.clinic.db import utc_now
from ketapain.clinic.instruments import INSTRUMENTS
from ketapain.clinic.records import Correctable
from ketapain.errors import InvalidValueError

__all__ = [
    "RESCUE_DRUGS",
    "VITAL_RANGES",
    "DischargeCheck",
    "RescueMedication",
    "Score",
    "SideEffect",
    "VitalSigns",
]

# Physiological bounds: a value outside is a typing or unit error, not a patient
# (the bounds of the patient file, ketapain.protocols.patient; temperature 25-45 C
# spans survived hypothermia and hyperpyrexia).
VITAL_RANGES: Final = {
    "sbp_mmhg": (40.0, 300.0),
    "dbp_mmhg": (20.0, 200.0),
    "hr_per_min": (20.0, 250.0),
    "rr_per_min": (2.0, 80.0),
    "spo2_pct": (50.0, 100.0),
    "temp_c": (25.0, 45.0),
}
# Rescue medications of the seed protocols: midazolam for dysphoria, ondansetron for
# nausea, clonidine for hypertension or emergence reactions (premedication tables of
# the protocol library); "other" takes any drug by name.
RESCUE_DRUGS: Final = ("midazolam", "ondansetron", "clonidine", "other")


def _json_columns(copied: tuple[str, ...]) -> tuple[str, ...]:
    """The columns an observation's JSON is made of (its ``json_of`` reads them, and a
    list reads them alone): its id and what a correction copies, but the patient (the
    lists are of one infusion)."""
    return ("id", *(name for name in copied if name != "patient_id"))


class VitalSigns(Correctable):
    """One set of vital signs; any subset may be measured."""

    __tablename__ = "vital_signs"
    __copy_on_correct__: ClassVar = (
        "patient_id",
        "infusion_id",
        "measured_utc",
        *VITAL_RANGES,
        "on_oxygen",
    )
    __json_columns__: ClassVar = _json_columns(__copy_on_correct__)

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    infusion_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("infusions.id"), default=None, index=True
    )
    measured_utc: Mapped[datetime] = mapped_column(default=utc_now)
    sbp_mmhg: Mapped[float | None] = mapped_column(default=None)
    dbp_mmhg: Mapped[float | None] = mapped_column(default=None)
    hr_per_min: Mapped[float | None] = mapped_column(default=None)
    rr_per_min: Mapped[float | None] = mapped_column(default=None)
    spo2_pct: Mapped[float | None] = mapped_column(default=None)
    temp_c: Mapped[float | None] = mapped_column(default=None)
    on_oxygen: Mapped[bool] = mapped_column(default=False)

    def check(self) -> None:
        values = {k: getattr(self, k) for k in VITAL_RANGES}
        if all(v is None for v in values.values()):
            raise InvalidValueError("vital signs", f"at least one of {', '.join(values)}", None)
        for key, (low, high) in VITAL_RANGES.items():
            check_range(key, values[key], low, high)
        if (
            self.sbp_mmhg is not None
            and self.dbp_mmhg is not None
            and self.dbp_mmhg >= self.sbp_mmhg
        ):
            raise InvalidValueError("dbp_mmhg", "below sbp_mmhg", self.dbp_mmhg)

    @staticmethod
    def json_of(row: Any) -> dict[str, Any]:
        """The measured values (None where not measured), of a row or of its
        ``__json_columns__`` read alone."""
        return {
            "id": str(row.id),
            "infusion_id": None if row.infusion_id is None else str(row.infusion_id),
            "measured_utc": row.measured_utc.isoformat(),
            **{k: getattr(row, k) for k in VITAL_RANGES},
            "on_oxygen": row.on_oxygen,
        }

    def as_dict(self) -> dict[str, Any]:
        """The measured values (None where not measured)."""
        return self.json_of(self)


class Score(Correctable):
    """A score on one of the instruments; itemised scores store items and their total."""

    __tablename__ = "scores"
    __copy_on_correct__: ClassVar = (
        "patient_id",
        "infusion_id",
        "measured_utc",
        "instrument",
        "value",
        "items",
    )
    __json_columns__: ClassVar = _json_columns(__copy_on_correct__)

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    infusion_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("infusions.id"), default=None, index=True
    )
    measured_utc: Mapped[datetime] = mapped_column(default=utc_now)
    instrument: Mapped[str] = mapped_column(String(20), index=True)
    value: Mapped[float]
    items: Mapped[dict[str, Any] | None] = mapped_column(default=None)

    def check(self) -> None:
        inst = INSTRUMENTS.get(self.instrument)
        if inst is None:
            raise InvalidValueError(
                "instrument", f"one of {', '.join(INSTRUMENTS)}", self.instrument
            )
        if inst.items:
            # The total of an itemised score is computed, never typed in.
            if self.items is None:
                raise InvalidValueError("items", f"the items {', '.join(inst.items)}", None)
            total = inst.total(self.items)
            if self.value is not None and abs(self.value - total) > 1e-9:
                what = "mean" if inst.mean_of_items else "sum"
                raise InvalidValueError("value", f"the {what} of the items ({total:g})", self.value)
            self.value = total
        elif self.items:
            raise InvalidValueError("items", f"none for {inst.name}", self.items)
        if self.value is None:
            raise InvalidValueError("value", f"a {inst.low} to {inst.high} score", None)
        inst.check(self.value)

    @staticmethod
    def json_of(row: Any) -> dict[str, Any]:
        """Instrument, value, items and whether it passes (discharge scores), of a row or
        of its ``__json_columns__`` read alone."""
        inst = INSTRUMENTS[row.instrument]
        return {
            "id": str(row.id),
            "infusion_id": None if row.infusion_id is None else str(row.infusion_id),
            "measured_utc": row.measured_utc.isoformat(),
            "instrument": row.instrument,
            "value": row.value,
            "items": row.items,
            "passes": inst.passes(row.value),
            "source": inst.source.cite(),
        }

    def as_dict(self) -> dict[str, Any]:
        """Instrument, value, items and whether it passes (discharge scores)."""
        return self.json_of(self)


class Severity(StrEnum):
    """Severity of a side effect as charted."""

    MILD = "mild"
    MODERATE = "moderate"
    SEVERE = "severe"


class SideEffect(Correctable):
    """A side effect seen during or after an infusion."""

    __tablename__ = "side_effects"
    __copy_on_correct__: ClassVar = (
        "patient_id",
        "infusion_id",
        "observed_utc",
        "effect",
        "severity",
        "note",
    )
    __json_columns__: ClassVar = _json_columns(__copy_on_correct__)

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    infusion_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("infusions.id"), default=None, index=True
    )
    observed_utc: Mapped[datetime] = mapped_column(default=utc_now)
    effect: Mapped[str] = mapped_column(String(100))
    severity: Mapped[str] = mapped_column(String(10))
    note: Mapped[str | None] = mapped_column(Text, default=None)

    def check(self) -> None:
        if not self.effect or not self.effect.strip():
            raise InvalidValueError("effect", "a non-empty text", self.effect)
        if self.severity not in set(Severity):
            raise InvalidValueError("severity", f"one of {', '.join(Severity)}", self.severity)

    @staticmethod
    def json_of(row: Any) -> dict[str, Any]:
        """Effect, severity and note, of a row or of its ``__json_columns__`` read alone."""
        return {
            "id": str(row.id),
            "infusion_id": None if row.infusion_id is None else str(row.infusion_id),
            "observed_utc": row.observed_utc.isoformat(),
            "effect": row.effect,
            "severity": row.severity,
            "note": row.note,
        }

    def as_dict(self) -> dict[str, Any]:
        """Effect, severity and note."""
        return self.json_of(self)


class RescueMedication(Correctable):
    """A rescue medication given: drug, dose, route, reason."""

    __tablename__ = "rescue_medications"
    __copy_on_correct__: ClassVar = (
        "patient_id",
        "infusion_id",
        "given_utc",
        "drug",
        "drug_name",
        "dose_mg",
        "route",
        "reason",
    )
    __json_columns__: ClassVar = _json_columns(__copy_on_correct__)

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    infusion_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("infusions.id"), default=None, index=True
    )
    given_utc: Mapped[datetime] = mapped_column(default=utc_now)
    drug: Mapped[str] = mapped_column(String(20))
    drug_name: Mapped[str | None] = mapped_column(String(100), default=None)
    dose_mg: Mapped[float]
    route: Mapped[str] = mapped_column(String(10), default="iv")
    reason: Mapped[str] = mapped_column(Text)

    def check(self) -> None:
        if self.drug not in RESCUE_DRUGS:
            raise InvalidValueError("drug", f"one of {', '.join(RESCUE_DRUGS)}", self.drug)
        if self.drug == "other" and not (self.drug_name or "").strip():
            raise InvalidValueError("drug_name", "the drug's name (drug is 'other')", None)
        # Any single rescue dose above 100 mg is a unit slip (mg typed as ug).
        check_range("dose_mg", self.dose_mg, 0.001, 100.0)
        if not self.route:  # the column default is applied only at insert, after this
            self.route = "iv"
        if self.route not in ("iv", "im", "po", "sl", "sc", "in"):
            raise InvalidValueError("route", "one of iv, im, po, sl, sc, in", self.route)
        if not self.reason or not self.reason.strip():
            raise InvalidValueError("reason", "why it was given", self.reason)

    @staticmethod
    def json_of(row: Any) -> dict[str, Any]:
        """Drug, dose, route, reason, of a row or of its ``__json_columns__`` read alone."""
        return {
            "id": str(row.id),
            "infusion_id": None if row.infusion_id is None else str(row.infusion_id),
            "given_utc": row.given_utc.isoformat(),
            "drug": row.drug_name if row.drug == "other" else row.drug,
            "dose_mg": row.dose_mg,
            "route": row.route,
            "reason": row.reason,
        }

    def as_dict(self) -> dict[str, Any]:
        """Drug, dose, route, reason."""
        return self.json_of(self)


class DischargeCheck(Correctable):
    """The discharge check of an infusion: escort confirmed, readiness from the scores."""

    __tablename__ = "discharge_checks"
    __copy_on_correct__: ClassVar = (
        "patient_id",
        "infusion_id",
        "checked_utc",
        "escort_confirmed",
        "escort_name",
        "note",
    )

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    infusion_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("infusions.id"), index=True)
    checked_utc: Mapped[datetime] = mapped_column(default=utc_now)
    escort_confirmed: Mapped[bool]
    escort_name: Mapped[str | None] = mapped_column(String(200), default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)

    def check(self) -> None:
        if self.escort_confirmed and not (self.escort_name or "").strip():
            raise InvalidValueError("escort_name", "the escort's name when confirmed", None)
