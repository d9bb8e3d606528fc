"""The record-keeping guarantees: every write audited, nothing partial, nothing edited.

Runs on SQLite and PostgreSQL (the ``db`` fixture) except where SQLite itself is the
subject (pragmas, concurrent writers on one file).
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

import ketapain.clinic  # noqa: F401 - registers every table on Base.metadata
from ketapain.clinic import migrate
from ketapain.clinic._service import add_row, correct_row
from ketapain.clinic.accounts import TokenKind, User, create_user, issue_token
from ketapain.clinic.audit import (
    SYSTEM,
    Actor,
    AuditEntry,
    list_entries,
    record_event,
    snapshot,
    unit_of_work,
)
from ketapain.clinic.db import Base, Database, column_rows
from ketapain.clinic.patients import BodyMeasurement, Demographics, Diagnosis, Patient
from ketapain.clinic.permissions import Action
from ketapain.clinic.records import current
from ketapain.clinic.registry import register_patient
from ketapain.config import Settings
from ketapain.errors import (
    AccessDeniedError,
    AppendOnlyError,
    ConflictError,
    InvalidValueError,
    RecordError,
    RecordNotFoundError,
)

KIND = "body measurement"
# The known bugs do not depend on the engine: their tests run on SQLite only.
ON_SQLITE = pytest.mark.parametrize("db", ["sqlite"], indirect=True)


class _HalfWayError(Exception):
    """An error raised on purpose half-way through a unit of work."""


def _counts(db: Database) -> dict[str, int]:
    """Rows per table; audit entries counted without the refusals (kind 'denied')."""
    out = {}
    with db.session() as session:
        for table in Base.metadata.sorted_tables:
            query = select(func.count()).select_from(table)
            if table.name == "audit_entries":
                query = query.where(table.c.action != "denied")
            out[table.name] = int(session.scalar(query) or 0)
    return out


def _entries(db: Database, **filters: Any) -> list[AuditEntry]:
    with db.session() as session:
        return list(list_entries(session, limit=100_000, **filters))


def _measurement(db: Database, patient: Patient) -> BodyMeasurement:
    with db.session() as session:
        return session.scalars(
            select(BodyMeasurement).where(BodyMeasurement.patient_id == patient.id)
        ).one()


def _current_measurements(db: Database, patient: Patient) -> list[BodyMeasurement]:
    with db.session() as session:
        query = current(BodyMeasurement).where(BodyMeasurement.patient_id == patient.id)
        return list(session.scalars(query))


def _mixed_writes(db: Database, staff: dict[str, Actor], patient: Patient) -> None:
    """Registrations, charting, corrections, a retraction and a token, by several users."""
    nurse, doc, desk = staff["nurse"], staff["physician"], staff["front_desk"]
    other = register_patient(
        db, desk, mrn="T-0002", family_name="Roe", given_name="Rick",
        birth_date=date(1970, 2, 3), sex="male",
    )  # fmt: skip
    m = add_row(db, nurse, Action.CHART, BodyMeasurement(patient_id=other.id, weight_kg=81.0))
    correct_row(
        db, nurse, Action.CHART, BodyMeasurement, m.id, kind=KIND, reason="scale misread",
        changes={"weight_kg": 80.1},
    )  # fmt: skip
    d = add_row(db, doc, Action.CHART, Diagnosis(patient_id=other.id, code="G90.511"))
    correct_row(
        db, doc, Action.CHART, Diagnosis, d.id, kind="diagnosis", reason="wrong patient",
        entered_in_error=True, changes={},
    )  # fmt: skip
    with db.session() as session:
        demo = session.scalars(select(Demographics).where(Demographics.patient_id == patient.id))
        demo_id = demo.one().id
    correct_row(
        db, desk, Action.REGISTER_PATIENT, Demographics, demo_id, kind="demographics",
        reason="typo", changes={"given_name": "Janet"},
    )  # fmt: skip
    with db.session() as session:
        user = session.get(User, nurse.user_id)
        assert user is not None
    issue_token(db, Settings(), user, kind=TokenKind.API)


# --- every write audited --------------------------------------------------------------


def test_every_row_has_its_audit_entry(
    db: Database, staff: dict[str, Actor], patient: Patient
) -> None:
    """Each row of each table has exactly one create/correct entry naming it, with its values
    (the audit trail and its chain's head are the audit itself)."""
    _mixed_writes(db, staff, patient)
    counts = _counts(db)
    with db.session() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in ("audit_entries", "audit_chain_head"):
                continue
            rows = [str(i) for i in session.scalars(select(table.c.id))]
            entries = [
                e
                for e in list_entries(session, entity=table.name, limit=100_000)
                if e.action in ("create", "correct")
            ]
            assert len(entries) == counts[table.name], table.name
            ids = Counter(e.after["id"] for e in entries if e.after is not None)
            assert ids == Counter(rows), table.name
            for e in entries:
                assert e.after is not None
                assert e.entity_id == e.after["id"], (table.name, e.action)
                corrects = e.after.get("corrects_id")
                assert e.action == ("correct" if corrects else "create"), table.name
    assert counts["patients"] == 2
    assert counts["body_measurements"] == 3
    assert counts["diagnoses"] == 3
    assert counts["demographics"] == 3
    assert counts["users"] == 4
    assert counts["auth_tokens"] == 1


def test_audit_entries_carry_actor_and_snapshot(
    db: Database, staff: dict[str, Actor], patient: Patient
) -> None:
    """An entry names the user, role and time and holds the row as written; hashes hidden."""
    nurse = staff["nurse"]
    before = datetime.now(UTC)
    m = add_row(db, nurse, Action.CHART, BodyMeasurement(patient_id=patient.id, weight_kg=71.5))
    (entry,) = [e for e in _entries(db, entity="body_measurements") if e.after["id"] == str(m.id)]
    assert entry.action == "create"
    assert entry.actor_id == nurse.user_id
    assert entry.actor_username == "nurse"
    assert entry.actor_role == "nurse"
    assert entry.before is None
    assert entry.after is not None
    assert entry.after["weight_kg"] == 71.5
    assert entry.after["patient_id"] == str(patient.id)
    assert entry.after["recorded_by_id"] == str(nurse.user_id)
    assert entry.after["entered_in_error"] is False
    assert entry.time_utc.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=5) <= entry.time_utc <= datetime.now(UTC)
    users = _entries(db, entity="users", action="create")
    assert len(users) == 4
    for e in users:
        assert e.actor_username == "system"
        assert e.actor_role == "system"
        assert e.actor_id is None
        assert e.after is not None
        assert e.after["password_hash"] == "[redacted]"
        assert "argon2" not in str(e.as_dict())


