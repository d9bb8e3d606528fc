"""Tests of ketapain.protocols.planning: calendar, pump rates, doses, guardrails, targets."""

from __future__ import annotations

import itertools
import json
import math
import warnings
from datetime import date, datetime, time, timedelta

import numpy as np
import pytest
from numpy.testing import assert_allclose

from ketapain.errors import ExtrapolationWarning, InvalidValueError
from ketapain.pharmacology import Covariates, simulate
from ketapain.pharmacology.schedules import Infusion, Route
from ketapain.pharmacology.targeting import TargetSite
from ketapain.protocols.dosing_weight import WeightPolicy
from ketapain.protocols.findings import Override, Severity
from ketapain.protocols.guardrails import Quantity, load_drug_library
from ketapain.protocols.library import get_protocol, list_protocols
from ketapain.protocols.patient import Patient
from ketapain.protocols.planning import (
    PUMP_RESOLUTION_ML_PER_H,
    Bag,
    TargetRequest,
    build_plan,
)

SATURDAY = date(2026, 12, 5)
MONDAY = date(2026, 12, 7)
BAG_1 = Bag(drug_mg=250.0, volume_ml=250.0)
BAG_2 = Bag(drug_mg=500.0, volume_ml=250.0)
NORMAL_VITALS = {"sbp_mmhg": 120, "dbp_mmhg": 75, "hr_per_min": 70, "spo2_pct": 98}
EXTRAPOLATION = "ignore::ketapain.errors.ExtrapolationWarning"
PLAN_KEYS = {
    "protocol",
    "patient_id",
    "start_date",
    "bag",
    "dosing_weight",
    "eligible",
    "blocked",
    "findings",
    "overrides",
    "sessions",
    "course_dose_mg",
    "premedication",
    "discharge",
    "decision_points",
    "oral_follow_on",
    "boosters",
    "target",
    "baseline_nrs",
    "prediction",
    "pain_forecast",
}
FORECAST_KEYS = {
    "model",
    "baseline_nrs",
    "time_origin",
    "series_end_h",
    "end_of_series",
    "week_4",
    "week_12",
    "sessions",
    "follow_up",
    "extrapolation",
    "sources",
}
SESSION_KEYS = {
    "number",
    "phase",
    "date",
    "start",
    "end",
    "duration_h",
    "dose_mg",
    "cumulative_dose_mg",
    "volume_ml",
    "bags",
    "boluses_mg",
    "pending_decision_after_session",
    "steps",
}
STEP_KEYS = {
    "start",
    "duration_min",
    "rate_mg_per_kg_h",
    "rate_mg_per_h",
    "rate_ml_per_h",
    "dose_mg",
    "at_max_rate",
}


def _patient(weight_kg: float = 70.0, **changes) -> Patient:
    data = {
        "patient_id": "p-1",
        "age_y": 45,
        "sex": "male",
        "weight_kg": weight_kg,
        "height_cm": 175,
        "diagnoses": ["crps_1"],
        "vitals": NORMAL_VITALS,
    }
    return Patient.from_dict(data | changes)


def _plan(weight_kg: float, protocol: str, **kwargs):
    kwargs = {"start_date": MONDAY, "bag": BAG_1, "predict_outcome": False} | kwargs
    return build_plan(_patient(weight_kg), get_protocol(protocol), **kwargs)


def _codes(plan, severity: Severity | None = None) -> list[str]:
    return [f.code for f in plan.findings if severity in (None, f.severity)]


# --- every protocol at the weight extremes -------------------------------------------------


