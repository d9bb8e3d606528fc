"""The outcome snapshot: kept up to date from the audit log, it always equals a full read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sqlalchemy import func, select
from tests.conftest import DemoClinics

from ketapain.clinic._service import add_row, correct_row
from ketapain.clinic.accounts import User
from ketapain.clinic.alarms import DEFAULT_RULES
from ketapain.clinic.audit import SYSTEM, Actor, AuditEntry, record_event
from ketapain.clinic.charting import record_score
from ketapain.clinic.courses import Course
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.observations import Score
from ketapain.clinic.outcome_snapshot import changed_patients
from ketapain.clinic.outcomes import analysis_table
from ketapain.clinic.patients import Medication, Patient
from ketapain.clinic.permissions import Action

DAY = date(2026, 11, 21)


@pytest.fixture
def db(
    db: Database, request: pytest.FixtureRequest, demo_clinics: DemoClinics
) -> Iterator[Database]:
    """The demo clinic of DAY (``fill_demo``) on the engine of the shared ``db``: a copy
    of the demo template, filled once per worker."""
    with demo_clinics.copy(request, db.engine.dialect.name, DAY) as clinic:
        yield clinic.db


def _table(db: Database, snapshot: Path | None = None) -> pl.DataFrame:
    with db.read() as s:
        return analysis_table(s, SYSTEM, as_of=utc_now(), key=b"snapshot-test", snapshot=snapshot)


def _both(db: Database, snapshot: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    with db.read() as s:
        now = utc_now()
        cached = analysis_table(s, SYSTEM, as_of=now, key=b"k", snapshot=snapshot)
        full = analysis_table(s, SYSTEM, as_of=now, key=b"k")
    return cached, full


def _nurse(db: Database) -> Actor:
    with db.read() as s:
        return s.scalars(select(User).where(User.username == "nurse.demo")).one().actor()


def _completed_patient(db: Database) -> Patient:
    with db.read() as s:
        return s.scalars(select(Patient).where(Patient.mrn == "KP-1005")).one()


def _courses(db: Database) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Course)) or 0)


def _top(db: Database) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.max(AuditEntry.id))) or 0)


def test_first_read_writes_the_snapshot_and_equals_a_full_read(db, tmp_path):
    """The first read builds the snapshot files; the table is the full read's."""
    snap = tmp_path / "outcomes.parquet"
    cached, full = _both(db, snap)
    assert snap.exists() and snap.with_name(snap.name + ".json").exists()
    assert_frame_equal(cached, full)
    assert cached.height == _courses(db)


def test_charting_after_the_snapshot_is_read_again(db, tmp_path):
    """Scores, a retraction and a medication written after the snapshot change the table
    exactly as a full read does."""
    snap = tmp_path / "outcomes.parquet"
    before, _ = _both(db, snap)
    nurse = _nurse(db)
    patient = _completed_patient(db)
    score, _ = record_score(db, nurse, DEFAULT_RULES, patient_id=patient.id,
                            instrument="pain_nrs", value=3.0, measured_utc=utc_now())  # fmt: skip
    add_row(db, nurse, Action.CHART,
            Medication(patient_id=patient.id, name="oxycodone", dose_mg_per_day=20.0))  # fmt: skip
    cached, full = _both(db, snap)
    assert_frame_equal(cached, full)
    # The demo's completed course has follow-up scores already; today's is the latest.
    assert (
        cached.get_column("last_follow_up_day").max()
        > before.get_column("last_follow_up_day").max()
    )
    correct_row(db, nurse, Action.CHART, Score, score.id, kind="score",
                reason="wrong patient", entered_in_error=True, changes={})  # fmt: skip
    cached, full = _both(db, snap)
    assert_frame_equal(cached, full)
    assert_frame_equal(cached.select("last_follow_up_day"), before.select("last_follow_up_day"))


def test_changed_patients_names_the_patient_of_each_write(db):
    """An audited score maps to its patient; reads, logins and accounts map to nobody."""
    before = _top(db)
    patient = _completed_patient(db)
    record_score(db, _nurse(db), DEFAULT_RULES, patient_id=patient.id, instrument="pain_nrs",
                 value=4.0, measured_utc=utc_now())  # fmt: skip
    record_event(db, SYSTEM, action="read_outcomes", entity="analysis_table", detail="test")
    with db.read() as s:
        patients, top = changed_patients(s, before)
    assert patients == {patient.id.hex}
    assert top == _top(db)


def test_an_unknown_write_reads_everything_again(db, tmp_path):
    """An audit entry the snapshot cannot map (a bulk load) forces a full read."""
    snap = tmp_path / "outcomes.parquet"
    _both(db, snap)
    before = _top(db)
    record_event(db, SYSTEM, action="synthetic_fill", entity="registry", detail="bulk")
    with db.read() as s:
        patients, _ = changed_patients(s, before)
    assert patients is None
    cached, full = _both(db, snap)
    assert_frame_equal(cached, full)


def test_a_damaged_snapshot_is_read_again(db, tmp_path):
    """A snapshot that cannot be read is rebuilt from the records."""
    snap = tmp_path / "outcomes.parquet"
    _both(db, snap)
    snap.write_bytes(b"not parquet")
    cached, full = _both(db, snap)
    assert_frame_equal(cached, full)
    assert pl.read_parquet(snap).height == _courses(db)


def test_a_new_course_appears_in_the_snapshot(db, tmp_path):
    """A course created after the snapshot is read in (its plan's audit names the patient)."""
    from ketapain.clinic.treatment import create_course

    snap = tmp_path / "outcomes.parquet"
    _both(db, snap)
    with db.read() as s:
        doc = s.scalars(select(User).where(User.username == "dr.demo")).one().actor()
        patient = s.scalars(select(Patient).where(Patient.mrn == "KP-1003")).one()
        n_courses = s.scalar(select(func.count()).select_from(Course))
    create_course(db, doc, patient_id=patient.id, protocol="seed-outpatient",
                  start_date=date(2027, 1, 4), bag_mg=250, bag_ml=250)  # fmt: skip
    cached, full = _both(db, snap)
    assert_frame_equal(cached, full)
    assert cached.height == n_courses + 1