# --- nothing partial ------------------------------------------------------------------


def _write_then_fail(db: Database, nurse: Actor) -> None:
    assert nurse.user_id is not None
    with unit_of_work(db, nurse) as session:
        p = Patient(mrn="T-HALF", recorded_by_id=nurse.user_id)
        session.add(p)
        session.flush()
        session.add(
            BodyMeasurement(patient_id=p.id, weight_kg=70.0, recorded_by_id=p.recorded_by_id)
        )
        session.flush()
        assert session.scalar(select(func.count()).select_from(Patient)) == 2
        raise _HalfWayError


def test_failed_request_leaves_no_partial_write(
    db: Database, staff: dict[str, Actor], patient: Patient
) -> None:
    """A conflict, an error half-way or a failed check() writes nothing at all."""
    counts = _counts(db)
    with pytest.raises(ConflictError, match="a patient with MRN 'T-0001' exists already"):
        register_patient(
            db, staff["nurse"], mrn=" T-0001 ", family_name="Dup", given_name="Licate",
            birth_date=date(1990, 1, 1), sex="male",
        )  # fmt: skip
    assert _counts(db) == counts
    with pytest.raises(_HalfWayError):
        _write_then_fail(db, staff["nurse"])
    assert _counts(db) == counts
    with pytest.raises(InvalidValueError, match=r"^weight_kg must be a number from 1 to 400") as e:
        add_row(
            db, staff["nurse"], Action.CHART, BodyMeasurement(patient_id=patient.id, weight_kg=4000)
        )
    assert e.value.field == "weight_kg"
    assert e.value.value == 4000
    with pytest.raises(InvalidValueError, match=r"^birth_date must be") as e:
        register_patient(
            db, staff["nurse"], mrn="T-FUTURE", family_name="Not", given_name="Born",
            birth_date=date.today() + timedelta(days=30), sex="female",
        )  # fmt: skip
    assert e.value.field == "birth_date"
    assert _counts(db) == counts
    assert _entries(db, action="denied") == []


