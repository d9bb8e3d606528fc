"""Throughput of the ketapain PK engine against an ODE solver, PyTCI and the memory limit.

Measured in one process, on one virtual cohort of 10,000 adults (weight ~ N(75, 12) kg
clipped to 40-150 kg; Domino 1984 model with allometric weight scaling and 30% log-normal
variability on CL, V1, Q2, V2, Q3 and V3), in two cases:

* ``4h``: 0.5 mg/kg/h for 4 h, then 2 h of washout, on a 10-second grid (2,161 points);
* ``14d``: 0.5 mg/kg/h 08:00-12:00 on 10 weekdays, over 14 days on a 5-minute grid.

Engines, each producing the plasma concentration of every subject at every grid time:

* ketapain, from covariates to the (N, T) array: median of several calls, with the first
  (cold) call of the process for that case shown beside it;
* ``scipy.integrate.solve_ivp`` (LSODA, rtol 1e-6, atol 1e-9 mg, state in mg), looping
  over a random sample of subjects and integrating piecewise between infusion switches;
* PyTCI 1.2.0 (exact integrator) with each sampled subject's micro-constants, one
  ``giveoverseconds`` call per grid interval (rate 0 in the washouts);
* the memory limit: allocating the (N, T) float64 array and writing every element.

LSODA and PyTCI are timed once on the sample and scaled linearly to N. Reported:
subject-timepoints per second, the ketapain speed-up over each, the largest differences
between ketapain and LSODA / PyTCI on the sample, ketapain's peak memory (tracemalloc peak
of one extra untimed call, and the rise of the process's ru_maxrss over the timed calls),
and pass/fail for the targets (4-h case: under 0.5 s for 10,000 subjects, at least 100x
faster than LSODA and PyTCI, within 5x of the memory limit; peak memory under 2 GB).

Run::

    uv run --group bench python bench/pk_throughput.py                # under a minute
    uv run --group bench python bench/pk_throughput.py --quick        # smoke test
    uv run --group bench python bench/pk_throughput.py --json figures.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from PyTCI.models.base import Three
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from scipy.integrate import solve_ivp

from _common import LSODA, linear_rhs, show
from ketapain.pharmacology import Covariates, Infusion, Output, PKParameters, Schedule, simulate
from ketapain.pharmacology.model import ALLOMETRIC, PKModel, set_variability, set_weight_scaling
from ketapain.pharmacology.models import get_model
from ketapain.pharmacology.schedules import weekdays
from ketapain.units import cv_to_log_sd

FloatArray = NDArray[np.float64]
R = TypeVar("R")
Etas = dict[str, FloatArray]

FULL_SUBJECTS = 10_000
IIV = dict.fromkeys(("cl", "v1", "q2", "v2", "q3", "v3"), 0.30)
RATE_MG_PER_KG_H = 0.5
MAX_SECONDS, MIN_SPEEDUP, MAX_MEMORY_FACTOR, MAX_PEAK_BYTES = 0.5, 100.0, 5.0, 2e9
ENGINES = ("ketapain", "LSODA", "PyTCI", "memory_limit")
SEED = 1984


@dataclass(frozen=True, slots=True)
class Case:
    """A dosing scenario, its output grid and the size of the baselines' sample."""

    key: str
    schedule: Schedule
    times_h: FloatArray
    sample: int


def make_cases(quick: bool) -> tuple[Case, ...]:
    """The 4-hour and the 14-day case."""
    one = Schedule.of(Infusion(start_h=0, duration_h=4, rate_mg_per_kg_h=RATE_MG_PER_KG_H))
    day = Schedule.of(Infusion(start_h=8, duration_h=4, rate_mg_per_kg_h=RATE_MG_PER_KG_H))
    series = day.repeat_on_days(weekdays(10))
    return (
        Case("4h", one, np.linspace(0.0, 6.0, 2161), 5 if quick else 50),
        Case("14d", series, np.linspace(0.0, 14 * 24.0, 14 * 24 * 12 + 1), 2 if quick else 10),
    )


def make_cohort(n: int, rng: np.random.Generator) -> tuple[PKModel, Covariates, Etas]:
    """The model, covariates and random effects of ``n`` virtual adults."""
    model = set_weight_scaling(set_variability(get_model("domino"), IIV), ALLOMETRIC)
    weight = np.clip(rng.normal(75.0, 12.0, n), 40.0, 150.0)
    cov = Covariates(weight_kg=weight, female=np.zeros(n, dtype=bool), age_y=np.full(n, 40.0))
    etas = {k: rng.normal(0.0, cv_to_log_sd(cv), n) for k, cv in model.variability.items()}
    return model, cov, etas


