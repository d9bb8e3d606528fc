"""Tests of the whole cohort analysis (ketapain.analytics.report): counts, filters,
breakdowns, derived measures and the JSON contract of ``as_dict``.

The twelve hand-written courses below (ten patients, eleven treated) are annotated with
what each contributes; expected figures are counted from those annotations.
"""

from __future__ import annotations

import json
import math
from datetime import date

import numpy as np
import pytest
from numpy.testing import assert_allclose

from ketapain.analytics.cohort import CohortFilter
from ketapain.analytics.proportions import Proportion
from ketapain.analytics.report import CohortAnalysis, analyse
from ketapain.analytics.responders import GROUPINGS
from ketapain.errors import InvalidValueError

D = date
# Responder at the end: nrs_end <= 0.7 x baseline. "Lasted": relief kept beyond day 21.
COURSES = [
    # c0 responder, relief lost at 30: lasted
    {"patient_key": "p1", "start_date": D(2024, 1, 10), "baseline_nrs": 8.0, "nrs_end": 3.0,
     "nrs_week_4": 4.0, "relief_lost_day": 30.0, "last_follow_up_day": 60.0,
     "mme_before": 40.0, "mme_after": 20.0},
    # c1 the same patient's second course: non-responder (6 > 4.9)
    {"patient_key": "p1", "start_date": D(2024, 6, 1), "baseline_nrs": 7.0, "nrs_end": 6.0,
     "nrs_week_4": 6.0},
    # c2 responder, booster at 14: not lasted
    {"patient_key": "p2", "protocol": "inpatient", "start_date": D(2024, 2, 1),
     "baseline_nrs": 9.0, "nrs_end": 2.0, "booster_day": 14.0, "last_follow_up_day": 14.0},
    # c3 non-responder (5 > 4.2)
    {"patient_key": "p3", "diagnosis": "fibromyalgia", "start_date": D(2024, 3, 1),
     "baseline_nrs": 6.0, "nrs_end": 5.0},
    # c4 responder still relieved at its last follow-up, day 28: lasted
    {"patient_key": "p4", "diagnosis": "neuropathic", "start_date": D(2024, 4, 1),
     "baseline_nrs": 8.0, "nrs_end": 4.0, "last_follow_up_day": 28.0},
    # c5 responder (exactly 30%) without follow-up: unknown at day 21
    {"patient_key": "p5", "protocol": "inpatient", "start_date": D(2024, 5, 1),
     "baseline_nrs": 8.0, "nrs_end": 5.6},
    # c6 cancelled before any session: not treated
    {"patient_key": "p6", "start_date": D(2024, 7, 1), "sessions_given": 0,
     "status": "cancelled"},
    # c7 treated, no NRS charted at the end: missing
    {"patient_key": "p7", "start_date": D(2024, 8, 1), "baseline_nrs": 5.0, "nrs_end": None},
    # c8 non-responder (7.5 > 7)
    {"patient_key": "p8", "protocol": "inpatient", "diagnosis": "fibromyalgia",
     "start_date": D(2024, 9, 1), "baseline_nrs": 10.0, "nrs_end": 7.5, "nrs_week_4": 8.0},
    # c9 responder, relief lost on day 21 exactly: not beyond 3 weeks
    {"patient_key": "p9", "start_date": D(2024, 10, 1), "baseline_nrs": 8.0, "nrs_end": 1.0,
     "relief_lost_day": 21.0, "last_follow_up_day": 21.0, "side_effects": 2,
     "significant_side_effects": 1, "sessions_with_side_effects": 1},
    # c10 responder, relief lost at 50: lasted
    {"patient_key": "p10", "start_date": D(2023, 12, 1), "baseline_nrs": 7.0, "nrs_end": 3.0,
     "relief_lost_day": 50.0, "last_follow_up_day": 70.0},
    # c11 p2's second course: responder, last follow-up day 10: unknown at day 21
    {"patient_key": "p2", "protocol": "inpatient", "start_date": D(2024, 11, 1),
     "baseline_nrs": 9.0, "nrs_end": 4.0, "last_follow_up_day": 10.0},
]  # fmt: skip
TOP_LEVEL = {
    "filter",
    "courses",
    "patients",
    "treated_courses",
    "responders",
    "responders_by",
    "relief_duration",
    "time_to_booster",
    "opioids",
    "safety",
    "calibration",
    "trajectory",
    "measures",
    "literature",
}


@pytest.fixture
def analysis(make_cohort) -> CohortAnalysis:
    """The analysis of the twelve courses, unfiltered."""
    return analyse(make_cohort(*COURSES))


def test_counts(analysis: CohortAnalysis) -> None:
    """12 courses of 10 patients; 11 treated (c6 was cancelled)."""
    assert (analysis.courses, analysis.patients, analysis.treated) == (12, 10, 11)
    assert analysis.table.height == 12
    assert analysis.filter == CohortFilter()


def test_responder_accessor(analysis: CohortAnalysis) -> None:
    """End of series, >= 30%: c0 c2 c4 c5 c9 c10 c11 of the 10 with an NRS (c7 missing)."""
    assert analysis.responder("end", "reduction_30") == Proportion(7, 10)
    # >= 2 points adds c8 (a 2.5-point fall of 10); c1 and c3 fell by 1: 8 of 10.
    assert analysis.responder("end", "points_2") == Proportion(8, 10)
    # week 4: c0 (4 <= 5.6) of c0, c1, c8.
    assert analysis.responder("week_4", "reduction_30") == Proportion(1, 3)


