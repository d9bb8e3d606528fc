"""Patients: register, list, read; chart history, medications, labs; screen; correct."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any, Final

from fastapi import APIRouter
from pydantic import AwareDatetime, Field

from ketapain.clinic._service import add_row, correct_row
from ketapain.clinic.charting import record_score, record_vitals
from ketapain.clinic.courses import Booster, Decision, OralPrescription
from ketapain.clinic.observations import (
    DischargeCheck,
    RescueMedication,
    Score,
    SideEffect,
    VitalSigns,
)
from ketapain.clinic.patients import (
    Allergy,
    BodyMeasurement,
    Demographics,
    Diagnosis,
    HistoryItem,
    LabResult,
    Medication,
)
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.records import Correctable
from ketapain.clinic.registry import list_patients, patient_record, register_patient
from ketapain.clinic.screenings import latest_screening, run_screening
from ketapain.errors import InvalidValueError, RecordNotFoundError
from ketapain.web.api._schemas import Body, Correction, OverrideIn
from ketapain.web.deps import ActorDep, DbDep, ReadDep, RulesDep

router = APIRouter(tags=["patients"])


class PatientIn(Body):
    """A new patient: MRN and demographics."""

    mrn: str = Field(min_length=1)
    family_name: str
    given_name: str
    birth_date: date
    sex: str


class MeasurementIn(Body):
    """Weight (and height) at a time."""

    weight_kg: float
    height_cm: float | None = None
    measured_utc: AwareDatetime | None = None


class CodeIn(Body):
    """A diagnosis or history item: key, ICD-10-CM or SNOMED CT code."""

    code: str


class AllergyIn(Body):
    """An allergy."""

    substance: str
    reaction: str | None = None
    severity: str = "unknown"


class MedicationIn(Body):
    """A current medication (``dose_mcg_per_h`` for a patch)."""

    name: str
    dose_mg_per_day: float | None = None
    dose_mcg_per_h: float | None = None


class LabIn(Body):
    """A lab result with the reporting lab's range (pregnancy test: ``positive``)."""

    test: str
    value: float | None = None
    ref_low: float | None = None
    ref_high: float | None = None
    positive: bool | None = None
    collected_utc: AwareDatetime | None = None


class ScreeningIn(Body):
    """Screen the chart for a protocol, with a physician's overrides."""

    protocol: str | None = None
    overrides: list[OverrideIn] = Field(default_factory=list)


class VitalsIn(Body):
    """Vital signs; any subset."""

    infusion_id: uuid.UUID | None = None
    measured_utc: AwareDatetime | None = None
    sbp_mmhg: float | None = None
    dbp_mmhg: float | None = None
    hr_per_min: float | None = None
    rr_per_min: float | None = None
    spo2_pct: float | None = None
    temp_c: float | None = None
    on_oxygen: bool = False


class ScoreIn(Body):
    """A score: ``value`` for a single-item scale, ``items`` for an itemised one."""

    instrument: str
    value: float | None = None
    items: dict[str, int] | None = None
    infusion_id: uuid.UUID | None = None
    measured_utc: AwareDatetime | None = None


class SideEffectIn(Body):
    """A side effect."""

    effect: str
    severity: str
    note: str | None = None
    infusion_id: uuid.UUID | None = None
    observed_utc: AwareDatetime | None = None


class RescueIn(Body):
    """A rescue medication given."""

    drug: str
    drug_name: str | None = None
    dose_mg: float
    route: str = "iv"
    reason: str
    infusion_id: uuid.UUID | None = None
    given_utc: AwareDatetime | None = None


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@router.get("/patients")
def patients(session: ReadDep, actor: ActorDep, search: str | None = None) -> list[dict[str, Any]]:
    """Patients (demographics), matching ``search`` in the name or MRN."""
    return list_patients(session, actor, search=search)


