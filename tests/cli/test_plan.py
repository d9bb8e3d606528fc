"""Tests of ``ketapain screen``, ``plan`` and ``check-rate``, run in-process through Typer."""

from __future__ import annotations

import itertools
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ketapain.cli.main import app
from ketapain.errors import ExtrapolationWarning

runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SEVERITIES = {"hard_stop", "warning", "info"}
GOOD_VITALS = {"sbp_mmhg": 128, "dbp_mmhg": 80, "hr_per_min": 72, "spo2_pct": 98}
ISSUE_PATIENT = {
    "age_y": 45,
    "sex": "female",
    "weight_kg": 68,
    "height_cm": 165,
    "pregnant": False,
    "diagnoses": ["crps_1"],
    "history": ["uncontrolled_hypertension"],
    "medications": [{"name": "oxycodone", "dose_mg_per_day": 40}],
    "labs": {"alt_u_per_l": 30, "ast_u_per_l": 25, "alt_uln_u_per_l": 40, "ast_uln_u_per_l": 40},
    "vitals": GOOD_VITALS,
}
HEALTHY_68 = {
    "age_y": 45,
    "sex": "female",
    "weight_kg": 68,
    "height_cm": 165,
    "diagnoses": ["crps_1"],
    "vitals": GOOD_VITALS,
}
HEALTHY_70 = {
    "age_y": 45,
    "sex": "male",
    "weight_kg": 70,
    "height_cm": 175,
    "diagnoses": ["crps_1"],
    "vitals": GOOD_VITALS,
}
# 200 kg (the drug library's upper weight bound, so no weight finding), 165 cm: the
# adjusted dosing weight is about 114 kg, which keeps 0.5 mg/kg/h under 60 mg/h.
HEAVY_200 = HEALTHY_68 | {"weight_kg": 200}
HTN_OVERRIDE = "uncontrolled_hypertension:BP now controlled on review"
TEN_WEEKDAY_DATES = [
    "2026-12-07",
    "2026-12-08",
    "2026-12-09",
    "2026-12-10",
    "2026-12-11",
    "2026-12-14",
    "2026-12-15",
    "2026-12-16",
    "2026-12-17",
    "2026-12-18",
]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default outputs (ketapain-plan.png, ketapain-audit.jsonl) land in tmp_path."""
    monkeypatch.chdir(tmp_path)


def _patient(tmp_path: Path, data: dict[str, Any], name: str = "patient.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _plan(patient: Path, protocol: str, *extra: str, start: str = "2026-12-07") -> Any:
    args = ["plan", "--patient", str(patient), "--protocol", protocol, "--start-date", start]
    return runner.invoke(app, [*args, "--follow-up-days", "14", *extra])


def _codes(findings: list[dict[str, Any]], severity: str | None = None) -> set[str]:
    return {f["code"] for f in findings if severity is None or f["severity"] == severity}


def _audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- screen ---------------------------------------------------------------------------


def test_screen_issue_patient_json_contract(tmp_path: Path):
    """The issue's patient is not eligible (exit 3); the JSON has the documented keys."""
    patient = _patient(tmp_path, ISSUE_PATIENT)
    result = runner.invoke(app, ["screen", str(patient), "--format", "json"])
    assert result.exit_code == 3, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"eligible", "findings", "overrides"}
    assert data["eligible"] is False
    assert data["overrides"] == []
    assert data["findings"]
    for f in data["findings"]:
        assert set(f) == {"severity", "code", "reason", "source"}
        assert f["severity"] in SEVERITIES
        assert f["reason"]
    ranks = [["hard_stop", "warning", "info"].index(f["severity"]) for f in data["findings"]]
    assert ranks == sorted(ranks)  # most serious first
    htn = [f for f in data["findings"] if f["code"] == "uncontrolled_hypertension"]
    assert len(htn) == 1
    assert htn[0]["severity"] == "hard_stop"
    assert htn[0]["source"]
    assert _codes(data["findings"], "hard_stop") == {"uncontrolled_hypertension"}
    assert "opioid_mme" in _codes(data["findings"], "warning")  # oxycodone 40 mg = 60 MME
    assert not (tmp_path / "ketapain-audit.jsonl").exists()  # no override, no audit entry


