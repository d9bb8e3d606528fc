"""Figures of predictions, protocol comparisons and virtual trials.

Every time axis is shared between panels and infusion periods are shaded, so a clinician
reads concentration, receptor occupancy, relief, side effects and pain at the same moment.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ketapain.pharmacology.pd.pain import RELIEF_THRESHOLD
from ketapain.pharmacology.prediction import Prediction
from ketapain.pharmacology.schedules import Schedule
from ketapain.reports.plots import shade_schedule

if TYPE_CHECKING:
    from ketapain.analytics.trials import ArmSummary

__all__ = ["plot_comparison", "plot_prediction", "plot_trial_report"]

_DAY_H = 24.0
_PALETTE = ("#1f5aa6", "#d9822b", "#3a8a3a", "#a33b3b", "#6b4fa0", "#7a7a7a", "#178a8a")


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    try:
        fig.tight_layout()
        fig.savefig(out)
    finally:
        plt.close(fig)
    return out


def plot_prediction(
    prediction: Prediction, schedule: Schedule, *, title: str, path: str | Path
) -> Path:
    """Five panels on one time axis (days): concentrations, occupancy, relief, side
    effects and NRS."""
    c = prediction.curves
    t = prediction.time_h / _DAY_H
    fig, axes = plt.subplots(5, 1, figsize=(10, 13), dpi=100, sharex=True)
    conc, occ, relief, side, nrs = axes
    for ax in axes:
        shade_schedule(ax, schedule, scale=_DAY_H)
        ax.grid(alpha=0.3)
    conc.plot(t, c["ketamine_plasma_ng_per_ml"], color=_PALETTE[0], label="ketamine, plasma")
    conc.plot(
        t, c["s_ketamine_effect_site_ng_per_ml"], color=_PALETTE[1], label="S-ketamine, effect site"
    )
    conc.plot(
        t,
        c["s_ketamine_slow_effect_site_ng_per_ml"],
        color=_PALETTE[4],
        label="S-ketamine, slow biophase",
    )
    if "norketamine_plasma_ng_per_ml" in c:
        conc.plot(
            t,
            c["norketamine_plasma_ng_per_ml"],
            color=_PALETTE[2],
            lw=1,
            label="norketamine, plasma",
        )
    conc.set_ylabel("ng/mL")
    conc.set_title(title)
    occ.plot(t, 100 * c["nmda_occupancy"], color=_PALETTE[0], label="NMDA receptor occupancy")
    occ.set_ylabel("%")
    relief.plot(
        t, 100 * c["acute_relief"], color=_PALETTE[1], label="acute relief (during infusion)"
    )
    relief.plot(
        t,
        100 * c["sustained_relief_responder"],
        color=_PALETTE[4],
        label="sustained relief (responder)",
    )
    relief.set_ylabel("% of pain")
    relief.set_ylim(0, 100)
    side.plot(
        t, 100 * c["psychotomimetic_effect"], color=_PALETTE[3], label="psychotomimetic effect"
    )
    side.plot(t, 100 * c["map_rise"], color=_PALETTE[5], label="mean arterial pressure rise")
    side.axhline(20, color=_PALETTE[5], ls=":", lw=1, label="MAP +20% (warning)")
    side.set_ylabel("%")
    base = prediction.baseline_nrs
    nrs.plot(t, c["nrs_responder"], color=_PALETTE[2], label="NRS, responder")
    nrs.plot(t, c["nrs_non_responder"], color=_PALETTE[5], lw=1, label="NRS, non-responder")
    nrs.plot(t, c["nrs_expected"], color=_PALETTE[0], ls="--", label="NRS, expected")
    nrs.axhline(base, color="black", lw=0.8, label=f"baseline {base:g}")
    nrs.axhline(
        (1 - RELIEF_THRESHOLD) * base, color="black", ls=":", lw=0.8, label="30% below baseline"
    )
    nrs.set_ylim(0, 10)
    nrs.set_ylabel("NRS (0-10)")
    nrs.set_xlabel("Time (days)")
    nrs.set_xlim(t[0], t[-1])
    for ax in axes:
        ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    return _save(fig, path)


def plot_comparison(
    items: Sequence[tuple[str, Prediction, Schedule]], *, title: str, path: str | Path
) -> Path:
    """S-ketamine plasma, sustained relief and expected NRS of several protocols."""
    fig, (conc, relief, nrs) = plt.subplots(3, 1, figsize=(10, 10), dpi=100, sharex=True)
    end = 0.0
    for i, (name, pred, _) in enumerate(items):
        colour = _PALETTE[i % len(_PALETTE)]
        t = pred.time_h / _DAY_H
        end = max(end, float(t[-1]))
        conc.plot(t, pred.curves["s_ketamine_plasma_ng_per_ml"], color=colour, lw=1, label=name)
        relief.plot(t, 100 * pred.curves["sustained_relief_responder"], color=colour, label=name)
        nrs.plot(t, pred.curves["nrs_responder"], color=colour, label=f"{name}, responder")
        nrs.plot(t, pred.curves["nrs_expected"], color=colour, ls="--", lw=1)
    base = items[0][1].baseline_nrs
    nrs.axhline(
        (1 - RELIEF_THRESHOLD) * base, color="black", ls=":", lw=0.8, label="30% below baseline"
    )
    conc.set_ylabel("S-ketamine, plasma (ng/mL)")
    conc.set_title(title)
    relief.set_ylabel("sustained relief, responder (%)")
    relief.set_ylim(0, 100)
    nrs.set_ylabel("NRS (solid: responder, dashed: expected)")
    nrs.set_ylim(0, 10)
    nrs.set_xlabel("Time from the first infusion (days)")
    nrs.set_xlim(0, end)
    for ax in (conc, relief, nrs):
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    return _save(fig, path)


def plot_trial_report(arms: Sequence[ArmSummary], *, title: str, path: str | Path) -> Path:
    """Four panels: NRS trajectories, responder rates, relief Kaplan-Meier, side effects."""
    fig, axes = plt.subplots(2, 2, figsize=(13, 9), dpi=100)
    traj, resp, km, side = axes.ravel()
    for i, arm in enumerate(arms):
        colour = _PALETTE[i % len(_PALETTE)]
        traj.fill_between(arm.day, arm.p10, arm.p90, color=colour, alpha=0.10, lw=0)
        traj.fill_between(arm.day, arm.ci_low, arm.ci_high, color=colour, alpha=0.35, lw=0)
        traj.plot(arm.day, arm.mean_nrs, color=colour, label=f"{arm.name} (n={arm.n})")
        km.step(arm.relief.time, arm.relief.survival, where="post", color=colour, label=arm.name)
        km.fill_between(
            arm.relief.time,
            arm.relief.ci_low,
            arm.relief.ci_high,
            step="post",
            color=colour,
            alpha=0.2,
        )
    traj.set_xlabel("Day")
    traj.set_ylabel("NRS: mean, 95% CI, 10th-90th percentile")
    traj.set_ylim(0, 10)
    traj.legend(fontsize=8)
    km.set_xlabel("Days after the end of treatment")
    km.set_ylabel("Still relieved (>= 30% below baseline)")
    km.set_ylim(0, 1.02)
    km.legend(fontsize=8)
    weeks = [w.week for w in arms[0].weeks]
    width = 0.8 / max(len(arms), 1)
    x = np.arange(len(weeks))
    for i, arm in enumerate(arms):
        colour = _PALETTE[i % len(_PALETTE)]
        r30 = [100 * w.responders_30.rate for w in arm.weeks]
        r50 = [100 * w.responders_50.rate for w in arm.weeks]
        resp.bar(x + i * width, r30, width, color=colour, alpha=0.45, label=f"{arm.name} >= 30%")
        resp.bar(x + i * width, r50, width, color=colour, label=f"{arm.name} >= 50%")
    resp.set_xticks(x + width * (len(arms) - 1) / 2, [f"week {w}" for w in weeks])
    resp.set_ylabel("Responders (%)")
    resp.set_ylim(0, 100)
    resp.legend(fontsize=7)
    labels = ("psychotomimetic", "MAP rise > 20%")
    x = np.arange(len(labels))
    for i, arm in enumerate(arms):
        colour = _PALETTE[i % len(_PALETTE)]
        side.bar(
            x + i * width,
            [100 * arm.psychotomimetic.rate, 100 * arm.bp_warning.rate],
            width,
            color=colour,
            label=arm.name,
        )
    side.set_xticks(x + width * (len(arms) - 1) / 2, labels)
    side.set_ylabel("Patients (%)")
    side.set_ylim(0, 100)
    side.legend(fontsize=8)
    for ax in (traj, resp, km, side):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)
