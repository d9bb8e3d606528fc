"""Speed of the per-patient sensitivity fit (MAP) against generic scipy minimisers.

A virtual clinic of N patients (default 1,000), each with 8-20 scores over 3 sessions:
weight ~ N(75, 12) kg clipped to 40-150 kg, either sex, age 18-80 y; ``domino-cl79``;
sessions of 4 h on days 0, 1 and 2 at 0.1-0.5 mg/kg/h; scores at random times during and
up to 1 h after each session. True sensitivities eta ~ N(0, omega) for relief and for side
effects; scores are the Olofsen 2022 Emax at the S-ketamine effect-site concentration plus
normal noise (SD 0.10), clipped to each endpoint's range.

Timed per patient, in one process (``time.perf_counter`` around each call):

* ``fit_sensitivity`` (safeguarded Newton, analytic derivatives), relief endpoint;
* ``scipy.optimize.minimize`` on the same objective J(eta) from eta = 0 with no gradient:
  BFGS (finite-difference gradient, default gtol) and Nelder-Mead (xatol 1e-8,
  fatol 1e-12);
* the full per-patient path of the chair view: the S-ketamine effect-site concentrations
  at the score times (one PK simulation of the 3 sessions), both fits,
  ``unit_rate_concentration`` (a second PK simulation) and ``suggest_rate``.

Reported: mean and 95th percentile per patient, the baselines' time as a ratio to the
Newton fit, the largest |eta difference| from the Newton fit, and pass/fail for the
targets (optimisation under 1 ms per patient on average; full path under 10 ms at p95).

Run::

    uv run python bench/map_fit.py                  # about 10-20 s
    uv run python bench/map_fit.py --patients 200   # smoke test
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from scipy.optimize import minimize

from _common import show
from ketapain.pharmacology import Covariates, Infusion, Output, Schedule, get_model, simulate
from ketapain.pharmacology.individualisation import (
    DEFAULT_OMEGA,
    Endpoint,
    SensitivityPrior,
    fit_sensitivity,
    suggest_rate,
    unit_rate_concentration,
)
from ketapain.pharmacology.model import PKModel
from ketapain.pharmacology.pd.acute import AcuteEffectModel

FloatArray = NDArray[np.float64]
SEED = 2022
MODEL = "domino-cl79"
SESSION_H = 4.0
NOISE_SD = 0.10
MAX_FIT_MS, MAX_PATH_MS = 1.0, 10.0


@dataclass(frozen=True, slots=True)
class Patient:
    """One virtual patient: covariates, sessions, score times and both score series."""

    weight_kg: float
    sex: str
    age_y: float
    schedule: Schedule
    times_h: FloatArray
    conc_ng_per_ml: FloatArray
    relief: FloatArray
    side_effects: FloatArray


def s_effect_site(model: PKModel, p: Patient) -> FloatArray:
    """S-ketamine effect-site concentrations (ng/mL) at the patient's score times."""
    cov = Covariates.single(weight_kg=p.weight_kg, sex=p.sex, age_y=p.age_y)
    prof = simulate(
        model.parameters(cov),
        p.schedule,
        times_h=p.times_h,
        outputs=(Output.KETAMINE_EFFECT_SITE,),
    )
    ce = prof.ketamine_effect_site_ng_per_ml
    assert ce is not None
    return np.asarray(model.s_fraction * ce[0], dtype=float)


