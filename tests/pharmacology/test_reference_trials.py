"""Reference tests: the published trials of pharmacology.reference_trials, rebuilt and rerun.

Sigtermans 2009 (CRPS-1, 100-h S-ketamine vs placebo, 30 per arm): week-1 NRS 2.68 +/- 0.51
vs 5.45 +/- 0.48 (mean +/- SEM), so the placebo-minus-ketamine gap is 2.77 with 95% CI
2.77 +/- 1.96 x sqrt(0.51^2 + 0.48^2) = [1.40, 4.14]; significant at week 1, no longer at
week 12 (P = 0.07); psychotomimetic side effects in 76% vs 18%. Noppers 2011: 0.5 mg/kg
S-ketamine over 30 min relieves pain only while the drug is present.

The 30-per-arm checks run one fixed seed; the 5000-per-arm checks show what the model
expects, so that the small-trial results are not luck of the seed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ketapain.analytics.trials import ArmSummary, run_trial
from ketapain.pharmacology.models import get_model
from ketapain.pharmacology.prediction import predict
from ketapain.pharmacology.reference_trials import noppers_2011, sigtermans_2009

SMALL_SEED = 2009  # the default seed of sigtermans_2009
LARGE_N = 5000
GAP_CI_LOW = 2.77 - 1.96 * math.sqrt(0.51**2 + 0.48**2)
GAP_CI_HIGH = 2.77 + 1.96 * math.sqrt(0.51**2 + 0.48**2)


def _arms(summary: list[ArmSummary]) -> tuple[ArmSummary, ArmSummary]:
    drug, placebo = summary
    assert (drug.name, placebo.name) == ("ketamine", "placebo")
    return drug, placebo


def _week_gap(summary: list[ArmSummary], week: int) -> tuple[float, float | None]:
    """Placebo mean minus ketamine mean NRS at ``week``, and the ketamine arm's Welch P."""
    drug, placebo = _arms(summary)
    wd = next(w for w in drug.weeks if w.week == week)
    wp = next(w for w in placebo.weeks if w.week == week)
    return wp.mean_nrs - wd.mean_nrs, wd.p_value_vs_placebo


@pytest.fixture(scope="module")
def small_sigtermans() -> list[ArmSummary]:
    """Sigtermans 2009 at its published size, 30 per arm, seed 2009, run inline."""
    return run_trial(sigtermans_2009(n_per_arm=30, seed=SMALL_SEED), scheduler="inline").summary()


@pytest.fixture(scope="module")
def large_sigtermans() -> list[ArmSummary]:
    """Sigtermans 2009 with 5000 per arm (seed 2009): the model's expectation."""
    return run_trial(sigtermans_2009(n_per_arm=LARGE_N), scheduler="inline").summary()


def test_published_gap_ci_bounds() -> None:
    """The published week-1 gap CI is [1.40, 4.14] to 0.005 (arithmetic of the module docstring)."""
    assert abs(GAP_CI_LOW - 1.40) < 0.005
    assert abs(GAP_CI_HIGH - 4.14) < 0.005


def test_sigtermans_week1_gap_within_published_ci(small_sigtermans: list[ArmSummary]) -> None:
    """Seed 2009, 30 per arm: week-1 placebo-minus-ketamine gap within the published 95% CI."""
    gap, _ = _week_gap(small_sigtermans, 1)
    assert GAP_CI_LOW <= gap <= GAP_CI_HIGH


def test_sigtermans_week1_significant(small_sigtermans: list[ArmSummary]) -> None:
    """Seed 2009, 30 per arm: Welch P at week 1 below 0.05, as published (P < 0.001)."""
    _, p = _week_gap(small_sigtermans, 1)
    assert p is not None and p < 0.05


def test_sigtermans_week12_not_significant(small_sigtermans: list[ArmSummary]) -> None:
    """Seed 2009, 30 per arm: Welch P at week 12 at least 0.05 (published P = 0.07)."""
    _, p = _week_gap(small_sigtermans, 12)
    assert p is not None and p >= 0.05