def ketapain_run(model: PKModel, cov: Covariates, etas: Etas, case: Case) -> FloatArray:
    """Plasma concentrations (ng/mL) of the cohort, shape (N, T)."""
    params = model.parameters(cov, etas=etas, warn=False)
    prof = simulate(params, case.schedule, times_h=case.times_h, outputs=(Output.KETAMINE_PLASMA,))
    out: FloatArray | None = prof.ketamine_plasma_ng_per_ml
    assert out is not None
    return out


def memory_limit_run(n: int, t: int) -> FloatArray:
    """Allocate the output array and write every element once."""
    out = np.empty((n, t))
    out.fill(1.0)
    return out


def timed(fn: Callable[[], R], repeats: int) -> tuple[float, float, R]:
    """The first (cold) call's seconds, the median seconds of ``repeats`` more, a result."""
    start = time.perf_counter()
    result = fn()
    cold, times = time.perf_counter() - start, []
    for _ in range(repeats):
        del result
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return cold, statistics.median(times), result


def traced_peak(fn: Callable[[], object]) -> int:
    """Peak bytes allocated (tracemalloc) during one call of ``fn``."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def interval_rates(schedule: Schedule, weight_kg: float, times_h: FloatArray) -> FloatArray:
    """Total IV rate (mg/h) on each interval of ``times_h``, read at its midpoint."""
    mid = 0.5 * (times_h[:-1] + times_h[1:])
    rate = np.zeros(mid.size)
    for inf in schedule.infusions:
        rate += np.where((mid >= inf.start_h) & (mid < inf.end_h), inf.rate_for(weight_kg), 0.0)
    return rate


def micro_per_h(p: PKParameters, i: int) -> tuple[float, ...]:
    """V1 (L) and k10, k12, k13, k21, k31 (1/h) of subject ``i``."""
    fields = (p.v1_l, p.cl_l_per_h, p.q2_l_per_h, p.v2_l, p.q3_l_per_h, p.v3_l)
    v1, cl, q2, v2, q3, v3 = (float(x[i]) for x in fields if x is not None)
    return v1, cl / v1, q2 / v1, q3 / v1, q2 / v2, q3 / v3


def lsoda_subject(p: PKParameters, i: int, case: Case) -> FloatArray:
    """Plasma concentration (ng/mL) of subject ``i`` by LSODA, between infusion switches."""
    v1, k10, k12, k13, k21, k31 = micro_per_h(p, i)
    a = np.array([[-(k10 + k12 + k13), k21, k31], [k12, -k21, 0.0], [k13, 0.0, -k31]])
    times = case.times_h
    edges = {float(times[0]), float(times[-1])}
    for inf in case.schedule.infusions:
        edges.update(e for e in (inf.start_h, inf.end_h) if times[0] < e < times[-1])
    breaks = np.array(sorted(edges))
    rates = interval_rates(case.schedule, float(p.weight_kg[i]), breaks)
    out, x = np.empty(times.size), np.zeros(3)
    for t0, t1, rate in zip(breaks[:-1], breaks[1:], rates, strict=True):
        inside = (times >= t0) & (times <= t1)
        t_eval = np.unique(np.concatenate([times[inside], [t0, t1]]))
        b = np.array([rate, 0.0, 0.0])
        sol = solve_ivp(linear_rhs, (t0, t1), x, t_eval=t_eval, args=(a, b), **LSODA)
        out[inside] = sol.y[0, np.searchsorted(t_eval, times[inside])] / v1 * 1e3
        x = sol.y[:, -1]
    return out


class DominoSubject(Three):  # type: ignore[misc]
    """PyTCI three-compartment model with one subject's micro-constants (1/min)."""

    def __init__(self, v1_l: float, k_per_min: tuple[float, ...]) -> None:
        self.v1 = v1_l
        self.k10, self.k12, self.k13, self.k21, self.k31 = k_per_min
        self.keo = 0.0
        self.setup()
        self.set_integrator("exact")


