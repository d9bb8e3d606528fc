"""The shared fixtures give a migrated database with staff on both engines, and a
PostgreSQL database taken back from a test is in exactly the template's state again."""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg
import pytest
from tests.conftest import PgDatabases, _libpq, _pg_snapshot, _pg_url

from ketapain.clinic import migrate
from ketapain.clinic.accounts import TokenKind, User, issue_token
from ketapain.clinic.db import Database
from ketapain.clinic.registry import register_patient
from ketapain.config import Settings


def test_template_is_migrated_with_staff(db, staff, patient):
    """Every test database is at the newest revision and holds the four staff roles."""
    assert migrate.current(db) == migrate.head()
    assert set(staff) == {"physician", "nurse", "front_desk", "admin"}
    assert patient.mrn == "T-0001"


def _state(name: str) -> dict[str, Any]:
    """Everything a test could see of the database ``name``: the catalog's state, every
    table's rows (``COPY`` text, in physical order and sorted) and every sequence."""
    with psycopg.connect(_libpq(name), autocommit=True) as conn:
        snapshot = _pg_snapshot(conn)
    return {
        "catalog": snapshot.catalog,
        "rows": {t: sorted(snapshot.rows.get(t, b"").splitlines()) for t in snapshot.tables},
        "sequences": snapshot.sequences,
    }


def _write_a_little_of_everything(name: str) -> None:
    """A patient and a token: rows, audit entries, the chain's head and the sequences all
    move on."""
    db = Database.connect(_pg_url(name))
    try:
        with db.session() as session:
            users = {str(u.role): u for u in session.query(User)}
        register_patient(
            db,
            users["front_desk"].actor(),
            mrn="RESET-1",
            family_name="Reset",
            given_name="Rita",
            birth_date=date(1970, 1, 2),
            sex="female",
        )
        issue_token(db, Settings(), users["nurse"], kind=TokenKind.API)
    finally:
        db.dispose()


def test_a_database_taken_back_equals_the_template(pg_databases: PgDatabases) -> None:
    """Rows written, sessions left open (one idle in a transaction holding a row lock):
    once taken back, the database holds exactly the template's rows and sequences and the
    next test gets it."""
    template = _state(pg_databases.template)
    name = pg_databases.acquire()
    assert _state(name) == template
    _write_a_little_of_everything(name)
    assert _state(name)["rows"] != template["rows"]
    left_open = psycopg.connect(_libpq(name))
    left_open.execute("SELECT * FROM users FOR UPDATE").fetchall()  # idle in transaction
    try:
        pg_databases.release(name)
        assert left_open.closed or left_open.broken or _is_dead(left_open)
    finally:
        left_open.close()
    again = pg_databases.acquire()
    try:
        assert again == name
        assert _state(again) == template
    finally:
        pg_databases.release(again)


def _is_dead(conn: psycopg.Connection[Any]) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


@pytest.mark.parametrize(
    "change",
    [
        "DROP TRIGGER audit_entries_append_only ON audit_entries",
        "ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_append_only",
        "CREATE TABLE extra (x integer)",
        "ALTER TABLE patients ALTER COLUMN mrn DROP NOT NULL",
        "CREATE SCHEMA elsewhere",
    ],
)
def test_a_database_whose_schema_changed_is_dropped(pg_databases: PgDatabases, change: str) -> None:
    """A test that changed anything but rows (a trigger dropped or disabled, a table or a
    schema added, a constraint lifted) leaves a database nobody gets again: it is dropped
    and the next test gets a new copy of the template."""
    name = pg_databases.acquire()
    with psycopg.connect(_libpq(name), autocommit=True) as conn:
        conn.execute(change)
    pg_databases.release(name)
    with psycopg.connect(_libpq(pg_databases.template), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        assert exists.fetchone() is None
    fresh = pg_databases.acquire()
    try:
        assert fresh != name
        assert _state(fresh) == _state(pg_databases.template)
    finally:
        pg_databases.release(fresh)
