"""Tests of ``ketapain report`` on a demo clinic database, run in-process through Typer's runner."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import Result
from typer.testing import CliRunner

from ketapain.analytics.cohort import COLUMNS, empty_cohort
from ketapain.analytics.report import analyse
from ketapain.cli.main import app
from ketapain.clinic.audit import list_entries
from ketapain.clinic.db import Database, utc_now

runner = CliRunner()
DEIDENTIFIED = ["start_year" if c.name == "start_date" else c.name for c in COLUMNS]
# What the demo clinic charts about its people (ketapain.clinic.demo): none may be exported.
DEMO_IDENTIFIERS = ("KP-10", "Lindqvist", "Okoro", "Moreau", "Tanaka", "Byrne", "Silva", "Maja")


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An SQLite file filled by ``ketapain db demo`` (6 courses, arranged around today)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'clinic.db'}"
    result = runner.invoke(app, ["db", "demo", "--database-url", url])
    assert result.exit_code == 0, result.output
    return url


def _report(url: str, *args: str) -> Result:
    return runner.invoke(app, ["report", "--database-url", url, *args])


def _json(url: str, tmp_path: Path, *args: str) -> dict[str, Any]:
    result = _report(url, "--format", "json", "--html", str(tmp_path / "r.html"), *args)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_report_writes_html_pdf_csv_and_parquet(
    demo_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``--html`` the report goes to ``ketapain-report.html`` in the working
    directory (a whole page with the literature table and inline SVG figures); ``--pdf``,
    ``--csv`` and ``--parquet`` write a PDF and the de-identified table (start year, no
    start date, no MRN or name), one row per course. The terminal shows the scope, the
    tables and what was written; the read is audited."""
    monkeypatch.chdir(tmp_path)
    out = {k: tmp_path / "out" / f"cohort.{k}" for k in ("pdf", "csv", "parquet")}
    (tmp_path / "out").mkdir()
    result = _report(demo_url, *(a for k, p in out.items() for a in (f"--{k}", str(p))))
    assert result.exit_code == 0, result.output
    page = (tmp_path / "ketapain-report.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert 'id="literature"' in page and 'id="responders"' in page
    assert page.count("<svg") >= 2
    assert out["pdf"].read_bytes().startswith(b"%PDF")
    text = out["csv"].read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == DEIDENTIFIED
    assert len(rows) == 1 + 6
    assert [x for x in DEMO_IDENTIFIERS if x in text] == []
    table = pl.read_parquet(out["parquet"])
    assert table.columns == DEIDENTIFIED
    assert table.height == 6
    assert table["start_year"].dtype == pl.Int64
    assert table["course_key"].n_unique() == 6
    printed = result.stdout.replace("\n", "")
    assert "all courses: 6 courses of 6 patients" in printed
    assert "The clinic beside the literature" in printed
    assert "wrote ketapain-report.html" in printed
    for path in out.values():
        assert str(path) in printed
    with Database.connect(demo_url).read() as session:
        reads = list_entries(session, action="read_outcomes")
    assert [e.detail for e in reads] == ["ketapain report: 6 courses, de-identified"]


def test_format_json_prints_the_analysis(demo_url: str, tmp_path: Path) -> None:
    """``--format json`` prints the analysis with the keys of ``CohortAnalysis.as_dict``."""
    data = _json(demo_url, tmp_path)
    assert set(data) == set(analyse(empty_cohort()).as_dict())
    assert (data["filter"], data["courses"], data["patients"]) == ("all courses", 6, 6)
    assert 0 < data["treated_courses"] < 6


def test_filters_select_the_courses(demo_url: str, tmp_path: Path) -> None:
    """Protocol, diagnosis and start-date filters change the courses counted and the
    scope: no single-day course, four CRPS I courses, one course starting this week
    (the demo has courses starting two weeks ago, last week, this week and next week)."""
    monday = (utc_now().date() - timedelta(days=utc_now().date().weekday())).isoformat()
    cases = [
        (("--protocol", "single-day"), 0, "protocol single-day"),
        (("--diagnosis", "crps_1"), 4, "diagnosis crps_1"),
        (("--from", monday, "--to", monday), 1, f"courses starting {monday} to {monday}"),
    ]
    for args, courses, words in cases:
        data = _json(demo_url, tmp_path, *args)
        assert (data["courses"], data["filter"]) == (courses, words), args


@pytest.mark.parametrize("option", ["--from", "--to"])
def test_a_bad_date_is_refused_naming_the_option(
    demo_url: str, tmp_path: Path, option: str
) -> None:
    """A date not written YYYY-MM-DD exits non-zero with a message naming the option."""
    result = _report(demo_url, option, "21/11/2026", "--html", str(tmp_path / "r.html"))
    assert result.exit_code != 0
    assert option in result.output and "YYYY-MM-DD" in result.output
    assert not (tmp_path / "r.html").exists()


def test_from_after_to_is_refused(demo_url: str, tmp_path: Path) -> None:
    """A start range that ends before it begins is an error naming ``start_to`` (exit 2)."""
    result = _report(demo_url, "--from", "2026-12-01", "--to", "2026-01-01")
    assert result.exit_code == 2
    assert "start_to" in result.output


def test_an_unknown_format_is_refused(demo_url: str, tmp_path: Path) -> None:
    """``--format`` takes table or json only."""
    result = _report(demo_url, "--format", "yaml", "--html", str(tmp_path / "r.html"))
    assert result.exit_code != 0
    assert "--format" in result.output and "yaml" in result.output
    assert not (tmp_path / "r.html").exists()


def test_snapshot_keeps_the_rows_between_reports(demo_url: str, tmp_path: Path) -> None:
    """--snapshot writes the snapshot on the first report and gives the same analysis on
    the next one, read from it."""
    snap = tmp_path / "outcomes.parquet"
    first = _json(demo_url, tmp_path, "--snapshot", str(snap))
    assert snap.exists()
    second = _json(demo_url, tmp_path, "--snapshot", str(snap))
    assert first["courses"] == second["courses"]
    assert first["responders"] == second["responders"]
