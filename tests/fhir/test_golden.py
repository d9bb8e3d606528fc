"""Golden Bundles: the export of two fixed records, compared with files kept in ``golden/``.

Each record is charted through the services at fixed times in March 2026 (in the past, as
the services refuse future pump times), with fixed values, so that its export is the same
on every run and on SQLite and PostgreSQL alike. What is random or "now" is normalised
before the comparison (:func:`normalise`): every UUID becomes ``id-1``, ``id-2``, ... in the
order it first appears, and the Bundle's id, timestamp and ``meta.lastUpdated`` and each
MedicationRequest's ``authoredOn`` (when the plan was recorded) become fixed strings.

* ``intake_patient.json``: a patient with intake data only (demographics, diagnoses,
  history, an allergy, home medications, labs, weight and height, vital signs, NRS, PEG).
* ``treated_patient.json``: intake data, a course planned from 2 March 2026 (plan times in
  Europe/Berlin), a session with a rate change, a pause, a rescue, a side effect, the
  discharge scores and check, a session stopped before it started, and oral follow-on.

A change of the export that is intended changes the golden files: regenerate them with

    KETAPAIN_REGEN_GOLDEN=1 uv run pytest tests/fhir/test_golden.py

and review the diff. The second test checks the golden files themselves: each parses as
a FHIR Bundle, each entry passes :func:`ketapain.fhir.validation.check`, and the parsed
model survives a JSON round trip.
"""

from __future__ import annotations

import copy
import json
import os
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from ketapain.clinic._service import add_row, correct_row
from ketapain.clinic.audit import Actor
from ketapain.clinic.charting import record_score, record_vitals
from ketapain.clinic.checklist import record_checklist
from ketapain.clinic.db import Database
from ketapain.clinic.observations import DischargeCheck, RescueMedication, SideEffect
from ketapain.clinic.patients import (
    Allergy,
    BodyMeasurement,
    Diagnosis,
    HistoryItem,
    LabResult,
    Medication,
)
from ketapain.clinic.permissions import Action
from ketapain.clinic.pump import hang_infusion, pump_event
from ketapain.clinic.registry import register_patient
from ketapain.clinic.treatment import create_course, prescribe_oral
from ketapain.fhir.export import export_bundle
from ketapain.fhir.validation import check

GOLDEN = Path(__file__).parent / "golden"
GOLDENS = ("intake_patient.json", "treated_patient.json")
REGENERATE = os.environ.get("KETAPAIN_REGEN_GOLDEN") == "1"
MRN_SYSTEM = "https://clinic.example.org/mrn"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
FIXED_TIME = "2000-01-01T00:00:00+00:00"
INTAKE = datetime(2026, 2, 23, 10, tzinfo=UTC)
T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)  # 09:00 in Berlin, the plan's first session


def _at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def normalise(bundle: dict[str, Any]) -> dict[str, Any]:
    """``bundle`` with its UUIDs numbered by first appearance and its "now" times fixed."""
    out = copy.deepcopy(bundle)
    out["id"] = "bundle"
    out["timestamp"] = FIXED_TIME
    out["meta"]["lastUpdated"] = FIXED_TIME
    for entry in out["entry"]:
        if entry["resource"]["resourceType"] == "MedicationRequest":
            entry["resource"]["authoredOn"] = FIXED_TIME
    tokens: dict[str, str] = {}

    def token(match: re.Match[str]) -> str:
        return tokens.setdefault(match.group(0), f"id-{len(tokens) + 1}")

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        if isinstance(node, str):
            return UUID_RE.sub(token, node)
        return node

    normalised: dict[str, Any] = walk(out)
    return normalised