@pytest.mark.filterwarnings(EXTRAPOLATION)
@pytest.mark.parametrize("start", [SATURDAY, MONDAY], ids=["saturday", "monday"])
@pytest.mark.parametrize("weight_kg", [30.0, 70.0, 200.0])
@pytest.mark.parametrize("name", [p.name for p in list_protocols()])
def test_every_protocol_plans_consistently(name, weight_kg, start):
    """Dates, pump rates (floored to 0.1 mL/h), doses and volumes agree with the protocol."""
    protocol = get_protocol(name)
    slots = [s for s in protocol.slots(start_weekday=start.weekday()) if not s.phase.oral]
    for bag in (BAG_1, BAG_2):
        plan = _plan(weight_kg, name, start_date=start, bag=bag)
        conc = bag.conc_mg_per_ml
        w = plan.weight.dosing_kg
        assert w == weight_kg
        assert len(plan.sessions) == len(slots)
        midnight = datetime.combine(start, time())
        cumulative = 0.0
        for number, (session, slot) in enumerate(zip(plan.sessions, slots, strict=True), 1):
            assert session.number == number
            assert session.phase is slot.phase
            assert session.date == start + timedelta(days=slot.day)
            if slot.phase.skip_weekends:
                assert session.date.weekday() < 5
            infusions = slot.schedule.infusions
            assert len(session.steps) == len(infusions)
            for step, inf in zip(session.steps, infusions, strict=True):
                prescribed = inf.rate_for(w)
                if protocol.max_rate_mg_per_h is not None:
                    prescribed = min(prescribed, protocol.max_rate_mg_per_h)
                tenths = step.rate_ml_per_h / PUMP_RESOLUTION_ML_PER_H
                assert_allclose(tenths, np.rint(tenths), rtol=0, atol=1e-9)
                assert step.rate_ml_per_h <= prescribed / conc + 1e-9
                assert prescribed / conc - step.rate_ml_per_h < PUMP_RESOLUTION_ML_PER_H
                assert_allclose(step.rate_mg_per_h, step.rate_ml_per_h * conc, rtol=1e-12)
                assert step.rate_mg_per_h <= prescribed * (1 + 1e-12)
                assert_allclose(step.rate_mg_per_kg_h, step.rate_mg_per_h / w, rtol=1e-12)
                assert step.start == midnight + timedelta(hours=inf.start_h)
                assert_allclose(step.duration_min, 60.0 * inf.duration_h, rtol=1e-12)
                assert_allclose(
                    step.dose_mg, step.rate_mg_per_h * step.duration_min / 60.0, rtol=1e-12
                )
                assert not step.at_max_rate
            steps_mg = sum(s.dose_mg for s in session.steps)
            assert_allclose(session.dose_mg, steps_mg + sum(session.boluses_mg), rtol=1e-12)
            cumulative += session.dose_mg
            assert_allclose(session.cumulative_mg, cumulative, rtol=1e-12)
            assert_allclose(session.volume_ml, steps_mg / conc, rtol=1e-12)
            assert session.bags == math.ceil(session.volume_ml / bag.volume_ml - 1e-9)
        assert_allclose(plan.course_dose_mg, cumulative, rtol=1e-12)
        moved = slots and slots[0].day > 0
        assert ("start_moved" in _codes(plan, Severity.INFO)) == bool(moved)


@pytest.mark.filterwarnings(EXTRAPOLATION)
@pytest.mark.parametrize("name", ["ten-weekdays", "seed-outpatient", "booster"])
def test_saturday_start_moves_weekday_courses_to_monday(name):
    """From a Saturday the first session is on Monday, and the plan says so."""
    plan = _plan(70.0, name, start_date=SATURDAY)
    assert plan.sessions[0].date == MONDAY
    assert all(s.date.weekday() < 5 for s in plan.sessions)
    (moved,) = [f for f in plan.findings if f.code == "start_moved"]
    assert "Monday 07 December 2026" in moved.reason


def test_ten_weekdays_calendar_from_monday():
    """Two weeks of Monday-Friday sessions from 7 December 2026, 09:00-13:00."""
    plan = _plan(70.0, "ten-weekdays")
    assert [s.date.day for s in plan.sessions] == [7, 8, 9, 10, 11, 14, 15, 16, 17, 18]
    assert plan.sessions[5].start == datetime(2026, 12, 14, 9, 0)
    assert plan.sessions[5].end == datetime(2026, 12, 14, 13, 0)
    assert plan.clock(24 * 7 + 9.0) == datetime(2026, 12, 14, 9, 0)