def test_responders_by_every_grouping(analysis: CohortAnalysis) -> None:
    """Every breakdown of GROUPINGS is there, and its groups add up to the overall n."""
    assert set(analysis.responders_by) == set(GROUPINGS)
    for rows in analysis.responders_by.values():
        end = [r.rate for r in rows if (r.timepoint, r.criterion.name) == ("end", "reduction_30")]
        assert sum(p.n for p in end) == 10
        assert sum(p.count for p in end) == 7
    protocols = {r.group for r in analysis.responders_by["protocol"]}
    assert protocols == {"inpatient", "outpatient"}


def test_measures_by_hand(analysis: CohortAnalysis) -> None:
    """Relief beyond 3 weeks: c0 c4 c10 of 8 (c5, c11 unknown); mean fall of the 10."""
    m = analysis.measures
    assert m["relief_beyond_3_weeks"] == Proportion(3, 8)
    assert m["responders_end_30"] == Proportion(7, 10)
    falls = np.array([5.0, 1.0, 7.0, 1.0, 4.0, 2.4, 2.5, 7.0, 4.0, 5.0])
    assert_allclose(m["mean_drop_end"].mean, falls.mean(), rtol=1e-12)
    assert m["mean_drop_end"].n == 10
    assert m["opioid_reduced_20"] == Proportion(1, 1)
    assert m["significant_side_effects"] == Proportion(1, 9)  # c9's patient of 9 treated


def test_durability_and_safety_parts(analysis: CohortAnalysis) -> None:
    """Relief curve over the 7 responders (4 events); booster curve over 11 treated (1)."""
    assert analysis.relief is not None and analysis.booster is not None
    assert (analysis.relief.curve.n, analysis.relief.events) == (7, 4)
    assert (analysis.booster.curve.n, analysis.booster.events) == (11, 1)
    assert analysis.safety.patients == 9  # p6 never treated; p1 and p2 counted once
    assert analysis.opioids.on_opioids == 1


def test_filter_by_protocol(make_cohort) -> None:
    """Inpatient only: c2 c5 c8 c11 of patients p2 p5 p8; the filter is described."""
    f = CohortFilter(protocols=("inpatient",))
    a = analyse(make_cohort(*COURSES), f)
    assert (a.courses, a.patients, a.treated) == (4, 3, 4)
    assert a.filter is f
    assert a.as_dict()["filter"] == "protocol inpatient"
    assert a.responder("end", "reduction_30") == Proportion(3, 4)


def test_filter_by_dates(make_cohort) -> None:
    """Courses from 2024-06-01 to 2024-11-01 inclusive: c1 c6 c7 c8 c9 c11; c6 untreated."""
    f = CohortFilter(start_from=D(2024, 6, 1), start_to=D(2024, 11, 1))
    a = analyse(make_cohort(*COURSES), f)
    assert sorted(a.table.get_column("course_key").to_list()) == sorted(
        ["c1", "c6", "c7", "c8", "c9", "c11"]
    )
    assert (a.courses, a.treated) == (6, 5)


def test_analyse_checks_the_table(make_cohort) -> None:
    """An invalid table is refused before any figure is computed, naming the column."""
    with pytest.raises(InvalidValueError) as err:
        analyse(make_cohort({"baseline_nrs": 11.0}))
    assert err.value.field == "baseline_nrs"


def test_as_dict_has_the_documented_keys_and_is_json(analysis: CohortAnalysis) -> None:
    """as_dict has exactly the documented top-level keys and survives json.dumps/loads."""
    d = analysis.as_dict()
    assert set(d) == TOP_LEVEL
    back = json.loads(json.dumps(d))
    assert set(back) == TOP_LEVEL
    assert (back["courses"], back["patients"], back["treated_courses"]) == (12, 10, 11)
    assert set(back["responders_by"]) == set(GROUPINGS)
    assert back["relief_duration"]["n"] == 7
    assert len(back["responders"]) == 9
    assert set(back["measures"]) >= {c["literature"]["measure"] for c in back["literature"]}


def test_per_course_calibration(analysis: CohortAnalysis) -> None:
    """Without forecasts, per-course calibration lists only the observed values."""
    pc = analysis.per_course_calibration()
    assert pc.get_column("predicted_nrs").null_count() == pc.height
    assert pc.filter(pc["anchor"] == "end").height == 10  # every course with an end NRS


def test_empty_table(make_cohort) -> None:
    """No course: zero counts, no curves, and as_dict still has every key."""
    a = analyse(make_cohort().head(0))
    assert (a.courses, a.patients, a.treated) == (0, 0, 0)
    assert a.relief is None and a.booster is None
    assert all(rows == [] for rows in a.responders_by.values())
    d = a.as_dict()
    assert set(d) == TOP_LEVEL
    assert d["relief_duration"] is None and d["time_to_booster"] is None
    assert math.isnan(a.responder("end", "reduction_30").rate)


def test_as_dict_is_strict_json(analysis: CohortAnalysis) -> None:
    """The analysis JSON must be standard JSON: json.dumps(..., allow_nan=False) succeeds."""
    json.dumps(analysis.as_dict(), allow_nan=False)


def test_responder_accessor_refuses_unknown_names(analysis: CohortAnalysis) -> None:
    """An unknown time point is bad input: InvalidValueError, not a bare StopIteration."""
    with pytest.raises(InvalidValueError):
        analysis.responder("week_8", "reduction_30")