def test_normalise_numbers_uuids_by_first_appearance():
    """The normaliser maps each UUID to one token wherever it appears (inside longer
    strings too), numbered in order of first appearance, and fixes the "now" times."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": "2026-11-22T10:00:00+00:00"},
        "timestamp": "2026-11-22T10:00:00+00:00",
        "entry": [
            {"fullUrl": f"urn:uuid:{b}", "resource": {"resourceType": "Patient", "id": b}},
            {
                "fullUrl": f"urn:uuid:{a}",
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": a,
                    "authoredOn": "2026-11-22T09:00:00+00:00",
                    "identifier": [{"value": f"{b}/v1"}],
                },
            },
        ],
    }
    out = normalise(bundle)
    assert (out["id"], out["timestamp"], out["meta"]) == (
        "bundle",
        FIXED_TIME,
        {"lastUpdated": FIXED_TIME},
    )
    assert out["entry"] == [
        {"fullUrl": "urn:uuid:id-1", "resource": {"resourceType": "Patient", "id": "id-1"}},
        {
            "fullUrl": "urn:uuid:id-2",
            "resource": {
                "resourceType": "MedicationRequest",
                "id": "id-2",
                "authoredOn": FIXED_TIME,
                "identifier": [{"value": "id-1/v1"}],
            },
        },
    ]
    assert bundle["entry"][0]["resource"]["id"] == b  # the input is left alone


# --- the two records ------------------------------------------------------------------


def _chart_intake(db: Database, staff: dict[str, Actor]) -> uuid.UUID:
    """Register Jane Doe (born 1980-05-01) and chart her intake on 2026-02-23."""
    nurse, doc = staff["nurse"], staff["physician"]
    patient = register_patient(
        db,
        staff["front_desk"],
        mrn="G-0001",
        family_name="Doe",
        given_name="Jane",
        birth_date=date(1980, 5, 1),
        sex="female",
    )
    pid = patient.id

    def add(actor: Actor, row: Any) -> Any:
        return add_row(db, actor, Action.CHART, row)

    add(
        nurse, BodyMeasurement(patient_id=pid, weight_kg=68.0, height_cm=165.0, measured_utc=INTAKE)
    )
    add(doc, Diagnosis(patient_id=pid, code="G90.511"))
    add(doc, Diagnosis(patient_id=pid, code="fibromyalgia"))
    add(doc, HistoryItem(patient_id=pid, code="I10"))
    add(doc, HistoryItem(patient_id=pid, code="23986001"))  # glaucoma, by SNOMED CT
    add(nurse, Allergy(patient_id=pid, substance="penicillin", reaction="rash", severity="mild"))
    add(nurse, Allergy(patient_id=pid, substance="latex", severity="unknown"))
    add(nurse, Medication(patient_id=pid, name="oxycodone", dose_mg_per_day=40.0))
    add(nurse, Medication(patient_id=pid, name="fentanyl", dose_mcg_per_h=25.0))
    add(nurse, Medication(patient_id=pid, name="vitamin D", dose_mg_per_day=0.025))
    morphine = add(nurse, Medication(patient_id=pid, name="morphine", dose_mg_per_day=30.0))
    correct_row(
        db, nurse, Action.CHART, Medication, morphine.id, kind="medication",
        reason="stopped by the GP", changes={"active": False},
    )  # fmt: skip
    collected = INTAKE - timedelta(days=2)
    for test, value, low, high in (
        ("alt", 52.0, 7.0, 40.0),
        ("ast", 31.0, 8.0, 40.0),
        ("alp", 88.0, 40.0, 120.0),
        ("bilirubin", 0.7, 0.1, 1.2),
        ("creatinine", 0.8, 0.6, 1.1),
    ):
        add(
            nurse,
            LabResult(
                patient_id=pid,
                test=test,
                value=value,
                ref_low=low,
                ref_high=high,
                collected_utc=collected,
            ),
        )
    add(
        nurse,
        LabResult(patient_id=pid, test="pregnancy_test", positive=False, collected_utc=collected),
    )
    at_intake = {"patient_id": pid, "measured_utc": INTAKE}
    record_vitals(
        db,
        nurse,
        (),
        **at_intake,
        sbp_mmhg=128.0,
        dbp_mmhg=82.0,
        hr_per_min=76.0,
        rr_per_min=15.0,
        spo2_pct=97.0,
        temp_c=36.6,
    )
    record_score(db, nurse, (), **at_intake, instrument="pain_nrs", value=7)
    record_score(
        db,
        nurse,
        (),
        **at_intake,
        instrument="peg",
        items={"pain": 7, "enjoyment": 6, "activity": 8},
    )
    return pid


def _ready(db: Database, nurse: Actor, infusion_id: uuid.UUID, pid: uuid.UUID, when: datetime):
    """Checklist, baseline vitals and NRS charted at ``when``, before the start."""
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
    where = {"patient_id": pid, "infusion_id": infusion_id, "measured_utc": when}
    record_vitals(
        db, nurse, (), **where, sbp_mmhg=122.0, dbp_mmhg=78.0, hr_per_min=70.0, spo2_pct=98.0
    )
    record_score(db, nurse, (), **where, instrument="pain_nrs", value=7)


def _chart_treatment(db: Database, staff: dict[str, Actor], pid: uuid.UUID) -> None:
    """A course from 2026-03-02: session 1 run with its events, scores, side effect,
    rescue and discharge; session 2 stopped before it started; oral follow-on in April."""
    nurse, doc = staff["nurse"], staff["physician"]
    course = create_course(
        db,
        doc,
        patient_id=pid,
        protocol="seed-outpatient",
        start_date=date(2026, 3, 2),
        bag_mg=250,
        bag_ml=250,
    )
    first = hang_infusion(
        db, nurse, course.id, session_number=1, bag_mg=250, bag_ml=250, lot="KET-2603"
    )
    _ready(db, nurse, first.id, pid, _at(-0.25))
    pump_event(db, nurse, first.id, kind="start", rate_mg_per_h=13.6, time_utc=_at(0))
    pump_event(
        db,
        nurse,
        first.id,
        kind="rate_change",
        rate_mg_per_h=20.4,
        reason="pain 6, tolerated",
        time_utc=_at(0.5),
    )
    pump_event(db, nurse, first.id, kind="pause", reason="nausea", time_utc=_at(1))
    pump_event(db, nurse, first.id, kind="resume", time_utc=_at(1.25))
    pump_event(db, nurse, first.id, kind="stop", time_utc=_at(2.25))
    during = {"patient_id": pid, "infusion_id": first.id}
    record_vitals(
        db,
        nurse,
        (),
        **during,
        measured_utc=_at(0.75),
        sbp_mmhg=134.0,
        dbp_mmhg=84.0,
        hr_per_min=82.0,
        rr_per_min=16.0,
        spo2_pct=97.0,
        on_oxygen=True,
    )
    record_vitals(db, nurse, (), **during, measured_utc=_at(1.5), sbp_mmhg=126.0, temp_c=36.9)
    add_row(
        db,
        nurse,
        Action.CHART,
        SideEffect(
            **during,
            observed_utc=_at(0.95),
            recorded_utc=_at(1.05),
            effect="nausea",
            severity="mild",
            note="settled after the pause",
        ),
    )
    add_row(
        db,
        nurse,
        Action.CHART,
        RescueMedication(
            **during,
            given_utc=_at(1),
            drug="ondansetron",
            dose_mg=4.0,
            route="iv",
            reason="nausea",
        ),
    )
    after = {**during, "measured_utc": _at(2.75)}
    record_score(db, nurse, (), **during, measured_utc=_at(0.75), instrument="moaas", value=4)
    record_score(db, nurse, (), **after, instrument="pain_nrs", value=3)
    record_score(
        db,
        nurse,
        (),
        **after,
        instrument="aldrete",
        items={"activity": 2, "respiration": 2, "circulation": 2, "consciousness": 2, "spo2": 2},
    )
    record_score(
        db,
        nurse,
        (),
        **after,
        instrument="padss",
        items={"vital_signs": 2, "activity": 2, "nausea_vomiting": 1, "pain": 2, "bleeding": 2},
    )
    add_row(
        db,
        nurse,
        Action.CHART,
        DischargeCheck(
            **during, checked_utc=_at(3), escort_confirmed=True, escort_name="A. Escort"
        ),
    )
    second = hang_infusion(
        db, nurse, course.id, session_number=2, bag_mg=250, bag_ml=250, lot="KET-2603"
    )
    pump_event(
        db, nurse, second.id, kind="stop", reason="patient unwell, rebooked", time_utc=_at(24)
    )
    prescribe_oral(
        db,
        doc,
        course.id,
        dose_mg=25.0,
        doses_per_day=2,
        start_date=date(2026, 4, 1),
        end_date=date(2026, 4, 30),
        instructions="with food",
    )


def _record(db: Database, staff: dict[str, Actor], name: str) -> tuple[str, str]:
    """Chart the record of golden ``name``; its MRN and the timezone to export in."""
    pid = _chart_intake(db, staff)
    if name == "treated_patient.json":
        _chart_treatment(db, staff, pid)
        return "G-0001", "Europe/Berlin"
    return "G-0001", "UTC"


@pytest.mark.parametrize("name", GOLDENS)
def test_export_matches_the_golden_bundle(db, staff, name):
    """The normalised export of the fixed record equals the golden file, on SQLite and
    on PostgreSQL alike (KETAPAIN_REGEN_GOLDEN=1 rewrites the file instead)."""
    mrn, timezone = _record(db, staff, name)
    bundle = export_bundle(db, staff["physician"], [mrn], mrn_system=MRN_SYSTEM, timezone=timezone)
    got = normalise(bundle)
    path = GOLDEN / name
    if REGENERATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run with KETAPAIN_REGEN_GOLDEN=1"
    expected = json.loads(path.read_text(encoding="utf-8"))
    # Resource by resource first, for a readable failure; then the whole Bundle.
    got_types = [e["resource"]["resourceType"] for e in got["entry"]]
    expected_types = [e["resource"]["resourceType"] for e in expected["entry"]]
    assert got_types == expected_types
    for mine, theirs in zip(got["entry"], expected["entry"], strict=True):
        assert mine == theirs
    assert got == expected


def test_the_golden_directory_holds_the_goldens():
    """No stray or missing golden files (each one here is compared and validated)."""
    assert sorted(p.name for p in GOLDEN.glob("*.json")) == sorted(GOLDENS)


@pytest.mark.parametrize("name", GOLDENS)
def test_golden_bundles_are_valid_fhir(name):
    """Each golden file parses as a Bundle, each entry passes the R4 validator, and the
    parsed model serialised to JSON and parsed again is the same model."""
    data = json.loads((GOLDEN / name).read_text(encoding="utf-8"))
    bundle = Bundle.model_validate(data)
    assert bundle.type == "searchset"
    assert bundle.total == 1
    assert len(bundle.entry) == len(data["entry"]) > 10
    for entry in data["entry"]:
        resource = entry["resource"]
        assert check(resource) == [], f"{resource['resourceType']}/{resource['id']}"
    again = Bundle.model_validate_json(bundle.model_dump_json())
    assert again == bundle
    assert json.loads(again.model_dump_json()) == json.loads(bundle.model_dump_json())
