"""Tests of the ``ketapain`` command line, run in-process through Typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from numpy.testing import assert_allclose
from typer.testing import CliRunner

from ketapain.cli.main import app

runner = CliRunner()

ISSUE_SCHEDULE = {
    "doses": [
        {"route": "iv_infusion", "start_h": 0, "duration_h": 4, "rate_mg_per_kg_h": 0.35},
        {"route": "iv_infusion", "start_h": 24, "duration_h": 4, "rate_mg_per_h": 25},
        {"route": "iv_bolus", "time_h": 0, "dose_mg": 20},
        {"route": "oral", "time_h": 48, "dose_mg": 35},
    ]
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def schedule_file(tmp_path: Path) -> Path:
    """The schedule given as the example of the simulate command."""
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(ISSUE_SCHEDULE), encoding="utf-8")
    return path


def _simulate(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["simulate", *args])
    return result.exit_code, result.output


def test_models_json_lists_required_keys() -> None:
    """``models --format json`` gives name, drug, population and source for every model."""
    result = runner.invoke(app, ["models", "--format", "json"])
    assert result.exit_code == 0
    rows = json.loads(result.output)
    names = {r["name"] for r in rows}
    assert {
        "domino",
        "domino-cl79",
        "clements-250",
        "herd-2007",
        "hijazi-2003",
        "flint-fanta-s",
    } <= names
    for row in rows:
        assert row["drug"] in ("racemic", "s-ketamine")
        assert row["population"] and row["source"]


def test_models_table() -> None:
    """The default ``models`` output is a table naming each model."""
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    assert "domino-cl79" in result.output and "Kamp" in result.output


def test_simulate_json_contract(schedule_file: Path) -> None:
    """JSON output has the contract keys as arrays of equal length."""
    code, out = _simulate(
        "--model",
        "domino-cl79",
        "--weight-kg",
        "70",
        "--schedule",
        str(schedule_file),
        "--times-h",
        "0:72:0.5",
        "--format",
        "json",
    )
    assert code == 0, out
    data = json.loads(out)
    keys = {
        "time_h",
        "ketamine_plasma_ng_per_ml",
        "ketamine_effect_site_ng_per_ml",
        "norketamine_plasma_ng_per_ml",
    }
    assert keys <= set(data)
    assert {len(data[k]) for k in keys} == {145}
    assert data["time_h"][-1] == 72.0
    plasma = np.array(data["ketamine_plasma_ng_per_ml"])
    # The 20 mg bolus at time 0 is included (right-continuous): 20 mg in V1 = 0.063 L/kg.
    assert_allclose(plasma[0], 20.0 / (0.063 * 70) * 1000, rtol=1e-9)


def test_simulate_population_percentiles(schedule_file: Path) -> None:
    """``--population`` reports 5th, 50th and 95th percentile curves, ordered."""
    code, out = _simulate(
        "--weight-kg",
        "70",
        "--schedule",
        str(schedule_file),
        "--times-h",
        "0:30:1",
        "--format",
        "json",
        "--population",
        "300",
        "--seed",
        "4",
    )
    assert code == 0, out
    data = json.loads(out)
    p05, p50, p95 = (np.array(data[f"ketamine_plasma_ng_per_ml_p{q}"]) for q in ("05", "50", "95"))
    assert (p05 <= p50).all() and (p50 <= p95).all()
    assert (p95 - p05)[2] > 0


def test_simulate_is_reproducible_with_a_seed(schedule_file: Path) -> None:
    """The same seed gives the same population output."""
    args = (
        "--weight-kg",
        "70",
        "--schedule",
        str(schedule_file),
        "--times-h",
        "0:10:1",
        "--format",
        "csv",
        "--population",
        "50",
        "--seed",
        "11",
    )
    assert _simulate(*args)[1] == _simulate(*args)[1]


def test_simulate_csv_and_table(schedule_file: Path) -> None:
    """CSV has a header and one row per time; the table prints."""
    code, out = _simulate(
        "--weight-kg",
        "70",
        "--schedule",
        str(schedule_file),
        "--times-h",
        "0:8:0.25",
        "--format",
        "csv",
    )
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith("time_h,ketamine_plasma_ng_per_ml")
    assert len(lines) == 34
    code, out = _simulate(
        "--weight-kg", "70", "--schedule", str(schedule_file), "--times-h", "0:2:1"
    )
    assert code == 0 and "ketamine plasma" in out


def test_simulate_png(schedule_file: Path, tmp_path: Path) -> None:
    """PNG output is a picture file."""
    out_path = tmp_path / "c.png"
    code, out = _simulate(
        "--weight-kg",
        "70",
        "--schedule",
        str(schedule_file),
        "--times-h",
        "0:72:0.25",
        "--format",
        "png",
        "--output",
        str(out_path),
        "--population",
        "100",
    )
    assert code == 0, out
    assert out_path.read_bytes()[:8] == PNG_SIGNATURE


def test_simulate_saves_every_curve(schedule_file: Path, tmp_path: Path) -> None:
    """npz and parquet keep each virtual patient's curve."""
    npz, parquet = tmp_path / "c.npz", tmp_path / "c.parquet"
    base = (
        "--weight-kg",
        "70",
        "--schedule",
        str(schedule_file),
        "--times-h",
        "0:10:1",
        "--population",
        "20",
        "--seed",
        "2",
    )
    assert _simulate(*base, "--format", "npz", "--output", str(npz))[0] == 0
    assert _simulate(*base, "--format", "parquet", "--output", str(parquet))[0] == 0
    arrays = np.load(npz)
    assert arrays["ketamine_plasma_ng_per_ml"].shape == (20, 11)
    table = pq.read_table(parquet).to_pydict()
    assert len(table["subject"]) == 220
    assert_allclose(
        np.array(table["ketamine_plasma_ng_per_ml"]).reshape(20, 11),
        arrays["ketamine_plasma_ng_per_ml"],
    )


