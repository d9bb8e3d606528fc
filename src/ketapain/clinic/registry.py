"""Patient services: register, chart the history, read the record and the list."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import date
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ketapain.clinic._service import user_id
from ketapain.clinic.audit import Actor, unit_of_work
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.observations import VitalSigns
from ketapain.clinic.patients import (
    Allergy,
    BodyMeasurement,
    Demographics,
    Diagnosis,
    HistoryItem,
    LabResult,
    Medication,
    Patient,
)
from ketapain.clinic.permissions import Action, allowed, require
from ketapain.clinic.records import current, get_or_raise
from ketapain.errors import ConflictError, InvalidValueError

__all__ = [
    "current_demographics",
    "demographics_of",
    "list_patients",
    "patient_record",
    "patient_summary",
    "register_patient",
    "require_fresh",
]


def register_patient(
    db: Database,
    actor: Actor,
    *,
    mrn: str,
    family_name: str,
    given_name: str,
    birth_date: date,
    sex: str,
) -> Patient:
    """Register a patient with a medical record number and demographics."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.REGISTER_PATIENT)
        by = user_id(actor)
        if session.scalar(select(Patient.id).where(Patient.mrn == mrn.strip())) is not None:
            raise ConflictError("mrn", f"a patient with MRN {mrn.strip()!r} exists already")
        patient = Patient(mrn=mrn.strip(), recorded_by_id=by)
        session.add(patient)
        session.flush()
        session.add(
            Demographics(
                patient_id=patient.id,
                family_name=family_name.strip(),
                given_name=given_name.strip(),
                birth_date=birth_date,
                sex=sex,
                recorded_by_id=by,
            )
        )
    return patient


def demographics_of(session: Session, patient_id: uuid.UUID) -> Demographics:
    """The patient's current demographics."""
    row = session.scalars(
        current(Demographics)
        .where(Demographics.patient_id == patient_id)
        .order_by(Demographics.recorded_utc.desc())
        .limit(1)
    ).first()
    if row is None:
        raise ConflictError("demographics", f"patient {patient_id} has no demographics")
    return row


def current_demographics(
    session: Session, patient_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Demographics]:
    """The current demographics of each patient in ``patient_ids``, in one statement."""
    if not patient_ids:
        return {}
    rows = session.scalars(
        current(Demographics)
        .where(Demographics.patient_id.in_(patient_ids))
        .order_by(Demographics.recorded_utc)
    )
    return {d.patient_id: d for d in rows}  # the latest of each wins


def current_names(session: Session, patient_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The current "Family, Given" name of each patient in ``patient_ids``, in one
    statement of three columns (for lists)."""
    if not patient_ids:
        return {}
    names = (Demographics.patient_id, Demographics.family_name, Demographics.given_name)
    rows = session.execute(
        current(Demographics)
        .with_only_columns(*names)
        .where(Demographics.patient_id.in_(patient_ids))
        .order_by(Demographics.recorded_utc)
    )
    return {pid: f"{family}, {given}" for pid, family, given in rows}  # the latest of each wins


def _summary(patient: Patient, demo: Demographics, on: date) -> dict[str, Any]:
    return {
        "id": str(patient.id),
        "mrn": patient.mrn,
        "family_name": demo.family_name,
        "given_name": demo.given_name,
        "birth_date": demo.birth_date.isoformat(),
        "age_y": demo.age_y(on),
        "sex": str(demo.sex),
    }


def list_patients(
    session: Session, actor: Actor, *, search: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Patients (demographics only), matching ``search`` in the name or MRN."""
    require(actor, Action.READ_SCHEDULE)
    query = (
        current(Demographics)
        .join(Patient, Patient.id == Demographics.patient_id)
        .add_columns(Patient)
    )
    if search:
        # Search for the text as typed: % and _ are not wildcards here.
        text = search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = f"%{text}%"
        query = query.where(
            or_(
                Patient.mrn.ilike(like, escape="\\"),
                Demographics.family_name.ilike(like, escape="\\"),
                Demographics.given_name.ilike(like, escape="\\"),
            )
        )
    rows = session.execute(
        query.order_by(Demographics.family_name, Demographics.given_name).limit(limit)
    ).all()
    today = utc_now().date()
    return [_summary(p, d, today) for d, p in rows]


def _rows(session: Session, model: Any, patient_id: uuid.UUID, order: Any) -> Sequence[Any]:
    return session.scalars(
        current(model).where(model.patient_id == patient_id).order_by(order)
    ).all()


def patient_summary(session: Session, actor: Actor, patient_id: uuid.UUID) -> dict[str, Any]:
    """Who the patient is: MRN, name, birth date, age and sex (what the front desk sees)."""
    require(actor, Action.READ_SCHEDULE)
    patient = get_or_raise(session, Patient, patient_id, "patient")
    return _summary(patient, demographics_of(session, patient_id), utc_now().date())


def patient_record(session: Session, actor: Actor, patient_id: uuid.UUID) -> dict[str, Any]:
    """The patient's record: demographics for everyone allowed; the chart for clinicians."""
    out = patient_summary(session, actor, patient_id)
    if not allowed(actor, Action.READ_CLINICAL):
        return out
    meds = [m.as_dict() for m in _rows(session, Medication, patient_id, Medication.recorded_utc)]
    total = [m["mme_per_day"] for m in meds if m["active"] and m["mme_per_day"] is not None]

    out.update(
        {
            "measurements": [
                {
                    "id": str(b.id),
                    "measured_utc": b.measured_utc.isoformat(),
                    "weight_kg": b.weight_kg,
                    "height_cm": b.height_cm,
                }
                for b in _rows(session, BodyMeasurement, patient_id, BodyMeasurement.measured_utc)
            ],
            "diagnoses": [
                d.as_dict() for d in _rows(session, Diagnosis, patient_id, Diagnosis.recorded_utc)
            ],
            "history": [
                h.as_dict()
                for h in _rows(session, HistoryItem, patient_id, HistoryItem.recorded_utc)
            ],
            "allergies": [
                {
                    "id": str(a.id),
                    "substance": a.substance,
                    "reaction": a.reaction,
                    "severity": a.severity,
                }
                for a in _rows(session, Allergy, patient_id, Allergy.recorded_utc)
            ],
            "medications": meds,
            "mme_per_day_total": sum(total),
            "labs": [
                lab.as_dict()
                for lab in _rows(session, LabResult, patient_id, LabResult.collected_utc)
            ],
            "vitals": [
                v.as_dict()
                for v in _rows(session, VitalSigns, patient_id, VitalSigns.measured_utc)
                if v.infusion_id is None
            ],
        }
    )
    return out


def require_fresh(db: Database, *, today: date, what: str) -> None:
    """Refuse to fill a database that holds patients, or to chart after the real date
    (``today`` may not be later: the records refuse the future)."""
    if today > utc_now().date():
        raise InvalidValueError("today", f"on or before {utc_now().date()}", today.isoformat())
    with db.read() as session:
        if session.scalar(select(func.count()).select_from(Patient)):
            raise ConflictError(
                "database", f"the database holds patients already; {what} goes into a fresh "
                "database only",
            )  # fmt: skip
