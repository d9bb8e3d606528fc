"""Charting an infusion: the bag and program, pump events and rate limits, vitals, scores,
alarms and the discharge check."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from ketapain.clinic._service import add_row, correct_row
from ketapain.clinic.alarms import DEFAULT_RULES
from ketapain.clinic.audit import AuditEntry
from ketapain.clinic.charting import (
    acknowledge_alarm,
    discharge_check,
    infusion_view,
    open_alarms,
    record_score,
    record_vitals,
)
from ketapain.clinic.checklist import checklist_status
from ketapain.clinic.courses import course_view, current_discharge_rules, current_plan
from ketapain.clinic.db import utc_now
from ketapain.clinic.infusions import Infusion, InfusionEvent
from ketapain.clinic.observations import (
    DischargeCheck,
    RescueMedication,
    Score,
    SideEffect,
    VitalSigns,
)
from ketapain.clinic.permissions import Action
from ketapain.clinic.pump import hang_infusion, pump_event
from ketapain.clinic.records import current_json_of, current_of
from ketapain.clinic.registry import register_patient
from ketapain.clinic.screenings import OverrideRecord
from ketapain.clinic.treatment import change_status, create_course
from ketapain.errors import (
    AccessDeniedError,
    ConflictError,
    HardStopError,
    InvalidValueError,
    RecordNotFoundError,
)

MONDAY = date(2026, 11, 23)
ALDRETE_10 = {"activity": 2, "respiration": 2, "circulation": 2, "consciousness": 2, "spo2": 2}
PADSS_9 = {"vital_signs": 2, "activity": 2, "nausea_vomiting": 2, "pain": 1, "bleeding": 2}


@pytest.fixture
def course(db, staff, patient):
    """A seed-outpatient course (68 kg, actual weight) for the fixture patient."""
    return create_course(
        db,
        staff["physician"],
        patient_id=patient.id,
        protocol="seed-outpatient",
        start_date=MONDAY,
        bag_mg=250,
        bag_ml=250,
    )


@pytest.fixture
def infusion(db, staff, course, make_ready):
    """Session 1 of the course, hung by the nurse, checklist complete, not started."""
    row = hang_infusion(
        db, staff["nurse"], course.id, session_number=1, bag_mg=250, bag_ml=250, lot="KET-1"
    )
    make_ready(row.id, row.patient_id)
    return row


def _plan(db, staff, course):
    with db.session() as s:
        return course_view(s, staff["physician"], course.id)


def _view(db, staff, infusion):
    with db.session() as s:
        return infusion_view(s, staff["nurse"], infusion.id)


def _events(db):
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(InfusionEvent))


def _ago(minutes: float) -> datetime:
    return utc_now() - timedelta(minutes=minutes)


def _start(db, staff, infusion, minutes_ago=180, rate=13.6):
    return pump_event(
        db,
        staff["nurse"],
        infusion.id,
        kind="start",
        rate_mg_per_h=rate,
        time_utc=_ago(minutes_ago),
    )


def _expected_max(plan, number):
    """The plan's top step rate or the phase's titration ceiling x dosing weight."""
    session = plan["sessions"][number - 1]
    kg = plan["dosing_weight"]["dosing_kg"]
    (phase,) = [p for p in plan["protocol"]["phases"] if p["name"] == session["phase"]]
    ceiling = phase["titration"]["max_rate"] * kg
    return max(max(st["rate_mg_per_h"] for st in session["steps"]), ceiling)


# --- hanging the bag ----------------------------------------------------------------


def test_hang_infusion_takes_program_and_limit_from_the_plan(db, staff, course, infusion):
    """The program is the plan's session steps; the nurse's ceiling the plan's highest rate."""
    view = _plan(db, staff, course)
    plan = view["plan"]
    assert infusion.program == plan["sessions"][0]["steps"]
    assert infusion.plan_version == 1
    assert infusion.dosing_weight_kg == pytest.approx(68.0)
    assert infusion.plan_max_rate_mg_per_h == pytest.approx(_expected_max(plan, 1))
    # Test phase: 0.2 mg/kg/h planned, titration up to 0.3 mg/kg/h x 68 kg.
    assert infusion.plan_max_rate_mg_per_h == pytest.approx(0.3 * 68.0)
    third = hang_infusion(
        db, staff["nurse"], course.id, session_number=3, bag_mg=250, bag_ml=250, lot="KET-3"
    )
    assert third.program == plan["sessions"][2]["steps"]
    assert third.plan_max_rate_mg_per_h == pytest.approx(_expected_max(plan, 3))
    assert third.plan_max_rate_mg_per_h == pytest.approx(0.5 * 68.0)
    inf = _view(db, staff, infusion)
    assert inf["bag"] == {
        "drug": "ketamine",
        "drug_mg": 250.0,
        "volume_ml": 250.0,
        "lot": "KET-1",
        "conc_mg_per_ml": 1.0,
    }
    assert (inf["state"], inf["delivered_mg"], inf["events"]) == ("not_started", 0.0, [])


