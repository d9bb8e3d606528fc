"""Calibrate the unpublished parts of the sustained-relief model on Sigtermans 2009.

Dahan 2011 publishes C50, t1/2 and the response probabilities of its model, but not the
Hill coefficient, the size of the placebo response, or the spread of pain scores. This
script finds the four values

    gamma (Hill coefficient), placebo_relief, baseline NRS mean and SD

(with the day-to-day residual SD of a score held at 1 NRS point, the size of the 1-point
minimal clinically important difference of Farrar 2001) that make a large
virtual Sigtermans trial reproduce the published week-1 scores: ketamine 2.68 and placebo
5.45 (means), with SDs 0.51 * sqrt(30) = 2.79 and 0.48 * sqrt(30) = 2.63 (the paper gives
mean +/- SEM for 30 patients per arm). It prints the values to paste into
``pharmacology/pd/sustained.py`` and ``pharmacology/trial.py``, and the weekly P values of
the calibrated model.

Run: ``uv run python tools/calibrate_sustained.py`` (about a minute).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import optimize, stats

from ketapain.analytics.trials import TrialResult, run_trial
from ketapain.pharmacology.pd import PDModel
from ketapain.pharmacology.reference_trials import sigtermans_2009
from ketapain.pharmacology.trial import BaselineNRS, TrialDesign

TARGET = np.array([2.68, 5.45, 0.51 * np.sqrt(30), 0.48 * np.sqrt(30)])
N_PER_ARM = 10_000
SEED = 1
RESIDUAL_SD = 1.0


def design(theta: np.ndarray, report_weeks: tuple[int, ...]) -> TrialDesign:
    """The large virtual Sigtermans trial with the four calibrated values ``theta``."""
    gamma, placebo, mean, spread = theta
    pd = PDModel()
    pd = replace(pd, sustained=replace(pd.sustained, gamma=gamma, placebo_relief=placebo))
    return sigtermans_2009(
        n_per_arm=N_PER_ARM,
        seed=SEED,
        pd=pd,
        baseline=BaselineNRS(mean=mean, sd=spread),
        residual_sd=RESIDUAL_SD,
        report_weeks=report_weeks,
    )


def scores(result: TrialResult, week: int) -> tuple[np.ndarray, np.ndarray]:
    """Ketamine and placebo scores at ``week``."""
    k, p = (result.nrs[result.arm_rows(a), 7 * week].astype(float) for a in (0, 1))
    return k, p


def week1(theta: np.ndarray) -> np.ndarray:
    k, p = scores(run_trial(design(theta, (1,)), scheduler="inline"), 1)
    return np.array([k.mean(), p.mean(), k.std(ddof=1), p.std(ddof=1)])


def main() -> None:
    fit = optimize.least_squares(
        lambda th: week1(th) - TARGET,
        x0=np.array([1.5, 0.8, 7.0, 1.2]),
        bounds=([0.3, 0.0, 5.0, 0.0], [6.0, 1.0, 10.0, 3.0]),
        diff_step=0.02,
        xtol=1e-4,
    )
    gamma, placebo, mean, spread = fit.x
    print(
        f"gamma={gamma:.3f} placebo_relief={placebo:.3f} "
        f"baseline_mean={mean:.3f} baseline_sd={spread:.3f}"
    )
    print(
        "week-1 fit (ketamine mean, placebo mean, ketamine SD, placebo SD):", week1(fit.x).round(3)
    )
    big = design(fit.x, tuple(range(1, 13)))
    res = run_trial(big, scheduler="inline")
    for w in big.report_weeks:
        k, p = scores(res, w)
        gap = p.mean() - k.mean()
        se30 = np.sqrt(k.var(ddof=1) / 30 + p.var(ddof=1) / 30)
        p30 = 2 * stats.t.sf(abs(gap) / se30, df=58)
        print(f"week {w:2d}: gap {gap:5.2f} NRS, expected P at 30 per arm {p30:.3g}")


if __name__ == "__main__":
    main()
