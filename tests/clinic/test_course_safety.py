"""Safety over a course: liver and urinary holds and their review, the pump start they
block, the urinary screen before a repeated session, labs due, cumulative dose and the
blood-pressure trend."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from ketapain.clinic._service import add_row, correct_row
from ketapain.clinic.charting import record_score, record_vitals
from ketapain.clinic.checklist import record_checklist
from ketapain.clinic.course_safety import (
    SCREEN_WINDOW,
    bp_trend,
    course_safety,
    cumulative_dose,
    holds,
    labs_due,
    patient_holds,
    review_hold,
)
from ketapain.clinic.db import utc_now
from ketapain.clinic.patients import HistoryItem, LabResult, Medication
from ketapain.clinic.permissions import Action
from ketapain.clinic.pump import hang_infusion, pump_event
from ketapain.clinic.screenings import run_screening
from ketapain.clinic.treatment import change_status, create_course, prescribe_oral
from ketapain.errors import AccessDeniedError, ConflictError, InvalidValueError
from ketapain.protocols.guardrails import Limit, LimitSet, Quantity

URINARY_ITEMS = ("frequency", "urgency", "dysuria", "haematuria", "suprapubic_pain")
NEGATIVE = dict.fromkeys(URINARY_ITEMS, 0)


def _at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _course(db, staff, patient, start: date, protocol: str = "seed-outpatient"):
    return create_course(
        db,
        staff["physician"],
        patient_id=patient.id,
        protocol=protocol,
        start_date=start,
        bag_mg=250,
        bag_ml=250,
    )


def _lab(db, staff, patient, test, value, uln, collected_utc=None):
    return add_row(
        db,
        staff["nurse"],
        Action.CHART,
        LabResult(
            patient_id=patient.id,
            test=test,
            value=value,
            ref_low=0.0,
            ref_high=uln,
            collected_utc=collected_utc or utc_now() - timedelta(hours=1),
        ),
    )


def _screen(db, staff, patient_id, at, **positive):
    row, _ = record_score(
        db,
        staff["nurse"],
        (),
        patient_id=patient_id,
        instrument="urinary_screen",
        items={**NEGATIVE, **positive},
        measured_utc=at,
    )
    return row


def _hang(db, staff, course, number):
    """Hang session ``number`` and complete its checklist, baselines 10 min before any
    start the tests use (the checklist reads them before the start)."""
    nurse = staff["nurse"]
    inf = hang_infusion(
        db, nurse, course.id, session_number=number, bag_mg=250, bag_ml=250, lot=f"KET-{number}"
    )
    record_checklist(
        db, nurse, inf.id, consent_confirmed=True, escort_confirmed=True, escort_name="A. Escort",
        fasting_confirmed=True, medications_reviewed=True, premedication_note="as planned",
    )  # fmt: skip
    return inf


def _give_ready(db, staff, course, number=1, at=None):
    """Hang a session with its checklist and baselines charted before ``at``."""
    inf = _hang(db, staff, course, number)
    when = (at or utc_now()) - timedelta(minutes=10)
    vitals = {"patient_id": inf.patient_id, "infusion_id": inf.id, "measured_utc": when}
    record_vitals(db, staff["nurse"], (), sbp_mmhg=120.0, dbp_mmhg=75.0, **vitals)
    record_score(db, staff["nurse"], (), instrument="pain_nrs", value=7.0, **vitals)
    return inf


def _give(db, staff, course, number, start, *, sbp=120.0, peak=140.0, screen=True):
    """Give session ``number`` at ``start``: baseline vitals (``sbp``), urinary screen,
    20 mg/h for 4 h (80 mg), the peak SBP an hour in."""
    nurse = staff["nurse"]
    inf = _hang(db, staff, course, number)
    at = {"patient_id": inf.patient_id, "infusion_id": inf.id}
    before = start - timedelta(minutes=10)
    record_vitals(db, nurse, (), measured_utc=before, sbp_mmhg=sbp, dbp_mmhg=75.0, **at)
    record_score(db, nurse, (), instrument="pain_nrs", value=7.0, measured_utc=before, **at)
    if screen:
        _screen(db, staff, inf.patient_id, start - timedelta(minutes=20))
    pump_event(db, nurse, inf.id, kind="start", rate_mg_per_h=20.0, time_utc=start)
    peak_at = start + timedelta(hours=1)
    record_vitals(db, nurse, (), measured_utc=peak_at, sbp_mmhg=peak, dbp_mmhg=85.0, **at)
    pump_event(db, nurse, inf.id, kind="stop", time_utc=start + timedelta(hours=4))
    return inf


def _holds(db, patient):
    with db.session() as s:
        return [h.as_dict() for h in holds(s, patient.id)]


def _start(db, staff, inf, at=None):
    return pump_event(
        db, staff["nurse"], inf.id, kind="start", rate_mg_per_h=20.0, time_utc=at or utc_now()
    )


# --- liver holds ----------------------------------------------------------------------


def test_alt_exactly_three_times_uln_does_not_hold_above_does(db, staff, patient):
    """ALT 120 U/L at a ULN of 40 (exactly 3 x) holds nothing; 121 U/L holds, citing
    Noppers 2011, awaiting review."""
    _lab(db, staff, patient, "alt", 120.0, 40.0, utc_now() - timedelta(days=2))
    assert _holds(db, patient) == []
    lab = _lab(db, staff, patient, "alt", 121.0, 40.0)
    (hold,) = _holds(db, patient)
    assert (hold["kind"], hold["code"], hold["state"]) == (
        "liver",
        "liver_enzymes_above_3x_uln",
        "awaiting_review",
    )
    assert hold["lab_result"]["id"] == str(lab.id)
    assert "Noppers" in hold["source"] and "3.02 x ULN" in hold["reason"]


def test_ast_above_three_times_uln_holds(db, staff, patient):
    """An AST above 3 x ULN holds on its own."""
    _lab(db, staff, patient, "ast", 130.0, 40.0)
    assert [h["code"] for h in _holds(db, patient)] == ["liver_enzymes_above_3x_uln"]


def test_bilirubin_holds_above_two_times_uln_only(db, staff, patient):
    """Bilirubin exactly 2 x ULN (2.4 at 1.2 mg/dL) does not hold; 2.5 mg/dL holds (Hy's
    law, FDA 2009)."""
    _lab(db, staff, patient, "bilirubin", 2.4, 1.2, utc_now() - timedelta(days=1))
    assert _holds(db, patient) == []
    _lab(db, staff, patient, "bilirubin", 2.5, 1.2)
    (hold,) = _holds(db, patient)
    assert hold["code"] == "bilirubin_above_2x_uln" and "Food and Drug" in hold["source"]


def test_review_resume_releases_and_a_newer_high_result_holds_again(db, staff, patient):
    """A physician's resume releases the hold; a newer ALT above the limit needs a review of
    its own; a newer normal result does not release a hold by itself."""
    doc = staff["physician"]
    first = _lab(db, staff, patient, "alt", 200.0, 40.0, utc_now() - timedelta(days=10))
    review_hold(db, doc, patient.id, lab_result_id=first.id, outcome="resume", reason="viral")
    assert _holds(db, patient) == []
    second = _lab(db, staff, patient, "alt", 180.0, 40.0, utc_now() - timedelta(days=3))
    (hold,) = _holds(db, patient)
    assert hold["lab_result"]["id"] == str(second.id) and hold["review"] is None
    normal = _lab(db, staff, patient, "alt", 30.0, 40.0)
    (hold,) = _holds(db, patient)
    assert hold["lab_result"]["id"] == str(second.id)
    assert hold["newest"]["id"] == str(normal.id)


def test_keep_holding_keeps_the_hold_and_shows_the_review(db, staff, patient):
    """A review keep_holding leaves the hold standing with the review and its reason; a
    later resume of the same result releases it."""
    doc = staff["physician"]
    lab = _lab(db, staff, patient, "ast", 400.0, 40.0)
    review_hold(db, doc, patient.id, lab_result_id=lab.id, outcome="keep_holding", reason="recheck")
    (hold,) = _holds(db, patient)
    assert (hold["state"], hold["review"]["reason"]) == ("keep_holding", "recheck")
    review_hold(db, doc, patient.id, lab_result_id=lab.id, outcome="resume", reason="normalised")
    assert _holds(db, patient) == []


def test_a_nurse_cannot_review_a_hold(db, staff, patient):
    """Only a physician reviews: a nurse's review is refused and the hold stands."""
    lab = _lab(db, staff, patient, "alt", 500.0, 40.0)
    with pytest.raises(AccessDeniedError):
        review_hold(db, staff["nurse"], patient.id, lab_result_id=lab.id, outcome="resume",
                    reason="looks fine")  # fmt: skip
    assert len(_holds(db, patient)) == 1