def make_patients(n: int, rng: np.random.Generator, model: PKModel) -> list[Patient]:
    """``n`` virtual patients with scores from known sensitivities."""
    acute = AcuteEffectModel()
    priors = {e: SensitivityPrior.from_acute(acute, endpoint=e) for e in Endpoint}
    patients = []
    for _ in range(n):
        rate = float(rng.uniform(0.1, 0.5))
        doses = [
            Infusion(start_h=24.0 * d, duration_h=SESSION_H, rate_mg_per_kg_h=rate)
            for d in range(3)
        ]
        schedule = Schedule.of(*doses)
        n_obs = int(rng.integers(8, 21))
        day = rng.integers(0, 3, n_obs)
        times = np.unique(24.0 * day + rng.uniform(0.25, SESSION_H + 1.0, n_obs))
        p = Patient(
            weight_kg=float(np.clip(rng.normal(75.0, 12.0), 40.0, 150.0)),
            sex=str(rng.choice(["female", "male"])),
            age_y=float(rng.uniform(18.0, 80.0)),
            schedule=schedule,
            times_h=times,
            conc_ng_per_ml=np.empty(0),
            relief=np.empty(0),
            side_effects=np.empty(0),
        )
        conc = s_effect_site(model, p)
        scores = {}
        for endpoint, prior in priors.items():
            eta = float(rng.normal(0.0, DEFAULT_OMEGA))
            y = prior.effect(conc, eta=eta) + rng.normal(0.0, NOISE_SD, conc.size)
            scores[endpoint] = np.clip(y, *endpoint.observed_range)
        patients.append(
            Patient(
                **{k: getattr(p, k) for k in ("weight_kg", "sex", "age_y", "schedule", "times_h")},
                conc_ng_per_ml=conc,
                relief=scores[Endpoint.RELIEF],
                side_effects=scores[Endpoint.SIDE_EFFECTS],
            )
        )
    return patients


def objective(x: FloatArray, conc: FloatArray, y: FloatArray, p: SensitivityPrior) -> float:
    """J(eta) of the module docstring, for the generic minimisers."""
    eta = float(x[0])
    ratio = (conc / p.c50_ng_per_ml) ** p.gamma
    f = p.emax * ratio / (math.exp(p.gamma * eta) + ratio)
    return float(np.sum((y - f) ** 2) / p.sigma**2 + eta**2 / p.omega**2)


def newton_eta(conc: FloatArray, y: FloatArray, prior: SensitivityPrior) -> float:
    """eta by :func:`fit_sensitivity`."""
    return fit_sensitivity(conc, y, prior=prior).eta


def scipy_eta(method: str) -> Callable[[FloatArray, FloatArray, SensitivityPrior], float]:
    """eta by ``scipy.optimize.minimize(method=...)`` without a gradient."""
    options: dict[str, Any] = {"xatol": 1e-8, "fatol": 1e-12} if method == "Nelder-Mead" else {}

    def fit(conc: FloatArray, y: FloatArray, prior: SensitivityPrior) -> float:
        res = minimize(
            objective, np.zeros(1), args=(conc, y, prior), method=method, options=options
        )
        return float(res.x[0])

    return fit


def full_path(model: PKModel, p: Patient, priors: dict[Endpoint, SensitivityPrior]) -> float:
    """Concentrations at the score times, both fits, the unit concentration and the rate."""
    conc = s_effect_site(model, p)
    relief = fit_sensitivity(conc, p.relief, prior=priors[Endpoint.RELIEF])
    side = fit_sensitivity(conc, p.side_effects, prior=priors[Endpoint.SIDE_EFFECTS])
    c_unit = unit_rate_concentration(
        model, weight_kg=p.weight_kg, sex=p.sex, age_y=p.age_y, duration_h=SESSION_H
    )
    out = suggest_rate(
        relief=relief,
        side_effects=side,
        c_unit_ng_per_ml_per_mg_per_kg_h=c_unit,
        target_relief=0.30,
        side_effect_ceiling=0.40,
        max_rate_mg_per_kg_h=0.5,
    )
    return out.rate_mg_per_kg_h


def time_each(fn: Callable[[int], float], n: int) -> tuple[FloatArray, FloatArray]:
    """Seconds per call and the result of each call, for patients 0..n-1 (one warm-up)."""
    fn(0)
    seconds, results = np.empty(n), np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        results[i] = fn(i)
        seconds[i] = time.perf_counter() - start
    return seconds, results


