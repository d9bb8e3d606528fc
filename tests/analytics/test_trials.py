"""Tests of running and summarising virtual trials (ketapain.analytics.trials)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats

from ketapain.analytics.survival import kaplan_meier
from ketapain.analytics.trials import Proportion, TrialResult, run_trial, wilson_interval
from ketapain.errors import InvalidValueError
from ketapain.pharmacology.models import get_model
from ketapain.pharmacology.reference_trials import sigtermans_2009
from ketapain.pharmacology.schedules import Infusion, Schedule
from ketapain.pharmacology.trial import Arm, TrialDesign, chunk_count, simulate_chunk

REPORT_WEEKS = (1, 4, 12)


@pytest.fixture(scope="module")
def small_design() -> TrialDesign:
    """Sigtermans 2009, 150 per arm in chunks of 64 (3 chunks, the last one partial)."""
    return sigtermans_2009(n_per_arm=150, seed=21, chunk_size=64, report_weeks=REPORT_WEEKS)


@pytest.fixture(scope="module")
def small_result(small_design: TrialDesign) -> TrialResult:
    """The small design run inline."""
    return run_trial(small_design, scheduler="inline")


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.277532799862889),
        (10, 10, 0.722467200137111, 1.0),
        (5, 10, 0.236593090512564, 0.763406909487436),
        (1, 3, 0.061491944720396, 0.792340399197952),
    ],
)
def test_wilson_interval_hand_values(successes: int, n: int, low: float, high: float) -> None:
    """Wilson 95% bounds equal values worked out in 30-digit decimal arithmetic; 1e-9.

    0/10 -> (0, 0.2775) and 5/10 -> (0.2366, 0.7634) are also Newcombe 1998's table values.
    """
    lo, hi = wilson_interval(successes, n)
    assert lo == pytest.approx(low, abs=1e-9)
    assert hi == pytest.approx(high, abs=1e-9)


def test_wilson_interval_empty_sample() -> None:
    """With n = 0 the interval is undefined: (nan, nan)."""
    lo, hi = wilson_interval(0, 0)
    assert np.isnan(lo) and np.isnan(hi)


def test_proportion_as_dict() -> None:
    """as_dict carries the count, n, rate and the Wilson bounds of the same count (exact)."""
    d = Proportion(5, 10).as_dict()
    lo, hi = wilson_interval(5, 10)
    assert d == {"rate": 0.5, "ci_low": lo, "ci_high": hi, "count": 5, "n": 10}
    assert np.isnan(Proportion(0, 0).rate)


def test_summary_responder_rates_match_patients(
    small_design: TrialDesign, small_result: TrialResult
) -> None:
    """Responder counts (>= 30% and >= 50% below baseline) and mean/SD match the per-patient NRS."""
    cols = small_result.patient_columns()
    for arm, s in zip(small_design.arms, small_result.summary(), strict=True):
        rows = cols["arm"] == arm.name
        base = cols["baseline_nrs"][rows]
        assert s.name == arm.name and s.n == small_design.n_per_arm
        assert [w.week for w in s.weeks] == list(REPORT_WEEKS)
        for w in s.weeks:
            score = cols[f"nrs_week_{w.week}"][rows]
            reduction = (base - score) / base
            assert w.responders_30.count == int(np.sum(reduction >= 0.3))
            assert w.responders_50.count == int(np.sum(reduction >= 0.5))
            assert 0 < w.responders_50.count <= w.responders_30.count < s.n
            assert w.responders_30.n == w.responders_50.n == s.n
            assert w.mean_nrs == pytest.approx(score.mean(), rel=1e-12)
            assert w.sd_nrs == pytest.approx(score.std(ddof=1), rel=1e-12)


def test_summary_p_values_only_against_placebo(small_result: TrialResult) -> None:
    """Only the drug arm has P values, equal to scipy's Welch test on the week's scores; 1e-12."""
    drug, placebo = small_result.summary()
    assert drug.placebo is False and placebo.placebo is True
    cols = small_result.patient_columns()
    for wd, wp in zip(drug.weeks, placebo.weeks, strict=True):
        assert wp.p_value_vs_placebo is None
        a = cols[f"nrs_week_{wd.week}"][cols["arm"] == "ketamine"]
        b = cols[f"nrs_week_{wd.week}"][cols["arm"] == "placebo"]
        expected = stats.ttest_ind(a, b, equal_var=False).pvalue
        assert wd.p_value_vs_placebo == pytest.approx(expected, rel=1e-12)


def test_no_p_values_without_placebo_arm() -> None:
    """A trial without a placebo arm reports no P values at all."""
    sched = Schedule.of(Infusion(start_h=9, duration_h=4, rate_mg_per_kg_h=0.3))
    model = get_model("flint-fanta-s")
    design = TrialDesign(
        arms=(
            Arm(name="low", schedule=sched, model=model),
            Arm(name="high", schedule=sched, model=model, dosing_weight_cap_kg=60.0),
        ),
        n_per_arm=20,
        seed=3,
        follow_up_weeks=2,
        report_weeks=(1, 2),
    )
    for arm in run_trial(design, scheduler="inline").summary():
        assert all(w.p_value_vs_placebo is None for w in arm.weeks)


def test_summary_trajectories(small_design: TrialDesign, small_result: TrialResult) -> None:
    """Daily curves have n_days + 1 points; mean and band equal numpy's on the NRS matrix; 1e-9."""
    n_points = small_design.n_days + 1
    for i, s in enumerate(small_result.summary()):
        nrs = small_result.nrs[small_result.arm_rows(i)].astype(float)
        for curve in (s.day, s.mean_nrs, s.ci_low, s.ci_high, s.p10, s.p90):
            assert curve.shape == (n_points,)
        assert_array_equal(s.day, np.arange(n_points, dtype=float))
        assert_allclose(s.mean_nrs, nrs.mean(axis=0), rtol=1e-9)
        half = 1.959963984540054 * nrs.std(axis=0, ddof=1) / np.sqrt(nrs.shape[0])
        assert_allclose(s.ci_high - s.mean_nrs, half, rtol=1e-9, atol=1e-12)
        assert_allclose(s.mean_nrs - s.ci_low, half, rtol=1e-9, atol=1e-12)
        assert np.all(s.p10 <= s.p90)