def test_a_review_names_one_held_result_with_a_valid_outcome(db, staff, patient):
    """A review needs exactly one held result, a known outcome and a reason; a result
    within its limit or a corrected one is refused, naming the field."""
    doc = staff["physician"]
    normal = _lab(db, staff, patient, "alt", 80.0, 40.0)
    high = _lab(db, staff, patient, "alt", 300.0, 40.0)
    cases = [
        ({"lab_result_id": normal.id, "outcome": "resume"}, "lab_result_id"),
        ({"outcome": "resume"}, "lab_result_id"),
        ({"lab_result_id": high.id, "outcome": "ignore"}, "outcome"),
    ]
    for kwargs, field in cases:
        with pytest.raises(InvalidValueError) as err:
            review_hold(db, doc, patient.id, reason="r", **kwargs)
        assert err.value.field == field
    with pytest.raises(InvalidValueError) as err:
        review_hold(db, doc, patient.id, lab_result_id=high.id, outcome="resume", reason=" ")
    assert err.value.field == "reason"
    correct_row(db, staff["nurse"], Action.CHART, LabResult, high.id, kind="lab result",
                reason="typo", changes={"value": 30.0})  # fmt: skip
    assert _holds(db, patient) == []
    with pytest.raises(InvalidValueError):
        review_hold(db, doc, patient.id, lab_result_id=high.id, outcome="resume", reason="r")


