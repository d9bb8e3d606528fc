"""FHIR intake: importing a Bundle creates or updates a patient, all or nothing.

The first part of the file builds intake Bundles as plain JSON dicts (what a referring
system would POST); the tests import them with :func:`ketapain.fhir.intake.import_bundle`
and read the record back through the services. The round-trip tests chart a patient
through the services, export the record, import it into a second database and export it
again: the two exports differ only in their ids.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from tests.conftest import PgDatabases, _pg_url

from ketapain.clinic._service import add_row, correct_row
from ketapain.clinic.accounts import User
from ketapain.clinic.audit import Actor, AuditEntry, list_entries
from ketapain.clinic.charting import record_score, record_vitals
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.observations import Score, VitalSigns
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
from ketapain.clinic.permissions import Action
from ketapain.clinic.pump import hang_infusion, pump_event
from ketapain.clinic.registry import patient_record, register_patient
from ketapain.clinic.treatment import create_course
from ketapain.errors import AccessDeniedError
from ketapain.fhir._common import child_id
from ketapain.fhir.export import export_bundle
from ketapain.fhir.intake import FhirImportError, ImportResult, import_bundle

MRN_SYSTEM = "https://ketapain.org/fhir/sid/mrn"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
LOCAL = "https://ketapain.org/fhir/CodeSystem/ketapain"

PATIENT_URL = "urn:uuid:5f0c2b8e-8f59-4c1e-9d0a-6c1d2f3e4a5b"
T_LAB = datetime(2025, 2, 27, 7, 15, tzinfo=UTC)
T_BODY = datetime(2025, 3, 3, 8, 30, tzinfo=UTC)
T_VITALS = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
POUND_KG = 0.45359237
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# --- the fixture builder: intake Bundles as JSON dicts ----------------------------------


def _iso(t: datetime | str) -> str:
    return t if isinstance(t, str) else t.isoformat()


def _subject(ref: str | None = PATIENT_URL) -> dict[str, Any]:
    return {} if ref is None else {"subject": {"reference": ref}}


def patient_resource(
    mrn: str = "KP-1001",
    *,
    family: str = "Okafor",
    given: tuple[str, ...] = ("Mary", "Ann"),
    birth: str = "1975-03-14",
    gender: str = "female",
    system: str = MRN_SYSTEM,
) -> dict[str, Any]:
    """A Patient with the clinic's MRN, an official name, sex and birth date."""
    return {
        "resourceType": "Patient",
        "identifier": [{"system": system, "value": mrn}],
        "name": [{"use": "official", "family": family, "given": list(given)}],
        "gender": gender,
        "birthDate": birth,
    }


def condition(
    code: str, system: str = ICD10CM, *, subject: str | None = PATIENT_URL, text: str = ""
) -> dict[str, Any]:
    """An active Condition coded in one system."""
    concept: dict[str, Any] = {"coding": [{"system": system, "code": code}]}
    if text:
        concept["text"] = text
    return {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": concept,
        **_subject(subject),
    }


def allergy(
    substance: str = "penicillin", reaction: str | None = "hives", severity: str | None = "moderate"
) -> dict[str, Any]:
    """An AllergyIntolerance: substance as text, one reaction with its severity."""
    out: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "code": {"text": substance},
        "patient": {"reference": PATIENT_URL},
    }
    if reaction or severity:
        react: dict[str, Any] = {"manifestation": [{"text": reaction or "not recorded"}]}
        if severity:
            react["severity"] = severity
        out["reaction"] = [react]
    return out


def _rxnorm(name: str, rxcui: str | None) -> dict[str, Any]:
    concept: dict[str, Any] = {"text": name}
    if rxcui:
        concept["coding"] = [{"system": RXNORM, "code": rxcui}]
    return concept


def medication_statement(
    name: str = "oxycodone",
    rxcui: str | None = "7804",
    *,
    rate: float | None = 40.0,
    rate_code: str = "mg/d",
    status: str = "active",
) -> dict[str, Any]:
    """A MedicationStatement with its daily dose as a rateQuantity."""
    out: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "status": status,
        "medicationCodeableConcept": _rxnorm(name, rxcui),
        **_subject(),
    }
    if rate is not None:
        quantity = {"value": rate, "unit": rate_code, "system": UCUM, "code": rate_code}
        out["dosage"] = [{"doseAndRate": [{"rateQuantity": quantity}]}]
    return out


def medication_request(
    name: str = "gabapentin",
    rxcui: str | None = "25480",
    *,
    dose_mg: float = 300.0,
    per_day: int = 3,
    status: str = "active",
) -> dict[str, Any]:
    """A MedicationRequest: a dose in mg so many times a day."""
    return {
        "resourceType": "MedicationRequest",
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": _rxnorm(name, rxcui),
        **_subject(),
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [
                    {"doseQuantity": {"value": dose_mg, "unit": "mg", "system": UCUM, "code": "mg"}}
                ],
            }
        ],
    }


def _quantity(value: float, code: str) -> dict[str, Any]:
    return {"value": value, "unit": code, "system": UCUM, "code": code}


def observation(
    loinc: str,
    when: datetime | str,
    *,
    status: str = "final",
    subject: str | None = PATIENT_URL,
    **value: Any,
) -> dict[str, Any]:
    """An Observation coded in LOINC at ``when``; ``value`` holds value[x] and the rest."""
    return {
        "resourceType": "Observation",
        "status": status,
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        **_subject(subject),
        "effectiveDateTime": _iso(when),
        **value,
    }


def lab(
    loinc: str,
    value: float,
    unit: str,
    *,
    high: float | None,
    low: float | None = None,
    when: datetime | str = T_LAB,
) -> dict[str, Any]:
    """A laboratory result with the lab's reference range (``high`` None: no range)."""
    band: dict[str, Any] = {}
    if low is not None:
        band["low"] = _quantity(low, unit)
    if high is not None:
        band["high"] = _quantity(high, unit)
    extra = {"referenceRange": [band]} if band else {}
    return observation(loinc, when, valueQuantity=_quantity(value, unit), **extra)


def pregnancy_test(negative: bool = True, when: datetime | str = T_LAB) -> dict[str, Any]:
    """A urine hCG test answered by a SNOMED CT qualifier (260385009 negative)."""
    code = "260385009" if negative else "10828004"
    return observation(
        "2106-3", when, valueCodeableConcept={"coding": [{"system": SNOMED, "code": code}]}
    )


def vital(loinc: str, value: float, unit: str, when: datetime | str = T_VITALS) -> dict[str, Any]:
    """A single-valued vital sign (heart rate, SpO2, temperature, weight, height)."""
    return observation(loinc, when, valueQuantity=_quantity(value, unit))


def blood_pressure(sbp: float, dbp: float, when: datetime | str = T_VITALS) -> dict[str, Any]:
    """A blood-pressure panel 85354-9 with systolic and diastolic components."""
    return observation(
        "85354-9",
        when,
        component=[
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                "valueQuantity": _quantity(sbp, "mm[Hg]"),
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                "valueQuantity": _quantity(dbp, "mm[Hg]"),
            },
        ],
    )


def pain_nrs(value: int, when: datetime | str = T_VITALS) -> dict[str, Any]:
    """A pain NRS 72514-3 as valueInteger."""
    return observation("72514-3", when, valueInteger=value)


def peg(
    pain: int, enjoyment: int, activity: int, when: datetime | str = T_VITALS
) -> dict[str, Any]:
    """A PEG 91148-7 with its three items as components (and their mean as value)."""
    items = (("75893-8", pain), ("91145-3", enjoyment), ("91146-1", activity))
    return observation(
        "91148-7",
        when,
        valueQuantity=_quantity(round((pain + enjoyment + activity) / 3, 4), "{score}"),
        component=[
            {"code": {"coding": [{"system": LOINC, "code": code}]}, "valueInteger": value}
            for code, value in items
        ],
    )