# --- pump rates for the bag ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("weight_kg", "bag", "ml_per_h", "mg_per_h"),
    [
        (67.3, BAG_1, 33.6, 33.6),
        (67.3, BAG_2, 16.8, 33.6),
        (68.9, BAG_2, 17.2, 34.4),
        (70.0, BAG_2, 17.5, 35.0),
    ],
)
def test_pump_rate_is_rounded_down_to_a_tenth_of_a_ml(weight_kg, bag, ml_per_h, mg_per_h):
    """0.5 mg/kg/h: 33.65 mg/h runs at 33.6 mL/h (1 mg/mL) or 16.8 mL/h (2 mg/mL)."""
    (step,) = _plan(weight_kg, "single-day", bag=bag).sessions[0].steps
    assert step.rate_ml_per_h == ml_per_h
    assert_allclose(step.rate_mg_per_h, mg_per_h, rtol=1e-12)
    assert_allclose(step.dose_mg, 4 * mg_per_h, rtol=1e-12)


def test_bag_count_and_volume():
    """ten-weekdays at 70 kg, 24.5 mg/h: 98 mL at 1 mg/mL; 12.2 mL/h x 4 h at 2 mg/mL."""
    for bag, volume in ((BAG_1, 98.0), (BAG_2, 48.8)):
        session = _plan(70.0, "ten-weekdays", bag=bag).sessions[0]
        assert_allclose(session.volume_ml, volume, rtol=1e-12)
        assert session.bags == 1
    small = Bag(drug_mg=50.0, volume_ml=50.0)
    assert _plan(70.0, "ten-weekdays", bag=small).sessions[0].bags == 2


@pytest.mark.parametrize(
    ("drug_mg", "volume_ml", "field"),
    [
        (0.5, 250.0, "bag drug_mg"),
        (250.0, 5.0, "bag volume_ml"),
        (float("nan"), 250.0, "bag drug_mg"),
    ],
)
def test_bag_values_are_checked(drug_mg, volume_ml, field):
    """A bag outside 1-5000 mg or 10-1000 mL names the field."""
    with pytest.raises(InvalidValueError) as info:
        Bag(drug_mg=drug_mg, volume_ml=volume_ml)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("bag", "codes", "blocked"),
    [
        (Bag(drug_mg=2500.0, volume_ml=250.0), ["hard_max", "soft_max"], True),
        (Bag(drug_mg=750.0, volume_ml=250.0), ["soft_max"], False),
        (Bag(drug_mg=100.0, volume_ml=250.0), ["soft_min"], False),
        (Bag(drug_mg=500.0, volume_ml=250.0), [], False),
    ],
)
def test_bag_concentration_is_checked(bag, codes, blocked):
    """10 mg/mL is a hard stop (and above the soft maximum); 3 and 0.4 mg/mL are warnings."""
    plan = _plan(70.0, "single-day", bag=bag)
    found = [f for f in plan.findings if f.code.startswith("bag_conc_mg_per_ml.")]
    assert [f.code for f in found] == [f"bag_conc_mg_per_ml.{c}" for c in codes]
    assert [f.severity is Severity.HARD_STOP for f in found] == [
        c.startswith("hard") for c in codes
    ]
    assert plan.blocked is blocked


# --- guardrails in the plan ----------------------------------------------------------------


@pytest.mark.filterwarnings(EXTRAPOLATION)
def test_200_kg_single_day_is_blocked_by_the_outpatient_ceiling():
    """0.5 mg/kg/h x 200 kg = 100 mg/h is above the outpatient 60 mg/h hard maximum."""
    plan = _plan(200.0, "single-day")
    (step,) = plan.sessions[0].steps
    assert_allclose(step.rate_mg_per_h, 100.0, rtol=1e-12)
    assert plan.blocked
    assert plan.screening.eligible
    assert _codes(plan, Severity.HARD_STOP) == ["rate_mg_per_h.hard_max"]
    (f,) = [f for f in plan.findings if f.code == "rate_mg_per_h.hard_max"]
    assert "100 mg/h" in f.reason and "60 mg/h" in f.reason
    assert f.source is not None