def test_first_infusion_puts_the_course_in_progress(db, staff, course):
    """Hanging the first bag moves a planned course to in progress, once."""
    assert _plan(db, staff, course)["status"] == "planned"
    for n in (1, 2):
        hang_infusion(
            db, staff["nurse"], course.id, session_number=n, bag_mg=250, bag_ml=250, lot="L"
        )
    history = _plan(db, staff, course)["status_history"]
    assert [(h["status"], h["reason"]) for h in history] == [
        ("planned", "course planned"),
        ("in_progress", "first infusion started"),
    ]


def test_hang_infusion_refusals(db, staff, course):
    """A session outside the plan, the front desk, or a closed course: no bag is hung."""
    nurse = staff["nurse"]
    for number in (0, 8):
        with pytest.raises(InvalidValueError) as err:
            hang_infusion(
                db, nurse, course.id, session_number=number, bag_mg=250, bag_ml=250, lot="L"
            )
        assert err.value.field == "session_number"
    with pytest.raises(AccessDeniedError):
        hang_infusion(
            db, staff["front_desk"], course.id, session_number=1, bag_mg=250, bag_ml=250, lot="L"
        )
    change_status(db, staff["physician"], course.id, status="cancelled", reason="declined")
    with pytest.raises(ConflictError, match="cancelled"):
        hang_infusion(db, nurse, course.id, session_number=1, bag_mg=250, bag_ml=250, lot="L")


# --- pump events --------------------------------------------------------------------


def test_pump_event_order_rules(db, staff, infusion):
    """No rate change before the start, no start after the stop, nothing by the front desk."""
    nurse = staff["nurse"]
    with pytest.raises(AccessDeniedError):
        pump_event(db, staff["front_desk"], infusion.id, kind="start", rate_mg_per_h=10.0)
    with db.session() as s, pytest.raises(AccessDeniedError):
        infusion_view(s, staff["front_desk"], infusion.id)
    with pytest.raises(ConflictError, match="rate_change is not possible when not_started"):
        pump_event(db, nurse, infusion.id, kind="rate_change", rate_mg_per_h=15.0, reason="up")
    _start(db, staff, infusion)
    with pytest.raises(ConflictError):
        pump_event(db, nurse, infusion.id, kind="resume")
    pump_event(db, nurse, infusion.id, kind="stop", time_utc=_ago(60))
    with pytest.raises(ConflictError, match="stopped"):
        pump_event(db, nurse, infusion.id, kind="start", rate_mg_per_h=13.6)
    assert _events(db) == 2


def test_pump_event_time_rules(db, staff, infusion):
    """Event times must carry an offset, not be in the future, nor before the last event."""
    nurse = staff["nurse"]
    naive = datetime.now() - timedelta(hours=1)  # no offset on purpose
    bad_times = [
        (naive, "a time with its UTC offset"),
        (utc_now() + timedelta(minutes=10), "not in the future"),
    ]
    for t, words in bad_times:
        with pytest.raises(InvalidValueError, match=words) as err:
            pump_event(db, nurse, infusion.id, kind="start", rate_mg_per_h=13.6, time_utc=t)
        assert err.value.field == "time_utc"
    _start(db, staff, infusion, minutes_ago=60)
    with pytest.raises(InvalidValueError, match="at or after the last event") as err:
        pump_event(db, nurse, infusion.id, kind="pause", time_utc=_ago(90))
    assert err.value.field == "time_utc"
    pump_event(db, nurse, infusion.id, kind="pause", time_utc=utc_now() + timedelta(seconds=20))
    assert _events(db) == 2


