"""Tests of forecast calibration (ketapain.analytics.calibration).

Synthetic cohorts whose observed NRS is a known function of the predicted one: equal
(bias 0, slope 1, intercept 0), shifted by one point (bias 1), or scaled; the bias, errors
and least-squares line are then known exactly.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from numpy.testing import assert_allclose

from ketapain.analytics.calibration import ANCHORS, calibration, per_course, trajectory
from ketapain.analytics.cohort import FOLLOW_UP_WEEKS, week_column

PREDICTED = np.array([2.0, 3.0, 3.5, 4.0, 5.0, 5.5, 6.0, 7.0, 7.5, 8.0, 1.0, 4.5])


def _cohort(make_cohort, observed_of) -> pl.DataFrame:
    """Every anchor predicted PREDICTED and observed observed_of(PREDICTED)."""
    return make_cohort(
        *(
            {
                "predicted_nrs_end": p,
                "predicted_nrs_week_4": p,
                "predicted_nrs_week_12": p,
                "nrs_end": float(observed_of(p)),
                "nrs_week_4": float(observed_of(p)),
                "nrs_week_12": float(observed_of(p)),
            }
            for p in PREDICTED
        )
    )


def test_perfectly_calibrated(make_cohort) -> None:
    """Observed == predicted: bias 0 (CI closed on 0), MAE and RMSE 0, slope 1, intercept 0."""
    anchors = calibration(_cohort(make_cohort, lambda p: p))
    assert [a.anchor for a in anchors] == list(ANCHORS)
    for a in anchors:
        assert a.n == PREDICTED.size
        assert_allclose((a.bias.mean, a.bias.ci_low, a.bias.ci_high), 0.0, atol=1e-12)
        assert (a.mae, a.rmse) == (0.0, 0.0)
        assert a.slope is not None and a.intercept is not None
        assert_allclose(a.slope, 1.0, rtol=1e-12)
        assert_allclose(a.intercept, 0.0, atol=1e-12)
        assert_allclose(a.predicted.mean, PREDICTED.mean(), rtol=1e-12)
        assert_allclose(a.observed.mean, PREDICTED.mean(), rtol=1e-12)


def test_one_point_worse_than_predicted(make_cohort) -> None:
    """Observed = predicted + 1: bias 1, MAE 1, RMSE 1, slope 1, intercept 1."""
    for a in calibration(_cohort(make_cohort, lambda p: p + 1.0)):
        assert_allclose(a.bias.mean, 1.0, rtol=1e-12)
        assert_allclose((a.mae, a.rmse), 1.0, rtol=1e-12)
        assert_allclose((a.slope, a.intercept), (1.0, 1.0), rtol=1e-12)


def test_scaled_observations(make_cohort) -> None:
    """Observed = 0.5 x predicted + 1: slope 0.5, intercept 1; bias, MAE, RMSE by hand."""
    a = calibration(_cohort(make_cohort, lambda p: 0.5 * p + 1.0))[0]
    r = (0.5 * PREDICTED + 1.0) - PREDICTED
    assert_allclose((a.slope, a.intercept), (0.5, 1.0), rtol=1e-12)
    assert_allclose(a.bias.mean, r.mean(), rtol=1e-12)
    assert_allclose(a.mae, np.abs(r).mean(), rtol=1e-12)
    assert_allclose(a.rmse, math.sqrt((r**2).mean()), rtol=1e-12)


def test_anchor_without_pairs(make_cohort) -> None:
    """An anchor with a prediction but no observation (or the reverse): n 0, metrics None."""
    table = make_cohort(
        {"predicted_nrs_end": 4.0, "nrs_end": 5.0, "predicted_nrs_week_4": 4.0},
        {"predicted_nrs_end": 6.0, "nrs_end": 6.0, "nrs_week_12": 3.0},
    )
    by = {a.anchor: a for a in calibration(table)}
    for name in ("week_4", "week_12"):
        a = by[name]
        assert a.n == 0
        assert (a.mae, a.rmse, a.slope, a.intercept) == (None, None, None, None)
        assert a.bins == ()
        assert math.isnan(a.bias.mean)
    end = by["end"]
    assert end.n == 2
    assert_allclose((end.bias.mean, end.mae), (0.5, 0.5))
    assert end.slope is None  # fewer than three pairs: no line


def test_no_line_when_predictions_do_not_vary(make_cohort) -> None:
    """Equal predictions leave the slope undefined: None rather than a fit."""
    table = make_cohort(*({"predicted_nrs_end": 5.0, "nrs_end": o} for o in (3.0, 5.0, 7.0)))
    a = calibration(table)[0]
    assert (a.slope, a.intercept) == (None, None)
    assert a.bias.mean == 0.0


def test_bins_are_fifths_of_the_prediction(make_cohort) -> None:
    """Five bins sorted by prediction, counts summing to n, each bin's means by hand."""
    a = calibration(_cohort(make_cohort, lambda p: p + 1.0))[0]
    assert len(a.bins) == 5
    assert sum(k for _, _, k in a.bins) == a.n == 12
    ordered = np.sort(PREDICTED)
    expected = [ordered[i] for i in np.array_split(np.arange(12), 5)]
    assert [k for _, _, k in a.bins] == [x.size for x in expected]
    assert_allclose([p for p, _, _ in a.bins], [x.mean() for x in expected], rtol=1e-12)
    assert_allclose([o for _, o, _ in a.bins], [x.mean() + 1.0 for x in expected], rtol=1e-12)
    means = [p for p, _, _ in a.bins]
    assert means == sorted(means)