def entry(resource: dict[str, Any], full_url: str | None = None) -> dict[str, Any]:
    """A transaction entry: POST of the resource (a fresh urn:uuid fullUrl unless given)."""
    return {
        "fullUrl": full_url or f"urn:uuid:{uuid.uuid4()}",
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def make_bundle(
    *resources: dict[str, Any],
    kind: str = "transaction",
    urls: dict[int, str] | None = None,
    bundle_id: str | None = None,
) -> dict[str, Any]:
    """A Bundle of ``resources``: a Patient's entry gets PATIENT_URL unless ``urls`` gives
    its fullUrl (by index), other entries a fresh urn:uuid."""
    entries = []
    for k, r in enumerate(resources):
        url = (urls or {}).get(k) or (PATIENT_URL if r["resourceType"] == "Patient" else None)
        entries.append(entry(r, url))
    return {
        "resourceType": "Bundle",
        "id": bundle_id or str(uuid.uuid4()),
        "type": kind,
        "entry": entries,
    }


def intake_resources(mrn: str = "KP-1001", **patient: Any) -> list[dict[str, Any]]:
    """A full referral: diagnoses, history, allergy, medications, labs, vitals and scores."""
    return [
        patient_resource(mrn, **patient),  # 0
        condition("G90.511"),  # 1 CRPS I by ICD-10-CM
        condition("247398009", SNOMED),  # 2 neuropathic pain by SNOMED CT
        condition("I10"),  # 3 hypertension: a history item
        allergy("penicillin", "hives", "moderate"),  # 4
        medication_statement("oxycodone", "7804", rate=40.0),  # 5
        medication_request("gabapentin", "25480", dose_mg=300.0, per_day=3),  # 6
        lab("1742-6", 52.0, "U/L", low=7.0, high=40.0),  # 7 ALT
        lab("1975-2", 34.2, "umol/L", high=20.52),  # 8 bilirubin in umol/L
        pregnancy_test(negative=True),  # 9
        vital("29463-7", 154.0, "[lb_av]", T_BODY),  # 10 weight in pounds
        vital("8302-2", 165.0, "cm", T_BODY),  # 11 height
        blood_pressure(132.0, 84.0),  # 12
        vital("8867-4", 76.0, "/min", "2025-03-03T04:00:00-05:00"),  # 13 HR, same instant
        vital("59408-5", 97.0, "%"),  # 14 SpO2
        vital("8310-5", 98.6, "[degF]"),  # 15 temperature in Fahrenheit
        pain_nrs(7),  # 16
        peg(7, 6, 6),  # 17
    ]


def intake_bundle(mrn: str = "KP-1001", **kw: Any) -> dict[str, Any]:
    """The full referral as a transaction Bundle."""
    return make_bundle(*intake_resources(mrn), **kw)


# --- helpers -----------------------------------------------------------------------------


def _import(db: Database, actor: Actor, bundle: Any, **kw: Any) -> ImportResult:
    return import_bundle(db, actor, bundle, mrn_system=MRN_SYSTEM, **kw)


def _rejected(db: Database, actor: Actor, bundle: Any, **kw: Any) -> FhirImportError:
    with pytest.raises(FhirImportError) as err:
        _import(db, actor, bundle, **kw)
    return err.value


TABLES = (
    Patient,
    Demographics,
    Diagnosis,
    HistoryItem,
    Allergy,
    Medication,
    LabResult,
    BodyMeasurement,
    VitalSigns,
    Score,
    AuditEntry,
)


def _counts(db: Database) -> dict[str, int]:
    """Rows per table (the clinical tables and the audit trail)."""
    with db.session() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) or 0 for m in TABLES}


def _record(db: Database, actor: Actor, patient_id: uuid.UUID | str) -> dict[str, Any]:
    with db.session() as s:
        return patient_record(s, actor, uuid.UUID(str(patient_id)))


def _scores(db: Database, patient_id: uuid.UUID | str) -> list[Score]:
    with db.session() as s:
        return list(
            s.scalars(
                select(Score)
                .where(Score.patient_id == uuid.UUID(str(patient_id)))
                .order_by(Score.instrument)
            )
        )


def _by_entry(result: ImportResult) -> list[tuple[str, str]]:
    return [(o.resource_type, o.outcome) for o in sorted(result.outcomes, key=lambda o: o.entry)]


def _patient_id(result: ImportResult) -> str:
    (p,) = result.patients
    return str(p["id"])