def test_rate_per_kg_converts_and_rate_changes_need_a_reason(db, staff, infusion):
    """A rate in mg/kg/h is charted in mg/h of the dosing weight; not both; changes need a why."""
    out = pump_event(
        db, staff["nurse"], infusion.id, kind="start", rate_mg_per_kg_h=0.25, time_utc=_ago(30)
    )
    assert out["event"]["rate_mg_per_h"] == pytest.approx(0.25 * 68.0)
    with pytest.raises(InvalidValueError) as err:
        pump_event(
            db,
            staff["nurse"],
            infusion.id,
            kind="rate_change",
            rate_mg_per_h=15.0,
            rate_mg_per_kg_h=0.2,
            reason="down",
        )
    assert err.value.field == "rate_mg_per_kg_h"
    for reason in (None, " "):
        with pytest.raises(InvalidValueError) as err:
            pump_event(
                db,
                staff["nurse"],
                infusion.id,
                kind="rate_change",
                rate_mg_per_h=15.0,
                reason=reason,
            )
        assert err.value.field == "reason"
    assert _events(db) == 1


def test_nurse_changes_rate_within_the_plan_only(db, staff, infusion):
    """A nurse may go up to the plan's maximum; above it is refused and audited as denied."""
    nurse = staff["nurse"]
    _start(db, staff, infusion)
    top = infusion.plan_max_rate_mg_per_h
    out = pump_event(
        db, nurse, infusion.id, kind="rate_change", rate_mg_per_h=top, reason="tolerated"
    )
    assert out["event"]["rate_mg_per_h"] == pytest.approx(top)
    with pytest.raises(AccessDeniedError, match="above the plan's maximum"):
        pump_event(
            db, nurse, infusion.id, kind="rate_change", rate_mg_per_h=top + 1.0, reason="more"
        )
    assert _events(db) == 2
    with db.session() as s:
        denied = s.scalars(select(AuditEntry).where(AuditEntry.action == "denied")).one()
    assert (denied.actor_role, denied.entity) == ("nurse", "change_rate")
    assert "above the plan's maximum" in denied.detail


def test_physician_may_exceed_the_plan_within_hard_limits(db, staff, infusion):
    """A physician sets a rate above the plan but within the hard limits; warnings come back."""
    _start(db, staff, infusion)
    out = pump_event(
        db, staff["physician"], infusion.id, kind="rate_change", rate_mg_per_h=40.0, reason="pain"
    )
    assert out["event"]["rate_mg_per_h"] == pytest.approx(40.0)
    assert [f["code"] for f in out["findings"]] == ["rate_mg_per_kg_h.soft_max"]
    assert [f["severity"] for f in out["findings"]] == ["warning"]


def test_hard_limit_needs_a_physicians_override(db, staff, infusion):
    """Above the hard maximum a rate is a hard stop; the physician's override lets it through."""
    doc = staff["physician"]
    _start(db, staff, infusion)
    with pytest.raises(HardStopError, match="hard maximum") as err:
        pump_event(
            db, doc, infusion.id, kind="rate_change", rate_mg_per_kg_h=2.0, reason="breakthrough"
        )
    codes = sorted(f.code for f in err.value.findings)
    assert codes == ["rate_mg_per_h.hard_max", "rate_mg_per_kg_h.hard_max"]
    assert err.value.field == "rate_mg_per_h"
    assert _events(db) == 1
    with pytest.raises(HardStopError):  # one override is not enough
        pump_event(
            db,
            doc,
            infusion.id,
            kind="rate_change",
            rate_mg_per_kg_h=2.0,
            reason="breakthrough",
            overrides=((codes[0], "monitored bed"),),
        )
    out = pump_event(
        db,
        doc,
        infusion.id,
        kind="rate_change",
        rate_mg_per_kg_h=2.0,
        reason="breakthrough",
        overrides=tuple((c, "ICU-level monitoring in place") for c in codes),
    )
    assert out["event"]["rate_mg_per_h"] == pytest.approx(136.0)
    with db.session() as s:
        rows = s.scalars(select(OverrideRecord).order_by(OverrideRecord.code)).all()
    assert [(r.code, r.context, r.context_id) for r in rows] == [
        (c, "infusion", infusion.id) for c in codes
    ]
    assert {r.clinician for r in rows} == {"doc"}


