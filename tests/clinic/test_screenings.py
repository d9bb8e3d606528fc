"""Screening from the chart: the patient the rules read, results, hard stops and overrides."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from ketapain.clinic._service import add_row, correct_row
from ketapain.clinic.alarms import DEFAULT_RULES
from ketapain.clinic.audit import AuditEntry
from ketapain.clinic.charting import record_vitals
from ketapain.clinic.db import utc_now
from ketapain.clinic.patients import BodyMeasurement, HistoryItem, LabResult, Medication
from ketapain.clinic.permissions import Action
from ketapain.clinic.pump import hang_infusion
from ketapain.clinic.registry import register_patient
from ketapain.clinic.screenings import (
    OverrideRecord,
    ScreeningRecord,
    latest_screening,
    run_screening,
    screening_patient,
)
from ketapain.clinic.treatment import create_course
from ketapain.errors import AccessDeniedError, ConflictError, InvalidValueError
from ketapain.protocols.patient import Patient as ChartPatient
from ketapain.protocols.screening import screen

PREGNANCY = "pregnancy"  # the hard-stop code of ketapain.protocols.screening


def _chart(db, staff, row):
    return add_row(db, staff["nurse"], Action.CHART, row)


def _pregnant(db, staff, patient, positive=True, when=None):
    _chart(
        db,
        staff,
        LabResult(
            patient_id=patient.id,
            test="pregnancy_test",
            positive=positive,
            collected_utc=when or utc_now(),
        ),
    )


def _chart_patient(db, patient, on=None):
    with db.session() as s:
        return screening_patient(s, patient.id, on=on)


def _count(db, model):
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def _hard_stops(row):
    return [f["code"] for f in row.result["findings"] if f["severity"] == "hard_stop"]


def test_the_pregnancy_code_is_the_screening_rules():
    """The code used below is the one the protocols-layer screening gives for pregnancy."""
    p = ChartPatient.from_dict({"age_y": 30, "sex": "female", "weight_kg": 60, "pregnant": True})
    assert [f.code for f in screen(p).findings if f.severity == "hard_stop"] == [PREGNANCY]


# --- the chart as screening reads it ------------------------------------------------


def test_screening_patient_reads_the_fixture_chart(db, staff, patient):
    """Demographics, weight, height and diagnosis of the chart make the protocols Patient."""
    p = _chart_patient(db, patient, on=date(2026, 1, 1))
    assert p.patient_id == "T-0001"
    assert (p.age_y, p.sex, p.weight_kg, p.height_cm) == (45.0, "female", 68.0, 165.0)
    assert p.diagnoses == ("crps_1",)
    assert (p.pregnant, p.history, p.medications) == (False, (), ())
    assert p.labs.alt_u_per_l is None
    assert p.vitals.sbp_mmhg is None


def test_screening_patient_age_on_the_day(db, staff, patient):
    """The age is the whole years on the screening day (a birthday counts on the day)."""
    assert _chart_patient(db, patient, on=date(2025, 4, 30)).age_y == 44.0
    assert _chart_patient(db, patient, on=date(2025, 5, 1)).age_y == 45.0


def test_latest_weight_and_latest_height_even_without_height(db, staff, patient):
    """The latest weight is used, with the latest height measured, even on an older row."""
    now = utc_now()
    _chart(
        db,
        staff,
        BodyMeasurement(
            patient_id=patient.id, weight_kg=90.0, height_cm=180.0, measured_utc=now - timedelta(90)
        ),
    )
    _chart(db, staff, BodyMeasurement(patient_id=patient.id, weight_kg=71.5, measured_utc=now))
    p = _chart_patient(db, patient)
    assert (p.weight_kg, p.height_cm) == (71.5, 165.0)


def test_corrected_weight_replaces_the_original(db, staff, patient):
    """A corrected measurement counts, the row it corrects does not."""
    with db.session() as s:
        body = s.scalars(select(BodyMeasurement)).one()
    correct_row(
        db,
        staff["nurse"],
        Action.CHART,
        BodyMeasurement,
        body.id,
        kind="measurement",
        reason="scale was not zeroed",
        changes={"weight_kg": 66.0},
    )
    assert _chart_patient(db, patient).weight_kg == 66.0


def test_screening_patient_needs_a_weight(db, staff):
    """A patient without any weight cannot be screened (a conflict naming weight_kg)."""
    p = register_patient(
        db,
        staff["front_desk"],
        mrn="T-0009",
        family_name="Roe",
        given_name="Rita",
        birth_date=date(1990, 1, 1),
        sex="female",
    )
    with pytest.raises(ConflictError) as err:
        _chart_patient(db, p)
    assert err.value.field == "weight_kg"


def test_active_medications_only(db, staff, patient):
    """Active medications are read with their doses; one stopped by a correction is not."""
    _chart(db, staff, Medication(patient_id=patient.id, name="oxycodone", dose_mg_per_day=40.0))
    _chart(db, staff, Medication(patient_id=patient.id, name="fentanyl", dose_mcg_per_h=25.0))
    morphine = _chart(
        db, staff, Medication(patient_id=patient.id, name="morphine", dose_mg_per_day=30.0)
    )
    correct_row(
        db,
        staff["nurse"],
        Action.CHART,
        Medication,
        morphine.id,
        kind="medication",
        reason="stopped",
        changes={"active": False},
    )
    meds = {m.name: m for m in _chart_patient(db, patient).medications}
    assert set(meds) == {"oxycodone", "fentanyl"}
    assert meds["oxycodone"].dose_mg_per_day == 40.0
    assert meds["fentanyl"].dose_mcg_per_h == 25.0


def test_latest_liver_tests_with_the_labs_upper_limits(db, staff, patient):
    """ALT, AST and bilirubin are the latest results, with the ULN from the lab's ref_high."""
    now = utc_now()

    def lab(test, value, ref_high, days_ago):
        _chart(
            db,
            staff,
            LabResult(
                patient_id=patient.id,
                test=test,
                value=value,
                ref_high=ref_high,
                collected_utc=now - timedelta(days=days_ago),
            ),
        )

    lab("alt", 300.0, 40.0, 30)
    lab("alt", 80.0, 45.0, 1)
    lab("ast", 30.0, 35.0, 2)
    lab("bilirubin", 0.8, 1.2, 2)
    lab("creatinine", 0.9, 1.1, 2)
    labs = _chart_patient(db, patient).labs
    assert (labs.alt_u_per_l, labs.alt_uln_u_per_l) == (80.0, 45.0)
    assert (labs.ast_u_per_l, labs.ast_uln_u_per_l) == (30.0, 35.0)
    assert (labs.bilirubin_mg_per_dl, labs.bilirubin_uln_mg_per_dl) == (0.8, 1.2)


