"""The charts of the pages: predicted concentrations and relief, pain per session, and
the live chart of an infusion (vital signs and pump rate)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any, Final

import numpy as np

from ketapain.clinic.progress import RESPONSE_DROP_FRACTION
from ketapain.protocols.planning import CoursePlan
from ketapain.web.pages._svg import Series, line_chart

__all__ = ["course_pain_chart", "infusion_chart", "prediction_charts"]

_DAY_H: Final = 24.0
_BLUE, _ORANGE, _GREEN, _RED, _GREY, _PURPLE = (
    "#1f5aa6",
    "#b35900",
    "#2e7d32",
    "#b3261e",
    "#5f6368",
    "#6a3d9a",
)
_MAX_POINTS: Final = 500


def _thin(t: np.ndarray, ys: Sequence[np.ndarray]) -> tuple[list[float], list[list[float]]]:
    """At most ``_MAX_POINTS`` points, keeping each bucket's peak of the first curve."""
    if t.size <= _MAX_POINTS:
        return t.tolist(), [y.tolist() for y in ys]
    edges = np.linspace(0, t.size, _MAX_POINTS + 1).astype(int)
    keep = [a + int(np.argmax(ys[0][a:b])) for a, b in itertools.pairwise(edges) if b > a]
    return t[keep].tolist(), [y[keep].tolist() for y in ys]


def prediction_charts(plan: CoursePlan) -> dict[str, str]:
    """Predicted concentrations over the infusion days and pain over the follow-up."""
    pred = plan.prediction
    if pred is None:
        return {}
    start = plan.clock(0)
    end_h = max(((s.end - start).total_seconds() / 3600 for s in plan.sessions), default=24.0)
    c = pred.curves
    keep = pred.time_h <= end_h + 12
    t, (plasma, effect) = _thin(
        pred.time_h[keep] / _DAY_H,
        [c["ketamine_plasma_ng_per_ml"][keep], c["s_ketamine_effect_site_ng_per_ml"][keep]],
    )
    conc = line_chart(
        title="Predicted ketamine concentrations",
        series=[
            Series(name="ketamine, plasma", x=t, y=plasma, color=_BLUE),
            Series(name="S-ketamine, effect site", x=t, y=effect, color=_ORANGE),
        ],
        x_label=f"days from {plan.start_date:%d %b %Y}",
        y_label="ng/mL",
        hlines=[] if plan.target is None else [(plan.target.conc_ng_per_ml, "target", _RED)],
        chart_id="conc-chart",
    )
    td, (expected, responder) = _thin(
        pred.time_h / _DAY_H, [-c["nrs_expected"], c["nrs_responder"]]
    )
    base = plan.baseline_nrs
    relief = line_chart(
        title="Predicted pain (NRS) over the course and follow-up",
        series=[
            Series(name="expected (all patients)", x=td, y=[-v for v in expected], color=_BLUE),
            Series(name="if a responder", x=td, y=responder, color=_GREEN, dashed=True),
        ],
        x_label="days from the start",
        y_label="pain NRS",
        y_range=(0.0, 10.0),
        hlines=[
            (base, f"baseline {base:g}", _GREY),
            ((1 - RESPONSE_DROP_FRACTION) * base, "30% relief (Farrar 2001)", _PURPLE),
        ],
        chart_id="nrs-chart",
    )
    return {"conc": conc, "relief": relief}


def course_pain_chart(progress: dict[str, Any]) -> str:
    """Pain NRS before and after each session given, against the session number."""
    rows = [
        r for r in progress["sessions"] if r["nrs_before"] is not None or r["nrs_after"] is not None
    ]
    if not rows:
        return ""
    n = [float(r["number"]) for r in rows]
    return line_chart(
        title="Pain NRS before and after each session",
        series=[
            Series(
                name="before", x=n, y=[r["nrs_before"] for r in rows], color=_GREY, markers=True
            ),
            Series(name="after", x=n, y=[r["nrs_after"] for r in rows], color=_BLUE, markers=True),
        ],
        x_label="session",
        y_label="pain NRS",
        y_range=(0.0, 10.0),
        x_range=(0.5, max(n) + 0.5),
        hlines=[(progress["baseline_nrs"], "baseline", _GREY)],
        chart_id="pain-chart",
    )


def _minutes(t: str, t0: datetime) -> float:
    return (datetime.fromisoformat(t) - t0).total_seconds() / 60.0


def infusion_chart(view: dict[str, Any], now: datetime, tz: tzinfo) -> str:
    """Blood pressure, heart rate and SpO2 (left axis) and pump rate in mg/h (right axis)."""
    events = view["events"]
    vitals = view["vitals"]
    times = [e["time_utc"] for e in events] + [v["measured_utc"] for v in vitals]
    if not times:
        return ""
    t0 = min(datetime.fromisoformat(t) for t in times)
    series = []
    for key, name, color in (
        ("sbp_mmhg", "systolic BP", _RED),
        ("dbp_mmhg", "diastolic BP", _ORANGE),
        ("hr_per_min", "heart rate", _BLUE),
        ("spo2_pct", "SpO2 %", _GREEN),
    ):
        pts = [(_minutes(v["measured_utc"], t0), v[key]) for v in vitals if v[key] is not None]
        if pts:
            series.append(
                Series(
                    name=name,
                    x=[p[0] for p in pts],
                    y=[p[1] for p in pts],
                    color=color,
                    markers=True,
                )
            )
    rate_x: list[float] = []
    rate_y: list[float | None] = []
    rate = 0.0
    for e in events:
        if e["kind"] in ("start", "rate_change") and e["rate_mg_per_h"] is not None:
            rate = e["rate_mg_per_h"]
        elif e["kind"] in ("pause", "stop"):
            rate = 0.0
        rate_x.append(_minutes(e["time_utc"], t0))
        rate_y.append(rate)
    end = _minutes(now.isoformat(), t0)
    if events and events[-1]["kind"] != "stop":
        rate_x.append(end)
        rate_y.append(rate)
    if rate_x:
        series.append(
            Series(name="pump mg/h", x=rate_x, y=rate_y, color=_PURPLE, axis="right", step=True)
        )
    return line_chart(
        title="Vital signs and pump rate during the session",
        series=series,
        x_label=f"minutes from {t0.astimezone(tz):%H:%M}",
        y_label="mmHg, /min, %",
        y2_label="mg/h",
        x_range=(0.0, max(end, 15.0)),
        chart_id="live-chart",
    )