def test_summary_relief_is_km_of_relief_days(small_result: TrialResult) -> None:
    """Each arm's relief curve is the KM estimate of its relief_days, censored where flagged."""
    p = small_result.patients
    for i, s in enumerate(small_result.summary()):
        rows = small_result.arm_rows(i)
        km = kaplan_meier(p["relief_days"][rows], ~p["relief_censored"][rows])
        assert_array_equal(s.relief.time, km.time)
        assert_array_equal(s.relief.survival, km.survival)
        assert s.relief.n == rows.size
        assert s.as_dict()["relief_duration_days"]["median"] == km.median()


def test_summary_side_effect_rates(small_result: TrialResult) -> None:
    """Side-effect counts, mean dose and median peak equal the per-patient columns (exact)."""
    p = small_result.patients
    drug, placebo = small_result.summary()
    for i, s in enumerate((drug, placebo)):
        rows = small_result.arm_rows(i)
        assert s.psychotomimetic.count == int(p["psychotomimetic"][rows].sum())
        assert s.bp_warning.count == int(p["bp_warning"][rows].sum())
        assert s.mean_total_dose_mg == pytest.approx(p["total_dose_mg"][rows].mean(), rel=1e-12)
    assert placebo.mean_total_dose_mg == 0.0 and placebo.median_peak_s_plasma_ng_per_ml == 0.0
    assert drug.mean_total_dose_mg > 0.0


def test_patient_columns(small_design: TrialDesign, small_result: TrialResult) -> None:
    """Export has arm names in (arm, patient) order, fixed columns and nrs_week_N of the matrix."""
    cols = small_result.patient_columns()
    n = small_design.n_per_arm
    assert_array_equal(cols["arm"], ["ketamine"] * n + ["placebo"] * n)
    for w in REPORT_WEEKS:
        assert_array_equal(cols[f"nrs_week_{w}"], small_result.nrs[:, 7 * w].astype(float))
    assert not any(k.startswith("nrs_week_") and int(k[9:]) not in REPORT_WEEKS for k in cols)
    assert_array_equal(cols["patient_id"], np.tile(np.arange(n), 2))
    assert {"weight_kg", "baseline_nrs", "relief_days", "total_dose_mg"} <= set(cols)
    assert all(v.shape[0] == 2 * n for v in cols.values())


def test_progress_called_once_per_chunk(small_design: TrialDesign) -> None:
    """Inline progress is called (1, total), ..., (total, total) with total = arms x chunks."""
    calls: list[tuple[int, int]] = []
    run_trial(small_design, scheduler="inline", progress=lambda d, t: calls.append((d, t)))
    total = len(small_design.arms) * chunk_count(small_design)
    assert total == 6
    assert calls == [(k, total) for k in range(1, total + 1)]


def test_result_does_not_depend_on_chunk_order(
    small_design: TrialDesign, small_result: TrialResult
) -> None:
    """Chunks simulated in reverse order and assembled give the inline result exactly."""
    tasks = [(a, c) for a in range(2) for c in range(chunk_count(small_design))]
    done = {t: simulate_chunk(small_design, *t) for t in reversed(tasks)}
    again = TrialResult.assemble(small_design, [done[t] for t in tasks])
    assert_array_equal(again.nrs, small_result.nrs)
    assert_array_equal(again.arm_index, small_result.arm_index)
    for key, value in small_result.patients.items():
        assert_array_equal(again.patients[key], value, err_msg=key)


@pytest.mark.parametrize("workers", [0, 513, True])
def test_bad_worker_count(small_design: TrialDesign, workers: int) -> None:
    """A local cluster needs 1 to 512 workers; the check comes before any cluster starts."""
    with pytest.raises(InvalidValueError) as info:
        run_trial(small_design, workers=workers)
    assert info.value.field == "workers"


@pytest.mark.slow
def test_dask_cluster_matches_inline() -> None:
    """Two worker processes give bit-identical per-patient arrays and NRS matrix to inline."""
    design = sigtermans_2009(n_per_arm=600, seed=5, chunk_size=200, report_weeks=(1, 12))
    inline = run_trial(design, scheduler="inline")
    calls: list[tuple[int, int]] = []
    dask = run_trial(design, workers=2, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(k, 6) for k in range(1, 7)]
    assert inline.nrs.dtype == dask.nrs.dtype == np.float32
    assert np.array_equal(inline.nrs, dask.nrs)
    assert np.array_equal(inline.arm_index, dask.arm_index)
    assert set(inline.patients) == set(dask.patients)
    for key, value in inline.patients.items():
        assert np.array_equal(value, dask.patients[key]), key
