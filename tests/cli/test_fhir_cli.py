"""Tests of ``ketapain fhir export|import|validate|codesystem`` on a demo clinic database and
on fresh ones, run in-process through Typer's runner."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from ketapain.cli.main import app
from ketapain.clinic.audit import list_entries
from ketapain.clinic.db import Database
from ketapain.clinic.patients import Diagnosis, Patient
from ketapain.fhir.codes import LOCAL
from ketapain.fhir.validation import check

runner = CliRunner()
MRN_SYSTEM = "https://ketapain.org/fhir/sid/mrn"
IMPORTER = "nurse.x"
DOCTOR = "dr.demo"  # the demo physician: exports act as a named user
# What ketapain reads at intake; a ketamine order (MedicationRequest) and the infusion
# sessions are not taken, only skipped with --skip-unsupported.
INTAKE = {"Patient", "Condition", "AllergyIntolerance", "MedicationStatement", "Observation"}


def _run(*args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=stdin)


def _flat(result: Result) -> str:
    """The output with the table borders and line breaks of the terminal squeezed out."""
    return " ".join(re.sub(r"[│┃║|━─┏┓┗┛┡┩└┘┌┐╇╈┳┻╭╮╰╯]", " ", result.output).split())


def _count(url: str, model: Any) -> int:
    db = Database.connect(url)
    try:
        with db.session() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        db.dispose()


def _mrns(url: str) -> list[str]:
    db = Database.connect(url)
    try:
        with db.session() as session:
            return list(session.scalars(select(Patient.mrn).order_by(Patient.mrn)))
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An SQLite file filled by ``ketapain db demo`` (8 patients, KP-1001...)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('fhir-demo') / 'clinic.db'}"
    result = _run("db", "demo", "--database-url", url)
    assert result.exit_code == 0, result.output
    return url


@pytest.fixture(scope="module")
def exported(demo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """KP-1001's record exported from the demo (``--out``): a file to import and validate."""
    path = tmp_path_factory.mktemp("fhir-export") / "kp-1001.json"
    result = _run("fhir", "export", "--patient", "KP-1001", "--out", str(path),
                  "--user", DOCTOR, "--database-url", demo_url)  # fmt: skip
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def _fresh_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fhir-fresh") / "fresh.db"
    url = f"sqlite:///{path}"
    assert _run("db", "upgrade", "--database-url", url).exit_code == 0
    result = _run(
        "users", "create", "--username", IMPORTER, "--role", "nurse",
        "--full-name", "Nurse Importer RN", "--password-stdin", "--database-url", url,
        stdin="import-pass-1\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # Everything into the main file, so that a copy of it alone holds the database.
    db = Database.connect(url)
    with db.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()
    return path


@pytest.fixture
def fresh_url(_fresh_template: Path, tmp_path: Path) -> str:
    """A migrated database of its own, no patients, one nurse (``nurse.x``)."""
    path = tmp_path / "fresh.db"
    shutil.copyfile(_fresh_template, path)
    return f"sqlite:///{path}"


def _import(url: str, source: str, *args: str, stdin: str | None = None) -> Result:
    return _run("fhir", "import", source, "--database-url", url, *args, stdin=stdin)


def _resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"]]


def _assert_valid(bundle: dict[str, Any]) -> None:
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    for resource in _resources(bundle):
        assert check(resource) == [], resource


# export


def test_export_one_patient_to_a_file(demo_url: str, exported: Path) -> None:
    """``--patient KP-1001 --out FILE`` writes a valid searchset Bundle of that patient
    (the Patient first, with its MRN), prints a table of the resources by type with the
    counts of the file, and audits the export (``export_fhir`` of that patient)."""
    bundle = json.loads(exported.read_text(encoding="utf-8"))
    _assert_valid(bundle)
    assert bundle["total"] == 1
    patient = bundle["entry"][0]["resource"]
    assert patient["resourceType"] == "Patient"
    assert {"system": MRN_SYSTEM, "value": "KP-1001"}.items() <= patient["identifier"][0].items()
    counts = Counter(r["resourceType"] for r in _resources(bundle))
    assert counts["Patient"] == 1 and counts["Condition"] >= 1 and counts["Observation"] >= 1
    # The table of the fixture's run: printed again by a second export to another file.
    again = exported.with_name("again.json")
    result = _run(
        "fhir", "export", "-p", "KP-1001", "-o", str(again), "--user", DOCTOR,
        "--database-url", demo_url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = _flat(result)
    assert f"1 patients, {sum(counts.values())} resources" in printed
    for kind, n in counts.items():
        assert re.search(rf"\b{kind} {n}\b", printed), (kind, n, printed)
    assert '"resourceType"' not in result.output  # the JSON went to the file only
    db = Database.connect(demo_url)
    with db.read() as session:
        audited = list_entries(session, action="export_fhir", limit=1000)
    db.dispose()
    assert audited[-1].entity_id == patient["id"]
    assert (audited[-1].detail or "").startswith("FHIR R4 Bundle: 1 patients")


def test_export_without_out_writes_the_json_to_stdout(demo_url: str, exported: Path) -> None:
    """Without ``--out`` the Bundle is printed on standard output, the same resources as
    the file (only the Bundle's own id and time differ) and no table."""
    result = _run(
        "fhir", "export", "--patient", "KP-1001", "--user", DOCTOR, "--database-url", demo_url
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    _assert_valid(printed)
    assert _resources(printed) == _resources(json.loads(exported.read_text(encoding="utf-8")))


def test_export_all(demo_url: str) -> None:
    """``--all`` exports every patient of the demo: ``total`` is the number of patients,
    each Patient a match (in MRN order) and every resource valid R4."""
    result = _run("fhir", "export", "--all", "--user", DOCTOR, "--database-url", demo_url)
    assert result.exit_code == 0, result.output
    bundle = json.loads(result.stdout)
    _assert_valid(bundle)
    mrns = _mrns(demo_url)
    assert len(mrns) >= 2 and "KP-1001" in mrns
    assert bundle["total"] == len(mrns)
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert [e["resource"]["identifier"][0]["value"] for e in matches] == mrns
    assert {e["resource"]["resourceType"] for e in matches} == {"Patient"}


@pytest.mark.parametrize("args", [(), ("--all", "--patient", "KP-1001")], ids=["neither", "both"])
def test_export_needs_patient_or_all(demo_url: str, args: tuple[str, ...]) -> None:
    """Naming neither ``--patient`` nor ``--all``, or both, is a usage error (exit 2)."""
    result = _run("fhir", "export", *args, "--user", DOCTOR, "--database-url", demo_url)
    assert result.exit_code == 2
    assert "--patient ID_OR_MRN" in _flat(result) and "--all" in result.output
    assert '"resourceType"' not in result.output


def test_export_of_an_unknown_patient(demo_url: str) -> None:
    """An unknown MRN exits 2 with a message naming it, and prints no Bundle."""
    result = _run(
        "fhir", "export", "--patient", "KP-9999", "--user", DOCTOR, "--database-url", demo_url
    )
    assert result.exit_code == 2
    assert "no patient" in result.output and "KP-9999" in result.output
    assert result.stdout.strip() == ""


def test_export_as_a_user_follows_the_role_rules(demo_url: str) -> None:
    """``--user`` exports as that user: a nurse's export is audited in their name; the front
    desk may not read the clinical record (exit 2, no Bundle); an unknown user is exit 2."""
    result = _run("fhir", "export", "-p", "KP-1002", "--user", "nurse.demo",
                  "--database-url", demo_url)  # fmt: skip
    assert result.exit_code == 0, result.output
    db = Database.connect(demo_url)
    with db.read() as session:
        audited = list_entries(session, action="export_fhir", limit=1000)
    db.dispose()
    assert audited[-1].actor_username == "nurse.demo"
    result = _run("fhir", "export", "-p", "KP-1002", "--user", "desk.demo",
                  "--database-url", demo_url)  # fmt: skip
    assert result.exit_code == 2
    assert "front desk may not" in _flat(result)
    assert '"resourceType"' not in result.output
    result = _run("fhir", "export", "-p", "KP-1002", "--user", "nobody",
                  "--database-url", demo_url)  # fmt: skip
    assert result.exit_code == 2
    assert "no active user 'nobody'" in _flat(result)


# import


def _strip(node: Any) -> Any:
    """A resource without what differs between two databases: ids, references, who
    recorded it and when."""
    volatile = {"id", "reference", "meta", "recorder", "asserter", "recordedDate",
                "dateAsserted", "issued", "informationSource"}  # fmt: skip
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in volatile}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def test_import_with_skip_unsupported_creates_the_patient(fresh_url: str, exported: Path) -> None:
    """A demo patient's export imported as a nurse with ``--skip-unsupported`` registers
    the patient (table: created and skipped entries); exported again from the new
    database, it holds the same intake resources (the ketamine order is not taken)."""
    result = _import(fresh_url, str(exported), "--user", IMPORTER, "--skip-unsupported")
    assert result.exit_code == 0, result.output
    printed = _flat(result)
    assert "created" in printed and "skipped" in printed
    assert _mrns(fresh_url) == ["KP-1001"]
    result = _run(
        "fhir", "export", "-p", "KP-1001", "--user", IMPORTER, "--database-url", fresh_url
    )
    assert result.exit_code == 0, result.output
    original = json.loads(exported.read_text(encoding="utf-8"))
    expected = [_strip(r) for r in _resources(original) if r["resourceType"] in INTAKE]
    again = [_strip(r) for r in _resources(json.loads(result.stdout))]
    assert sorted(again, key=json.dumps) == sorted(expected, key=json.dumps)


def test_import_without_skip_unsupported_is_refused(fresh_url: str, exported: Path) -> None:
    """Without ``--skip-unsupported`` the ketamine order of the export is refused: exit 1,
    the refused entries listed (entry number and resource), and nothing written."""
    bundle = json.loads(exported.read_text(encoding="utf-8"))
    refused = [k for k, r in enumerate(_resources(bundle)) if r["resourceType"] not in INTAKE]
    assert refused, "the demo export holds a ketamine order"
    result = _import(fresh_url, str(exported), "--user", IMPORTER)
    assert result.exit_code == 1
    printed = _flat(result)
    assert "Bundle refused, nothing written" in printed
    for k in refused:
        kind = bundle["entry"][k]["resource"]["resourceType"]
        assert re.search(rf"\b{k} {kind}\b", printed), (k, kind, printed)
    assert _count(fresh_url, Patient) == 0
    assert _count(fresh_url, Diagnosis) == 0


def test_import_format_json(fresh_url: str, exported: Path) -> None:
    """``--format json`` prints ``imported``, the patients, the counts and one outcome per
    entry in order; importing the same file again writes nothing new (all duplicates or
    skipped). Refused, it prints ``imported: false`` and the problems, by entry."""
    bundle = json.loads(exported.read_text(encoding="utf-8"))
    n = len(bundle["entry"])
    result = _import(fresh_url, str(exported), "--user", IMPORTER, "--format", "json")
    assert result.exit_code == 1
    refused = json.loads(result.stdout)
    assert set(refused) == {"imported", "problems"} and refused["imported"] is False
    (problem,) = refused["problems"]
    assert problem["resource_type"] == "MedicationRequest"
    assert problem["path"] == "medicationCodeableConcept"
    assert bundle["entry"][problem["entry"]]["resource"]["resourceType"] == "MedicationRequest"

    args = ("--user", IMPORTER, "--skip-unsupported", "--format", "json")
    result = _import(fresh_url, str(exported), *args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"imported", "patients", "counts", "entries"}
    assert data["imported"] is True
    (patient,) = data["patients"]
    assert (patient["mrn"], patient["outcome"]) == ("KP-1001", "created")
    assert [e["entry"] for e in data["entries"]] == list(range(n))
    assert data["counts"] == {
        "created": n - 1, "updated": 0, "duplicate": 0, "skipped": 1
    }  # fmt: skip
    assert Counter(e["outcome"] for e in data["entries"]) == +Counter(data["counts"])
    assert data["entries"][0]["location"] == f"Patient/{patient['id']}"

    result = _import(fresh_url, str(exported), *args)
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)
    assert again["counts"] == {"created": 0, "updated": 0, "duplicate": n - 1, "skipped": 1}
    assert _mrns(fresh_url) == ["KP-1001"]


def test_import_reads_standard_input(fresh_url: str, exported: Path) -> None:
    """``-`` reads the Bundle from standard input."""
    text = exported.read_text(encoding="utf-8")
    result = _import(fresh_url, "-", "--user", IMPORTER, "--skip-unsupported", stdin=text)
    assert result.exit_code == 0, result.output
    assert _mrns(fresh_url) == ["KP-1001"]


def test_import_needs_a_known_user(fresh_url: str, exported: Path) -> None:
    """The import runs as a named clinician: without ``--user``, or with an unknown one,
    it exits 2 with a message and writes nothing."""
    result = _import(fresh_url, str(exported), "--skip-unsupported")
    assert result.exit_code == 2
    assert "--user" in result.output
    result = _import(fresh_url, str(exported), "--user", "ghost", "--skip-unsupported")
    assert result.exit_code == 2
    assert "no active user 'ghost'" in _flat(result)
    assert _count(fresh_url, Patient) == 0


def test_import_of_a_file_that_is_not_json(fresh_url: str, tmp_path: Path) -> None:
    """A file that is not JSON, or is missing, exits 2 with a message naming the file."""
    bad = tmp_path / "referral.json"
    bad.write_text("<Bundle xmlns='http://hl7.org/fhir'/>", encoding="utf-8")
    result = _import(fresh_url, str(bad), "--user", IMPORTER)
    assert result.exit_code == 2
    assert "is not JSON" in _flat(result)
    result = _import(fresh_url, str(tmp_path / "missing.json"), "--user", IMPORTER)
    assert result.exit_code == 2
    assert "cannot read" in _flat(result)
    assert _count(fresh_url, Patient) == 0


def test_import_of_a_binary_file_is_a_usage_error(fresh_url: str, tmp_path: Path) -> None:
    """A file that is not text at all (here UTF-16 with its byte-order mark) exits 2 with
    a message, like any file that is not JSON."""
    bad = tmp_path / "referral.json"
    bad.write_bytes('{"resourceType": "Bundle"}'.encode("utf-16"))
    result = _import(fresh_url, str(bad), "--user", IMPORTER)
    assert result.exit_code == 2, result.output


def test_import_by_the_front_desk_is_refused(demo_url: str, exported: Path, tmp_path: Path) -> None:
    """The front desk (desk.demo) may register patients but not chart: a clinical Bundle
    for a new patient is refused with exit 2 and the access message; nothing is written."""
    bundle = json.loads(exported.read_text(encoding="utf-8"))
    patient = bundle["entry"][0]["resource"]
    patient["identifier"][0]["value"] = "KP-9001"
    patient["name"] = [{"use": "official", "family": "Newcomer", "given": ["Nia"]}]
    path = tmp_path / "new.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    before = (_count(demo_url, Patient), _count(demo_url, Diagnosis))
    result = _import(demo_url, str(path), "--user", "desk.demo", "--skip-unsupported")
    assert result.exit_code == 2
    assert "front desk may not chart" in _flat(result)
    assert (_count(demo_url, Patient), _count(demo_url, Diagnosis)) == before
    assert "KP-9001" not in _mrns(demo_url)


def test_import_into_an_unmigrated_database(tmp_path: Path, exported: Path) -> None:
    """A database without ketapain's tables is refused with exit 2 and the advice to run
    ``ketapain db upgrade``, not a database error."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = _import(url, str(exported), "--user", IMPORTER)
    assert result.exit_code == 2
    assert "ketapain db upgrade" in _flat(result)


# validate, codesystem


def test_validate_a_good_export(exported: Path) -> None:
    """``fhir validate`` of an export exits 0: valid FHIR R4, every resource counted."""
    n = len(json.loads(exported.read_text(encoding="utf-8"))["entry"])
    result = _run("fhir", "validate", str(exported))
    assert result.exit_code == 0, result.output
    assert f"valid FHIR R4: {n} resources checked" in _flat(result)


def test_validate_names_the_broken_element(exported: Path, tmp_path: Path) -> None:
    """A Bundle with an Observation whose status is ``done`` (not an R4 code) exits 1 and
    names the entry, the resource type and the element."""
    bundle = json.loads(exported.read_text(encoding="utf-8"))
    k = next(k for k, r in enumerate(_resources(bundle)) if r["resourceType"] == "Observation")
    bundle["entry"][k]["resource"]["status"] = "done"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    result = _run("fhir", "validate", str(path))
    assert result.exit_code == 1
    printed = _flat(result)
    assert f"entry[{k}] Observation status" in printed
    assert "'done'" in printed
    assert "valid FHIR R4" not in printed


def test_validate_a_bundle_with_an_entry_that_is_not_an_object(tmp_path: Path) -> None:
    """A Bundle whose entry is a string is invalid: exit 1 naming the entry, no crash."""
    path = tmp_path / "odd.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                "entry": ["not an entry"]}), encoding="utf-8")  # fmt: skip
    result = _run("fhir", "validate", str(path))
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 1


def test_codesystem_prints_the_local_code_system() -> None:
    """``fhir codesystem`` prints ketapain's CodeSystem as valid FHIR JSON."""
    result = _run("fhir", "codesystem")
    assert result.exit_code == 0, result.output
    system = json.loads(result.stdout)
    assert system["resourceType"] == "CodeSystem"
    assert system["url"] == LOCAL
    assert check(system) == []
    assert {"crps_1", "moaas", "infusion-session"} <= {c["code"] for c in system["concept"]}