# --- urinary holds and the screen before a session ------------------------------------


def test_positive_urinary_screen_holds_negative_does_not(db, staff, patient):
    """A negative screen holds nothing; one item present holds until a physician reviews
    that score (ketamine uropathy, Chan 2022)."""
    _screen(db, staff, patient.id, utc_now() - timedelta(hours=2))
    assert _holds(db, patient) == []
    score = _screen(db, staff, patient.id, utc_now() - timedelta(hours=1), dysuria=1)
    (hold,) = _holds(db, patient)
    assert (hold["kind"], hold["code"]) == ("urinary", "urinary_symptoms")
    assert hold["score"]["id"] == str(score.id) and "Chan" in hold["source"]
    _screen(db, staff, patient.id, utc_now() - timedelta(minutes=5))
    assert len(_holds(db, patient)) == 1, "a later negative screen does not release it"
    review_hold(db, staff["physician"], patient.id, score_id=score.id, outcome="resume",
                reason="UTI treated")  # fmt: skip
    assert _holds(db, patient) == []
    negative = _screen(db, staff, patient.id, utc_now())
    with pytest.raises(InvalidValueError) as err:
        review_hold(db, staff["physician"], patient.id, score_id=negative.id, outcome="resume",
                    reason="no symptoms")  # fmt: skip
    assert err.value.field == "score_id"


def test_pump_start_refused_while_a_hold_stands(db, staff, patient):
    """Starting the pump with a liver hold is refused with the hold's reason and source;
    after a physician's resume it starts."""
    course = _course(db, staff, patient, utc_now().date())
    inf = _give_ready(db, staff, course)
    lab = _lab(db, staff, patient, "alt", 250.0, 40.0)
    with pytest.raises(ConflictError) as err:
        _start(db, staff, inf)
    assert err.value.field == "hold"
    assert "above 3 x ULN" in str(err.value) and "Noppers" in str(err.value)
    review_hold(db, staff["physician"], patient.id, lab_result_id=lab.id, outcome="resume",
                reason="known Gilbert's and stable")  # fmt: skip
    assert _start(db, staff, inf)["event"]["kind"] == "start"


def test_missing_urinary_screen_refused_for_a_repeat_not_a_first_session(db, staff, patient):
    """The first-ever session starts without a screen; the next day's session is refused
    until a screen is charted in the 12 h before its start, and one charted earlier does
    not count."""
    today = utc_now().date()
    course = _course(db, staff, patient, today - timedelta(days=1))
    first = _give_ready(db, staff, course, 1, _at(today - timedelta(days=1), 0))
    _start(db, staff, first, _at(today - timedelta(days=1), 0))
    pump_event(
        db, staff["nurse"], first.id, kind="stop", time_utc=_at(today - timedelta(days=1), 1)
    )
    second = _give_ready(db, staff, course, 2)
    _screen(db, staff, patient.id, utc_now() - SCREEN_WINDOW - timedelta(minutes=5))
    with pytest.raises(ConflictError) as err:
        _start(db, staff, second)
    assert err.value.field == "urinary_screen" and "urinary symptom screen" in str(err.value)
    _screen(db, staff, patient.id, utc_now() - timedelta(minutes=2))
    assert _start(db, staff, second)["event"]["kind"] == "start"