def main() -> None:
    """Parse the command line, time the fits and the full path, print the tables."""
    parser = argparse.ArgumentParser(description="ketapain MAP sensitivity fit benchmark")
    parser.add_argument("--patients", type=int, default=1000, help="virtual patients (1000)")
    args = parser.parse_args()
    n = max(1, args.patients)
    console = Console(width=None if sys.stdout.isatty() else 110)
    model = get_model(MODEL)
    with console.status(f"making {n:,} patients"):
        patients = make_patients(n, np.random.default_rng(SEED), model)
    acute = AcuteEffectModel()
    priors = {e: SensitivityPrior.from_acute(acute, endpoint=e) for e in Endpoint}
    relief_prior = priors[Endpoint.RELIEF]
    engines: dict[str, Callable[[FloatArray, FloatArray, SensitivityPrior], float]] = {
        "ketapain Newton MAP": newton_eta,
        "scipy BFGS (numeric gradient)": scipy_eta("BFGS"),
        "scipy Nelder-Mead": scipy_eta("Nelder-Mead"),
    }
    timings: dict[str, tuple[FloatArray, FloatArray]] = {}
    for name, fit in engines.items():
        with console.status(f"timing {name}"):
            timings[name] = time_each(
                lambda i, fit=fit: fit(
                    patients[i].conc_ng_per_ml, patients[i].relief, relief_prior
                ),
                n,
            )
    with console.status("timing the full per-patient path"):
        path_s, _ = time_each(lambda i: full_path(model, patients[i], priors), n)
    newton_s, newton_eta_values = timings["ketapain Newton MAP"]
    rows = []
    for name, (seconds, etas) in timings.items():
        ratio = seconds.mean() / newton_s.mean()
        diff = np.abs(etas - newton_eta_values).max()
        rows.append(
            [
                name,
                f"{seconds.mean() * 1e3:.3f}",
                f"{np.percentile(seconds, 95) * 1e3:.3f}",
                "1.00x" if seconds is newton_s else f"{ratio:.1f}x",
                "" if seconds is newton_s else f"{diff:.1e}",
            ]
        )
    obs = np.array([p.conc_ng_per_ml.size for p in patients])
    title = f"Relief fit per patient: {n:,} patients, {obs.min()}-{obs.max()} scores each"
    show(console, title, "engine|mean ms|p95 ms|time ÷ Newton|max abs Δeta", rows, 1)
    path_mean, path_p95 = path_s.mean() * 1e3, np.percentile(path_s, 95) * 1e3
    show(
        console,
        "Full per-patient path (2 PK simulations, 2 fits, suggest_rate)",
        "path|mean ms|p95 ms|max ms",
        [
            [
                "chair view refresh",
                f"{path_mean:.3f}",
                f"{path_p95:.3f}",
                f"{path_s.max() * 1e3:.3f}",
            ]
        ],
        1,
    )
    fits = [fit_sensitivity(p.conc_ng_per_ml, p.relief, prior=relief_prior) for p in patients]
    iterations = np.array([f.iterations for f in fits])
    console.print(
        f"Newton: {sum(f.converged for f in fits):,} of {n:,} converged (|step| < 1e-8); "
        f"iterations mean {iterations.mean():.1f}, max {iterations.max()}."
    )
    fit_mean = newton_s.mean() * 1e3
    targets = [
        ("optimisation under 1 ms per patient (mean)", f"{fit_mean:.3f} ms", fit_mean < MAX_FIT_MS),
        ("full path under 10 ms per patient (p95)", f"{path_p95:.3f} ms", path_p95 < MAX_PATH_MS),
    ]
    rows = [[t, m, "[green]pass" if ok else "[red]FAIL"] for t, m, ok in targets]
    show(console, "Targets", "target|measured|result", rows, 2)
    console.print(
        f"Model {MODEL}; scores = Olofsen 2022 Emax + N(0, {NOISE_SD}) noise; prior omega "
        f"{DEFAULT_OMEGA:.3f}, sigma {relief_prior.sigma}. Each call timed alone after one "
        "warm-up call; baselines minimise the same J(eta) from eta = 0 without a gradient."
    )


if __name__ == "__main__":
    main()
