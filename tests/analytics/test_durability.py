"""Tests of relief duration and time to booster (ketapain.analytics.durability).

The durations and events are written out by hand from the module's rules, and the
curves are checked against lifelines' ``KaplanMeierFitter`` fitted directly on them:

    relief:  responders at the end (NRS <= 0.7 x baseline); event at
             min(relief_lost_day, booster_day); else censored at last_follow_up_day
             (0 without follow-up)
    booster: courses with a session given; event at booster_day; else censored at
             observed_day
"""

from __future__ import annotations

import numpy as np
from lifelines import KaplanMeierFitter
from numpy.testing import assert_allclose, assert_array_equal

from ketapain.analytics.durability import Durability, relief_duration, time_to_booster

# Baseline 8 by default: NRS 5.6 or below at the end is a 30% responder.
RELIEF_CASES = [
    # loses relief at day 20 (follow-up went on to day 40): event at 20
    {"nrs_end": 3.0, "relief_lost_day": 20.0, "last_follow_up_day": 40.0},
    # booster at day 15, before relief was lost at 30: event at 15
    {"nrs_end": 4.0, "booster_day": 15.0, "relief_lost_day": 30.0, "last_follow_up_day": 35.0},
    # still relieved at the last follow-up, day 40: censored at 40
    {"nrs_end": 2.0, "last_follow_up_day": 40.0},
    # responder without any follow-up: censored at 0
    {"nrs_end": 5.6},
    # non-responder (7 > 5.6), who lost nothing: excluded
    {"nrs_end": 7.0, "relief_lost_day": 5.0, "last_follow_up_day": 40.0},
    # no NRS at the end: excluded
    {"nrs_end": None, "relief_lost_day": 10.0},
    # no session given: excluded
    {"nrs_end": 2.0, "sessions_given": 0, "relief_lost_day": 3.0},
]
RELIEF_DAYS = np.array([20.0, 15.0, 40.0, 0.0])
RELIEF_EVENTS = np.array([True, True, False, False])


def _lifelines(days: np.ndarray, events: np.ndarray) -> KaplanMeierFitter:
    return KaplanMeierFitter(alpha=0.05).fit(days, event_observed=events)


def _check_against_lifelines(d: Durability, days: np.ndarray, events: np.ndarray) -> None:
    ref = _lifelines(days, events)
    at = np.unique(days[events])
    expected = ref.survival_function_at_times(at).to_numpy()
    assert_allclose([d.curve.at(t) for t in at], expected, rtol=1e-12)
    shown = np.isin(d.curve.time, at)
    assert_allclose(d.curve.survival[shown], expected, rtol=1e-12)
    median = ref.median_survival_time_
    assert d.curve.median() == (None if np.isinf(median) else median)


def test_relief_duration_hand_cases(make_cohort) -> None:
    """Events at 20 (lost) and 15 (booster first); censored at 40 and 0; others excluded."""
    d = relief_duration(make_cohort(*RELIEF_CASES))
    assert d is not None
    assert (d.curve.n, d.events, d.censored) == (4, 2, 2)
    # S = 1 to day 15 (the censoring at 0 leaves 3 at risk), 2/3 from 15, 1/3 from 20,
    # flat to the last follow-up at 40.
    assert_array_equal(d.curve.time, [0.0, 15.0, 20.0, 40.0])
    assert_allclose(d.curve.survival, [1.0, 2 / 3, 1 / 3, 1 / 3], rtol=1e-12)
    assert d.curve.median() == 20.0


def test_relief_duration_matches_lifelines(make_cohort) -> None:
    """Survival at the event times and the median equal lifelines' fit of the hand data."""
    d = relief_duration(make_cohort(*RELIEF_CASES))
    assert d is not None
    _check_against_lifelines(d, RELIEF_DAYS, RELIEF_EVENTS)


def test_relief_event_is_the_earlier_of_loss_and_booster(make_cohort) -> None:
    """Relief lost at 12 before a booster at 30 is an event at 12; a tie counts once."""
    d = relief_duration(
        make_cohort(
            {"nrs_end": 3.0, "relief_lost_day": 12.0, "booster_day": 30.0},
            {"nrs_end": 3.0, "relief_lost_day": 25.0, "booster_day": 25.0},
            {"nrs_end": 3.0, "last_follow_up_day": 50.0},
        )
    )
    assert d is not None
    assert (d.events, d.censored) == (2, 1)
    assert_array_equal(d.curve.time, [0.0, 12.0, 25.0, 50.0])
    assert_allclose(d.curve.survival, [1.0, 2 / 3, 1 / 3, 1 / 3], rtol=1e-12)


