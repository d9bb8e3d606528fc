"""The FHIR R4 export: a patient's record as a searchset Bundle, resource by resource.

Most tests chart one full record through the services (:func:`_chart`: history, allergy,
home medications, labs, intake vitals and scores, a course, a session with a rate
change, a pause and a rescue, a session stopped before it started) at fixed times in
the past, export it and check the resources against US Core's must-haves, the codes of
:mod:`ketapain.fhir.codes` and the dose arithmetic of :mod:`ketapain.clinic.infusions`,
on SQLite and on PostgreSQL (the ``db`` fixture). The rest test the rate segments (a
property test against :func:`ketapain.clinic.infusions.delivery`) and the validator.
"""

from __future__ import annotations

import uuid
import warnings
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from ketapain.clinic._service import add_row, correct_row
from ketapain.clinic.audit import list_entries
from ketapain.clinic.charting import record_score, record_vitals
from ketapain.clinic.checklist import record_checklist
from ketapain.clinic.courses import current_plan
from ketapain.clinic.infusions import (
    EventKind,
    InfusionEvent,
    PumpEvent,
    PumpState,
    delivery,
    next_state,
)
from ketapain.clinic.observations import RescueMedication, Score, SideEffect, VitalSigns
from ketapain.clinic.patients import Allergy, HistoryItem, LabResult, Medication
from ketapain.clinic.permissions import Action
from ketapain.clinic.pump import hang_infusion, pump_event
from ketapain.clinic.registry import register_patient
from ketapain.clinic.treatment import create_course, replan
from ketapain.errors import AccessDeniedError, KetapainError, RecordNotFoundError
from ketapain.fhir import observations as fhir_observations
from ketapain.fhir.export import FhirExportError, export_bundle
from ketapain.fhir.treatment_resources import rate_segments
from ketapain.fhir.validation import check, model_class

# The export only reads: SQLite runs these; PostgreSQL runs the full record, the
# determinism and current-rows tests here, and the golden tests compare both databases.
SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"], indirect=True)

MRN_SYSTEM = "https://clinic.example.org/mrn"
START = date(2026, 3, 2)  # a Monday, months before the tests run: pump times in the past
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
LOCAL = "https://ketapain.org/fhir/CodeSystem/ketapain"
ALDRETE_9 = {"activity": 2, "respiration": 2, "circulation": 2, "consciousness": 2, "spo2": 1}
# (test, value, ref_low, ref_high): ALT above the range, creatinine below it.
LABS = (
    ("alt", 60.0, 0.0, 40.0),
    ("ast", 30.0, 0.0, 40.0),
    ("alp", 100.0, 40.0, 120.0),
    ("bilirubin", 0.8, 0.1, 1.2),
    ("creatinine", 0.5, 0.6, 1.1),
)


def _at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def _export(db, actor, keys=("T-0001",), **kw) -> dict[str, Any]:
    return export_bundle(
        db, actor, None if keys is None else list(keys), mrn_system=MRN_SYSTEM, **kw
    )