def test_a_second_bag_the_same_day_needs_no_new_screen(db, staff, patient):
    """A start within 12 h of the patient's previous start is the same session: no screen."""
    course = _course(db, staff, patient, utc_now().date())
    three_hours_ago = utc_now() - timedelta(hours=3)
    first = _give_ready(db, staff, course, 1, three_hours_ago)
    _start(db, staff, first, three_hours_ago)
    pump_event(db, staff["nurse"], first.id, kind="stop", time_utc=utc_now() - timedelta(hours=2))
    again = _give_ready(db, staff, course, 1)
    assert _start(db, staff, again)["event"]["kind"] == "start"


def test_patient_holds_needs_clinical_reading(db, staff, patient):
    """The front desk may not read holds; a nurse may."""
    _lab(db, staff, patient, "alt", 500.0, 40.0)
    with db.session() as s:
        with pytest.raises(AccessDeniedError):
            patient_holds(s, staff["front_desk"], patient.id)
        assert len(patient_holds(s, staff["nurse"], patient.id)) == 1


# --- cumulative dose and blood pressure -----------------------------------------------

DAY_A, DAY_B, DAY_C = date(2025, 3, 1), date(2025, 9, 1), date(2026, 2, 2)
AS_OF = date(2026, 3, 1)


def test_cumulative_dose_per_course_calendar_year_and_rolling_window(db, staff, patient):
    """80 mg per session: course C (2 sessions) 160 mg; calendar year 2026 160 mg; the
    365 days to 1 Mar 2026 take course B and C (240 mg), not course A a year to the day
    before; oral ketamine is planned apart; a course limit yields findings."""
    a, b = (_course(db, staff, patient, d, "single-day") for d in (DAY_A, DAY_B))
    c = _course(db, staff, patient, DAY_C)
    _give(db, staff, a, 1, _at(DAY_A), screen=False)
    _give(db, staff, b, 1, _at(DAY_B))
    _give(db, staff, c, 1, _at(DAY_C))
    _give(db, staff, c, 2, _at(DAY_C + timedelta(days=1)))
    prescribe_oral(db, staff["physician"], c.id, dose_mg=30, doses_per_day=3,
                   start_date=date(2026, 2, 20), end_date=date(2026, 3, 5))  # fmt: skip
    limits = LimitSet((Limit(quantity=Quantity.COURSE_DOSE_MG, origin="test", hard_max=150.0),))
    with db.session() as s:
        out = cumulative_dose(s, staff["physician"], c.id, today=AS_OF, limits=limits)
        whole = cumulative_dose(s, staff["physician"], b.id, today=AS_OF)
    assert out["course"] == pytest.approx(
        {"iv_delivered_mg": 160.0, "infusions": 2, "oral_planned_mg": 14 * 90.0}
    )
    assert out["calendar_year"]["iv_delivered_mg"] == pytest.approx(160.0)
    assert out["calendar_year"]["oral_planned_mg"] == pytest.approx(14 * 90.0)
    assert out["rolling_365_days"]["iv_delivered_mg"] == pytest.approx(240.0)
    assert out["rolling_365_days"]["oral_planned_mg"] == pytest.approx(10 * 90.0)
    assert [f["code"] for f in out["findings"]] == ["course_dose_mg.hard_max"]
    assert whole["course"]["iv_delivered_mg"] == pytest.approx(80.0)
    assert whole["findings"] == []  # the built-in library sets no course limit
    assert len(out["infusions"]) == 4


def test_bp_trend_slope_per_session(db, staff, patient):
    """Pre-infusion SBP 120, 126, 132 over three sessions: 6 mmHg per session; the peak
    rise is 20 mmHg; a slope limit set by the clinic warns."""
    course = _course(db, staff, patient, DAY_C)
    for n, sbp in ((1, 120.0), (2, 126.0), (3, 132.0)):
        _give(db, staff, course, n, _at(DAY_C + timedelta(days=n - 1)), sbp=sbp, peak=sbp + 20)
    with db.session() as s:
        trend = bp_trend(s, staff["physician"], course.id)
        warned = bp_trend(s, staff["physician"], course.id, warn_slope_mmhg_per_session=5.0)
    assert trend["slope_sbp_mmhg_per_session"] == pytest.approx(6.0)
    assert trend["peak_rise_sbp_mmhg"] == pytest.approx(20.0)
    assert trend["series"]["pre_sbp_mmhg"] == [120.0, 126.0, 132.0]
    assert trend["session_numbers"] == [1, 2, 3] and trend["findings"] == []
    assert [f["code"] for f in warned["findings"]] == ["pre_sbp_rising"]


# --- labs due -------------------------------------------------------------------------


def _due(db, staff, course, today):
    with db.session() as s:
        return {d["what"]: d for d in labs_due(s, staff["nurse"], course.id, today=today)}


