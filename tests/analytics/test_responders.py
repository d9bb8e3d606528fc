"""Tests of responder rates (ketapain.analytics.responders).

Expected counts come from the definitions in the module's docstring: at a time point a
course responds by >= 30% when NRS <= 0.7 x baseline, by >= 50% when NRS <= 0.5 x
baseline, by >= 2 points when NRS <= baseline - 2; the denominator is the courses with a
session given and an NRS at that time point.
"""

from __future__ import annotations

import polars as pl
import pytest
from numpy.testing import assert_allclose

from ketapain.analytics.proportions import Proportion
from ketapain.analytics.responders import (
    CRITERIA,
    GROUPINGS,
    TIMEPOINTS,
    ResponderRate,
    responder_rates,
    with_bands,
)
from ketapain.errors import InvalidValueError

Key = tuple[str | None, str, str]


def _rates(rows: list[ResponderRate]) -> dict[Key, ResponderRate]:
    out = {(r.group, r.timepoint, r.criterion.name): r for r in rows}
    assert len(out) == len(rows)  # one row per group, time point and criterion
    return out


def _rate(table: pl.DataFrame, timepoint: str, criterion: str) -> Proportion:
    return _rates(responder_rates(table))[(None, timepoint, criterion)].rate


def test_every_timepoint_and_criterion_has_a_row(make_cohort) -> None:
    """Overall: 3 time points x 3 criteria, group None, in TIMEPOINTS then CRITERIA order."""
    rows = responder_rates(make_cohort({"nrs_end": 4.0}))
    assert [(r.timepoint, r.criterion.name) for r in rows] == [
        (tp, c.name) for tp in TIMEPOINTS for c in CRITERIA
    ]
    assert {r.group for r in rows} == {None}


def test_criteria_definitions() -> None:
    """The three criteria are 30% and 50% falls and a 2-point fall, each with a source."""
    by_name = {c.name: c for c in CRITERIA}
    assert by_name["reduction_30"].fraction == 0.30
    assert by_name["reduction_50"].fraction == 0.50
    assert by_name["points_2"].points == 2.0
    assert all(c.source for c in CRITERIA)
    assert TIMEPOINTS == {"end": "nrs_end", "week_4": "nrs_week_4", "week_12": "nrs_week_12"}


def test_exact_30_percent_boundary_counts(make_cohort) -> None:
    """Baseline 8, NRS 5.6: exactly 30% counts; not 50%; a 2.4-point fall is >= 2 points."""
    table = make_cohort({"baseline_nrs": 8.0, "nrs_end": 5.6})
    assert _rate(table, "end", "reduction_30") == Proportion(1, 1)
    assert _rate(table, "end", "reduction_50") == Proportion(0, 1)
    assert _rate(table, "end", "points_2") == Proportion(1, 1)


def test_exact_50_percent_and_2_point_boundaries_count(make_cohort) -> None:
    """Baseline 4: NRS 3 (25%, 1 point) responds by no criterion; NRS 2 by all three."""
    table = make_cohort(
        {"baseline_nrs": 4.0, "nrs_end": 3.0}, {"baseline_nrs": 4.0, "nrs_end": 2.0}
    )
    for criterion in ("reduction_30", "reduction_50", "points_2"):
        assert _rate(table, "end", criterion) == Proportion(1, 2)
    only_3 = table.filter(pl.col("nrs_end") == 3.0)
    assert all(_rate(only_3, "end", c.name).count == 0 for c in CRITERIA)


def test_two_points_without_thirty_percent(make_cohort) -> None:
    """Baseline 10 -> 7.5: a 2.5-point fall (2-point responder) but only 25% (not 30%)."""
    table = make_cohort({"baseline_nrs": 10.0, "nrs_end": 7.5})
    assert _rate(table, "end", "points_2") == Proportion(1, 1)
    assert _rate(table, "end", "reduction_30") == Proportion(0, 1)


def test_thirty_percent_without_two_points(make_cohort) -> None:
    """Baseline 3 -> 2: a 33% fall (30% responder) of only 1 point (not a 2-point responder)."""
    table = make_cohort({"baseline_nrs": 3.0, "nrs_end": 2.0})
    assert _rate(table, "end", "reduction_30") == Proportion(1, 1)
    assert _rate(table, "end", "points_2") == Proportion(0, 1)


