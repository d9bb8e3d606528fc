"""Settings and fixtures shared by the whole test suite.

Clinical-records fixtures: one migrated database per test, on SQLite and on PostgreSQL,
with the four staff users already in it. PostgreSQL runs when
``KETAPAIN_TEST_POSTGRESQL_URL`` names a server (``.ci/run`` starts one on loopback and
sets it, with ``KETAPAIN_REQUIRE_POSTGRESQL=1`` so that a missing server fails the run
instead of skipping). Each test gets a database in exactly the state of a migrated
template, so tests never see each other's rows: on SQLite a copy of the template's file;
on PostgreSQL a copy of the template database (``CREATE DATABASE ... TEMPLATE``), which
is put back in the template's state once a test is done with it and handed to the next
(a database whose schema a test changed is dropped instead: see :class:`PgDatabases`).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import psycopg
import pytest
from hypothesis import settings
from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url

from ketapain.clinic import migrate
from ketapain.clinic._service import add_row
from ketapain.clinic.accounts import User, create_user
from ketapain.clinic.audit import SYSTEM, Actor
from ketapain.clinic.charting import record_score, record_vitals
from ketapain.clinic.checklist import record_checklist
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.demo import fill_demo
from ketapain.clinic.patients import BodyMeasurement, Diagnosis, Patient
from ketapain.clinic.permissions import Action
from ketapain.clinic.registry import register_patient

# Simulations take milliseconds but vary with machine load; a deadline would make the
# property tests flaky without catching anything. "thorough" is for occasional long runs:
# HYPOTHESIS_PROFILE=thorough uv run pytest tests
settings.register_profile("ketapain", deadline=None, max_examples=40)
settings.register_profile("thorough", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ketapain"))

# Where PYTHONDONTWRITEBYTECODE is set (CI sets it), every Python process compiles every
# module it imports from source: 10-20 s for a pytest-xdist worker's collection and about
# 9 s for each `ketapain` process a test starts. The session instead keeps the compiled
# modules in a temporary folder (PYTHONPYCACHEPREFIX, outside the source tree) that the
# workers and every process they start share; it is removed at the end.
_PYCACHE_PREFIX: Path | None = None


@contextmanager
def statements_sent(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements ``engine`` sends while the block runs, in order."""
    sent: list[str] = []

    def _record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", _record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", _record)


def pytest_configure(config: pytest.Config) -> None:
    global _PYCACHE_PREFIX
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get("PYTHONPYCACHEPREFIX"):
        return  # compiled modules are written as usual, or where the caller said
    _PYCACHE_PREFIX = Path(tempfile.mkdtemp(prefix="ketapain-pycache-"))
    os.environ["PYTHONPYCACHEPREFIX"] = str(_PYCACHE_PREFIX)
    del os.environ["PYTHONDONTWRITEBYTECODE"]
    # This process too, for the modules it has yet to import (the tests, without xdist).
    sys.pycache_prefix = str(_PYCACHE_PREFIX)
    sys.dont_write_bytecode = False


def pytest_unconfigure(config: pytest.Config) -> None:
    global _PYCACHE_PREFIX
    if _PYCACHE_PREFIX is None:
        return
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    del os.environ["PYTHONPYCACHEPREFIX"]
    sys.dont_write_bytecode = True
    sys.pycache_prefix = None
    shutil.rmtree(_PYCACHE_PREFIX, ignore_errors=True)
    _PYCACHE_PREFIX = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the modules that hold a slow test (marked ``slow``: servers started as
    processes, Chromium, the crash harness) first, each module's tests together and in
    their order: pytest-xdist then ends the run with short tests on every worker, instead
    of one worker finishing a long test while the other waits."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


PG_URL = os.environ.get("KETAPAIN_TEST_POSTGRESQL_URL")
REQUIRE_PG = os.environ.get("KETAPAIN_REQUIRE_POSTGRESQL") == "1"
STAFF = (
    ("doc", "Dr Test Physician", "physician"),
    ("nurse", "Test Nurse RN", "nurse"),
    ("desk", "Test Front Desk", "front_desk"),
    ("admin", "Test Admin", "admin"),
)
PASSWORD = "test-password-1"


