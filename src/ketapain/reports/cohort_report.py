"""The cohort outcome report: HTML with inline SVG figures, a PDF, and the data exports.

The HTML is one self-contained page (figures inline as SVG) for the browser or the
clinic's archive; the PDF (matplotlib's PDF backend) holds a summary page and one page
per figure. Exports write the de-identified analysis table (:func:`deidentify`) as CSV
or Parquet.
"""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import polars as pl
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from matplotlib.backends.backend_pdf import PdfPages

from ketapain.analytics.cohort import COLUMNS, HIPAA_SAFE_HARBOR, deidentify
from ketapain.analytics.report import CohortAnalysis
from ketapain.analytics.responders import CRITERIA, TIMEPOINTS
from ketapain.errors import InvalidValueError
from ketapain.reports.cohort_plots import cohort_figures

__all__ = [
    "EXPORT_FORMATS",
    "export_table",
    "format_figure",
    "format_published",
    "render_cohort_html",
    "write_cohort_pdf",
]

EXPORT_FORMATS = ("csv", "parquet")

_ENV = Environment(
    loader=PackageLoader("ketapain.reports", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _pct(value: Any) -> str:
    if not isinstance(value, dict) or not value.get("n"):
        return "-"
    lo, hi = value["ci_low"], value["ci_high"]
    return f"{100 * value['rate']:.0f}% ({100 * lo:.0f}-{100 * hi:.0f}), n={value['n']}"


def _mean(value: Any, spec: str = ".1f") -> str:
    if not isinstance(value, dict) or not value.get("n"):
        return "-"
    text = format(value["mean"], spec)
    if value["n"] > 1:
        text += f" ({format(value['ci_low'], spec)} to {format(value['ci_high'], spec)})"
    return f"{text}, n={value['n']}"


def format_figure(value: Any) -> str:
    """A clinic figure (a rate or a mean, as JSON) with its interval and n, or "-"."""
    if value is None:
        return "-"
    return _pct(value) if "rate" in value else _mean(value)


def format_published(lit: dict[str, Any]) -> str:
    """A published figure (as JSON): a share, a range or a value with its unit."""
    if lit["value"] is None and lit["low"] is None:
        return "not reported as a figure"
    if lit["unit"] == "share":
        if lit["value"] is None:
            return f"{100 * lit['low']:.0f}-{100 * lit['high']:.0f}%"
        return f"{100 * lit['value']:.0f}%"
    return f"{lit['value']:g} {lit['unit']}"


def _num(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


_ENV.filters.update(pct=_pct, mean=_mean, clinic=format_figure, lit=format_published, num=_num)


def _svg(fig: Any) -> Markup:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    text = buf.getvalue()
    return Markup(text[text.index("<svg") :])


def render_cohort_html(
    a: CohortAnalysis,
    *,
    generated: datetime,
    fragment: bool = False,
    links: dict[str, str] | None = None,
) -> str:
    """The report as one HTML page, or its body only (``fragment``) for the web page;
    ``links`` (csv, parquet, pdf, json URLs) adds the download links."""
    figures = [(key, title, _svg(fig)) for key, title, fig in cohort_figures(a)]
    return _ENV.get_template("cohort.html.j2").render(
        a=a,
        data=a.as_dict(),
        figures=figures,
        generated=generated,
        criteria=CRITERIA,
        timepoints=list(TIMEPOINTS),
        columns=COLUMNS,
        safe_harbor=HIPAA_SAFE_HARBOR.cite(),
        fragment=fragment,
        links=links,
    )


def _summary_page(a: CohortAnalysis, generated: datetime) -> Any:
    data = a.as_dict()
    fig = plt.figure(figsize=(8.27, 11.69))
    lines = [
        "ketapain outcome report",
        "",
        f"{a.filter.describe()}; generated {generated:%Y-%m-%d %H:%M} UTC",
        f"{a.courses} courses of {a.patients} patients; {a.treated} with a session given",
        "",
        "Clinic beside the literature:",
    ]
    for c in data["literature"]:
        lit = c["literature"]
        lines.append(f"  {lit['label']}: clinic {format_figure(c['clinic'])}")
        lines.append(f"      {lit['source_short']}: {format_published(lit)} ({lit['note'][:70]})")
    lines += ["", "Responders (% with 95% CI):"]
    for r in data["responders"]:
        lines.append(f"  {r['timepoint']:8} {r['label']:22} {_pct(r)}; missing {r['missing']}")
    fig.text(0.06, 0.96, "\n".join(lines), va="top", family="monospace", fontsize=7)
    return fig


def write_cohort_pdf(a: CohortAnalysis, path: str | Path, *, generated: datetime) -> Path:
    """The report as a PDF: a summary page, then one page per figure."""
    out = Path(path)
    with PdfPages(out) as pdf:
        page = _summary_page(a, generated)
        pdf.savefig(page)
        plt.close(page)
        for _, title, fig in cohort_figures(a):
            fig.suptitle(title)
            pdf.savefig(fig)
            plt.close(fig)
        info = pdf.infodict()
        info["Title"] = f"ketapain outcome report: {a.filter.describe()}"
        info["CreationDate"] = generated
    return out


def export_table(table: pl.DataFrame, path: str | Path, *, fmt: str | None = None) -> Path:
    """Write the de-identified analysis table as CSV or Parquet (by ``fmt`` or suffix)."""
    out = Path(path)
    kind = fmt or out.suffix.lstrip(".").lower()
    if kind not in EXPORT_FORMATS:
        raise InvalidValueError("format", "csv or parquet", kind)
    data = deidentify(table)
    if kind == "csv":
        data.write_csv(out)
    else:
        data.write_parquet(out)
    return out