def test_screen_override_makes_eligible_and_is_audited(tmp_path: Path):
    """A named clinician's override gives exit 0, eligible, and one audit line."""
    patient = _patient(tmp_path, ISSUE_PATIENT | {"patient_id": "p-17"})
    log = tmp_path / "audit.jsonl"
    args = ["screen", str(patient), "--format", "json", "--audit-log", str(log)]
    result = runner.invoke(app, [*args, "--override", HTN_OVERRIDE, "--clinician", "Dr A. Jones"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["eligible"] is True
    [ov] = data["overrides"]
    assert ov["code"] == "uncontrolled_hypertension"
    assert ov["clinician"] == "Dr A. Jones"
    [line] = _audit_lines(log)
    assert line["command"] == "screen"
    assert line["code"] == "uncontrolled_hypertension"
    assert line["clinician"] == "Dr A. Jones"
    assert line["reason"] == "BP now controlled on review"
    assert line["patient_id"] == "p-17"
    assert line["time_utc"].endswith("+00:00")
    again = runner.invoke(app, [*args, "--override", HTN_OVERRIDE, "--clinician", "Dr B"])
    assert again.exit_code == 0, again.output
    assert [x["clinician"] for x in _audit_lines(log)] == ["Dr A. Jones", "Dr B"]  # appended


def test_screen_override_needs_a_clinician(tmp_path: Path):
    """An override without --clinician is bad input (exit 2) and writes no audit line."""
    patient = _patient(tmp_path, ISSUE_PATIENT)
    log = tmp_path / "audit.jsonl"
    result = runner.invoke(
        app, ["screen", str(patient), "--override", HTN_OVERRIDE, "--audit-log", str(log)]
    )
    assert result.exit_code == 2
    assert "--clinician" in result.stderr
    assert not log.exists()


@pytest.mark.parametrize(
    "overrides",
    [
        ["pregnancy:not pregnant"],
        [HTN_OVERRIDE, "pregnancy:not pregnant"],
        ["workup_ecg:done last week"],  # a warning, not a hard stop
    ],
)
def test_screen_override_of_no_hard_stop_is_an_error(tmp_path: Path, overrides: list[str]):
    """An override code matching no hard stop exits 2 and appends nothing to the audit log."""
    patient = _patient(tmp_path, ISSUE_PATIENT)
    log = tmp_path / "audit.jsonl"
    log.write_text('{"earlier": "entry"}\n', encoding="utf-8")
    args = ["screen", str(patient), "--audit-log", str(log), "--clinician", "Dr A. Jones"]
    for text in overrides:
        args += ["--override", text]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--override" in result.stderr
    assert "uncontrolled_hypertension" in result.stderr  # names the codes that can be overridden
    assert log.read_text(encoding="utf-8") == '{"earlier": "entry"}\n'


@pytest.mark.parametrize("text", ["no-colon", ":reason only", "pregnancy:  "])
def test_screen_malformed_override_is_an_error(tmp_path: Path, text: str):
    """An override that is not CODE:REASON exits 2 naming --override."""
    patient = _patient(tmp_path, ISSUE_PATIENT)
    result = runner.invoke(
        app, ["screen", str(patient), "--override", text, "--clinician", "Dr A. Jones"]
    )
    assert result.exit_code == 2
    assert "--override" in result.stderr


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"wieght_kg": 68}, "wieght_kg"),
        ({"history": ["flying_carpet_syndrome"]}, "history[0]"),
        ({"diagnoses": ["crps_1", "not_a_diagnosis"]}, "diagnoses[1]"),
        ({"vitals": {"sbp_mmhg": 1280}}, "vitals.sbp_mmhg"),
        ({"labs": {"alt_u_per_l": 30}}, "labs.alt_uln_u_per_l"),
        ({"sex": "f"}, "sex"),
    ],
)
def test_screen_bad_patient_file_names_the_field(
    tmp_path: Path, change: dict[str, Any], field: str
):
    """An unknown key or item, or an impossible value, exits 2 naming the field."""
    patient = _patient(tmp_path, HEALTHY_68 | change)
    result = runner.invoke(app, ["screen", str(patient)])
    assert result.exit_code == 2
    assert field in result.stderr