def _fill_template(db: Database) -> None:
    migrate.upgrade(db)
    for username, name, role in STAFF:
        create_user(db, SYSTEM, username=username, full_name=name, role=role, password=PASSWORD)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database.connect(f"sqlite:///{path}")
    _fill_template(db)
    with db.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()
    return path


def _admin_engine():  # type: ignore[no-untyped-def]
    assert PG_URL is not None
    return create_engine(PG_URL, isolation_level="AUTOCOMMIT")


def _pg_url(name: str) -> str:
    assert PG_URL is not None
    return make_url(PG_URL).set(database=name).render_as_string(False)


# The state of a database that is not its rows: every user object of the catalog (by OID,
# so that an object dropped and made again counts as changed), with the attributes a test
# could alter (a trigger disabled, a column default, a grant, a setting of the database).
# Temporary objects and the planner's statistics are left out: they do not outlive the
# test's connections or change what a query answers.
_PG_CATALOG_STATE: Final = r"""
SELECT md5(coalesce(string_agg(x, E'\n' ORDER BY x), '')) FROM (
  SELECT format('ns %s %s %s %s', oid, nspname, nspowner, nspacl) AS x FROM pg_namespace
   WHERE oid >= 16384 AND nspname NOT LIKE 'pg\_temp\_%'
     AND nspname NOT LIKE 'pg\_toast\_temp\_%'
  UNION ALL
  SELECT format('rel %s %s %s %s %s %s %s %s %s %s %s', oid, relname, relnamespace, relkind,
                relpersistence, relowner, relacl, reloptions, relrowsecurity,
                relforcerowsecurity, relreplident)
    FROM pg_class WHERE oid >= 16384 AND relpersistence <> 't'
  UNION ALL
  SELECT format('att %s %s %s %s %s %s %s %s %s %s %s', a.attrelid, a.attnum, a.attname,
                a.atttypid, a.atttypmod, a.attnotnull, a.atthasdef, a.attisdropped,
                a.attidentity, a.attgenerated, a.attacl)
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
   WHERE a.attrelid >= 16384 AND c.relpersistence <> 't'
  UNION ALL
  SELECT format('def %s %s %s %s', oid, adrelid, adnum, pg_get_expr(adbin, adrelid))
    FROM pg_attrdef WHERE oid >= 16384
  UNION ALL
  SELECT format('con %s %s %s %s', oid, conname, convalidated, pg_get_constraintdef(oid))
    FROM pg_constraint WHERE oid >= 16384
  UNION ALL
  SELECT format('idx %s %s %s %s', indexrelid, indrelid, indisvalid, indisready)
    FROM pg_index WHERE indexrelid >= 16384
  UNION ALL
  SELECT format('trg %s %s %s %s %s', oid, tgrelid, tgname, tgenabled, tgfoid)
    FROM pg_trigger WHERE oid >= 16384
  UNION ALL
  SELECT format('proc %s %s %s %s %s %s', oid, proname, pronamespace, md5(prosrc), proacl,
                proconfig)
    FROM pg_proc WHERE oid >= 16384
  UNION ALL
  SELECT format('type %s %s %s', t.oid, t.typname, t.typnamespace)
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
   WHERE t.oid >= 16384 AND n.nspname NOT LIKE 'pg\_temp\_%'
  UNION ALL
  SELECT format('enum %s %s %s %s', oid, enumtypid, enumlabel, enumsortorder)
    FROM pg_enum WHERE oid >= 16384
  UNION ALL
  SELECT format('rule %s %s %s %s', oid, ev_class, rulename, ev_enabled)
    FROM pg_rewrite WHERE oid >= 16384
  UNION ALL
  SELECT format('policy %s %s %s', oid, polrelid, polname) FROM pg_policy
  UNION ALL
  SELECT format('ext %s %s %s', oid, extname, extversion) FROM pg_extension
  UNION ALL
  SELECT format('evt %s %s %s', oid, evtname, evtenabled) FROM pg_event_trigger
  UNION ALL
  SELECT format('seq %s %s %s %s %s %s %s', seqrelid, seqtypid, seqincrement, seqmin, seqmax,
                seqstart, seqcycle)
    FROM pg_sequence WHERE seqrelid >= 16384
  UNION ALL
  SELECT format('comment %s %s %s %s', objoid, classoid, objsubid, description)
    FROM pg_description WHERE objoid >= 16384
  UNION ALL
  SELECT format('setting %s %s', s.setrole, s.setconfig)
    FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
   WHERE d.datname = current_database()
  UNION ALL
  SELECT format('db %s %s %s %s', datallowconn, datconnlimit, datacl, datistemplate)
    FROM pg_database WHERE datname = current_database()
  UNION ALL
  SELECT format('large object %s', oid) FROM pg_largeobject_metadata
  UNION ALL
  SELECT format('prepared %s', gid) FROM pg_prepared_xacts
   WHERE database = current_database()
) AS parts
"""
# The tables and sequences of the user schemas.
_PG_TABLES: Final = r"""
SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid >= 16384 AND c.relkind IN ('r', 'p') AND c.relpersistence = 'p'
   AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
 ORDER BY 1
"""
_PG_SEQUENCES: Final = _PG_TABLES.replace("('r', 'p')", "('S')")
_OTHER_SESSIONS: Final = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
    "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
)


