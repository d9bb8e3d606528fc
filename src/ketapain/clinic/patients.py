"""Patients: identity, demographics, body measurements, diagnoses, history, allergies,
medications (with morphine milligram equivalents) and laboratory results.

Every table but ``patients`` (the identity and medical record number) is correctable:
a change of weight is a new measurement, a wrong birth date a correction with a reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar, Final

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ketapain.clinic._service import check_range
from ketapain.clinic.db import utc_now
from ketapain.clinic.records import Correctable, Record
from ketapain.errors import InvalidValueError
from ketapain.protocols.interactions import mme_per_day
from ketapain.protocols.vocabulary import (
    DIAGNOSES,
    HISTORY,
    Term,
    resolve_diagnosis,
    resolve_history,
)

__all__ = [
    "LAB_UNITS",
    "Allergy",
    "BodyMeasurement",
    "Demographics",
    "Diagnosis",
    "HistoryItem",
    "LabResult",
    "LabTest",
    "Medication",
    "Patient",
    "Sex",
]


class Sex(StrEnum):
    """Sex as the pharmacokinetic covariates and the ideal-weight formulas use it."""

    FEMALE = "female"
    MALE = "male"


class LabTest(StrEnum):
    """Laboratory tests screening reads."""

    ALT = "alt"
    AST = "ast"
    ALP = "alp"
    BILIRUBIN = "bilirubin"
    CREATININE = "creatinine"
    PREGNANCY_TEST = "pregnancy_test"


# One unit per test (LabResult.value holds it; the API returns it as "unit"). The bounds
# catch unit slips, not patients: the liver tests share the patient file's bounds
# (ketapain.protocols.patient); creatinine above 30 mg/dL is umol/L typed as mg/dL.
LAB_UNITS: Final = {
    LabTest.ALT: ("U/L", 0.0, 20000.0),
    LabTest.AST: ("U/L", 0.0, 20000.0),
    LabTest.ALP: ("U/L", 0.0, 20000.0),
    LabTest.BILIRUBIN: ("mg/dL", 0.0, 60.0),
    LabTest.CREATININE: ("mg/dL", 0.0, 30.0),
}


def _text(field: str, value: str | None, *, required: bool = True, most: int = 200) -> None:
    if value is None or not value.strip():
        if required:
            raise InvalidValueError(field, "a non-empty text", value)
        return
    if len(value) > most:
        raise InvalidValueError(field, f"at most {most} characters", f"{len(value)} characters")


class Patient(Record):
    """A patient's identity: the medical record number (never changes)."""

    __tablename__ = "patients"

    mrn: Mapped[str] = mapped_column(String(40), unique=True)

    def check(self) -> None:
        _text("mrn", self.mrn, most=40)


class Demographics(Correctable):
    """Name, birth date and sex; the latest current row is the patient's."""

    __tablename__ = "demographics"
    __copy_on_correct__: ClassVar = ("patient_id", "family_name", "given_name", "birth_date", "sex")

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    family_name: Mapped[str] = mapped_column(String(200))
    given_name: Mapped[str] = mapped_column(String(200))
    birth_date: Mapped[date]
    sex: Mapped[Sex] = mapped_column(String(10))

    def check(self) -> None:
        _text("family_name", self.family_name)
        _text("given_name", self.given_name)
        if self.sex not in set(Sex):
            raise InvalidValueError("sex", '"female" or "male"', self.sex)
        today = utc_now().date()
        if not date(today.year - 120, 1, 1) <= self.birth_date <= today:
            raise InvalidValueError("birth_date", "a date in the last 120 years", self.birth_date)

    def age_y(self, on: date) -> float:
        """Age in years on ``on`` (whole years, as clinicians count them)."""
        b = self.birth_date
        return float(on.year - b.year - ((on.month, on.day) < (b.month, b.day)))


class BodyMeasurement(Correctable):
    """Weight (and height when measured) at a time: the history the dosing weight reads."""

    __tablename__ = "body_measurements"
    __copy_on_correct__: ClassVar = ("patient_id", "measured_utc", "weight_kg", "height_cm")

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    measured_utc: Mapped[datetime] = mapped_column(default=utc_now)
    weight_kg: Mapped[float]
    height_cm: Mapped[float | None] = mapped_column(default=None)

    def check(self) -> None:
        # The bounds of the patient file (ketapain.protocols.patient): unit slips, not people.
        check_range("weight_kg", self.weight_kg, 1.0, 400.0)
        check_range("height_cm", self.height_cm, 50.0, 250.0)


class _Coded(Correctable):
    """An entry named by key, ICD-10-CM or SNOMED CT code, resolved to a vocabulary key."""

    __abstract__ = True
    __copy_on_correct__: ClassVar = ("patient_id", "code", "key")
    _vocabulary: ClassVar[dict[str, Term]]
    _resolve: ClassVar[Callable[[object, str], str]]

    code: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(60))

    def check(self) -> None:
        self.key = type(self)._resolve(self.code, "code")

    def as_dict(self) -> dict[str, Any]:
        """Key, code as entered, words and standard codes."""
        term = self._vocabulary[self.key]
        return {
            "id": str(self.id),
            "code": self.code,
            "key": self.key,
            "label": term.label,
            "icd10cm": list(term.icd10cm),
            "snomed": list(term.snomed),
        }


class Diagnosis(_Coded):
    """A diagnosis as entered (key, ICD-10-CM or SNOMED CT) and the vocabulary key."""

    __tablename__ = "diagnoses"
    _vocabulary = DIAGNOSES
    _resolve = staticmethod(resolve_diagnosis)

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)


