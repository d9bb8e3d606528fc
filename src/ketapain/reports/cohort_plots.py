"""Figures of a cohort report: responders, durability, pain over time, opioids, safety,
calibration and the breakdowns. Each function returns a matplotlib figure; the report
embeds it as SVG in HTML and as a page of the PDF.

Published figures are drawn as black marks beside the clinic's bars, labelled by source.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ketapain.analytics.durability import Durability
from ketapain.analytics.literature import LiteratureFigure
from ketapain.analytics.proportions import Proportion, wilson_interval
from ketapain.analytics.report import CohortAnalysis
from ketapain.analytics.responders import CRITERIA, TIMEPOINTS, ResponderRate

__all__ = ["FIGURES", "cohort_figures"]

_PALETTE: Final = ("#1f5aa6", "#d9822b", "#3a8a3a", "#a33b3b", "#6b4fa0", "#7a7a7a")
_TIMEPOINT_LABELS: Final = {"end": "end of series", "week_4": "week 4", "week_12": "week 12"}


def _pct_bars(ax: Axes, x: np.ndarray, rates: Sequence[Proportion], **kw: object) -> None:
    values = np.array([100 * r.rate if r.n else 0.0 for r in rates])
    bounds = np.array([wilson_interval(r.count, r.n) if r.n else (0, 0) for r in rates])
    err = np.abs(np.vstack([values - 100 * bounds[:, 0], 100 * bounds[:, 1] - values]))
    ax.bar(x, values, yerr=err, capsize=3, **kw)  # type: ignore[arg-type]


def _mark(ax: Axes, x: float, fig: LiteratureFigure, width: float) -> None:
    value = fig.value if fig.value is not None else fig.low
    if value is None:
        return
    ax.hlines(100 * value, x - width / 2, x + width / 2, colors="black", lw=2)
    if fig.high is not None:
        ax.vlines(x, 100 * value, 100 * fig.high, colors="black", lw=1)
    ax.annotate(fig.source.short(), (x + width / 2, 100 * value), fontsize=7,
                xytext=(2, -3), textcoords="offset points")  # fmt: skip


def _literature(a: CohortAnalysis, measure: str) -> list[LiteratureFigure]:
    return [c.figure for c in a.literature if c.figure.measure == measure]


def responders_figure(a: CohortAnalysis) -> Figure:
    """Responders at the end of the series and weeks 4 and 12, by criterion, with CIs."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    width = 0.8 / len(CRITERIA)
    x = np.arange(len(TIMEPOINTS))
    for i, c in enumerate(CRITERIA):
        rates = [a.responder(tp, c.name) for tp in TIMEPOINTS]
        _pct_bars(ax, x + i * width, rates, width=width, color=_PALETTE[i], label=c.label)
    marks = {("end", "reduction_30"): "responders_end_30", ("end", "points_2"):
             "responders_end_2pt", ("week_4", "points_2"): "responders_week_4_2pt"}  # fmt: skip
    for (tp, crit), measure in marks.items():
        i = [c.name for c in CRITERIA].index(crit)
        for fig_ in _literature(a, measure):
            _mark(ax, list(TIMEPOINTS).index(tp) + i * width, fig_, width)
    ax.set_xticks(x + width, [_TIMEPOINT_LABELS[t] for t in TIMEPOINTS])
    ax.set_ylabel("Responders (%), 95% CI")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("Responders (black marks: published figures)")
    return fig