def test_missing_nrs_is_missing_not_a_non_responder(make_cohort) -> None:
    """A null week-4 NRS leaves the denominator and is counted as missing beside the rate."""
    table = make_cohort(
        {"nrs_end": 3.0, "nrs_week_4": 4.0},
        {"nrs_end": 3.0, "nrs_week_4": None},
        {"nrs_end": 7.0, "nrs_week_4": 7.0},
    )
    rates = _rates(responder_rates(table))
    week_4 = rates[(None, "week_4", "reduction_30")]
    assert week_4.rate == Proportion(1, 2)
    assert week_4.missing == 1
    end = rates[(None, "end", "reduction_30")]
    assert (end.rate, end.missing) == (Proportion(2, 3), 0)
    week_12 = rates[(None, "week_12", "reduction_30")]
    assert (week_12.rate, week_12.missing) == (Proportion(0, 0), 3)


def test_courses_without_a_session_are_excluded(make_cohort) -> None:
    """A course with sessions_given == 0 is in no numerator, denominator or missing count."""
    table = make_cohort(
        {"nrs_end": 3.0},
        {"nrs_end": 3.0, "sessions_given": 0, "status": "cancelled"},
        {"nrs_end": None, "sessions_given": 0, "status": "planned"},
    )
    r = _rates(responder_rates(table))[(None, "end", "reduction_30")]
    assert (r.rate, r.missing) == (Proportion(1, 1), 0)


def test_a_course_stopped_after_one_session_counts(make_cohort) -> None:
    """A course stopped early with one session given counts, its NRS after that session."""
    table = make_cohort({"nrs_end": 4.0, "sessions_given": 1, "status": "stopped_early"})
    assert _rate(table, "end", "reduction_50") == Proportion(1, 1)


def test_as_dict_carries_the_wilson_bounds_and_source(make_cohort) -> None:
    """ResponderRate.as_dict: criterion name and label, rate and bounds, missing, source."""
    table = make_cohort({"nrs_end": 3.0}, {"nrs_end": 7.0}, {"nrs_end": None})
    d = _rates(responder_rates(table))[(None, "end", "reduction_30")].as_dict()
    assert d["criterion"] == "reduction_30"
    assert d["label"] == ">= 30% reduction"
    assert (d["count"], d["n"], d["missing"], d["group"]) == (1, 2, 1, None)
    assert_allclose(d["rate"], 0.5)
    assert d["ci_low"] < 0.5 < d["ci_high"]
    assert "Farrar" in d["source"]


PROTOCOL_CASES = [
    {"protocol": "outpatient", "nrs_end": 3.0, "nrs_week_4": 6.0},
    {"protocol": "outpatient", "nrs_end": 6.0, "nrs_week_4": None},
    {"protocol": "inpatient", "nrs_end": 2.0, "nrs_week_4": 3.0, "nrs_week_12": 5.5},
    {"protocol": "inpatient", "nrs_end": 8.0, "nrs_week_4": 8.0},
    {"protocol": "inpatient", "nrs_end": 5.0, "nrs_week_4": 6.0, "nrs_week_12": 4.0},
    {"protocol": "test_only", "nrs_end": None, "sessions_given": 0},
]


def test_by_protocol_groups_sum_to_the_overall(make_cohort) -> None:
    """Per-protocol counts, n and missing add up to the overall figures at every cell."""
    table = make_cohort(*PROTOCOL_CASES)
    overall = _rates(responder_rates(table))
    by = responder_rates(table, by="protocol")
    groups = sorted({r.group for r in by if r.group is not None})
    assert groups == ["inpatient", "outpatient"]  # the untreated protocol has no course
    per = _rates(by)
    for tp in TIMEPOINTS:
        for c in CRITERIA:
            cells = [per[(g, tp, c.name)] for g in groups]
            whole = overall[(None, tp, c.name)]
            assert sum(x.rate.count for x in cells) == whole.rate.count
            assert sum(x.rate.n for x in cells) == whole.rate.n
            assert sum(x.missing for x in cells) == whole.missing


def test_by_protocol_hand_counts(make_cohort) -> None:
    """Inpatient at week 4: 3 -> yes, 8 -> no, 6 -> no of baseline 8 by 30%: 1 of 3."""
    per = _rates(responder_rates(make_cohort(*PROTOCOL_CASES), by="protocol"))
    assert per[("inpatient", "week_4", "reduction_30")].rate == Proportion(1, 3)
    assert per[("outpatient", "week_4", "reduction_30")].rate == Proportion(0, 1)
    assert per[("outpatient", "week_4", "reduction_30")].missing == 1
    assert per[("inpatient", "week_12", "points_2")].rate == Proportion(2, 2)


