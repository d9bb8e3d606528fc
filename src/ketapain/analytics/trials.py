"""Running virtual trials on Dask and summarising them.

:func:`run_trial` cuts a :class:`~ketapain.pharmacology.trial.TrialDesign` into chunks
(:func:`~ketapain.pharmacology.trial.simulate_chunk`) and runs them on a
``dask.distributed`` cluster: a local one by default, or the scheduler at an address. The
chunks' random numbers depend only on the seed and the chunk's position, and the results
are put back in chunk order, so a trial gives identical results on any number of
workers. ``scheduler="inline"`` runs the chunks in this process (small trials, tests).

:meth:`TrialResult.summary` reports, per arm, responder rates (>= 30% and >= 50% NRS
reduction from baseline; Farrar 2001) at the report weeks with Wilson 95% intervals, mean
NRS with Welch's t-test against the placebo arm, the Kaplan-Meier curve of relief
duration (days after the end of treatment until NRS returns within 30% of baseline),
side-effect rates and the daily mean NRS with its 95% confidence band and 10th-90th
percentile range.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from scipy import stats

from ketapain.analytics.proportions import Proportion, wilson_interval
from ketapain.analytics.survival import KaplanMeier, kaplan_meier
from ketapain.errors import InvalidValueError
from ketapain.pharmacology._types import FloatArray
from ketapain.pharmacology.trial import ChunkResult, TrialDesign, chunk_count, simulate_chunk

__all__ = [
    "INLINE",
    "ArmSummary",
    "Proportion",
    "TrialResult",
    "run_trial",
    "wilson_interval",
]

INLINE: Final = "inline"
_Z95: Final = 1.959963984540054

Progress = Callable[[int, int], None]

_PER_PATIENT: Final = (
    "patient_id",
    "weight_kg",
    "female",
    "age_y",
    "baseline_nrs",
    "responder",
    "relief_days",
    "relief_censored",
    "peak_s_plasma_ng_per_ml",
    "peak_psychotomimetic_effect",
    "psychotomimetic",
    "peak_map_rise",
    "bp_warning",
    "total_dose_mg",
)


def _tasks(design: TrialDesign) -> list[tuple[int, int]]:
    return [(a, c) for a in range(len(design.arms)) for c in range(chunk_count(design))]


def run_trial(
    design: TrialDesign,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> TrialResult:
    """Run every chunk of ``design`` and return the assembled result.

    Parameters
    ----------
    scheduler : str, optional
        None: start a local cluster of ``workers`` processes (default: one per CPU);
        ``"inline"``: run in this process; otherwise the address of a running
        ``dask.distributed`` scheduler, e.g. ``tcp://10.0.0.5:8786``.
    workers : int, optional
        Worker processes of the local cluster.
    progress : callable, optional
        Called as ``progress(done, total)`` after every chunk.
    """
    tasks = _tasks(design)
    results: dict[tuple[int, int], ChunkResult] = {}

    def done(key: tuple[int, int], value: ChunkResult) -> None:
        results[key] = value
        if progress is not None:
            progress(len(results), len(tasks))

    if scheduler == INLINE:
        for a, c in tasks:
            done((a, c), simulate_chunk(design, a, c))
        return TrialResult.assemble(design, [results[k] for k in tasks])
    if workers is not None and (isinstance(workers, bool) or not 1 <= workers <= 512):
        raise InvalidValueError("workers", "an integer from 1 to 512", workers)

    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port: never collides with a running cluster
            silence_logs=40,  # logging.ERROR
        )
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = {
            client.submit(
                simulate_chunk,
                design,
                a,
                c,
                key=f"ketapain-trial-{design.seed}-{a}-{c}",
                pure=False,
            ): (a, c)
            for a, c in tasks
        }
        for future in as_completed(futures):
            done(futures[future], future.result())
            future.release()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return TrialResult.assemble(design, [results[k] for k in tasks])


@dataclass(frozen=True, slots=True, kw_only=True)
class WeekSummary:
    """One arm at one report week."""

    week: int
    mean_nrs: float
    sd_nrs: float
    responders_30: Proportion
    responders_50: Proportion
    p_value_vs_placebo: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "week": self.week,
            "mean_nrs": self.mean_nrs,
            "sd_nrs": self.sd_nrs,
            "responders_30": self.responders_30.as_dict(),
            "responders_50": self.responders_50.as_dict(),
            "p_value_vs_placebo": self.p_value_vs_placebo,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ArmSummary:
    """Everything reported for one arm."""

    name: str
    placebo: bool
    n: int
    weeks: tuple[WeekSummary, ...]
    relief: KaplanMeier
    psychotomimetic: Proportion
    bp_warning: Proportion
    mean_total_dose_mg: float
    median_peak_s_plasma_ng_per_ml: float
    day: FloatArray
    mean_nrs: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray
    p10: FloatArray
    p90: FloatArray

    def as_dict(self) -> dict[str, Any]:
        lo, hi = self.relief.median_ci()
        return {
            "name": self.name,
            "placebo": self.placebo,
            "n": self.n,
            "weeks": [w.as_dict() for w in self.weeks],
            "relief_duration_days": {"median": self.relief.median(), "ci_low": lo, "ci_high": hi},
            "side_effects": {
                "psychotomimetic": self.psychotomimetic.as_dict(),
                "map_rise_over_warning": self.bp_warning.as_dict(),
            },
            "mean_total_dose_mg": self.mean_total_dose_mg,
            "median_peak_s_plasma_ng_per_ml": self.median_peak_s_plasma_ng_per_ml,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialResult:
    """Per-patient results of every arm, in (arm, patient) order."""

    design: TrialDesign
    arm_index: np.ndarray
    patients: dict[str, np.ndarray]
    nrs: np.ndarray  # (patients, days + 1), float32

    @classmethod
    def assemble(cls, design: TrialDesign, chunks: list[ChunkResult]) -> TrialResult:
        """Concatenate chunk results (given in arm, chunk order)."""
        arm_index = np.concatenate([np.full(c.patient_id.size, c.arm_index) for c in chunks])
        patients = {k: np.concatenate([getattr(c, k) for c in chunks]) for k in _PER_PATIENT}
        nrs = np.concatenate([c.nrs for c in chunks], axis=0)
        return cls(design=design, arm_index=arm_index, patients=patients, nrs=nrs)

    def arm_rows(self, arm: int) -> np.ndarray:
        """Row indices of arm ``arm``."""
        return np.flatnonzero(self.arm_index == arm)

    def summary(self) -> list[ArmSummary]:
        """Summaries of every arm (see module docstring)."""
        d = self.design
        placebo = next((i for i, a in enumerate(d.arms) if a.placebo), None)
        placebo_rows = None if placebo is None else self.arm_rows(placebo)
        days = np.arange(d.n_days + 1, dtype=float)
        out = []
        for i, arm in enumerate(d.arms):
            rows = self.arm_rows(i)
            nrs = self.nrs[rows].astype(float)
            base = self.patients["baseline_nrs"][rows]
            weeks = []
            for w in d.report_weeks:
                score = nrs[:, 7 * w]
                reduction = (base - score) / base
                p_value = None
                if placebo_rows is not None and placebo != i:
                    p_value = _welch_p(score, self.nrs[placebo_rows, 7 * w].astype(float))
                weeks.append(
                    WeekSummary(
                        week=w,
                        mean_nrs=float(score.mean()),
                        sd_nrs=float(score.std(ddof=1)) if score.size > 1 else 0.0,
                        responders_30=Proportion(int(np.sum(reduction >= 0.3)), rows.size),
                        responders_50=Proportion(int(np.sum(reduction >= 0.5)), rows.size),
                        p_value_vs_placebo=p_value,
                    )
                )
            mean = nrs.mean(axis=0)
            se = (
                nrs.std(axis=0, ddof=1) / np.sqrt(rows.size)
                if rows.size > 1
                else np.zeros_like(mean)
            )
            p10, p90 = np.percentile(nrs, [10, 90], axis=0)
            relief = kaplan_meier(
                self.patients["relief_days"][rows], ~self.patients["relief_censored"][rows]
            )
            out.append(
                ArmSummary(
                    name=arm.name,
                    placebo=arm.placebo,
                    n=int(rows.size),
                    weeks=tuple(weeks),
                    relief=relief,
                    psychotomimetic=Proportion(
                        int(self.patients["psychotomimetic"][rows].sum()), rows.size
                    ),
                    bp_warning=Proportion(int(self.patients["bp_warning"][rows].sum()), rows.size),
                    mean_total_dose_mg=float(self.patients["total_dose_mg"][rows].mean()),
                    median_peak_s_plasma_ng_per_ml=float(
                        np.median(self.patients["peak_s_plasma_ng_per_ml"][rows])
                    ),
                    day=days,
                    mean_nrs=mean,
                    ci_low=mean - _Z95 * se,
                    ci_high=mean + _Z95 * se,
                    p10=p10,
                    p90=p90,
                )
            )
        return out

    def patient_columns(self) -> dict[str, np.ndarray]:
        """Per-patient columns for export: arm name, fixed columns and report-week NRS."""
        names = np.array([a.name for a in self.design.arms])
        cols: dict[str, np.ndarray] = {"arm": names[self.arm_index]}
        cols |= self.patients
        for w in self.design.report_weeks:
            cols[f"nrs_week_{w}"] = self.nrs[:, 7 * w].astype(float)
        return cols


def _welch_p(a: FloatArray, b: FloatArray) -> float | None:
    if a.size < 2 or b.size < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
        return None
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)