def test_relief_duration_none_without_responders(make_cohort) -> None:
    """No responder at the end of the series (or no course at all): no curve, None."""
    table = make_cohort({"nrs_end": 7.0}, {"nrs_end": None}, {"nrs_end": 2.0, "sessions_given": 0})
    assert relief_duration(table) is None
    assert relief_duration(table.head(0)) is None


BOOSTER_CASES = [
    {"booster_day": 10.0, "observed_day": 90.0},  # event at 10
    {"booster_day": 45.0, "observed_day": 90.0},  # event at 45
    {"observed_day": 60.0},  # no booster: censored at the analysis time, 60
    {"observed_day": None},  # no analysis time: censored at 0
    {"booster_day": 5.0, "sessions_given": 0},  # never treated: excluded
]
BOOSTER_DAYS = np.array([10.0, 45.0, 60.0, 0.0])
BOOSTER_EVENTS = np.array([True, True, False, False])


def test_time_to_booster_censors_at_observed_day(make_cohort) -> None:
    """Events at 10 and 45; censored at observed_day 60 and at 0; untreated excluded."""
    d = time_to_booster(make_cohort(*BOOSTER_CASES))
    assert d is not None
    assert (d.curve.n, d.events, d.censored) == (4, 2, 2)
    assert_array_equal(d.curve.time, [0.0, 10.0, 45.0, 60.0])
    # 3 at risk at 10 (the 0 censoring left), 2 at 45.
    assert_allclose(d.curve.survival, [1.0, 2 / 3, 1 / 3, 1 / 3], rtol=1e-12)
    _check_against_lifelines(d, BOOSTER_DAYS, BOOSTER_EVENTS)


def test_time_to_booster_counts_non_responders(make_cohort) -> None:
    """Every treated course is at risk of a booster, responder or not."""
    d = time_to_booster(make_cohort({"nrs_end": 8.0, "booster_day": 7.0}, {"nrs_end": 2.0}))
    assert d is not None
    assert (d.curve.n, d.events) == (2, 1)


def test_time_to_booster_none_without_a_treated_course(make_cohort) -> None:
    """No course with a session given: None."""
    assert time_to_booster(make_cohort({"sessions_given": 0, "booster_day": 3.0})) is None
    assert time_to_booster(make_cohort().head(0)) is None


def test_no_event_has_no_median(make_cohort) -> None:
    """All censored: survival stays 1 and the median is None (lifelines: infinity)."""
    d = time_to_booster(make_cohort({"observed_day": 30.0}, {"observed_day": 50.0}))
    assert d is not None
    assert d.events == 0
    assert_allclose(d.curve.survival, 1.0)
    assert d.curve.median() is None
    assert np.isinf(
        _lifelines(np.array([30.0, 50.0]), np.array([False, False])).median_survival_time_
    )


def test_as_dict(make_cohort) -> None:
    """Durability.as_dict carries counts, median, the curve and its bounds as lists."""
    d = relief_duration(make_cohort(*RELIEF_CASES))
    assert d is not None
    out = d.as_dict()
    assert (out["n"], out["events"], out["censored"], out["median_days"]) == (4, 2, 2, 20.0)
    assert out["time_days"] == [0.0, 15.0, 20.0, 40.0]
    assert len(out["survival"]) == len(out["ci_low"]) == len(out["ci_high"]) == 4
    assert out["at_risk"] == [4.0, 3.0, 2.0, 1.0]
    assert all(
        lo <= s <= hi
        for lo, s, hi in zip(out["ci_low"], out["survival"], out["ci_high"], strict=True)
    )
    assert out["what"].startswith("relief duration")


def test_exact_30_percent_responder_is_followed(make_cohort) -> None:
    """Baseline 6 -> 4.2 at the end (exactly 30%) is a responder whose relief is followed."""
    d = relief_duration(make_cohort({"baseline_nrs": 6.0, "nrs_end": 4.2, "relief_lost_day": 9.0}))
    assert d is not None
    assert d.events == 1
