"""Tests of ``ketapain protocols``, ``predict``, ``compare`` and ``trial``, in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ketapain.cli.main import app

runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SEEDS = ["continuous-100h", "five-day-ramp", "single-day", "ten-weekdays"]


def test_protocols_lists_the_seed_protocols_with_sources():
    """`protocols --format json` lists the seed protocols among the built-ins, with sources."""
    result = runner.invoke(app, ["protocols", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    names = [r["name"] for r in rows]
    assert set(SEEDS) <= set(names)
    assert names == sorted(names)
    assert all(r["sources"] and r["setting"] in ("outpatient", "inpatient") for r in rows)
    table = runner.invoke(app, ["protocols"])
    assert table.exit_code == 0
    assert "Schwartzman" in table.stdout


def test_protocols_lists_a_clinic_file(tmp_path: Path):
    """`protocols --protocol-dir` adds the clinic's own files to the list."""
    src = Path(__file__).parents[2] / "src/ketapain/protocols/library/single-day.toml"
    (tmp_path / "clinic-day.toml").write_text(
        src.read_text().replace('name = "single-day"', 'name = "clinic-day"')
    )
    result = runner.invoke(app, ["protocols", "--protocol-dir", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows[-1]["name"] == "clinic-day"
    assert rows[-1]["file"].endswith("clinic-day.toml")


def test_predict_json_and_figure(tmp_path: Path):
    """`predict --format json` has the documented keys and writes a PNG figure."""
    plot = tmp_path / "p.png"
    args = ["predict", "--protocol", "continuous-100h", "--weight-kg", "70"]
    result = runner.invoke(app, [*args, "--format", "json", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("peak_s_plasma_ng_per_ml", "relief_duration_days", "bp_warning", "sources"):
        assert key in data
    assert 220 < data["peak_s_plasma_ng_per_ml"] < 250  # 22.2 mg/h / 95 L/h = 234 ng/mL
    assert plot.read_bytes().startswith(PNG_SIGNATURE)


def test_predict_table_with_schedule_and_cap(tmp_path: Path):
    """A schedule file runs with a model; a capped protocol says the patient's dosing weight."""
    sched = tmp_path / "s.json"
    doses = [{"route": "iv_infusion", "start_h": 9, "duration_h": 4, "rate_mg_per_kg_h": 0.3}]
    sched.write_text(json.dumps({"doses": doses}))
    plot = str(tmp_path / "a.png")
    result = runner.invoke(
        app, ["predict", "--schedule", str(sched), "--weight-kg", "70", "--plot", plot]
    )
    assert result.exit_code == 0, result.output
    assert "peak NMDA occupancy" in result.stdout
    capped = runner.invoke(
        app, ["predict", "--protocol", "ten-weekdays", "--weight-kg", "100", "--plot", plot]
    )
    assert capped.exit_code == 0, capped.output
    assert "dosed as 71.4 kg" in capped.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--weight-kg", "70"], "exactly one of"),
        (["--weight-kg", "70", "--protocol", "nope"], "unknown protocol"),
        (["--weight-kg", "70", "--protocol", "single-day", "--baseline-nrs", "12"], "baseline_nrs"),
        (["--weight-kg", "70", "--protocol", "single-day", "--format", "xml"], "--format"),
    ],
)
def test_predict_errors_name_the_problem(tmp_path: Path, args: list[str], message: str):
    """Bad input exits with code 2 and a message naming the option or field."""
    result = runner.invoke(app, ["predict", *args, "--plot", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    assert message in result.output


def test_compare_defaults_to_the_seed_protocols(tmp_path: Path):
    """`compare` with no protocol compares the four seed protocols; longer courses last longer."""
    plot = tmp_path / "c.png"
    result = runner.invoke(app, ["compare", "--format", "json", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    rows = {r["protocol"]: r for r in json.loads(result.stdout)["protocols"]}
    assert sorted(rows) == SEEDS
    days = {k: v["relief_duration_days"] for k, v in rows.items()}
    assert days["single-day"] < days["ten-weekdays"] < days["continuous-100h"]
    assert plot.read_bytes().startswith(PNG_SIGNATURE)
    table = runner.invoke(
        app, ["compare", "--protocol", "single-day", "--plot", str(tmp_path / "d.png")]
    )
    assert table.exit_code == 0
    assert "single-day" in table.stdout


def test_compare_rejects_duplicate_protocols(tmp_path: Path):
    """The same protocol twice is an error (exit 2)."""
    args = ["compare", "--protocol", "single-day", "--protocol", "single-day"]
    result = runner.invoke(app, [*args, "--plot", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    assert "distinct" in result.output


@pytest.mark.parametrize("table_format", ["parquet", "csv"])
def test_trial_inline_writes_every_file(tmp_path: Path, table_format: str):
    """`trial --scheduler inline` writes the documented files; JSON has both arms."""
    out = tmp_path / "t"
    result = runner.invoke(
        app,
        [
            "trial",
            "--patients",
            "60",
            "--scheduler",
            "inline",
            "--weeks",
            "1,4",
            "--output-dir",
            str(out),
            "--table-format",
            table_format,
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [a["name"] for a in summary["arms"]] == ["ten-weekdays", "placebo"]
    assert [w["week"] for w in summary["arms"][0]["weeks"]] == [1, 4]
    for name in ("patients", "trajectories", "relief_km"):
        assert (out / f"{name}.{table_format}").stat().st_size > 0
    assert (out / "report.png").read_bytes().startswith(PNG_SIGNATURE)
    assert json.loads((out / "summary.json").read_text())["design"]["n_per_arm"] == 60
    if table_format == "parquet":
        patients = pq.read_table(out / "patients.parquet")
        assert patients.num_rows == 120
        assert "nrs_week_4" in patients.column_names


def test_trial_table_output_and_errors(tmp_path: Path):
    """The table names the arms; bad weeks and formats exit with code 2."""
    out = str(tmp_path / "t")
    ok = runner.invoke(
        app,
        ["trial", "--patients", "30", "--scheduler", "inline", "--no-placebo", "--output-dir", out],
    )
    assert ok.exit_code == 0, ok.output
    assert "ten-weekdays" in ok.stdout
    assert "│ placebo" not in ok.stdout
    for extra, message in (
        (["--weeks", "a"], "--weeks"),
        (["--weeks", "20"], "report_weeks"),
        (["--table-format", "xls"], "--table-format"),
        (["--format", "xml"], "--format"),
    ):
        bad = runner.invoke(
            app, ["trial", "--patients", "10", "--scheduler", "inline", "--output-dir", out, *extra]
        )
        assert bad.exit_code == 2, extra
        assert message in bad.output