@dataclass
class _PgSnapshot:
    """A database in the template's state: its catalog's state, the rows of every table
    that has any (``COPY`` text) and the state of every sequence."""

    catalog: str
    tables: list[str]
    rows: dict[str, bytes]
    sequences: dict[str, tuple[int, bool]]


class PgDatabases:
    """Per pytest-xdist worker, the databases copied from the migrated template.

    A test gets a database in exactly the template's state. Copying the template
    (``CREATE DATABASE ... TEMPLATE``) costs 0.4 s of the server's CPU, so a database a
    test is done with is put back in that state instead, when only its rows changed: the
    other sessions on it are ended, every table emptied (triggers off, as for a restore)
    and refilled with the template's rows, every sequence set back. Whether only the rows
    changed is told by the catalog: a database whose schema, triggers, functions, grants,
    settings or prepared transactions differ in any way from the template's is dropped,
    and the next test gets a new copy. So is one whose reset failed.
    """

    def __init__(self, template: str) -> None:
        self.template = template
        self._admin = _admin_engine()
        self._clean: list[str] = []
        self._snapshot: _PgSnapshot | None = None
        self._reset_works = True

    def _copy(self) -> str:
        name = f"ketapain_test_{uuid.uuid4().hex[:12]}"
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        return name

    def _drop(self, name: str) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def acquire(self) -> str:
        """The name of a database in the template's state, for one test."""
        if self._clean:
            return self._clean.pop()
        name = self._copy()
        if self._snapshot is None and self._reset_works:
            with psycopg.connect(_libpq(name), autocommit=True) as conn:
                self._snapshot = _pg_snapshot(conn)
        return name

    def release(self, name: str) -> None:
        """Take back a database a test is done with: reset it for the next, or drop it."""
        if self._snapshot is not None and self._reset_works:
            try:
                if _pg_reset(name, self._snapshot):
                    self._clean.append(name)
                    return
            except psycopg.errors.InsufficientPrivilege:
                self._reset_works = False  # not a superuser: a new copy for every test
        self._drop(name)

    def close(self) -> None:
        """Drop the databases copied from the template (not the template)."""
        for name in self._clean:
            self._drop(name)
        self._clean.clear()

    def drop_template(self) -> None:
        """Drop the template itself; the pool is done with."""
        self._drop(self.template)
        self._admin.dispose()


def _libpq(name: str) -> str:
    """The libpq connection string of the database ``name`` on the test server."""
    assert PG_URL is not None
    url = make_url(PG_URL).set(drivername="postgresql", database=name)
    return url.render_as_string(hide_password=False)


