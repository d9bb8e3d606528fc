"""Backups and restores of the clinic database (``ketapain backup``, ``ketapain restore``).

SQLite is copied with its online backup API (``sqlite3.Connection.backup``): the server
may keep charting while the copy is taken, and the copy is a consistent snapshot of one
moment. It is written beside the target under a temporary name, checked with
``PRAGMA integrity_check``, flushed to disk and only then renamed, so that a crash never
leaves a half-written file under the backup's name. PostgreSQL is dumped with
``pg_dump --format=custom`` (a consistent snapshot too) and restored with
``pg_restore --single-transaction``, which either restores everything or nothing.

A restore refuses a target that holds a database already unless told to replace it,
migrates the restored database to this version's schema, and audits itself in it. A
backup is audited in the database it copies. :func:`content_digest` gives each table's
row count and a SHA-256 of its rows, the same for a database and its restored copy.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, func, inspect, select
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.pool import NullPool

from ketapain.clinic import migrate
from ketapain.clinic.audit import SYSTEM, record_event, verify_trail
from ketapain.clinic.audit_chain import AuditChainHead
from ketapain.clinic.db import Base, Database
from ketapain.errors import ConflictError, InvalidValueError, KetapainError

__all__ = [
    "BackupInfo",
    "BackupToolError",
    "RestoreInfo",
    "backup",
    "content_digest",
    "restore",
]

_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_PG_MAGIC: Final = b"PGDMP"
# Pages copied per step of the SQLite online backup (4 MiB with 4 KiB pages).
_PAGES_PER_STEP: Final = 1024

Progress = Callable[[int, int], None]


class BackupToolError(KetapainError):
    """pg_dump or pg_restore is missing or failed."""


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """A backup written: where, how big, its SHA-256, the schema and the tables' rows."""

    path: Path
    engine: str
    size_bytes: int
    sha256: str
    revision: str | None
    rows: dict[str, int]
    audit_head: tuple[int, str]


@dataclass(frozen=True, slots=True)
class RestoreInfo:
    """A restore done: from where, the revision before and after, the rows, the audit."""

    source: Path
    engine: str
    revision_restored: str | None
    revision_now: str
    rows: dict[str, int]
    audit_intact: bool
    audit_entries: int


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _engine_of(url: str) -> str:
    if url.startswith("sqlite"):
        return "sqlite"
    if url.startswith("postgresql"):
        return "postgresql"
    raise InvalidValueError("database_url", "an sqlite:/// or postgresql+psycopg:// URL", url)


def _sqlite_file(url: str) -> Path:
    name = make_url(url).database
    if not name or name == ":memory:":
        raise InvalidValueError("database_url", "an SQLite file (not an in-memory database)", url)
    return Path(name)