def test_rate_override_matching_no_hard_stop_is_refused(db, staff, infusion):
    """An override code that matches no hard stop of the rate is refused, as in planning."""
    _start(db, staff, infusion)
    with pytest.raises(InvalidValueError) as err:
        pump_event(
            db,
            staff["physician"],
            infusion.id,
            kind="rate_change",
            rate_mg_per_h=30.0,
            reason="pain",
            overrides=(("rate_mg_per_h.hard_mx", "typo"),),
        )
    assert err.value.field == "overrides"


def test_nurse_may_not_give_overrides(db, staff, infusion):
    """A nurse's rate change with an override is refused even within the plan."""
    _start(db, staff, infusion)
    with pytest.raises(AccessDeniedError, match="only a physician"):
        pump_event(
            db,
            staff["nurse"],
            infusion.id,
            kind="rate_change",
            rate_mg_per_h=15.0,
            reason="up",
            overrides=(("rate_mg_per_h.hard_max", "why"),),
        )
    with pytest.raises(InvalidValueError) as err:
        pump_event(
            db, staff["physician"], infusion.id, kind="pause", overrides=(("x", "not a rate"),)
        )
    assert err.value.field == "overrides"
    assert _events(db) == 1


def test_infusion_view_integrates_the_charted_events(db, staff, infusion):
    """The delivered dose is the integral of the charted rates over the running time."""
    nurse = staff["nurse"]
    t0 = utc_now() - timedelta(hours=3)

    def at(h):
        return t0 + timedelta(hours=h)

    pump_event(db, nurse, infusion.id, kind="start", rate_mg_per_h=20.0, time_utc=at(0))
    pump_event(
        db,
        nurse,
        infusion.id,
        kind="rate_change",
        rate_mg_per_h=10.0,
        reason="nausea",
        time_utc=at(1),
    )
    pump_event(db, nurse, infusion.id, kind="pause", time_utc=at(1.5))
    pump_event(db, nurse, infusion.id, kind="resume", time_utc=at(2))
    view = _view(db, staff, infusion)
    assert view["state"] == "running"
    running_mg = 20.0 * 1 + 10.0 * 0.5 + 10.0 * 1.0  # up to about now: a few ms more
    assert view["delivered_mg"] == pytest.approx(running_mg, abs=0.01)
    pump_event(db, nurse, infusion.id, kind="stop", time_utc=at(2.5))
    view = _view(db, staff, infusion)
    assert view["state"] == "stopped"
    assert view["delivered_mg"] == pytest.approx(30.0)
    assert view["running_h"] == pytest.approx(2.0)
    assert view["delivered_mg_per_kg"] == pytest.approx(30.0 / 68.0)
    assert view["delivered_ml"] == pytest.approx(30.0)
    assert view["bag_remaining_mg"] == pytest.approx(220.0)
    assert view["rate_mg_per_h"] == pytest.approx(10.0)
    assert [e["kind"] for e in view["events"]] == [
        "start",
        "rate_change",
        "pause",
        "resume",
        "stop",
    ]
    assert [e["sequence"] for e in view["events"]] == [1, 2, 3, 4, 5]


# --- vitals, scores and alarms ------------------------------------------------------


def _alarms(db, staff, patient, **values):
    _, alarms = record_vitals(db, staff["nurse"], DEFAULT_RULES, patient_id=patient.id, **values)
    return [(a.level, a.message) for a in alarms]