@pytest.mark.filterwarnings(EXTRAPOLATION)
def test_override_unblocks_the_plan():
    """An override with the guardrail's code unblocks the plan and is recorded."""
    override = Override(code="rate_mg_per_h.hard_max", clinician="Dr Jones", reason="ICU bed")
    plan = _plan(200.0, "single-day", overrides=[override])
    assert not plan.blocked
    assert plan.overrides == (override,)
    (f,) = [f for f in plan.findings if f.code == "rate_mg_per_h.hard_max"]
    assert f.override is override
    d = plan.as_dict()
    assert d["blocked"] is False
    assert [o["code"] for o in d["overrides"]] == ["rate_mg_per_h.hard_max"]


@pytest.mark.filterwarnings(EXTRAPOLATION)
def test_30_kg_single_day_is_below_the_minimum_trial():
    """0.5 mg/kg/h x 30 kg x 4 h = 60 mg, below the 80-mg minimum trial: a warning."""
    plan = _plan(30.0, "single-day")
    assert_allclose(plan.sessions[0].dose_mg, 60.0, rtol=1e-12)
    assert _codes(plan, Severity.WARNING) == ["session_dose_mg.soft_min"]
    assert not plan.blocked


@pytest.mark.filterwarnings(EXTRAPOLATION)
def test_ten_weekdays_at_200_kg_is_capped_at_25_mg_per_h():
    """0.35 x 200 = 70 mg/h is capped at 25 mg/h by the protocol: information, not blocked."""
    plan = _plan(200.0, "ten-weekdays")
    assert all(s.steps[0].rate_mg_per_h == 25.0 for s in plan.sessions)
    assert all(s.steps[0].rate_ml_per_h == 25.0 for s in plan.sessions)
    assert_allclose([s.dose_mg for s in plan.sessions], 100.0, rtol=1e-12)
    assert_allclose(plan.course_dose_mg, 1000.0, rtol=1e-12)
    (cap,) = [f for f in plan.findings if f.code == "protocol_rate_cap"]
    assert cap.severity is Severity.INFO
    assert "25 mg/h" in cap.reason
    assert not plan.blocked


def test_ten_weekdays_at_70_kg_is_not_capped():
    """0.35 x 70 = 24.5 mg/h is below the cap: no cap finding."""
    plan = _plan(70.0, "ten-weekdays")
    assert all(s.steps[0].rate_mg_per_h == 24.5 for s in plan.sessions)
    assert "protocol_rate_cap" not in _codes(plan)


@pytest.mark.filterwarnings(EXTRAPOLATION)
def test_titration_ceiling_is_checked():
    """At 200 kg the seed series' ceiling 0.5 mg/kg/h = 100 mg/h is named as a hard stop."""
    plan = _plan(200.0, "seed-outpatient")
    reasons = [f.reason for f in plan.findings if f.code == "rate_mg_per_h.hard_max"]
    assert any("Titration ceiling of phase 'Daily 4-h infusions" in r for r in reasons)


@pytest.mark.filterwarnings(EXTRAPOLATION)
def test_repeated_findings_are_merged():
    """One finding per code and message: sessions 5-10 (80 mg) share one, session 4 its own."""
    plan = _plan(30.0, "ten-weekdays-40-80mg")
    soft = [f for f in plan.findings if f.code == "session_dose_mg_per_kg.soft_max"]
    assert [f.reason.count("Session") for f in soft] == [1, 6]
    assert soft[0].reason.startswith("Session 4 ")
    assert "2.333 mg/kg" in soft[0].reason
    assert "2.667 mg/kg" in soft[1].reason


