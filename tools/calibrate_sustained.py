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

from ketapain.analytics.trials import run_trial
from ketapain.pharmacology.pd import PDModel
from ketapain.pharmacology.reference_trials import sigtermans_2009
from ketapain.pharmacology.trial import BaselineNRS

TARGET = np.array([2.68, 5.45, 0.51 * np.sqrt(30), 0.48 * np.sqrt(30)])
N_PER_ARM = 10_000
SEED = 1
RESIDUAL_SD = 1.0


def week1(theta: np.ndarray) -> np.ndarray:
    gamma, placebo, mean, spread = theta
    pd = PDModel()
    pd = replace(pd, sustained=replace(pd.sustained, gamma=gamma, placebo_relief=placebo))
    design = sigtermans_2009(
        n_per_arm=N_PER_ARM,
        seed=SEED,
        pd=pd,
        baseline=BaselineNRS(mean=mean, sd=spread),
        residual_sd=RESIDUAL_SD,
        report_weeks=(1,),
    )
    result = run_trial(design, scheduler="inline")
    k = result.nrs[result.arm_rows(0), 7].astype(float)
    p = result.nrs[result.arm_rows(1), 7].astype(float)
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
    pd = PDModel()
    pd = replace(pd, sustained=replace(pd.sustained, gamma=gamma, placebo_relief=placebo))
    big = sigtermans_2009(
        n_per_arm=N_PER_ARM,
        seed=SEED,
        pd=pd,
        baseline=BaselineNRS(mean=mean, sd=spread),
        residual_sd=RESIDUAL_SD,
    )
    res = run_trial(big, scheduler="inline")
    for w in big.report_weeks:
        k = res.nrs[res.arm_rows(0), 7 * w].astype(float)
        p = res.nrs[res.arm_rows(1), 7 * w].astype(float)
        gap = p.mean() - k.mean()
        se30 = np.sqrt(k.var(ddof=1) / 30 + p.var(ddof=1) / 30)
        p30 = 2 * stats.t.sf(abs(gap) / se30, df=58)
        print(f"week {w:2d}: gap {gap:5.2f} NRS, expected P at 30 per arm {p30:.3g}")


if __name__ == "__main__":
    main()
