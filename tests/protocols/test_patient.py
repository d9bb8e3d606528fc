"""Tests of ketapain.protocols.patient: the patient file and its validation."""

from __future__ import annotations

import copy
import json

import pytest

from ketapain.errors import InvalidValueError
from ketapain.protocols.patient import Labs, Medication, Patient, Vitals

# The patient of the issue (examples/patient-uncontrolled-bp.json).
ISSUE_PATIENT = {
    "age_y": 45,
    "sex": "female",
    "weight_kg": 68,
    "height_cm": 165,
    "pregnant": False,
    "diagnoses": ["crps_1"],
    "history": ["uncontrolled_hypertension"],
    "medications": [{"name": "oxycodone", "dose_mg_per_day": 40}],
    "labs": {"alt_u_per_l": 30, "ast_u_per_l": 25, "alt_uln_u_per_l": 40, "ast_uln_u_per_l": 40},
    "vitals": {"sbp_mmhg": 128, "dbp_mmhg": 80, "hr_per_min": 72, "spo2_pct": 98},
}


def _with(**changes) -> dict:
    data = copy.deepcopy(ISSUE_PATIENT)
    data.update(changes)
    return data


def test_issue_patient_parses():
    """Every field of the issue's example is read, as floats and resolved keys."""
    p = Patient.from_dict(ISSUE_PATIENT)
    assert (p.age_y, p.sex, p.weight_kg, p.height_cm) == (45.0, "female", 68.0, 165.0)
    assert isinstance(p.weight_kg, float)
    assert p.pregnant is False
    assert p.diagnoses == ("crps_1",)
    assert p.history == ("uncontrolled_hypertension",)
    assert p.medications == (Medication(name="oxycodone", dose_mg_per_day=40.0),)
    assert p.labs == Labs(
        alt_u_per_l=30.0, ast_u_per_l=25.0, alt_uln_u_per_l=40.0, ast_uln_u_per_l=40.0
    )
    assert p.vitals == Vitals(sbp_mmhg=128.0, dbp_mmhg=80.0, hr_per_min=72.0, spo2_pct=98.0)
    assert p.has("uncontrolled_hypertension")
    assert not p.has("hypertension", "pregnancy")


def test_minimal_patient_defaults():
    """Only age, sex and weight are required; the rest defaults to empty or None."""
    p = Patient.from_dict({"age_y": 30, "sex": "male", "weight_kg": 80.5})
    assert p.height_cm is None and p.pain_nrs is None and p.patient_id is None
    assert p.pregnant is False
    assert p.diagnoses == p.history == p.medications == ()
    assert p.labs == Labs() and p.vitals == Vitals()


def test_codes_resolve_and_duplicates_collapse():
    """ICD-10-CM and SNOMED codes become keys; a condition given twice is kept once."""
    p = Patient.from_dict(
        _with(diagnoses=["G90.511", "crps_1", "M79.7"], history=["I10", "38341003", "K72.10"])
    )
    assert p.diagnoses == ("crps_1", "fibromyalgia")
    assert p.history == ("hypertension", "severe_hepatic_disease")


def test_medication_names_are_normalised():
    """Whitespace inside a medication name collapses; a patch dose is kept in ug/h."""
    p = Patient.from_dict(
        _with(medications=[{"name": "  fentanyl   patch ", "dose_mcg_per_h": 12}, {"name": "x"}])
    )
    assert p.medications == (
        Medication(name="fentanyl patch", dose_mcg_per_h=12.0),
        Medication(name="x"),
    )


def test_from_json_file(tmp_path):
    """A JSON file reads as from_dict of its content."""
    path = tmp_path / "patient.json"
    path.write_text(json.dumps(ISSUE_PATIENT), encoding="utf-8")
    assert Patient.from_json_file(path) == Patient.from_dict(ISSUE_PATIENT)


@pytest.mark.parametrize("content", [None, "{not json", b"\xff\xfe{}"])
def test_bad_json_file_names_the_patient_file(tmp_path, content):
    """A missing, malformed or undecodable file names the patient file."""
    path = tmp_path / "patient.json"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(InvalidValueError) as info:
        Patient.from_json_file(path)
    assert info.value.field == "patient file"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (_with(colour="blue"), "colour"),
        (
            _with(labs={"alt_u_per_l": 30, "alt_uln_u_per_l": 40, "ggt_u_per_l": 50}),
            "labs.ggt_u_per_l",
        ),
        (_with(vitals={"sbp_mmhg": 120, "temp_c": 37}), "vitals.temp_c"),
        (_with(medications=[{"name": "oxycodone", "dose_mg": 40}]), "medications[0].dose_mg"),
        (_with(medications=[{"name": "a"}, {"name": "b", "route": "po"}]), "medications[1].route"),
    ],
)
def test_unknown_keys_name_the_field(data, field):
    """An unknown key at the top level, in labs, vitals or a medication names the field."""
    with pytest.raises(InvalidValueError) as info:
        Patient.from_dict(data)
    assert info.value.field == field
    assert info.value.value == "given"


