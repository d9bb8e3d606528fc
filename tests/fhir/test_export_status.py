"""The status of an exported infusion session, the CapabilityStatement, and the CLI's
``fhir export`` / ``fhir import`` acting as a named user.

A session's Procedure is ``completed`` when the pump ran its program (to within one
charting interval, 15 minutes, as the outcome report counts early stops), ``stopped``
with the reason when it was stopped before, and ``not-done`` when it never started.
The sessions are charted through the services at fixed times in the past (the seed
outpatient protocol's first session is programmed for 120 minutes) and exported on
SQLite and on PostgreSQL (the ``db`` fixture).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from ketapain.cli.main import app
from ketapain.clinic.charting import record_score, record_vitals
from ketapain.clinic.checklist import record_checklist
from ketapain.clinic.pump import hang_infusion, pump_event
from ketapain.clinic.treatment import create_course
from ketapain.fhir.export import export_bundle
from ketapain.fhir.outcome import capability_statement
from ketapain.fhir.validation import check

# The export only reads: SQLite runs these; PostgreSQL runs the full record, the
# determinism and current-rows tests here, and the golden tests compare both databases.
SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"], indirect=True)

MRN_SYSTEM = "https://ketapain.org/fhir/sid/mrn"
OTHER_SYSTEM = "https://other.example/mrn"
START = date(2026, 3, 2)  # months before the tests run: pump times in the past
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
PROGRAM_MIN = 120.0  # seed-outpatient, session 1 (checked in each test)
runner = CliRunner()


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _ready(db, nurse, infusion_id, patient_id) -> None:
    """The checklist, and baseline vitals and NRS 7 charted 15 minutes before T0."""
    record_checklist(
        db,
        nurse,
        infusion_id,
        consent_confirmed=True,
        escort_confirmed=True,
        escort_name="A. Escort",
        fasting_confirmed=True,
        medications_reviewed=True,
        premedication_note="premedication given as planned",
    )
    where = {"patient_id": patient_id, "infusion_id": infusion_id, "measured_utc": _at(-15)}
    record_vitals(db, nurse, (), **where, sbp_mmhg=120.0, dbp_mmhg=75.0)
    record_score(db, nurse, (), **where, instrument="pain_nrs", value=7.0)


def _session(db, staff, patient, events: list[tuple[str, float, str | None]]) -> Any:
    """A course of the seed outpatient protocol and its first session with ``events``
    (kind, minutes from T0, reason); a start runs at 13.6 mg/h (the program's rate)."""
    course = create_course(
        db,
        staff["physician"],
        patient_id=patient.id,
        protocol="seed-outpatient",
        start_date=START,
        bag_mg=250,
        bag_ml=250,
    )
    nurse = staff["nurse"]
    inf = hang_infusion(db, nurse, course.id, session_number=1, bag_mg=250, bag_ml=250, lot="L-1")
    assert sum(float(step["duration_min"]) for step in inf.program) == PROGRAM_MIN
    if any(kind == "start" for kind, _, _ in events):
        _ready(db, nurse, inf.id, patient.id)
    for kind, minutes, reason in events:
        rate = 13.6 if kind == "start" else None
        pump_event(
            db, nurse, inf.id, kind=kind, rate_mg_per_h=rate, reason=reason, time_utc=_at(minutes)
        )
    return inf


def _procedure(db, staff) -> dict[str, Any]:
    bundle = export_bundle(db, staff["physician"], ["T-0001"], mrn_system=MRN_SYSTEM)
    (procedure,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Procedure"
    ]
    assert check(procedure) == []
    return procedure


# --- the Procedure's status ----------------------------------------------------------------


@SQLITE_ONLY
def test_a_session_stopped_30_minutes_into_a_120_minute_program_is_stopped(db, staff, patient):
    """Started at 09:00 and stopped at 09:30 for hypotension (90 minutes before the
    programmed end): the Procedure is stopped, its statusReason the reason charted, its
    performedPeriod the pump's run."""
    _session(db, staff, patient, [("start", 0, None), ("stop", 30, "hypotension")])
    procedure = _procedure(db, staff)
    assert procedure["status"] == "stopped"
    assert procedure["statusReason"] == {"text": "hypotension"}
    assert procedure["performedPeriod"] == {
        "start": _at(0).isoformat(),
        "end": _at(30).isoformat(),
    }


@SQLITE_ONLY
def test_a_session_stopped_early_without_a_reason_still_says_why_it_is_stopped(db, staff, patient):
    """Stopped early with no reason charted: still stopped, with a statusReason text that
    says it was stopped before the programmed end."""
    _session(db, staff, patient, [("start", 0, None), ("stop", 30, None)])
    procedure = _procedure(db, staff)
    assert procedure["status"] == "stopped"
    assert "programmed end" in procedure["statusReason"]["text"]


@pytest.mark.parametrize(
    ("events", "status"),
    [
        ([("start", 0, None), ("stop", PROGRAM_MIN, None)], "completed"),
        ([("start", 0, None), ("stop", PROGRAM_MIN + 10, "bag empty")], "completed"),
        ([("start", 0, None), ("stop", PROGRAM_MIN - 14, None)], "completed"),
        ([("start", 0, None), ("stop", PROGRAM_MIN - 16, "anxious")], "stopped"),
        # Paused 30 minutes: 150 minutes on the clock, 120 running.
        (
            [
                ("start", 0, None),
                ("pause", 60, "nausea"),
                ("resume", 90, None),
                ("stop", 150, None),
            ],
            "completed",
        ),
        # Paused 30 minutes: 120 minutes on the clock, 90 running.
        (
            [
                ("start", 0, None),
                ("pause", 60, "nausea"),
                ("resume", 90, None),
                ("stop", 120, None),
            ],
            "stopped",
        ),
    ],
    ids=[
        "at-the-end",
        "after-the-end",
        "14-min-early",
        "16-min-early",
        "paused-then-ran-the-program",
        "paused-then-stopped-on-the-clock",
    ],
)
@SQLITE_ONLY
def test_the_status_follows_the_running_time_against_the_program(
    db, staff, patient, events, status
):
    """Completed when the pump ran its 120-minute program to within a charting interval
    (15 minutes), without a statusReason; stopped when it ran less. What counts is the
    running time (pauses left out), not the time on the clock."""
    _session(db, staff, patient, events)
    procedure = _procedure(db, staff)
    assert procedure["status"] == status
    assert ("statusReason" in procedure) is (status == "stopped")


@SQLITE_ONLY
def test_a_session_stopped_before_it_started_is_not_done(db, staff, patient):
    """A session stopped before the pump started is not-done with the reason charted, and
    without a performedPeriod."""
    _session(db, staff, patient, [("stop", 0, "patient unwell")])
    procedure = _procedure(db, staff)
    assert procedure["status"] == "not-done"
    assert procedure["statusReason"] == {"text": "patient unwell"}
    assert "performedPeriod" not in procedure


@SQLITE_ONLY
def test_a_running_session_is_in_progress_without_a_reason(db, staff, patient):
    """A session started and never stopped is in-progress, without a statusReason:
    only a stop makes a session stopped."""
    _session(db, staff, patient, [("start", 0, None)])
    procedure = _procedure(db, staff)
    assert procedure["status"] == "in-progress"
    assert "statusReason" not in procedure


# --- the CapabilityStatement -----------------------------------------------------------------


def test_the_capability_statement_is_valid_r4_with_an_implementation():
    """GET /fhir/metadata's CapabilityStatement passes the R4 checks (models and schema)
    and describes its implementation (kind instance needs one)."""
    statement = capability_statement("0.1.0", "2026-11-22")
    assert check(statement) == []
    assert statement["kind"] == "instance"
    assert statement["implementation"]["description"].strip()
    assert statement["software"] == {"name": "ketapain", "version": "0.1.0"}
    assert statement["date"] == "2026-11-22"


# --- the CLI acts as a named user ------------------------------------------------------------


def _run(*args: str) -> Result:
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An SQLite file filled by ``ketapain db demo`` (patients KP-1001..., dr.demo,
    nurse.demo)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('export-status-demo') / 'clinic.db'}"
    result = _run("db", "demo", "--database-url", url)
    assert result.exit_code == 0, result.output
    return url