def test_flush_without_actor_is_refused(db: Database, staff: dict[str, Actor]) -> None:
    """A session with changes but no actor (not a unit of work) cannot flush."""
    counts = _counts(db)
    doc = staff["physician"].user_id
    assert doc is not None
    for factory in (db.write, db.read):
        with pytest.raises(RecordError, match="a write needs an actor"):
            _flush_without_actor(factory(), Patient(mrn="T-ROGUE", recorded_by_id=doc))
    with pytest.raises(RecordError, match="a write needs an actor"):
        _rename_without_actor(db, doc)
    assert _counts(db) == counts
    with db.session() as session:
        user = session.get(User, doc)
        assert user is not None
        assert user.full_name == "Dr Test Physician"


def _flush_without_actor(session: Session, row: Base) -> None:
    with session, session.begin():
        session.add(row)


def _rename_without_actor(db: Database, user_id: uuid.UUID) -> None:
    with db.write() as session:
        user = session.get(User, user_id)
        assert user is not None
        user.full_name = "Renamed without an actor"
        session.commit()


# --- append-only ----------------------------------------------------------------------


def _edit(db: Database, actor: Actor, model: type[Base], key: Any, change: Any) -> None:
    with unit_of_work(db, actor) as session:
        row = session.get(model, key)
        assert row is not None
        change(session, row)


def test_orm_refuses_edits_and_deletes(
    db: Database, staff: dict[str, Actor], patient: Patient
) -> None:
    """Editing or deleting a clinical row or an audit entry in a unit of work is refused."""
    m = _measurement(db, patient)
    first_entry = _entries(db)[0]
    edits = [
        (Patient, patient.id, lambda s, r: setattr(r, "mrn", "X-1"), "patients rows are"),
        (BodyMeasurement, m.id, lambda s, r: setattr(r, "weight_kg", 6.0), "body_measurements"),
        (BodyMeasurement, m.id, lambda s, r: setattr(r, "entered_in_error", True), "append-only"),
        (AuditEntry, first_entry.id, lambda s, r: setattr(r, "detail", "x"), "audit_entries"),
        (Patient, patient.id, lambda s, r: s.delete(r), "never deleted"),
        (BodyMeasurement, m.id, lambda s, r: s.delete(r), "never deleted"),
        (AuditEntry, first_entry.id, lambda s, r: s.delete(r), "never deleted"),
    ]
    counts = _counts(db)
    for model, key, change, words in edits:
        with pytest.raises(AppendOnlyError, match=words):
            _edit(db, staff["physician"], model, key, change)
    assert _counts(db) == counts
    assert _measurement(db, patient).weight_kg == 68.0
    assert not _measurement(db, patient).entered_in_error
    assert _entries(db)[0].detail == first_entry.detail
    with db.session() as session:
        p = session.get(Patient, patient.id)
        assert p is not None
        assert p.mrn == "T-0001"


def test_database_refuses_raw_update_and_delete(db: Database, patient: Patient) -> None:
    """The database's triggers refuse UPDATE and DELETE typed as SQL, on both engines."""
    counts = _counts(db)
    statements = [
        "UPDATE patients SET mrn = 'x'",
        "DELETE FROM patients",
        "UPDATE body_measurements SET weight_kg = 6",
        "DELETE FROM body_measurements",
        "UPDATE audit_entries SET detail = 'x'",
        "DELETE FROM audit_entries",
    ]
    for sql in statements:
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.exec_driver_sql(sql)
    assert _counts(db) == counts
    with db.session() as session:
        assert session.scalars(select(Patient.mrn)).all() == ["T-0001"]
        assert session.scalars(select(BodyMeasurement.weight_kg)).all() == [68.0]
        assert session.scalar(select(func.count()).where(AuditEntry.detail == "x")) == 0