def _pg_snapshot(conn: psycopg.Connection[Any]) -> _PgSnapshot:
    catalog = conn.execute(_PG_CATALOG_STATE).fetchone()
    tables = [r[0] for r in conn.execute(_PG_TABLES)]
    rows = {}
    for table in tables:
        with conn.cursor().copy(f"COPY {table} TO STDOUT") as copy:
            data = b"".join(bytes(chunk) for chunk in copy)
        if data:
            rows[table] = data
    sequences = {}
    for (sequence,) in conn.execute(_PG_SEQUENCES).fetchall():
        last, called = conn.execute(f"SELECT last_value, is_called FROM {sequence}").fetchone()
        sequences[sequence] = (int(last), bool(called))
    assert catalog is not None
    return _PgSnapshot(str(catalog[0]), tables, rows, sequences)


def _pg_reset(name: str, snapshot: _PgSnapshot) -> bool:
    """Put the database ``name`` back in the template's state; False where only a new
    copy will do (its catalog changed)."""
    with psycopg.connect(_libpq(name), autocommit=True) as conn:
        deadline = time.monotonic() + 10.0
        while others := conn.execute(_OTHER_SESSIONS).fetchall():
            for (pid,) in others:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        (catalog,) = conn.execute(_PG_CATALOG_STATE).fetchone() or ("",)
        if catalog != snapshot.catalog:
            return False
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute("".join(f"DELETE FROM {table};" for table in snapshot.tables))
            for table, data in snapshot.rows.items():
                with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                    copy.write(data)
            if snapshot.sequences:
                conn.execute(
                    "SELECT "
                    + ", ".join(
                        f"setval('{seq}', {last}, {str(called).lower()})"
                        for seq, (last, called) in snapshot.sequences.items()
                    )
                )
    return True


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[str]:
    if PG_URL is None:
        if REQUIRE_PG:
            pytest.fail("KETAPAIN_REQUIRE_POSTGRESQL=1 but KETAPAIN_TEST_POSTGRESQL_URL is unset")
        pytest.skip("no PostgreSQL server: set KETAPAIN_TEST_POSTGRESQL_URL")
    name = f"ketapain_template_{os.getpid()}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database.connect(_pg_url(name))
    _fill_template(db)
    db.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_databases(_pg_template: str) -> Iterator[PgDatabases]:
    """The databases of this worker in the template's state (see :class:`PgDatabases`)."""
    pool = PgDatabases(_pg_template)
    yield pool
    pool.close()
    pool._admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh migrated database with the staff users, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        template = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "clinic.db"
        shutil.copyfile(template, path)
        database = Database.connect(f"sqlite:///{path}")
        yield database
        database.dispose()
        return
    pool: PgDatabases = request.getfixturevalue("pg_databases")
    name = pool.acquire()
    database = Database.connect(_pg_url(name))
    yield database
    database.dispose()
    pool.release(name)


@dataclass(frozen=True)
class DemoClinic:
    """A test's own copy of the demo clinic, and what ``fill_demo`` counted when it filled
    the template."""

    db: Database
    counts: dict[str, int]