def test_fewer_than_five_pairs_have_no_bins(make_cohort) -> None:
    """Four pairs cannot make fifths: no bins."""
    table = make_cohort(*({"predicted_nrs_end": p, "nrs_end": p} for p in (1.0, 2.0, 3.0, 4.0)))
    assert calibration(table)[0].bins == ()


def test_as_dict(make_cohort) -> None:
    """Anchor.as_dict carries n, the bias interval, the line and the bins as dicts."""
    d = calibration(_cohort(make_cohort, lambda p: p + 1.0))[1].as_dict()
    assert d["anchor"] == "week_4"
    assert d["n"] == 12
    assert_allclose(d["bias"]["mean"], 1.0)
    assert len(d["bins"]) == 5
    assert set(d["bins"][0]) == {"predicted", "observed", "n"}


def test_trajectory_points(make_cohort) -> None:
    """Baseline, the series end and weeks 1-12; forecasts only at the end, week 4, week 12."""
    table = make_cohort(
        {"baseline_nrs": 8.0, "nrs_end": 4.0, "nrs_week_1": 4.0, "nrs_week_4": 5.0,
         "predicted_nrs_end": 4.5, "predicted_nrs_week_4": 5.5, "predicted_nrs_week_12": 6.5},
        {"baseline_nrs": 6.0, "nrs_end": 2.0, "nrs_week_1": 3.0, "nrs_week_12": 6.0,
         "predicted_nrs_end": 3.5, "predicted_nrs_week_4": 4.5},
        {"baseline_nrs": 10.0, "nrs_end": 0.0, "sessions_given": 0},  # not treated: left out
    )  # fmt: skip
    points = trajectory(table)
    assert [p.label for p in points] == [
        "baseline",
        "end of series",
        *(f"week {w}" for w in FOLLOW_UP_WEEKS),
    ]
    assert [p.day for p in points] == [0.0, 0.0, *(7.0 * w for w in FOLLOW_UP_WEEKS)]
    with_forecast = [p.label for p in points if p.predicted is not None]
    assert with_forecast == ["end of series", "week 4", "week 12"]
    by = {p.label: p for p in points}
    assert (by["baseline"].observed.mean, by["baseline"].observed.n) == (7.0, 2)
    assert by["end of series"].observed.mean == 3.0
    assert by["end of series"].predicted.mean == 4.0
    assert (by["week 1"].observed.mean, by["week 4"].observed.n) == (3.5, 1)
    assert (by["week 12"].predicted.mean, by["week 12"].predicted.n) == (6.5, 1)
    assert by["week 7"].observed.n == 0
    d = by["week 4"].as_dict()
    assert d["label"] == "week 4"
    assert d["day"] == 28.0
    assert d["predicted"]["n"] == 2


def test_per_course_rows_and_residuals(make_cohort) -> None:
    """One row per course and anchor with either value; residual = observed - predicted."""
    table = make_cohort(
        {"predicted_nrs_end": 4.0, "nrs_end": 5.5, "predicted_nrs_week_4": 5.0},
        {"predicted_nrs_end": 6.0, "nrs_end": 3.0, "nrs_week_12": 2.0},
        {},
    )
    out = per_course(table)
    assert out.columns == [
        "course_key",
        "anchor",
        "day_after_series",
        "predicted_nrs",
        "observed_nrs",
        "residual_nrs",
    ]
    rows = {(r["course_key"], r["anchor"]): r for r in out.iter_rows(named=True)}
    assert set(rows) == {("c0", "end"), ("c1", "end"), ("c0", "week_4"), ("c1", "week_12")}
    assert rows[("c0", "end")]["residual_nrs"] == 1.5
    assert rows[("c1", "end")]["residual_nrs"] == -3.0
    assert rows[("c0", "week_4")]["observed_nrs"] is None
    assert rows[("c0", "week_4")]["residual_nrs"] is None
    assert rows[("c1", "week_12")]["day_after_series"] == 84.0
    assert rows[("c0", "week_4")]["day_after_series"] == 28.0


def test_empty_table(make_cohort) -> None:
    """No course: three anchors of n 0, fourteen trajectory points of n 0, no per-course rows."""
    empty = make_cohort().head(0)
    assert [a.n for a in calibration(empty)] == [0, 0, 0]
    points = trajectory(empty)
    assert len(points) == 2 + len(FOLLOW_UP_WEEKS)
    assert all(p.observed.n == 0 for p in points)
    assert per_course(empty).height == 0
    assert week_column(12) == "nrs_week_12"