# --- corrections ----------------------------------------------------------------------


def test_correction_appends_a_new_row(
    db: Database, staff: dict[str, Actor], patient: Patient
) -> None:
    """A correction is a new row pointing at the old; current() shows only the newest."""
    nurse = staff["nurse"]
    old = _measurement(db, patient)
    new = correct_row(
        db, nurse, Action.CHART, BodyMeasurement, old.id, kind=KIND, reason="  scale misread ",
        changes={"weight_kg": 70.5},
    )  # fmt: skip
    assert new.id != old.id
    assert new.corrects_id == old.id
    assert new.correction_reason == "scale misread"
    assert new.weight_kg == 70.5
    assert new.height_cm == 165.0
    assert new.measured_utc == old.measured_utc
    assert new.recorded_by_id == nurse.user_id
    assert not new.entered_in_error
    assert [r.id for r in _current_measurements(db, patient)] == [new.id]
    with db.session() as session:
        stored = session.get(BodyMeasurement, old.id)
        assert stored is not None
        assert stored.weight_kg == 68.0
        old_snapshot = snapshot(stored)
    (entry,) = _entries(db, action="correct")
    assert entry.entity == "body_measurements"
    assert entry.actor_username == "nurse"
    assert entry.before == old_snapshot
    assert entry.after is not None
    assert entry.after["id"] == str(new.id)
    assert entry.after["corrects_id"] == str(old.id)
    assert entry.after["weight_kg"] == 70.5
    assert entry.after["correction_reason"] == "scale misread"

    counts = _counts(db)
    with pytest.raises(ConflictError, match=f"already corrected by {new.id}"):
        correct_row(
            db, nurse, Action.CHART, BodyMeasurement, old.id, kind=KIND, reason="again",
            changes={"weight_kg": 71.0},
        )  # fmt: skip
    assert _counts(db) == counts

    retraction = correct_row(
        db, nurse, Action.CHART, BodyMeasurement, new.id, kind=KIND, reason="wrong patient",
        entered_in_error=True, changes={},
    )  # fmt: skip
    assert retraction.entered_in_error
    assert retraction.corrects_id == new.id
    assert _current_measurements(db, patient) == []
    with pytest.raises(ConflictError, match="is a retraction"):
        correct_row(
            db, nurse, Action.CHART, BodyMeasurement, retraction.id, kind=KIND, reason="undo",
            changes={},
        )  # fmt: skip
    with db.session() as session:
        total = session.scalar(select(func.count()).select_from(BodyMeasurement))
    assert total == 3
    assert [e.action for e in _entries(db, entity="body_measurements")] == [
        "create",
        "correct",
        "correct",
    ]


def test_correction_is_validated(db: Database, staff: dict[str, Actor], patient: Patient) -> None:
    """A correction needs a reason, known fields and valid values; otherwise nothing is written."""
    nurse = staff["nurse"]
    old = _measurement(db, patient)

    def fix(reason: str = "fix", **changes: Any) -> BodyMeasurement:
        return correct_row(
            db, nurse, Action.CHART, BodyMeasurement, old.id, kind=KIND, reason=reason,
            changes=changes,
        )  # fmt: skip

    counts = _counts(db)
    for reason in ("", "   "):
        with pytest.raises(InvalidValueError, match=r"^correction_reason must be a non-empty"):
            fix(reason, weight_kg=70.0)
    for key in ("colour", "id", "recorded_by_id", "corrects_id", "recorded_utc"):
        with pytest.raises(InvalidValueError, match=f"^{key} must be one of patient_id") as e:
            fix(**{key: 1})
        assert e.value.field == key
    with pytest.raises(InvalidValueError, match=r"^weight_kg must be a number from 1 to 400"):
        fix(weight_kg=4000.0)
    with pytest.raises(RecordNotFoundError, match=r"^no body measurement with id"):
        correct_row(
            db, nurse, Action.CHART, BodyMeasurement, uuid.uuid4(), kind=KIND, reason="fix",
            changes={},
        )  # fmt: skip
    with db.session() as session:
        demo = session.scalars(select(Demographics).where(Demographics.patient_id == patient.id))
        demo_id = demo.one().id

    def fix_demographics(**changes: Any) -> Demographics:
        return correct_row(
            db, staff["front_desk"], Action.REGISTER_PATIENT, Demographics, demo_id,
            kind="demographics", reason="typo", changes=changes,
        )  # fmt: skip

    with pytest.raises(InvalidValueError, match=r"^birth_date must be an ISO date"):
        fix_demographics(birth_date="05/02/1980")
    with pytest.raises(InvalidValueError, match=r"^sex must be"):
        fix_demographics(sex="unknown")
    assert _counts(db) == counts
    # A date given as ISO text (as JSON carries it) is parsed.
    new = fix_demographics(birth_date="1980-05-02")
    with db.session() as session:
        stored = session.get(Demographics, new.id)
        assert stored is not None
        assert stored.birth_date == date(1980, 5, 2)
        assert stored.given_name == "Jane"


