"""Patients: registration, demographics, measurements, codes, medications, labs, the record."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from ketapain.clinic._service import add_row, correct_row
from ketapain.clinic.audit import AuditEntry
from ketapain.clinic.db import utc_now
from ketapain.clinic.patients import (
    BodyMeasurement,
    Demographics,
    Diagnosis,
    HistoryItem,
    LabResult,
    Medication,
    Patient,
)
from ketapain.clinic.permissions import Action
from ketapain.clinic.registry import list_patients, patient_record, register_patient
from ketapain.errors import AccessDeniedError, ConflictError, InvalidValueError

SUMMARY_KEYS = {"id", "mrn", "family_name", "given_name", "birth_date", "age_y", "sex"}


def _register(db, actor, mrn, family, given, born=date(1970, 1, 15), sex="male"):
    return register_patient(
        db, actor, mrn=mrn, family_name=family, given_name=given, birth_date=born, sex=sex
    )


def _count(db, model):
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def _demo(**kw):
    values = {
        "family_name": "Doe",
        "given_name": "Jane",
        "birth_date": date(1980, 5, 1),
        "sex": "female",
    }
    values.update(kw)
    return Demographics(**values)


# --- registration -------------------------------------------------------------------


def test_front_desk_registers_patient_with_demographics(db, staff, patient):
    """A front desk registration stores the MRN and the demographics the record shows."""
    with db.session() as s:
        rec = patient_record(s, staff["front_desk"], patient.id)
    assert rec["mrn"] == "T-0001"
    assert (rec["family_name"], rec["given_name"], rec["sex"]) == ("Doe", "Jane", "female")
    assert rec["birth_date"] == "1980-05-01"
    assert rec["age_y"] == _demo().age_y(utc_now().date())


def test_register_trims_names_and_mrn(db, staff):
    """Surrounding spaces in the MRN and the names are not stored."""
    p = _register(db, staff["nurse"], "  T-0042 ", "  Smith ", " John  ")
    assert p.mrn == "T-0042"
    with db.session() as s:
        rec = patient_record(s, staff["physician"], p.id)
    assert (rec["mrn"], rec["family_name"], rec["given_name"]) == ("T-0042", "Smith", "John")


def test_duplicate_mrn_is_a_conflict_on_mrn(db, staff, patient):
    """A second patient with the same MRN (spaces ignored) is refused naming the field mrn."""
    with pytest.raises(ConflictError, match="exists already") as err:
        _register(db, staff["front_desk"], " T-0001 ", "Roe", "Richard")
    assert err.value.field == "mrn"
    assert _count(db, Patient) == 1


def test_admin_may_not_register_patients(db, staff):
    """An admin is refused registration, nothing is written and the refusal is audited."""
    with pytest.raises(AccessDeniedError, match="admin may not register patient"):
        _register(db, staff["admin"], "T-0100", "Roe", "Richard")
    assert _count(db, Patient) == 0
    with db.session() as s:
        denied = s.scalars(select(AuditEntry).where(AuditEntry.action == "denied")).all()
    assert [(d.actor_role, d.entity) for d in denied] == [("admin", "register_patient")]


def test_invalid_demographics_roll_back_the_registration(db, staff):
    """A registration with an impossible sex writes neither patient nor demographics."""
    with pytest.raises(InvalidValueError) as err:
        _register(db, staff["front_desk"], "T-0200", "Roe", "Richard", sex="unknown")
    assert err.value.field == "sex"
    assert _count(db, Patient) == 0
    assert _count(db, Demographics) == 0


# --- demographics -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sex": "other"}, "sex"),
        ({"sex": "F"}, "sex"),
        ({"birth_date": utc_now().date() + timedelta(days=1)}, "birth_date"),
        ({"birth_date": date(utc_now().date().year - 121, 6, 1)}, "birth_date"),
        ({"family_name": "   "}, "family_name"),
        ({"given_name": ""}, "given_name"),
        ({"family_name": "x" * 201}, "family_name"),
    ],
)
def test_demographics_refuse_impossible_values(change, field):
    """Unknown sex, a birth date in the future or over 120 years ago, empty names are refused."""
    with pytest.raises(InvalidValueError) as err:
        _demo(**change).check()
    assert err.value.field == field


@pytest.mark.parametrize(
    "born",
    [utc_now().date(), date(utc_now().date().year - 120, 1, 1), date(1980, 5, 1)],
)
def test_demographics_accept_birth_dates_in_the_last_120_years(born):
    """Birth dates from 1 January 120 years back to today pass the check."""
    _demo(birth_date=born).check()


@pytest.mark.parametrize(
    ("born", "on", "age"),
    [
        (date(1980, 5, 1), date(2025, 4, 30), 44.0),
        (date(1980, 5, 1), date(2025, 5, 1), 45.0),
        (date(1980, 5, 1), date(2025, 5, 2), 45.0),
        (date(1980, 5, 1), date(2025, 12, 31), 45.0),
        (date(1980, 12, 31), date(2026, 1, 1), 45.0),
        (date(1980, 5, 1), date(1980, 5, 1), 0.0),
        (date(2000, 2, 29), date(2025, 2, 28), 24.0),
        (date(2000, 2, 29), date(2025, 3, 1), 25.0),
        (date(2000, 2, 29), date(2024, 2, 29), 24.0),
    ],
)
def test_age_counts_whole_years(born, on, age):
    """Age is in whole years and goes up on the birthday, not the day before."""
    assert _demo(birth_date=born).age_y(on) == age


# --- body measurements --------------------------------------------------------------


@pytest.mark.parametrize(
    ("weight", "height", "field"),
    [
        (0.5, 165.0, "weight_kg"),
        (400.5, 165.0, "weight_kg"),
        (True, 165.0, "weight_kg"),
        (68.0, 49.9, "height_cm"),
        (68.0, 250.1, "height_cm"),
    ],
)
def test_body_measurement_ranges(weight, height, field):
    """Weights outside 1-400 kg and heights outside 50-250 cm are refused as unit slips."""
    with pytest.raises(InvalidValueError) as err:
        BodyMeasurement(weight_kg=weight, height_cm=height).check()
    assert err.value.field == field


@pytest.mark.parametrize(("weight", "height"), [(1.0, 50.0), (400.0, 250.0), (68.0, None)])
def test_body_measurement_bounds_and_missing_height_pass(weight, height):
    """The bounds themselves pass, and a weight without a height is allowed."""
    BodyMeasurement(weight_kg=weight, height_cm=height).check()


# --- diagnoses and history ----------------------------------------------------------


@pytest.mark.parametrize("code", ["G90.511", "g90.512", "734947007", "crps_1", " G90.5 "])
def test_diagnosis_resolves_icd10cm_snomed_and_key(code):
    """A CRPS I diagnosis by ICD-10-CM, SNOMED CT or key resolves to the key crps_1."""
    d = Diagnosis(code=code)
    d.check()
    assert d.key == "crps_1"
    assert d.as_dict()["icd10cm"] == ["G90.5"]


@pytest.mark.parametrize(
    ("code", "key"),
    [
        ("I16.1", "uncontrolled_hypertension"),
        ("38341003", "hypertension"),
        ("H40.05", "elevated_intraocular_pressure"),
        ("H40.11", "glaucoma"),
        ("pregnancy", "pregnancy"),
    ],
)
def test_history_resolves_codes_longest_prefix_first(code, key):
    """History codes resolve to their key; the longest ICD-10-CM prefix wins."""
    h = HistoryItem(code=code)
    h.check()
    assert h.key == key


@pytest.mark.parametrize("model", [Diagnosis, HistoryItem])
@pytest.mark.parametrize("code", ["X99.9", "123", "crps", ""])
def test_unknown_codes_are_refused_naming_code(model, code):
    """A code in no vocabulary is an error naming the field code, never a silent drop."""
    with pytest.raises(InvalidValueError) as err:
        model(code=code).check()
    assert err.value.field == "code"


def test_charted_codes_show_in_the_record(db, staff, patient):
    """Stored diagnoses and history keep the code as entered with the resolved key and label."""
    add_row(db, staff["physician"], Action.CHART, HistoryItem(patient_id=patient.id, code="I16"))
    with pytest.raises(InvalidValueError):
        add_row(db, staff["physician"], Action.CHART, Diagnosis(patient_id=patient.id, code="Q"))
    with db.session() as s:
        rec = patient_record(s, staff["nurse"], patient.id)
    assert [(d["code"], d["key"]) for d in rec["diagnoses"]] == [("G90.511", "crps_1")]
    assert rec["diagnoses"][0]["label"] == "complex regional pain syndrome type I"
    assert [(h["code"], h["key"]) for h in rec["history"]] == [("I16", "uncontrolled_hypertension")]


# --- medications --------------------------------------------------------------------


def test_oxycodone_mme_uses_cdc_factor_1_5():
    """Oxycodone 40 mg/day is 60 MME/day (CDC 2022 factor 1.5)."""
    out = Medication(name="Oxycodone", dose_mg_per_day=40.0).as_dict()
    assert out["mme_per_day"] == pytest.approx(60.0)
    assert "1.5" in out["mme_note"]
    assert "Dowell" in out["mme_source"]


def test_fentanyl_patch_mme_uses_cdc_factor_2_4_per_mcg_h():
    """Transdermal fentanyl 25 mcg/h is 60 MME/day (CDC 2022 factor 2.4)."""
    out = Medication(name="fentanyl patch", dose_mcg_per_h=25.0).as_dict()
    assert out["mme_per_day"] == pytest.approx(60.0)
    assert "2.4" in out["mme_note"]


def test_buprenorphine_has_no_mme_but_a_note():
    """Buprenorphine is an opioid without an MME conversion: None with an explaining note."""
    out = Medication(name="buprenorphine", dose_mg_per_day=8.0).as_dict()
    assert out["mme_per_day"] is None
    assert "partial agonist" in out["mme_note"]
    assert out["mme_source"]


def test_opioid_without_dose_has_no_mme_and_says_why():
    """An opioid charted without its dose has no MME and the note names the missing dose."""
    out = Medication(name="morphine").as_dict()
    assert out["mme_per_day"] is None
    assert out["mme_note"] == "dose_mg_per_day not given"


@pytest.mark.parametrize("name", ["gabapentin", "paracetamol", "diazepam"])
def test_non_opioids_have_no_mme(name):
    """Non-opioid medications have mme_per_day, note and source all None."""
    out = Medication(name=name, dose_mg_per_day=100.0).as_dict()
    assert (out["mme_per_day"], out["mme_note"], out["mme_source"]) == (None, None, None)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"name": " ", "dose_mg_per_day": 10.0}, "name"),
        ({"name": "morphine", "dose_mg_per_day": 10001.0}, "dose_mg_per_day"),
        ({"name": "morphine", "dose_mg_per_day": -1.0}, "dose_mg_per_day"),
        ({"name": "fentanyl", "dose_mcg_per_h": 1001.0}, "dose_mcg_per_h"),
    ],
)
def test_medication_checks(kw, field):
    """A medication needs a name and doses within the unit-slip bounds."""
    with pytest.raises(InvalidValueError) as err:
        Medication(**kw).check()
    assert err.value.field == field


def test_record_totals_mme_of_active_opioids_only(db, staff, patient):
    """mme_per_day_total sums the active opioids; a stopped (corrected) one is left out."""
    nurse = staff["nurse"]
    for med in (
        Medication(patient_id=patient.id, name="oxycodone", dose_mg_per_day=40.0),
        Medication(patient_id=patient.id, name="fentanyl", dose_mcg_per_h=25.0),
        Medication(patient_id=patient.id, name="buprenorphine", dose_mg_per_day=8.0),
        Medication(patient_id=patient.id, name="gabapentin", dose_mg_per_day=900.0),
    ):
        add_row(db, nurse, Action.CHART, med)
    morphine = add_row(
        db,
        nurse,
        Action.CHART,
        Medication(patient_id=patient.id, name="morphine", dose_mg_per_day=30),
    )
    with db.session() as s:
        assert patient_record(s, nurse, patient.id)["mme_per_day_total"] == pytest.approx(150.0)
    stopped = correct_row(
        db,
        nurse,
        Action.CHART,
        Medication,
        morphine.id,
        kind="medication",
        reason="stopped by the GP",
        changes={"active": False},
    )
    with db.session() as s:
        rec = patient_record(s, nurse, patient.id)
    assert rec["mme_per_day_total"] == pytest.approx(120.0)
    by_name = {m["name"]: m for m in rec["medications"]}
    assert len(rec["medications"]) == 5
    assert by_name["morphine"]["id"] == str(stopped.id)
    assert by_name["morphine"]["active"] is False


def test_record_for_front_desk_is_demographics_only(db, staff, patient):
    """The front desk's view of a record holds the demographics and nothing clinical."""
    add_row(
        db,
        staff["nurse"],
        Action.CHART,
        Medication(patient_id=patient.id, name="oxycodone", dose_mg_per_day=40.0),
    )
    with db.session() as s:
        desk = patient_record(s, staff["front_desk"], patient.id)
        nurse = patient_record(s, staff["nurse"], patient.id)
    assert set(desk) == SUMMARY_KEYS
    assert not {"medications", "labs", "vitals", "mme_per_day_total"} & set(desk)
    assert {"medications", "labs", "vitals", "diagnoses", "history", "allergies"} <= set(nurse)
    assert nurse["mme_per_day_total"] == pytest.approx(60.0)