@pytest.fixture
def lite(_sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    """A fresh SQLite database for the tests of how entries are read and checked: that is
    the first pass, before any database access, the same code whatever the dialect."""
    path = tmp_path / "lite.db"
    shutil.copyfile(_sqlite_template, path)
    database = Database.connect(f"sqlite:///{path}")
    yield database
    database.dispose()


@pytest.fixture
def lite_staff(lite: Database) -> dict[str, Actor]:
    """The template's users of ``lite`` by role."""
    with lite.session() as s:
        return {str(u.role): u.actor() for u in s.scalars(select(User))}


# --- a valid referral --------------------------------------------------------------------


def test_valid_bundle_creates_the_patient_and_the_whole_history(db, staff):
    """Every entry of a valid referral is created: demographics, diagnoses, history, allergy,
    medications with MME, labs in ketapain's units, one body measurement, one set of vital
    signs joining the observations made at one instant, and the scores."""
    result = _import(db, staff["nurse"], intake_bundle())
    assert result.counts() == {"created": 18, "updated": 0, "duplicate": 0, "skipped": 0}
    pid = _patient_id(result)
    assert result.patients == [{"id": pid, "mrn": "KP-1001", "outcome": "created"}]
    rec = _record(db, staff["nurse"], pid)
    assert (rec["mrn"], rec["family_name"], rec["given_name"]) == ("KP-1001", "Okafor", "Mary Ann")
    assert (rec["birth_date"], rec["sex"]) == ("1975-03-14", "female")
    assert [(d["code"], d["key"]) for d in rec["diagnoses"]] == [
        ("G90.511", "crps_1"),
        ("247398009", "neuropathic_pain"),
    ]
    assert [(h["code"], h["key"]) for h in rec["history"]] == [("I10", "hypertension")]
    assert [(a["substance"], a["reaction"], a["severity"]) for a in rec["allergies"]] == [
        ("penicillin", "hives", "moderate")
    ]
    meds = {m["name"]: m for m in rec["medications"]}
    assert set(meds) == {"oxycodone", "gabapentin"}
    assert meds["oxycodone"]["dose_mg_per_day"] == pytest.approx(40.0)
    assert meds["oxycodone"]["mme_per_day"] == pytest.approx(60.0)  # CDC factor 1.5
    assert meds["gabapentin"]["dose_mg_per_day"] == pytest.approx(900.0)  # 300 mg x 3 a day
    assert meds["gabapentin"]["mme_per_day"] is None
    assert all(m["active"] for m in meds.values())
    assert rec["mme_per_day_total"] == pytest.approx(60.0)

    labs = {lab_["test"]: lab_ for lab_ in rec["labs"]}
    assert set(labs) == {"alt", "bilirubin", "pregnancy_test"}
    assert (labs["alt"]["value"], labs["alt"]["ref_low"], labs["alt"]["ref_high"]) == (
        52.0,
        7.0,
        40.0,
    )
    assert labs["alt"]["flag"] == "H"
    # Bilirubin 34.2 umol/L / 17.10 = 2.0 mg/dL; the range's high 20.52 umol/L = 1.2 mg/dL.
    assert labs["bilirubin"]["value"] == pytest.approx(2.0, abs=1e-12)
    assert labs["bilirubin"]["ref_high"] == pytest.approx(1.2, abs=1e-12)
    assert labs["bilirubin"]["unit"] == "mg/dL"
    assert labs["bilirubin"]["flag"] == "H"
    assert labs["pregnancy_test"]["positive"] is False
    assert labs["pregnancy_test"]["value"] is None
    assert labs["alt"]["collected_utc"] == T_LAB.isoformat()

    (body,) = rec["measurements"]
    assert body["weight_kg"] == pytest.approx(154.0 * POUND_KG, abs=1e-12)  # 69.853 kg
    assert body["height_cm"] == pytest.approx(165.0)
    assert body["measured_utc"] == T_BODY.isoformat()

    (vitals,) = rec["vitals"]
    assert vitals["measured_utc"] == T_VITALS.isoformat()
    assert (vitals["sbp_mmhg"], vitals["dbp_mmhg"]) == (132.0, 84.0)
    assert vitals["hr_per_min"] == 76.0
    assert vitals["spo2_pct"] == 97.0
    assert vitals["temp_c"] == pytest.approx(37.0, abs=1e-12)  # 98.6 F
    assert vitals["rr_per_min"] is None
    assert vitals["on_oxygen"] is False

    nrs, peg_row = sorted(_scores(db, pid), key=lambda s: s.instrument != "pain_nrs")
    assert (nrs.instrument, nrs.value, nrs.items) == ("pain_nrs", 7.0, None)
    assert peg_row.instrument == "peg"
    assert peg_row.items == {"pain": 7, "enjoyment": 6, "activity": 6}
    assert peg_row.value == pytest.approx(19 / 3)
    assert peg_row.measured_utc == T_VITALS


def test_outcomes_name_the_rows_written(db, staff):
    """Each outcome says created and where the row is: Patient/<id>, Condition/<id>, the
    MedicationStatement, the lab's Observation and the ids the export gives the vital signs."""
    result = _import(db, staff["nurse"], intake_bundle())
    pid = _patient_id(result)
    rec = _record(db, staff["nurse"], pid)
    outcomes = sorted(result.outcomes, key=lambda o: o.entry)
    assert [o.entry for o in outcomes] == list(range(18))
    assert {o.outcome for o in outcomes} == {"created"}
    assert [o.resource_type for o in outcomes] == [r["resourceType"] for r in intake_resources()]
    loc = [o.location for o in outcomes]
    assert loc[0] == f"Patient/{pid}"
    assert loc[1:3] == [f"Condition/{d['id']}" for d in rec["diagnoses"]]
    assert loc[3] == f"Condition/{rec['history'][0]['id']}"
    assert loc[4] == f"AllergyIntolerance/{rec['allergies'][0]['id']}"
    meds = {m["name"]: m["id"] for m in rec["medications"]}
    assert loc[5:7] == [f"MedicationStatement/{meds[n]}" for n in ("oxycodone", "gabapentin")]
    labs = {lab_["test"]: lab_["id"] for lab_ in rec["labs"]}
    assert loc[7:10] == [
        f"Observation/{labs['alt']}",
        f"Observation/{labs['bilirubin']}",
        f"Observation/{labs['pregnancy_test']}",
    ]
    body = uuid.UUID(rec["measurements"][0]["id"])
    assert loc[10:12] == [
        f"Observation/{child_id(body, 'weight_kg')}",
        f"Observation/{child_id(body, 'height_cm')}",
    ]
    vitals = uuid.UUID(rec["vitals"][0]["id"])
    assert loc[12:16] == [
        f"Observation/{child_id(vitals, part)}"
        for part in ("bp", "hr_per_min", "spo2_pct", "temp_c")
    ]
    scores = {s.instrument: s.id for s in _scores(db, pid)}
    assert loc[16:] == [f"Observation/{scores['pain_nrs']}", f"Observation/{scores['peg']}"]
    assert outcomes[0].message == "registered"
    assert outcomes[3].message == "history hypertension charted"


def test_response_bundle_answers_each_request_entry_in_order(db, staff):
    """The transaction-response Bundle has one entry per request entry, in the same order,
    each 201 Created with the location of the row written."""
    bundle = intake_bundle()
    result = _import(db, staff["nurse"], bundle)
    response = result.response_bundle()
    assert response["resourceType"] == "Bundle"
    assert response["type"] == "transaction-response"
    assert uuid.UUID(response["id"])
    assert len(response["entry"]) == len(bundle["entry"]) == 18
    statuses = [e["response"]["status"] for e in response["entry"]]
    assert statuses == ["201 Created"] * 18
    by_entry = sorted(result.outcomes, key=lambda o: o.entry)
    assert [e["response"]["location"] for e in response["entry"]] == [o.location for o in by_entry]
    assert response["entry"][0]["response"]["location"].startswith("Patient/")
    issue = response["entry"][0]["response"]["outcome"]["issue"][0]
    assert issue["diagnostics"] == "created: registered"
    as_dict = result.as_dict()
    assert as_dict["counts"]["created"] == 18
    assert [e["entry"] for e in as_dict["entries"]] == list(range(18))


@pytest.mark.parametrize("kind", ["collection", "searchset"])
def test_collection_and_searchset_bundles_are_read_too(lite, lite_staff, kind):
    """A referral document (collection) or a search result needs no request element."""
    bundle = intake_bundle()
    for e in bundle["entry"]:
        del e["request"]
    bundle["type"] = kind
    result = _import(lite, lite_staff["physician"], bundle)
    assert result.counts()["created"] == 18


def test_a_transaction_entry_needs_post_or_put(lite, lite_staff):
    """In a transaction, an entry without request.method POST or PUT is a problem."""
    bundle = intake_bundle()
    bundle["entry"][2]["request"]["method"] = "DELETE"
    del bundle["entry"][3]["request"]
    err = _rejected(lite, lite_staff["nurse"], bundle)
    assert [(p.entry, p.path) for p in err.problems] == [
        (2, "request.method"),
        (3, "request.method"),
    ]
    assert "'DELETE'" in err.problems[0].message


def test_patient_is_referenced_by_resource_id_too(lite, lite_staff):
    """Entries may reference the Patient as Patient/<id> instead of its fullUrl."""
    resources = intake_resources()[:4]
    resources[0]["id"] = "ref-pat-1"
    for r in resources[1:]:
        r["subject"] = {"reference": "Patient/ref-pat-1"}
    result = _import(lite, lite_staff["nurse"], make_bundle(*resources))
    assert result.counts()["created"] == 4


def test_an_mrn_of_another_system_is_not_the_clinics(lite, lite_staff):
    """An identifier typed MR in another system is another hospital's number, not this
    clinic's MRN: refused (naming --mrn), unless the intake assigns an MRN."""
    resource = patient_resource("X-77", system="urn:oid:1.2.3.4")
    resource["identifier"][0]["type"] = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]
    }
    err = _rejected(lite, lite_staff["nurse"], make_bundle(resource))
    (problem,) = err.problems
    assert problem.path == "identifier" and "--mrn" in problem.message
    assert "X-77" in problem.message
    result = import_bundle(
        lite, lite_staff["nurse"], make_bundle(resource), mrn_system=MRN_SYSTEM, assign_mrn="KP-77"
    )
    assert result.patients[0]["mrn"] == "KP-77"


# --- duplicates --------------------------------------------------------------------------


def test_importing_the_same_bundle_twice_writes_nothing_new(db, staff):
    """The second import finds every entry charted: all duplicates (200 OK, same locations),
    no new row; the only new audit entry is the import's own."""
    bundle = intake_bundle()
    first = _import(db, staff["nurse"], bundle)
    before = _counts(db)
    second = _import(db, staff["nurse"], bundle)
    assert second.counts() == {"created": 0, "updated": 0, "duplicate": 18, "skipped": 0}
    assert second.patients == [{"id": _patient_id(first), "mrn": "KP-1001", "outcome": "duplicate"}]
    after = _counts(db)
    assert after["audit_entries"] == before["audit_entries"] + 1
    del after["audit_entries"], before["audit_entries"]
    assert after == before
    assert [o.location for o in sorted(second.outcomes, key=lambda o: o.entry)] == [
        o.location for o in sorted(first.outcomes, key=lambda o: o.entry)
    ]
    response = second.response_bundle()
    assert [e["response"]["status"] for e in response["entry"]] == ["200 OK"] * 18
    with db.session() as s:
        audits = list_entries(s, action="import_fhir")
    assert [a.detail.split(": ", 1)[1] for a in audits] == [
        "18 created, 0 updated, 0 duplicate, 0 skipped",
        "0 created, 0 updated, 18 duplicate, 0 skipped",
    ]


def test_the_same_entry_twice_in_one_bundle_is_written_once(db, staff):
    """A Condition, a lab and a medication given twice in one Bundle are charted once; the
    repeat is reported as a duplicate of the row just written."""
    resources = [
        patient_resource(),
        condition("G90.511"),
        condition("G90.511"),
        lab("1742-6", 52.0, "U/L", high=40.0),
        lab("1742-6", 52.0, "U/L", high=40.0),
        medication_statement(),
        medication_statement(),
    ]
    result = _import(db, staff["nurse"], make_bundle(*resources))
    assert _by_entry(result) == [
        ("Patient", "created"),
        ("Condition", "created"),
        ("Condition", "duplicate"),
        ("Observation", "created"),
        ("Observation", "duplicate"),
        ("MedicationStatement", "created"),
        ("MedicationStatement", "duplicate"),
    ]
    loc = [o.location for o in sorted(result.outcomes, key=lambda o: o.entry)]
    assert loc[1] == loc[2]
    assert loc[3] == loc[4]
    assert loc[5] == loc[6]
    counts = _counts(db)
    assert (counts["diagnoses"], counts["lab_results"], counts["medications"]) == (1, 1, 1)