class DemoClinics:
    """Per worker, the template filled with the demo clinic (``fill_demo``) as of a day,
    made on first use; a test that starts from the demo clinic gets a copy of it instead
    of filling its database itself, which takes seconds. The copy has the template's
    staff users too, with the same ids."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp_path_factory = tmp_path_factory
        self._sqlite: dict[date, tuple[Path, dict[str, int]]] = {}
        self._pg: dict[date, tuple[PgDatabases, dict[str, int]]] = {}

    @contextmanager
    def copy(self, request: pytest.FixtureRequest, dialect: str, day: date) -> Iterator[DemoClinic]:
        """A copy of the demo clinic of ``day`` on ``dialect`` (``sqlite``, ``postgresql``),
        for the test of ``request``; dropped when the context ends."""
        if dialect == "sqlite":
            if day not in self._sqlite:
                self._sqlite[day] = self._make_sqlite(request, day)
            template, counts = self._sqlite[day]
            path = request.getfixturevalue("tmp_path") / "demo.db"
            shutil.copyfile(template, path)
            database = Database.connect(f"sqlite:///{path}")
            try:
                yield DemoClinic(database, dict(counts))
            finally:
                database.dispose()
            return
        if day not in self._pg:
            self._pg[day] = self._make_pg(request, day)
        pool, counts = self._pg[day]
        name = pool.acquire()
        database = Database.connect(_pg_url(name))
        try:
            yield DemoClinic(database, dict(counts))
        finally:
            database.dispose()
            pool.release(name)

    def _make_sqlite(
        self, request: pytest.FixtureRequest, day: date
    ) -> tuple[Path, dict[str, int]]:
        template: Path = request.getfixturevalue("_sqlite_template")
        path = self._tmp_path_factory.mktemp("demo") / f"demo-{day.isoformat()}.db"
        shutil.copyfile(template, path)
        db = Database.connect(f"sqlite:///{path}")
        counts = fill_demo(db, today=day)
        with db.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        db.dispose()
        return path, counts

    def _make_pg(
        self, request: pytest.FixtureRequest, day: date
    ) -> tuple[PgDatabases, dict[str, int]]:
        base: PgDatabases = request.getfixturevalue("pg_databases")
        name = f"{base.template}_demo_{day:%Y%m%d}"
        with base._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{base.template}"'))
        db = Database.connect(_pg_url(name))
        counts = fill_demo(db, today=day)
        db.dispose()
        return PgDatabases(name), counts

    def close(self) -> None:
        for pool, _ in self._pg.values():
            pool.close()
            pool.drop_template()
        self._pg.clear()


@pytest.fixture(scope="session")
def demo_clinics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoClinics]:
    """The demo clinic's templates of this worker (see :class:`DemoClinics`)."""
    clinics = DemoClinics(tmp_path_factory)
    yield clinics
    clinics.close()


@pytest.fixture
def staff(db: Database) -> dict[str, Actor]:
    """The actors of the template's users by role: physician, nurse, front_desk, admin."""
    with db.session() as session:
        users = session.scalars(select(User)).all()
        return {str(u.role): u.actor() for u in users}


@pytest.fixture
def staff_users(db: Database) -> dict[str, User]:
    """The template's users (ORM rows, detached) by role."""
    with db.session() as session:
        return {str(u.role): u for u in session.scalars(select(User)).all()}


@pytest.fixture
def patient(db: Database, staff: dict[str, Actor]) -> Patient:
    """A 45-year-old woman with CRPS type I, 68 kg and 165 cm, nothing else charted."""
    p = register_patient(
        db,
        staff["front_desk"],
        mrn="T-0001",
        family_name="Doe",
        given_name="Jane",
        birth_date=date(1980, 5, 1),
        sex="female",
    )
    add_row(
        db,
        staff["nurse"],
        Action.CHART,
        BodyMeasurement(patient_id=p.id, weight_kg=68.0, height_cm=165.0),
    )
    add_row(db, staff["physician"], Action.CHART, Diagnosis(patient_id=p.id, code="G90.511"))
    return p


def _make_ready(
    db: Database,
    nurse: Actor,
    infusion_id: uuid.UUID,
    patient_id: uuid.UUID,
    at: datetime | None = None,
) -> None:
    """Complete the pre-infusion checklist of an infusion, so that the pump may start.

    Baseline vitals (120/75 mmHg, 72/min) and NRS 7 are charted ``at`` (default 12 h
    ago): before the start times the tests use, and not raising an alarm of their own.
    """
    earlier = at or utc_now() - timedelta(hours=12)
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
    baseline = {"sbp_mmhg": 120.0, "dbp_mmhg": 75.0, "hr_per_min": 72.0, "spo2_pct": 98.0}
    vitals = {"patient_id": patient_id, "infusion_id": infusion_id, "measured_utc": earlier}
    record_vitals(db, nurse, (), **vitals, **baseline)
    record_score(db, nurse, (), instrument="pain_nrs", value=7.0, **vitals)


@pytest.fixture
def make_ready(db: Database, staff: dict[str, Actor]) -> Callable[..., None]:
    """``make_ready(infusion_id, patient_id, at=None)``: the nurse completes the checklist,
    charting the baseline vitals and NRS ``at`` (default 12 h ago)."""

    def ready(infusion_id: uuid.UUID, patient_id: uuid.UUID, at: datetime | None = None) -> None:
        _make_ready(db, staff["nurse"], infusion_id, patient_id, at)

    return ready