def test_admin_may_not_read_records(db, staff, patient):
    """An admin reads neither a record nor the patient list."""
    with db.session() as s:
        with pytest.raises(AccessDeniedError):
            patient_record(s, staff["admin"], patient.id)
        with pytest.raises(AccessDeniedError):
            list_patients(s, staff["admin"])


# --- laboratory results -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"test": "pregnancy_test"}, "positive"),
        ({"test": "pregnancy_test", "positive": True, "value": 1.0}, "positive"),
        ({"test": "alt", "ref_high": 40.0}, "value"),
        ({"test": "alt", "value": 30.0}, "ref_high"),
        ({"test": "ast", "value": -1.0, "ref_high": 40.0}, "value (U/L)"),
        ({"test": "bilirubin", "value": 61.0, "ref_high": 1.2}, "value (mg/dL)"),
        ({"test": "alt", "value": 30.0, "ref_low": 50.0, "ref_high": 40.0}, "ref_low (U/L)"),
        ({"test": "sodium", "value": 140.0, "ref_high": 145.0}, "test"),
    ],
)
def test_lab_result_checks(kw, field):
    """A pregnancy test needs positive and no value; a numeric test a value and ref_high."""
    with pytest.raises(InvalidValueError) as err:
        LabResult(**kw).check()
    assert err.value.field == field


