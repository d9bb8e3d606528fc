"""Concentration-time plots with the dosing shown on the same time axis.

Plots are written headless (Agg backend) to PNG. Infusions are shaded, boluses and oral
doses marked; a population is drawn as its median with a shaded 5th-95th percentile
band.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from ketapain.pharmacology._types import FloatArray
from ketapain.pharmacology.schedules import Schedule

__all__ = ["Curve", "plot_concentrations", "shade_schedule"]

_COLOURS = {
    "ketamine_plasma_ng_per_ml": ("#1f5aa6", "Ketamine, plasma"),
    "ketamine_effect_site_ng_per_ml": ("#d9822b", "Ketamine, effect site"),
    "norketamine_plasma_ng_per_ml": ("#3a8a3a", "Norketamine, plasma"),
}
_HOURS_PER_DAY = 24.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Curve:
    """One line to draw: a central curve with an optional band (low, high)."""

    name: str
    values: FloatArray
    low: FloatArray | None = None
    high: FloatArray | None = None


def shade_schedule(ax: Axes, schedule: Schedule, *, scale: float = 1.0) -> None:
    """Shade infusion periods and mark boluses and oral doses on ``ax``.

    ``scale`` divides times (24 to draw in days).
    """
    labelled = set()
    for inf in schedule.infusions:
        label = None if "infusion" in labelled else "IV infusion"
        labelled.add("infusion")
        ax.axvspan(
            inf.start_h / scale, inf.end_h / scale, color="#9db9e0", alpha=0.35, lw=0, label=label
        )
    for bolus in schedule.boluses:
        label = None if "bolus" in labelled else "IV bolus"
        labelled.add("bolus")
        ax.axvline(bolus.time_h / scale, color="#5b3fa0", lw=1.0, ls="--", label=label)
    for oral in schedule.oral_doses:
        label = None if "oral" in labelled else "oral dose"
        labelled.add("oral")
        ax.axvline(oral.time_h / scale, color="#8a6d3b", lw=0.8, ls=":", label=label)


def plot_concentrations(
    *,
    time_h: FloatArray,
    curves: list[Curve],
    schedule: Schedule,
    title: str,
    path: str | Path,
    band_label: str = "5th-95th percentile",
) -> Path:
    """Write a concentration-time plot to ``path`` (PNG) and return the path."""
    span_h = float(time_h[-1] - time_h[0]) if time_h.size > 1 else 1.0
    scale = _HOURS_PER_DAY if span_h > 72 else 1.0
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=110)
    try:
        shade_schedule(ax, schedule, scale=scale)
        t = np.asarray(time_h) / scale
        for curve in curves:
            colour, label = _COLOURS.get(curve.name, ("#444444", curve.name))
            ax.plot(t, curve.values, color=colour, lw=1.8, label=label)
            if curve.low is not None and curve.high is not None:
                ax.fill_between(
                    t,
                    curve.low,
                    curve.high,
                    color=colour,
                    alpha=0.18,
                    lw=0,
                    label=f"{label}: {band_label}",
                )
        ax.set_xlabel("Time (days)" if scale > 1 else "Time (h)")
        ax.set_ylabel("Concentration (ng/mL)")
        ax.set_title(title)
        ax.set_xlim(t[0], t[-1])
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(
            loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=8, frameon=False
        )
        fig.tight_layout()
        out = Path(path)
        fig.savefig(out)
    finally:
        plt.close(fig)
    return out
