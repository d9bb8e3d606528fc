"""Early completion when the series' goal is reached, and relapse and booster suggestions
after the series, on courses with sessions given and pain charted."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import pytest

from ketapain.clinic.audit import Actor, unit_of_work
from ketapain.clinic.boosters import booster_suggestion, early_completion
from ketapain.clinic.charting import record_score
from ketapain.clinic.courses import Course
from ketapain.clinic.db import Database
from ketapain.clinic.infusions import EventKind, InfusionEvent
from ketapain.clinic.pump import hang_infusion
from ketapain.clinic.rebooking import mark_missed
from ketapain.clinic.treatment import book_booster, change_status, create_course
from ketapain.errors import AccessDeniedError

# A past Monday. seed-outpatient puts sessions 1-7 on 5, 6, 7, 8, 9, 12 and 13 October.
START: Final = date(2026, 10, 5)
SERIES_END: Final = date(2026, 10, 13)
TODAY: Final = date(2026, 11, 10)
BASELINE: Final = 10.0  # relapse above 0.70 x 10 = 7; the 50% goal at 5 or below (NRS whole)


def _at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _nrs(db: Database, nurse: Actor, patient_id: uuid.UUID, day: date, value: float) -> None:
    """Chart a pain NRS outside an infusion (intake, follow-up) at noon UTC of ``day``."""
    record_score(
        db,
        nurse,
        (),
        patient_id=patient_id,
        instrument="pain_nrs",
        value=value,
        measured_utc=_at(day, 12),
    )


def _give(db: Database, nurse: Actor, course: Course, number: int, nrs_after: float | None):
    """Session ``number`` given: bag hung, pump started and stopped (2 h), NRS after."""
    inf = hang_infusion(
        db, nurse, course.id, session_number=number, bag_mg=250, bag_ml=250, lot="KET-1"
    )
    t0 = _at(START + timedelta(days=number - 1), 9)
    assert nurse.user_id is not None
    events = [(EventKind.START, t0, 13.6), (EventKind.STOP, t0 + timedelta(hours=2), None)]
    with unit_of_work(db, nurse) as s:
        for seq, (kind, t, rate) in enumerate(events, start=1):
            s.add(
                InfusionEvent(
                    infusion_id=inf.id,
                    sequence=seq,
                    kind=kind,
                    time_utc=t,
                    rate_mg_per_h=rate,
                    recorded_by_id=nurse.user_id,
                )
            )
    if nrs_after is not None:
        record_score(
            db,
            nurse,
            (),
            patient_id=course.patient_id,
            instrument="pain_nrs",
            value=nrs_after,
            infusion_id=inf.id,
            measured_utc=t0 + timedelta(hours=3),
        )


@pytest.fixture
def course(db, staff, patient):
    """A seed-outpatient course from START, planned on a baseline NRS of 10."""
    _nrs(db, staff["nurse"], patient.id, START - timedelta(days=4), BASELINE)
    return create_course(
        db,
        staff["physician"],
        patient_id=patient.id,
        protocol="seed-outpatient",
        start_date=START,
        bag_mg=250,
        bag_ml=250,
    )


@pytest.fixture
def series(db, staff, course):
    """The course with all 7 sessions given; NRS after them 5, except 4 after session 5."""
    for n in range(1, 8):
        _give(db, staff["nurse"], course, n, 4.0 if n == 5 else 5.0)
    return course


def _early(db, actor, course_id) -> dict[str, Any]:
    with db.session() as s:
        return early_completion(s, actor, course_id)


def _boost(db, actor, course_id, today=TODAY) -> dict[str, Any]:
    with db.session() as s:
        return booster_suggestion(s, actor, course_id, today=today)


# --- early completion ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "reached"),
    [
        ([6.0, 5.0, 5.0], True),  # exactly 50% twice
        ([6.0, 5.0, 6.0], False),  # the last one short by a point
        ([6.0, 5.0], False),  # the one before short
        ([9.0, 2.0, 4.0], True),  # only the last two count
        ([3.0, 7.0], False),  # relief not sustained
        ([5.0], False),  # one session is not two in a row
        ([3.0, None], None),  # no NRS after the latest session: cannot tell
    ],
)
def test_goal_is_50_percent_over_the_last_two_sessions(db, staff, course, after, reached):
    """The goal counts when the NRS after each of the last two sessions given is at least
    50% below the baseline of 10 (5 or less); then completing early is suggested."""
    for n, nrs in enumerate(after, start=1):
        _give(db, staff["nurse"], course, n, nrs)
    out = _early(db, staff["physician"], course.id)
    assert out["goal_reached"] is reached
    assert out["suggest_complete"] is (reached is True)
    assert out["sessions_left"] == list(range(len(after) + 1, 8))
    assert (out["threshold_pct"], out["sustained_sessions"], out["baseline_nrs"]) == (50.0, 2, 10.0)
    assert any("Dworkin" in s for s in out["sources"])
    assert any("seed 003" in s for s in out["sources"])
    if reached:
        assert "may stop here" in out["reason"]
        assert out["sessions"][-1]["relief_pct"] == pytest.approx(10 * (10 - after[-1]))


def test_no_early_completion_when_nothing_is_left_or_the_course_is_closed(db, staff, course):
    """The goal reached with every later session missed, or on a completed course, is no
    suggestion to complete early."""
    for n in (1, 2):
        _give(db, staff["nurse"], course, n, 3.0)
    for n in range(3, 8):
        mark_missed(db, staff["front_desk"], course.id, session_number=n, reason="goal reached")
    out = _early(db, staff["nurse"], course.id)
    assert (out["goal_reached"], out["suggest_complete"], out["sessions_left"]) == (True, False, [])
    assert "No session is left" in out["reason"]
    change_status(db, staff["physician"], course.id, status="completed", reason="goal reached")
    out = _early(db, staff["physician"], course.id)
    assert (out["goal_reached"], out["suggest_complete"], out["status"]) == (
        True,
        False,
        "completed",
    )


def test_early_completion_is_clinical(db, staff, course):
    """The front desk may not read whether the goal is reached."""
    with pytest.raises(AccessDeniedError):
        _early(db, staff["front_desk"], course.id)


# --- relapse and boosters -----------------------------------------------------------


def test_relapse_by_follow_up_scores_suggests_a_booster(db, staff, series):
    """A follow-up NRS above 70% of the baseline (8 > 7) is a relapse: a booster is
    suggested, with the reason, the sources and the protocol's booster phase."""
    nurse = staff["nurse"]
    _nrs(db, nurse, series.patient_id, date(2026, 10, 20), 5.0)
    _nrs(db, nurse, series.patient_id, date(2026, 11, 2), 8.0)
    out = _boost(db, staff["physician"], series.id)
    assert (out["relapsed"], out["since"], out["suggest_booster"]) == (True, "2026-11-02", True)
    assert out["series_end"] == SERIES_END.isoformat()
    assert "Pain back above" in out["reason"]
    assert any("Farrar" in s for s in out["sources"])
    assert out["assessment"]["threshold_nrs"] == pytest.approx(7.0)
    assert out["assessment"]["best_nrs"] == 4.0
    phase = out["booster_phase"]
    assert (phase["name"], phase["sessions"], phase["start"], phase["duration_h"]) == (
        "booster",
        2,
        "09:00",
        4.0,
    )
    assert phase["rates"] == [{"rate_mg_per_kg_h": 0.35, "rate_mg_per_h": None}]