def test_positive_pregnancy_test_makes_the_patient_pregnant(db, staff, patient):
    """The latest pregnancy test decides: positive is pregnant, a later negative is not."""
    now = utc_now()
    _pregnant(db, staff, patient, positive=True, when=now - timedelta(days=3))
    assert _chart_patient(db, patient).pregnant is True
    _pregnant(db, staff, patient, positive=False, when=now - timedelta(days=1))
    assert _chart_patient(db, patient).pregnant is False


def test_latest_vitals_outside_infusions(db, staff, patient):
    """Baseline vitals are the latest charted outside an infusion, not those during one."""
    now = utc_now()
    nurse = staff["nurse"]
    for minutes, sbp in ((120, 150.0), (60, 128.0)):
        record_vitals(
            db,
            nurse,
            DEFAULT_RULES,
            patient_id=patient.id,
            measured_utc=now - timedelta(minutes=minutes),
            sbp_mmhg=sbp,
            dbp_mmhg=82.0,
            hr_per_min=70.0,
            spo2_pct=98.0,
            rr_per_min=14.0,
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
    inf = hang_infusion(db, nurse, course.id, session_number=1, bag_mg=250, bag_ml=250, lot="L1")
    record_vitals(
        db,
        nurse,
        DEFAULT_RULES,
        patient_id=patient.id,
        infusion_id=inf.id,
        measured_utc=now,
        sbp_mmhg=170.0,
        hr_per_min=110.0,
    )
    v = _chart_patient(db, patient).vitals
    assert (v.sbp_mmhg, v.dbp_mmhg, v.hr_per_min, v.spo2_pct, v.rr_per_min) == (
        128.0,
        82.0,
        70.0,
        98.0,
        14.0,
    )


# --- running a screening ------------------------------------------------------------


def test_run_screening_records_result_and_inputs(db, staff, patient):
    """An eligible screening is stored with its findings and the chart values it read."""
    row = run_screening(db, staff["nurse"], patient_id=patient.id, protocol="seed-outpatient")
    assert row.eligible is True
    assert row.protocol == "seed-outpatient"
    codes = [f["code"] for f in row.result["findings"]]
    assert "evidence_crps_1" in codes
    assert _hard_stops(row) == []
    assert row.inputs["weight_kg"] == 68.0
    assert row.inputs["diagnoses"] == ["crps_1"]
    with db.session() as s:
        stored = latest_screening(s, patient.id)
        assert stored is not None
        out = stored.as_dict()
    assert out["id"] == str(row.id)
    assert out["eligible"] is True
    assert out["findings"] == row.result["findings"]
    assert out["overrides"] == []


def test_run_screening_without_protocol(db, staff, patient):
    """A screening without a protocol is stored with protocol None."""
    row = run_screening(db, staff["physician"], patient_id=patient.id)
    assert (row.protocol, row.eligible) == (None, True)


def test_front_desk_may_not_screen(db, staff, patient):
    """The front desk cannot run a screening."""
    with pytest.raises(AccessDeniedError):
        run_screening(db, staff["front_desk"], patient_id=patient.id)
    assert _count(db, ScreeningRecord) == 0


def test_positive_pregnancy_test_is_a_hard_stop(db, staff, patient):
    """A positive pregnancy test makes the patient ineligible with the hard stop pregnancy."""
    _pregnant(db, staff, patient)
    row = run_screening(db, staff["nurse"], patient_id=patient.id, protocol="seed-outpatient")
    assert row.eligible is False
    assert _hard_stops(row) == [PREGNANCY]
    assert row.inputs["pregnant"] is True
    assert _count(db, OverrideRecord) == 0


def test_charted_hard_stops_from_history_vitals_and_labs(db, staff, patient):
    """History, out-of-range baseline vitals and liver tests above 3 x ULN are hard stops."""
    _chart(db, staff, HistoryItem(patient_id=patient.id, code="I16"))
    _chart(db, staff, LabResult(patient_id=patient.id, test="alt", value=200.0, ref_high=40.0))
    record_vitals(
        db, staff["nurse"], DEFAULT_RULES, patient_id=patient.id, sbp_mmhg=185.0, dbp_mmhg=95.0
    )
    row = run_screening(db, staff["nurse"], patient_id=patient.id)
    assert row.eligible is False
    assert set(_hard_stops(row)) == {
        "uncontrolled_hypertension",
        "sbp_out_of_range",
        "lft_above_3x_uln",
    }


def test_physician_override_makes_eligible_and_is_kept(db, staff, patient):
    """A physician's override of the hard stop makes the patient eligible and is stored."""
    _pregnant(db, staff, patient)
    row = run_screening(
        db,
        staff["physician"],
        patient_id=patient.id,
        protocol="seed-outpatient",
        overrides=[(PREGNANCY, "termination booked; patient's informed choice")],
    )
    assert row.eligible is True
    assert [o["code"] for o in row.result["overrides"]] == [PREGNANCY]
    assert row.result["overrides"][0]["clinician"] == "doc"
    with db.session() as s:
        ov = s.scalars(select(OverrideRecord)).one()
    assert (ov.code, ov.context, ov.context_id) == (PREGNANCY, "screening", row.id)
    assert (ov.clinician, ov.patient_id) == ("doc", patient.id)
    assert ov.reason == "termination booked; patient's informed choice"
    assert ov.recorded_by_id == staff["physician"].user_id
    assert ov.as_override().code == PREGNANCY


def test_nurse_may_not_override(db, staff, patient):
    """A nurse giving an override is refused, audited, and no screening is stored."""
    _pregnant(db, staff, patient)
    with pytest.raises(AccessDeniedError, match="only a physician"):
        run_screening(db, staff["nurse"], patient_id=patient.id, overrides=[(PREGNANCY, "why")])
    assert _count(db, ScreeningRecord) == 0
    assert _count(db, OverrideRecord) == 0
    with db.session() as s:
        denied = s.scalars(select(AuditEntry).where(AuditEntry.action == "denied")).one()
    assert (denied.actor_role, denied.entity) == ("nurse", "override")


@pytest.mark.parametrize("code", ["pregnacy", "workup_lft"])
def test_override_matching_no_hard_stop_is_refused(db, staff, patient, code):
    """An override code that is no hard stop here (a typo, a warning) is refused."""
    _pregnant(db, staff, patient)
    with pytest.raises(InvalidValueError) as err:
        run_screening(
            db,
            staff["physician"],
            patient_id=patient.id,
            protocol="seed-outpatient",
            overrides=[(PREGNANCY, "reason"), (code, "reason")],
        )
    assert err.value.field == "overrides"
    assert err.value.value == [code]
    assert _count(db, ScreeningRecord) == 0
    assert _count(db, OverrideRecord) == 0


def test_override_needs_a_reason(db, staff, patient):
    """An override with an empty reason is refused."""
    _pregnant(db, staff, patient)
    with pytest.raises(InvalidValueError, match="override reason"):
        run_screening(db, staff["physician"], patient_id=patient.id, overrides=[(PREGNANCY, " ")])
    assert _count(db, ScreeningRecord) == 0
