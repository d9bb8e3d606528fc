"""``ketapain report``: the cohort outcome report from the clinic database.

Reads the records into the de-identified analysis table (one audited read), analyses the
courses the filters select, prints the clinic's figures beside the literature's and the
responder rates, and writes the HTML report (and, on request, a PDF and the table as CSV
or Parquet). ``--format json`` prints the whole analysis as JSON instead of tables.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ketapain.analytics.cohort import CohortFilter
from ketapain.analytics.report import CohortAnalysis, analyse
from ketapain.cli.clinic import UrlOpt, _open
from ketapain.clinic.audit import SYSTEM
from ketapain.clinic.db import utc_now
from ketapain.clinic.outcomes import cohort_table
from ketapain.errors import KetapainError
from ketapain.reports.cohort_report import (
    export_table,
    format_figure,
    format_published,
    render_cohort_html,
    write_cohort_pdf,
)

__all__ = ["report_command"]

console = Console()
err_console = Console(stderr=True)


def _date(value: str | None, field: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{field} must be a date YYYY-MM-DD, got {value!r}") from None


def _tables(a: CohortAnalysis) -> None:
    data = a.as_dict()
    console.print(
        f"[bold]{a.filter.describe()}[/]: {a.courses} courses of {a.patients} patients, "
        f"{a.treated} with a session given"
    )
    lit = Table(title="The clinic beside the literature (95% CI)")
    for col in ("measure", "clinic", "published", "source"):
        lit.add_column(col)
    for c in data["literature"]:
        f = c["literature"]
        lit.add_row(f["label"], format_figure(c["clinic"]), format_published(f), f["source_short"])
    console.print(lit)
    resp = Table(title="Responders (95% CI)")
    resp.add_column("time point")
    resp.add_column("criterion")
    resp.add_column("rate")
    resp.add_column("no NRS then", justify="right")
    for r in data["responders"]:
        resp.add_row(r["timepoint"], r["label"], format_figure(r), str(r["missing"]))
    console.print(resp)


def report_command(
    database_url: UrlOpt = None,
    start_from: Annotated[
        str | None, typer.Option("--from", help="first course start date, YYYY-MM-DD")
    ] = None,
    start_to: Annotated[
        str | None, typer.Option("--to", help="last course start date, YYYY-MM-DD")
    ] = None,
    protocol: Annotated[
        list[str] | None, typer.Option("--protocol", help="only this protocol (repeatable)")
    ] = None,
    diagnosis: Annotated[
        list[str] | None,
        typer.Option("--diagnosis", help="only this diagnosis key, e.g. crps_1 (repeatable)"),
    ] = None,
    html: Annotated[Path, typer.Option(help="HTML report to write")] = Path("ketapain-report.html"),
    pdf: Annotated[Path | None, typer.Option(help="PDF report to write")] = None,
    csv: Annotated[Path | None, typer.Option(help="de-identified analysis table as CSV")] = None,
    parquet: Annotated[
        Path | None, typer.Option(help="de-identified analysis table as Parquet")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="table (terminal tables) or json (stdout)")
    ] = "table",
    snapshot: Annotated[
        Path | None,
        typer.Option(
            help="keep the outcome rows in this file between reports and read again only "
            "what changed (default: KETAPAIN_OUTCOME_SNAPSHOT)"
        ),
    ] = None,
) -> None:
    """Outcome report of the clinic's courses: responders, relief, opioids, safety,
    calibration and the literature beside them."""
    if fmt not in ("table", "json"):
        raise typer.BadParameter(f"--format must be table or json, got {fmt!r}")
    try:
        f = CohortFilter(
            start_from=_date(start_from, "--from"),
            start_to=_date(start_to, "--to"),
            protocols=tuple(protocol or ()),
            diagnoses=tuple(diagnosis or ()),
        )
        settings, db = _open(database_url)
        generated: datetime = utc_now()
        quiet = fmt == "json"
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err_console,
            disable=quiet or not sys.stderr.isatty(),
        ) as progress:
            task = progress.add_task("reading the records", total=3)
            table = cohort_table(
                db,
                SYSTEM,
                purpose="ketapain report",
                as_of=generated,
                snapshot=snapshot or settings.outcome_snapshot,
            )
            progress.update(task, advance=1, description="analysing")
            a = analyse(table, f)
            progress.update(task, advance=1, description="drawing the report")
            html.write_text(render_cohort_html(a, generated=generated), encoding="utf-8")
            if pdf is not None:
                write_cohort_pdf(a, pdf, generated=generated)
            for path, kind in ((csv, "csv"), (parquet, "parquet")):
                if path is not None:
                    export_table(a.table, path, fmt=kind)
            progress.update(task, advance=1)
    except KetapainError as err:
        err_console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(code=2) from None
    if quiet:
        sys.stdout.write(json.dumps(a.as_dict(), indent=2, default=str, allow_nan=False) + "\n")
        return
    _tables(a)
    written = [p for p in (html, pdf, csv, parquet) if p is not None]
    console.print("wrote " + ", ".join(str(p) for p in written))