def test_a_condition_coded_differently_is_the_same_problem(db, staff):
    """CRPS I by ICD-10-CM and again by SNOMED CT is one diagnosis (the key is compared)."""
    resources = [patient_resource(), condition("G90.511"), condition("734947007", SNOMED)]
    result = _import(db, staff["nurse"], make_bundle(*resources))
    assert [o for _, o in _by_entry(result)] == ["created", "created", "duplicate"]
    assert _counts(db)["diagnoses"] == 1


# --- updates ----------------------------------------------------------------------------


def test_a_changed_dose_corrects_the_medication(db, staff):
    """A second Bundle for the same MRN with oxycodone 60 mg/d updates the medication: a
    correction of the charted row whose reason names the FHIR import and the Bundle."""
    first = _import(db, staff["nurse"], intake_bundle())
    pid = _patient_id(first)
    old_id = _record(db, staff["nurse"], pid)["medications"][0]["id"]
    update = make_bundle(
        patient_resource(), medication_statement(rate=60.0), bundle_id="referral-2"
    )
    result = _import(db, staff["physician"], update)
    assert _by_entry(result) == [("Patient", "duplicate"), ("MedicationStatement", "updated")]
    outcome = sorted(result.outcomes, key=lambda o: o.entry)[1]
    assert outcome.message == "medication corrected: dose_mg_per_day"
    rec = _record(db, staff["nurse"], pid)
    oxy = next(m for m in rec["medications"] if m["name"] == "oxycodone")
    assert oxy["dose_mg_per_day"] == pytest.approx(60.0)
    assert oxy["mme_per_day"] == pytest.approx(90.0)
    assert outcome.location == f"MedicationStatement/{oxy['id']}"
    with db.session() as s:
        row = s.get(Medication, uuid.UUID(oxy["id"]))
        assert row is not None
        assert row.corrects_id == uuid.UUID(old_id)
        assert row.correction_reason == "FHIR import (Bundle referral-2)"
    assert result.response_bundle()["entry"][1]["response"]["status"] == "200 OK"
    assert _counts(db)["medications"] == 3  # two charted, one correction


def test_a_stopped_medication_is_charted_as_stopped(db, staff):
    """A MedicationStatement with status stopped corrects the active medication to stopped,
    and its MME leaves the total."""
    pid = _patient_id(_import(db, staff["nurse"], intake_bundle()))
    update = make_bundle(patient_resource(), medication_statement(status="stopped"))
    result = _import(db, staff["nurse"], update)
    assert _by_entry(result)[1] == ("MedicationStatement", "updated")
    rec = _record(db, staff["nurse"], pid)
    oxy = next(m for m in rec["medications"] if m["name"] == "oxycodone")
    assert oxy["active"] is False
    assert rec["mme_per_day_total"] == 0


def test_other_demographics_under_a_known_mrn_are_refused(db, staff):
    """A Bundle for a known MRN with another family name and birth date is refused as a
    conflict naming both fields (a wrong MRN attaches a chart to the wrong person); the
    record keeps its demographics and nothing is written."""
    pid = _patient_id(_import(db, staff["nurse"], intake_bundle()))
    before = _counts(db)
    changed = patient_resource(family="Okafor-Reyes", birth="1975-03-15")
    err = _rejected(db, staff["nurse"], make_bundle(changed, bundle_id="b-77"))
    assert err.conflict
    (problem,) = err.problems
    assert problem.path == "identifier"
    assert "family_name" in problem.message and "birth_date" in problem.message
    assert _counts(db) == before
    rec = _record(db, staff["nurse"], pid)
    assert (rec["family_name"], rec["birth_date"]) == ("Okafor", "1975-03-14")


def test_an_allergy_with_a_new_severity_is_corrected(db, staff):
    """The same substance (any case) with another severity corrects the allergy."""
    pid = _patient_id(_import(db, staff["nurse"], intake_bundle()))
    update = make_bundle(patient_resource(), allergy("Penicillin", "hives", "severe"))
    result = _import(db, staff["nurse"], update)
    assert _by_entry(result)[1] == ("AllergyIntolerance", "updated")
    (a,) = _record(db, staff["nurse"], pid)["allergies"]
    assert (a["substance"], a["severity"]) == ("penicillin", "severe")


def test_an_existing_patient_gets_new_entries_by_mrn(db, staff, patient):
    """A Bundle for the registered patient T-0001 (same demographics) adds the new entries to
    that patient and finds the charted diagnosis and the weight already there."""
    resources = [
        patient_resource("T-0001", family="Doe", given=("Jane",), birth="1980-05-01"),
        condition("G90.511"),
        condition("I10"),
    ]
    result = _import(db, staff["nurse"], make_bundle(*resources))
    assert result.patients == [{"id": str(patient.id), "mrn": "T-0001", "outcome": "duplicate"}]
    assert [o for _, o in _by_entry(result)] == ["duplicate", "duplicate", "created"]
    rec = _record(db, staff["nurse"], patient.id)
    assert [h["key"] for h in rec["history"]] == ["hypertension"]
    assert len(rec["diagnoses"]) == 1


# --- conflicts: nothing written ----------------------------------------------------------


def test_a_new_mrn_with_the_name_and_birth_date_of_a_patient_is_refused(db, staff, patient):
    """A new MRN whose family and given name (any case) and birth date match Jane Doe's is a
    likely duplicate: FhirImportError with conflict=True naming her MRN; nothing written."""
    before = _counts(db)
    resources = [
        patient_resource("KP-9999", family="DOE", given=("jane",), birth="1980-05-01"),
        condition("I10"),
    ]
    err = _rejected(db, staff["nurse"], make_bundle(*resources))
    assert err.conflict is True
    (problem,) = err.problems
    assert (problem.entry, problem.resource_type, problem.path) == (0, "Patient", "identifier")
    assert "likely a duplicate" in problem.message
    assert "T-0001" in problem.message
    assert _counts(db) == before


def test_same_name_other_birth_date_is_a_new_patient(db, staff, patient):
    """Jane Doe born on another day is another patient: registered under the new MRN."""
    resources = [patient_resource("KP-9998", family="Doe", given=("Jane",), birth="1981-05-01")]
    result = _import(db, staff["nurse"], make_bundle(*resources))
    assert result.patients[0]["outcome"] == "created"
    assert _counts(db)["patients"] == 2


def test_a_lab_differing_from_the_charted_one_is_a_conflict_and_nothing_is_written(
    db, staff, patient
):
    """An ALT at the time of a charted ALT with another value is a conflict: the Bundle is
    refused whole, its valid entries (a new history item, a medication) are not written."""
    add_row(
        db,
        staff["nurse"],
        Action.CHART,
        LabResult(
            patient_id=patient.id, test="alt", value=30.0, ref_high=40.0, collected_utc=T_LAB
        ),
    )
    before = _counts(db)
    resources = [
        patient_resource("T-0001", family="Doe", given=("Jane",), birth="1980-05-01"),
        condition("I10"),
        medication_statement(),
        lab("1742-6", 45.0, "U/L", high=40.0, when=T_LAB),
        lab("1920-8", 33.0, "U/L", high=40.0, when=T_LAB),
    ]
    err = _rejected(db, staff["nurse"], make_bundle(*resources))
    assert err.conflict is True
    (problem,) = err.problems
    assert (problem.entry, problem.path) == (3, "value[x]")
    assert "a different alt result is charted for that time" in problem.message
    assert "nothing was written" in str(err)
    assert _counts(db) == before
    with db.session() as s:
        assert list_entries(s, action="import_fhir") == []


def test_the_same_lab_value_at_the_charted_time_is_a_duplicate(db, staff, patient):
    """The charted ALT sent again (same time, same value) is a duplicate of the charted row."""
    row = add_row(
        db,
        staff["nurse"],
        Action.CHART,
        LabResult(
            patient_id=patient.id, test="alt", value=30.0, ref_high=40.0, collected_utc=T_LAB
        ),
    )
    resources = [
        patient_resource("T-0001", family="Doe", given=("Jane",), birth="1980-05-01"),
        lab("1742-6", 30.0, "U/L", high=40.0, when=T_LAB),
    ]
    result = _import(db, staff["nurse"], make_bundle(*resources))
    assert [(o.outcome, o.location) for o in sorted(result.outcomes, key=lambda o: o.entry)][1] == (
        "duplicate",
        f"Observation/{row.id}",
    )