def test_vitals_raise_alarms_per_the_default_rules(db, staff, patient):
    """SBP 185 stops and warns; SpO2 91 warns; SpO2 89 stops; normal values raise nothing."""
    assert _alarms(db, staff, patient, sbp_mmhg=185.0, dbp_mmhg=90.0) == [
        ("stop", "SBP 185 mmHg > 180 (stop)"),
        ("warn", "SBP 185 mmHg > 160 (warn)"),
    ]
    assert _alarms(db, staff, patient, spo2_pct=91.0) == [("warn", "SpO2 91 % <= 92 (warn)")]
    assert _alarms(db, staff, patient, spo2_pct=89.0) == [
        ("stop", "SpO2 89 % < 90 (stop)"),
        ("warn", "SpO2 89 % <= 92 (warn)"),
    ]
    assert (
        _alarms(db, staff, patient, sbp_mmhg=124.0, dbp_mmhg=78.0, hr_per_min=72.0, spo2_pct=98.0)
        == []
    )
    assert _alarms(db, staff, patient, hr_per_min=45.0, rr_per_min=7.0) == [
        ("stop", "HR 45 /min < 50 (stop)"),
        ("stop", "RR 7 /min < 8 (stop)"),
        ("warn", "HR 45 /min < 55 (warn)"),
        ("warn", "RR 7 /min < 10 (warn)"),
    ]


def test_vital_sign_checks(db, staff, patient, infusion):
    """Vitals need a value in bounds, a diastolic below the systolic, the patient's infusion."""
    other = register_patient(
        db,
        staff["front_desk"],
        mrn="T-0002",
        family_name="Roe",
        given_name="Rita",
        birth_date=date(1990, 1, 1),
        sex="female",
    )
    with pytest.raises(InvalidValueError) as err:
        record_vitals(
            db,
            staff["nurse"],
            DEFAULT_RULES,
            patient_id=other.id,
            infusion_id=infusion.id,
            sbp_mmhg=120.0,
        )
    assert err.value.field == "infusion_id"
    for values, field in (
        ({}, "vital signs"),
        ({"spo2_pct": 101.0}, "spo2_pct"),
        ({"sbp_mmhg": 120.0, "dbp_mmhg": 120.0}, "dbp_mmhg"),
    ):
        with pytest.raises(InvalidValueError) as err:
            record_vitals(db, staff["nurse"], DEFAULT_RULES, patient_id=patient.id, **values)
        assert err.value.field == field
    with db.session() as s:
        assert open_alarms(s, staff["nurse"]) == []


def test_rise_from_the_infusion_baseline_warns(db, staff, patient, infusion):
    """SBP more than 20% above the infusion's first reading raises a warning."""
    first = _alarms(
        db, staff, patient, infusion_id=infusion.id, sbp_mmhg=120.0, measured_utc=_ago(30)
    )
    assert first == []
    assert _alarms(db, staff, patient, infusion_id=infusion.id, sbp_mmhg=140.0) == []
    (alarm,) = _alarms(db, staff, patient, infusion_id=infusion.id, sbp_mmhg=150.0)
    assert alarm == ("warn", "SBP 150 mmHg rose more than 20% from baseline (warn)")
    # Outside the infusion there is no baseline to rise from.
    assert _alarms(db, staff, patient, sbp_mmhg=150.0) == []


def test_sedation_score_alarms_and_acknowledgement(db, staff, patient, infusion):
    """MOAA/S 2 raises a stop alarm; a clinician acknowledges it once, with a note."""
    nurse = staff["nurse"]
    score, alarms = record_score(
        db,
        nurse,
        DEFAULT_RULES,
        patient_id=patient.id,
        infusion_id=infusion.id,
        instrument="moaas",
        value=2,
    )
    assert score.value == 2.0
    assert [(a.level, a.message) for a in alarms] == [
        ("stop", "MOAA/S 2 <= 2 (stop)"),
        ("warn", "MOAA/S 2 <= 3 (warn)"),
    ]
    _, none = record_score(
        db, nurse, DEFAULT_RULES, patient_id=patient.id, instrument="moaas", value=5
    )
    assert none == []
    with db.session() as s:
        listed = open_alarms(s, nurse, patient_id=patient.id)
    assert {a["id"] for a in listed} == {str(a.id) for a in alarms}
    stop = next(a for a in alarms if a.level == "stop")
    (row,) = [a for a in listed if a["id"] == str(stop.id)]
    assert (row["signal"], row["value"], row["acknowledged"]) == ("moaas", 2.0, False)
    assert row["infusion_id"] == str(infusion.id)
    assert "Chernik" in row["source"]
    with pytest.raises(InvalidValueError) as err:
        acknowledge_alarm(db, nurse, stop.id, note="  ")
    assert err.value.field == "note"
    out = acknowledge_alarm(db, nurse, stop.id, note="infusion paused, patient roused")
    assert out["acknowledged"] is True
    assert out["acknowledgements"][0]["note"] == "infusion paused, patient roused"
    with pytest.raises(ConflictError, match="acknowledged already"):
        acknowledge_alarm(db, staff["physician"], stop.id, note="again")
    with db.session() as s:
        left = open_alarms(s, staff["physician"])
    assert [a["level"] for a in left] == ["warn"]
    warn = next(a for a in alarms if a.level == "warn")
    with db.session() as s, pytest.raises(AccessDeniedError):
        open_alarms(s, staff["front_desk"])
    with pytest.raises(AccessDeniedError):
        acknowledge_alarm(db, staff["front_desk"], warn.id, note="seen")