def test_unknown_top_level_key_lists_the_keys():
    """The error lists the allowed keys."""
    with pytest.raises(InvalidValueError) as info:
        Patient.from_dict(_with(weight=68))
    assert "weight_kg" in info.value.allowed and "medications" in info.value.allowed


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"sex": "female", "weight_kg": 68}, "age_y"),
        ({"age_y": 45, "weight_kg": 68}, "sex"),
        ({"age_y": 45, "sex": "female"}, "weight_kg"),
        (_with(weight_kg="68"), "weight_kg"),
        (_with(weight_kg=True), "weight_kg"),
        (_with(weight_kg=None), "weight_kg"),
        (_with(age_y=[45]), "age_y"),
        (_with(sex="F"), "sex"),
        (_with(pregnant="no"), "pregnant"),
        (_with(pregnant=0), "pregnant"),
        (_with(patient_id=7), "patient_id"),
        (_with(patient_id=" "), "patient_id"),
        (_with(diagnoses="crps_1"), "diagnoses"),
        (_with(history={"a": 1}), "history"),
        (_with(medications={"name": "x"}), "medications"),
        (_with(medications=["oxycodone"]), "medications[0]"),
        (_with(medications=[{"dose_mg_per_day": 4}]), "medications[0].name"),
        (
            _with(medications=[{"name": "x", "dose_mg_per_day": "4"}]),
            "medications[0].dose_mg_per_day",
        ),
        (_with(labs=[30]), "labs"),
        (_with(vitals="normal"), "vitals"),
        (_with(labs={"alt_u_per_l": "30"}), "labs.alt_u_per_l"),
        (_with(diagnoses=[3]), "diagnoses[0]"),
        (_with(history=["hypertension", ""]), "history[1]"),
    ],
)
def test_wrong_types_name_the_field(data, field):
    """A missing required value or a value of the wrong type names the field."""
    with pytest.raises(InvalidValueError) as info:
        Patient.from_dict(data)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (_with(weight_kg=0), "weight_kg"),
        (_with(weight_kg=401), "weight_kg"),
        (_with(weight_kg=float("nan")), "weight_kg"),
        (_with(age_y=-1), "age_y"),
        (_with(age_y=121), "age_y"),
        (_with(height_cm=20), "height_cm"),
        (_with(pain_nrs=11), "pain_nrs"),
        (_with(vitals={"spo2_pct": 120}), "vitals.spo2_pct"),
        (_with(vitals={"sbp_mmhg": 500}), "vitals.sbp_mmhg"),
        (_with(vitals={"dbp_mmhg": 10}), "vitals.dbp_mmhg"),
        (_with(vitals={"hr_per_min": 0}), "vitals.hr_per_min"),
        (_with(vitals={"rr_per_min": 90}), "vitals.rr_per_min"),
        (_with(labs={"alt_u_per_l": -5}), "labs.alt_u_per_l"),
        (_with(labs={"alt_u_per_l": 30, "alt_uln_u_per_l": 0}), "labs.alt_uln_u_per_l"),
        (_with(labs={"bilirubin_mg_per_dl": 61}), "labs.bilirubin_mg_per_dl"),
        (
            _with(medications=[{"name": "x", "dose_mg_per_day": -1}]),
            "medications[0].dose_mg_per_day",
        ),
        (
            _with(medications=[{"name": "x", "dose_mcg_per_h": 1001}]),
            "medications[0].dose_mcg_per_h",
        ),
    ],
)
def test_impossible_values_name_the_field(data, field):
    """Values outside physiological bounds (weight 0, SpO2 120%, SBP 500) name the field."""
    with pytest.raises(InvalidValueError) as info:
        Patient.from_dict(data)
    assert info.value.field == field


def test_patient_must_be_an_object():
    """A JSON array is not a patient."""
    with pytest.raises(InvalidValueError) as info:
        Patient.from_dict([ISSUE_PATIENT])
    assert info.value.field == "patient"


def test_unknown_history_item_lists_the_keys():
    """An unknown history item names its index and lists the vocabulary."""
    with pytest.raises(InvalidValueError) as info:
        Patient.from_dict(_with(history=["hypertension", "hypertention"]))
    assert info.value.field == "history[1]"
    assert "uncontrolled_hypertension" in info.value.allowed
    assert "pregnancy" in info.value.allowed


def test_readme_patient_parses():
    """The README's example file, fentanyl patch and bilirubin included, parses."""
    p = Patient.from_dict(
        {
            "patient_id": "demo-0001",
            "age_y": 45,
            "sex": "female",
            "weight_kg": 68,
            "height_cm": 165,
            "pregnant": False,
            "pain_nrs": 7,
            "diagnoses": ["crps_1"],
            "history": ["hypertension"],
            "medications": [
                {"name": "oxycodone", "dose_mg_per_day": 40},
                {"name": "fentanyl", "dose_mcg_per_h": 12},
            ],
            "labs": {
                "alt_u_per_l": 30,
                "ast_u_per_l": 25,
                "alt_uln_u_per_l": 40,
                "ast_uln_u_per_l": 40,
                "bilirubin_mg_per_dl": 0.8,
                "bilirubin_uln_mg_per_dl": 1.2,
            },
            "vitals": {
                "sbp_mmhg": 128,
                "dbp_mmhg": 80,
                "hr_per_min": 72,
                "spo2_pct": 98,
                "rr_per_min": 14,
            },
        }
    )
    assert p.patient_id == "demo-0001"
    assert p.pain_nrs == 7.0
    assert p.medications[1] == Medication(name="fentanyl", dose_mcg_per_h=12.0)
    assert (p.labs.bilirubin_mg_per_dl, p.labs.bilirubin_uln_mg_per_dl) == (0.8, 1.2)
    assert p.vitals.rr_per_min == 14.0