@pytest.mark.parametrize(
    ("kw", "flag"),
    [
        ({"test": "alt", "value": 80.0, "ref_low": 7.0, "ref_high": 40.0}, "H"),
        ({"test": "alt", "value": 5.0, "ref_low": 7.0, "ref_high": 40.0}, "L"),
        ({"test": "alt", "value": 40.0, "ref_low": 7.0, "ref_high": 40.0}, None),
        ({"test": "creatinine", "value": 0.9, "ref_high": 1.1}, None),
        ({"test": "pregnancy_test", "positive": True}, "POS"),
        ({"test": "pregnancy_test", "positive": False}, None),
    ],
)
def test_lab_flags(kw, flag):
    """Flags: H above the lab's range, L below, POS for a positive test, None otherwise."""
    lab = LabResult(**kw)
    lab.check()
    assert lab.flag == flag


def test_labs_in_the_record_carry_unit_and_flag(db, staff, patient):
    """Charted labs appear in the record in collection order with unit, range and flag."""
    now = utc_now()
    nurse = staff["nurse"]
    add_row(
        db,
        nurse,
        Action.CHART,
        LabResult(
            patient_id=patient.id,
            test="pregnancy_test",
            positive=False,
            collected_utc=now - timedelta(days=1),
        ),
    )
    add_row(
        db,
        nurse,
        Action.CHART,
        LabResult(
            patient_id=patient.id,
            test="alt",
            value=90.0,
            ref_high=40.0,
            collected_utc=now - timedelta(days=2),
        ),
    )
    with db.session() as s:
        labs = patient_record(s, nurse, patient.id)["labs"]
    assert [(x["test"], x["unit"], x["flag"]) for x in labs] == [
        ("alt", "U/L", "H"),
        ("pregnancy_test", "", None),
    ]
    assert labs[0]["value"] == pytest.approx(90.0)
    assert labs[1]["positive"] is False