def test_itemised_score_total_is_computed(db, staff, patient, infusion):
    """An Aldrete score is stored as the sum of its items; a typed total that differs is refused."""
    score, alarms = record_score(
        db,
        staff["nurse"],
        DEFAULT_RULES,
        patient_id=patient.id,
        infusion_id=infusion.id,
        instrument="aldrete",
        items=ALDRETE_10,
    )
    assert (score.value, alarms) == (10.0, [])
    with pytest.raises(InvalidValueError) as err:
        record_score(
            db,
            staff["nurse"],
            DEFAULT_RULES,
            patient_id=patient.id,
            instrument="aldrete",
            items=ALDRETE_10,
            value=9,
        )
    assert err.value.field == "value"
    with db.session() as s:
        assert (
            s.scalar(select(func.count()).select_from(Score).where(Score.instrument == "aldrete"))
            == 1
        )


def test_score_without_value_is_an_invalid_value(db, staff, patient):
    """A non-itemised score charted without a value is refused naming the value."""
    with pytest.raises(InvalidValueError) as err:
        record_score(
            db, staff["nurse"], DEFAULT_RULES, patient_id=patient.id, instrument="pain_nrs"
        )
    assert err.value.field == "value"


def test_score_for_another_patients_infusion_is_refused(db, staff, infusion):
    """A score against another patient's infusion, or a missing one, is refused."""
    other = register_patient(
        db,
        staff["front_desk"],
        mrn="T-0002",
        family_name="Roe",
        given_name="Rita",
        birth_date=date(1990, 1, 1),
        sex="female",
    )
    with pytest.raises(InvalidValueError) as err:
        record_score(
            db,
            staff["nurse"],
            DEFAULT_RULES,
            patient_id=other.id,
            infusion_id=infusion.id,
            instrument="aldrete",
            items=ALDRETE_10,
        )
    assert err.value.field == "infusion_id"
    with pytest.raises(RecordNotFoundError):
        record_score(
            db,
            staff["nurse"],
            DEFAULT_RULES,
            patient_id=other.id,
            infusion_id=uuid.uuid4(),
            instrument="pain_nrs",
            value=3,
        )
    with db.session() as s:  # only the fixture's baseline NRS
        assert (
            s.scalar(select(func.count()).select_from(Score).where(Score.patient_id == other.id))
            == 0
        )


# --- discharge ----------------------------------------------------------------------


def _score(db, staff, patient, infusion, name, items, minutes_ago=5):
    record_score(
        db,
        staff["nurse"],
        DEFAULT_RULES,
        patient_id=patient.id,
        infusion_id=infusion.id,
        instrument=name,
        items=items,
        measured_utc=_ago(minutes_ago),
    )


def test_discharge_not_ready_before_the_stop(db, staff, infusion):
    """Without scores, escort or a stop, the check lists every reason."""
    _start(db, staff, infusion, minutes_ago=60)
    out = discharge_check(db, staff["nurse"], infusion.id, escort_confirmed=False)
    assert out["ready"] is False
    assert out["reasons"] == [
        "No Modified Aldrete score charted after the infusion.",
        "No PADSS score charted after the infusion.",
        "No responsible adult escort confirmed (protocol discharge rules).",
        "The infusion has not been stopped.",
    ]
    with pytest.raises(InvalidValueError) as err:
        discharge_check(db, staff["nurse"], infusion.id, escort_confirmed=True)
    assert err.value.field == "escort_name"


