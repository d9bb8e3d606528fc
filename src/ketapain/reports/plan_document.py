"""Printable documents of a course plan: the chart copy (HTML) and the patient handout.

Both are rendered from the plan with Jinja2 templates (auto-escaped), so every number a
nurse programs or a patient reads is the number the plan computed. The chart copy embeds
the plan figure; print it from any browser ("Save as PDF" gives the PDF).
"""

from __future__ import annotations

import base64
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from ketapain.protocols.findings import Severity
from ketapain.protocols.planning import CoursePlan

__all__ = ["render_handout_html", "render_plan_html"]

_ENV = Environment(
    loader=PackageLoader("ketapain.reports", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


_ENV.filters["num"] = _fmt


def render_plan_html(plan: CoursePlan, *, figure: Path | None = None) -> str:
    """The plan for the chart: sessions, pump steps, findings, prediction and sources."""
    image = None
    if figure is not None:
        image = base64.b64encode(Path(figure).read_bytes()).decode("ascii")
    return _ENV.get_template("plan.html.j2").render(
        plan=plan, data=plan.as_dict(), image=image, Severity=Severity
    )


def render_handout_html(plan: CoursePlan) -> str:
    """A plain-language handout for the patient, generated from the plan."""
    return _ENV.get_template("handout.html.j2").render(plan=plan, data=plan.as_dict())