def _resources(bundle: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
    out = [e["resource"] for e in bundle["entry"]]
    return [r for r in out if kind is None or r["resourceType"] == kind]


def _codes(concept: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in concept.get("coding", [])}


def _observation(bundle: dict[str, Any], code: str, system: str = LOINC) -> list[dict[str, Any]]:
    return [r for r in _resources(bundle, "Observation") if (system, code) in _codes(r["code"])]


def _category(resource: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for cat in resource["category"] for c in cat["coding"]}


def _ref(resource_id: object) -> str:
    return f"urn:uuid:{resource_id}"


def _ready(db, nurse, infusion_id, patient_id, when: datetime, **vitals: float) -> None:
    """The checklist, and baseline vitals and NRS 7 charted at ``when`` (before the start)."""
    record_checklist(
        db,
        nurse,
        infusion_id,
        consent_confirmed=True,
        escort_confirmed=True,
        escort_name="A. Escort",
        fasting_confirmed=True,
        medications_reviewed=True,
        premedication_note="premedication given as planned",
    )
    where = {"patient_id": patient_id, "infusion_id": infusion_id, "measured_utc": when}
    values = vitals or {"sbp_mmhg": 120.0, "dbp_mmhg": 75.0}
    record_vitals(db, nurse, (), **where, **values)
    record_score(db, nurse, (), **where, instrument="pain_nrs", value=7.0)


def _chart(db, staff, patient) -> SimpleNamespace:
    """The fixture patient's full record, charted at fixed times.

    Intake (3 days before the course): hypertension, a penicillin allergy, oxycodone
    40 mg/day and a fentanyl 25 mcg/h patch, six labs (ALT high, creatinine low, a
    negative pregnancy test), a blood pressure with only the systolic, NRS 7 and PEG
    7/6/7. Session 1 on 2026-03-02: baseline vitals at 08:45 (all six signs), 20 mg/h
    from 09:00, 30 mg/h at 10:00, paused 10:30 to 10:45, stopped at 11:45; nausea at
    10:20, midazolam 1 mg at 10:30, Aldrete 9 and NRS 3 at 12:00. Session 2 is stopped
    before it starts.
    """
    nurse, doc = staff["nurse"], staff["physician"]
    pid = patient.id
    intake = _at(-72)
    add_row(db, doc, Action.CHART, HistoryItem(patient_id=pid, code="I10"))
    add_row(
        db,
        nurse,
        Action.CHART,
        Allergy(patient_id=pid, substance="penicillin", reaction="rash", severity="moderate"),
    )
    add_row(
        db, nurse, Action.CHART, Medication(patient_id=pid, name="oxycodone", dose_mg_per_day=40)
    )
    add_row(db, nurse, Action.CHART, Medication(patient_id=pid, name="fentanyl", dose_mcg_per_h=25))
    labs = {}
    for test, value, low, high in LABS:
        labs[test] = add_row(
            db,
            nurse,
            Action.CHART,
            LabResult(
                patient_id=pid,
                test=test,
                value=value,
                ref_low=low,
                ref_high=high,
                collected_utc=intake,
            ),
        )
    labs["pregnancy_test"] = add_row(
        db,
        nurse,
        Action.CHART,
        LabResult(patient_id=pid, test="pregnancy_test", positive=False, collected_utc=intake),
    )
    record_vitals(db, nurse, (), patient_id=pid, measured_utc=intake, sbp_mmhg=130.0)
    at_intake = {"patient_id": pid, "measured_utc": intake}
    record_score(db, nurse, (), **at_intake, instrument="pain_nrs", value=7)
    record_score(
        db,
        nurse,
        (),
        **at_intake,
        instrument="peg",
        items={"pain": 7, "enjoyment": 6, "activity": 7},
    )
    course = create_course(
        db,
        doc,
        patient_id=pid,
        protocol="seed-outpatient",
        start_date=START,
        bag_mg=250,
        bag_ml=250,
    )
    first = hang_infusion(
        db, nurse, course.id, session_number=1, bag_mg=250, bag_ml=250, lot="KET-1"
    )
    baseline = {
        "sbp_mmhg": 120.0,
        "dbp_mmhg": 75.0,
        "hr_per_min": 72.0,
        "rr_per_min": 14.0,
        "spo2_pct": 98.0,
        "temp_c": 36.8,
    }
    _ready(db, nurse, first.id, pid, _at(-0.25), **baseline)
    pump_event(db, nurse, first.id, kind="start", rate_mg_per_h=20.0, time_utc=_at(0))
    pump_event(
        db, doc, first.id, kind="rate_change", rate_mg_per_h=30.0, reason="pain", time_utc=_at(1)
    )
    pump_event(db, nurse, first.id, kind="pause", reason="nausea", time_utc=_at(1.5))
    pump_event(db, nurse, first.id, kind="resume", time_utc=_at(1.75))
    pump_event(db, nurse, first.id, kind="stop", time_utc=_at(2.75))
    during = {"patient_id": pid, "infusion_id": first.id}
    effect = add_row(
        db,
        nurse,
        Action.CHART,
        SideEffect(**during, observed_utc=_at(4 / 3), effect="nausea", severity="moderate"),
    )
    rescue = add_row(
        db,
        nurse,
        Action.CHART,
        RescueMedication(
            **during,
            given_utc=_at(1.5),
            drug="midazolam",
            dose_mg=1.0,
            route="iv",
            reason="dysphoria",
        ),
    )
    record_score(
        db, nurse, (), **during, measured_utc=_at(3), instrument="aldrete", items=ALDRETE_9
    )
    record_score(db, nurse, (), **during, measured_utc=_at(3), instrument="pain_nrs", value=3)
    second = hang_infusion(
        db, nurse, course.id, session_number=2, bag_mg=250, bag_ml=250, lot="KET-2"
    )
    pump_event(db, nurse, second.id, kind="stop", reason="patient unwell", time_utc=_at(24))
    return SimpleNamespace(
        course=course, first=first, second=second, labs=labs, effect=effect, rescue=rescue
    )


@pytest.fixture
def record(db, staff, patient) -> SimpleNamespace:
    """The full record of :func:`_chart`, and its export by the physician."""
    charted = _chart(db, staff, patient)
    charted.bundle = _export(db, staff["physician"])
    return charted


# --- the Bundle as a whole ------------------------------------------------------------


def test_full_record_is_a_valid_r4_searchset(record, patient):
    """A searchset with the Patient as the one match, every entry valid R4 (validator and
    R4B models), fullUrls unique and every reference resolving inside the Bundle."""
    bundle = record.bundle
    assert (bundle["resourceType"], bundle["type"], bundle["total"]) == ("Bundle", "searchset", 1)
    modes = [(e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"]]
    assert modes[0] == ("Patient", "match")
    assert [m for m in modes if m[1] == "match"] == [("Patient", "match")]
    assert bundle["entry"][0]["resource"]["id"] == str(patient.id)
    for entry in bundle["entry"]:
        assert entry["fullUrl"] == _ref(entry["resource"]["id"])
        assert check(entry["resource"]) == [], entry["resource"]["resourceType"]
    parsed = Bundle.model_validate(bundle)
    assert len(parsed.entry) == len(bundle["entry"])
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls))
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("reference"), str):
                refs.append(node["reference"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk([e["resource"] for e in bundle["entry"]])
    assert refs
    assert set(refs) <= set(urls)
    counts = Counter(r["resourceType"] for r in _resources(bundle))
    assert counts == {
        "Patient": 1,
        "Condition": 2,  # CRPS and hypertension
        "AllergyIntolerance": 1,
        "MedicationStatement": 2,
        # weight, height, 6 labs, intake BP + NRS + PEG, session 1: 5 baseline signs
        # (BP, HR, RR, temperature, SpO2), NRS 7, Aldrete, NRS 3
        "Observation": 2 + 6 + 3 + 5 + 3,
        "MedicationRequest": 1,
        "Encounter": 2,
        "Procedure": 2,
        "MedicationAdministration": 3 + 1,  # three rate segments and the midazolam
        "AdverseEvent": 1,
    }


@SQLITE_ONLY
def test_vital_signs_meet_the_us_core_must_haves(record, patient):
    """Every vital sign: status, category vital-signs, LOINC code, subject, effective time,
    a UCUM value (or UCUM components for blood pressure), with US Core's codes and units."""
    vitals = [
        r
        for r in _resources(record.bundle, "Observation")
        if (CATEGORY, "vital-signs") in _category(r)
    ]
    assert len(vitals) == 2 + 1 + 5  # weight, height; intake BP; the session's baseline
    seen: dict[str, list[dict[str, Any]]] = {}
    for obs in vitals:
        assert obs["status"] == "final"
        assert obs["subject"] == {"reference": _ref(patient.id), "type": "Patient"}
        datetime.fromisoformat(obs["effectiveDateTime"])  # a dateTime with its offset
        assert datetime.fromisoformat(obs["effectiveDateTime"]).utcoffset() is not None
        loinc = [c["code"] for c in obs["code"]["coding"] if c["system"] == LOINC]
        assert loinc
        seen.setdefault(loinc[0], []).append(obs)
        if "valueQuantity" in obs:
            assert obs["valueQuantity"]["system"] == UCUM
        else:
            for comp in obs["component"]:
                assert "dataAbsentReason" in comp or comp["valueQuantity"]["system"] == UCUM
        assert obs["meta"]["profile"][0].startswith(
            "http://hl7.org/fhir/us/core/StructureDefinition/us-core-"
        )

    def value(code: str, which: int = -1) -> tuple[float, str]:
        q = seen[code][which]["valueQuantity"]
        return q["value"], q["code"]

    assert value("8867-4") == (72.0, "/min")
    assert value("9279-1") == (14.0, "/min")
    assert value("29463-7") == (68.0, "kg")
    assert value("8302-2") == (165.0, "cm")
    assert value("8310-5") == (36.8, "Cel")
    (spo2,) = seen["59408-5"]
    assert _codes(spo2["code"]) == {(LOINC, "59408-5"), (LOINC, "2708-6")}
    assert (spo2["valueQuantity"]["value"], spo2["valueQuantity"]["code"]) == (98.0, "%")
    assert spo2["component"][0]["valueBoolean"] is False  # on supplemental oxygen: no
    session_bp = next(o for o in seen["85354-9"] if "encounter" in o)
    assert session_bp["encounter"]["reference"] == _ref(record.first.id)
    assert session_bp["effectiveDateTime"] == _at(-0.25).isoformat()
    assert "valueQuantity" not in session_bp
    components = {
        c["code"]["coding"][0]["code"]: (c["valueQuantity"]["value"], c["valueQuantity"]["code"])
        for c in session_bp["component"]
    }
    assert components == {"8480-6": (120.0, "mm[Hg]"), "8462-4": (75.0, "mm[Hg]")}


@SQLITE_ONLY
def test_blood_pressure_without_diastolic_marks_it_absent(record):
    """A blood pressure charted with only the systolic keeps both components: the
    diastolic with a data-absent reason instead of a value."""
    (intake_bp,) = [o for o in _observation(record.bundle, "85354-9") if "encounter" not in o]
    systolic, diastolic = intake_bp["component"]
    assert systolic["code"]["coding"][0]["code"] == "8480-6"
    assert systolic["valueQuantity"]["value"] == 130.0
    assert diastolic["code"]["coding"][0]["code"] == "8462-4"
    assert "valueQuantity" not in diastolic
    reason = diastolic["dataAbsentReason"]["coding"][0]
    assert (reason["system"], reason["code"]) == (
        "http://terminology.hl7.org/CodeSystem/data-absent-reason",
        "not-performed",
    )


@SQLITE_ONLY
def test_pain_scores_are_survey_observations(record):
    """NRS: LOINC 72514-3, category survey, an integer; PEG: 91148-7 with its three items
    as LOINC components and the mean of the items as the value; Aldrete: local codes."""
    nrs = _observation(record.bundle, "72514-3")
    assert [(o["valueInteger"], "encounter" in o) for o in nrs] == [
        (7, False),
        (7, True),
        (3, True),
    ]
    for obs in nrs:
        assert _category(obs) == {(CATEGORY, "survey")}
        assert "valueQuantity" not in obs
    (peg,) = _observation(record.bundle, "91148-7")
    assert _category(peg) == {(CATEGORY, "survey")}
    assert peg["valueQuantity"]["value"] == pytest.approx(20 / 3, abs=1e-4)
    assert (peg["valueQuantity"]["system"], peg["valueQuantity"]["code"]) == (UCUM, "{score}")
    items = {c["code"]["coding"][0]["code"]: c["valueInteger"] for c in peg["component"]}
    assert items == {"75893-8": 7, "91145-3": 6, "91146-1": 7}
    assert all(c["code"]["coding"][0]["system"] == LOINC for c in peg["component"])
    (aldrete,) = _observation(record.bundle, "aldrete", LOCAL)
    assert aldrete["valueInteger"] == 9
    assert aldrete["encounter"]["reference"] == _ref(record.first.id)
    parts = {c["code"]["coding"][0]["code"]: c["valueInteger"] for c in aldrete["component"]}
    assert parts == {f"aldrete.{k}": v for k, v in ALDRETE_9.items()}


@SQLITE_ONLY
def test_labs_carry_loinc_unit_range_and_flag(record):
    """Labs: LOINC code, category laboratory, the value in the stored unit (UCUM), the
    lab's range, and the interpretation H above the range, L below, N within; the
    pregnancy test is a coded negative."""
    expected = {
        "alt": ("1742-6", "U/L", "H"),
        "ast": ("1920-8", "U/L", "N"),
        "alp": ("6768-6", "U/L", "N"),
        "bilirubin": ("1975-2", "mg/dL", "N"),
        "creatinine": ("2160-0", "mg/dL", "L"),
    }
    for test, value, low, high in LABS:
        loinc, unit, flag = expected[test]
        (obs,) = _observation(record.bundle, loinc)
        assert obs["id"] == str(record.labs[test].id)
        assert _category(obs) == {(CATEGORY, "laboratory")}
        assert obs["status"] == "final"
        assert obs["effectiveDateTime"] == _at(-72).isoformat()
        q = obs["valueQuantity"]
        assert (q["value"], q["code"], q["system"]) == (value, unit, UCUM)
        (band,) = obs["referenceRange"]
        assert (band["low"]["value"], band["high"]["value"]) == (low, high)
        assert band["high"]["code"] == unit
        assert obs["interpretation"][0]["coding"][0]["code"] == flag
    (preg,) = _observation(record.bundle, "2106-3")
    assert "valueQuantity" not in preg
    assert _codes(preg["valueCodeableConcept"]) == {(SNOMED, "260385009")}
    assert preg["interpretation"][0]["coding"][0]["code"] == "NEG"


@SQLITE_ONLY
def test_conditions_carry_snomed_icd10cm_and_local_codes(record, patient):
    """The diagnosis and the history item are active, confirmed problem-list Conditions
    coded in SNOMED CT, ICD-10-CM (the code as entered when it is one) and locally."""
    crps, hypertension = _resources(record.bundle, "Condition")
    assert _codes(crps["code"]) == {
        (ICD10CM, "G90.511"),
        (SNOMED, "734947007"),
        (LOCAL, "crps_1"),
    }
    assert crps["code"]["text"] == "complex regional pain syndrome type I"
    assert _codes(hypertension["code"]) == {
        (ICD10CM, "I10"),
        (SNOMED, "38341003"),
        (LOCAL, "hypertension"),
    }
    for cond in (crps, hypertension):
        assert cond["clinicalStatus"]["coding"][0]["code"] == "active"
        assert cond["verificationStatus"]["coding"][0]["code"] == "confirmed"
        assert cond["category"][0]["coding"][0]["code"] == "problem-list-item"
        assert cond["subject"]["reference"] == _ref(patient.id)


@SQLITE_ONLY
def test_home_medications_allergy_and_patient(record, patient):
    """Opioids at home as MedicationStatements with RxNorm (oxycodone 7804 at 40 mg/d,
    the fentanyl patch 4337 at 25 ug/h); the allergy with its reaction; the Patient
    with the MRN, name, sex and birth date."""
    meds = {m["medicationCodeableConcept"]["text"]: m for m in _resources(record.bundle)
            if m["resourceType"] == "MedicationStatement"}  # fmt: skip
    oxy, patch = meds["oxycodone"], meds["fentanyl"]
    assert _codes(oxy["medicationCodeableConcept"]) == {(RXNORM, "7804")}
    assert _codes(patch["medicationCodeableConcept"]) == {(RXNORM, "4337")}
    oxy_rate = oxy["dosage"][0]["doseAndRate"][0]["rateQuantity"]
    assert (oxy_rate["value"], oxy_rate["code"], oxy_rate["system"]) == (40.0, "mg/d", UCUM)
    patch_rate = patch["dosage"][0]["doseAndRate"][0]["rateQuantity"]
    assert (patch_rate["value"], patch_rate["code"], patch_rate["system"]) == (25.0, "ug/h", UCUM)
    assert {m["status"] for m in meds.values()} == {"active"}
    (allergy,) = _resources(record.bundle, "AllergyIntolerance")
    assert allergy["code"] == {"text": "penicillin"}
    assert allergy["reaction"] == [{"manifestation": [{"text": "rash"}], "severity": "moderate"}]
    assert allergy["patient"]["reference"] == _ref(patient.id)
    (person,) = _resources(record.bundle, "Patient")
    (mrn,) = person["identifier"]
    assert (mrn["system"], mrn["value"]) == (MRN_SYSTEM, "T-0001")
    assert mrn["type"]["coding"][0]["code"] == "MR"
    assert person["name"] == [{"use": "official", "family": "Doe", "given": ["Jane"]}]
    assert (person["gender"], person["birthDate"]) == ("female", "1980-05-01")


# --- the treatment --------------------------------------------------------------------


@SQLITE_ONLY
def test_plan_is_an_iv_ketamine_medication_request(db, staff, record):
    """The plan: RxNorm 6130, intent order, active while the course runs, and per pump step
    a dosage with the ordered mg/kg/h and the calculated mg/h, IV (SNOMED 47625008)."""
    (request,) = _resources(record.bundle, "MedicationRequest")
    assert (request["status"], request["intent"]) == ("active", "order")
    assert _codes(request["medicationCodeableConcept"]) == {(RXNORM, "6130")}
    assert request["groupIdentifier"]["value"] == str(record.course.id)
    assert request["requester"] == {"display": "Dr Test Physician"}
    (crps,) = [c for c in _resources(record.bundle, "Condition") if "G90.511" in str(c)]
    assert request["reasonReference"] == [{"reference": _ref(crps["id"]), "type": "Condition"}]
    with db.session() as s:
        plan = current_plan(s, record.course.id).plan
    steps = [step for session in plan["sessions"] for step in session["steps"]]
    boluses = sum(len(session.get("boluses_mg") or []) for session in plan["sessions"])
    dosages = request["dosageInstruction"]
    assert len(dosages) == len(steps) + boluses
    assert [d["sequence"] for d in dosages] == list(range(1, len(dosages) + 1))
    stepped = [d for d in dosages if len(d["doseAndRate"]) == 2]
    assert len(stepped) == len(steps)
    for dosage, step in zip(stepped, steps, strict=True):
        ordered, calculated = dosage["doseAndRate"]
        assert ordered["type"]["coding"][0]["code"] == "ordered"
        assert calculated["type"]["coding"][0]["code"] == "calculated"
        assert ordered["rateQuantity"]["code"] == "mg/kg/h"
        assert calculated["rateQuantity"]["code"] == "mg/h"
        assert ordered["rateQuantity"]["value"] == pytest.approx(step["rate_mg_per_kg_h"])
        assert calculated["rateQuantity"]["value"] == pytest.approx(step["rate_mg_per_h"])
        assert calculated["rateQuantity"]["value"] == pytest.approx(
            ordered["rateQuantity"]["value"] * 68.0
        )
        assert _codes(dosage["route"]) == {(SNOMED, "47625008")}
        assert dosage["timing"]["repeat"]["duration"] == step["duration_min"]
    first = stepped[0]
    assert first["timing"]["event"] == ["2026-03-02T09:00:00+00:00"]
    assert first["doseAndRate"][0]["rateQuantity"]["value"] == pytest.approx(0.2)
    assert first["doseAndRate"][1]["rateQuantity"]["value"] == pytest.approx(13.6)


@SQLITE_ONLY
def test_one_administration_per_rate_segment(db, record):
    """20 mg/h 09:00-10:00, 30 mg/h 10:00-10:30, paused, 30 mg/h 10:45-11:45: three
    completed administrations (20, 15 and 30 mg), each part of the session's Procedure in
    its Encounter, their doses summing to the delivered dose."""
    encounter = next(
        e for e in _resources(record.bundle, "Encounter") if e["id"] == str(record.first.id)
    )
    (procedure,) = [
        p
        for p in _resources(record.bundle, "Procedure")
        if p["encounter"]["reference"] == _ref(encounter["id"])
    ]
    (request,) = _resources(record.bundle, "MedicationRequest")
    segments = [
        a
        for a in _resources(record.bundle, "MedicationAdministration")
        if (RXNORM, "6130") in _codes(a["medicationCodeableConcept"])
    ]
    got = [
        (
            a["effectivePeriod"]["start"],
            a["effectivePeriod"]["end"],
            a["dosage"]["rateQuantity"]["value"],
            a["dosage"]["dose"]["value"],
        )
        for a in segments
    ]
    assert got == [
        (_at(0).isoformat(), _at(1).isoformat(), 20.0, 20.0),
        (_at(1).isoformat(), _at(1.5).isoformat(), 30.0, 15.0),
        (_at(1.75).isoformat(), _at(2.75).isoformat(), 30.0, 30.0),
    ]
    for admin in segments:
        assert admin["status"] == "completed"
        assert admin["context"] == {"reference": _ref(encounter["id"]), "type": "Encounter"}
        assert admin["partOf"] == [{"reference": _ref(procedure["id"]), "type": "Procedure"}]
        assert admin["request"]["reference"] == _ref(request["id"])
        assert (admin["dosage"]["rateQuantity"]["code"], admin["dosage"]["dose"]["code"]) == (
            "mg/h",
            "mg",
        )
        assert admin["dosage"]["rateQuantity"]["system"] == UCUM
        assert _codes(admin["dosage"]["route"]) == {(SNOMED, "47625008")}
        assert admin["performer"] == [{"actor": {"display": "Test Nurse RN"}}]
    assert [a["note"][0]["text"] for a in segments] == [
        "Segment 1, opened by start; closed by rate change: pain.",
        "Segment 2, opened by rate change: pain; closed by pause: nausea.",
        "Segment 3, opened by resume; closed by stop.",
    ]
    with db.session() as s:
        events = s.scalars(
            select(InfusionEvent)
            .where(InfusionEvent.infusion_id == record.first.id)
            .order_by(InfusionEvent.sequence)
        ).all()
        delivered = delivery([e.pump_event() for e in events], until=_at(48)).delivered_mg
    assert delivered == pytest.approx(65.0)
    assert sum(a["dosage"]["dose"]["value"] for a in segments) == pytest.approx(delivered)


@SQLITE_ONLY
def test_sessions_are_encounters_and_procedures(record):
    """The session that ran is a finished Encounter spanning its charting (baseline at 08:45
    to the scores at 12:00) with a completed Procedure over the pump's run; the session
    stopped before it started is a cancelled Encounter with a not-done Procedure and the
    reason, and no administration."""
    first, second = _resources(record.bundle, "Encounter")
    assert (first["id"], second["id"]) == (str(record.first.id), str(record.second.id))
    assert first["status"] == "finished"
    assert first["period"] == {"start": _at(-0.25).isoformat(), "end": _at(3).isoformat()}
    assert first["class"]["code"] == "AMB"
    assert first["type"][0]["text"] == "Ketamine infusion, session 1"
    ran, stopped = _resources(record.bundle, "Procedure")
    assert ran["status"] == "completed"
    assert ran["performedPeriod"] == {"start": _at(0).isoformat(), "end": _at(2.75).isoformat()}
    assert _codes(ran["code"]) == {
        (LOCAL, "infusion-session"),
        ("http://www.ama-assn.org/go/cpt", "96365"),
    }
    assert "lot KET-1" in ran["note"][0]["text"]
    assert second["status"] == "cancelled"
    assert (stopped["status"], stopped["statusReason"]) == ("not-done", {"text": "patient unwell"})
    assert stopped["encounter"]["reference"] == _ref(record.second.id)
    assert "performedPeriod" not in stopped
    assert not [
        a
        for a in _resources(record.bundle, "MedicationAdministration")
        if a.get("context", {}).get("reference") == _ref(record.second.id)
    ]


@SQLITE_ONLY
def test_side_effect_and_rescue_medication(record):
    """Nausea is an actual AdverseEvent with its severity, suspected of the session's
    Procedure; midazolam is a MedicationAdministration with RxNorm 6960 in the session."""
    (procedure, _) = _resources(record.bundle, "Procedure")
    (event,) = _resources(record.bundle, "AdverseEvent")
    assert event["id"] == str(record.effect.id)
    assert (event["actuality"], event["event"]) == ("actual", {"text": "nausea"})
    assert event["severity"]["coding"][0]["code"] == "moderate"
    assert event["suspectEntity"] == [
        {"instance": {"reference": _ref(procedure["id"]), "type": "Procedure"}}
    ]
    assert event["encounter"]["reference"] == _ref(record.first.id)
    assert event["date"] == _at(4 / 3).isoformat()
    (rescue,) = [
        a
        for a in _resources(record.bundle, "MedicationAdministration")
        if a["id"] == str(record.rescue.id)
    ]
    assert _codes(rescue["medicationCodeableConcept"]) == {(RXNORM, "6960")}
    assert rescue["status"] == "completed"
    assert rescue["effectiveDateTime"] == _at(1.5).isoformat()
    assert rescue["dosage"]["dose"]["value"] == 1.0
    assert rescue["dosage"]["dose"]["code"] == "mg"
    assert rescue["reasonCode"] == [{"text": "dysphoria"}]
    assert rescue["partOf"][0]["reference"] == _ref(procedure["id"])
    assert rescue["context"]["reference"] == _ref(record.first.id)


@SQLITE_ONLY
def test_running_infusion_ends_with_an_open_segment(db, staff, patient):
    """A session still running: in-progress Encounter and Procedure without an end, and
    its last administration in progress, with no end and no dose yet."""
    course = create_course(
        db,
        staff["physician"],
        patient_id=patient.id,
        protocol="seed-outpatient",
        start_date=START,
        bag_mg=250,
        bag_ml=250,
    )
    nurse = staff["nurse"]
    inf = hang_infusion(db, nurse, course.id, session_number=1, bag_mg=250, bag_ml=250, lot="L")
    _ready(db, nurse, inf.id, patient.id, _at(-0.25))
    pump_event(db, nurse, inf.id, kind="start", rate_mg_per_h=13.6, time_utc=_at(0))
    pump_event(db, nurse, inf.id, kind="pause", time_utc=_at(0.5))
    pump_event(db, nurse, inf.id, kind="resume", time_utc=_at(1))
    bundle = _export(db, staff["nurse"])
    (encounter,) = _resources(bundle, "Encounter")
    (procedure,) = _resources(bundle, "Procedure")
    assert encounter["status"] == "in-progress"
    assert encounter["period"] == {"start": _at(-0.25).isoformat()}
    assert procedure["status"] == "in-progress"
    assert procedure["performedPeriod"] == {"start": _at(0).isoformat()}
    done, running = _resources(bundle, "MedicationAdministration")
    assert done["status"] == "completed"
    assert done["dosage"]["dose"]["value"] == pytest.approx(6.8)
    assert running["status"] == "in-progress"
    assert running["effectivePeriod"] == {"start": _at(1).isoformat()}
    assert "dose" not in running["dosage"]
    assert running["dosage"]["rateQuantity"]["value"] == 13.6
    (request,) = _resources(bundle, "MedicationRequest")
    assert request["status"] == "active"


@SQLITE_ONLY
def test_replanned_course_chains_its_plan_versions(db, staff, patient):
    """A replanned course exports both plan versions: the earlier one stopped, the current
    one active with priorPrescription pointing at it and the reason in a note."""
    course = create_course(
        db,
        staff["physician"],
        patient_id=patient.id,
        protocol="seed-outpatient",
        start_date=START,
        bag_mg=250,
        bag_ml=250,
    )
    replan(db, staff["physician"], course.id, reason="bigger bag", bag_mg=500, bag_ml=500)
    old, new = _resources(_export(db, staff["physician"]), "MedicationRequest")
    assert [i["value"] for i in old["identifier"] + new["identifier"]] == [
        f"{course.id}/v1",
        f"{course.id}/v2",
    ]
    assert (old["status"], new["status"]) == ("stopped", "active")
    assert "priorPrescription" not in old
    assert new["priorPrescription"] == {"reference": _ref(old["id"]), "type": "MedicationRequest"}
    assert new["note"][-1] == {"text": "Changed: bigger bag"}


@SQLITE_ONLY
def test_plan_times_are_given_in_the_clinic_timezone(db, staff, patient):
    """The plan's clinic-local times get the offset of the timezone asked for (09:00 in
    Berlin in March is +01:00), not UTC's."""
    create_course(
        db,
        staff["physician"],
        patient_id=patient.id,
        protocol="seed-outpatient",
        start_date=START,
        bag_mg=250,
        bag_ml=250,
    )
    berlin = _export(db, staff["physician"], timezone="Europe/Berlin")
    utc = _export(db, staff["physician"])
    (request,) = _resources(berlin, "MedicationRequest")
    (request_utc,) = _resources(utc, "MedicationRequest")
    assert request["dosageInstruction"][0]["timing"]["event"] == ["2026-03-02T09:00:00+01:00"]
    assert request_utc["dosageInstruction"][0]["timing"]["event"] == ["2026-03-02T09:00:00+00:00"]


# --- which rows, which patients, who --------------------------------------------------


def test_only_current_rows_are_exported(db, staff, patient):
    """A corrected lab is exported as its correction (status corrected, the corrected value);
    a retracted score and a retracted vital-signs set are not exported at all."""
    nurse = staff["nurse"]
    lab = add_row(
        db,
        nurse,
        Action.CHART,
        LabResult(patient_id=patient.id, test="alt", value=400.0, ref_high=40.0, collected_utc=T0),
    )
    fixed = correct_row(
        db, nurse, Action.CHART, LabResult, lab.id, kind="lab result",
        reason="decimal point slipped", changes={"value": 40.0},
    )  # fmt: skip
    score, _ = record_score(
        db, nurse, (), patient_id=patient.id, instrument="pain_nrs", value=9, measured_utc=T0
    )
    vitals, _ = record_vitals(db, nurse, (), patient_id=patient.id, measured_utc=T0, hr_per_min=80)
    for model, row_id, kind in ((Score, score.id, "score"), (VitalSigns, vitals.id, "vitals")):
        correct_row(
            db, nurse, Action.CHART, model, row_id, kind=kind, reason="wrong patient",
            entered_in_error=True, changes={},
        )  # fmt: skip
    bundle = _export(db, staff["physician"])
    ids = {r["id"] for r in _resources(bundle)}
    (alt,) = _observation(bundle, "1742-6")
    assert alt["id"] == str(fixed.id)
    assert alt["status"] == "corrected"
    assert alt["valueQuantity"]["value"] == 40.0
    assert alt["interpretation"][0]["coding"][0]["code"] == "N"
    assert str(lab.id) not in ids
    assert str(score.id) not in ids
    assert _observation(bundle, "72514-3") == []
    assert _observation(bundle, "8867-4") == []
    # What is left: the Patient, the CRPS Condition, weight, height and the corrected ALT.
    assert Counter(r["resourceType"] for r in _resources(bundle)) == {
        "Patient": 1,
        "Condition": 1,
        "Observation": 3,
    }


@SQLITE_ONLY
def test_export_by_mrn_or_by_id_gives_the_same_resources(db, staff, record, patient):
    """The patient named by MRN (with stray spaces) or by id: the same entries."""
    doc = staff["physician"]
    by_mrn = _export(db, doc, [" T-0001 "])
    by_id = _export(db, doc, [str(patient.id)])
    assert by_mrn["entry"] == by_id["entry"] == record.bundle["entry"]


@SQLITE_ONLY
def test_unknown_patient_is_not_found(db, staff, patient):
    """An MRN or an id that names no patient: RecordNotFoundError, and no export audited."""
    for key in ("T-9999", str(uuid.uuid4())):
        with pytest.raises(RecordNotFoundError):
            _export(db, staff["physician"], [key])
    with db.session() as s:
        assert list_entries(s, action="export_fhir") == []


@SQLITE_ONLY
def test_none_exports_every_patient(db, staff, patient):
    """No keys: every patient, each a match, ordered by MRN, total the number of patients."""
    other = register_patient(
        db,
        staff["front_desk"],
        mrn="A-0002",
        family_name="Roe",
        given_name="Rick",
        birth_date=date(1970, 2, 3),
        sex="male",
    )
    bundle = _export(db, staff["nurse"], None)
    assert bundle["total"] == 2
    matches = [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert matches == [str(other.id), str(patient.id)]
    roe = bundle["entry"][0]["resource"]
    assert (roe["gender"], roe["identifier"][0]["value"]) == ("male", "A-0002")
    # Rick Roe has nothing charted: his Patient is followed straight by Jane Doe's.
    assert bundle["entry"][1]["resource"]["id"] == str(patient.id)


@pytest.mark.parametrize("role", ["front_desk", "admin"])
@SQLITE_ONLY
def test_export_needs_clinical_access(db, staff, patient, role):
    """The front desk and the administrator may not export the record: refused, the
    refusal audited, no export entry."""
    with pytest.raises(AccessDeniedError):
        _export(db, staff[role])
    with db.session() as s:
        assert list_entries(s, action="export_fhir") == []
        denied = list_entries(s, action="denied")
    assert [e.actor_role for e in denied] == [role]


@SQLITE_ONLY
def test_each_export_is_audited_once(db, staff, patient):
    """One export_fhir entry per export: who, the patient's id for one patient (none for
    several), and what was sent."""
    register_patient(
        db,
        staff["front_desk"],
        mrn="A-0002",
        family_name="Roe",
        given_name="Rick",
        birth_date=date(1970, 2, 3),
        sex="male",
    )
    bundle = _export(db, staff["nurse"])
    _export(db, staff["physician"], None)
    with db.session() as s:
        entries = list_entries(s, action="export_fhir")
    assert [(e.actor_username, e.actor_role, e.entity) for e in entries] == [
        ("nurse", "nurse", "patients"),
        ("doc", "physician", "patients"),
    ]
    assert [e.entity_id for e in entries] == [str(patient.id), None]
    assert entries[0].detail == f"FHIR R4 Bundle: 1 patients, {len(bundle['entry'])} resources"


def test_exports_are_deterministic(db, staff, record):
    """Two exports of the same record: the same entries in the same order; only the
    Bundle's id, timestamp and meta are its own."""
    again = _export(db, staff["physician"])
    assert again["entry"] == record.bundle["entry"]
    assert again["id"] != record.bundle["id"]
    strip = {"id", "timestamp", "meta"}
    assert {k: v for k, v in again.items() if k not in strip} == {
        k: v for k, v in record.bundle.items() if k not in strip
    }
    assert datetime.fromisoformat(again["timestamp"]) >= datetime.fromisoformat(
        record.bundle["timestamp"]
    )


@SQLITE_ONLY
def test_an_invalid_resource_stops_the_export(db, staff, patient, monkeypatch):
    """A resource the validator refuses is a bug: the export raises FhirExportError naming
    it, and nothing is sent or audited."""
    record_score(db, staff["nurse"], (), patient_id=patient.id, instrument="pain_nrs", value=5)
    real = fhir_observations.score_observation

    def broken(row):
        return {**real(row), "status": "done"}

    monkeypatch.setattr(fhir_observations, "score_observation", broken)
    with pytest.raises(FhirExportError, match=r"Observation/.* is not valid FHIR R4: status"):
        _export(db, staff["physician"])
    with db.session() as s:
        assert list_entries(s, action="export_fhir") == []


@SQLITE_ONLY
def test_export_raises_no_deprecation_warning(db, staff, patient):
    """An export runs without deprecation warnings (the suite makes warnings errors)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _export(db, staff["physician"])
    deprecations = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert deprecations == []


@SQLITE_ONLY
def test_a_patient_named_twice_is_exported_once(db, staff, patient):
    """Naming one patient by MRN and by id exports it once (fullUrls unique, bdl-7), or
    is refused."""
    try:
        bundle = _export(db, staff["physician"], ["T-0001", str(patient.id)])
    except KetapainError:
        return
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls))
    assert bundle["total"] == 1


# --- rate segments --------------------------------------------------------------------


def _pump(kind: str, hours: float, rate: float | None = None) -> PumpEvent:
    return PumpEvent(kind=kind, time_utc=_at(hours), rate_mg_per_h=rate)


def test_rate_segments_follow_the_pump():
    """A rate change while paused takes effect at the resume; a change at the start's
    instant leaves no empty segment; the reasons name what opened and closed each."""
    events = [
        _pump("start", 0, 10.0),
        _pump("rate_change", 0, 12.0),
        _pump("pause", 1),
        _pump("rate_change", 1.5, 20.0),
        _pump("resume", 2),
        _pump("stop", 2.5),
    ]
    reasons = [None, "typo", "nausea", "settled", None, "done"]
    segments = rate_segments(events, reasons)
    assert [(s.start, s.end, s.rate_mg_per_h, s.dose_mg) for s in segments] == [
        (_at(0), _at(1), 12.0, 12.0),
        (_at(2), _at(2.5), 20.0, 10.0),
    ]
    assert [(s.opened_by, s.closed_by) for s in segments] == [
        ("rate change: typo", "pause: nausea"),
        ("resume", "stop: done"),
    ]
    assert rate_segments([_pump("stop", 0)]) == []
    (running,) = rate_segments([_pump("start", 0, 5.0)])
    assert (running.end, running.dose_mg, running.closed_by) == (None, None, None)


@st.composite
def _event_sequences(draw: st.DrawFn) -> list[PumpEvent]:
    """A valid pump history: a start, then rate changes, pauses and resumes allowed by
    the state machine at non-decreasing times (gaps may be zero), maybe a stop."""
    state = next_state(PumpState.NOT_STARTED, EventKind.START)
    rate = st.floats(min_value=0.0, max_value=200.0, allow_nan=False)
    gap = st.integers(min_value=0, max_value=240).map(lambda m: m / 60.0)
    t = draw(st.integers(min_value=0, max_value=120)) / 60.0
    events = [_pump("start", t, draw(rate))]
    for _ in range(draw(st.integers(min_value=0, max_value=12))):
        kinds = (
            ["rate_change", "pause"] if state is PumpState.RUNNING else ["rate_change", "resume"]
        )
        kind = draw(st.sampled_from(kinds))
        t += draw(gap)
        events.append(_pump(kind, t, draw(rate) if kind == "rate_change" else None))
        state = next_state(state, EventKind(kind))
    if draw(st.booleans()):
        events.append(_pump("stop", t + draw(gap)))
    return events


@given(_event_sequences())
def test_rate_segments_integrate_to_the_delivered_dose(events):
    """Property: segments are in order, never overlap, each has positive length, and
    rate x length summed over them is what ``delivery`` integrates up to the last event."""
    segments = rate_segments(events)
    last = events[-1].time_utc
    total = running_h = 0.0
    previous_end = None
    for k, seg in enumerate(segments):
        end = seg.end if seg.end is not None else last
        if seg.end is None:
            assert k == len(segments) - 1  # only the last one may still run
            assert events[-1].kind != "stop"
        assert seg.start < end or seg.end is None
        if previous_end is not None:
            assert previous_end <= seg.start
        previous_end = end
        hours = (end - seg.start).total_seconds() / 3600.0
        total += seg.rate_mg_per_h * hours
        running_h += hours
        if seg.dose_mg is not None:
            assert seg.dose_mg == pytest.approx(seg.rate_mg_per_h * hours, abs=1e-4)
    expected = delivery(events, until=last)
    assert total == pytest.approx(expected.delivered_mg, abs=1e-6)
    assert running_h == pytest.approx(expected.running_h, abs=1e-9)


# --- the validator --------------------------------------------------------------------

OBS = {"resourceType": "Observation", "status": "final", "code": {"text": "pain"}}


def test_check_accepts_a_minimal_valid_resource():
    """A minimal valid Observation has no problems (the negative tests below are real)."""
    assert check(OBS) == []
    assert check({**OBS, "valueInteger": 3}) == []


@pytest.mark.parametrize(
    ("resource", "path", "words"),
    [
        ({**OBS, "status": "done"}, "status", "'done' is not one of"),
        ({**OBS, "flavour": "sweet"}, "flavour", "Extra inputs are not permitted"),
        ({**OBS, "valueInteger": 3, "valueString": "3"}, "", "but got multiple"),
        ({"resourceType": "Observation", "status": "final"}, "code", "Field required"),
        ({**OBS, "valueQuantity": {"value": "lots"}}, "valueQuantity.value", ""),
        ({"status": "final"}, "resourceType", "a FHIR resource"),
    ],
    ids=["status-code", "unknown-element", "two-value-x", "missing-code", "bad-type", "no-type"],
)
def test_check_names_what_is_wrong(resource, path, words):
    """A bad status code, an unknown element, two value[x], a missing required element,
    a wrong type, no resourceType: each a problem at its path."""
    problems = check(resource)
    assert problems
    assert any(p.path == path and words in p.message for p in problems), problems


def test_check_refuses_what_only_r4b_has():
    """R4B's additions pass the R4B models but not the R4 schema: an extension valued with
    the R4B-only RatioRange, ActivityDefinition.subjectCanonical."""
    ratio_range = {"lowNumerator": {"value": 1}, "denominator": {"value": 2}}
    extended = {
        **OBS,
        "extension": [{"url": "https://example.org/x", "valueRatioRange": ratio_range}],
    }
    (problem,) = check(extended)
    assert problem.path == "extension[0]"
    assert "valueRatioRange" in problem.message
    definition = {
        "resourceType": "ActivityDefinition",
        "status": "active",
        "subjectCanonical": "https://example.org/Group/adults",
    }
    assert any("subjectCanonical" in p.message for p in check(definition))
    assert check({k: v for k, v in definition.items() if k != "subjectCanonical"}) == []


def test_check_reports_an_unknown_resource_type():
    """A resourceType FHIR does not know is a problem at resourceType (not an exception)."""
    assert model_class("Nope") is None
    (problem,) = check({"resourceType": "Nope"})
    assert problem.path == "resourceType"


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "NutritionProduct", "status": "active"},
        {"resourceType": "SubscriptionTopic", "url": "https://example.org/t", "status": "active"},
    ],
    ids=["NutritionProduct", "SubscriptionTopic"],
)
def test_check_refuses_resource_types_r4_lacks(resource):
    """A resource type that exists only in R4B is not FHIR R4: check reports it."""
    assert check(resource) != []
