"""``ketapain fhir export|import|validate|codesystem``: FHIR R4 Bundles in and out.

``export`` writes one patient's record (``--patient``, by id or MRN, repeatable) or every
patient's (``--all``) as a searchset Bundle. ``import`` reads a Bundle at intake, all or
nothing. Both act as a named user (``--user``): the role rules apply, the export is
audited in their name and imported rows are recorded as theirs. Exit status 1 means the
Bundle was refused and nothing was written.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from ketapain.cli.clinic import UrlOpt, _fail, _open_migrated
from ketapain.clinic.accounts import User
from ketapain.clinic.audit import Actor
from ketapain.clinic.db import Database
from ketapain.errors import KetapainError
from ketapain.fhir.codes import local_code_system
from ketapain.fhir.export import export_bundle
from ketapain.fhir.intake import FhirImportError, ImportResult, import_bundle
from ketapain.fhir.validation import check

__all__ = ["fhir_app"]

console = Console()
err_console = Console(stderr=True)
fhir_app = typer.Typer(
    help="Export and import HL7 FHIR R4 Bundles (Patient/$everything, intake).",
    no_args_is_help=True,
)

UserOpt = Annotated[
    str | None,
    typer.Option("--user", help="the clinician acting (username); the role rules apply"),
]


def _actor(db: Database, username: str | None) -> Actor:
    if username is None:
        raise typer.BadParameter("name the clinician acting with --user USERNAME")
    with db.session() as session:
        user = session.scalars(select(User).where(User.username == username)).first()
        if user is None or not user.active:
            raise typer.BadParameter(f"no active user {username!r} (ketapain users list)")
        return user.actor()


def _read_json(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise typer.BadParameter(f"cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise typer.BadParameter(f"{path} is not UTF-8 text (FHIR JSON is UTF-8)") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise typer.BadParameter(f"{path} nests its JSON too deeply to be read") from None
    except ValueError as err:  # not JSON, or an integer of more than 4300 digits
        raise typer.BadParameter(f"{path} is not JSON ketapain can read: {err}") from None


@fhir_app.command("export")
def export_command(
    patient: Annotated[
        list[str] | None,
        typer.Option("--patient", "-p", help="patient id or MRN (repeat for several)"),
    ] = None,
    all_patients: Annotated[bool, typer.Option("--all", help="every patient")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write the Bundle here (default: stdout)")
    ] = None,
    user: UserOpt = None,
    database_url: UrlOpt = None,
) -> None:
    """Export patients' records as a FHIR R4 Bundle (every resource validated, audited)."""
    if bool(patient) == all_patients:
        raise typer.BadParameter("name --patient ID_OR_MRN (one or more) or --all")
    settings, db = _open_migrated(database_url)
    try:
        bundle = export_bundle(
            db, _actor(db, user), None if all_patients else patient,
            mrn_system=settings.fhir_mrn_system, timezone=settings.timezone,
        )  # fmt: skip
    except KetapainError as err:
        raise _fail(err) from None
    text = json.dumps(bundle, indent=2, ensure_ascii=False)
    if out is None:
        sys.stdout.write(text + "\n")
        return
    out.write_text(text + "\n", encoding="utf-8")
    counts = Counter(e["resource"]["resourceType"] for e in bundle["entry"])
    table = Table(title=f"{out}: {bundle['total']} patients, {len(bundle['entry'])} resources")
    table.add_column("resource")
    table.add_column("count", justify="right")
    for kind, n in sorted(counts.items()):
        table.add_row(kind, str(n))
    console.print(table)


def _result_table(result: ImportResult) -> Table:
    counts = result.counts()
    title = ", ".join(f"{n} {k}" for k, n in counts.items())
    table = Table(title=f"Imported: {title}")
    for col in ("entry", "resource", "outcome", "location", "note"):
        table.add_column(col)
    style = {"created": "green", "updated": "yellow", "duplicate": "dim", "skipped": "dim"}
    for o in sorted(result.outcomes, key=lambda o: o.entry):
        table.add_row(
            str(o.entry), o.resource_type, f"[{style[o.outcome]}]{o.outcome}[/]",
            o.location or "", o.message,
        )  # fmt: skip
    return table