def pytci_subject(p: PKParameters, i: int, case: Case) -> FloatArray:
    """Plasma concentration (ng/mL) of subject ``i`` by PyTCI, one call per grid step."""
    v1, *k_per_h = micro_per_h(p, i)
    model = DominoSubject(v1, tuple(k / 60.0 for k in k_per_h))
    steps_s = [round(s) for s in (np.diff(case.times_h) * 3600.0).tolist()]
    rates = interval_rates(case.schedule, float(p.weight_kg[i]), case.times_h) / 3600.0
    pairs = zip(rates.tolist(), steps_s, strict=True)
    return np.asarray([model.x1] + [model.giveoverseconds(r, s) for r, s in pairs]) * 1e3


def differences(ref: FloatArray, other: FloatArray) -> dict[str, float]:
    """Largest |difference| in ng/mL, relative to the peak, and pointwise where C >= 1."""
    diff, above = np.abs(other - ref), np.abs(ref) >= 1.0
    return {
        "max_abs_ng_per_ml": float(diff.max()),
        "max_rel_to_peak": float(diff.max() / np.abs(ref).max()),
        "max_rel_pointwise": float((diff[above] / np.abs(ref[above])).max()),
    }


def run(n: int, repeats: int, cases: tuple[Case, ...], console: Console) -> dict[str, Any]:
    """Take every measurement; return the figures."""
    rng = np.random.default_rng(SEED)
    model, cov, etas = make_cohort(n, rng)
    params = model.parameters(cov, etas=etas, warn=False)
    usable, load = len(os.sched_getaffinity(0)), os.getloadavg()[0]
    cpus = f"{os.cpu_count()} ({usable} usable, 1-min load average {load:.2f} at start)"
    figures: dict[str, Any] = {"subjects": n, "repeats": repeats, "cpus": cpus, "cases": {}}
    pick = {c.key: np.sort(rng.choice(n, min(c.sample, n), replace=False)) for c in cases}
    sampled: dict[str, FloatArray] = {}  # ketapain's rows of the sampled subjects only
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # peak RSS so far, KiB
    with console.status("timing ketapain"):
        for case in cases:
            cold, median, full = timed(partial(ketapain_run, model, cov, etas, case), repeats)
            sampled[case.key] = full[pick[case.key]]
            del full
            kp = {"cold_s": cold, "median_s": median, "seconds_for_n": median}
            figures["cases"][case.key] = {"timepoints": case.times_h.size, "ketapain": kp}
    rss_rise = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_kib) * 1024
    with console.status("memory limit and tracemalloc"):
        for case in cases:
            res = figures["cases"][case.key]
            res["ketapain"]["max_rss_rise_bytes"] = rss_rise
            res["ketapain"]["tracemalloc_peak_bytes"] = traced_peak(
                partial(ketapain_run, model, cov, etas, case)
            )
            cold, median, _ = timed(partial(memory_limit_run, n, case.times_h.size), repeats)
            res["memory_limit"] = {"cold_s": cold, "median_s": median, "seconds_for_n": median}
    columns = (TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        for case in cases:
            idx = pick[case.key].tolist()
            res = figures["cases"][case.key]
            for name, fn in (("LSODA", lsoda_subject), ("PyTCI", pytci_subject)):
                task = progress.add_task(f"{name} {case.key}", total=len(idx))
                ref = np.empty((len(idx), case.times_h.size))
                start = time.perf_counter()
                for row, i in enumerate(idx):
                    ref[row] = fn(params, i, case)
                    progress.advance(task)
                seconds = time.perf_counter() - start
                res[name] = {
                    "sample": len(idx),
                    "sample_s": seconds,
                    "seconds_for_n": seconds / len(idx) * n,
                    "ketapain_difference": differences(ref, sampled[case.key]),
                }
    for res in figures["cases"].values():
        points = n * res["timepoints"]
        res["points_per_s"] = {e: points / res[e]["seconds_for_n"] for e in ENGINES}
        res["ketapain_speedup"] = {
            e: res["points_per_s"]["ketapain"] / res["points_per_s"][e] for e in ENGINES[1:]
        }
    figures["targets"] = judge(figures)
    return figures


def judge(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Pass or fail for each target (the 4-hour case; peak memory over both cases)."""
    four = figures["cases"]["4h"]
    speedup = four["ketapain_speedup"]
    seconds = four["ketapain"]["median_s"] * FULL_SUBJECTS / figures["subjects"]
    scaled = "" if figures["subjects"] == FULL_SUBJECTS else " (scaled from N)"
    mem = [c["ketapain"] for c in figures["cases"].values()]
    peak = max(max(k["tracemalloc_peak_bytes"], k["max_rss_rise_bytes"]) for k in mem)
    lsoda, pytci, slower = speedup["LSODA"], speedup["PyTCI"], 1.0 / speedup["memory_limit"]
    rows = [
        ("4h: 10,000 subjects in under 0.5 s", f"{seconds:.3f} s{scaled}", seconds < MAX_SECONDS),
        ("4h: at least 100x the LSODA loop", f"{lsoda:,.0f}x", lsoda >= MIN_SPEEDUP),
        ("4h: at least 100x PyTCI", f"{pytci:,.0f}x", pytci >= MIN_SPEEDUP),
        ("4h: within 5x of the memory limit", f"{slower:.2f}x", slower <= MAX_MEMORY_FACTOR),
        ("peak memory under 2 GB", f"{peak / 1e6:,.0f} MB", peak < MAX_PEAK_BYTES),
    ]
    return [{"target": t, "measured": m, "passed": bool(ok)} for t, m, ok in rows]


def report(figures: dict[str, Any], console: Console) -> None:
    """Print the figures as tables."""
    n, repeats, cases = figures["subjects"], figures["repeats"], figures["cases"]
    rows = []
    for key, res in cases.items():
        for e in ENGINES:
            r, label = res[e], f"{key} ({res['timepoints']:,} pts)" if e == "ketapain" else ""
            if "cold_s" in r:
                how = f"median of {repeats}; cold {r['cold_s']:.3g}"
            else:
                how = f"{r['sample']} subjects, scaled"
            ratio = f"{res['ketapain_speedup'][e]:,.2f}x" if e != "ketapain" else ""
            rows.append(
                [label, e, how, f"{r['seconds_for_n']:.4g}", f"{res['points_per_s'][e]:.3e}", ratio]
            )
    title = f"Throughput for {n:,} subjects (points: subject-timepoints)"
    show(console, title, "case|engine|timing (s)|s for N|points/s|ketapain speed-up", rows, 3)
    rows = []
    for key, res in cases.items():
        for e in ("LSODA", "PyTCI"):
            d = res[e]["ketapain_difference"].values()
            rows.append([key, e, str(res[e]["sample"]), *(f"{v:.2e}" for v in d)])
    title = "Max |ketapain - baseline| on the sampled subjects"
    show(console, title, "case|baseline|subjects|ng/mL|÷ peak C|÷ C where C ≥ 1 ng/mL", rows, 2)
    rows = []
    for key, res in cases.items():
        kp, size = res["ketapain"], n * res["timepoints"] * 8
        sizes = (size, kp["tracemalloc_peak_bytes"], kp["max_rss_rise_bytes"])
        rows.append([key, *(f"{b / 1e6:,.0f}" for b in sizes)])
    columns = "case|output array|tracemalloc peak, 1 call|ru_maxrss rise, all calls"
    show(console, "ketapain peak memory (MB)", columns, rows, 1)
    rows = [
        [g["target"], g["measured"], "[green]pass" if g["passed"] else "[red]FAIL"]
        for g in figures["targets"]
    ]
    show(console, "Targets", "target|measured|result", rows, 2)
    console.print(
        f"CPUs: {figures['cpus']}. ketapain: covariates "
        f"to the (N, T) plasma array, median of {repeats} calls after a first (cold) call of the "
        "process for that case. Memory limit: np.empty((N, T)) then fill, timed alike. LSODA "
        "and PyTCI: one run per sampled subject, scaled linearly to N. Peak memory: tracemalloc "
        "peak of one extra untimed ketapain call per case, and the rise of the process's "
        "ru_maxrss over all timed ketapain calls; the target uses the larger."
    )


def main() -> None:
    """Parse the command line, run the benchmark, print and optionally save the figures."""
    parser = argparse.ArgumentParser(description="ketapain PK throughput benchmark")
    parser.add_argument("--quick", action="store_true", help="1,000 subjects, 2 repeats")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 110)
    n, repeats = (1_000, 2) if args.quick else (FULL_SUBJECTS, 5)
    console.print(f"[bold]ketapain PK throughput[/]: {n:,} subjects, {repeats} timed repeats")
    figures = run(n, repeats, make_cases(args.quick), console)
    report(figures, console)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        console.print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