@pytest.fixture(autouse=True)
def _clinic_mrn_system(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads the clinic's MRN system from the environment: the default one here."""
    monkeypatch.setenv("KETAPAIN_FHIR_MRN_SYSTEM", MRN_SYSTEM)
    monkeypatch.delenv("KETAPAIN_TIMEZONE", raising=False)


def test_cli_export_without_user_is_a_usage_error(demo_url):
    """``ketapain fhir export`` without --user is a usage error (exit 2) naming --user:
    an export is audited in a clinician's name, never the system's."""
    result = _run("fhir", "export", "--patient", "KP-1001", "--database-url", demo_url)
    assert result.exit_code == 2
    assert "--user" in result.output
    assert '"resourceType"' not in result.output


def test_cli_export_with_a_user_writes_the_bundle(demo_url):
    """With --user dr.demo the export writes the patient's searchset Bundle to stdout."""
    result = _run(
        "fhir", "export", "--patient", "KP-1001", "--user", "dr.demo", "--database-url", demo_url
    )
    assert result.exit_code == 0, result.output
    bundle = json.loads(result.stdout)
    assert (bundle["resourceType"], bundle["type"], bundle["total"]) == ("Bundle", "searchset", 1)
    (patient,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    ]
    assert {"system": MRN_SYSTEM, "value": "KP-1001"}.items() <= patient["identifier"][0].items()


def _referral(path: Path) -> Path:
    """A referral Bundle whose Patient has only another hospital's number (typed MR)."""
    url = "urn:uuid:0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
    patient = {
        "resourceType": "Patient",
        "identifier": [
            {
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ]
                },
                "system": OTHER_SYSTEM,
                "value": "H-4242",
            }
        ],
        "name": [{"use": "official", "family": "Referral", "given": ["Rosa"]}],
        "gender": "female",
        "birthDate": "1971-09-09",
    }
    condition = {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10"}]},
        "subject": {"reference": url},
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": url, "resource": patient},
            {"fullUrl": "urn:uuid:1e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b", "resource": condition},
        ],
    }
    path.write_text(json.dumps(bundle), encoding="utf-8")
    return path