def test_labs_due_before_and_after_a_frequent_series(db, staff, patient):
    """A daily series (frequent high dose, Cohen 2018) needs baseline liver and kidney
    tests by session 1 and liver tests after the last infusion: due, then overdue, then
    done once results are on file."""
    start = DAY_C
    course = _course(db, staff, patient, start)
    due = _due(db, staff, course, start - timedelta(days=3))
    assert due["baseline"]["status"] == "due" and due["post_series"]["status"] == "upcoming"
    assert set(due["baseline"]["missing"]) == {"alt", "ast", "bilirubin", "creatinine"}
    assert any("Cohen" in s for s in due["baseline"]["sources"])
    assert _due(db, staff, course, start + timedelta(days=1))["baseline"]["status"] == "overdue"
    for test, value, uln in (("alt", 20, 40), ("ast", 22, 40), ("bilirubin", 0.5, 1.2),
                             ("creatinine", 0.8, 1.1)):  # fmt: skip
        _lab(db, staff, patient, test, value, uln, _at(start - timedelta(days=7)))
    _give(db, staff, course, 1, _at(start))
    change_status(db, staff["physician"], course.id, status="stopped_early", reason="no effect")
    due = _due(db, staff, course, start + timedelta(days=3))
    assert due["baseline"]["status"] == "done"
    assert (due["post_series"]["status"], due["post_series"]["due_by"]) == (
        "overdue",
        (start + timedelta(days=1)).isoformat(),
    )
    for test, value, uln in (("alt", 25, 40), ("ast", 24, 40), ("bilirubin", 0.6, 1.2)):
        _lab(db, staff, patient, test, value, uln, _at(start + timedelta(days=1)))
    assert _due(db, staff, course, start + timedelta(days=3))["post_series"]["status"] == "done"


def test_no_labs_for_a_single_day_without_liver_risk_but_with_it(db, staff, patient):
    """A single day needs no liver tests; chronic hepatitis at screening makes them due."""
    course = _course(db, staff, patient, DAY_C, "single-day")
    assert _due(db, staff, course, DAY_C) == {}
    history = HistoryItem(patient_id=patient.id, code="chronic_hepatitis")
    add_row(db, staff["physician"], Action.CHART, history)
    run_screening(db, staff["physician"], patient_id=patient.id)
    assert set(_due(db, staff, course, DAY_C)) == {"baseline", "post_series"}


def test_weekly_liver_tests_while_a_hold_stands(db, staff, patient):
    """A liver hold asks for liver tests a week after the latest one, then overdue."""
    course = _course(db, staff, patient, DAY_C, "single-day")
    collected = _at(DAY_C - timedelta(days=2))
    _lab(db, staff, patient, "alt", 300.0, 40.0, collected)
    due = _due(db, staff, course, DAY_C)["weekly_recheck"]
    assert (due["status"], due["due_by"]) == ("due", (DAY_C + timedelta(days=5)).isoformat())
    late = _due(db, staff, course, DAY_C + timedelta(days=6))["weekly_recheck"]
    assert late["status"] == "overdue"


# --- the bundle -----------------------------------------------------------------------


def test_course_safety_bundles_holds_labs_dose_bp_and_oral_interactions(db, staff, patient):
    """The bundle lists released holds with their state, and with an oral prescription the
    medication check for oral ketamine (clarithromycin raises oral exposure)."""
    doc = staff["physician"]
    course = _course(db, staff, patient, DAY_C, "single-day")
    lab = _lab(db, staff, patient, "alt", 300.0, 40.0)
    review_hold(db, doc, patient.id, lab_result_id=lab.id, outcome="resume", reason="ok")
    with db.session() as s:
        view = course_safety(s, staff["nurse"], course.id, today=DAY_C)
    assert view["on_hold"] is False and [h["state"] for h in view["holds"]] == ["resume"]
    assert view["interactions"] == {"oral_prescribed": False, "findings": []}
    assert {"labs_due", "cumulative_dose", "bp_trend"} <= set(view)
    add_row(db, doc, Action.CHART, Medication(patient_id=patient.id, name="clarithromycin",
                                               dose_mg_per_day=1000.0))  # fmt: skip
    prescribe_oral(db, doc, course.id, dose_mg=30, doses_per_day=3, start_date=DAY_C,
                   end_date=DAY_C + timedelta(days=13))  # fmt: skip
    with db.session() as s:
        view = course_safety(s, doc, course.id, today=DAY_C)
    codes = {f["code"]: f["severity"] for f in view["interactions"]["findings"]}
    assert codes.get("interaction_clarithromycin") == "warning"
    assert all(c.startswith(("interaction_", "opioid", "benzo", "medications")) for c in codes)