def test_sigtermans_expected_gap_at_week1_and_week12(large_sigtermans: list[ArmSummary]) -> None:
    """5000 per arm (gap SE ~0.05): week-1 gap in [2.3, 3.2] (paper 2.77), week 12 within 0.3."""
    gap1, _ = _week_gap(large_sigtermans, 1)
    gap12, _ = _week_gap(large_sigtermans, 12)
    assert 2.3 <= gap1 <= 3.2
    assert abs(gap12) <= 0.3


def test_sigtermans_effect_fades_before_week_8(large_sigtermans: list[ArmSummary]) -> None:
    """5000 per arm: the gap first falls below 1.4 NRS (P < 0.05 needs it at 30/arm) in weeks 3-8.

    The calibrated model loses the effect well before the published week 11-12. With Fanta's
    clearance, plasma S-ketamine is gone hours after the 100-h infusion ends, so the slow
    effect site (Dahan t1/2 10.9 days) only decays: for a 79-kg responder it peaks near
    42 ng/mL on day 5, is near C50 (10.5 ng/mL) by week 4 and about 0.4 ng/mL (relief 0.2%)
    by week 11, so no gap of 1.4 NRS can last that long. This records where the model stands
    (week 4 when written).
    """
    weeks = sorted(w.week for w in large_sigtermans[0].weeks)
    assert weeks == list(range(1, 13))
    below = [w for w in weeks if _week_gap(large_sigtermans, w)[0] < 1.4]
    assert below, "the gap never falls below 1.4 NRS"
    assert 3 <= below[0] <= 8


def test_sigtermans_psychotomimetic_rates(large_sigtermans: list[ArmSummary]) -> None:
    """5000 per arm: side effects in 0.76 +/- 0.08 on ketamine and 0.18 +/- 0.03 on placebo.

    Published 76% vs 18%; binomial SD at n = 5000 is under 0.007, so the bands are model
    tolerance (the model expects about 0.70 on ketamine), not sampling noise.
    """
    drug, placebo = _arms(large_sigtermans)
    assert abs(drug.psychotomimetic.rate - 0.76) <= 0.08
    assert abs(placebo.psychotomimetic.rate - 0.18) <= 0.03


@pytest.fixture(scope="module")
def noppers_prediction() -> tuple[np.ndarray, np.ndarray, float]:
    """Acute relief of a 70-kg patient after the Noppers infusion: (time_h, relief, end_h)."""
    schedule = noppers_2011(n_per_arm=1).arms[0].schedule
    p = predict(
        get_model("flint-fanta-s"), schedule, weight_kg=70, baseline_nrs=7, follow_up_days=1
    )
    return p.time_h, p.curves["acute_relief"], schedule.end_h()


def test_noppers_relief_15_min_after_infusion(
    noppers_prediction: tuple[np.ndarray, np.ndarray, float],
) -> None:
    """15 min after the 0.5 mg/kg/30-min infusion acute relief exceeds 0.4 (Noppers: 8/12 >50%)."""
    t, relief, end = noppers_prediction
    at = np.flatnonzero(np.isclose(t, end + 0.25, atol=1e-9))
    assert at.size == 1, "15 min after the end is a point of the 5-min grid"
    assert relief[at[0]] > 0.4


def test_noppers_relief_wanes_within_3_hours(
    noppers_prediction: tuple[np.ndarray, np.ndarray, float],
) -> None:
    """From 3 h after the infusion on, acute relief stays below half its peak."""
    t, relief, end = noppers_prediction
    assert relief[t >= end + 3.0].max() < 0.5 * relief.max()


def test_noppers_no_lasting_effect() -> None:
    """2000 per arm (gap SE ~0.08): at week 1 the NRS gap is under 0.3 and Welch P >= 0.05."""
    summary = run_trial(noppers_2011(n_per_arm=2000), scheduler="inline").summary()
    gap, p = _week_gap(summary, 1)
    assert abs(gap) < 0.3
    assert p is not None and p >= 0.05