def test_vital_signs_differing_from_a_charted_set_are_a_conflict(db, staff, patient):
    """A heart rate at the time of a charted set with another rate is refused (conflict)."""
    add_row(
        db,
        staff["nurse"],
        Action.CHART,
        VitalSigns(patient_id=patient.id, measured_utc=T_VITALS, hr_per_min=70.0),
    )
    before = _counts(db)
    resources = [
        patient_resource("T-0001", family="Doe", given=("Jane",), birth="1980-05-01"),
        vital("8867-4", 88.0, "/min"),
    ]
    err = _rejected(db, staff["nurse"], make_bundle(*resources))
    assert err.conflict is True
    assert [(p.entry, p.path) for p in err.problems] == [(1, "value[x]")]
    assert "hr_per_min" in err.problems[0].message
    assert _counts(db) == before


# --- invalid entries: every problem, nothing written -------------------------------------

INVALID = {
    # entry index: (the invalid resource, the element its problem must name)
    1: (vital("8867-4", 76.0, "/min") | {"status": "done"}, "status"),
    2: (condition("G90.511") | {"colour": "red"}, "colour"),
    3: (condition("J45.909", text="asthma"), "code"),
    4: (vital("29463-7", 11.0, "stone", T_BODY), "valueQuantity.code"),
    5: (
        vital("8867-4", 76.0, "/min", T_VITALS + timedelta(hours=1)) | {"subject": None},
        "subject",
    ),
    6: (vital("8867-4", 76.0, "/min", utc_now() + timedelta(days=2)), "effectiveDateTime"),
    7: (patient_resource("KP-2002", family="Other", gender="other"), "gender"),
    8: (lab("1742-6", 52.0, "U/L", high=None), "referenceRange.high"),
    9: (vital("29463-7", 900.0, "kg", T_BODY - timedelta(days=1)), "weight_kg"),
}


def _invalid_bundle() -> dict[str, Any]:
    resources = [patient_resource()]
    for k in sorted(INVALID):
        resource = dict(INVALID[k][0])
        if resource.get("subject", "") is None:
            del resource["subject"]
        resources.append(resource)
    resources.append(condition("I10"))  # valid, and not written either
    return make_bundle(*resources)


def test_invalid_entries_are_all_reported_and_nothing_is_written(db, staff):
    """A Bundle with nine invalid entries is refused whole: one problem (at least) for each
    invalid entry, none for the valid ones, each naming the element; the database is as it
    was (patients, labs, audit trail)."""
    before = _counts(db)
    err = _rejected(db, staff["nurse"], _invalid_bundle())
    assert err.conflict is False
    assert {p.entry for p in err.problems} == set(INVALID)
    for k, (_, path) in INVALID.items():
        paths = [p.path for p in err.problems if p.entry == k]
        assert path in paths, (k, paths)
        assert f"entry[{k}]" in str(err)
    by_path = {(p.entry, p.path): p for p in err.problems}
    assert "'done'" in by_path[1, "status"].message
    assert by_path[2, "colour"].message == "Extra inputs are not permitted"
    assert "('colour' was unexpected)" in str(err)  # the R4 schema says it too
    assert "asthma" in by_path[3, "code"].message
    assert "'stone'" in by_path[4, "valueQuantity.code"].message
    assert "[lb_av]" in by_path[4, "valueQuantity.code"].message
    assert "Patient" in by_path[5, "subject"].message
    assert "not in the future" in by_path[6, "effectiveDateTime"].message
    assert "'other'" in by_path[7, "gender"].message
    assert "U/L" in by_path[8, "referenceRange.high"].message
    assert "900" in by_path[9, "weight_kg"].message
    assert by_path[7, "gender"].resource_type == "Patient"
    assert str(err).startswith("the Bundle was not imported, nothing was written: ")
    assert _counts(db) == before


def test_problems_carry_the_entry_full_url_and_serialise(lite, lite_staff):
    """A problem names its entry's fullUrl and resource type, and turns into JSON."""
    bundle = _invalid_bundle()
    err = _rejected(lite, lite_staff["nurse"], bundle)
    problem = next(p for p in err.problems if p.entry == 7)
    assert problem.full_url == bundle["entry"][7]["fullUrl"]
    assert problem.as_dict() == {
        "entry": 7,
        "resource_type": "Patient",
        "full_url": bundle["entry"][7]["fullUrl"],
        "path": "gender",
        "expression": "Bundle.entry[7].resource.gender",
        "message": problem.message,
    }
    assert str(problem).startswith("entry[7] Patient gender: ")


@pytest.mark.parametrize(
    ("resources", "index", "path", "words"),
    [
        ([vital("8302-2", 170.0, "cm", T_BODY)], 1, "code", "height needs a body weight"),
        ([blood_pressure(80.0, 95.0)], 1, "dbp_mmhg", "below sbp_mmhg"),
        (
            [vital("8867-4", 70.0, "/min"), vital("8867-4", 72.0, "/min")],
            2,
            "value[x]",
            "hr_per_min is also 70",
        ),
        ([peg(7, 6, 11)], 1, "items.activity", "0 to 10"),
        ([pain_nrs(11)], 1, "pain_nrs value", "0 to 10"),
        ([medication_statement(rate=25.0, rate_code="mg/min")], 1, "rateQuantity.code", "mg/d"),
        (
            [vital("8867-4", 70.0, "/min", "2025-03-03T09:00:00")],
            1,
            "effectiveDateTime",
            "DateTime",
        ),
        ([observation("8867-4", T_VITALS)], 1, "valueQuantity", "/min"),
    ],
)
def test_more_entries_ketapain_cannot_chart(lite, lite_staff, resources, index, path, words):
    """A height without a weight, diastolic above systolic, two heart rates at one time, an
    item or a score out of range, an unknown rate unit, a time without zone, a missing value:
    each is a problem of its entry naming the element, and nothing is written."""
    before = _counts(lite)
    err = _rejected(lite, lite_staff["nurse"], make_bundle(patient_resource(), *resources))
    assert {p.entry for p in err.problems} == {index}
    assert all(p.path.endswith(path) for p in err.problems)
    assert all(words in p.message for p in err.problems)
    assert _counts(lite) == before


def test_an_out_of_range_vital_sign_is_one_problem_of_its_own_entry(lite, lite_staff):
    """A heart rate of 300/min beside a valid blood pressure of the same time is one problem,
    of the heart rate's entry (2); the blood pressure's entry (1) is not named."""
    resources = [patient_resource(), blood_pressure(120.0, 80.0), vital("8867-4", 300.0, "/min")]
    err = _rejected(lite, lite_staff["nurse"], make_bundle(*resources))
    assert [(p.entry, p.path) for p in err.problems] == [(2, "hr_per_min")]


def test_a_diastolic_above_the_systolic_is_reported_once(lite, lite_staff):
    """One invalid entry, one problem: 80/95 mmHg is named once, as dbp_mmhg of entry 1."""
    err = _rejected(
        lite, lite_staff["nurse"], make_bundle(patient_resource(), blood_pressure(80.0, 95.0))
    )
    assert [(p.entry, p.path) for p in err.problems] == [(1, "dbp_mmhg")]


# --- unsupported resources ----------------------------------------------------------------

SESSION_URL = "urn:uuid:7d1b0e4c-2f6a-4c7e-8a1b-3c2d1e0f9a8b"


def _session_encounter() -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": [{"coding": [{"system": LOCAL, "code": "infusion-session"}]}],
        "subject": {"reference": PATIENT_URL},
    }


def _unsupported_bundle() -> dict[str, Any]:
    resources = [
        patient_resource(),
        _session_encounter(),
        medication_request("ketamine", "6130", dose_mg=50.0, per_day=2),
        vital("8867-4", 92.0, "/min") | {"encounter": {"reference": SESSION_URL}},
        condition("G90.511"),
    ]
    return make_bundle(*resources, urls={1: SESSION_URL})


def test_unsupported_resources_are_problems_by_default(db, staff):
    """An Encounter, a ketamine order (RxNorm 6130) and an Observation made during a
    ketapain infusion session are not taken at intake: each is a problem, nothing written."""
    before = _counts(db)
    err = _rejected(db, staff["nurse"], _unsupported_bundle())
    assert err.conflict is False
    assert [(p.entry, p.resource_type, p.path) for p in err.problems] == [
        (1, "Encounter", "resourceType"),
        (2, "MedicationRequest", "medicationCodeableConcept"),
        (3, "Observation", "encounter"),
    ]
    assert all(p.message.startswith("not taken at intake: ") for p in err.problems)
    assert "ketamine" in err.problems[1].message
    assert _counts(db) == before