@ON_SQLITE
def test_correction_parses_iso_times(
    db: Database, staff: dict[str, Actor], patient: Patient
) -> None:
    """A time given as ISO text in a correction is parsed; bad or naive text is refused."""
    old = _measurement(db, patient)

    def fix(when: str) -> BodyMeasurement:
        return correct_row(
            db, staff["nurse"], Action.CHART, BodyMeasurement, old.id, kind=KIND,
            reason="time", changes={"measured_utc": when},
        )  # fmt: skip

    counts = _counts(db)
    with pytest.raises(InvalidValueError, match=r"^measured_utc must be an ISO datetime"):
        fix("yesterday")
    with pytest.raises(InvalidValueError, match="timezone-aware"):
        fix("2026-03-01T08:00:00")
    assert _counts(db) == counts
    new = fix("2026-03-01T08:00:00+01:00")
    with db.session() as session:
        stored = session.get(BodyMeasurement, new.id)
        assert stored is not None
        assert stored.measured_utc == datetime(2026, 3, 1, 7, 0, tzinfo=UTC)


@ON_SQLITE
def test_correction_refuses_reserved_change_keys(
    db: Database, staff: dict[str, Actor], patient: Patient
) -> None:
    """A change naming a parameter of correct() (as a JSON body may) is an invalid field."""
    old = _measurement(db, patient)
    for key in ("entered_in_error", "reason", "kind", "actor_id", "session"):
        with pytest.raises(InvalidValueError, match=f"^{key} must be one of patient_id"):
            correct_row(
                db, staff["nurse"], Action.CHART, BodyMeasurement, old.id, kind=KIND,
                reason="fix", changes={key: True},
            )  # fmt: skip


# --- refusals -------------------------------------------------------------------------


def test_denied_action_audited_once(
    db: Database, staff: dict[str, Actor], patient: Patient
) -> None:
    """A refused action leaves exactly one 'denied' entry and writes nothing else."""
    desk = staff["front_desk"]
    counts = _counts(db)
    row = BodyMeasurement(patient_id=patient.id, weight_kg=70.0)
    with pytest.raises(AccessDeniedError, match=r"^a front desk may not chart$") as e:
        add_row(db, desk, Action.CHART, row)
    assert e.value.audited
    denied = _entries(db, action="denied")
    assert len(denied) == 1
    assert denied[0].actor_id == desk.user_id
    assert denied[0].actor_username == "desk"
    assert denied[0].actor_role == "front_desk"
    assert denied[0].entity == "chart"
    assert denied[0].detail == "a front desk may not chart"
    assert _counts(db) == counts
    # Refused inside an enclosing unit of work: still one entry, not one per level.
    with pytest.raises(AccessDeniedError), unit_of_work(db, desk):
        correct_row(
            db, desk, Action.CHART, BodyMeasurement, _measurement(db, patient).id, kind=KIND,
            reason="fix", changes={"weight_kg": 60.0},
        )  # fmt: skip
    assert len(_entries(db, action="denied")) == 2
    assert _counts(db) == counts


# --- UTC datetimes --------------------------------------------------------------------