def test_discharge_waits_for_the_observation_time(db, staff, patient, infusion):
    """Stopped 30 min ago with passing scores: still within the 120-min observation."""
    _start(db, staff, infusion, minutes_ago=150)
    pump_event(db, staff["nurse"], infusion.id, kind="stop", time_utc=_ago(30))
    _score(db, staff, patient, infusion, "aldrete", ALDRETE_10)
    _score(db, staff, patient, infusion, "padss", {**PADSS_9, "pain": 0, "activity": 1})
    out = discharge_check(db, staff["nurse"], infusion.id, escort_confirmed=True, escort_name="Jo")
    assert out["ready"] is False
    assert len(out["reasons"]) == 2
    assert out["reasons"][0] == "PADSS 7 is below 9 (Aldrete 1995; Chung 1995)."
    assert out["reasons"][1].startswith("Observation for 120 min after the stop runs until")


def test_discharge_ready(db, staff, patient, infusion):
    """Stopped more than the observation time ago, Aldrete 10, PADSS 9 and an escort: ready."""
    _start(db, staff, infusion, minutes_ago=300)
    pump_event(db, staff["nurse"], infusion.id, kind="stop", time_utc=_ago(125))
    _score(db, staff, patient, infusion, "aldrete", ALDRETE_10, minutes_ago=10)
    _score(db, staff, patient, infusion, "aldrete", {**ALDRETE_10, "activity": 1}, minutes_ago=20)
    _score(db, staff, patient, infusion, "padss", PADSS_9)
    out = discharge_check(
        db, staff["nurse"], infusion.id, escort_confirmed=True, escort_name="Sam Doe"
    )
    assert out == {"id": out["id"], "ready": True, "reasons": []}


def test_discharge_check_charted_late_keeps_its_time(db, staff, patient, infusion):
    """A discharge check charted after the fact keeps the time it was made; a time in the
    future is refused, naming the field."""
    _start(db, staff, infusion, minutes_ago=300)
    pump_event(db, staff["nurse"], infusion.id, kind="stop", time_utc=_ago(180))
    when = _ago(40)
    out = discharge_check(
        db,
        staff["nurse"],
        infusion.id,
        escort_confirmed=True,
        escort_name="Sam Doe",
        checked_utc=when,
    )
    with db.session() as s:
        row = s.get(DischargeCheck, uuid.UUID(out["id"]))
        assert row is not None and row.checked_utc == when
    with pytest.raises(InvalidValueError) as err:
        discharge_check(
            db,
            staff["nurse"],
            infusion.id,
            escort_confirmed=True,
            escort_name="Sam Doe",
            checked_utc=_ago(-60),
        )
    assert err.value.field == "checked_utc"


# --- the chair's lists read as columns ---------------------------------------------------


def test_lists_read_as_columns_equal_the_objects_json(db, staff, patient, infusion):
    """Every observation list of the chair view, read as its JSON columns alone
    (current_json_of), equals the JSON of the current objects: corrections, retractions,
    an itemised score and a rescue drug named 'other' included, in the same order."""
    nurse = staff["nurse"]
    during = {"patient_id": patient.id, "infusion_id": infusion.id}

    def vitals(minutes_ago, **values):
        row, _ = record_vitals(
            db, nurse, DEFAULT_RULES, **during, measured_utc=_ago(minutes_ago), **values
        )
        return row

    def correct(row, reason, **kw):
        correct_row(
            db, nurse, Action.CHART, VitalSigns, row.id, kind="vital signs", reason=reason, **kw
        )

    _start(db, staff, infusion, minutes_ago=60)
    first = vitals(50, sbp_mmhg=128, dbp_mmhg=80, hr_per_min=70)
    vitals(35, spo2_pct=97, on_oxygen=True)
    correct(first, "typed the wrong cuff", changes={"sbp_mmhg": 126})
    correct(vitals(20, hr_per_min=71), "another patient's", entered_in_error=True, changes={})
    record_score(
        db, nurse, DEFAULT_RULES, **during, instrument="pain_nrs", value=4, measured_utc=_ago(30)
    )
    _score(db, staff, patient, infusion, "aldrete", ALDRETE_10, minutes_ago=10)
    for row in (
        SideEffect(**during, observed_utc=_ago(25), effect="nausea", severity="mild", note=None),
        RescueMedication(
            **during, given_utc=_ago(24), drug="ondansetron", dose_mg=4, route="iv", reason="nausea"
        ),
        RescueMedication(
            **during,
            given_utc=_ago(23),
            drug="other",
            drug_name="dimenhydrinate",
            dose_mg=50,
            route="iv",
            reason="nausea persists",
        ),
    ):
        add_row(db, nurse, Action.CHART, row)
    lists = [
        (VitalSigns, "measured_utc", 2),
        (Score, "measured_utc", 2),
        (SideEffect, "observed_utc", 1),
        (RescueMedication, "given_utc", 2),
    ]
    with db.read() as s:
        for model, order, n in lists:
            key = {"infusion_id": infusion.id}
            objects = [o.as_dict() for o in s.scalars(current_of(model, "infusion_id", order), key)]
            columns = [
                model.json_of(r)
                for r in s.execute(current_json_of(model, "infusion_id", order), key)
            ]
            assert columns == objects
            assert len(columns) >= n  # and the checklist's baseline
    view = _view(db, staff, infusion)
    assert 126 in [v["sbp_mmhg"] for v in view["vitals"]]
    assert 128 not in [v["sbp_mmhg"] for v in view["vitals"]]
    assert 71 not in [v["hr_per_min"] for v in view["vitals"]]
    assert view["rescue_medications"][-1]["drug"] == "dimenhydrinate"
    assert view["scores"][-1]["instrument"] == "aldrete"
    assert view["scores"][-1]["passes"] is True


