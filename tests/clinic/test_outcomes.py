"""The analysis table of the outcome reports, built from records written through the services.

Each test charts a small scenario (a course, bags, pump events, scores, side effects, labs,
medications, boosters) weeks in the past, as the services refuse future pump events, and
checks the columns of :func:`ketapain.clinic.outcomes.analysis_table` against a hand
computation, on SQLite and on PostgreSQL (the ``db`` fixture).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import polars as pl
import pytest
from numpy.testing import assert_allclose
from sqlalchemy import select

from ketapain.analytics.cohort import COLUMNS, check_cohort, deidentify
from ketapain.analytics.report import CohortAnalysis, analyse
from ketapain.clinic._service import add_row, correct_row
from ketapain.clinic.alarms import DEFAULT_RULES
from ketapain.clinic.audit import Actor, list_entries
from ketapain.clinic.charting import record_score, record_vitals
from ketapain.clinic.checklist import record_checklist
from ketapain.clinic.course_safety import review_hold
from ketapain.clinic.courses import Course, current_plan
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.infusions import Infusion, InfusionEvent, delivery
from ketapain.clinic.observations import Score, SideEffect
from ketapain.clinic.outcomes import analysis_table, cohort_table
from ketapain.clinic.patients import BodyMeasurement, Diagnosis, LabResult, Medication, Patient
from ketapain.clinic.permissions import Action
from ketapain.clinic.pump import hang_infusion, pump_event
from ketapain.clinic.registry import register_patient
from ketapain.clinic.treatment import book_booster, change_status, create_course, replan
from ketapain.errors import AccessDeniedError, InvalidValueError
from ketapain.protocols.interactions import mme_per_day

DAY = timedelta(days=1)
DAY_S = 86400.0
# SQLite turns times into seconds through julianday(), a double of days: ~50 us apart.
RTOL = 1e-6
KG = 68.0  # the fixture patient's weight, the dosing weight of the "actual" policy


def _monday(weeks_ago: int) -> date:
    today = utc_now().date()
    return today - timedelta(days=today.weekday()) - timedelta(weeks=weeks_ago)


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def _course(db: Database, staff: dict[str, Actor], patient_id: uuid.UUID, start: date) -> Course:
    return create_course(
        db,
        staff["physician"],
        patient_id=patient_id,
        protocol="seed-outpatient",
        start_date=start,
        bag_mg=250,
        bag_ml=250,
    )


def _hang(db: Database, staff: dict[str, Actor], course: Course, number: int) -> Infusion:
    """Hang a bag and complete its checklist, baselines charted at no particular time."""
    inf = hang_infusion(
        db, staff["nurse"], course.id, session_number=number, bag_mg=250, bag_ml=250, lot="L-1"
    )
    record_checklist(
        db,
        staff["nurse"],
        inf.id,
        consent_confirmed=True,
        escort_confirmed=True,
        escort_name="A. Escort",
        fasting_confirmed=True,
        medications_reviewed=True,
        premedication_note="premedication given as planned",
    )
    return inf


def _session(
    db: Database,
    staff: dict[str, Actor],
    course: Course,
    number: int,
    events: list[tuple[str, datetime, float | None]],
) -> Infusion:
    """Hang session ``number``, chart baselines 5 min before the first event (NRS 7,
    120/75 mmHg: no alarm), then the pump ``events`` (kind, time, rate in mg/h)."""
    inf = _hang(db, staff, course, number)
    before = events[0][1] - timedelta(minutes=5)
    where = {"patient_id": inf.patient_id, "infusion_id": inf.id, "measured_utc": before}
    record_vitals(
        db, staff["nurse"], DEFAULT_RULES, sbp_mmhg=120.0, dbp_mmhg=75.0, hr_per_min=72.0, **where
    )
    record_score(db, staff["nurse"], DEFAULT_RULES, instrument="pain_nrs", value=7.0, **where)
    record_score(  # before each session of a repeated course (clinic.course_safety)
        db,
        staff["nurse"],
        DEFAULT_RULES,
        patient_id=inf.patient_id,
        instrument="urinary_screen",
        items=dict.fromkeys(
            ("frequency", "urgency", "dysuria", "haematuria", "suprapubic_pain"), 0
        ),
        measured_utc=before,
    )
    for kind, t, rate in events:
        reason = "titrated to effect" if kind == "rate_change" else None
        pump_event(
            db, staff["nurse"], inf.id, kind=kind, rate_mg_per_h=rate, reason=reason, time_utc=t
        )
    return inf


def _simple(
    db: Database,
    staff: dict[str, Actor],
    course: Course,
    number: int,
    day: date,
    *,
    rate: float = 13.6,
    minutes: float = 120.0,
) -> Infusion:
    """Session ``number`` run at ``rate`` from 09:00 on ``day`` for ``minutes``."""
    start = _at(day, 9)
    stop = start + timedelta(minutes=minutes)
    return _session(db, staff, course, number, [("start", start, rate), ("stop", stop, None)])


def _nrs(
    db: Database,
    staff: dict[str, Actor],
    patient_id: uuid.UUID,
    value: float,
    when: datetime,
    infusion_id: uuid.UUID | None = None,
) -> Score:
    score, _ = record_score(
        db,
        staff["nurse"],
        DEFAULT_RULES,
        patient_id=patient_id,
        instrument="pain_nrs",
        value=value,
        infusion_id=infusion_id,
        measured_utc=when,
    )
    return score


def _table(db: Database, staff: dict[str, Actor], **kw: Any) -> pl.DataFrame:
    with db.session() as s:
        return analysis_table(s, staff["physician"], **kw)


def _row(db: Database, staff: dict[str, Actor], **kw: Any) -> dict[str, Any]:
    """The one row of the analysis table."""
    table = _table(db, staff, **kw)
    assert table.height == 1
    return table.row(0, named=True)


def _retract(db: Database, actor: Actor, model: Any, row_id: uuid.UUID, kind: str) -> None:
    correct_row(
        db,
        actor,
        Action.CHART,
        model,
        row_id,
        kind=kind,
        reason="entered in error",
        entered_in_error=True,
        changes={},
    )


# --- dose, hours, sessions ------------------------------------------------------------


def test_dose_and_hours_are_the_integral_of_the_pump_events(db, staff, patient):
    """Start at 13.6 mg/h, up to 20.4, pause (rate set to 17 while paused), resume, stop;
    two more sessions: dose, hours and mean rate are the integral, as ``delivery`` has it."""
    s = _monday(6)
    course = _course(db, staff, patient.id, s)
    first = _session(
        db,
        staff,
        course,
        1,
        [
            ("start", _at(s, 9), 13.6),
            ("rate_change", _at(s, 9, 30), 20.4),
            ("pause", _at(s, 10), None),
            ("rate_change", _at(s, 10, 10), 17.0),
            ("resume", _at(s, 10, 15), None),
            ("stop", _at(s, 11, 15), None),
        ],
    )
    _simple(db, staff, course, 2, s + DAY, rate=20.4, minutes=100)
    _simple(db, staff, course, 3, s + 2 * DAY, rate=23.8, minutes=230)
    as_of = utc_now()
    row = _row(db, staff, as_of=as_of)
    # Session 1: 0.5 h x 13.6 + 0.5 h x 20.4 + (paused 15 min) + 1 h x 17.0 = 34 mg in 2 h.
    dose = [0.5 * 13.6 + 0.5 * 20.4 + 1.0 * 17.0, 20.4 * 100 / 60, 23.8 * 230 / 60]
    hours = [2.0, 100 / 60, 230 / 60]
    assert_allclose(row["dose_mg"], sum(dose), rtol=RTOL)
    assert_allclose(row["infusion_h"], sum(hours), rtol=RTOL)
    assert_allclose(row["mean_rate_mg_per_kg_h"], sum(dose) / KG / sum(hours), rtol=RTOL)
    assert_allclose(row["dosing_weight_kg"], KG)
    with db.session() as session:
        infusions = session.scalars(select(Infusion)).all()
        computed = []
        for inf in infusions:
            events = session.scalars(
                select(InfusionEvent)
                .where(InfusionEvent.infusion_id == inf.id)
                .order_by(InfusionEvent.sequence)
            ).all()
            computed.append(delivery([e.pump_event() for e in events], until=as_of))
    assert_allclose(row["dose_mg"], sum(d.delivered_mg for d in computed), rtol=RTOL)
    assert_allclose(row["infusion_h"], sum(d.running_h for d in computed), rtol=RTOL)
    assert (row["sessions_given"], row["sessions_planned"]) == (3, 7)
    assert (row["protocol"], row["diagnosis"], row["sex"]) == (
        "seed-outpatient",
        "crps_1",
        "female",
    )
    assert (row["status"], row["start_date"]) == ("in_progress", s)
    # The series ends at the stop of session 3, 2 days 12:50 after the start date's midnight.
    assert_allclose(row["series_end_day"], 2 + (12 + 50 / 60) / 24, rtol=RTOL)
    assert_allclose(row["observed_day"], (as_of - _at(s + 2 * DAY, 12, 50)) / DAY, rtol=RTOL)
    assert first.dosing_weight_kg == pytest.approx(KG)


def test_sessions_given_count_the_last_bag_of_each_started_session(db, staff, patient):
    """A leaking bag replaced within session 1 counts once (the replacement's dose only); a
    session hung but never started does not count."""
    s = _monday(6)
    course = _course(db, staff, patient.id, s)
    _session(
        db, staff, course, 1, [("start", _at(s, 9), 13.6), ("stop", _at(s, 9, 30), None)]
    )  # the leaking bag
    _session(db, staff, course, 1, [("start", _at(s, 9, 45), 13.6), ("stop", _at(s, 11, 45), None)])
    _hang(db, staff, course, 2)  # hung, never started
    row = _row(db, staff)
    assert row["sessions_given"] == 1
    assert_allclose(row["dose_mg"], 13.6 * 2.0, rtol=RTOL)
    assert_allclose(row["infusion_h"], 2.0, rtol=RTOL)
    assert row["early_stops"] == 0  # the replaced bag's short run is not a session
    assert_allclose(row["series_end_day"], (11 + 45 / 60) / 24, rtol=RTOL)


def test_no_session_started_means_no_dose_and_no_follow_up(db, staff, patient):
    """A planned course with a bag hung but never started: zero sessions, dose and hours,
    null rate, series end, observation time and MME after."""
    course = _course(db, staff, patient.id, _monday(2))
    _hang(db, staff, course, 1)
    row = _row(db, staff)
    assert (row["sessions_given"], row["early_stops"]) == (0, 0)
    assert (row["dose_mg"], row["infusion_h"]) == (0.0, 0.0)
    for name in ("mean_rate_mg_per_kg_h", "series_end_day", "observed_day", "mme_after", "nrs_end"):
        assert row[name] is None, name
    assert row["status"] == "in_progress"


def test_early_stop_is_15_minutes_short_of_the_program(db, staff, patient):
    """Session 1 (program 120 min) stopped 20 min early counts; session 2 stopped 10 min
    early does not, nor a session run in full."""
    s = _monday(6)
    course = _course(db, staff, patient.id, s)
    _simple(db, staff, course, 1, s, minutes=100)
    _simple(db, staff, course, 2, s + DAY, rate=20.4, minutes=110)
    _simple(db, staff, course, 3, s + 2 * DAY, rate=23.8, minutes=240)
    row = _row(db, staff)
    assert (row["sessions_given"], row["early_stops"]) == (3, 1)


def test_running_infusion_counts_up_to_as_of(db, staff, patient):
    """A pump still running counts hours and dose up to the analysis time; it is no early stop."""
    course = _course(db, staff, patient.id, _monday(1))
    started = utc_now() - timedelta(minutes=30)
    _session(db, staff, course, 1, [("start", started, 13.6)])
    as_of = started + timedelta(minutes=20)
    row = _row(db, staff, as_of=as_of)
    assert_allclose(row["infusion_h"], 20 / 60, rtol=1e-6)
    assert_allclose(row["dose_mg"], 13.6 * 20 / 60, rtol=1e-6)
    assert (row["sessions_given"], row["early_stops"]) == (1, 0)


def test_completed_course_status(db, staff, patient):
    """The status column is the course's latest status."""
    s = _monday(6)
    course = _course(db, staff, patient.id, s)
    _simple(db, staff, course, 1, s)
    change_status(db, staff["physician"], course.id, status="completed", reason="done")
    assert _row(db, staff)["status"] == "completed"


# --- pain scores -------------------------------------------------------------------------


def test_nrs_end_is_the_last_current_score_after_the_last_stop(db, staff, patient):
    """NRS end: the last pain NRS charted on the last session at or after its stop; a
    correction's value replaces the old one, a retracted score is ignored, and scores
    before the stop, of an earlier session or at follow-up do not count."""
    s = _monday(6)
    course = _course(db, staff, patient.id, s)
    first = _simple(db, staff, course, 1, s)
    last = _simple(db, staff, course, 2, s + DAY, rate=20.4)
    stop = _at(s + DAY, 11)
    pid = patient.id
    _nrs(db, staff, pid, 0.0, _at(s, 11, 30), first.id)  # earlier session
    _nrs(db, staff, pid, 1.0, stop - timedelta(minutes=10), last.id)  # before the stop
    _nrs(db, staff, pid, 9.0, stop + timedelta(hours=5))  # follow-up, no infusion
    assert _row(db, staff)["nrs_end"] is None
    _nrs(db, staff, pid, 5.0, stop, last.id)
    assert _row(db, staff)["nrs_end"] == 5.0
    typo = _nrs(db, staff, pid, 4.0, stop + timedelta(minutes=30), last.id)
    wrong = _nrs(db, staff, pid, 2.0, stop + timedelta(minutes=60), last.id)
    assert _row(db, staff)["nrs_end"] == 2.0
    _retract(db, staff["nurse"], Score, wrong.id, "scores")
    assert _row(db, staff)["nrs_end"] == 4.0
    correct_row(
        db,
        staff["nurse"],
        Action.CHART,
        Score,
        typo.id,
        kind="scores",
        reason="misheard",
        changes={"value": 3.0},
    )
    row = _row(db, staff)
    assert row["nrs_end"] == 3.0
    assert row["baseline_nrs"] == 7.0


def test_follow_up_weeks_relief_lost_and_last_follow_up(db, staff, patient):
    """Follow-up NRS 7, 8, 13, 28 and 84 days after the series land in weeks 1 (mean of
    two), 2, 4 and 12; relief is lost at the first NRS above 70% of baseline (4.9)."""
    s = _monday(16)
    course = _course(db, staff, patient.id, s)
    _simple(db, staff, course, 1, s)
    end = _at(s, 11)
    for days, value in ((7, 3.0), (8, 4.0), (13, 4.0), (28, 5.0), (84, 6.0)):
        _nrs(db, staff, patient.id, value, end + days * DAY)
    as_of = utc_now()
    row = _row(db, staff, as_of=as_of)
    weeks = {w: row[f"nrs_week_{w}"] for w in range(1, 13)}
    assert weeks == {
        1: pytest.approx(3.5),
        2: 4.0,
        3: None,
        4: 5.0,
        5: None,
        6: None,
        7: None,
        8: None,
        9: None,
        10: None,
        11: None,
        12: 6.0,
    }
    assert_allclose(row["last_follow_up_day"], 84.0, rtol=RTOL)
    assert_allclose(row["relief_lost_day"], 28.0, rtol=RTOL)
    assert_allclose(row["observed_day"], (as_of - end) / DAY, rtol=RTOL)


def test_follow_up_without_relief_lost_and_retracted_follow_up(db, staff, patient):
    """No NRS above 70% of baseline: no relief-lost day; a retracted follow-up counts nowhere."""
    s = _monday(6)
    course = _course(db, staff, patient.id, s)
    _simple(db, staff, course, 1, s)
    end = _at(s, 11)
    _nrs(db, staff, patient.id, 4.0, end + 14 * DAY)
    wrong = _nrs(db, staff, patient.id, 8.0, end + 21 * DAY)
    _retract(db, staff["nurse"], Score, wrong.id, "scores")
    row = _row(db, staff)
    assert (row["nrs_week_2"], row["nrs_week_3"], row["relief_lost_day"]) == (4.0, None, None)
    assert_allclose(row["last_follow_up_day"], 14.0, rtol=RTOL)


# --- boosters ----------------------------------------------------------------------------


def test_booster_day_only_once_its_date_has_come(db, staff, patient):
    """A future booster: counted, no booster day; a past one gives the days from the series
    end to its date's midnight, unless the analysis time is before that date."""
    s = _monday(6)
    course = _course(db, staff, patient.id, s)
    _simple(db, staff, course, 1, s)
    end = _at(s, 11)
    doc = staff["physician"]
    book_booster(
        db, doc, course.id, scheduled_date=utc_now().date() + 30 * DAY, reason="in a month"
    )
    row = _row(db, staff)
    assert (row["booster_day"], row["boosters"]) == (None, 1)
    booked = s + 15 * DAY
    book_booster(db, doc, course.id, scheduled_date=booked, reason="relief wore off")
    row = _row(db, staff)
    assert row["boosters"] == 2
    assert_allclose(row["booster_day"], (_at(booked, 0) - end) / DAY, rtol=RTOL)
    earlier = _row(db, staff, as_of=_at(booked, 0) - timedelta(hours=1))
    assert (earlier["booster_day"], earlier["boosters"]) == (None, 2)


# --- safety ------------------------------------------------------------------------------


def _side_effect(db, staff, patient_id, infusion_id, effect, severity, when):
    return add_row(
        db,
        staff["nurse"],
        Action.CHART,
        SideEffect(
            patient_id=patient_id,
            infusion_id=infusion_id,
            effect=effect,
            severity=severity,
            observed_utc=when,
        ),
    )


def test_side_effects_and_alarms_of_the_sessions(db, staff, patient):
    """Side effects of the sessions (moderate and severe are significant) and the alarms an
    SBP of 195 raises; retracted side effects and charting outside a session do not count."""
    s = _monday(6)
    course = _course(db, staff, patient.id, s)
    one = _simple(db, staff, course, 1, s)
    two = _simple(db, staff, course, 2, s + DAY, rate=20.4)
    _simple(db, staff, course, 3, s + 2 * DAY, rate=23.8, minutes=240)
    pid = patient.id
    _side_effect(db, staff, pid, one.id, "dizziness", "mild", _at(s, 9, 30))
    _side_effect(db, staff, pid, one.id, "nausea", "moderate", _at(s, 10))
    _side_effect(db, staff, pid, two.id, "hallucinations", "severe", _at(s + DAY, 9, 40))
    wrong = _side_effect(db, staff, pid, two.id, "headache", "severe", _at(s + DAY, 10))
    _retract(db, staff["nurse"], SideEffect, wrong.id, "side-effects")
    _side_effect(db, staff, pid, None, "nausea", "moderate", _at(s + 3 * DAY, 10))
    nurse = staff["nurse"]
    _, high = record_vitals(
        db, nurse, DEFAULT_RULES, patient_id=pid, infusion_id=one.id,
        measured_utc=_at(s, 9, 30), sbp_mmhg=195.0, dbp_mmhg=80.0,
    )  # fmt: skip
    _, clinic_visit = record_vitals(
        db, nurse, DEFAULT_RULES, patient_id=pid, measured_utc=_at(s + 4 * DAY, 9),
        sbp_mmhg=195.0,
    )  # fmt: skip
    # SBP 195 from a 120 baseline: > 160 (warn), a rise over 20% (warn), > 180 (stop).
    assert sorted(a.level for a in high) == ["stop", "warn", "warn"]
    assert clinic_visit  # raised, but outside any session
    row = _row(db, staff)
    assert (
        row["side_effects"],
        row["significant_side_effects"],
        row["sessions_with_side_effects"],
    ) == (3, 2, 2)
    assert (row["alarms"], row["stop_alarms"]) == (3, 1)


def test_no_side_effects_read_zero(db, staff, patient):
    """A course with a session and nothing charted against it reads zeros, not nulls."""
    s = _monday(6)
    course = _course(db, staff, patient.id, s)
    _simple(db, staff, course, 1, s)
    row = _row(db, staff)
    for name in (
        "side_effects",
        "significant_side_effects",
        "sessions_with_side_effects",
        "alarms",
        "stop_alarms",
        "boosters",
    ):
        assert row[name] == 0, name
    assert (row["lft_checked"], row["lft_elevated"], row["lft_over_3x_uln"]) == (
        False,
        False,
        False,
    )


def _lab(db, staff, patient_id, test, value, when, ref_high=40.0):
    return add_row(
        db,
        staff["nurse"],
        Action.CHART,
        LabResult(
            patient_id=patient_id,
            test=test,
            value=value,
            ref_low=0.0,
            ref_high=ref_high,
            collected_utc=when,
        ),
    )


def _lft(db, staff):
    row = _row(db, staff)
    return row["lft_checked"], row["lft_elevated"], row["lft_over_3x_uln"]


def test_liver_tests_after_the_first_session(db, staff, patient):
    """An ALT raised before the course does not count; after the first session an ALT of 30
    is a check, 60 (ULN 40) an elevation, an AST of 125 above 3 x ULN; retracted labs
    and other tests do not count."""
    s = _monday(6)
    course = _course(db, staff, patient.id, s)
    old = _lab(db, staff, patient.id, "alt", 150.0, _at(s - 7 * DAY, 8))
    # Above 3 x ULN it holds the infusions until a physician reviews it (course_safety).
    review_hold(
        db,
        staff["physician"],
        patient.id,
        outcome="resume",
        reason="old result, hepatitis resolved; recheck after the first session",
        lab_result_id=old.id,
    )
    _simple(db, staff, course, 1, s)
    _simple(db, staff, course, 2, s + DAY, rate=20.4)
    assert _lft(db, staff) == (False, False, False)
    wrong = _lab(db, staff, patient.id, "alt", 500.0, _at(s + 2 * DAY, 8))
    _retract(db, staff["nurse"], LabResult, wrong.id, "labs")
    _lab(db, staff, patient.id, "bilirubin", 5.0, _at(s + 2 * DAY, 8), ref_high=1.2)
    assert _lft(db, staff) == (False, False, False)
    _lab(db, staff, patient.id, "alt", 30.0, _at(s + 2 * DAY, 8))
    assert _lft(db, staff) == (True, False, False)
    _lab(db, staff, patient.id, "alt", 60.0, _at(s + 9 * DAY, 8))
    assert _lft(db, staff) == (True, True, False)
    _lab(db, staff, patient.id, "ast", 125.0, _at(s + 16 * DAY, 8))
    assert _lft(db, staff) == (True, True, True)


# --- opioids -----------------------------------------------------------------------------


def _mme(name: str, mg: float) -> float:
    m = mme_per_day(name, dose_mg_per_day=mg)
    assert m is not None and m.mme_per_day is not None
    return m.mme_per_day


def test_mme_before_and_after_a_dose_reduced_after_the_series(db, staff, patient):
    """Oxycodone 30 mg/day (and gabapentin, no MME) charted, then corrected to 15 mg/day:
    MME before reads the first list, MME after the reduced dose, read at the analysis
    time or 84 days after the series, whichever comes first."""
    s = _monday(5)
    course = _course(db, staff, patient.id, s)
    _simple(db, staff, course, 1, s)
    end = _at(s, 11)
    nurse = staff["nurse"]
    oxy = add_row(
        db,
        nurse,
        Action.CHART,
        Medication(patient_id=patient.id, name="oxycodone", dose_mg_per_day=30.0),
    )
    add_row(
        db,
        nurse,
        Action.CHART,
        Medication(patient_id=patient.id, name="gabapentin", dose_mg_per_day=1800.0),
    )
    row = _row(db, staff)
    assert_allclose((row["mme_before"], row["mme_after"]), (_mme("oxycodone", 30.0),) * 2)
    correct_row(
        db,
        nurse,
        Action.CHART,
        Medication,
        oxy.id,
        kind="medications",
        reason="tapered after the series",
        changes={"dose_mg_per_day": 15.0},
    )
    as_of = utc_now()
    row = _row(db, staff, as_of=as_of)
    assert_allclose(row["mme_before"], _mme("oxycodone", 30.0))
    assert_allclose(row["mme_after"], _mme("oxycodone", 15.0))
    assert_allclose(row["mme_after_day"], (as_of - end) / DAY, rtol=RTOL)
    later = _row(db, staff, as_of=as_of + 90 * DAY)
    assert_allclose(later["mme_after_day"], 84.0, rtol=RTOL)
    assert_allclose(later["mme_after"], _mme("oxycodone", 15.0))


def test_mme_zero_without_opioids(db, staff, patient):
    """No opioid on the list: MME before and after read 0, not null."""
    s = _monday(5)
    course = _course(db, staff, patient.id, s)
    _simple(db, staff, course, 1, s)
    add_row(
        db,
        staff["nurse"],
        Action.CHART,
        Medication(patient_id=patient.id, name="pregabalin", dose_mg_per_day=300.0),
    )
    row = _row(db, staff)
    assert (row["mme_before"], row["mme_after"]) == (0.0, 0.0)


# --- the plan ----------------------------------------------------------------------------


def _forecast(db: Database, course_id: uuid.UUID) -> tuple[float, float, float]:
    with db.session() as s:
        f = current_plan(s, course_id).plan["pain_forecast"]
    return (
        f["end_of_series"]["nrs_expected"],
        f["week_4"]["nrs_expected"],
        f["week_12"]["nrs_expected"],
    )


def _predicted(row: dict[str, Any]) -> tuple[float, float, float]:
    return (row["predicted_nrs_end"], row["predicted_nrs_week_4"], row["predicted_nrs_week_12"])


def test_predictions_are_the_forecast_of_the_plan_in_force(db, staff, patient):
    """The predicted NRS columns are the pain forecast of the current plan version, also
    after a replan (ideal body weight); the planned sessions are that plan's."""
    s = _monday(1)
    course = _course(db, staff, patient.id, s)
    first = _forecast(db, course.id)
    assert _predicted(_row(db, staff)) == first
    replan(db, staff["physician"], course.id, reason="dose by ideal weight", weight_policy="ideal")
    second = _forecast(db, course.id)
    row = _row(db, staff)
    assert _predicted(row) == second
    assert second != first
    assert row["sessions_planned"] == 7
    assert_allclose(row["baseline_nrs"], 7.0)


def test_the_plan_starts_from_the_pain_charted_at_intake(db, staff, patient):
    """A pain NRS charted outside an infusion before planning is the plan's baseline, and
    the forecast scales with it (predicted NRS is proportional to baseline)."""
    _nrs(db, staff, patient.id, 5.0, _at(_monday(2), 9))
    course = _course(db, staff, patient.id, _monday(1))
    row = _row(db, staff)
    assert_allclose(row["baseline_nrs"], 5.0)
    with db.session() as s:
        plan = current_plan(s, course.id)
    assert plan.inputs["chart"]["pain_nrs"] == 5.0
    assert plan.plan["pain_forecast"]["baseline_nrs"] == 5.0
    assert row["predicted_nrs_week_12"] < 5.0


# --- de-identification -------------------------------------------------------------------


def _person(db, staff, *, mrn, family, given, born, sex):
    p = register_patient(
        db,
        staff["front_desk"],
        mrn=mrn,
        family_name=family,
        given_name=given,
        birth_date=born,
        sex=sex,
    )
    add_row(
        db,
        staff["nurse"],
        Action.CHART,
        BodyMeasurement(patient_id=p.id, weight_kg=70.0, height_cm=170.0),
    )
    add_row(db, staff["physician"], Action.CHART, Diagnosis(patient_id=p.id, code="M79.7"))
    return p


def test_no_identifier_in_the_table_and_ages_over_89_read_90(db, staff, staff_users, patient):
    """No MRN, name or record id appears anywhere in the table or its export; a
    95-year-old reads 90, the fixture patient (born 1 May 1980) her age in whole years."""
    s = _monday(6)
    old = _person(
        db, staff, mrn="OLD-0095", family="Zebediah", given="Bartholomew",
        born=date(s.year - 95, 1, 1), sex="male",
    )  # fmt: skip
    c1 = _course(db, staff, patient.id, s)
    c2 = _course(db, staff, old.id, s)
    inf = _simple(db, staff, c1, 1, s)
    _simple(db, staff, c2, 1, s + DAY)
    table = _table(db, staff)
    age = s.year - 1980 - ((s.month, s.day) < (5, 1))
    assert sorted(table["age_y"].to_list()) == [age, 90]
    assert sorted(table["diagnosis"].to_list()) == ["crps_1", "fibromyalgia"]
    text = table.write_csv() + deidentify(table).write_csv()
    ids: list[uuid.UUID] = [patient.id, old.id, c1.id, c2.id, inf.id]
    ids += [u.id for u in staff_users.values()]
    secrets_ = ["T-0001", "OLD-0095", "Doe", "Jane", "Zebediah", "Bartholomew"]
    secrets_ += [str(i) for i in ids] + [i.hex for i in ids]
    lowered = text.lower()
    found = [x for x in secrets_ if x.lower() in lowered]
    assert found == []
    assert "start_year" in deidentify(table).columns
    assert "start_date" not in deidentify(table).columns


def test_course_keys_repeat_with_the_same_key_only(db, staff, patient):
    """The same key gives the same pseudonyms twice; another key, or none, gives others."""
    s = _monday(1)
    _course(db, staff, patient.id, s)
    _course(db, staff, patient.id, s + 7 * DAY)

    def keys(key: bytes | None) -> tuple[list[str], list[str]]:
        t = _table(db, staff, key=key)
        return sorted(t["course_key"].to_list()), sorted(t["patient_key"].to_list())

    same = keys(b"clinic-export-key")
    assert keys(b"clinic-export-key") == same
    courses, patients = same
    assert len(set(courses)) == 2 and len(set(patients)) == 1
    for other in (keys(b"another-key"), keys(None), keys(None)):
        assert set(other[0]).isdisjoint(courses)
        assert set(other[1]).isdisjoint(patients)
    assert keys(None)[0] != keys(None)[0]


# --- access and audit --------------------------------------------------------------------


def test_only_physicians_and_admins_read_outcomes(db, staff, patient):
    """Nurse and front desk are refused; physician and admin read the same courses."""
    _course(db, staff, patient.id, _monday(1))
    with db.session() as s:
        for role in ("nurse", "front_desk"):
            with pytest.raises(AccessDeniedError):
                analysis_table(s, staff[role])
        heights = [analysis_table(s, staff[r]).height for r in ("physician", "admin")]
    assert heights == [1, 1]


def test_cohort_table_audits_the_read_and_the_refusal(db, staff, patient):
    """``cohort_table`` writes a ``read_outcomes`` entry with its purpose and the number of
    courses; a nurse's attempt is refused and audited as denied."""
    _course(db, staff, patient.id, _monday(1))
    table = cohort_table(db, staff["admin"], purpose="quarterly report")
    assert table.height == 1
    with pytest.raises(AccessDeniedError):
        cohort_table(db, staff["nurse"], purpose="curious")
    with db.session() as s:
        reads = list_entries(s, action="read_outcomes")
        denied = list_entries(s, action="denied", actor_username=staff["nurse"].username)
        assert [(e.actor_username, e.entity) for e in reads] == [
            (staff["admin"].username, "analysis_table")
        ]
        assert "quarterly report" in reads[0].detail and "1 courses" in reads[0].detail
        assert len(denied) == 1


def test_as_of_must_carry_a_timezone(db, staff):
    """A naive analysis time is refused, naming ``as_of``."""
    with db.session() as s, pytest.raises(InvalidValueError) as err:
        analysis_table(s, staff["physician"], as_of=datetime(2026, 1, 1))  # naive on purpose
    assert err.value.field == "as_of"


def test_empty_clinic_gives_an_empty_valid_table(db, staff):
    """No courses: a table with every column of the layout and no rows."""
    table = _table(db, staff)
    assert table.height == 0
    assert table.columns == [c.name for c in COLUMNS]
    assert check_cohort(table).schema == table.schema


# --- the demo clinic ---------------------------------------------------------------------


@pytest.fixture
def demo(db, request, demo_clinics):
    """The demo clinic of today (``fill_demo``) on the engine of ``db``, with its staff:
    a copy of the demo template, filled once per worker."""
    with demo_clinics.copy(request, db.engine.dialect.name, utc_now().date()) as clinic:
        yield clinic


def test_demo_clinic_table_and_analysis(demo, staff):
    """The demo clinic gives one valid row per course, and the analysis runs on it."""
    db, counts = demo.db, demo.counts
    table = _table(db, staff)
    assert table.height == counts["courses"]
    assert table["course_key"].n_unique() == table.height
    check_cohort(table)
    with db.session() as s:
        assert table["patient_key"].n_unique() == len(
            {c.patient_id for c in s.scalars(select(Course))}
        )
        patients = s.scalars(select(Patient)).all()
    assert len(patients) == counts["patients"]
    assert (table["sessions_given"] > 0).sum() >= 4
    a = analyse(table)
    assert isinstance(a, CohortAnalysis)
    assert a.courses == counts["courses"]
    json.dumps(a.as_dict(), default=str)


# --- bugs --------------------------------------------------------------------------------


def test_follow_up_after_as_of_is_censored(db, staff, patient):
    """Follow-up is censored at the analysis time: an NRS charted after ``as_of`` is not
    read, so the last follow-up is never later than the observation time."""
    s = _monday(6)
    course = _course(db, staff, patient.id, s)
    _simple(db, staff, course, 1, s)
    end = _at(s, 11)
    _nrs(db, staff, patient.id, 4.0, end + 7 * DAY)
    _nrs(db, staff, patient.id, 8.0, end + 21 * DAY)
    row = _row(db, staff, as_of=end + 14 * DAY)
    assert_allclose(row["observed_day"], 14.0, rtol=RTOL)
    assert (row["nrs_week_3"], row["relief_lost_day"]) == (None, None)
    assert_allclose(row["last_follow_up_day"], 7.0, rtol=RTOL)


def test_retracted_opioid_counts_nowhere(db, staff, patient):
    """An opioid entered in error (wrong patient) and retracted is no opioid use."""
    s = _monday(5)
    course = _course(db, staff, patient.id, s)
    _simple(db, staff, course, 1, s)
    wrong = add_row(
        db,
        staff["nurse"],
        Action.CHART,
        Medication(patient_id=patient.id, name="morphine", dose_mg_per_day=60.0),
    )
    _retract(db, staff["nurse"], Medication, wrong.id, "medications")
    row = _row(db, staff)
    assert (row["mme_before"], row["mme_after"]) == (0.0, 0.0)


def test_sessions_with_side_effects_count_sessions_not_bags(db, staff, patient):
    """Nausea charted on a bag replaced within session 1 and on its replacement: one
    session with side effects, not two (only one session was given)."""
    s = _monday(6)
    course = _course(db, staff, patient.id, s)
    leaking = _session(
        db, staff, course, 1, [("start", _at(s, 9), 13.6), ("stop", _at(s, 9, 30), None)]
    )
    spare = _session(
        db, staff, course, 1, [("start", _at(s, 9, 45), 13.6), ("stop", _at(s, 11, 45), None)]
    )
    _side_effect(db, staff, patient.id, leaking.id, "nausea", "mild", _at(s, 9, 20))
    _side_effect(db, staff, patient.id, spare.id, "nausea", "mild", _at(s, 10, 20))
    row = _row(db, staff)
    assert row["sessions_given"] == 1
    assert row["sessions_with_side_effects"] <= row["sessions_given"]


def test_replan_moving_the_start_keeps_the_table_valid(db, staff, patient):
    """A course paused after session 1 and replanned to resume next month must not break
    the whole analysis table."""
    s = _monday(6)
    course = _course(db, staff, patient.id, s)
    _simple(db, staff, course, 1, s)
    resume = _monday(-5)
    replan(db, staff["physician"], course.id, reason="resume after a break", start_date=resume)
    row = _row(db, staff)
    assert row["sessions_given"] == 1
    assert row["series_end_day"] is None or row["series_end_day"] >= 0


def test_a_stop_charted_seconds_ahead_does_not_break_the_table(db, staff, patient):
    """A nurse's device a few seconds fast charts the stop 30 s ahead (allowed); the
    outcome table read right after, at the default analysis time, still builds."""
    course = _course(db, staff, patient.id, _monday(1))
    now = utc_now()
    _session(
        db,
        staff,
        course,
        1,
        [("start", now - timedelta(hours=2), 13.6), ("stop", now + timedelta(seconds=30), None)],
    )
    row = _row(db, staff)
    assert row["sessions_given"] == 1


def test_a_stop_exactly_15_minutes_early_is_an_early_stop(db, staff, patient):
    """Three sessions each stopped exactly one charting interval (15 min) short of the
    program: three early stops, on both databases (fixed dates: reproducible rounding)."""
    s = date(2026, 6, 1)  # a past Monday
    course = _course(db, staff, patient.id, s)
    _simple(db, staff, course, 1, s, minutes=105)
    _simple(db, staff, course, 2, s + DAY, rate=20.4, minutes=105)
    _simple(db, staff, course, 3, s + 2 * DAY, rate=23.8, minutes=225)
    assert _row(db, staff)["early_stops"] == 3
