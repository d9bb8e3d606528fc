"""``ketapain serve``, ``ketapain db upgrade|demo|synth|status``, ``ketapain users create|list``.

Every command takes ``--database-url`` (default: ``KETAPAIN_DATABASE_URL``, else
``sqlite:///ketapain.db`` in the current folder).
"""

from __future__ import annotations

import copy
import os
import sys
from dataclasses import replace
from datetime import date
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select

from ketapain.clinic import migrate
from ketapain.clinic.accounts import Role, User, create_user, list_users
from ketapain.clinic.audit import SYSTEM
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.demo import DEMO_PASSWORD, DEMO_USERS, fill_demo
from ketapain.clinic.synthetic import MAX_PATIENTS, fill_synthetic
from ketapain.config import Settings
from ketapain.errors import ConflictError, InvalidValueError, KetapainError

__all__ = ["db_app", "serve_command", "users_app"]

console = Console()
err_console = Console(stderr=True)
db_app = typer.Typer(help="Create, migrate and fill the clinic database.", no_args_is_help=True)
users_app = typer.Typer(help="Add and list the clinic's users.", no_args_is_help=True)

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="sqlite:///file.db or postgresql+psycopg://user:pw@host/db "
        "(default: KETAPAIN_DATABASE_URL, else sqlite:///ketapain.db)",
    ),
]


def _settings(url: str | None) -> Settings:
    settings = Settings.from_env()
    return replace(settings, database_url=url) if url else settings


def _open(url: str | None) -> tuple[Settings, Database]:
    settings = _settings(url)
    return settings, Database.connect(settings.database_url)


def _open_migrated(url: str | None) -> tuple[Settings, Database]:
    """The settings and the database, which must hold this version's tables."""
    settings, db = _open(url)
    rev, head = migrate.current(db), migrate.head()
    if rev != head:
        found = "no ketapain tables" if rev is None else f"revision {rev}, not {head}"
        raise _fail(
            ConflictError("database", f"the database has {found}: run `ketapain db upgrade`")
        )
    return settings, db


def _fail(err: Exception) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {err}")
    return typer.Exit(code=2)


@db_app.command("upgrade")
def upgrade_command(database_url: UrlOpt = None) -> None:
    """Create or migrate the database to this version's schema."""
    try:
        _, db = _open(database_url)
        before = migrate.current(db)
        after = migrate.upgrade(db)
    except KetapainError as err:
        raise _fail(err) from None
    note = "already current" if before == after else f"migrated from {before or 'empty'}"
    console.print(f"database at revision [bold]{after}[/] ({note})")


@db_app.command("status")
def status_command(database_url: UrlOpt = None) -> None:
    """Show the database's revision and this version's newest."""
    _, db = _open(database_url)
    rev, head = migrate.current(db), migrate.head()
    console.print(f"database revision: {rev or 'empty'}; newest: {head}")
    if rev != head:
        raise typer.Exit(code=1)


@db_app.command("demo")
def demo_data_command(
    database_url: UrlOpt = None,
    today: Annotated[
        str | None, typer.Option(help="Day the demo courses are arranged around (YYYY-MM-DD).")
    ] = None,
) -> None:
    """Migrate a fresh database and fill it with demo staff and patients."""
    try:
        _, db = _open(database_url)
        migrate.upgrade(db)
        day = date.fromisoformat(today) if today else utc_now().date()
        with console.status("writing demo patients, courses and infusions..."):
            counts = fill_demo(db, today=day)
    except (KetapainError, ValueError) as err:
        raise _fail(err) from None
    console.print(
        _logins_table(f"demo data ({counts['patients']} patients, {counts['courses']} courses)")
    )


