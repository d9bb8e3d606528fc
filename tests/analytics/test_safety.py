"""Tests of the safety figures (ketapain.analytics.safety).

Per session: sums over the treated courses. Per patient: courses grouped by patient_key.
Liver tests: among patients with an ALT or AST checked. Alarm rates use the exact
Poisson interval (Garwood 1936) written out here with scipy's chi-square quantiles:

    lower = chi2.ppf(0.025, 2k) / 2 (0 when k = 0),  upper = chi2.ppf(0.975, 2k + 2) / 2

per session, times 100.
"""

from __future__ import annotations

import math

import pytest
from numpy.testing import assert_allclose
from scipy import stats

from ketapain.analytics.proportions import Proportion
from ketapain.analytics.safety import EventRate, safety

CASES = [
    # one patient, two courses: side effects only in the second, significant ones never
    {"patient_key": "pA", "sessions_given": 5, "sessions_with_side_effects": 0, "side_effects": 0},
    {
        "patient_key": "pA",
        "sessions_given": 3,
        "sessions_with_side_effects": 2,
        "side_effects": 3,
        "early_stops": 1,
        "alarms": 2,
        "lft_checked": True,
        "lft_elevated": True,
    },
    {
        "patient_key": "pB",
        "sessions_given": 4,
        "sessions_with_side_effects": 1,
        "side_effects": 1,
        "significant_side_effects": 1,
        "alarms": 3,
        "stop_alarms": 1,
        "lft_checked": True,
    },
    {"patient_key": "pC", "sessions_given": 6, "lft_checked": False, "lft_elevated": None},
    {
        "patient_key": "pD",
        "sessions_given": 2,
        "sessions_with_side_effects": 2,
        "side_effects": 4,
        "significant_side_effects": 2,
        "early_stops": 2,
        "lft_checked": True,
        "lft_elevated": True,
        "lft_over_3x_uln": True,
    },
    # never treated: excluded from every figure, side effects and liver tests included
    {
        "patient_key": "pE",
        "sessions_given": 0,
        "side_effects": 1,
        "lft_checked": True,
        "lft_elevated": True,
    },
]


def test_per_session_figures(make_cohort) -> None:
    """Sessions with side effects and early stops are shares of all 20 sessions given."""
    s = safety(make_cohort(*CASES))
    assert s.sessions == 5 + 3 + 4 + 6 + 2
    assert s.sessions_with_side_effects == Proportion(0 + 2 + 1 + 0 + 2, 20)
    assert s.early_stops == Proportion(3, 20)
    assert s.alarms == EventRate(events=5, sessions=20)
    assert s.stop_alarms == EventRate(events=1, sessions=20)


def test_per_patient_figures_group_courses(make_cohort) -> None:
    """pA's two courses make one patient with a side effect; 4 treated patients in all."""
    s = safety(make_cohort(*CASES))
    assert s.patients == 4
    assert s.patients_with_side_effects == Proportion(3, 4)  # pA, pB, pD
    assert s.patients_with_significant_side_effects == Proportion(2, 4)  # pB, pD


def test_liver_tests_among_checked_patients_only(make_cohort) -> None:
    """pA, pB and pD were checked (pC not): elevated 2 of 3, over 3 x ULN 1 of 3."""
    s = safety(make_cohort(*CASES))
    assert s.lft_checked_patients == 3
    assert s.lft_elevated == Proportion(2, 3)
    assert s.lft_over_3x_uln == Proportion(1, 3)


def test_one_checked_course_makes_a_checked_patient(make_cohort) -> None:
    """A patient checked in one course and not the other counts once, as checked."""
    s = safety(
        make_cohort(
            {"patient_key": "p", "lft_checked": False},
            {"patient_key": "p", "lft_checked": True, "lft_elevated": False},
        )
    )
    assert (s.patients, s.lft_checked_patients) == (1, 1)
    assert s.lft_elevated == Proportion(0, 1)


@pytest.mark.parametrize(("events", "sessions"), [(5, 20), (1, 20), (12, 340), (40, 37)])
def test_event_rate_exact_poisson(events: int, sessions: int) -> None:
    """Per 100 sessions with Garwood's chi-square bounds; rtol 1e-12."""
    d = EventRate(events=events, sessions=sessions).as_dict()
    scale = 100 / sessions
    assert_allclose(d["per_100"], events * scale, rtol=1e-12)
    assert_allclose(d["ci_low"], stats.chi2.ppf(0.025, 2 * events) / 2 * scale, rtol=1e-12)
    assert_allclose(d["ci_high"], stats.chi2.ppf(0.975, 2 * events + 2) / 2 * scale, rtol=1e-12)
    assert d["ci_low"] <= d["per_100"] <= d["ci_high"]


def test_event_rate_without_events() -> None:
    """No alarm: rate 0, lower bound exactly 0, upper -ln(0.025) = 3.689 events per 20."""
    d = EventRate(events=0, sessions=20).as_dict()
    assert (d["per_100"], d["ci_low"]) == (0.0, 0.0)
    # chi-square with 2 degrees of freedom is exponential with mean 2: its 0.975 quantile
    # halved is -ln(0.025).
    assert_allclose(d["ci_high"], -math.log(0.025) * 100 / 20, rtol=1e-12)


def test_event_rate_without_sessions() -> None:
    """No session: no rate and no bounds (None), the counts kept."""
    assert EventRate(events=0, sessions=0).as_dict() == {
        "events": 0,
        "sessions": 0,
        "per_100": None,
        "ci_low": None,
        "ci_high": None,
    }


def test_empty_table(make_cohort) -> None:
    """No course (or none treated): zero sessions and patients, n 0 shares."""
    for table in (make_cohort().head(0), make_cohort({"sessions_given": 0, "side_effects": 2})):
        s = safety(table)
        assert (s.sessions, s.patients, s.lft_checked_patients) == (0, 0, 0)
        assert s.sessions_with_side_effects == Proportion(0, 0)
        assert s.patients_with_side_effects == Proportion(0, 0)
        assert s.lft_elevated == Proportion(0, 0)
        assert s.alarms.as_dict()["per_100"] is None


def test_as_dict_keys(make_cohort) -> None:
    """as_dict names every figure; the alarm rates per 100 sessions."""
    d = safety(make_cohort(*CASES)).as_dict()
    assert d["sessions"] == 20
    assert d["patients_with_significant_side_effects"]["count"] == 2
    assert_allclose(d["alarms_per_100_sessions"]["per_100"], 25.0)
    assert d["lft_checked_patients"] == 3