def test_inpatient_protocols_use_the_inpatient_profile():
    """five-day-getson at 70 kg runs 40 mg/h, allowed by the inpatient library profile."""
    plan = _plan(70.0, "five-day-getson")
    assert not plan.blocked
    assert [s.rate_mg_per_h for s in plan.sessions[0].steps] == [20.0, 25.0, 30.0, 35.0, 40.0]


def test_clinic_drug_library_replaces_the_builtin(tmp_path):
    """A stricter clinic library blocks what the built-in allows."""
    path = tmp_path / "library.toml"
    path.write_text("[profiles.outpatient]\nrate_mg_per_h = { hard_max = 20.0 }\n")
    plan = _plan(70.0, "single-day", library=load_drug_library(path))
    assert plan.blocked
    assert _codes(plan, Severity.HARD_STOP) == ["rate_mg_per_h.hard_max"]


def test_screening_hard_stops_block_the_plan():
    """A pregnant patient's plan is blocked by the screening finding."""
    plan = build_plan(
        _patient(70.0, sex="female", pregnant=True),
        get_protocol("single-day"),
        start_date=MONDAY,
        bag=BAG_1,
        predict_outcome=False,
    )
    assert plan.blocked
    assert not plan.screening.eligible
    assert _codes(plan, Severity.HARD_STOP) == ["pregnancy"]


# --- dosing weight -------------------------------------------------------------------------


@pytest.mark.filterwarnings(EXTRAPOLATION)
def test_adjusted_weight_lowers_doses_at_200_kg():
    """Adjusted body weight (175-cm man: 122.4 kg) lowers every dose of the seed series."""
    actual = _plan(200.0, "seed-outpatient")
    adjusted = _plan(200.0, "seed-outpatient", policy=WeightPolicy.ADJUSTED)
    ibw = 50.0 + 2.3 * (175.0 - 152.4) / 2.54
    w = ibw + 0.4 * (200.0 - ibw)
    assert_allclose(adjusted.weight.dosing_kg, w, rtol=1e-12)
    assert all(
        a.dose_mg < b.dose_mg for a, b in zip(adjusted.sessions, actual.sessions, strict=True)
    )
    first = adjusted.sessions[0].steps[0]
    assert_allclose(first.rate_mg_per_h, math.floor(0.2 * w * 10) / 10, rtol=1e-12)
    assert adjusted.as_dict()["dosing_weight"]["policy"] == "adjusted"


@pytest.mark.filterwarnings(EXTRAPOLATION)
def test_weight_cap_limits_the_dosing_weight():
    """A 100-kg cap doses a 200-kg patient on single-day at 50 mg/h."""
    plan = _plan(200.0, "single-day", weight_cap_kg=100.0)
    assert plan.weight.dosing_kg == 100.0
    assert plan.sessions[0].steps[0].rate_mg_per_h == 50.0
    assert not plan.blocked


# --- decisions, oral follow-on and boosters ------------------------------------------------


@pytest.mark.parametrize("start", [SATURDAY, MONDAY], ids=["saturday", "monday"])
def test_seed_outpatient_decision_point(start):
    """The decision falls on the date of session 2; later sessions wait for it."""
    plan = _plan(70.0, "seed-outpatient", start_date=start)
    ((dp, day),) = plan.decisions
    assert dp.after_session == 2
    assert day == plan.sessions[1].date
    sessions = plan.as_dict()["sessions"]
    pending = [s["pending_decision_after_session"] for s in sessions]
    assert pending == [None, None, 2, 2, 2, 2, 2]
    assert [s["phase"] for s in sessions] == ["test"] * 2 + ["series"] * 5
    (entry,) = plan.as_dict()["decision_points"]
    assert entry["date"] == plan.sessions[1].date.isoformat()
    assert entry["after_session"] == 2


