"""Throughput and memory of a 100,000-patient virtual trial on 2 cores, against solve_ivp.

The trial: one arm of the ``ten-weekdays`` protocol (0.35 mg/kg/h, at most 25 mg/h, for
4 h on 10 weekdays; ``domino-cl79`` model with its variability), 100,000 patients drawn
from the default covariate distribution, 12 weeks of follow-up, default chunks of 5,000
patients. Each patient's plasma, effect-site and slow effect-site concentrations are
computed every 5 minutes while drug is given (and 2 h after each infusion), daily at
08:00 throughout follow-up, then the PD (acute and sustained relief, responder mixture,
side effects, daily NRS with residual noise, relief duration) turns them into outcomes.

Measured in one process, in this order:

* ``run_trial(design, workers=2)``: a local Dask cluster of 2 worker processes, from
  start-up to the assembled result and the closed cluster (the headline figure);
* the same trial on a cluster this script starts itself (2 workers, 1 thread each): the
  start-up and the trial timed apart, then each worker's peak RSS (``ru_maxrss`` and
  ``VmHWM``, through ``client.run``) and the main process's ``ru_maxrss`` (which holds
  the scheduler, the nannies and the assembled result); the memory peak is their sum;
* ``run_trial(design, scheduler="inline")``: every chunk in this process, one core;
* ``TrialResult.summary()`` of the first result;
* a ``scipy.integrate.solve_ivp`` baseline (LSODA, rtol 1e-6, atol 1e-9 in mg and mg/L)
  on a random sample of the same cohort: each sampled patient's own draws (reproduced
  from the chunk's seed), the 5-state ODE (central, two peripherals, fast and slow
  effect sites) integrated piecewise between infusion switches and read at the same
  output times, then the same PD as the trial. Timed per patient and scaled linearly
  to the cohort; its ratio to ketapain is given on one core (against the inline run)
  and on 2 cores (half the 1-core time, i.e. ideal scaling, against ``workers=2``).

Accuracy: ketapain's concentrations (``simulate`` on the sampled patients' parameters)
against solve_ivp's, largest difference relative to the peak; and the solve_ivp-based
outcomes against the trial's own results for those patients. Targets: the trial in under
60 s on 2 cores (with cluster start-up), memory peak (main process + workers) under 4 GB.

Run::

    uv run --frozen --group bench python bench/trial_throughput.py            # ~1-2 min
    uv run --frozen --group bench python bench/trial_throughput.py --quick    # smoke test
    uv run --frozen --group bench python bench/trial_throughput.py --json figures.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from dask.distributed import Client, LocalCluster
from numpy.typing import NDArray
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from scipy.integrate import solve_ivp

from _common import LSODA, linear_rhs, show
from ketapain.analytics.trials import TrialResult, run_trial
from ketapain.pharmacology.parameters import PKParameters
from ketapain.pharmacology.schedules import Schedule
from ketapain.pharmacology.simulation import simulate
from ketapain.pharmacology.trial import (
    CHUNK_OUTPUTS,
    Arm,
    PatientDraws,
    TrialDesign,
    draw_patients,
    output_times,
    patient_outcomes,
)
from ketapain.protocols.library import get_protocol

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

PROTOCOL = "ten-weekdays"
FULL_PATIENTS, QUICK_PATIENTS = 100_000, 5_000
FULL_SAMPLE, QUICK_SAMPLE = 20, 5
WORKERS = 2
FOLLOW_UP_WEEKS = 12
SEED = 2009
MAX_SECONDS, MAX_PEAK_BYTES = 60.0, 4e9
CURVES = ("plasma", "effect site", "slow effect site")


def make_design(n: int) -> TrialDesign:
    """One arm of the protocol, its rate cap applied through the dosing weight."""
    p = get_protocol(PROTOCOL)
    per_kg = max(d.rate_mg_per_kg_h or 0.0 for d in p.session.infusions)
    assert p.max_rate_mg_per_h is not None and per_kg > 0
    arm = Arm(
        name=p.name,
        schedule=p.schedule(),
        model=p.pk_model(),
        dosing_weight_cap_kg=p.max_rate_mg_per_h / per_kg,
    )
    return TrialDesign(arms=(arm,), n_per_arm=n, seed=SEED, follow_up_weeks=FOLLOW_UP_WEEKS)


# --- memory -----------------------------------------------------------------------------


def peak_memory() -> dict[str, int]:
    """This process's peak RSS in bytes: ``ru_maxrss`` and ``VmHWM`` (Linux)."""
    out = {"ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    out["vmhwm_bytes"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out


# --- ketapain runs ----------------------------------------------------------------------


@contextmanager
def chunk_progress(console: Console, label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar fed by ``run_trial``'s ``progress(done, total)``."""
    columns = (TextColumn(f"{label:<28}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TextColumn("chunks"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def run_ketapain(design: TrialDesign, console: Console) -> tuple[dict[str, Any], TrialResult]:
    """The three ketapain runs and ``summary()``; returns figures and the first result."""
    n = design.n_per_arm
    figures: dict[str, Any] = {}

    with chunk_progress(console, f"run_trial(workers={WORKERS})") as update:
        start = time.perf_counter()
        result = run_trial(design, workers=WORKERS, progress=update)
        figures["local_cluster"] = {"wall_s": time.perf_counter() - start}

    start = time.perf_counter()
    summary = result.summary()
    figures["summary"] = {"wall_s": time.perf_counter() - start}
    week12 = summary[0].weeks[-1]
    figures["summary"]["week_12"] = {
        "mean_nrs": week12.mean_nrs,
        "responders_30": week12.responders_30.rate,
        "relief_median_days": summary[0].relief.median(),
    }

    with console.status("starting a 2-worker cluster for the memory run"):
        start = time.perf_counter()
        cluster = LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,  # logging.ERROR
        )
        client = Client(cluster)
        client.wait_for_workers(WORKERS)
        startup = time.perf_counter() - start
    try:
        with chunk_progress(console, "run_trial(own cluster)") as update:
            start = time.perf_counter()
            second = run_trial(design, scheduler=cluster.scheduler_address, progress=update)
            trial_s = time.perf_counter() - start
        workers = client.run(peak_memory)
    finally:
        client.close()
        cluster.close()
    main = peak_memory()
    figures["own_cluster"] = {"startup_s": startup, "wall_s": trial_s}
    same_cluster = bool(np.array_equal(result.nrs, second.nrs))
    del second

    with chunk_progress(console, "run_trial(inline)") as update:
        start = time.perf_counter()
        inline = run_trial(design, scheduler="inline", progress=update)
        figures["inline"] = {"wall_s": time.perf_counter() - start}
    inline_peak = peak_memory()["ru_maxrss_bytes"]
    same_inline = bool(np.array_equal(result.nrs, inline.nrs))
    del inline

    for key in ("local_cluster", "own_cluster", "inline"):
        figures[key]["patients_per_s"] = n / figures[key]["wall_s"]
    rss = [w["ru_maxrss_bytes"] for w in workers.values()]
    hwm = [w.get("vmhwm_bytes", w["ru_maxrss_bytes"]) for w in workers.values()]
    figures["memory"] = {
        "main_ru_maxrss_bytes": main["ru_maxrss_bytes"],
        "workers_ru_maxrss_bytes": rss,
        "workers_vmhwm_bytes": hwm,
        "peak_bytes": main["ru_maxrss_bytes"] + sum(rss),
        "peak_bytes_workers_vmhwm": main["ru_maxrss_bytes"] + sum(hwm),
        "inline_main_ru_maxrss_bytes": inline_peak,
    }
    figures["identical_results"] = {"own_cluster": same_cluster, "inline": same_inline}
    return figures, result


# --- the solve_ivp baseline -------------------------------------------------------------


def sampled_draws(design: TrialDesign, ids: NDArray[np.intp]) -> list[PatientDraws]:
    """The trial's own draws of each sampled patient id (arm 0), one patient each."""
    out = []
    for chunk in np.unique(ids // design.chunk_size).tolist():
        draws = draw_patients(design, 0, chunk)
        rows = ids[ids // design.chunk_size == chunk] - chunk * design.chunk_size
        out.extend(draws.take(np.array([r])) for r in rows.tolist())
    return out


def ode_system(p: PKParameters) -> tuple[FloatArray, float]:
    """A of dx/dt = A x + b (x: 3 amounts in mg, 2 effect sites in mg/L) and V1 (L)."""
    assert p.q2_l_per_h is not None and p.v2_l is not None
    assert p.q3_l_per_h is not None and p.v3_l is not None
    assert p.ke0_per_h is not None and p.slow_ke0_per_h is not None
    fields = (p.v1_l, p.cl_l_per_h, p.q2_l_per_h, p.v2_l, p.q3_l_per_h, p.v3_l)
    rates = (p.ke0_per_h, p.slow_ke0_per_h)
    v1, cl, q2, v2, q3, v3, ke0, ks = (float(x[0]) for x in (*fields, *rates))
    k10, k12, k21, k13, k31 = cl / v1, q2 / v1, q2 / v2, q3 / v1, q3 / v3
    a = np.array(
        [
            [-(k10 + k12 + k13), k21, k31, 0.0, 0.0],
            [k12, -k21, 0.0, 0.0, 0.0],
            [k13, 0.0, -k31, 0.0, 0.0],
            [ke0 / v1, 0.0, 0.0, -ke0, 0.0],
            [ks / v1, 0.0, 0.0, 0.0, -ks],
        ]
    )
    return a, v1


def ivp_concentrations(p: PKParameters, schedule: Schedule, times: FloatArray) -> FloatArray:
    """Plasma, effect-site and slow effect-site ng/mL of one patient, shape (3, T)."""
    a, v1 = ode_system(p)
    weight = float(p.weight_kg[0])
    edges = {float(times[0]), float(times[-1])}
    for inf in schedule.infusions:
        edges.update(e for e in (inf.start_h, inf.end_h) if times[0] < e < times[-1])
    breaks = np.array(sorted(edges))
    out, x = np.empty((3, times.size)), np.zeros(5)
    for t0, t1 in pairwise(breaks):
        mid = 0.5 * (t0 + t1)
        rate = sum(i.rate_for(weight) for i in schedule.infusions if i.start_h <= mid < i.end_h)
        inside = (times >= t0) & (times <= t1)
        t_eval = np.unique(np.concatenate([times[inside], [t0, t1]]))
        b = np.array([rate, 0.0, 0.0, 0.0, 0.0])
        sol = solve_ivp(linear_rhs, (t0, t1), x, t_eval=t_eval, args=(a, b), **LSODA)
        assert sol.success, sol.message
        y = sol.y[:, np.searchsorted(t_eval, times[inside])]
        out[0, inside], out[1, inside], out[2, inside] = y[0] / v1, y[3], y[4]
        x = sol.y[:, -1]
    return out * 1e3  # mg/L -> ng/mL


def ketapain_concentrations(p: PKParameters, schedule: Schedule, times: FloatArray) -> FloatArray:
    """The same three curves of one patient by ketapain's ``simulate``, shape (3, T)."""
    prof = simulate(p, schedule, times_h=times, outputs=CHUNK_OUTPUTS)
    return np.stack([curve[0] for curve in prof.curves().values()])


def run_baseline(
    design: TrialDesign, result: TrialResult, sample: int, console: Console
) -> dict[str, Any]:
    """Time solve_ivp + PD on a sample; compare with ketapain and with the trial."""
    n, arm = design.n_per_arm, design.arms[0]
    ids = np.sort(np.random.default_rng(SEED + 1).choice(n, min(sample, n), replace=False))
    draws = sampled_draws(design, ids)
    times, at_diary = output_times(design, arm)
    ivp, outcomes = [], []
    columns = (TextColumn(f"{'solve_ivp (LSODA) + PD':<28}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("solve_ivp", total=len(draws))
        start = time.perf_counter()
        for d in draws:
            assert d.params is not None
            conc = ivp_concentrations(d.params, arm.schedule, times)
            curves = (conc[0][None, :], conc[1][None, :], conc[2][None, :])
            outcomes.append(patient_outcomes(design, arm, d, curves, at_diary))
            ivp.append(conc)
            progress.advance(task)
        seconds = time.perf_counter() - start
    ref = np.stack(ivp)  # (S, 3, T)
    kp = np.stack(
        [ketapain_concentrations(d.params, arm.schedule, times) for d in draws if d.params]
    )
    conc_diff = {}
    for k, name in enumerate(CURVES):
        diff = np.abs(kp[:, k] - ref[:, k])
        peak = np.abs(ref[:, k]).max(axis=1, keepdims=True)
        conc_diff[name] = {
            "max_abs_ng_per_ml": float(diff.max()),
            "max_rel_to_peak": float((diff / peak).max()),
        }
    trial_rows = {k: result.patients[k][ids] for k in outcomes[0] if k != "nrs"}
    trial_rows["nrs"] = result.nrs[ids]
    assert np.array_equal(result.patients["patient_id"][ids], ids)
    outcome_diff = {}
    for key, rows in trial_rows.items():
        mine = np.concatenate([o[key] for o in outcomes])
        if rows.dtype == np.bool_:
            outcome_diff[key] = {"mismatches": int(np.sum(mine != rows))}
        else:
            outcome_diff[key] = {"max_abs": float(np.max(np.abs(mine.astype(float) - rows)))}
    return {
        "sample": len(draws),
        "timepoints": int(times.size),
        "sample_s": seconds,
        "seconds_per_patient": seconds / len(draws),
        "seconds_for_n_1_core": seconds / len(draws) * n,
        "seconds_for_n_2_cores_ideal": seconds / len(draws) * n / WORKERS,
        "concentration_difference": conc_diff,
        "outcome_difference_vs_trial": outcome_diff,
    }


# --- figures, targets, tables -----------------------------------------------------------


def run(n: int, sample: int, console: Console) -> dict[str, Any]:
    """Take every measurement; return the figures."""
    design = make_design(n)
    usable, load = len(os.sched_getaffinity(0)), os.getloadavg()[0]
    cpus = f"{os.cpu_count()} ({usable} usable, 1-min load average {load:.2f} at start)"
    figures: dict[str, Any] = {
        "patients": n,
        "protocol": PROTOCOL,
        "follow_up_weeks": FOLLOW_UP_WEEKS,
        "chunk_size": design.chunk_size,
        "workers": WORKERS,
        "cpus": cpus,
        "main_ru_maxrss_before_bytes": peak_memory()["ru_maxrss_bytes"],
    }
    ketapain, result = run_ketapain(design, console)
    figures["ketapain"] = ketapain
    base = run_baseline(design, result, sample, console)
    figures["solve_ivp"] = base
    figures["solve_ivp_ratio"] = {
        "1_core_vs_inline": base["seconds_for_n_1_core"] / ketapain["inline"]["wall_s"],
        "2_cores_vs_local_cluster": base["seconds_for_n_2_cores_ideal"]
        / ketapain["local_cluster"]["wall_s"],
    }
    figures["targets"] = judge(figures)
    return figures


def judge(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Pass or fail for each target."""
    n, kp = figures["patients"], figures["ketapain"]
    if n == FULL_PATIENTS:
        seconds, note = kp["local_cluster"]["wall_s"], ""
    else:  # start-up as measured, the trial itself scaled to the full cohort
        own = kp["own_cluster"]
        seconds, note = own["startup_s"] + own["wall_s"] * FULL_PATIENTS / n, " (scaled from N)"
    peak = kp["memory"]["peak_bytes"]
    peak_note = "" if n == FULL_PATIENTS else f" (at N = {n:,})"
    rows = [
        (
            f"{FULL_PATIENTS:,} patients in under {MAX_SECONDS:g} s on {WORKERS} cores",
            f"{seconds:.1f} s{note}",
            seconds < MAX_SECONDS,
        ),
        (
            f"memory peak (main + workers) under {MAX_PEAK_BYTES / 1e9:g} GB",
            f"{peak / 1e6:,.0f} MB{peak_note}",
            peak < MAX_PEAK_BYTES,
        ),
    ]
    return [{"target": t, "measured": m, "passed": bool(ok)} for t, m, ok in rows]


def report(figures: dict[str, Any], console: Console) -> None:
    """Print the figures as tables."""
    n, kp, base, ratio = (
        figures["patients"],
        figures["ketapain"],
        figures["solve_ivp"],
        figures["solve_ivp_ratio"],
    )
    own = kp["own_cluster"]
    rows = [
        [
            "ketapain",
            f"run_trial(workers={WORKERS}), with cluster start-up",
            f"{kp['local_cluster']['wall_s']:.2f}",
            f"{kp['local_cluster']['patients_per_s']:,.0f}",
            f"{ratio['2_cores_vs_local_cluster']:,.0f}x",
        ],
        [
            "",
            f"own {WORKERS}-worker cluster: start-up",
            f"{own['startup_s']:.2f}",
            "",
            "",
        ],
        [
            "",
            "  then run_trial(scheduler=address)",
            f"{own['wall_s']:.2f}",
            f"{own['patients_per_s']:,.0f}",
            "",
        ],
        [
            "",
            'run_trial(scheduler="inline"), 1 process',
            f"{kp['inline']['wall_s']:.2f}",
            f"{kp['inline']['patients_per_s']:,.0f}",
            f"{ratio['1_core_vs_inline']:,.0f}x",
        ],
        ["", "TrialResult.summary()", f"{kp['summary']['wall_s']:.3f}", "", ""],
        [
            "solve_ivp",
            f"LSODA + PD, {base['sample']} patients, scaled: 1 core",
            f"{base['seconds_for_n_1_core']:,.0f}",
            f"{n / base['seconds_for_n_1_core']:,.1f}",
            "",
        ],
        [
            "",
            f"  {WORKERS} cores (ideal scaling)",
            f"{base['seconds_for_n_2_cores_ideal']:,.0f}",
            f"{n / base['seconds_for_n_2_cores_ideal']:,.1f}",
            "",
        ],
    ]
    title = (
        f"{n:,}-patient trial, {figures['protocol']}, {figures['follow_up_weeks']} weeks "
        f"({base['timepoints']:,} concentration times per patient)"
    )
    columns = "engine|run|wall (s)|patients/s|ketapain speed-up over solve_ivp"
    show(console, title, columns, rows, 2)

    mem = kp["memory"]

    def mb(b: float) -> str:
        return f"{b / 1e6:,.0f}"

    rows = [
        ["main process (scheduler, nannies, result)", mb(mem["main_ru_maxrss_bytes"]), ""],
        *[
            [f"worker {i}", mb(r), mb(h)]
            for i, (r, h) in enumerate(
                zip(mem["workers_ru_maxrss_bytes"], mem["workers_vmhwm_bytes"], strict=True)
            )
        ],
        ["total (main + workers)", mb(mem["peak_bytes"]), mb(mem["peak_bytes_workers_vmhwm"])],
        ["main process before any trial", mb(figures["main_ru_maxrss_before_bytes"]), ""],
        ["main process after the inline run", mb(mem["inline_main_ru_maxrss_bytes"]), ""],
    ]
    show(console, "Peak memory (MB)", "process|ru_maxrss|VmHWM", rows, 1)

    rows = [
        [name, f"{d['max_abs_ng_per_ml']:.2e}", f"{d['max_rel_to_peak']:.2e}"]
        for name, d in base["concentration_difference"].items()
    ]
    title = f"Max |ketapain - solve_ivp| concentrations, {base['sample']} sampled patients"
    show(console, title, "curve|ng/mL|÷ patient's peak", rows, 1)
    rows = [
        [key, f"{d['max_abs']:.2e}" if "max_abs" in d else f"{d['mismatches']} mismatches"]
        for key, d in base["outcome_difference_vs_trial"].items()
    ]
    title = "solve_ivp + PD outcomes against the trial's results for the same patients"
    show(console, title, "outcome|max abs difference", rows, 1)

    rows = [
        [g["target"], g["measured"], "[green]pass" if g["passed"] else "[red]FAIL"]
        for g in figures["targets"]
    ]
    show(console, "Targets", "target|measured|result", rows, 2)
    same = kp["identical_results"]
    week12 = kp["summary"]["week_12"]
    console.print(
        f"CPUs: {figures['cpus']}. Chunks of {figures['chunk_size']:,} patients. Results "
        f"identical on the own cluster: {same['own_cluster']}, inline: {same['inline']}. "
        f"Week 12: mean NRS {week12['mean_nrs']:.2f}, 30% responders "
        f"{week12['responders_30']:.1%}, median relief {week12['relief_median_days']:.1f} "
        "days. Memory peak: main process ru_maxrss (after the two 2-worker runs) plus each "
        "worker's ru_maxrss, read with client.run before the cluster closes; the target uses "
        "it. A spawned worker's ru_maxrss keeps its parent's RSS at spawn (Linux carries it "
        "over exec), so it overstates; VmHWM is the worker's own, its total adds main's "
        "ru_maxrss. "
        "solve_ivp: per patient, the ODE and the PD, scaled linearly to N; the 2-core figure "
        "halves the 1-core one."
    )


def main() -> None:
    """Parse the command line, run the benchmark, print and optionally save the figures."""
    parser = argparse.ArgumentParser(description="ketapain virtual-trial throughput benchmark")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_PATIENTS:,} patients, {QUICK_SAMPLE} sampled"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 110)
    n, sample = (QUICK_PATIENTS, QUICK_SAMPLE) if args.quick else (FULL_PATIENTS, FULL_SAMPLE)
    console.print(
        f"[bold]ketapain trial throughput[/]: {n:,} patients, {PROTOCOL}, "
        f"{FOLLOW_UP_WEEKS} weeks, {WORKERS} workers; solve_ivp on {sample} patients"
    )
    figures = run(n, sample, console)
    report(figures, console)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        console.print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