def test_unsupported_resources_are_skipped_when_asked(db, staff):
    """With skip_unsupported the three are reported skipped (200 OK, no location) and only
    the Patient and the Condition are written: no vital signs, no medication."""
    result = _import(db, staff["nurse"], _unsupported_bundle(), skip_unsupported=True)
    assert _by_entry(result) == [
        ("Patient", "created"),
        ("Encounter", "skipped"),
        ("MedicationRequest", "skipped"),
        ("Observation", "skipped"),
        ("Condition", "created"),
    ]
    assert result.counts() == {"created": 2, "updated": 0, "duplicate": 0, "skipped": 3}
    skipped = [o for o in result.outcomes if o.outcome == "skipped"]
    assert all(o.location is None and o.message.startswith("not imported: ") for o in skipped)
    response = result.response_bundle()["entry"]
    assert [e["response"]["status"] for e in response] == [
        "201 Created",
        "200 OK",
        "200 OK",
        "200 OK",
        "201 Created",
    ]
    assert "location" not in response[1]["response"]
    rec = _record(db, staff["nurse"], _patient_id(result))
    assert (rec["vitals"], rec["medications"], len(rec["diagnoses"])) == ([], [], 1)


def test_an_observation_of_another_encounter_is_charted(lite, lite_staff):
    """An Observation whose encounter is not a ketapain infusion session is imported."""
    resources = [
        patient_resource(),
        vital("8867-4", 92.0, "/min") | {"encounter": {"reference": "Encounter/clinic-visit"}},
    ]
    result = _import(lite, lite_staff["nurse"], make_bundle(*resources))
    assert result.counts()["created"] == 2


@pytest.mark.parametrize(
    ("resource", "path"),
    [
        (
            condition("G90.511") | {"clinicalStatus": {"coding": [{"code": "resolved"}]}},
            "clinicalStatus",
        ),
        (
            observation(
                "8867-4", T_VITALS, status="preliminary", valueQuantity=_quantity(70, "/min")
            ),
            "status",
        ),
        (observation("11557-6", T_LAB, valueQuantity=_quantity(5.0, "kPa")), "code"),
        (
            {
                "resourceType": "Procedure",
                "status": "completed",
                "subject": {"reference": PATIENT_URL},
            },
            "resourceType",
        ),
    ],
)
def test_other_unsupported_entries_are_skipped_too(lite, lite_staff, resource, path):
    """A resolved condition, a preliminary result, an unknown LOINC and a Procedure are
    problems naming the element, and skipped with skip_unsupported."""
    bundle = make_bundle(patient_resource(), resource)
    err = _rejected(lite, lite_staff["nurse"], bundle)
    assert [(p.entry, p.path) for p in err.problems] == [(1, path)]
    result = _import(lite, lite_staff["nurse"], bundle, skip_unsupported=True)
    assert _by_entry(result)[1][1] == "skipped"


# --- the Bundle itself ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bundle", "problems"),
    [
        (patient_resource(), [(-1, "resourceType")]),
        ([], [(-1, "resourceType")]),
        ("not json", [(-1, "resourceType")]),
        (intake_bundle(kind="batch"), [(-1, "type")]),
        ({"resourceType": "Bundle", "type": "transaction", "entry": []}, [(-1, "entry")]),
        ({"resourceType": "Bundle", "type": "transaction"}, [(-1, "entry")]),
        (make_bundle(condition("I10")), [(-1, "entry"), (0, "subject")]),
        (
            make_bundle(patient_resource(), patient_resource(), urls={1: "urn:uuid:1"}),
            [(1, "identifier")],
        ),
        (
            make_bundle(patient_resource(), condition("I10", subject="Patient/other")),
            [(1, "subject")],
        ),
        (
            {"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": "urn:x"}]},
            [(0, "resource")],
        ),
    ],
    ids=[
        "a-patient",
        "a-list",
        "text",
        "batch",
        "no-entries",
        "no-entry-element",
        "no-patient",
        "same-mrn-twice",
        "unknown-patient",
        "entry-without-resource",
    ],
)
def test_bundle_level_problems(lite, lite_staff, bundle, problems):
    """What is wrong with the Bundle as a whole is a problem of the Bundle (entry -1), or of
    the entry at fault; nothing is written."""
    before = _counts(lite)
    err = _rejected(lite, lite_staff["nurse"], bundle)
    assert [(p.entry, p.path) for p in err.problems] == problems
    assert _counts(lite) == before


def test_bundle_problem_messages(lite, lite_staff):
    """The messages say what was expected: the Bundle types, a Patient entry, the MRN."""
    err = _rejected(lite, lite_staff["nurse"], intake_bundle(kind="batch"))
    assert err.problems[0].message == "one of transaction, collection, searchset, got 'batch'"
    assert str(err.problems[0]).startswith("Bundle type: ")
    err = _rejected(lite, lite_staff["nurse"], make_bundle(condition("I10")))
    assert "a Patient entry" in err.problems[0].message
    twice = make_bundle(patient_resource(), patient_resource(), urls={1: "urn:uuid:1"})
    err = _rejected(lite, lite_staff["nurse"], twice)
    assert err.problems[0].message == "MRN KP-1001 is also entry[0]'s"
    err = _rejected(
        lite,
        lite_staff["nurse"],
        make_bundle(patient_resource(), condition("I10", subject="Patient/x")),
    )
    assert "'Patient/x'" in err.problems[0].message


def test_two_patients_in_one_bundle_are_both_imported(db, staff):
    """A Bundle may carry two patients (distinct MRNs); each entry goes to its own."""
    resources = [
        patient_resource("KP-1"),
        patient_resource("KP-2", family="Adeyemi", given=("Tunde",), gender="male"),
        condition("I10", subject="urn:uuid:second"),
        condition("G90.511"),
    ]
    result = _import(db, staff["nurse"], make_bundle(*resources, urls={1: "urn:uuid:second"}))
    assert [p["mrn"] for p in result.patients] == ["KP-1", "KP-2"]
    first, second = (p["id"] for p in result.patients)
    assert [d["key"] for d in _record(db, staff["nurse"], first)["diagnoses"]] == ["crps_1"]
    assert [h["key"] for h in _record(db, staff["nurse"], second)["history"]] == ["hypertension"]
    with db.session() as s:
        (audit,) = list_entries(s, action="import_fhir")
    assert audit.entity_id is None  # two patients: the entry names none


# --- access and audit -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "denied"), [("front_desk", "chart"), ("admin", "register_patient")]
)
def test_front_desk_and_admin_may_not_import(db, staff, role, denied):
    """The front desk may register but not chart, an admin neither: AccessDeniedError,
    nothing written, and the refusal audited (action denied, naming what was refused)."""
    before = _counts(db)
    with pytest.raises(AccessDeniedError):
        _import(db, staff[role], intake_bundle())
    after = _counts(db)
    assert after.pop("audit_entries") == before.pop("audit_entries") + 1
    assert after == before
    with db.session() as s:
        (entry_,) = list_entries(s, action="denied")
    assert (entry_.actor_role, entry_.entity) == (role, denied)


def test_import_is_audited_in_its_transaction(db, staff):
    """The import writes one import_fhir entry naming the patient, the Bundle and the counts,
    with the create entries of its rows; a refused import leaves no entry at all."""
    bundle = intake_bundle(bundle_id="referral-42")
    result = _import(db, staff["nurse"], bundle)
    pid = _patient_id(result)
    with db.session() as s:
        (audit,) = list_entries(s, action="import_fhir")
        creates = list_entries(s, action="create", actor_username="nurse", limit=1000)
    assert (audit.entity, audit.entity_id) == ("patients", pid)
    assert (audit.actor_username, audit.actor_role) == ("nurse", "nurse")
    assert audit.actor_id == staff["nurse"].user_id
    assert audit.detail == "FHIR Bundle referral-42: 18 created, 0 updated, 0 duplicate, 0 skipped"
    tables = [c.entity for c in creates]
    assert tables.count("patients") == 1
    assert tables.count("diagnoses") == 2
    assert tables.count("vital_signs") == 1
    # The rows' entries come first, the import's last, all in one transaction.
    assert max(c.id for c in creates) < audit.id
    before = _counts(db)
    changed = intake_bundle()
    changed["entry"][7]["resource"]["valueQuantity"]["value"] = 99.0  # ALT: now a conflict
    changed["entry"][4]["resource"]["code"]["text"] = "latex"  # a new allergy
    err = _rejected(db, staff["nurse"], changed)
    assert err.conflict
    assert _counts(db) == before