def _problem_table(err: FhirImportError) -> Table:
    kind = "conflicts with the record" if err.conflict else "invalid entries"
    table = Table(title=f"Bundle refused, nothing written: {len(err.problems)} {kind}")
    for col in ("entry", "resource", "element", "problem"):
        table.add_column(col)
    for p in err.problems:
        table.add_row(
            "Bundle" if p.entry < 0 else str(p.entry), p.resource_type or "", p.path, p.message
        )
    return table


@fhir_app.command("import")
def import_command(
    bundle_file: Annotated[str, typer.Argument(help="the Bundle (JSON file, or - for stdin)")],
    user: UserOpt = None,
    skip_unsupported: Annotated[
        bool,
        typer.Option(
            "--skip-unsupported",
            help="report entries ketapain does not take at intake (Encounters, ketamine "
            "orders...) as skipped instead of refusing the Bundle",
        ),
    ] = False,
    mrn: Annotated[
        str | None,
        typer.Option(
            "--mrn",
            help="the MRN to give a referred patient whose Bundle has none in the clinic's "
            "MRN system (KETAPAIN_FHIR_MRN_SYSTEM)",
        ),
    ] = None,
    output: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    database_url: UrlOpt = None,
) -> None:
    """Import a Bundle at intake: create or update patients, all or nothing."""
    if output not in ("table", "json"):
        raise typer.BadParameter(f"--format must be table or json, got {output!r}")
    bundle = _read_json(bundle_file)
    settings, db = _open_migrated(database_url)
    actor = _actor(db, user)
    try:
        result = import_bundle(
            db, actor, bundle, mrn_system=settings.fhir_mrn_system,
            skip_unsupported=skip_unsupported, assign_mrn=mrn, timezone=settings.timezone,
        )  # fmt: skip
    except FhirImportError as err:
        if output == "json":
            payload = {"imported": False, "problems": [p.as_dict() for p in err.problems]}
            sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        else:
            err_console.print(_problem_table(err))
        raise typer.Exit(code=1) from None
    except KetapainError as err:
        raise _fail(err) from None
    if output == "json":
        sys.stdout.write(json.dumps({"imported": True, **result.as_dict()}, indent=2) + "\n")
    else:
        console.print(_result_table(result))


@fhir_app.command("validate")
def validate_command(
    bundle_file: Annotated[str, typer.Argument(help="a Bundle or a resource (JSON, - for stdin)")],
) -> None:
    """Check a Bundle's resources against FHIR R4 (the R4B models and the R4 JSON Schema)."""
    data = _read_json(bundle_file)
    entries = data.get("entry") if isinstance(data, dict) else None
    is_bundle = isinstance(data, dict) and data.get("resourceType") == "Bundle"
    entries = entries if is_bundle and isinstance(entries, list) else []
    resources = [
        (k, e.get("resource") if isinstance(e, dict) else e) for k, e in enumerate(entries)
    ]
    shell = (
        {**data, "entry": [
            {k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e
            for e in entries
        ]}
        if resources
        else data
    )  # fmt: skip
    table = Table(title=f"FHIR R4 validation of {bundle_file}")
    for col in ("where", "element", "problem"):
        table.add_column(col)
    bad = 0
    for where, resource in [("", shell), *((f"entry[{k}]", r) for k, r in resources)]:
        problems = check(resource) if resource is not None else []  # a shell entry is checked
        bad += bool(problems)
        for p in problems:
            kind = resource.get("resourceType", "?") if isinstance(resource, dict) else "?"
            table.add_row(f"{where} {kind}".strip(), p.path, p.message)
    if bad:
        console.print(table)
        raise typer.Exit(code=1)
    console.print(f"[green]valid FHIR R4[/]: {len(resources) or 1} resources checked")


@fhir_app.command("codesystem")
def codesystem_command() -> None:
    """Print ketapain's local CodeSystem (codes with no standard equivalent) as FHIR JSON."""
    sys.stdout.write(json.dumps(local_code_system(), indent=2, ensure_ascii=False) + "\n")