def test_seed_outpatient_titrated_doses():
    """70 kg: tests 28 and 42 mg, series 98, 112, 126, 140, 140 mg (rtol 1e-12)."""
    plan = _plan(70.0, "seed-outpatient")
    expected = [28.0, 42.0, 98.0, 112.0, 126.0, 140.0, 140.0]
    assert_allclose([s.dose_mg for s in plan.sessions], expected, rtol=1e-12)
    assert_allclose(plan.course_dose_mg, sum(expected), rtol=1e-12)


@pytest.mark.parametrize("start", [SATURDAY, MONDAY], ids=["saturday", "monday"])
@pytest.mark.parametrize("weight_kg", [45.0, 68.0, 120.0])
def test_seed_outpatient_oral_follow_on(weight_kg, start):
    """Oral 0.5 mg/kg three times daily for 14 days from the day after the last infusion."""
    plan = _plan(weight_kg, "seed-outpatient", start_date=start)
    oral = plan.oral
    assert oral is not None
    assert oral.start_date == plan.sessions[-1].date + timedelta(days=1)
    assert oral.end_date == oral.start_date + timedelta(days=13)
    assert oral.clock_times == ("08:00", "14:00", "20:00")
    assert_allclose(oral.dose_mg, 0.5 * weight_kg, rtol=1e-12)
    assert_allclose(oral.daily_mg, 1.5 * weight_kg, rtol=1e-12)
    assert_allclose(oral.total_mg, 14 * 1.5 * weight_kg, rtol=1e-12)
    doses = plan.schedule.oral_doses
    assert len(doses) == 42
    assert_allclose([d.dose_mg for d in doses], 0.5 * weight_kg, rtol=1e-12)
    first_day = (oral.start_date - start).days
    assert doses[0].time_h == 24.0 * first_day + 8.0
    d = plan.as_dict()["oral_follow_on"]
    assert d["times"] == ["08:00", "14:00", "20:00"]
    assert d["start_date"] == oral.start_date.isoformat()


def test_oral_only_protocol_has_no_sessions():
    """oral-follow-on gives no infusion sessions, only the prescription."""
    plan = _plan(70.0, "oral-follow-on")
    assert plan.sessions == ()
    assert plan.course_dose_mg == 0.0
    assert plan.oral is not None
    assert plan.oral.start_date == MONDAY
    assert_allclose(plan.oral.total_mg, 14 * 3 * 35.0, rtol=1e-12)


def test_boosters_are_listed_but_not_on_the_calendar():
    """The seed booster phase is in the plan's boosters, never among its sessions."""
    plan = _plan(70.0, "seed-outpatient")
    assert all(s.phase.name != "booster" for s in plan.sessions)
    (booster,) = plan.as_dict()["boosters"]
    assert booster["name"] == "booster"
    assert booster["trigger"] == "on_relapse"
    assert booster["note"]
    assert plan.schedule.end_h() < 24.0 * 23


# --- JSON form -----------------------------------------------------------------------------


def test_as_dict_is_json_with_the_documented_keys():
    """The plan's JSON form has the documented keys at each level and survives json.dumps."""
    plan = _plan(70.0, "seed-outpatient")
    d = json.loads(json.dumps(plan.as_dict()))
    assert set(d) == PLAN_KEYS
    assert set(d["pain_forecast"]) == FORECAST_KEYS
    assert len(d["pain_forecast"]["sessions"]) == len(d["sessions"])
    assert d["pain_forecast"]["week_12"]["week"] == 12
    assert all(set(s) == SESSION_KEYS for s in d["sessions"])
    assert all(set(st) == STEP_KEYS for s in d["sessions"] for st in s["steps"])
    assert d["patient_id"] == "p-1"
    assert d["start_date"] == "2026-12-07"
    assert d["protocol"]["name"] == "seed-outpatient"
    assert [p["name"] for p in d["protocol"]["phases"]] == ["test", "series", "oral", "booster"]
    assert d["bag"] == {"drug_mg": 250.0, "volume_ml": 250.0, "conc_mg_per_ml": 1.0}
    assert d["dosing_weight"]["dosing_kg"] == 70.0
    assert d["discharge"]["escort_home"] is True
    assert [p["drug"] for p in d["premedication"]] == ["midazolam", "ondansetron"]
    assert d["target"] is None
    assert d["prediction"] is None
    assert d["baseline_nrs"] == 7.0
    first = d["sessions"][0]
    assert first["start"] == "2026-12-07T09:00"
    assert first["end"] == "2026-12-07T11:00"
    assert first["duration_h"] == 2.0
    assert_allclose(d["course_dose_mg"], plan.course_dose_mg, rtol=0)
    assert d["eligible"] is True and d["blocked"] is False