def test_screen_missing_or_broken_file_is_bad_input(tmp_path: Path):
    """A missing file or invalid JSON exits 2 naming the patient file."""
    missing = runner.invoke(app, ["screen", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2
    assert "patient file" in missing.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    bad = runner.invoke(app, ["screen", str(broken)])
    assert bad.exit_code == 2
    assert "valid JSON" in bad.stderr


def test_screen_table_prints_codes_and_verdict(tmp_path: Path):
    """The table format lists the finding codes and says the patient is not eligible."""
    patient = _patient(tmp_path, ISSUE_PATIENT)
    result = runner.invoke(app, ["screen", str(patient)])
    assert result.exit_code == 3
    for code in ("hard_stop", "workup_ecg", "opioid_mme", "evidence_crps_1"):
        assert code in result.stdout
    assert "not eligible" in result.stdout


def test_screen_healthy_patient_is_eligible(tmp_path: Path):
    """A patient with no contraindication is eligible (exit 0) with no hard stop."""
    patient = _patient(tmp_path, HEALTHY_68)
    result = runner.invoke(app, ["screen", str(patient), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["eligible"] is True
    assert not _codes(data["findings"], "hard_stop")
    table = runner.invoke(app, ["screen", str(patient)])
    assert table.exit_code == 0
    assert "eligible" in table.stdout
    assert "not eligible" not in table.stdout


def test_screen_for_a_protocol_adds_the_liver_workup(tmp_path: Path):
    """Screening for ten weekday infusions asks for liver tests; without a protocol it does not."""
    patient = _patient(tmp_path, HEALTHY_68)
    plain = runner.invoke(app, ["screen", str(patient), "--format", "json"])
    serial = runner.invoke(
        app, ["screen", str(patient), "--format", "json", "--protocol", "ten-weekdays"]
    )
    assert serial.exit_code == 0, serial.output
    assert "workup_lft" not in _codes(json.loads(plain.stdout)["findings"])
    assert "workup_lft" in _codes(json.loads(serial.stdout)["findings"], "warning")
    unknown = runner.invoke(app, ["screen", str(patient), "--protocol", "no-such-protocol"])
    assert unknown.exit_code == 2


# --- plan -----------------------------------------------------------------------------


def test_plan_ten_weekdays_json_and_documents(tmp_path: Path):
    """The issue's plan: 10 weekday sessions at 23.8 mL/h, 952 mg, figure, chart copy, handout."""
    patient = _patient(tmp_path, HEALTHY_68)
    html, handout, plot = tmp_path / "plan.html", tmp_path / "handout.html", tmp_path / "plan.png"
    result = _plan(
        patient,
        "ten-weekdays",
        "--bag-mg",
        "250",
        "--bag-ml",
        "250",
        "--format",
        "json",
        "--html",
        str(html),
        "--handout",
        str(handout),
        "--plot",
        str(plot),
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["blocked"] is False
    assert data["eligible"] is True
    assert data["plot"] == str(plot)
    assert data["start_date"] == "2026-12-07"
    sessions = data["sessions"]
    assert [s["date"] for s in sessions] == TEN_WEEKDAY_DATES
    assert [s["number"] for s in sessions] == list(range(1, 11))
    assert all(date.fromisoformat(s["date"]).weekday() < 5 for s in sessions)
    for s in sessions:
        [step] = s["steps"]
        assert step["rate_ml_per_h"] == pytest.approx(23.8)  # 0.35 x 68 = 23.8 mg/h at 1 mg/mL
        assert step["rate_mg_per_h"] == pytest.approx(23.8)
        assert step["rate_mg_per_kg_h"] == pytest.approx(0.35)
        assert step["duration_min"] == pytest.approx(240)
        assert step["start"] == f"{s['date']}T09:00"
        assert s["end"] == f"{s['date']}T13:00"
        assert s["dose_mg"] == pytest.approx(95.2)
        assert s["volume_ml"] == pytest.approx(95.2)
        assert s["bags"] == 1
        assert s["pending_decision_after_session"] is None
    cumulative = [s["cumulative_dose_mg"] for s in sessions]
    assert cumulative == pytest.approx([95.2 * k for k in range(1, 11)])
    assert data["course_dose_mg"] == pytest.approx(952.0)
    assert data["bag"]["conc_mg_per_ml"] == pytest.approx(1.0)
    assert data["dosing_weight"]["policy"] == "actual"
    assert data["dosing_weight"]["dosing_kg"] == pytest.approx(68.0)
    assert data["discharge"]["escort_home"] is True
    assert {p["drug"] for p in data["premedication"]} == {"midazolam", "clonidine"}
    assert data["oral_follow_on"] is None
    assert data["decision_points"] == []
    assert data["target"] is None
    assert data["prediction"] is not None
    assert "workup_lft" in _codes(data["findings"], "warning")  # 10 infusions in 14 days
    assert not _codes(data["findings"], "hard_stop")
    assert plot.read_bytes().startswith(PNG_SIGNATURE)
    chart = html.read_text(encoding="utf-8")
    assert "Mon 07 Dec 2026" in chart
    assert "Fri 18 Dec 2026" in chart
    assert "Sat 12 Dec" not in chart
    assert "23.8" in chart
    assert "data:image/png;base64," in chart
    text = handout.read_text(encoding="utf-8")
    assert "adult must take you home" in text
    assert "Do not drive" in text
    assert "NMDA" in text
    assert "central\nsensitization" in text or "central sensitization" in text
    for day in ("Monday 07 December", "Friday 11 December", "Friday 18 December"):
        assert day in text
    assert "Saturday" not in text
    assert not (tmp_path / "ketapain-audit.jsonl").exists()


def test_plan_writes_the_default_figure(tmp_path: Path):
    """Without --plot the figure is ketapain-plan.png in the working directory."""
    patient = _patient(tmp_path, HEALTHY_70)
    result = _plan(patient, "single-day", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["plot"] == "ketapain-plan.png"
    assert (tmp_path / "ketapain-plan.png").read_bytes().startswith(PNG_SIGNATURE)


def test_plan_seed_outpatient_decision_and_oral_follow_on(tmp_path: Path):
    """seed-outpatient: decision on session 2's date, later sessions pending, 14 days oral."""
    patient = _patient(tmp_path, HEALTHY_68)
    result = _plan(patient, "seed-outpatient", "--format", "json", "--plot", "s.png")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    sessions = data["sessions"]
    assert len(sessions) == 7
    assert all(date.fromisoformat(s["date"]).weekday() < 5 for s in sessions)
    [dp] = data["decision_points"]
    assert dp["after_session"] == 2
    assert dp["date"] == sessions[1]["date"] == "2026-12-08"
    assert dp["source"]
    assert [s["pending_decision_after_session"] for s in sessions[:2]] == [None, None]
    assert all(s["pending_decision_after_session"] == 2 for s in sessions[2:])
    assert [s["phase"] for s in sessions] == ["test"] * 2 + ["series"] * 5
    rates = [s["steps"][0]["rate_mg_per_kg_h"] for s in sessions]
    assert rates == pytest.approx([0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.5])  # titration path
    oral = data["oral_follow_on"]
    assert oral is not None
    assert len(oral["times"]) == 3  # three times a day
    start, end = date.fromisoformat(oral["start_date"]), date.fromisoformat(oral["end_date"])
    assert start == date.fromisoformat(sessions[-1]["date"]) + timedelta(days=1)
    assert (end - start).days + 1 == 14
    assert oral["dose_mg"] == pytest.approx(34.0)  # 0.5 mg/kg x 68 kg
    assert oral["daily_dose_mg"] == pytest.approx(3 * 34.0)
    assert oral["total_dose_mg"] == pytest.approx(14 * 3 * 34.0)
    assert [b["name"] for b in data["boosters"]] == ["booster"]


def test_plan_saturday_start_moves_to_monday(tmp_path: Path):
    """A weekend start of a weekdays-only protocol moves to Monday with an info finding."""
    patient = _patient(tmp_path, HEALTHY_68)
    result = _plan(patient, "ten-weekdays", "--format", "json", start="2026-12-05")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["start_date"] == "2026-12-05"
    assert [s["date"] for s in data["sessions"]] == TEN_WEEKDAY_DATES
    moved = [f for f in data["findings"] if f["code"] == "start_moved"]
    assert len(moved) == 1
    assert moved[0]["severity"] == "info"
    assert "Monday 07 December 2026" in moved[0]["reason"]


def test_plan_heavy_patient_is_blocked_above_60_mg_per_h(tmp_path: Path):
    """200 kg at 0.5 mg/kg/h is 100 mg/h: above the 60 mg/h hard maximum, exit 3."""
    patient = _patient(tmp_path, HEAVY_200)
    with pytest.warns(ExtrapolationWarning, match="weight outside"):
        result = _plan(patient, "single-day", "--format", "json", "--plot", "h.png")
    assert result.exit_code == 3, result.output
    data = json.loads(result.stdout)
    assert data["blocked"] is True
    assert data["eligible"] is True  # screening passes; the guardrail blocks
    assert "rate_mg_per_h.hard_max" in _codes(data["findings"], "hard_stop")
    assert data["sessions"][0]["steps"][0]["rate_mg_per_h"] == pytest.approx(100.0)
    assert data["findings"][0]["severity"] == "hard_stop"


def test_plan_override_of_a_guardrail_is_audited(tmp_path: Path):
    """Overriding the rate hard stop gives exit 0 and appends a 'plan' line to the audit log."""
    patient = _patient(tmp_path, HEAVY_200 | {"patient_id": "heavy-1"})
    override = ["--override", "rate_mg_per_h.hard_max:reason", "--clinician", "X"]
    with pytest.warns(ExtrapolationWarning):
        result = _plan(patient, "single-day", "--format", "json", *override)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["blocked"] is False
    [ov] = data["overrides"]
    assert (ov["code"], ov["clinician"], ov["reason"]) == ("rate_mg_per_h.hard_max", "X", "reason")
    [line] = _audit_lines(tmp_path / "ketapain-audit.jsonl")  # the default log, in the cwd
    assert line["command"] == "plan"
    assert line["protocol"] == "single-day"
    assert line["patient_id"] == "heavy-1"
    assert line["code"] == "rate_mg_per_h.hard_max"
    assert line["clinician"] == "X"
    assert line["time_utc"]


def test_plan_adjusted_weight_unblocks_the_heavy_patient(tmp_path: Path):
    """With the adjusted weight policy (height given) the 200 kg plan is not blocked."""
    patient = _patient(tmp_path, HEAVY_200)
    with pytest.warns(ExtrapolationWarning):
        result = _plan(patient, "single-day", "--format", "json", "--weight-policy", "adjusted")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["blocked"] is False
    w = data["dosing_weight"]
    assert w["policy"] == "adjusted"
    assert w["dosing_kg"] == pytest.approx(w["ideal_kg"] + 0.4 * (200 - w["ideal_kg"]))
    assert w["source"]
    step = data["sessions"][0]["steps"][0]
    assert step["rate_mg_per_h"] <= 60.0
    assert step["rate_mg_per_h"] == pytest.approx(0.5 * w["dosing_kg"], abs=0.1)


def test_plan_target_mode_reaches_and_holds_the_target(tmp_path: Path):
    """Target 150 ng/mL (plasma) at 70 kg: loading then decreasing steps, end within 3%."""
    patient = _patient(tmp_path, HEALTHY_70)
    result = _plan(
        patient, "single-day", "--format", "json", "--target-ng-per-ml", "150", "--plot", "t.png"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    target = data["target"]
    assert target["conc_ng_per_ml"] == 150
    assert target["site"] == "plasma"
    [ts] = target["sessions"]
    assert ts["number"] == 1
    assert ts["end_conc_ng_per_ml"] == pytest.approx(150, rel=0.03)
    assert ts["time_to_target_h"] < 1.0
    steps = data["sessions"][0]["steps"]
    assert len(steps) > 3
    rates = [st["rate_ml_per_h"] for st in steps]
    assert rates[0] == max(rates)  # loading first
    assert all(a >= b for a, b in itertools.pairwise(rates[1:]))
    assert rates[-1] < rates[0]
    for st in steps:  # programmed rates are on the pump's 0.1 mL/h grid
        assert round(st["rate_ml_per_h"] * 10) == pytest.approx(st["rate_ml_per_h"] * 10)
    assert steps[0]["duration_min"] == pytest.approx(10)
    assert sum(st["duration_min"] for st in steps) == pytest.approx(240)  # the session's 4 h
    assert data["sessions"][0]["duration_h"] == pytest.approx(4.0)
    assert (tmp_path / "t.png").read_bytes().startswith(PNG_SIGNATURE)


def test_plan_target_mode_effect_site(tmp_path: Path):
    """Target mode at the effect site works and ends close to the target."""
    patient = _patient(tmp_path, HEALTHY_70)
    result = _plan(
        patient,
        "single-day",
        "--format",
        "json",
        "--target-ng-per-ml",
        "150",
        "--target-site",
        "effect_site",
        "--target-hours",
        "2",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["target"]["site"] == "effect_site"
    assert data["target"]["duration_h"] == pytest.approx(2.0)
    [ts] = data["target"]["sessions"]
    assert ts["end_conc_ng_per_ml"] == pytest.approx(150, rel=0.03)
    assert data["sessions"][0]["duration_h"] == pytest.approx(2.0)
    for st in data["sessions"][0]["steps"]:
        assert st["rate_mg_per_h"] <= 60.0 + 1e-9  # never above the guardrail's hard maximum


def test_plan_target_hours_zero_is_bad_input(tmp_path: Path):
    """--target-hours 0 is bad input (exit 2), like --target-hours -1."""
    patient = _patient(tmp_path, HEALTHY_70)
    negative = _plan(patient, "single-day", "--target-ng-per-ml", "150", "--target-hours", "-1")
    assert negative.exit_code == 2
    zero = _plan(patient, "single-day", "--target-ng-per-ml", "150", "--target-hours", "0")
    assert zero.exit_code == 2


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["--start-date", "2026-13-07"], "--start-date"),
        (["--start-date", "next monday"], "--start-date"),
        (["--bag-mg", "10", "--bag-ml", "1"], "volume_ml"),
        (["--bag-mg", "0"], "drug_mg"),
        (["--weight-policy", "ideal"], "height_cm"),
        (["--weight-policy", "adjusted"], "height_cm"),
        (["--weight-cap-kg", "10"], "cap_kg"),
        (["--protocol", "no-such-protocol"], "no-such-protocol"),
        (["--target-ng-per-ml", "0"], "target_ng_per_ml"),
        (["--target-ng-per-ml", "150", "--min-step-min", "0"], "min_step_min"),
        (["--follow-up-days", "-1"], "follow_up_days"),
    ],
)
def test_plan_bad_input_names_the_field(tmp_path: Path, extra: list[str], field: str):
    """Bad input exits 2 with a message naming the option or field, and writes no figure."""
    patient = _patient(tmp_path, HEALTHY_68 | {"height_cm": None})
    args = ["plan", "--patient", str(patient), "--protocol", "single-day"]
    args += ["--start-date", "2026-12-07", "--plot", "x.png", *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert field in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_plan_override_errors(tmp_path: Path):
    """An override of no hard stop, or without a clinician, exits 2 and audits nothing."""
    patient = _patient(tmp_path, HEALTHY_70)
    log = tmp_path / "audit.jsonl"
    base = ["--audit-log", str(log), "--follow-up-days", "0"]
    unused = _plan(patient, "single-day", *base, "--override", "pregnancy:x", "--clinician", "X")
    assert unused.exit_code == 2
    assert "--override" in unused.stderr
    nobody = _plan(patient, "single-day", *base, "--override", "pregnancy:x")
    assert nobody.exit_code == 2
    assert "--clinician" in nobody.stderr
    assert not log.exists()


def test_plan_table_output(tmp_path: Path):
    """The table shows pump mL/h, the schedule and the verdict; a blocked plan says BLOCKED."""
    ok = _plan(_patient(tmp_path, HEALTHY_68), "seed-outpatient", "--html", "p.html")
    assert ok.exit_code == 0, ok.output
    for text in ("mL/h", "Mon 07", "Premedication", "Decision on", "Oral follow-on"):
        assert text in ok.stdout
    assert "not blocked" in ok.stdout
    assert "Plan written to" in ok.stdout
    assert (tmp_path / "p.html").exists()
    heavy = _patient(tmp_path, HEAVY_200, "heavy.json")
    with pytest.warns(ExtrapolationWarning):
        blocked = _plan(heavy, "single-day")
    assert blocked.exit_code == 3
    assert "mL/h" in blocked.stdout
    assert "BLOCKED" in blocked.stdout
    assert "hard_stop" in blocked.stdout


def test_plan_override_of_a_screening_hard_stop_makes_the_patient_eligible(tmp_path: Path):
    """A screening hard stop overridden in `plan` leaves the plan eligible and not blocked."""
    patient = _patient(tmp_path, ISSUE_PATIENT)
    override = ["--override", HTN_OVERRIDE, "--clinician", "Dr A. Jones"]
    result = _plan(patient, "single-day", "--format", "json", "--follow-up-days", "0", *override)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["blocked"] is False
    assert data["eligible"] is True


def test_plan_screening_hard_stop_blocks_until_overridden(tmp_path: Path):
    """A screening hard stop blocks the plan (exit 3); its override unblocks it (exit 0)."""
    patient = _patient(tmp_path, ISSUE_PATIENT)
    blocked = _plan(patient, "single-day", "--format", "json")
    assert blocked.exit_code == 3
    data = json.loads(blocked.stdout)
    assert data["blocked"] is True
    assert data["eligible"] is False
    assert "uncontrolled_hypertension" in _codes(data["findings"], "hard_stop")
    override = ["--override", HTN_OVERRIDE, "--clinician", "Dr A. Jones"]
    ok = _plan(patient, "single-day", "--format", "json", *override)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["blocked"] is False
    [line] = _audit_lines(tmp_path / "ketapain-audit.jsonl")
    assert (line["command"], line["code"]) == ("plan", "uncontrolled_hypertension")


# --- check-rate -----------------------------------------------------------------------


def _check(tmp_path: Path, *extra: str) -> Any:
    patient = _patient(tmp_path, HEALTHY_70)
    args = ["check-rate", "--patient", str(patient), "--protocol", "single-day", *extra]
    return runner.invoke(app, args)


def test_check_rate_soft_max_warns(tmp_path: Path):
    """0.6 mg/kg/h at 70 kg: 42 mg/h = 42.0 mL/h of 250 mg/250 mL, a soft-max warning, exit 0."""
    result = _check(tmp_path, "--rate-mg-per-kg-h", "0.6", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {
        "rate_mg_per_h",
        "rate_mg_per_kg_h",
        "rate_ml_per_h",
        "dosing_weight_kg",
        "blocked",
        "findings",
        "overrides",
        "checked_utc",
    }
    assert data["rate_mg_per_h"] == pytest.approx(42.0)
    assert data["rate_mg_per_kg_h"] == pytest.approx(0.6)
    assert data["rate_ml_per_h"] == pytest.approx(42.0)
    assert data["dosing_weight_kg"] == pytest.approx(70.0)
    assert data["blocked"] is False
    assert _codes(data["findings"]) == {"rate_mg_per_kg_h.soft_max"}
    assert data["findings"][0]["severity"] == "warning"
    table = _check(tmp_path, "--rate-mg-per-kg-h", "0.6")
    assert table.exit_code == 0
    assert "42.0 mL/h" in table.stdout
    assert "within hard limits" in table.stdout


def test_check_rate_above_hard_max_blocks(tmp_path: Path):
    """1.2 mg/kg/h (84 mg/h) is above both hard maxima (1.0 mg/kg/h, 60 mg/h): exit 3."""
    result = _check(tmp_path, "--rate-mg-per-kg-h", "1.2", "--format", "json")
    assert result.exit_code == 3, result.output
    data = json.loads(result.stdout)
    assert data["blocked"] is True
    assert _codes(data["findings"], "hard_stop") == {
        "rate_mg_per_kg_h.hard_max",
        "rate_mg_per_h.hard_max",
    }
    table = _check(tmp_path, "--rate-mg-per-kg-h", "1.2")
    assert table.exit_code == 3
    assert "BLOCKED" in table.stdout


def test_check_rate_mg_per_h_bag_and_override(tmp_path: Path):
    """A rate in mg/h converts with the bag; an override of its hard stop is audited."""
    conc = _check(
        tmp_path, "--rate-mg-per-h", "35", "--bag-mg", "500", "--bag-ml", "250", "--format", "json"
    )
    assert conc.exit_code == 0, conc.output
    data = json.loads(conc.stdout)
    assert data["rate_ml_per_h"] == pytest.approx(17.5)  # 35 mg/h at 2 mg/mL
    assert data["rate_mg_per_kg_h"] == pytest.approx(0.5)
    assert data["findings"] == []
    override = ["--override", "rate_mg_per_h.hard_max:ICU bed", "--clinician", "Dr C"]
    ok = _check(tmp_path, "--rate-mg-per-h", "65", "--format", "json", *override)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["blocked"] is False
    [line] = _audit_lines(tmp_path / "ketapain-audit.jsonl")
    assert line["command"] == "check-rate"
    assert line["rate_mg_per_h"] == pytest.approx(65.0)
    assert line["clinician"] == "Dr C"


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--rate-mg-per-kg-h", "0.3", "--rate-mg-per-h", "20"],
    ],
)
def test_check_rate_needs_exactly_one_rate(tmp_path: Path, extra: list[str]):
    """Both rates or neither is bad input (exit 2) naming the options."""
    result = _check(tmp_path, *extra)
    assert result.exit_code == 2
    assert "--rate-mg-per-kg-h" in result.stderr


def test_check_rate_bad_rates(tmp_path: Path):
    """A NaN rate or an unknown protocol exits 2."""
    nan = _check(tmp_path, "--rate-mg-per-h", "nan")
    assert nan.exit_code == 2
    assert "rate" in nan.stderr
    patient = _patient(tmp_path, HEALTHY_70)
    unknown = runner.invoke(
        app,
        ["check-rate", "--patient", str(patient), "--protocol", "nope", "--rate-mg-per-h", "5"],
    )
    assert unknown.exit_code == 2


@pytest.mark.parametrize("option", ["--rate-mg-per-h", "--rate-mg-per-kg-h"])
def test_check_rate_infinite_rate_is_bad_input(tmp_path: Path, option: str):
    """An infinite rate is bad input (exit 2), not a crash."""
    result = _check(tmp_path, option, "inf")
    assert result.exit_code == 2