@router.post("/patients", status_code=201)
def register(body: PatientIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Register a patient."""
    p = register_patient(db, actor, **body.model_dump())
    return {"id": str(p.id), "mrn": p.mrn}


@router.get("/patients/{patient_id}")
def patient(patient_id: uuid.UUID, session: ReadDep, actor: ActorDep) -> dict[str, Any]:
    """The record: demographics for everyone allowed, the chart for clinicians."""
    return patient_record(session, actor, patient_id)


def _add(db: Any, actor: Any, row: Any) -> dict[str, Any]:
    add_row(db, actor, Action.CHART, row)
    return {"id": str(row.id)}


@router.post("/patients/{patient_id}/measurements", status_code=201)
def measurement(
    patient_id: uuid.UUID, body: MeasurementIn, db: DbDep, actor: ActorDep
) -> dict[str, Any]:
    """Chart a weight (and height)."""
    return _add(db, actor, BodyMeasurement(patient_id=patient_id, **_drop_none(body.model_dump())))


@router.post("/patients/{patient_id}/diagnoses", status_code=201)
def diagnosis(patient_id: uuid.UUID, body: CodeIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Chart a diagnosis (key, ICD-10-CM or SNOMED CT)."""
    return _add(db, actor, Diagnosis(patient_id=patient_id, code=body.code))


@router.post("/patients/{patient_id}/history", status_code=201)
def history(patient_id: uuid.UUID, body: CodeIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Chart a history item screening reads."""
    return _add(db, actor, HistoryItem(patient_id=patient_id, code=body.code))


@router.post("/patients/{patient_id}/allergies", status_code=201)
def allergy(patient_id: uuid.UUID, body: AllergyIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Chart an allergy."""
    return _add(db, actor, Allergy(patient_id=patient_id, **body.model_dump()))


@router.post("/patients/{patient_id}/medications", status_code=201)
def medication(
    patient_id: uuid.UUID, body: MedicationIn, db: DbDep, actor: ActorDep
) -> dict[str, Any]:
    """Chart a current medication; opioids are converted to MME/day on reading."""
    return _add(db, actor, Medication(patient_id=patient_id, **body.model_dump()))


@router.post("/patients/{patient_id}/labs", status_code=201)
def lab(patient_id: uuid.UUID, body: LabIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Chart a laboratory result with the lab's reference range."""
    return _add(db, actor, LabResult(patient_id=patient_id, **_drop_none(body.model_dump())))


@router.post("/patients/{patient_id}/screenings", status_code=201)
def screening(
    patient_id: uuid.UUID, body: ScreeningIn, db: DbDep, actor: ActorDep
) -> dict[str, Any]:
    """Screen the chart (``eligible``, ``findings``, ``overrides``) and keep the result."""
    row = run_screening(
        db,
        actor,
        patient_id=patient_id,
        protocol=body.protocol,
        overrides=[(o.code, o.reason) for o in body.overrides],
    )
    return row.as_dict()


@router.get("/patients/{patient_id}/screenings/latest")
def last_screening(patient_id: uuid.UUID, session: ReadDep, actor: ActorDep) -> dict[str, Any]:
    """The latest screening of the patient."""
    require(actor, Action.READ_CLINICAL)
    row = latest_screening(session, patient_id)
    if row is None:
        raise RecordNotFoundError("screening of patient", patient_id)
    return row.as_dict()


@router.post("/patients/{patient_id}/vitals", status_code=201)
def vitals(
    patient_id: uuid.UUID, body: VitalsIn, db: DbDep, actor: ActorDep, rules: RulesDep
) -> dict[str, Any]:
    """Chart vital signs; the answer lists the alarms they raised."""
    values = body.model_dump()
    row, alarms = record_vitals(db, actor, rules, patient_id=patient_id, **values)
    return {"id": str(row.id), "alarms": [a.as_dict() for a in alarms]}


@router.post("/patients/{patient_id}/scores", status_code=201)
def score(
    patient_id: uuid.UUID, body: ScoreIn, db: DbDep, actor: ActorDep, rules: RulesDep
) -> dict[str, Any]:
    """Chart a score (pain, sedation, dissociation, nausea, Aldrete, PADSS)."""
    row, alarms = record_score(db, actor, rules, patient_id=patient_id, **body.model_dump())
    return {**row.as_dict(), "alarms": [a.as_dict() for a in alarms]}


@router.post("/patients/{patient_id}/side-effects", status_code=201)
def side_effect(
    patient_id: uuid.UUID, body: SideEffectIn, db: DbDep, actor: ActorDep
) -> dict[str, Any]:
    """Chart a side effect."""
    return _add(db, actor, SideEffect(patient_id=patient_id, **_drop_none(body.model_dump())))


@router.post("/patients/{patient_id}/rescue-medications", status_code=201)
def rescue(patient_id: uuid.UUID, body: RescueIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Chart a rescue medication (midazolam, ondansetron, clonidine or other)."""
    return _add(db, actor, RescueMedication(patient_id=patient_id, **_drop_none(body.model_dump())))


# What each correctable kind is, and who may correct it.
CORRECTABLE: Final[dict[str, tuple[type[Correctable], Action]]] = {
    "demographics": (Demographics, Action.REGISTER_PATIENT),
    "measurements": (BodyMeasurement, Action.CHART),
    "diagnoses": (Diagnosis, Action.CHART),
    "history": (HistoryItem, Action.CHART),
    "allergies": (Allergy, Action.CHART),
    "medications": (Medication, Action.CHART),
    "labs": (LabResult, Action.CHART),
    "vitals": (VitalSigns, Action.CHART),
    "scores": (Score, Action.CHART),
    "side-effects": (SideEffect, Action.CHART),
    "rescue-medications": (RescueMedication, Action.CHART),
    "discharge-checks": (DischargeCheck, Action.CHART),
    "decisions": (Decision, Action.DECIDE),
    "boosters": (Booster, Action.PRESCRIBE),
    "oral-prescriptions": (OralPrescription, Action.PRESCRIBE),
}


@router.post("/records/{kind}/{record_id}/corrections", status_code=201)
def correction(
    kind: str, record_id: uuid.UUID, body: Correction, db: DbDep, actor: ActorDep
) -> dict[str, Any]:
    """Correct (or retract) a record: a new entry pointing at the old one, with the reason."""
    if kind not in CORRECTABLE:
        raise InvalidValueError("kind", f"one of {', '.join(CORRECTABLE)}", kind)
    model, action = CORRECTABLE[kind]
    row = correct_row(
        db,
        actor,
        action,
        model,
        record_id,
        kind=kind,
        reason=body.reason,
        entered_in_error=body.entered_in_error,
        changes=body.changes,
    )
    return {
        "id": str(row.id),
        "corrects_id": str(record_id),
        "entered_in_error": row.entered_in_error,
    }
