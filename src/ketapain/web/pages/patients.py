"""Patients: the list, intake, and the record with its charting forms, screening and
the physician's override form."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from ketapain.clinic._service import add_row
from ketapain.clinic.audit import reading
from ketapain.clinic.charting import open_alarms
from ketapain.clinic.patients import (
    LAB_UNITS,
    Allergy,
    AllergySeverity,
    BodyMeasurement,
    Diagnosis,
    HistoryItem,
    LabResult,
    LabTest,
    Medication,
    Sex,
)
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.records import Record
from ketapain.clinic.registry import list_patients, patient_record, register_patient
from ketapain.clinic.screenings import latest_screening, run_screening
from ketapain.clinic.worklists import courses_of
from ketapain.errors import AccessDeniedError, KetapainError
from ketapain.protocols.library import list_protocols
from ketapain.protocols.vocabulary import DIAGNOSES, HISTORY
from ketapain.web.deps import DbDep
from ketapain.web.pages._render import (
    FormReader,
    PageUser,
    PageUserDep,
    field_errors,
    overrides_in,
    read_form,
    redirect,
    refused_on_page,
    render,
)

__all__ = ["router"]

router = APIRouter()

# The vocabulary, with codes, for the code search of the diagnosis and history forms.
_CODES: Final = {
    "diagnosis": [(t.key, t.label, ", ".join((*t.icd10cm, *t.snomed))) for t in DIAGNOSES.values()],
    "history": [(t.key, t.label, ", ".join((*t.icd10cm, *t.snomed))) for t in HISTORY.values()],
}


@router.get("/patients")
def patients(request: Request, db: DbDep, me: PageUserDep, q: str | None = None) -> Response:
    """Patients matching the search (name or MRN)."""
    with reading(db, me.user.actor()) as session:
        rows = list_patients(session, me.user.actor(), search=q or None)
    return render(request, "patients.html", page_user=me, patients=rows, q=q or "")


def _intake_page(request: Request, me: PageUser, **context: Any) -> Response:
    return render(
        request,
        "patient_new.html",
        page_user=me,
        sexes=[(s.value, s.value) for s in Sex],
        **context,
    )


@router.get("/patients/new")
def intake_form(request: Request, db: DbDep, me: PageUserDep) -> Response:
    """The intake form: identity, demographics, weight and height (for those who may
    register a patient; a refusal is audited)."""
    actor = me.user.actor()
    with reading(db, actor):
        require(actor, Action.REGISTER_PATIENT)
    return _intake_page(request, me)


@router.post("/patients/new")
async def intake(request: Request, db: DbDep, me: PageUserDep) -> Response:
    """Register the patient (and the first weight); on an error, the form comes back."""
    form = await read_form(request, me.secret)
    r = FormReader(form, me.tz)
    values: dict[str, Any] = {
        "mrn": r.text("mrn", required=True, what="the medical record number"),
        "family_name": r.text("family_name", required=True, what="the family name"),
        "given_name": r.text("given_name", required=True, what="the given name"),
        "birth_date": r.day("birth_date", required=True),
        "sex": r.text("sex", required=True, what="female or male"),
    }
    weight_kg = r.number("weight_kg")
    height_cm = r.number("height_cm")
    if weight_kg is not None and not me.may("chart"):
        r.errors["weight_kg"] = "Your role registers patients but does not chart: leave it empty."
    try:
        r.done()
        if weight_kg is not None:  # check the weight before the patient is written
            BodyMeasurement(
                patient_id=uuid.uuid4(), weight_kg=weight_kg, height_cm=height_cm
            ).check()
        patient = register_patient(db, me.user.actor(), **values)
        if weight_kg is not None:
            add_row(
                db,
                me.user.actor(),
                Action.CHART,
                BodyMeasurement(patient_id=patient.id, weight_kg=weight_kg, height_cm=height_cm),
            )
    except AccessDeniedError as refused:
        errors = refused_on_page(refused, me.user.actor(), Action.REGISTER_PATIENT)
        return _intake_page(request, me, status=403, values=form, errors=errors)
    except KetapainError as err:
        return _intake_page(request, me, status=422, values=form, errors=field_errors(err))
    return redirect(f"/patients/{patient.id}", page_user=me, flash=[("ok", "Patient registered.")])


def _record_page(
    request: Request, db: DbDep, me: PageUser, patient_id: uuid.UUID, **context: Any
) -> Response:
    actor = me.user.actor()
    with reading(db, actor) as session:
        record = patient_record(session, actor, patient_id)
        clinical = me.may("read_clinical")
        screening = latest_screening(session, patient_id) if clinical else None
        courses = courses_of(session, actor, patient_id) if clinical else []
        alarms = open_alarms(session, actor, patient_id=patient_id) if clinical else []
    return render(
        request,
        "patient.html",
        page_user=me,
        p=record,
        clinical=clinical,
        screening=None if screening is None else screening.as_dict(),
        courses=courses,
        alarms=alarms,
        codes=_CODES,
        protocols=[(pr.name, f"{pr.name}: {pr.title}") for pr in list_protocols()],
        lab_tests=[
            (t.value, f"{t.value.replace('_', ' ')} ({LAB_UNITS.get(t, '')})") for t in LabTest
        ],
        severities=[(s.value, s.value) for s in AllergySeverity],
        **context,
    )


@router.get("/patients/{patient_id}")
def record(request: Request, patient_id: uuid.UUID, db: DbDep, me: PageUserDep) -> Response:
    """The record: demographics, chart, screening, courses."""
    return _record_page(request, db, me, patient_id)


def _measurement(r: FormReader, pid: uuid.UUID) -> Record:
    return BodyMeasurement(
        patient_id=pid,
        weight_kg=r.number("weight_kg", required=True, what="the weight"),
        height_cm=r.number("height_cm"),
        **({"measured_utc": t} if (t := r.when("measured_at")) else {}),
    )


def _lab(r: FormReader, pid: uuid.UUID) -> Record:
    positive = r.text("positive")
    return LabResult(
        patient_id=pid,
        test=r.text("test", required=True, what="the test"),
        value=r.number("value"),
        ref_low=r.number("ref_low"),
        ref_high=r.number("ref_high"),
        positive=None if positive is None else positive == "positive",
        **({"collected_utc": t} if (t := r.when("collected_at")) else {}),
    )


# Each charting form of the record: the row it appends.
_SECTIONS: Final[dict[str, Callable[[FormReader, uuid.UUID], Record]]] = {
    "measurements": _measurement,
    "diagnoses": lambda r, pid: Diagnosis(
        patient_id=pid, code=r.text("code", required=True, what="a key or code")
    ),
    "history": lambda r, pid: HistoryItem(
        patient_id=pid, code=r.text("code", required=True, what="a key or code")
    ),
    "allergies": lambda r, pid: Allergy(
        patient_id=pid,
        substance=r.text("substance", required=True, what="the substance"),
        reaction=r.text("reaction"),
        severity=r.text("severity") or "unknown",
    ),
    "medications": lambda r, pid: Medication(
        patient_id=pid,
        name=r.text("name", required=True, what="the drug"),
        dose_mg_per_day=r.number("dose_mg_per_day"),
        dose_mcg_per_h=r.number("dose_mcg_per_h"),
    ),
    "labs": _lab,
}


@router.post("/patients/{patient_id}/{section}")
async def chart(
    request: Request, patient_id: uuid.UUID, section: str, db: DbDep, me: PageUserDep
) -> Response:
    """Append a row to a section of the record; on an error, the form comes back."""
    form = await read_form(request, me.secret)
    if section == "screenings":
        return _screen(request, form, patient_id, db, me)
    build = _SECTIONS.get(section)
    if build is None:
        return render(
            request, "error.html", page_user=me, status=404, title="Not found",
            message=f"no section {section!r} in a patient record",
        )  # fmt: skip
    r = FormReader(form, me.tz)
    try:
        row = build(r, patient_id)
        r.done()
        add_row(db, me.user.actor(), Action.CHART, row)
    except AccessDeniedError as refused:
        errors = refused_on_page(refused, me.user.actor(), Action.READ_SCHEDULE)
        return _record_page(request, db, me, patient_id, status=403, values=form, errors=errors)
    except KetapainError as err:
        return _record_page(
            request, db, me, patient_id, status=422, values=form, errors=field_errors(err)
        )
    return redirect(
        f"/patients/{patient_id}#{section}", page_user=me, flash=[("ok", "Saved to the record.")]
    )


def _screen(
    request: Request, form: FormData, patient_id: uuid.UUID, db: DbDep, me: PageUser
) -> Response:
    r = FormReader(form, me.tz)
    protocol = r.text("protocol")
    try:
        r.done()
        row = run_screening(
            db, me.user.actor(), patient_id=patient_id, protocol=protocol,
            overrides=overrides_in(form),
        )  # fmt: skip
    except AccessDeniedError as refused:
        errors = refused_on_page(refused, me.user.actor(), Action.READ_SCHEDULE)
        return _record_page(request, db, me, patient_id, status=403, values=form, errors=errors)
    except KetapainError as err:
        return _record_page(
            request, db, me, patient_id, status=422, values=form, errors=field_errors(err)
        )
    verdict = "eligible" if row.eligible else "not eligible: see the hard stops"
    return redirect(
        f"/patients/{patient_id}#screening",
        page_user=me,
        flash=[("ok" if row.eligible else "warning", f"Screened: {verdict}.")],
    )