def test_no_relapse_at_the_line_nor_from_scores_during_the_series(db, staff, series):
    """A follow-up NRS of exactly 70% of the baseline is no relapse, and a high score
    charted during the series does not count."""
    nurse = staff["nurse"]
    _nrs(db, nurse, series.patient_id, date(2026, 10, 8), 10.0)
    _nrs(db, nurse, series.patient_id, date(2026, 11, 2), 7.0)
    out = _boost(db, staff["nurse"], series.id)
    assert (out["relapsed"], out["suggest_booster"], out["since"]) == (False, False, None)
    assert "No relapse" in out["reason"]


def test_booster_history_intervals_and_scores_after_the_latest(db, staff, series):
    """Boosters 14 days after the series and 7 days later: the intervals are listed; a
    high score before the latest booster does not count, one after it does."""
    doc, nurse = staff["physician"], staff["nurse"]
    book_booster(db, doc, series.id, scheduled_date=date(2026, 10, 27), reason="relapse")
    book_booster(db, doc, series.id, scheduled_date=date(2026, 11, 3), reason="relapse")
    _nrs(db, nurse, series.patient_id, date(2026, 11, 2), 8.0)
    out = _boost(db, doc, series.id)
    assert [h["days_since_previous"] for h in out["history"]] == [14, 7]
    assert (out["intervals_days"], out["mean_interval_days"]) == ([14, 7], 10.5)
    assert all(h["given"] for h in out["history"])
    assert out["relapsed"] is False
    _nrs(db, nurse, series.patient_id, date(2026, 11, 8), 8.0)
    out = _boost(db, doc, series.id)
    assert (out["relapsed"], out["since"], out["suggest_booster"]) == (True, "2026-11-08", True)


def test_no_second_suggestion_while_a_booster_is_booked(db, staff, series):
    """A relapse with a booster already booked ahead suggests none more, and says so."""
    book_booster(db, staff["physician"], series.id, scheduled_date=date(2026, 11, 20), reason="r")
    _nrs(db, staff["nurse"], series.patient_id, date(2026, 11, 2), 9.0)
    out = _boost(db, staff["physician"], series.id)
    assert (out["relapsed"], out["suggest_booster"]) == (True, False)
    assert "already booked for 2026-11-20" in out["reason"]
    assert out["history"][0]["given"] is False


def test_no_assessment_before_the_series_is_over(db, staff, course):
    """No session given, or sessions still to come: relapse is not assessed yet."""
    out = _boost(db, staff["physician"], course.id)
    assert (out["relapsed"], out["suggest_booster"], out["assessment"]) == (False, False, None)
    assert "No session of the series is given yet" in out["reason"]
    _give(db, staff["nurse"], course, 1, 3.0)
    _nrs(db, staff["nurse"], course.patient_id, date(2026, 10, 30), 10.0)
    out = _boost(db, staff["physician"], course.id)
    assert out["suggest_booster"] is False
    assert "still going (sessions 2, 3, 4, 5, 6, 7 left)" in out["reason"]


def test_booster_suggestion_is_clinical(db, staff, course):
    """The front desk may not read the booster suggestion."""
    with pytest.raises(AccessDeniedError):
        _boost(db, staff["front_desk"], course.id)
