"""Backups and restores: a restored database equals the one backed up (plus the restore's
own audit entry), an online backup is a consistent snapshot, and every unsafe request is
refused before anything is written.

SQLite is the subject of most tests (the online backup API, files); PostgreSQL's
pg_dump/pg_restore round trip runs when the ``db`` fixture has a PostgreSQL server.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, select, text
from typer.testing import CliRunner, Result

import ketapain.clinic  # noqa: F401 - registers every table on Base.metadata
from ketapain.cli import clinic as cli_clinic
from ketapain.cli.main import app
from ketapain.clinic import backup as backup_module
from ketapain.clinic import migrate
from ketapain.clinic._service import add_row, correct_row
from ketapain.clinic.audit import (
    SYSTEM,
    Actor,
    AuditEntry,
    add_event,
    record_event,
    verify_trail,
)
from ketapain.clinic.audit_chain import GENESIS, AuditChainHead, entry_sha256
from ketapain.clinic.backup import BackupInfo, RestoreInfo, backup, content_digest, restore
from ketapain.clinic.charting import record_vitals
from ketapain.clinic.db import Base, Database
from ketapain.clinic.demo import fill_demo
from ketapain.clinic.patients import BodyMeasurement, Patient
from ketapain.clinic.permissions import Action
from ketapain.config import Settings
from ketapain.errors import ConflictError, InvalidValueError, KetapainError

from .conftest import PRE_CHAIN

ON_SQLITE = pytest.mark.parametrize("db", ["sqlite"], indirect=True)
ON_POSTGRESQL = pytest.mark.parametrize("db", ["postgresql"], indirect=True)
# A past Monday: the demo refuses a day later than the real date.
DEMO_DAY = date(2026, 11, 16)
AUDIT_TABLES = ("audit_entries", "audit_chain_head")
# Clinical tables compared row by row, independently of content_digest.
CLINICAL = ("patients", "demographics", "infusions", "infusion_events", "vital_signs", "scores")
runner = CliRunner()


# --- helpers -------------------------------------------------------------------------


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _url(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _audit_rows(db: Database) -> list[dict[str, Any]]:
    """Every audit entry (all columns, typed) by id."""
    table = AuditEntry.__table__
    with db.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).order_by(table.c.id)).mappings()]


def _head(db: Database) -> tuple[int, str]:
    with db.engine.connect() as conn:
        row = conn.execute(select(AuditChainHead.seq, AuditChainHead.sha256)).one()
    return row.seq, row.sha256


def _verify(db: Database) -> Any:
    with db.read() as session:
        return verify_trail(session)


def _table_rows(db: Database, name: str) -> list[tuple[Any, ...]]:
    """The rows of a table in primary-key order, read without content_digest."""
    table = Base.metadata.tables[name]
    with db.engine.connect() as conn:
        query = select(table).order_by(*table.primary_key.columns)
        return [tuple(r) for r in conn.execute(query)]


def _sqlite_rows(path: Path, name: str) -> list[tuple[Any, ...]]:
    """The rows of a table as the sqlite3 module reads the file (read-only)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(f"SELECT * FROM {name} ORDER BY rowid").fetchall()
    finally:
        conn.close()