def test_a_model_without_json_columns_cannot_be_read_as_columns():
    """current_json_of names the model that lists no columns, instead of reading none."""
    with pytest.raises(TypeError, match="DischargeCheck"):
        current_json_of(DischargeCheck, "infusion_id", "checked_utc")


def test_the_discharge_rules_read_alone_are_the_plans(db, staff, course):
    """The chair's polls read the current plan's discharge rules alone (a JSON path on
    either database): the same rules as the whole plan's; an unknown course is refused."""
    with db.read() as s:
        rules = current_discharge_rules(s, course.id)
        assert rules == current_plan(s, course.id).plan.get("discharge")
        assert rules is not None and rules["observation_min"] > 0
        with pytest.raises(InvalidValueError, match="course"):
            current_discharge_rules(s, uuid.uuid4())


def test_the_chairs_checklist_from_the_view_equals_the_one_read(db, staff, course, make_ready):
    """The chair page finds the baselines in the infusion view it has read; the pump start
    reads them: both give the same checklist, before and after the start."""
    row = hang_infusion(
        db, staff["nurse"], course.id, session_number=1, bag_mg=250, bag_ml=250, lot="KET-2"
    )

    def both() -> tuple[dict, dict]:
        with db.session() as s:
            inf = s.get(Infusion, row.id)
            view = infusion_view(s, staff["nurse"], row.id)
            alone = checklist_status(s, inf).as_dict()
            return alone, checklist_status(s, inf, view=view).as_dict()

    def baseline_nrs() -> Score:
        with db.session() as s:
            return s.scalars(current_of(Score, "infusion_id", "measured_utc"),
                             {"infusion_id": row.id}).first()  # fmt: skip

    seen = []
    steps = ("hung", "ready", "started", "an NRS after the start", "the baseline NRS retracted")
    for step in steps:
        if step == "ready":
            make_ready(row.id, row.patient_id, at=_ago(120))
        elif step == "started":
            _start(db, staff, row, minutes_ago=90)
        elif step == "an NRS after the start":
            record_score(db, staff["nurse"], DEFAULT_RULES, patient_id=row.patient_id,
                         infusion_id=row.id, instrument="pain_nrs", value=3)  # fmt: skip
        elif step == "the baseline NRS retracted":
            correct_row(db, staff["nurse"], Action.CHART, Score, baseline_nrs().id, kind="score",
                        reason="charted for another patient", entered_in_error=True,
                        changes={})  # fmt: skip
        alone, from_view = both()
        assert from_view == alone, step
        seen.append((alone["baseline_vitals"], alone["baseline_nrs"], alone["complete"]))
    # Hung: nothing charted; an NRS charted after the start is not a baseline.
    assert seen == [(False, False, False), *[(True, True, True)] * 3, (True, False, False)]