def test_simulate_with_model_file(schedule_file: Path, tmp_path: Path) -> None:
    """``--model-file`` simulates a user-defined model."""
    model = tmp_path / "m.toml"
    model.write_text(
        'name = "mine"\ndrug = "racemic"\n[pk]\ncl_l_per_h = 79\nv1_l = 20\n', encoding="utf-8"
    )
    iv_only = tmp_path / "iv.json"
    iv_only.write_text(json.dumps({"doses": ISSUE_SCHEDULE["doses"][:2]}), encoding="utf-8")
    code, out = _simulate(
        "--weight-kg",
        "70",
        "--schedule",
        str(iv_only),
        "--times-h",
        "0:4:1",
        "--format",
        "json",
        "--model-file",
        str(model),
    )
    assert code == 0, out
    data = json.loads(out)
    assert "ketamine_effect_site_ng_per_ml" not in data  # the file gives no ke0
    # A model without oral absorption refuses oral doses with a clear message.
    code, out = _simulate(
        "--weight-kg", "70", "--schedule", str(schedule_file), "--model-file", str(model)
    )
    assert code == 2 and "no oral absorption" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--weight-kg", "-3"), "weight_kg must be"),
        (("--weight-kg", "70", "--times-h", "0:8"), "--times-h must be"),
        (("--weight-kg", "70", "--model", "nope"), "unknown model 'nope'"),
        (("--weight-kg", "70", "--format", "npz"), "needs --output"),
    ],
)
def test_simulate_errors_are_clear(
    schedule_file: Path, args: tuple[str, ...], message: str
) -> None:
    """Bad input exits with code 2 and a message naming the field."""
    code, out = _simulate("--schedule", str(schedule_file), *args)
    assert code == 2
    assert message in out


def test_bad_schedule_names_the_dose(tmp_path: Path) -> None:
    """An out-of-range dose in the schedule file is reported with its index and field."""
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "doses": [
                    {
                        "route": "iv_infusion",
                        "start_h": 0,
                        "duration_h": 4,
                        "rate_mg_per_kg_h": 0.35,
                    },
                    {
                        "route": "iv_infusion",
                        "start_h": 0,
                        "duration_h": 4,
                        "rate_mg_per_kg_h": 350,
                    },
                ]
            }
        ),
        encoding="utf-8",
    )
    code, out = _simulate("--weight-kg", "70", "--schedule", str(bad))
    assert code == 2
    assert "doses[1].rate_mg_per_kg_h" in out


def test_demo_runs_and_plots(tmp_path: Path) -> None:
    """The demo simulates the seed series and writes its plot."""
    out_path = tmp_path / "demo.png"
    result = runner.invoke(app, ["demo", "--population", "30", "--output", str(out_path)])
    assert result.exit_code == 0, result.output
    assert "Schwartzman" in result.output
    assert out_path.read_bytes()[:8] == PNG_SIGNATURE
