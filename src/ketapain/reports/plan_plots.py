"""The plan figure: predicted concentrations and the pump steps on one time axis, and
predicted pain over the course and follow-up."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from ketapain.protocols.planning import CoursePlan
from ketapain.reports.plots import shade_schedule

__all__ = ["plot_plan"]

_DAY_H = 24.0
_BLUE, _ORANGE, _GREEN, _GREY = "#1f5aa6", "#d9822b", "#3a8a3a", "#7a7a7a"


def plot_plan(plan: CoursePlan, *, path: str | Path) -> Path:
    """Three panels: concentrations and pump rate (course days, shared axis) and NRS."""
    fig, (conc, pump, nrs) = plt.subplots(3, 1, figsize=(10, 10), dpi=100)
    pump.sharex(conc)
    pred = plan.prediction
    iv = plan.sessions
    end_h = max((s.end - plan.clock(0)).total_seconds() / 3600 for s in iv) + 12 if iv else 48.0
    for ax in (conc, pump):
        shade_schedule(ax, plan.schedule, scale=_DAY_H)
        ax.grid(alpha=0.3)
    if pred is not None:
        t = pred.time_h
        keep = t <= end_h
        c = pred.curves
        conc.plot(
            t[keep] / _DAY_H,
            c["ketamine_plasma_ng_per_ml"][keep],
            color=_BLUE,
            label="ketamine, plasma",
        )
        conc.plot(
            t[keep] / _DAY_H,
            c["s_ketamine_effect_site_ng_per_ml"][keep],
            color=_ORANGE,
            label="S-ketamine, effect site",
        )
        days = t / _DAY_H
        nrs.plot(days, c["nrs_expected"], color=_BLUE, label="expected (all patients)")
        nrs.plot(days, c["nrs_responder"], color=_GREEN, ls="--", label="if a responder")
        nrs.axhline(plan.baseline_nrs, color=_GREY, lw=0.8, ls=":", label="baseline")
        nrs.axhline(
            0.7 * plan.baseline_nrs, color=_GREY, lw=0.8, ls="-.", label="30% relief (Farrar 2001)"
        )
        nrs.legend(loc="lower right", fontsize=8)
    if plan.target is not None:
        conc.axhline(
            plan.target.conc_ng_per_ml,
            color="#a33b3b",
            ls="--",
            label=f"target ({plan.target.site.value})",
        )
    conc.set_ylabel("ng/mL")
    conc.set_title(f"{plan.protocol.title}: predicted concentrations")
    conc.legend(loc="upper right", fontsize=8)
    edges_t, rates = [], []
    for s in plan.sessions:
        for st in s.steps:
            a = (st.start - plan.clock(0)).total_seconds() / 3600
            b = a + st.duration_min / 60
            edges_t += [a / _DAY_H, a / _DAY_H, b / _DAY_H, b / _DAY_H]
            rates += [0.0, st.rate_ml_per_h, st.rate_ml_per_h, 0.0]
    pump.plot(edges_t or [0.0], rates or [0.0], color=_GREEN, drawstyle="default")
    pump.set_ylabel(f"pump, mL/h ({plan.bag.conc_mg_per_ml:g} mg/mL)")
    pump.set_xlabel(f"days from {plan.start_date:%a %d %b %Y}")
    pump.set_xlim(0, end_h / _DAY_H)
    nrs.set_ylim(0, 10)
    nrs.set_ylabel("pain NRS (predicted)")
    nrs.set_xlabel("days from the start")
    nrs.grid(alpha=0.3)
    out = Path(path)
    try:
        fig.tight_layout()
        fig.savefig(out)
    finally:
        plt.close(fig)
    return out