# --- the patient list ---------------------------------------------------------------


def test_list_patients_searches_name_and_mrn_case_insensitively(db, staff, patient):
    """The list matches parts of the MRN, family or given name whatever the case."""
    desk = staff["front_desk"]
    _register(db, desk, "KP-2001", "Okoro", "Daniel")
    _register(db, desk, "KP-2002", "Moreau", "Claire", sex="female")
    with db.session() as s:

        def mrns(search):
            return [r["mrn"] for r in list_patients(s, desk, search=search)]

        assert mrns(None) == ["T-0001", "KP-2002", "KP-2001"]  # by family name
        assert mrns("doe") == ["T-0001"]
        assert mrns("JANE") == ["T-0001"]
        assert mrns("  okORO ") == ["KP-2001"]
        assert mrns("kp-200") == ["KP-2002", "KP-2001"]
        assert mrns("t-0001") == ["T-0001"]
        assert mrns("claire") == ["KP-2002"]
        assert mrns("nobody") == []
        rows = list_patients(s, desk, search="daniel")
    assert set(rows[0]) == SUMMARY_KEYS
    assert rows[0]["sex"] == "male"


def test_list_patients_limit(db, staff, patient):
    """At most ``limit`` patients are listed."""
    _register(db, staff["front_desk"], "KP-3001", "Adams", "Ann", sex="female")
    with db.session() as s:
        rows = list_patients(s, staff["nurse"], limit=1)
    assert [r["mrn"] for r in rows] == ["KP-3001"]