def test_plan_with_the_prediction():
    """With the prediction on, its summary is in the plan and its total matches the plan."""
    plan = build_plan(
        _patient(70.0, pain_nrs=6),
        get_protocol("single-day"),
        start_date=MONDAY,
        bag=BAG_1,
    )
    assert plan.prediction is not None
    assert plan.baseline_nrs == 6.0
    summary = json.loads(json.dumps(plan.as_dict()))["prediction"]
    assert isinstance(summary, dict)
    assert_allclose(summary["total_dose_mg"], plan.course_dose_mg, rtol=1e-12)
    assert summary["peak_plasma_ng_per_ml"] > 0


def test_prediction_at_200_kg_warns_of_extrapolation():
    """Predicting for 200 kg with a model built on 40-150 kg warns."""
    with pytest.warns(ExtrapolationWarning, match="weight outside the studied range"):
        _plan(200.0, "single-day", predict_outcome=True)


def test_no_extrapolation_warning_when_nothing_is_predicted():
    """Without a prediction or target the PK model is not used, so it does not warn."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        _plan(200.0, "ten-weekdays")


def test_schedule_holds_the_programmed_rates():
    """plan.schedule (what is predicted) runs the pump's rates: its dose is the plan's dose."""
    plan = _plan(67.3, "single-day")
    (inf,) = plan.schedule.infusions
    assert inf.rate_mg_per_h == plan.sessions[0].steps[0].rate_mg_per_h
    iv = plan.schedule.total_dose_mg(weight_kg=67.3, route=Route.IV_INFUSION)
    assert_allclose(iv, plan.course_dose_mg, rtol=1e-12)


# --- target mode ---------------------------------------------------------------------------


def _target_plan(site: TargetSite, conc: float = 150.0):
    target = TargetRequest(conc_ng_per_ml=conc, site=site)
    return _plan(70.0, "single-day", target=target)


def test_plasma_target_steps():
    """150 ng/mL plasma at 70 kg: falling steps of 10 min or more, held within 2% at the end."""
    plan = _target_plan(TargetSite.PLASMA)
    (session,) = plan.sessions
    steps = session.steps
    rates = [s.rate_mg_per_h for s in steps]
    assert len(steps) > 3
    assert all(a >= b for a, b in itertools.pairwise(rates))
    assert rates[0] > rates[-1]
    assert all(s.duration_min >= 10.0 - 1e-9 for s in steps)
    assert_allclose(sum(s.duration_min for s in steps), 240.0, rtol=1e-12)
    assert steps[0].start == datetime(2026, 12, 7, 9, 0)
    for a, b in itertools.pairwise(steps):
        assert a.start + timedelta(minutes=a.duration_min) == b.start
    assert session.target is not None
    assert_allclose(session.target.end_conc_ng_per_ml, 150.0, rtol=0.02)
    assert session.target.time_to_target_h is not None
    highest = min(60.0, 1.0 * 70.0)
    assert all(s.rate_mg_per_h <= highest for s in steps)
    tenths = np.array([s.rate_ml_per_h for s in steps]) * 10
    assert_allclose(tenths, np.rint(tenths), rtol=0, atol=1e-9)
    d = plan.as_dict()["target"]
    assert d["conc_ng_per_ml"] == 150.0 and d["site"] == "plasma"
    assert d["sessions"][0]["end_conc_ng_per_ml"] == session.target.end_conc_ng_per_ml


def test_effect_site_target_is_reached():
    """An effect-site target is reached; the loading step runs at the 60 mg/h guardrail."""
    plan = _target_plan(TargetSite.EFFECT_SITE)
    (session,) = plan.sessions
    assert session.target is not None
    assert session.target.site is TargetSite.EFFECT_SITE
    assert_allclose(session.target.end_conc_ng_per_ml, 150.0, rtol=0.02)
    assert session.target.time_to_target_h is not None
    assert session.target.time_to_target_h < 1.0
    assert all(s.rate_mg_per_h <= 60.0 for s in session.steps)
    assert session.steps[0].at_max_rate
    assert session.steps[0].rate_mg_per_h == 60.0
    (limited,) = [f for f in plan.findings if f.code == "target_rate_limited"]
    assert limited.severity is Severity.INFO
    # The effect-site concentration of the planned schedule, simulated independently.
    params = (
        get_protocol("single-day")
        .pk_model()
        .parameters(Covariates.single(weight_kg=70.0, sex="male", age_y=45.0))
    )
    end_h = 13.0
    prof = simulate(params, plan.schedule, times_h=np.array([end_h]))
    assert_allclose(prof.ketamine_effect_site_ng_per_ml[0, 0], 150.0, rtol=0.02)


def test_target_mode_uses_earlier_sessions():
    """In a series, later sessions start lower: the previous day's ketamine is still there."""
    plan = _plan(
        70.0,
        "booster",
        target=TargetRequest(conc_ng_per_ml=100.0),
    )
    first, second = plan.sessions
    assert second.steps[0].rate_mg_per_h <= first.steps[0].rate_mg_per_h
    assert_allclose(second.target.end_conc_ng_per_ml, 100.0, rtol=0.02)
    assert all(isinstance(d, Infusion) for d in plan.schedule.doses)