class HistoryItem(_Coded):
    """A history item screening reads (a key, ICD-10-CM or SNOMED CT code)."""

    __tablename__ = "history_items"
    _vocabulary = HISTORY
    _resolve = staticmethod(resolve_history)

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)


class AllergySeverity(StrEnum):
    """Severity of an allergic reaction as reported."""

    MILD = "mild"
    MODERATE = "moderate"
    SEVERE = "severe"
    UNKNOWN = "unknown"


class Allergy(Correctable):
    """An allergy or intolerance: substance, reaction, severity."""

    __tablename__ = "allergies"
    __copy_on_correct__: ClassVar = ("patient_id", "substance", "reaction", "severity")

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    substance: Mapped[str] = mapped_column(String(200))
    reaction: Mapped[str | None] = mapped_column(Text, default=None)
    severity: Mapped[str] = mapped_column(String(10), default=AllergySeverity.UNKNOWN)

    def check(self) -> None:
        _text("substance", self.substance)
        if not self.severity:  # the column default is applied only at insert, after this
            self.severity = AllergySeverity.UNKNOWN
        if self.severity not in set(AllergySeverity):
            raise InvalidValueError(
                "severity", f"one of {', '.join(AllergySeverity)}", self.severity
            )


class Medication(Correctable):
    """A current medication; stopping it is a correction with ``active`` false."""

    __tablename__ = "medications"
    __copy_on_correct__: ClassVar = (
        "patient_id",
        "name",
        "dose_mg_per_day",
        "dose_mcg_per_h",
        "active",
    )

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    dose_mg_per_day: Mapped[float | None] = mapped_column(default=None)
    dose_mcg_per_h: Mapped[float | None] = mapped_column(default=None)
    active: Mapped[bool] = mapped_column(default=True)

    def check(self) -> None:
        _text("name", self.name)
        # 10 g/day and 1 mg/h bound every oral and transdermal dose: beyond is a unit slip.
        check_range("dose_mg_per_day", self.dose_mg_per_day, 0.0, 10000.0)
        check_range("dose_mcg_per_h", self.dose_mcg_per_h, 0.0, 1000.0)

    def as_dict(self) -> dict[str, Any]:
        """Name, dose, and morphine milligram equivalents for an opioid (CDC 2022)."""
        mme = mme_per_day(
            self.name, dose_mg_per_day=self.dose_mg_per_day, dose_mcg_per_h=self.dose_mcg_per_h
        )
        return {
            "id": str(self.id),
            "name": self.name,
            "dose_mg_per_day": self.dose_mg_per_day,
            "dose_mcg_per_h": self.dose_mcg_per_h,
            "active": self.active,
            "mme_per_day": None if mme is None else mme.mme_per_day,
            "mme_note": None if mme is None else mme.note,
            "mme_source": None if mme is None or mme.source is None else mme.source.cite(),
        }


class LabResult(Correctable):
    """A laboratory result with the reporting lab's reference range."""

    __tablename__ = "lab_results"
    __copy_on_correct__: ClassVar = (
        "patient_id",
        "test",
        "collected_utc",
        "value",
        "ref_low",
        "ref_high",
        "positive",
    )

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    test: Mapped[LabTest] = mapped_column(String(20))
    collected_utc: Mapped[datetime] = mapped_column(default=utc_now)
    value: Mapped[float | None] = mapped_column(default=None)
    ref_low: Mapped[float | None] = mapped_column(default=None)
    ref_high: Mapped[float | None] = mapped_column(default=None)
    # A qualitative result (pregnancy test): positive or negative.
    positive: Mapped[bool | None] = mapped_column(default=None)

    def check(self) -> None:
        if self.test not in set(LabTest):
            raise InvalidValueError("test", f"one of {', '.join(LabTest)}", self.test)
        if self.test == LabTest.PREGNANCY_TEST:
            if self.positive is None or self.value is not None:
                raise InvalidValueError("positive", "true or false (and no value)", self.positive)
            return
        if self.positive is not None:
            raise InvalidValueError("positive", f"not given for {self.test} (a number)", True)
        unit, low, high = LAB_UNITS[LabTest(self.test)]
        if self.value is None:
            raise InvalidValueError("value", f"a number in {unit}", None)
        check_range(f"value ({unit})", self.value, low, high)
        # The reporting lab's range is the one that counts; it must be given.
        if self.ref_high is None:
            raise InvalidValueError("ref_high", f"the lab's upper reference limit in {unit}", None)
        check_range(f"ref_high ({unit})", self.ref_high, 0.0, high)
        check_range(f"ref_low ({unit})", self.ref_low, 0.0, self.ref_high)

    @property
    def flag(self) -> str | None:
        """``"H"`` above the range, ``"L"`` below, ``"POS"`` for a positive test."""
        if self.positive:
            return "POS"
        if self.value is None:
            return None
        if self.ref_high is not None and self.value > self.ref_high:
            return "H"
        if self.ref_low is not None and self.value < self.ref_low:
            return "L"
        return None

    def as_dict(self) -> dict[str, Any]:
        """The result with its unit, range and flag."""
        unit = "" if self.test == LabTest.PREGNANCY_TEST else LAB_UNITS[LabTest(self.test)][0]
        return {
            "id": str(self.id),
            "test": str(self.test),
            "collected_utc": self.collected_utc.isoformat(),
            "value": self.value,
            "unit": unit,
            "ref_low": self.ref_low,
            "ref_high": self.ref_high,
            "positive": self.positive,
            "flag": self.flag,
        }