def test_times_are_utc(db: Database, staff: dict[str, Actor], patient: Patient) -> None:
    """Aware times are stored as the UTC instant and read back UTC-aware; naive ones refused."""
    india = timezone(timedelta(hours=5, minutes=30))
    when = datetime(2026, 3, 1, 12, 30, tzinfo=india)
    m = add_row(
        db, staff["nurse"], Action.CHART,
        BodyMeasurement(patient_id=patient.id, weight_kg=69.0, measured_utc=when),
    )  # fmt: skip
    with db.session() as session:
        stored = session.get(BodyMeasurement, m.id)
        assert stored is not None
        assert stored.measured_utc == datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
        assert stored.measured_utc.utcoffset() == timedelta(0)
        assert stored.recorded_utc.utcoffset() == timedelta(0)
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert entry is not None
        assert entry.time_utc.utcoffset() == timedelta(0)
        # Comparisons in SQL see the same instant, whatever offset the bound value has.
        hits = session.scalars(
            select(BodyMeasurement.id).where(BodyMeasurement.measured_utc == when)
        ).all()
        assert hits == [m.id]
        later = session.scalars(
            select(BodyMeasurement.id).where(
                BodyMeasurement.measured_utc > datetime(2026, 3, 1, 6, 59, tzinfo=UTC)
            )
        ).all()
        assert m.id in later
    # A time without a timezone is refused and nothing is written.
    counts = _counts(db)
    row = BodyMeasurement(patient_id=patient.id, weight_kg=69.0, measured_utc=datetime(2026, 3, 1))
    with pytest.raises((InvalidValueError, StatementError), match="timezone-aware"):
        add_row(db, staff["nurse"], Action.CHART, row)
    assert _counts(db) == counts


@ON_SQLITE
def test_naive_time_raises_invalid_value_error(
    db: Database, staff: dict[str, Actor], patient: Patient
) -> None:
    """A naive time reaches the caller as InvalidValueError (the API's 422), not wrapped."""
    row = BodyMeasurement(patient_id=patient.id, weight_kg=69.0, measured_utc=datetime(2026, 3, 1))
    with pytest.raises(InvalidValueError, match="measured_utc must be a timezone-aware time"):
        add_row(db, staff["nurse"], Action.CHART, row)


# --- list_entries ---------------------------------------------------------------------


def test_list_entries_filters_and_order(db: Database, staff: dict[str, Actor]) -> None:
    """list_entries filters by entity, id, user and action, pages by id, in id order."""
    everything = _entries(db)
    ids = [e.id for e in everything]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    base = ids[-1]
    nurse, doc = staff["nurse"], staff["physician"]
    record_event(db, nurse, action="viewed", entity="patients", entity_id="p1")
    record_event(db, doc, action="viewed", entity="patients", entity_id="p2")
    record_event(db, nurse, action="printed", entity="patients", entity_id="p1")
    record_event(db, nurse, action="viewed", entity="infusions", entity_id="i1", detail="d")
    record_event(db, SYSTEM, action="viewed", entity="patients")
    new = _entries(db, after_id=base)
    assert len(new) == 5
    e1, e2, e3, e4, e5 = new
    assert [e.id for e in new] == sorted(e.id for e in new)

    def ids_of(**filters: Any) -> list[int]:
        return [e.id for e in _entries(db, after_id=base, **filters)]

    assert ids_of(entity="patients") == [e1.id, e2.id, e3.id, e5.id]
    assert ids_of(entity_id="p1") == [e1.id, e3.id]
    assert ids_of(actor_username="nurse") == [e1.id, e3.id, e4.id]
    assert ids_of(action="viewed") == [e1.id, e2.id, e4.id, e5.id]
    assert ids_of(entity="patients", action="viewed", actor_username="nurse") == [e1.id]
    assert ids_of(entity="nothing") == []
    with db.session() as session:
        assert [e.id for e in list_entries(session, after_id=base, limit=2)] == [e1.id, e2.id]
        assert [e.id for e in list_entries(session, after_id=e2.id, limit=2)] == [e3.id, e4.id]
        assert list_entries(session, after_id=e5.id) == []
        assert len(list_entries(session)) == min(100, len(everything) + 5)
        assert list_entries(session, limit=1)[0].id == ids[0]
    assert e4.detail == "d"
    assert e5.entity_id is None
    assert e5.actor_username == "system"
    assert e1.as_dict()["actor"] == {"id": str(nurse.user_id), "username": "nurse"}