def _km(ax: Axes, d: Durability | None, title: str, colour: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if d is None:
        ax.text(0.5, 0.5, "no courses", ha="center", transform=ax.transAxes)
        return
    k = d.curve
    ax.step(k.time, k.survival, where="post", color=colour)
    ax.fill_between(k.time, k.ci_low, k.ci_high, step="post", color=colour, alpha=0.2, lw=0)
    median = k.median()
    note = f"n={k.n}, events={d.events}, censored={d.censored}"
    note += f"\nmedian {median:.0f} days" if median is not None else "\nmedian not reached"
    ax.text(0.98, 0.95, note, ha="right", va="top", fontsize=8, transform=ax.transAxes)
    ax.set_xlabel("Days after the series")


def durability_figure(a: CohortAnalysis) -> Figure:
    """Kaplan-Meier: relief duration among responders, and time to the first booster."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    _km(left, a.relief, "Relief lasting (responders, >= 30%)", _PALETTE[0])
    left.set_ylabel("Share still relieved / without booster")
    _km(right, a.booster, "Without a booster (treated courses)", _PALETTE[1])
    return fig


def trajectory_figure(a: CohortAnalysis) -> Figure:
    """Mean NRS at baseline, the series end and each follow-up week, with the forecast."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    pts = a.trajectory
    day = np.array([-10.0 if p.label == "baseline" else p.day for p in pts])
    obs = np.array([p.observed.mean for p in pts])
    lo = np.array([p.observed.ci_low for p in pts])
    hi = np.array([p.observed.ci_high for p in pts])
    ax.fill_between(day, lo, hi, color=_PALETTE[0], alpha=0.2, lw=0)
    ax.plot(day, obs, "o-", color=_PALETTE[0], label="observed mean, 95% CI")
    pred = [(d, p.predicted) for d, p in zip(day, pts, strict=True) if p.predicted is not None]
    if pred:
        ax.errorbar([d for d, _ in pred], [m.mean for _, m in pred], fmt="s",
                    color=_PALETTE[1], label="plans' forecast (mean)")  # fmt: skip
    for f in _literature(a, "mean_nrs_week_1"):
        if f.value is not None:
            ax.plot([7.0], [f.value], "k_", ms=14, mew=2)
            ax.annotate(f.source.short(), (7.0, f.value), fontsize=7, xytext=(4, -3),
                        textcoords="offset points")  # fmt: skip
    ax.set_xticks([-10, 0, 28, 56, 84], ["baseline", "end", "week 4", "week 8", "week 12"])
    ax.set_ylim(0, 10)
    ax.set_ylabel("Pain NRS")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Pain over time")
    return fig


def opioids_figure(a: CohortAnalysis) -> Figure:
    """MME/day before and after, and the shares that reduced by 20% and by half."""
    o = a.opioids
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    means = [o.before, o.after]
    vals = [m.mean if m.n else 0.0 for m in means]
    err = [[max(m.mean - m.ci_low, 0) if m.n > 1 else 0 for m in means],
           [max(m.ci_high - m.mean, 0) if m.n > 1 else 0 for m in means]]  # fmt: skip
    left.bar([0, 1], vals, yerr=err, capsize=4, color=[_PALETTE[5], _PALETTE[0]])
    left.set_xticks([0, 1], ["before", "after"])
    left.set_ylabel("MME/day, mean and 95% CI")
    left.set_title(f"Opioid use ({o.before.n} courses on opioids)", fontsize=10)
    _pct_bars(right, np.arange(3), [o.reduced_20, o.reduced_50, o.increased],
              color=[_PALETTE[2], _PALETTE[2], _PALETTE[3]])  # fmt: skip
    for f in _literature(a, "opioid_reduced_20"):
        _mark(right, 0, f, 0.8)
    right.set_xticks(range(3), [">= 20% less", ">= 50% less", "more"])
    right.set_ylim(0, 105)
    right.set_ylabel("Courses (%), 95% CI")
    for ax in (left, right):
        ax.grid(alpha=0.3, axis="y")
    return fig


def safety_figure(a: CohortAnalysis) -> Figure:
    """Side effects and liver tests per patient, side effects and early stops per session."""
    s = a.safety
    items = [
        ("any side effect\n(patients)", s.patients_with_side_effects, "any_side_effects"),
        ("moderate/severe\n(patients)", s.patients_with_significant_side_effects,
         "significant_side_effects"),
        ("LFT > ULN\n(checked patients)", s.lft_elevated, "lft_elevated"),
        ("LFT > 3x ULN", s.lft_over_3x_uln, "lft_over_3x_uln"),
        ("side effect\n(sessions)", s.sessions_with_side_effects, ""),
        ("early stop\n(sessions)", s.early_stops, ""),
    ]  # fmt: skip
    fig, ax = plt.subplots(figsize=(10, 4.2))
    _pct_bars(ax, np.arange(len(items)), [r for _, r, _ in items], color=_PALETTE[3], alpha=0.8)
    for i, (_, _, measure) in enumerate(items):
        for f in _literature(a, measure) if measure else []:
            _mark(ax, i, f, 0.8)
    ax.set_xticks(range(len(items)), [label for label, _, _ in items], fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("%, 95% CI")
    ax.grid(alpha=0.3, axis="y")
    ax.set_title("Side effects and safety (black marks: published figures)")
    return fig


def calibration_figure(a: CohortAnalysis) -> Figure:
    """Observed against predicted NRS by fifth of the prediction, per anchor."""
    fig, axes = plt.subplots(1, len(a.calibration), figsize=(11, 3.8), sharey=True)
    for ax, anchor in zip(np.atleast_1d(axes), a.calibration, strict=True):
        ax.plot([0, 10], [0, 10], color="#999", lw=1, ls="--")
        if anchor.bins:
            p, o, _ = zip(*anchor.bins, strict=True)
            ax.plot(p, o, "o-", color=_PALETTE[0])
        bias = "-" if anchor.bias.n == 0 else f"{anchor.bias.mean:+.2f}"
        ax.set_title(f"{_TIMEPOINT_LABELS[anchor.anchor]} (n={anchor.n}, bias {bias})", fontsize=9)
        ax.set_xlim(0, 10)
        ax.set_ylim(0, 10)
        ax.set_xlabel("Predicted NRS")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("Observed NRS")
    return fig


def _group_rates(rows: Sequence[ResponderRate]) -> list[tuple[str, Proportion]]:
    return [
        (str(r.group), r.rate)
        for r in rows
        if r.timepoint == "end" and r.criterion.name == "reduction_30"
    ]


def breakdown_figure(a: CohortAnalysis) -> Figure:
    """Responders (>= 30% at the end of the series) by each breakdown."""
    fig, axes = plt.subplots(1, len(a.responders_by), figsize=(14, 4), sharex=True)
    for ax, (by, rows) in zip(np.atleast_1d(axes), a.responders_by.items(), strict=True):
        pairs = _group_rates(rows)
        y = np.arange(len(pairs))
        values = [100 * p.rate if p.n else 0.0 for _, p in pairs]
        ax.barh(y, values, color=_PALETTE[0], alpha=0.8)
        ax.set_yticks(y, [f"{g} ({p.n})" for g, p in pairs], fontsize=7)
        ax.set_title(by.replace("_", " "), fontsize=9)
        ax.set_xlim(0, 100)
        ax.grid(alpha=0.3, axis="x")
    np.atleast_1d(axes)[0].set_xlabel("Responders >= 30% at the end (%)")
    return fig


FIGURES: Final = (
    ("responders", "Responders", responders_figure),
    ("breakdown", "Responders by group", breakdown_figure),
    ("durability", "Duration of relief and time to booster", durability_figure),
    ("trajectory", "Pain over time", trajectory_figure),
    ("opioids", "Opioid use", opioids_figure),
    ("safety", "Side effects and safety", safety_figure),
    ("calibration", "Model calibration", calibration_figure),
)


def cohort_figures(a: CohortAnalysis) -> list[tuple[str, str, Figure]]:
    """Every figure of the report as (key, title, figure); the caller closes them."""
    out = []
    for key, title, make in FIGURES:
        fig = make(a)
        fig.tight_layout()
        out.append((key, title, fig))
    return out