@pytest.mark.parametrize("by", list(GROUPINGS))
def test_every_grouping_partitions_the_courses(make_cohort, by: str) -> None:
    """For each breakdown, the groups' denominators add up to the overall denominator."""
    table = make_cohort(
        {"nrs_end": 3.0, "sex": "male", "age_y": 70, "mean_rate_mg_per_kg_h": 0.05},
        {"nrs_end": 5.0, "diagnosis": "fibromyalgia", "mean_rate_mg_per_kg_h": None},
        {"nrs_end": 6.0, "protocol": "inpatient", "age_y": None},
        {"nrs_end": 1.0, "mean_rate_mg_per_kg_h": 0.6},
    )
    whole = _rates(responder_rates(table))[(None, "end", "reduction_30")].rate
    cells = [
        r.rate
        for r in responder_rates(table, by=by)
        if (r.timepoint, r.criterion.name) == ("end", "reduction_30")
    ]
    assert sum(p.n for p in cells) == whole.n == 4
    assert sum(p.count for p in cells) == whole.count


@pytest.mark.parametrize(
    ("rate", "band"),
    [
        (0.05, "< 0.1 mg/kg/h"),
        (0.0999, "< 0.1 mg/kg/h"),
        (0.1, "0.1-0.3 mg/kg/h"),
        (0.2999, "0.1-0.3 mg/kg/h"),
        (0.3, "0.3-0.5 mg/kg/h"),
        (0.5, ">= 0.5 mg/kg/h"),
        (1.2, ">= 0.5 mg/kg/h"),
        (None, "not given"),
    ],
)
def test_dose_band_labels(make_cohort, rate: float | None, band: str) -> None:
    """Dose bands are closed below and open above: 0.1, 0.3 and 0.5 open their band."""
    out = with_bands(make_cohort({"mean_rate_mg_per_kg_h": rate}))
    assert out.get_column("dose_band").to_list() == [band]


@pytest.mark.parametrize(
    ("age", "band"),
    [(18, "< 65 y"), (64, "< 65 y"), (65, ">= 65 y"), (90, ">= 65 y"), (None, "not given")],
)
def test_age_band_labels(make_cohort, age: int | None, band: str) -> None:
    """Age bands split at 65 (ICH E7): 64 is below, 65 is at or above; null is not given."""
    out = with_bands(make_cohort({"age_y": age}))
    assert out.get_column("age_band").to_list() == [band]


def test_with_bands_adds_two_columns(make_cohort) -> None:
    """with_bands keeps the table and adds dose_band and age_band as strings."""
    table = make_cohort({}, {})
    out = with_bands(table)
    assert out.columns == [*table.columns, "dose_band", "age_band"]
    assert out.schema["dose_band"] == pl.String
    assert out.schema["age_band"] == pl.String


def test_by_dose_band_groups(make_cohort) -> None:
    """by='dose_band' gives one group per band present, null rates in 'not given'."""
    table = make_cohort(
        {"nrs_end": 3.0, "mean_rate_mg_per_kg_h": 0.3},
        {"nrs_end": 7.0, "mean_rate_mg_per_kg_h": 0.45},
        {"nrs_end": 2.0, "mean_rate_mg_per_kg_h": None},
    )
    per = _rates(responder_rates(table, by="dose_band"))
    assert per[("0.3-0.5 mg/kg/h", "end", "reduction_30")].rate == Proportion(1, 2)
    assert per[("not given", "end", "reduction_30")].rate == Proportion(1, 1)


def test_unknown_grouping_is_refused(make_cohort) -> None:
    """An unknown breakdown raises InvalidValueError naming the field 'by' and the value."""
    with pytest.raises(InvalidValueError) as err:
        responder_rates(make_cohort({}), by="weight")
    assert err.value.field == "by"
    assert err.value.value == "weight"


def test_empty_table(make_cohort) -> None:
    """No course: nine overall rows of n 0; no group rows for a breakdown."""
    table = make_cohort().head(0)
    rows = responder_rates(table)
    assert len(rows) == 9
    assert all(r.rate.n == 0 and r.missing == 0 for r in rows)
    assert responder_rates(table, by="protocol") == []


def test_exact_30_percent_of_a_mean_nrs_counts(make_cohort) -> None:
    """Baseline 6, week-4 mean of 4, 4, 4, 5, 4 = 4.2: exactly a 30% fall, a responder."""
    week_4 = pl.Series([4.0, 4.0, 4.0, 5.0, 4.0]).mean()
    assert week_4 == 4.2
    table = make_cohort({"baseline_nrs": 6.0, "nrs_week_4": week_4})
    assert _rate(table, "week_4", "reduction_30") == Proportion(1, 1)