# --- SQLite file databases ------------------------------------------------------------


def _file_db(tmp_path: Path) -> Database:
    db = Database.connect(f"sqlite:///{tmp_path / 'clinic.db'}")
    migrate.upgrade(db)
    return db


def test_sqlite_pragmas(tmp_path: Path) -> None:
    """A file database runs with WAL, foreign keys on, synchronous FULL and a busy timeout."""
    db = _file_db(tmp_path)
    try:
        for factory in (db.read, db.write):
            with factory() as session:
                conn = session.connection()
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        user = create_user(
            db, SYSTEM, username="nurse", full_name="N", role="nurse", password="password-1"
        )
        # Foreign keys are enforced: a row naming no patient is refused by the database.
        with pytest.raises(ConflictError, match="FOREIGN KEY"):
            _add_unchecked(db, user.actor(), BodyMeasurement(patient_id=uuid.uuid4(), weight_kg=70))
        with db.session() as session:
            assert session.scalar(select(func.count()).select_from(BodyMeasurement)) == 0
    finally:
        db.dispose()


def _add_unchecked(db: Database, actor: Actor, row: BodyMeasurement) -> None:
    """Add a row in a unit of work without the services' checks of its links."""
    assert actor.user_id is not None
    with unit_of_work(db, actor) as session:
        row.recorded_by_id = actor.user_id
        session.add(row)


def _writer(db: Database, actor: Actor, patient_id: uuid.UUID, n: int, start: Any) -> None:
    """Read, then write, n times: the pattern that fails without BEGIN IMMEDIATE."""
    assert actor.user_id is not None
    start.wait()
    for _ in range(n):
        with unit_of_work(db, actor) as session:
            seen = session.scalar(select(func.count()).select_from(BodyMeasurement)) or 0
            session.add(
                BodyMeasurement(
                    patient_id=patient_id, weight_kg=50.0 + seen % 50, recorded_by_id=actor.user_id
                )
            )


def test_sqlite_concurrent_writers_queue(tmp_path: Path) -> None:
    """Two threads writing to one SQLite file all succeed: writers queue, none is 'locked'."""
    db = _file_db(tmp_path)
    try:
        user = create_user(
            db, SYSTEM, username="nurse", full_name="N", role="nurse", password="password-1"
        )
        actor = user.actor()
        patient = register_patient(
            db, actor, mrn="C-1", family_name="Con", given_name="Current",
            birth_date=date(1980, 1, 1), sex="female",
        )  # fmt: skip
        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def run() -> None:
            try:
                _writer(db, actor, patient.id, 20, start)
            except BaseException as err:
                errors.append(err)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        with db.session() as session:
            assert session.scalar(select(func.count()).select_from(BodyMeasurement)) == 40
            entries = list_entries(session, entity="body_measurements", limit=1000)
        assert len(entries) == 40
        assert {e.after["id"] for e in entries if e.after} == {
            str(r.id) for r in _all_measurements(db)
        }
    finally:
        db.dispose()


def _all_measurements(db: Database) -> list[BodyMeasurement]:
    with db.session() as session:
        return list(session.scalars(select(BodyMeasurement)))


def test_column_rows_see_what_a_write_has_not_flushed(
    db: Database, staff: dict[str, Actor]
) -> None:
    """Rows of columns, read past the ORM, see what the session would: a write session's
    pending rows are flushed first (autoflush), and a read session reads as its own
    ``execute`` does."""
    mrns = select(Patient.mrn).where(Patient.mrn.like("COLS-%")).order_by(Patient.mrn)
    with unit_of_work(db, staff["front_desk"]) as session:
        session.add(Patient(mrn="COLS-1", recorded_by_id=staff["front_desk"].user_id))
        assert column_rows(session, mrns).scalars().all() == ["COLS-1"]
        assert session.execute(mrns).scalars().all() == ["COLS-1"]
    with db.read() as session:
        assert column_rows(session, mrns).scalars().all() == ["COLS-1"]
        assert column_rows(session, mrns).all() == session.execute(mrns).all()