def test_target_mode_respects_protocol_limits():
    """ten-weekdays in target mode never runs above its 0.35 mg/kg/h and 25 mg/h limits."""
    plan = _plan(70.0, "ten-weekdays", target=TargetRequest(conc_ng_per_ml=150.0))
    limit = min(25.0, 0.35 * 70.0)
    assert all(st.rate_mg_per_h <= limit + 1e-9 for s in plan.sessions for st in s.steps)
    assert not plan.blocked


def test_target_duration_may_differ_from_the_protocol():
    """duration_h sets how long the target is held."""
    target = TargetRequest(conc_ng_per_ml=100.0, duration_h=2.0, min_step_min=15.0)
    (session,) = _plan(70.0, "single-day", target=target).sessions
    assert_allclose(sum(s.duration_min for s in session.steps), 120.0, rtol=1e-12)
    assert session.steps[0].duration_min >= 15.0


def test_limits_without_a_maximum_rate_refuse_target_mode(tmp_path):
    """A drug library without a hard maximum rate cannot bound the target steps."""
    path = tmp_path / "library.toml"
    path.write_text("[profiles.outpatient]\nbag_conc_mg_per_ml = { hard_max = 5.0 }\n")
    with pytest.raises(InvalidValueError) as info:
        _plan(
            70.0,
            "single-day",
            target=TargetRequest(conc_ng_per_ml=150.0),
            library=load_drug_library(path),
        )
    assert info.value.field == "drug library"


def test_quantity_of_every_check_is_known():
    """Every guardrail finding code names a Quantity and a bound."""
    plan = _plan(70.0, "five-day-outpatient-ramp")
    assert "rate_mg_per_kg_h.soft_max" in _codes(plan)
    bounds = {"hard_min", "soft_min", "soft_max", "hard_max"}
    for code in _codes(plan):
        if "." in code:
            quantity, bound = code.split(".")
            assert Quantity(quantity) and bound in bounds