@db_app.command("synth")
def synth_command(
    patients: Annotated[
        int, typer.Option(help=f"Synthetic patients, one course each (1 to {MAX_PATIENTS:,}).")
    ],
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same registry.")] = 1,
    database_url: UrlOpt = None,
    today: Annotated[
        str | None, typer.Option(help="Day the registry ends on (YYYY-MM-DD; default today).")
    ] = None,
) -> None:
    """Migrate a fresh database and fill it with a synthetic registry of past courses.

    Synthetic data for benchmarks and for trying the reports: never clinical data.
    """
    try:
        _, db = _open(database_url)
        migrate.upgrade(db)
        day = date.fromisoformat(today) if today else utc_now().date()
        with Progress(
            TextColumn("[bold]synthetic registry[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("patients"),
            TimeElapsedColumn(),
            console=err_console,
        ) as bar:
            task = bar.add_task("patients", total=patients)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            counts = fill_synthetic(db, patients=patients, today=day, seed=seed, progress=progress)
    except ConflictError as err:
        err_console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(code=1) from None
    except (KetapainError, ValueError) as err:
        raise _fail(err) from None
    table = Table(title=f"synthetic registry (seed {seed}, up to {day}): not clinical data")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in counts.items():
        table.add_row(name, f"{n:,}")
    console.print(table)


def _logins_table(title: str = "demo logins") -> Table:
    table = Table(title=title)
    for col in ("username", "name", "role", "password"):
        table.add_column(col)
    for username, name, role in DEMO_USERS:
        table.add_row(username, name, role, DEMO_PASSWORD)
    return table


@users_app.command("create")
def create_user_command(
    username: Annotated[str, typer.Option(help="Login name.")],
    role: Annotated[Role, typer.Option(help="physician, nurse, front_desk or admin.")],
    full_name: Annotated[str, typer.Option(help="Name shown in records and audit.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    database_url: UrlOpt = None,
) -> None:
    """Add a user (asks for the password twice unless --password-stdin)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        _, db = _open_migrated(database_url)
        user = create_user(
            db, SYSTEM, username=username, full_name=full_name, role=role.value, password=password
        )
    except KetapainError as err:
        raise _fail(err) from None
    console.print(f"user [bold]{user.username}[/] ({user.role}) created")


@users_app.command("list")
def list_users_command(database_url: UrlOpt = None) -> None:
    """List the users."""
    _, db = _open_migrated(database_url)
    table = Table(title="users")
    for col in ("username", "name", "role", "active", "locked until (UTC)"):
        table.add_column(col)
    with db.session() as session:
        for u in list_users(session):
            locked = "" if u.locked_until_utc is None else f"{u.locked_until_utc:%Y-%m-%d %H:%M}"
            table.add_row(u.username, u.full_name, str(u.role), "yes" if u.active else "no", locked)
    console.print(table)


def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    database_url: UrlOpt = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Fill an empty database with demo data first.")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(min=1, max=64, help="Server processes (one per core for a busy clinic)."),
    ] = 1,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=32,
            help="Request threads per process (default: KETAPAIN_SERVER_THREADS, else 4).",
        ),
    ] = None,
) -> None:
    """Serve the clinic pages and the API (docs at /docs); migrates the database first.
    With --demo, an empty database gets demo data and the demo logins are printed.
    With --workers N, N processes share the port (each with its own connections)."""
    import uvicorn

    from ketapain.web.app import DEMO_LOGINS_ENV, create_app

    if threads is not None:
        os.environ["KETAPAIN_SERVER_THREADS"] = str(threads)
    try:
        settings, db = _open(database_url)
        if workers > 1 and settings.database_url in ("sqlite://", "sqlite:///:memory:"):
            raise InvalidValueError(
                "workers", "1 for an in-memory database (each process would have its own)", workers
            )
        migrate.upgrade(db)
        if demo:
            try:
                fill_demo(db, today=utc_now().date())
            except ConflictError:
                console.print("the database holds patients already: no demo data added")
    except KetapainError as err:
        raise _fail(err) from None
    console.print(f"ketapain clinic at [bold]http://{host}:{port}/[/bold]")
    console.print(f"API at http://{host}:{port}/api/v1 (docs: http://{host}:{port}/docs)")
    shown = demo and _demo_users_exist(db)
    if shown:
        console.print(_logins_table())
    # ketapain's access log names the route, not the address: no query strings.
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "info",
        "access_log": False,
        "log_config": _log_config(),
    }
    if workers == 1:
        uvicorn.run(create_app(settings, db=db, demo=shown), **options)
        return
    # Each worker process builds its own application from the environment.
    db.dispose()
    os.environ["KETAPAIN_DATABASE_URL"] = settings.database_url
    os.environ[DEMO_LOGINS_ENV] = "1" if shown else "0"
    uvicorn.run(
        "ketapain.web.app:app_from_env",
        factory=True,
        workers=workers,
        # A worker imports ketapain before it answers: seconds on a busy machine, longer
        # than uvicorn's default 5 s, after which it would kill and restart it.
        timeout_worker_healthcheck=60,
        **options,
    )


def _log_config() -> dict[str, Any]:
    """uvicorn's logging set-up with ketapain's access and error logs on the same stream."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["ketapain"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def _demo_users_exist(db: Database) -> bool:
    with db.read() as session:
        names = {u for u, _, _ in DEMO_USERS}
        query = select(func.count()).select_from(User).where(User.username.in_(names))
        return session.scalar(query) == len(names)
