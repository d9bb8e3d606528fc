"""The administrator's tools: ``ketapain backup``, ``ketapain restore`` and
``ketapain audit verify``.

``backup`` copies the database while the clinic works (SQLite online backup API, or
``pg_dump``); ``restore`` puts a backup into a new (or, with ``--replace``, an existing)
database, migrates it and audits the restore; ``audit verify`` checks the audit trail's
hash chain and prints its head, which a clinic can note elsewhere and later pass back with
``--anchor`` so that even a rewrite of the whole chain is caught.

Exit status: 0 done (or the chain is intact), 1 the audit chain is broken, 2 an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ketapain.cli.clinic import UrlOpt, _fail, _open_migrated, _settings
from ketapain.clinic.audit import verify_trail
from ketapain.clinic.audit_chain import parse_anchor
from ketapain.clinic.backup import backup, restore
from ketapain.errors import KetapainError

__all__ = ["audit_app", "backup_command", "restore_command"]

console = Console()
audit_app = typer.Typer(help="Check the audit trail.", no_args_is_help=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=console, transient=True,
    )  # fmt: skip


def _rows_table(title: str, rows: dict[str, int]) -> Table:
    table = Table(title=title)
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in sorted(rows.items()):
        table.add_row(name, str(count))
    return table


def backup_command(
    out: Annotated[Path, typer.Argument(help="The backup file to write (must not exist).")],
    database_url: UrlOpt = None,
) -> None:
    """Copy the database to OUT while the clinic works: SQLite's online backup API, or
    pg_dump (custom format) for PostgreSQL. Prints the file's SHA-256 and the rows."""
    url = _settings(database_url).database_url
    try:
        with _progress() as bar:
            task = bar.add_task("backing up", total=None)
            info = backup(
                url, out, progress=lambda done, total: bar.update(task, completed=done, total=total)
            )
    except KetapainError as err:
        raise _fail(err) from None
    console.print(
        _rows_table(f"backup of {info.engine} database, revision {info.revision}", info.rows)
    )
    console.print(f"written: [bold]{info.path}[/] ({info.size_bytes:,} bytes)")
    console.print(f"sha256:  {info.sha256}", soft_wrap=True)
    if info.audit_head[0]:
        seq, digest = info.audit_head
        console.print(f"audit head at the backup: {seq}:{digest}", soft_wrap=True)


def restore_command(
    backup_file: Annotated[Path, typer.Argument(help="A file written by `ketapain backup`.")],
    database_url: UrlOpt = None,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Overwrite a target database that holds tables already."),
    ] = False,
) -> None:
    """Restore a backup into the database (stop the server first), migrate it to this
    version and audit the restore; refuses a database that holds tables unless --replace."""
    url = _settings(database_url).database_url
    try:
        with _progress() as bar:
            task = bar.add_task("restoring", total=None)
            info = restore(
                backup_file, url, replace=replace,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
    except KetapainError as err:
        raise _fail(err) from None
    console.print(_rows_table(f"restored {info.engine} database", info.rows))
    console.print(
        f"restored from {info.source} at revision {info.revision_restored}; "
        f"now at {info.revision_now}"
    )
    state = "intact" if info.audit_intact else "[bold red]BROKEN[/] (run `ketapain audit verify`)"
    console.print(f"audit trail: {info.audit_entries} entries, chain {state}")


@audit_app.command("verify")
def verify_command(
    database_url: UrlOpt = None,
    anchor: Annotated[
        list[str] | None,
        typer.Option(
            help="SEQ:SHA256 of an entry noted earlier (the head printed by a past verify); "
            "repeat for several."
        ),
    ] = None,
    output_format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Check the audit trail's hash chain: every entry links to the one before, no entry
    was edited, removed or slipped in, and the head matches the newest entry."""
    if output_format not in ("table", "json"):
        raise _fail(KetapainError(f"--format must be table or json, not {output_format!r}"))
    try:
        anchors = dict(parse_anchor(a) for a in anchor or [])
        _, db = _open_migrated(database_url)
        try:
            with db.read() as session:
                result = verify_trail(session, anchors=anchors)
        finally:
            db.dispose()
    except KetapainError as err:
        raise _fail(err) from None
    if output_format == "json":
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        if result.problems:
            table = Table(title="audit chain problems")
            for col in ("seq", "id", "kind", "what"):
                table.add_column(col)
            for p in result.problems:
                table.add_row(str(p.seq or ""), str(p.entry_id or ""), p.kind, p.message)
            console.print(table)
        state = "intact" if result.intact else f"BROKEN ({result.problem_count} problems)"
        console.print(f"audit trail: {result.entries} entries, chain [bold]{state}[/]")
        console.print(f"head: {result.head_seq}:{result.head_sha256}", soft_wrap=True)
    if not result.intact:
        raise typer.Exit(code=1)