def _fsync_rename(tmp: Path, final: Path) -> None:
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    tmp.replace(final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _describe(conn: Connection) -> tuple[str | None, dict[str, int], tuple[int, str]]:
    """The revision, the rows per table and the audit chain's head seen by ``conn``."""
    revision = MigrationContext.configure(conn).get_current_revision()
    tables = set(inspect(conn).get_table_names())
    rows = {
        t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
        for t in Base.metadata.sorted_tables
        if t.name in tables
    }
    head = (0, "")
    if AuditChainHead.__tablename__ in tables:
        row = conn.execute(
            select(AuditChainHead.seq, AuditChainHead.sha256).where(AuditChainHead.id == 1)
        ).first()
        head = (0, "") if row is None else (int(row.seq), str(row.sha256))
    return revision, rows, head


def backup(url: str, out: Path, *, progress: Progress | None = None) -> BackupInfo:
    """Write a consistent copy of the database at ``url`` to ``out`` and audit it there.

    The rows and the audit head reported are those of the copy, not of the database as it
    is afterwards (the clinic may chart on meanwhile).
    """
    engine = _engine_of(url)
    out = out.resolve()
    if out.exists():
        raise ConflictError("out", f"{out} exists already: name a new file")
    if not out.parent.is_dir():
        raise InvalidValueError("out", "a file in an existing folder", str(out))
    if engine == "sqlite" and not _sqlite_file(url).is_file():
        raise InvalidValueError("database_url", "an existing SQLite file", url)
    tmp = out.with_name(f".{out.name}.partial")
    tmp.unlink(missing_ok=True)
    try:
        if engine == "sqlite":
            _sqlite_backup(_sqlite_file(url), tmp, progress)
            copy = create_engine(f"sqlite:///{tmp}", poolclass=NullPool)
            try:
                with copy.connect() as conn:
                    revision, rows, head = _describe(conn)
            finally:
                copy.dispose()
        else:
            revision, rows, head = _pg_dump(url, tmp)
        _fsync_rename(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    sha256 = _file_sha256(out)
    info = BackupInfo(
        path=out,
        engine=engine,
        size_bytes=out.stat().st_size,
        sha256=sha256,
        revision=revision,
        rows=rows,
        audit_head=head,
    )
    # An older schema is copied as it is (back up before `ketapain db upgrade`); only this
    # version's schema has the audit chain to write the backup's entry to.
    if revision == migrate.head():
        db = Database.connect(url)
        try:
            record_event(
                db,
                SYSTEM,
                action="backup",
                entity="database",
                detail=f"backup to {out} ({info.size_bytes} bytes, sha256 {sha256}, audit "
                f"head {head[0]}) by operating-system user {getpass.getuser()}",
            )
        finally:
            db.dispose()
    return info


def _copy_sqlite(
    src: sqlite3.Connection, dst: sqlite3.Connection, progress: Progress | None
) -> None:
    """SQLite's online backup from ``src`` into ``dst``, reporting pages done and total."""
    callback = None if progress is None else (lambda _s, left, total: progress(total - left, total))
    src.backup(dst, pages=_PAGES_PER_STEP, progress=callback)


def _sqlite_backup(source: Path, tmp: Path, progress: Progress | None) -> None:
    if not source.is_file():
        raise InvalidValueError("database_url", "an existing SQLite file", str(source))
    src = sqlite3.connect(source)
    dst = sqlite3.connect(tmp)
    try:
        _copy_sqlite(src, dst, progress)
        # One self-contained file: no write-ahead log beside it.
        dst.execute("PRAGMA journal_mode=DELETE")
        check = dst.execute("PRAGMA integrity_check").fetchone()
        if check is None or check[0] != "ok":
            raise ConflictError("backup", f"the copy fails SQLite's integrity check: {check}")
    finally:
        dst.close()
        src.close()


def _pg_tool(name: str) -> str:
    """The newest installed ``pg_dump``/``pg_restore`` (Debian keeps one per version)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if found:
        return str(found[-1])
    on_path = shutil.which(name)
    if on_path is None:
        raise BackupToolError(
            f"{name} is not installed: install the PostgreSQL client "
            "(Debian: apt-get install postgresql-client)"
        )
    return on_path


def _pg_args(url: URL) -> tuple[list[str], dict[str, str]]:
    args = [f"--dbname={url.database}"]
    if url.host:
        args.append(f"--host={url.host}")
    if url.port:
        args.append(f"--port={url.port}")
    if url.username:
        args.append(f"--username={url.username}")
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return args, env


def _run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tool = Path(command[0]).name
        raise BackupToolError(f"{tool} failed (exit {done.returncode}): {done.stderr.strip()}")


def _pg_dump(url: str, tmp: Path) -> tuple[str | None, dict[str, int], tuple[int, str]]:
    """pg_dump of the snapshot that the rows and the audit head are read in."""
    args, env = _pg_args(make_url(url))
    engine = create_engine(url, poolclass=NullPool, hide_parameters=True)
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
            described = _describe(conn)
            _run(
                [
                    _pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                    f"--snapshot={snapshot}", f"--file={tmp}", *args,
                ],
                env,
            )  # fmt: skip
            conn.rollback()
    finally:
        engine.dispose()
    return described


def _dump_revision(source: Path) -> str | None:
    """The Alembic revision inside a pg_dump file, read without restoring it."""
    done = subprocess.run(
        [_pg_tool("pg_restore"), "--data-only", "--table=alembic_version", "--file=-", str(source)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise InvalidValueError(
            "backup", f"a pg_dump file pg_restore can read ({done.stderr.strip()})", str(source)
        )
    found = re.search(r"COPY [^\n]*alembic_version[^\n]*FROM stdin;\n([^\n\\]+)\n", done.stdout)
    return None if found is None else found.group(1).strip()


def _kind_of_file(path: Path) -> str:
    if not path.is_file():
        raise InvalidValueError("backup", "an existing backup file", str(path))
    with path.open("rb") as f:
        head = f.read(16)
    if head.startswith(_SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(_PG_MAGIC):
        return "postgresql"
    raise InvalidValueError(
        "backup", "a file written by `ketapain backup` (SQLite or pg_dump custom format)", str(path)
    )


def _check_sqlite_backup(path: Path) -> str | None:
    """The backup's revision, after SQLite's integrity check of the whole file."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        try:
            check = conn.execute("PRAGMA integrity_check").fetchone()
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.DatabaseError as err:
            raise InvalidValueError(
                "backup", f"an undamaged backup of a ketapain database (SQLite: {err})", str(path)
            ) from None
        if check is None or check[0] != "ok":
            found = None if check is None else check[0]
            raise InvalidValueError(
                "backup", f"an undamaged backup (SQLite's integrity check: {found})", str(path)
            )
        return None if row is None else str(row[0])
    finally:
        conn.close()


def _check_revision(revision: str | None) -> None:
    """Refuse a backup written by a newer version, before the target is touched."""
    if revision is not None and not migrate.known(revision):
        raise ConflictError(
            "backup",
            f"the backup is at revision {revision}, which this version of ketapain does not "
            f"know (its newest is {migrate.head()}): restore it with the version that wrote it",
        )


def _holds_tables(db: Database) -> bool:
    return bool(inspect(db.engine).get_table_names())


def restore(
    source: Path, url: str, *, replace: bool = False, progress: Progress | None = None
) -> RestoreInfo:
    """Restore the backup ``source`` into the database at ``url``, migrate it to this
    version and audit the restore in it. A target holding tables is refused unless
    ``replace``; a backup restores only into the same kind of database."""
    source = source.resolve()
    kind, engine = _kind_of_file(source), _engine_of(url)
    if kind != engine:
        raise InvalidValueError(
            "database_url",
            f"a {kind} database (the backup is of {kind}; use FHIR export/import to move "
            "records between kinds of database)",
            url,
        )
    db = Database.connect(url)
    try:
        if _holds_tables(db) and not replace:
            raise ConflictError(
                "database_url",
                "the target database holds tables already: restore into a new database, "
                "or pass --replace to overwrite it",
            )
        if kind == "sqlite":
            revision = _check_sqlite_backup(source)
            _check_revision(revision)
            db.dispose()
            _sqlite_restore(source, _sqlite_file(url), progress)
        else:
            revision = _dump_revision(source)
            _check_revision(revision)
            _pg_restore(db, make_url(url), source)
        db.dispose()
        db = Database.connect(url)
        if revision is None:
            revision = migrate.current(db)
        now = migrate.upgrade(db)
        record_event(
            db,
            SYSTEM,
            action="restore",
            entity="database",
            detail=f"restored from {source} (sha256 {_file_sha256(source)}, revision "
            f"{revision}) by operating-system user {getpass.getuser()}",
        )
        with db.read() as session:
            trail = verify_trail(session)
        with db.engine.connect() as conn:
            _, rows, _ = _describe(conn)
        return RestoreInfo(
            source=source,
            engine=engine,
            revision_restored=revision,
            revision_now=now,
            rows=rows,
            audit_intact=trail.intact,
            audit_entries=trail.entries,
        )
    finally:
        db.dispose()


def _sqlite_restore(source: Path, target: Path, progress: Progress | None) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        _copy_sqlite(src, dst, progress)
        dst.execute("PRAGMA journal_mode=WAL")
    finally:
        dst.close()
        src.close()


def _pg_restore(db: Database, url: URL, source: Path) -> None:
    if _holds_tables(db):
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    db.dispose()
    args, env = _pg_args(url)
    _run(
        [
            _pg_tool("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            *args,
            str(source),
        ],
        env,
    )


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, str | int | float | bool | dict | list):
        return value
    return str(value)


def content_digest(db: Database) -> dict[str, tuple[int, str]]:
    """Each table's row count and the SHA-256 of its rows in primary-key order."""
    tables = set(inspect(db.engine).get_table_names())
    out: dict[str, tuple[int, str]] = {}
    with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name not in tables:
                continue
            digest, count = hashlib.sha256(), 0
            query = select(table).order_by(*table.primary_key.columns)
            for row in conn.execute(query):
                values = [_canonical(v) for v in row]
                digest.update(json.dumps(values, sort_keys=True, default=str).encode())
                count += 1
            out[table.name] = (count, digest.hexdigest())
    return out
