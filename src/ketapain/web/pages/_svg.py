"""Small inline SVG line charts for the pages: no plotting library in the request path.

A chart is drawn on a fixed view box and scales with the page; each series is a
polyline (or a step line for pump rates) with its own y axis when given one. The chart
carries a ``<title>`` and ``<desc>`` so that screen readers announce what it shows, and
the pages print the same numbers in a table next to it.

>>> svg = line_chart(
...     title="Pain", series=[Series(name="NRS", x=[0, 1, 2], y=[7, 5, 4], color="#1f5aa6")],
...     x_label="days", y_label="NRS")
>>> svg.startswith("<svg") and "NRS" in svg
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

__all__ = ["Series", "line_chart"]

_W: Final = 720
_H: Final = 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 64, 28, 44


@dataclass(frozen=True, slots=True, kw_only=True)
class Series:
    """One line: points (None values are gaps), colour, axis ("left"/"right"), style."""

    name: str
    x: Sequence[float]
    y: Sequence[float | None]
    color: str
    axis: str = "left"
    step: bool = False
    dashed: bool = False
    markers: bool = False


def _ticks(low: float, high: float, n: int = 5) -> list[float]:
    if high <= low:
        high = low + 1.0
    raw = (high - low) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = (low // step) * step
    out = []
    t = first
    while t <= high + 1e-9:
        if t >= low - 1e-9:
            out.append(round(t, 10))
        t += step
    return out


def _range(values: list[float], floor_zero: bool) -> tuple[float, float]:
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    if floor_zero:
        lo = min(lo, 0.0)
    if hi - lo < 1e-9:
        hi = lo + 1.0
    return lo, hi + 0.05 * (hi - lo)


def line_chart(
    *,
    title: str,
    series: Sequence[Series],
    x_label: str,
    y_label: str,
    y2_label: str | None = None,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    hlines: Sequence[tuple[float, str, str]] = (),
    chart_id: str = "chart",
) -> str:
    """An SVG line chart; ``hlines`` are (y, label, colour) reference lines on the left axis."""
    xs = [float(x) for s in series for x in s.x]
    x0, x1 = x_range or _range(xs, floor_zero=False)
    if x1 <= x0:
        x1 = x0 + 1.0
    left = [float(y) for s in series if s.axis == "left" for y in s.y if y is not None] + [
        h[0] for h in hlines
    ]
    right = [float(y) for s in series if s.axis == "right" for y in s.y if y is not None]
    ly0, ly1 = y_range or _range(left, floor_zero=True)
    ry0, ry1 = _range(right, floor_zero=True)
    pw, ph = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def px(x: float) -> float:
        return _LEFT + (x - x0) / (x1 - x0) * pw

    def py(y: float, axis: str = "left") -> float:
        lo, hi = (ly0, ly1) if axis == "left" else (ry0, ry1)
        return _TOP + ph - (y - lo) / (hi - lo) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" role="img" '
        f'class="chart" aria-labelledby="{chart_id}-t {chart_id}-d" id="{chart_id}">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">{escape(", ".join(s.name for s in series))} against '
        f"{escape(x_label)}</desc>",
        f'<rect x="{_LEFT}" y="{_TOP}" width="{pw}" height="{ph}" class="plot"/>',
    ]
    for t in _ticks(ly0, ly1):
        y = py(t)
        out.append(f'<line x1="{_LEFT}" x2="{_LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{t:g}</text>'
        )
    if right:
        for t in _ticks(ry0, ry1):
            y = py(t, "right")
            out.append(f'<text x="{_LEFT + pw + 6}" y="{y + 4:.1f}" class="tick">{t:g}</text>')
    for t in _ticks(x0, x1, 8):
        x = px(t)
        out.append(
            f'<text x="{x:.1f}" y="{_TOP + ph + 16}" class="tick" text-anchor="middle">{t:g}</text>'
        )
    for y, label, color in hlines:
        yy = py(y)
        out.append(
            f'<line x1="{_LEFT}" x2="{_LEFT + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="{color}" '
            'stroke-dasharray="4 3" class="ref"/>'
        )
        out.append(
            f'<text x="{_LEFT + pw - 4}" y="{yy - 4:.1f}" class="tick" text-anchor="end" '
            f'fill="{color}">{escape(label)}</text>'
        )
    for s in series:
        runs: list[list[str]] = [[]]
        prev: tuple[float, float] | None = None
        for xv, yv in zip(s.x, s.y, strict=True):
            if yv is None:
                runs.append([])
                prev = None
                continue
            cx, cy = px(float(xv)), py(float(yv), s.axis)
            if s.step and prev is not None:
                runs[-1].append(f"{cx:.1f},{prev[1]:.1f}")
            runs[-1].append(f"{cx:.1f},{cy:.1f}")
            prev = (cx, cy)
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        for run in runs:
            if len(run) > 1:
                out.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{s.color}" '
                    f'stroke-width="2"{dash}/>'
                )
        if s.markers or sum(len(r) for r in runs) == 1:
            for xv, yv in zip(s.x, s.y, strict=True):
                if yv is not None:
                    out.append(
                        f'<circle cx="{px(float(xv)):.1f}" cy="{py(float(yv), s.axis):.1f}" r="3" '
                        f'fill="{s.color}"/>'
                    )
    out.append(
        f'<text x="{_LEFT + pw / 2}" y="{_H - 6}" class="label" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    out.append(
        f'<text x="14" y="{_TOP + ph / 2}" class="label" text-anchor="middle" '
        f'transform="rotate(-90 14 {_TOP + ph / 2})">{escape(y_label)}</text>'
    )
    if y2_label:
        xr = _W - 12
        out.append(
            f'<text x="{xr}" y="{_TOP + ph / 2}" class="label" text-anchor="middle" '
            f'transform="rotate(90 {xr} {_TOP + ph / 2})">{escape(y2_label)}</text>'
        )
    lx = _LEFT
    for s in series:
        out.append(
            f'<rect x="{lx}" y="8" width="14" height="4" fill="{s.color}"/>'
            f'<text x="{lx + 18}" y="14" class="legend">{escape(s.name)}</text>'
        )
        lx += 26 + 7 * len(s.name)
    out.append("</svg>")
    return "\n".join(out)
