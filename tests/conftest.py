"""Settings and fixtures shared by the whole test suite.

Clinical-records fixtures: one migrated database per test, on SQLite and on PostgreSQL,
with the four staff users already in it. PostgreSQL runs when
``KETAPAIN_TEST_POSTGRESQL_URL`` names a server (``.ci/run`` starts one on loopback and
sets it, with ``KETAPAIN_REQUIRE_POSTGRESQL=1`` so that a missing server fails the run
instead of skipping). Each test gets a fresh database copied from a migrated template, so
tests never see each other's rows.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from ketapain.clinic import migrate
from ketapain.clinic._service import add_row
from ketapain.clinic.accounts import User, create_user
from ketapain.clinic.audit import SYSTEM, Actor
from ketapain.clinic.charting import record_score, record_vitals
from ketapain.clinic.checklist import record_checklist
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.patients import BodyMeasurement, Diagnosis, Patient
from ketapain.clinic.permissions import Action
from ketapain.clinic.registry import register_patient

# Simulations take milliseconds but vary with machine load; a deadline would make the
# property tests flaky without catching anything. "thorough" is for occasional long runs:
# HYPOTHESIS_PROFILE=thorough uv run pytest tests
settings.register_profile("ketapain", deadline=None, max_examples=40)
settings.register_profile("thorough", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ketapain"))

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
    db = Database.connect(make_url(PG_URL).set(database=name).render_as_string(False))
    _fill_template(db)
    db.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


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
    template = request.getfixturevalue("_pg_template")
    name = f"ketapain_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    database = Database.connect(make_url(PG_URL).set(database=name).render_as_string(False))
    yield database
    database.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


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