def test_a_bundle_without_id_is_audited_as_such(lite, lite_staff):
    """A Bundle without id is named 'without id' in the audit and the corrections."""
    bundle = intake_bundle()
    del bundle["id"]
    _import(lite, lite_staff["nurse"], bundle)
    with lite.session() as s:
        (audit,) = list_entries(s, action="import_fhir")
    assert audit.detail.startswith("FHIR Bundle without id: ")


# --- round trips: export, import into another database, export again -----------------------


@pytest.fixture
def db_b(db: Database, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A second fresh database of the same dialect as ``db``, from the same template (so
    with the same staff users)."""
    if db.engine.dialect.name == "sqlite":
        template = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "clinic-b.db"
        shutil.copyfile(template, path)
        other = Database.connect(f"sqlite:///{path}")
        yield other
        other.dispose()
        return
    databases: PgDatabases = request.getfixturevalue("pg_databases")
    name = databases.acquire()
    other = Database.connect(_pg_url(name))
    yield other
    other.dispose()
    databases.release(name)


def _normalised(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries with every UUID replaced by a token in order of first appearance."""
    tokens: dict[str, str] = {}

    def token(m: re.Match[str]) -> str:
        return tokens.setdefault(m.group(0), f"<id{len(tokens)}>")

    return json.loads(UUID_RE.sub(token, json.dumps(entries)))


def _export(db: Database, actor: Actor, key: str) -> dict[str, Any]:
    return export_bundle(db, actor, [key], mrn_system=MRN_SYSTEM)


def test_export_uses_no_deprecated_sqlalchemy_api(db, staff, patient):
    """Exporting a record emits no deprecation warning (pytest turns warnings into errors):
    export.py once read the users' names with Result.tuples(), deprecated in SQLAlchemy 2.1."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bundle = export_bundle(db, staff["nurse"], [patient.mrn], mrn_system=MRN_SYSTEM)
    assert bundle["entry"][0]["resource"]["resourceType"] == "Patient"


def _chart_intake_patient(db: Database, staff: dict[str, Actor]) -> Patient:
    """An intake patient charted through the services, everything the export carries
    outside a course: diagnoses as key, ICD-10-CM and SNOMED CT, history, allergies,
    medications (one stopped, a fentanyl patch), labs (one corrected), weight and height,
    vital signs, pain NRS, PEG and an itemised Aldrete score outside an infusion."""
    doc, nurse = staff["physician"], staff["nurse"]
    p = register_patient(
        db,
        staff["front_desk"],
        mrn="RT-0001",
        family_name="O'Brien",
        given_name="Mary Ann",
        birth_date=date(1969, 7, 20),
        sex="female",
    )
    pid = p.id

    def chart(row: Any, actor: Actor = nurse) -> Any:
        return add_row(db, actor, Action.CHART, row)

    chart(Diagnosis(patient_id=pid, code="crps_1"), doc)
    chart(Diagnosis(patient_id=pid, code="M79.7"), doc)
    chart(Diagnosis(patient_id=pid, code="247398009"), doc)
    chart(Diagnosis(patient_id=pid, code="migraine"), doc)
    chart(HistoryItem(patient_id=pid, code="I10"), doc)
    chart(HistoryItem(patient_id=pid, code="F10.20"), doc)
    chart(Allergy(patient_id=pid, substance="penicillin", reaction="hives", severity="moderate"))
    chart(Allergy(patient_id=pid, substance="latex", severity="unknown"))
    chart(Allergy(patient_id=pid, substance="sulfa", severity="mild"))
    chart(Medication(patient_id=pid, name="Oxycodone", dose_mg_per_day=40.0))
    morphine = chart(Medication(patient_id=pid, name="morphine", dose_mg_per_day=30.0))
    chart(Medication(patient_id=pid, name="fentanyl patch", dose_mcg_per_h=25.0))
    chart(Medication(patient_id=pid, name="gabapentin", dose_mg_per_day=900.0))
    chart(Medication(patient_id=pid, name="vitamin D"))
    correct_row(
        db,
        nurse,
        Action.CHART,
        Medication,
        morphine.id,
        kind="medication",
        reason="stopped by the GP",
        changes={"active": False},
    )
    labs = [
        LabResult(patient_id=pid, test="alt", value=52.0, ref_low=7.0, ref_high=40.0),
        LabResult(patient_id=pid, test="bilirubin", value=0.8, ref_high=1.2),
        LabResult(patient_id=pid, test="creatinine", value=0.9, ref_low=0.5, ref_high=1.1),
        LabResult(patient_id=pid, test="pregnancy_test", positive=False),
    ]
    for row in labs:
        row.collected_utc = T_LAB
        chart(row)
    ast = chart(
        LabResult(patient_id=pid, test="ast", value=80.0, ref_high=40.0, collected_utc=T_LAB)
    )
    correct_row(
        db,
        nurse,
        Action.CHART,
        LabResult,
        ast.id,
        kind="lab",
        reason="transcription error",
        changes={"value": 38.0},
    )
    chart(BodyMeasurement(patient_id=pid, weight_kg=71.5, height_cm=162.0, measured_utc=T_BODY))
    later = T_BODY + timedelta(days=20)
    chart(BodyMeasurement(patient_id=pid, weight_kg=70.2, measured_utc=later))
    record_vitals(
        db,
        nurse,
        (),
        patient_id=pid,
        measured_utc=T_VITALS,
        sbp_mmhg=128.0,
        dbp_mmhg=82.0,
        hr_per_min=74.0,
        rr_per_min=14.0,
        spo2_pct=97.0,
        temp_c=36.8,
        on_oxygen=False,
    )
    record_vitals(
        db,
        nurse,
        (),
        patient_id=pid,
        measured_utc=later,
        sbp_mmhg=140.0,
        spo2_pct=93.0,
        on_oxygen=True,
    )
    record_score(
        db, nurse, (), patient_id=pid, instrument="pain_nrs", value=7.0, measured_utc=T_VITALS
    )
    record_score(
        db,
        nurse,
        (),
        patient_id=pid,
        instrument="peg",
        items={"pain": 7, "enjoyment": 6, "activity": 6},
        measured_utc=T_VITALS,
    )
    aldrete = {"activity": 2, "respiration": 2, "circulation": 1, "consciousness": 2, "spo2": 2}
    record_score(
        db, nurse, (), patient_id=pid, instrument="aldrete", items=aldrete, measured_utc=later
    )
    return p


def test_round_trip_export_import_export_is_identical_but_for_ids(db, db_b, staff):
    """An intake patient charted in database A, exported, imported into a fresh database B
    and exported from B gives the same entries as A's export once ids are tokens."""
    p = _chart_intake_patient(db, staff)
    first = _export(db, staff["physician"], p.mrn)
    result = _import(db_b, staff["nurse"], first)
    n = len(first["entry"])
    assert result.counts() == {"created": n, "updated": 0, "duplicate": 0, "skipped": 0}
    second = _export(db_b, staff["physician"], p.mrn)
    assert len(second["entry"]) == n
    a, b = _normalised(first["entry"]), _normalised(second["entry"])
    kinds = [e["resource"]["resourceType"] for e in a]
    assert kinds.count("Condition") == 6
    assert kinds.count("MedicationStatement") == 5
    corrected = [k for k, e in enumerate(a) if e["resource"].get("status") == "corrected"]
    assert [a[k]["resource"]["code"]["coding"][0]["code"] for k in corrected] == ["1920-8"]
    for k, (x, y) in enumerate(zip(a, b, strict=True)):
        assert x == y, k
    # The ids differ: B's rows are new rows.
    assert first["entry"][0]["resource"]["id"] != second["entry"][0]["resource"]["id"]


def test_round_trip_keeps_the_status_of_a_corrected_result(db, db_b, staff):
    """The exports before and after the round trip are identical (ids aside), entry for
    entry, the status of the corrected AST included."""
    p = _chart_intake_patient(db, staff)
    first = _export(db, staff["physician"], p.mrn)
    _import(db_b, staff["nurse"], first)
    second = _export(db_b, staff["physician"], p.mrn)
    (ast,) = [e["resource"] for e in second["entry"] if "1920-8" in json.dumps(e["resource"])]
    assert ast["valueQuantity"]["value"] == 38.0
    assert ast["status"] == "corrected"
    assert _normalised(second["entry"]) == _normalised(first["entry"])


def test_round_trip_of_the_imported_bundle_is_a_fixed_point(db, db_b, staff):
    """B's export imported back into A finds everything charted: all duplicates."""
    p = _chart_intake_patient(db, staff)
    first = _export(db, staff["physician"], p.mrn)
    _import(db_b, staff["nurse"], first)
    second = _export(db_b, staff["physician"], p.mrn)
    before = _counts(db)
    again = _import(db, staff["nurse"], second)
    assert again.counts()["duplicate"] == len(second["entry"])
    after = _counts(db)
    assert after.pop("audit_entries") == before.pop("audit_entries") + 1
    assert after == before


def test_round_trip_of_a_patient_with_a_course_skips_the_treatment(
    db, db_b, staff, patient, make_ready
):
    """A patient with a course (plan, an infusion with its vitals and scores) exported from A
    and imported into B with skip_unsupported: the plan, the session's Encounter, Procedure,
    administrations and the observations of the session are skipped; B's export equals A's
    minus the skipped entries (ids aside)."""
    nurse = staff["nurse"]
    add_row(
        db,
        nurse,
        Action.CHART,
        LabResult(
            patient_id=patient.id, test="alt", value=22.0, ref_high=40.0, collected_utc=T_LAB
        ),
    )
    record_score(
        db,
        nurse,
        (),
        patient_id=patient.id,
        instrument="pain_nrs",
        value=8.0,
        measured_utc=T_VITALS,
    )
    course = create_course(
        db,
        staff["physician"],
        patient_id=patient.id,
        protocol="seed-outpatient",
        start_date=date(2026, 11, 23),
        bag_mg=250,
        bag_ml=250,
    )
    inf = hang_infusion(db, nurse, course.id, session_number=1, bag_mg=250, bag_ml=250, lot="K-1")
    make_ready(inf.id, patient.id)
    now = utc_now()
    pump_event(
        db, nurse, inf.id, kind="start", rate_mg_per_h=13.6, time_utc=now - timedelta(hours=3)
    )
    pump_event(db, nurse, inf.id, kind="stop", time_utc=now - timedelta(hours=1))
    record_vitals(
        db,
        nurse,
        (),
        patient_id=patient.id,
        infusion_id=inf.id,
        measured_utc=now - timedelta(hours=2),
        sbp_mmhg=130.0,
        hr_per_min=80.0,
    )

    first = _export(db, staff["physician"], patient.mrn)
    result = _import(db_b, nurse, first, skip_unsupported=True)
    outcomes = sorted(result.outcomes, key=lambda o: o.entry)
    skipped = {o.entry for o in outcomes if o.outcome == "skipped"}
    kinds = {first["entry"][k]["resource"]["resourceType"] for k in skipped}
    assert kinds == {
        "MedicationRequest",
        "Encounter",
        "Procedure",
        "MedicationAdministration",
        "Observation",
    }
    # The session's observations: baseline vitals (bp, hr, spo2), baseline NRS, vitals (bp, hr).
    in_session = [
        k for k in skipped if first["entry"][k]["resource"]["resourceType"] == "Observation"
    ]
    assert len(in_session) == 6
    assert all("encounter" in first["entry"][k]["resource"] for k in in_session)
    assert {o.outcome for o in outcomes if o.entry not in skipped} == {"created"}
    second = _export(db_b, staff["physician"], patient.mrn)
    kept = [e for k, e in enumerate(first["entry"]) if k not in skipped]
    assert _normalised(second["entry"]) == _normalised(kept)
    assert len(second["entry"]) == len(first["entry"]) - len(skipped)


# --- property: values survive import and export --------------------------------------------

_MRNS = itertools.count()


def _find(entries: list[dict[str, Any]], loinc: str) -> dict[str, Any]:
    (obs,) = [
        e["resource"]
        for e in entries
        if any(c.get("code") == loinc for c in e["resource"].get("code", {}).get("coding", []))
    ]
    return obs


@st.composite
def _intake_values(draw: st.DrawFn) -> dict[str, Any]:
    """Values in ketapain's units (to the export's 4 decimals) and the unit each is sent in."""

    def decimal(low: float, high: float, places: int = 1) -> float:
        scale = 10**places
        return draw(st.integers(int(low * scale), int(high * scale))) / scale

    sbp = decimal(90, 220)
    return {
        "sbp": sbp,
        "dbp": decimal(40, min(sbp - 10, 200)),  # VITAL_RANGES: dbp 20-200 mmHg
        "hr": decimal(30, 180),
        "spo2": decimal(80, 100),
        "temp_c": decimal(34, 41),
        "temp_unit": draw(st.sampled_from(["Cel", "[degF]"])),
        "weight_kg": decimal(30, 200, 2),
        "weight_unit": draw(st.sampled_from(["kg", "g", "[lb_av]"])),
        "height_cm": decimal(120, 210),
        "height_unit": draw(st.sampled_from(["cm", "m", "[in_i]"])),
        "alt": decimal(0, 2000),
        "bilirubin": decimal(0.1, 20, 2),
        "bilirubin_unit": draw(st.sampled_from(["mg/dL", "umol/L"])),
        "nrs": draw(st.integers(0, 10)),
    }


def _sent(value: float, unit: str) -> float:
    """``value`` (in ketapain's unit) expressed in ``unit``."""
    return {
        "g": value * 1000.0,
        "[lb_av]": value / POUND_KG,
        "m": value / 100.0,
        "[in_i]": value / 2.54,
        "[degF]": value * 9.0 / 5.0 + 32.0,
        "umol/L": value * 17.10,
    }.get(unit, value)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(v=_intake_values())
def test_property_values_survive_import_and_export(db, staff, v):
    """For random vital signs, body measures and labs sent in any accepted unit, import then
    export gives back the values in ketapain's units (to 1e-9)."""
    n = next(_MRNS)
    mrn = f"PROP-{n}"
    resources = [
        patient_resource(mrn, family=f"Prop{n}"),
        blood_pressure(v["sbp"], v["dbp"]),
        vital("8867-4", v["hr"], "/min"),
        vital("59408-5", v["spo2"], "%"),
        vital("8310-5", _sent(v["temp_c"], v["temp_unit"]), v["temp_unit"]),
        vital("29463-7", _sent(v["weight_kg"], v["weight_unit"]), v["weight_unit"], T_BODY),
        vital("8302-2", _sent(v["height_cm"], v["height_unit"]), v["height_unit"], T_BODY),
        lab("1742-6", v["alt"], "U/L", high=40.0),
        lab(
            "1975-2",
            _sent(v["bilirubin"], v["bilirubin_unit"]),
            v["bilirubin_unit"],
            high=_sent(1.2, v["bilirubin_unit"]),
        ),
        pain_nrs(v["nrs"]),
    ]
    result = _import(db, staff["nurse"], make_bundle(*resources))
    assert result.counts()["created"] == len(resources)
    entries = _export(db, staff["nurse"], mrn)["entry"]
    bp = _find(entries, "85354-9")["component"]
    assert [c["valueQuantity"]["value"] for c in bp] == pytest.approx(
        [v["sbp"], v["dbp"]], abs=1e-9
    )
    expected = {
        "8867-4": (v["hr"], "/min"),
        "59408-5": (v["spo2"], "%"),
        "8310-5": (v["temp_c"], "Cel"),
        "29463-7": (v["weight_kg"], "kg"),
        "8302-2": (v["height_cm"], "cm"),
        "1742-6": (v["alt"], "U/L"),
        "1975-2": (v["bilirubin"], "mg/dL"),
    }
    for loinc, (value, unit) in expected.items():
        quantity = _find(entries, loinc)["valueQuantity"]
        assert quantity["value"] == pytest.approx(value, abs=1e-9), loinc
        assert quantity["code"] == unit
    assert _find(entries, "1975-2")["referenceRange"][0]["high"]["value"] == pytest.approx(
        1.2, abs=1e-9
    )
    assert _find(entries, "72514-3")["valueInteger"] == v["nrs"]