def _sqlite_pragma(path: Path, pragma: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(f"PRAGMA {pragma}").fetchall()
    finally:
        conn.close()


def _assert_restored(
    before: dict[str, tuple[int, str]],
    before_audit: list[dict[str, Any]],
    restored: Database,
    source: Path,
) -> dict[str, Any]:
    """The restored database equals the original as it was backed up: every table's
    digest but the audit's, the audit entries as they were, plus one 'restore' entry
    linked after them and the head on it. Returns that entry."""
    after = content_digest(restored)
    assert set(after) == set(before)
    for name in before:
        if name not in AUDIT_TABLES:
            assert after[name] == before[name], name
    rows = _audit_rows(restored)
    assert rows[:-1] == before_audit
    entry = rows[-1]
    n = len(before_audit)
    assert (entry["action"], entry["entity"], entry["actor_username"]) == (
        "restore", "database", "system",
    )  # fmt: skip
    assert entry["seq"] == n + 1
    assert entry["prev_sha256"] == (before_audit[-1]["sha256"] if before_audit else GENESIS)
    assert entry["detail"] is not None
    assert str(source) in entry["detail"]
    assert _file_sha256(source) in entry["detail"]
    assert after["audit_entries"][0] == before["audit_entries"][0] + 1
    assert _head(restored) == (n + 1, entry["sha256"])
    result = _verify(restored)
    assert result.intact, result.as_dict()
    assert result.entries == n + 1
    assert migrate.current(restored) == migrate.head()
    return entry


def _assert_backup_audited(
    db: Database, before_audit: list[dict[str, Any]], info: BackupInfo
) -> None:
    """The source gained exactly one entry, 'backup', naming the file and its SHA-256."""
    rows = _audit_rows(db)
    assert rows[:-1] == before_audit
    entry = rows[-1]
    assert (entry["action"], entry["entity"]) == ("backup", "database")
    assert str(info.path) in entry["detail"]
    assert info.sha256 in entry["detail"]
    assert entry["seq"] == len(before_audit) + 1
    assert _verify(db).intact


def _files(folder: Path) -> set[str]:
    """The files in a folder, but SQLite's write-ahead log and shared-memory files."""
    # SQLite's own files, and the lock file of a database's writers (ketapain.clinic.db).
    return {p.name for p in folder.iterdir() if not p.name.endswith(("-wal", "-shm", "-writer"))}


def _invoke(*args: str) -> Result:
    """Run the CLI; close the databases its commands leave open (an unclosed connection
    collected later would fail the run as a ResourceWarning)."""
    opened: list[Database] = []
    original = cli_clinic._open

    def tracked(url: str | None) -> tuple[Settings, Database]:
        settings, database = original(url)
        opened.append(database)
        return settings, database

    cli_clinic._open = tracked
    try:
        return runner.invoke(app, list(args))
    finally:
        cli_clinic._open = original
        for database in opened:
            database.dispose()


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file with the demo clinic (8 patients, 15 infusions), once."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    db = Database.connect(_sqlite_url(path))
    migrate.upgrade(db)
    fill_demo(db, today=DEMO_DAY)
    with db.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()
    return path


@pytest.fixture
def demo(_demo_file: Path, tmp_path: Path) -> Iterator[tuple[Path, Database]]:
    """A fresh copy of the demo clinic: its file and the database."""
    path = tmp_path / "clinic.db"
    shutil.copyfile(_demo_file, path)
    db = Database.connect(_sqlite_url(path))
    yield path, db
    db.dispose()


def _some_writes(db: Database, staff: dict[str, Actor], patient: Patient) -> None:
    nurse = staff["nurse"]
    record_vitals(db, nurse, (), patient_id=patient.id, sbp_mmhg=118.0, hr_per_min=66.0)
    m = add_row(db, nurse, Action.CHART, BodyMeasurement(patient_id=patient.id, weight_kg=70.2))
    correct_row(
        db, nurse, Action.CHART, BodyMeasurement, m.id, kind="body measurement",
        reason="scale misread", changes={"weight_kg": 70.0},
    )  # fmt: skip
    record_event(db, staff["admin"], action="export", entity="patients", detail="Zoë «export»")


# --- SQLite round trip ----------------------------------------------------------------


def test_sqlite_backup_and_restore_of_the_demo_clinic(
    demo: tuple[Path, Database], tmp_path: Path
) -> None:
    """The demo clinic backed up and restored into a new file: every table equal (digest
    and, for clinical tables, row by row as sqlite3 reads the files), the audit trail as
    it was plus one 'restore' entry, the original with one 'backup' entry; both files
    pass the integrity check and the restore is at head with an intact chain."""
    path, db = demo
    before = content_digest(db)
    before_audit = _audit_rows(db)
    assert before["patients"][0] == 8
    out = tmp_path / "backup.db"

    info = backup(_sqlite_url(path), out)

    assert info.path == out.resolve()
    assert info.engine == "sqlite"
    assert info.size_bytes == out.stat().st_size
    assert info.sha256 == _file_sha256(out)
    assert info.revision == migrate.head()
    assert info.rows == {name: count for name, (count, _) in before.items()}
    assert info.audit_head == _head_of(before_audit)
    assert not list(tmp_path.glob(".*partial*"))
    assert _sqlite_pragma(out, "integrity_check") == [("ok",)]
    assert _sqlite_pragma(out, "journal_mode") == [("delete",)]
    assert not out.with_name(out.name + "-wal").exists()
    _assert_backup_audited(db, before_audit, info)
    after_backup = content_digest(db)
    assert {k: v for k, v in after_backup.items() if k not in AUDIT_TABLES} == {
        k: v for k, v in before.items() if k not in AUDIT_TABLES
    }

    target = tmp_path / "restored.db"
    rinfo = restore(out, _sqlite_url(target))
    assert isinstance(rinfo, RestoreInfo)
    assert (rinfo.source, rinfo.engine) == (out.resolve(), "sqlite")
    assert (rinfo.revision_restored, rinfo.revision_now) == (migrate.head(), migrate.head())
    assert rinfo.audit_intact
    assert rinfo.audit_entries == len(before_audit) + 1
    assert rinfo.rows == {**info.rows, "audit_entries": len(before_audit) + 1}
    restored = Database.connect(_sqlite_url(target))
    try:
        _assert_restored(before, before_audit, restored, out.resolve())
        with restored.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").all() == [("ok",)]
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        for name in CLINICAL:
            assert _table_rows(restored, name) == _table_rows(db, name), name
    finally:
        restored.dispose()
    for name in CLINICAL:
        rows = _sqlite_rows(target, name)
        assert rows, name
        assert rows == _sqlite_rows(path, name), name
    assert _sqlite_rows(target, "users") == _sqlite_rows(path, "users")


def _head_of(rows: list[dict[str, Any]]) -> tuple[int, str]:
    return (rows[-1]["seq"], rows[-1]["sha256"]) if rows else (0, GENESIS)


@ON_SQLITE
def test_online_backup_while_another_thread_writes(
    db: Database, staff: dict[str, Actor], patient: Patient, tmp_path: Path
) -> None:
    """A backup taken while a nurse keeps charting is a consistent snapshot: it passes
    the integrity check, its chain is intact, it holds a prefix of the writes (each with
    its audit entry) and its trail is a prefix of the source's."""
    path = Path(str(db.engine.url.database))
    committed: list[float] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def chart() -> None:
        try:
            for i in range(300):
                if stop.is_set():
                    return
                weight = 100.0 + i
                add_row(db, staff["nurse"], Action.CHART,
                        BodyMeasurement(patient_id=patient.id, weight_kg=weight))  # fmt: skip
                committed.append(weight)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    writer = threading.Thread(target=chart)
    writer.start()
    try:
        deadline = time.monotonic() + 30
        while len(committed) < 5 and time.monotonic() < deadline and writer.is_alive():
            time.sleep(0.01)
        out = tmp_path / "online.db"
        backup(_sqlite_url(path), out)
        at_backup = len(committed)
        while len(committed) < at_backup + 3 and writer.is_alive():
            time.sleep(0.01)
    finally:
        stop.set()
        writer.join()
    assert errors == []
    assert _sqlite_pragma(out, "integrity_check") == [("ok",)]

    target = tmp_path / "restored.db"
    rinfo = restore(out, _sqlite_url(target))
    assert rinfo.audit_intact
    restored = Database.connect(_sqlite_url(target))
    try:
        with restored.session() as session:
            weights = sorted(
                session.scalars(
                    select(BodyMeasurement.weight_kg).where(BodyMeasurement.weight_kg >= 100.0)
                )
            )
        assert len(weights) >= 5
        assert weights == committed[: len(weights)]
        trail = _audit_rows(restored)[:-1]
        source_trail = _audit_rows(db)
        assert len(trail) < len(source_trail)
        assert trail == source_trail[: len(trail)]
        charted = [e for e in trail if e["entity"] == "body_measurements" and e["after"]]
        assert (
            sorted(e["after"]["weight_kg"] for e in charted if e["after"]["weight_kg"] >= 100)
            == weights
        )
        assert _verify(restored).intact
    finally:
        restored.dispose()


@ON_SQLITE
def test_backup_info_describes_the_backup_itself(
    db: Database, staff: dict[str, Actor], patient: Patient, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The rows and the audit head reported for a backup are those of the file written,
    even when a nurse charts right after the copy (deterministically: just after it)."""
    rename = backup_module._fsync_rename

    def rename_then_chart(tmp: Path, final: Path) -> None:
        rename(tmp, final)
        add_row(db, staff["nurse"], Action.CHART,
                BodyMeasurement(patient_id=patient.id, weight_kg=99.0))  # fmt: skip

    monkeypatch.setattr(backup_module, "_fsync_rename", rename_then_chart)
    out = tmp_path / "b.db"
    info = backup(_url(db), out)
    conn = sqlite3.connect(f"file:{out}?mode=ro", uri=True)
    try:
        in_file = conn.execute("SELECT count(*) FROM body_measurements").fetchone()[0]
        head = tuple(conn.execute("SELECT seq, sha256 FROM audit_chain_head").fetchone())
    finally:
        conn.close()
    assert info.rows["body_measurements"] == in_file
    assert info.audit_head == head


# --- PostgreSQL round trip ------------------------------------------------------------


@ON_POSTGRESQL
def test_postgresql_backup_and_restore(
    db: Database, staff: dict[str, Actor], patient: Patient, tmp_path: Path
) -> None:
    """pg_dump and pg_restore into a second, empty database: every table equal but the
    audit's, which holds the original trail plus one 'restore' entry; a database holding
    tables is refused without --replace, and replaced (equal again) with it."""
    _some_writes(db, staff, patient)
    before = content_digest(db)
    before_audit = _audit_rows(db)
    out = tmp_path / "clinic.dump"

    info = backup(_url(db), out)

    assert info.engine == "postgresql"
    assert out.read_bytes().startswith(b"PGDMP")
    assert info.sha256 == _file_sha256(out)
    assert info.revision == migrate.head()
    assert info.rows == {name: count for name, (count, _) in before.items()}
    assert info.audit_head == _head_of(before_audit)
    _assert_backup_audited(db, before_audit, info)

    admin = create_engine(db.engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"ketapain_restore_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    target_url = db.engine.url.set(database=name).render_as_string(hide_password=False)
    try:
        rinfo = restore(out, target_url)
        assert (rinfo.engine, rinfo.revision_restored, rinfo.revision_now) == (
            "postgresql", migrate.head(), migrate.head(),
        )  # fmt: skip
        assert rinfo.audit_intact
        assert rinfo.rows == {**info.rows, "audit_entries": len(before_audit) + 1}
        restored = Database.connect(target_url)
        try:
            _assert_restored(before, before_audit, restored, out.resolve())
            for table in ("patients", "body_measurements", "vital_signs", "users"):
                assert _table_rows(restored, table) == _table_rows(db, table), table
            record_event(restored, SYSTEM, action="export", entity="patients")
            assert _verify(restored).intact
            written = content_digest(restored)
            restored.dispose()

            with pytest.raises(ConflictError) as err:
                restore(out, target_url)
            assert err.value.field == "database_url"
            assert content_digest(restored) == written

            restore(out, target_url, replace=True)
            _assert_restored(before, before_audit, restored, out.resolve())
        finally:
            restored.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- refusals -------------------------------------------------------------------------


@ON_SQLITE
def test_backup_refuses_an_existing_file_or_a_missing_folder(db: Database, tmp_path: Path) -> None:
    """An output file that exists is refused naming 'out' and left as it was; a folder
    that does not exist is refused naming 'out'; nothing is audited."""
    before_audit = _audit_rows(db)
    out = tmp_path / "taken.db"
    out.write_bytes(b"keep me")
    with pytest.raises(ConflictError) as err:
        backup(_url(db), out)
    assert err.value.field == "out"
    assert out.read_bytes() == b"keep me"
    with pytest.raises(InvalidValueError) as err2:
        backup(_url(db), tmp_path / "no-such-folder" / "b.db")
    assert err2.value.field == "out"
    assert _files(tmp_path) == {"clinic.db", "taken.db"}
    assert _audit_rows(db) == before_audit


@ON_SQLITE
def test_restore_refuses_a_database_with_tables_unless_replace(
    db: Database, staff: dict[str, Actor], patient: Patient, tmp_path: Path
) -> None:
    """Restoring into a database that holds tables is refused naming 'database_url' and
    leaves it as it was; with replace it is overwritten by the backup (plus 'restore')."""
    before = content_digest(db)
    before_audit = _audit_rows(db)
    out = tmp_path / "b.db"
    backup(_url(db), out)
    _some_writes(db, staff, patient)  # the target: the same database, charted on since
    changed = content_digest(db)

    with pytest.raises(ConflictError) as err:
        restore(out, _url(db))
    assert err.value.field == "database_url"
    assert content_digest(db) == changed
    db.dispose()

    rinfo = restore(out, _url(db), replace=True)
    assert rinfo.audit_intact
    _assert_restored(before, before_audit, db, out.resolve())
    assert _sqlite_pragma(Path(str(db.engine.url.database)), "integrity_check") == [("ok",)]


def test_restore_refuses_another_kind_of_database(tmp_path: Path) -> None:
    """A SQLite backup is not restored into PostgreSQL nor a pg_dump file into SQLite
    (InvalidValueError naming 'database_url'), before either database is opened."""
    source = tmp_path / "s.db"
    db = Database.connect(_sqlite_url(source))
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()
    out = tmp_path / "b.db"
    backup(_sqlite_url(source), out)
    with pytest.raises(InvalidValueError) as err:
        restore(out, "postgresql+psycopg://nobody@127.0.0.1:1/nothing")
    assert err.value.field == "database_url"

    dump = tmp_path / "clinic.dump"
    dump.write_bytes(b"PGDMP\x01\x0e\x00" + bytes(200))
    target = tmp_path / "t.db"
    with pytest.raises(InvalidValueError) as err:
        restore(dump, _sqlite_url(target))
    assert err.value.field == "database_url"
    assert not target.exists()
    with pytest.raises(InvalidValueError) as err:
        restore(out, "mysql://x@localhost/y")
    assert err.value.field == "database_url"


@ON_SQLITE
def test_restore_refuses_a_file_that_is_not_a_backup(db: Database, tmp_path: Path) -> None:
    """A text file, a missing file and an SQLite file of another program are refused
    naming 'backup'; the target (replace allowed) is left as it was."""
    before = content_digest(db)
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a backup\n" * 10)
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    try:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
    finally:
        conn.close()
    for source in (text_file, tmp_path / "missing.db", other, tmp_path):
        with pytest.raises(InvalidValueError) as err:
            restore(source, _url(db), replace=True)
        assert err.value.field == "backup", source
    assert content_digest(db) == before


def _fill_pages(db: Database) -> None:
    """Enough audited events (one transaction) that the middle of the file is table data."""
    with db.write() as session, session.begin():
        for i in range(40):
            add_event(session, SYSTEM, action="read", entity="patients", detail="x" * 400 + str(i))


def _corrupt(backup_file: Path, corrupt: Path) -> None:
    """A copy of the file with 64 bytes in its middle page flipped."""
    data = bytearray(backup_file.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + 64):
        data[i] ^= 0xFF
    corrupt.write_bytes(bytes(data))


@ON_SQLITE
def test_corrupted_backup_is_refused_and_target_untouched(
    db: Database, staff: dict[str, Actor], patient: Patient, tmp_path: Path
) -> None:
    """A backup with bytes flipped in the middle is refused (even with replace) and the
    target database keeps its content and passes the integrity check."""
    _fill_pages(db)
    out = tmp_path / "b.db"
    backup(_url(db), out)
    corrupt = tmp_path / "corrupt.db"
    _corrupt(out, corrupt)
    before = content_digest(db)
    with pytest.raises((KetapainError, sqlite3.DatabaseError)):
        restore(corrupt, _url(db), replace=True)
    assert content_digest(db) == before
    assert _sqlite_pragma(Path(str(db.engine.url.database)), "integrity_check") == [("ok",)]
    assert _verify(db).intact


@ON_SQLITE
def test_corrupted_backup_is_refused_as_an_error(db: Database, tmp_path: Path) -> None:
    """The refusal of a corrupted backup is ketapain's own error naming 'backup', so that
    ``ketapain restore`` prints it and exits 2."""
    _fill_pages(db)
    out = tmp_path / "b.db"
    backup(_url(db), out)
    corrupt = tmp_path / "corrupt.db"
    _corrupt(out, corrupt)
    result = _invoke("restore", str(corrupt), "--database-url", _url(db), "--replace")
    assert result.exit_code == 2, result.output
    assert "backup" in result.output
    with pytest.raises(KetapainError) as err:
        restore(corrupt, _url(db), replace=True)
    assert getattr(err.value, "field", None) == "backup"


@ON_SQLITE
def test_backup_from_a_newer_version_is_refused_before_the_target_is_touched(
    db: Database, tmp_path: Path
) -> None:
    """A backup at a revision this version does not know is refused naming 'backup',
    and the target (replace allowed) keeps its data."""
    out = tmp_path / "b.db"
    backup(_url(db), out)
    conn = sqlite3.connect(out)
    try:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
        conn.commit()
    finally:
        conn.close()
    target = Database.connect(_sqlite_url(tmp_path / "target.db"))
    try:
        migrate.upgrade(target)
        record_event(target, SYSTEM, action="export", entity="patients", detail="keep me")
        before = content_digest(target)
        target.dispose()
        with pytest.raises(KetapainError) as err:
            restore(out, _url(target), replace=True)
        assert getattr(err.value, "field", None) == "backup"
        assert content_digest(target) == before
    finally:
        target.dispose()


def test_in_memory_databases_are_refused(tmp_path: Path) -> None:
    """An in-memory SQLite URL can be neither backed up nor restored into (naming
    'database_url'); no output file is left."""
    out = tmp_path / "b.db"
    for url in ("sqlite://", "sqlite:///:memory:"):
        with pytest.raises(InvalidValueError) as err:
            backup(url, out)
        assert err.value.field == "database_url"
        assert not out.exists()
    source = tmp_path / "s.db"
    db = Database.connect(_sqlite_url(source))
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()
    backup(_sqlite_url(source), out)
    for url in ("sqlite://", "sqlite:///:memory:"):
        with pytest.raises(InvalidValueError) as err:
            restore(out, url)
        assert err.value.field == "database_url"
    assert _files(tmp_path) == {"b.db", "s.db"}


def test_backup_of_a_missing_sqlite_file_is_refused(tmp_path: Path) -> None:
    """A SQLite URL naming no file is refused naming 'database_url'; nothing is created."""
    missing = tmp_path / "typo.db"
    with pytest.raises(InvalidValueError) as err:
        backup(_sqlite_url(missing), tmp_path / "b.db")
    assert err.value.field == "database_url"
    assert not missing.exists()
    assert not (tmp_path / "b.db").exists()


# --- an older schema ------------------------------------------------------------------


def test_backup_at_revision_0002_restores_to_head_with_a_chain(tmp_path: Path) -> None:
    """A database still at 0002 (no audit chain) is backed up as it is, without a backup
    entry; the restore migrates it to head and links its entries (in id order) into an
    intact chain followed by the 'restore' entry."""
    source = tmp_path / "old.db"
    db = Database.connect(_sqlite_url(source))
    t0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    entries = [
        {"time_utc": t0 + timedelta(minutes=i), "actor_id": None, "actor_username": "system",
         "actor_role": "system", "action": "create", "entity": "users", "entity_id": str(i),
         "before": None, "after": {"n": i, "name": "Zoë", "w": [68.0, None]},
         "detail": None if i % 2 else f"entry {i} ✓"}
        for i in range(6)
    ]  # fmt: skip
    try:
        assert migrate.upgrade(db, "0002") == "0002"
        with db.engine.begin() as conn:
            conn.execute(insert(PRE_CHAIN), entries)
        out = tmp_path / "old-backup.db"
        info = backup(_sqlite_url(source), out)
        assert info.revision == "0002"
        assert info.audit_head == (0, "")
        assert info.rows["audit_entries"] == len(entries)
        assert migrate.current(db) == "0002"
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit_entries")).scalar() == len(entries)
    finally:
        db.dispose()

    target = tmp_path / "new.db"
    rinfo = restore(out, _sqlite_url(target))
    assert (rinfo.revision_restored, rinfo.revision_now) == ("0002", migrate.head())
    assert rinfo.audit_intact
    assert rinfo.audit_entries == len(entries) + 1
    restored = Database.connect(_sqlite_url(target))
    try:
        rows = _audit_rows(restored)
        assert [r["seq"] for r in rows] == list(range(1, len(entries) + 2))
        assert [r["detail"] for r in rows[:-1]] == [e["detail"] for e in entries]
        prev = GENESIS
        for row in rows:
            assert row["prev_sha256"] == prev
            assert row["sha256"] == entry_sha256(row, seq=row["seq"], prev_sha256=prev)
            prev = row["sha256"]
        assert rows[-1]["action"] == "restore"
        assert _head(restored) == (len(rows), prev)
        assert _verify(restored).intact
    finally:
        restored.dispose()


# --- the command line -----------------------------------------------------------------

_ROW = re.compile(r"^\s*[│|┃]\s*([a-z_]+)\s*[│|┃]\s*(\d+)\s*[│|┃]\s*$", re.MULTILINE)


def _printed_rows(output: str) -> dict[str, int]:
    return {name: int(count) for name, count in _ROW.findall(output)}


@ON_SQLITE
def test_cli_backup_restore_and_verify(
    db: Database, staff: dict[str, Actor], patient: Patient, tmp_path: Path
) -> None:
    """``ketapain backup`` prints the file's SHA-256, the rows and the audit head (exit 0)
    and refuses an existing file (exit 2); ``ketapain restore`` restores (exit 0), refuses
    a database with tables without --replace (exit 2) and a file that is no backup
    (exit 2); ``ketapain audit verify`` accepts the head printed at the backup as anchor."""
    _some_writes(db, staff, patient)
    before = content_digest(db)
    head = _head(db)
    out = tmp_path / "cli-backup.db"

    result = _invoke("backup", str(out), "--database-url", _url(db))
    assert result.exit_code == 0, result.output
    sha = re.search(r"sha256:\s+([0-9a-f]{64})", result.stdout)
    assert sha is not None
    assert sha.group(1) == _file_sha256(out)
    assert _printed_rows(result.stdout) == {name: n for name, (n, _) in before.items()}
    assert f"audit head at the backup: {head[0]}:{head[1]}" in result.stdout

    result = _invoke("backup", str(out), "--database-url", _url(db))
    assert result.exit_code == 2
    assert "exists" in result.output

    target = _sqlite_url(tmp_path / "cli-restored.db")
    result = _invoke("restore", str(out), "--database-url", target)
    assert result.exit_code == 0, result.output
    rows = _printed_rows(result.stdout)
    assert rows == {**{name: n for name, (n, _) in before.items()},
                    "audit_entries": head[0] + 1}  # fmt: skip
    assert f"now at {migrate.head()}" in result.stdout
    assert f"{head[0] + 1} entries, chain intact" in result.stdout

    result = _invoke("restore", str(out), "--database-url", target)
    assert result.exit_code == 2
    assert "--replace" in result.output
    result = _invoke("restore", str(out), "--database-url", target, "--replace")
    assert result.exit_code == 0, result.output
    not_backup = tmp_path / "notes.txt"
    not_backup.write_text("hello")
    result = _invoke("restore", str(not_backup), "--database-url", target, "--replace")
    assert result.exit_code == 2
    assert "backup" in result.output

    result = _invoke(
        "audit", "verify", "--database-url", target, "--anchor", f"{head[0]}:{head[1]}"
    )
    assert result.exit_code == 0, result.output
    assert f"{head[0] + 1} entries, chain intact" in result.stdout