def test_cli_import_with_mrn_registers_the_referred_patient(demo_url, tmp_path):
    """``fhir import FILE --user nurse.demo`` refuses a referral whose Patient has only
    another hospital's number (exit 1, the problem naming --mrn, nothing written); with
    ``--mrn KP-5000`` it registers KP-5000, which ``fhir export --patient KP-5000`` then
    finds, with the referral's name and its history."""
    source = str(_referral(tmp_path / "referral.json"))
    common = ("--user", "nurse.demo", "--database-url", demo_url)
    refused = _run("fhir", "import", source, *common, "--format", "json")
    assert refused.exit_code == 1, refused.output
    payload = json.loads(refused.stdout)
    assert payload["imported"] is False
    first = payload["problems"][0]
    assert (first["entry"], first["path"]) == (0, "identifier")
    assert "--mrn" in first["message"]
    missing = _run("fhir", "export", "--patient", "KP-5000", "--user", "dr.demo",
                   "--database-url", demo_url)  # fmt: skip
    assert missing.exit_code != 0

    result = _run("fhir", "import", source, *common, "--mrn", "KP-5000", "--format", "json")
    assert result.exit_code == 0, result.output
    imported = json.loads(result.stdout)
    assert imported["imported"] is True
    assert [(p["mrn"], p["outcome"]) for p in imported["patients"]] == [("KP-5000", "created")]

    exported = _run("fhir", "export", "--patient", "KP-5000", "--user", "dr.demo",
                    "--database-url", demo_url)  # fmt: skip
    assert exported.exit_code == 0, exported.output
    bundle = json.loads(exported.stdout)
    resources = [e["resource"] for e in bundle["entry"]]
    (patient,) = [r for r in resources if r["resourceType"] == "Patient"]
    assert {"system": MRN_SYSTEM, "value": "KP-5000"}.items() <= patient["identifier"][0].items()
    assert (patient["name"][0]["family"], patient["birthDate"]) == ("Referral", "1971-09-09")
    conditions = [r for r in resources if r["resourceType"] == "Condition"]
    assert any(
        c.get("system") == "http://hl7.org/fhir/sid/icd-10-cm" and c.get("code") == "I10"
        for r in conditions
        for c in r["code"]["coding"]
    )
