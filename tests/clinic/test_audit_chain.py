"""The audit trail's hash chain: every entry linked to the one before, any later edit,
deletion or insertion detected, by ``verify_trail`` and by ``ketapain audit verify``.

Runs on SQLite and PostgreSQL (the ``db`` fixture) where the database matters (writes,
triggers, concurrent writers, migrations); the pure checks of the chain's arithmetic run
without a database.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, insert, inspect, select, text, update
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner, Result

import ketapain.clinic  # noqa: F401 - registers every table on Base.metadata
from ketapain.cli import clinic as cli_clinic
from ketapain.cli.main import app
from ketapain.clinic import migrate
from ketapain.clinic._service import add_row, correct_row
from ketapain.clinic.accounts import authenticate
from ketapain.clinic.audit import (
    SYSTEM,
    Actor,
    _append,
    list_entries,
    record_event,
    verify_trail,
)
from ketapain.clinic.audit_chain import (
    CONTENT,
    GENESIS,
    AuditChainHead,
    Verification,
    entry_sha256,
    link,
    parse_anchor,
    verify_chain,
)
from ketapain.clinic.charting import record_vitals
from ketapain.clinic.db import Base, Database
from ketapain.clinic.patients import BodyMeasurement, Patient
from ketapain.clinic.permissions import Action
from ketapain.clinic.registry import register_patient
from ketapain.config import Settings
from ketapain.errors import AccessDeniedError, AuthenticationError, InvalidValueError

from .conftest import PRE_CHAIN

ON_SQLITE = pytest.mark.parametrize("db", ["sqlite"], indirect=True)
ENTRIES = Base.metadata.tables["audit_entries"]
runner = CliRunner()


# --- helpers -------------------------------------------------------------------------


def _url(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


def _is_pg(db: Database) -> bool:
    return db.engine.dialect.name == "postgresql"


def _rows(db: Database) -> list[dict[str, Any]]:
    """Every audit entry (all columns, typed) in the order written (by id)."""
    with db.session() as session:
        table = ENTRIES
        result = session.execute(select(table).order_by(table.c.id)).mappings()
        return [dict(r) for r in result]


def _head(db: Database) -> tuple[int, str] | None:
    with db.session() as session:
        row = session.execute(
            select(AuditChainHead.seq, AuditChainHead.sha256).where(AuditChainHead.id == 1)
        ).first()
    return None if row is None else (row.seq, row.sha256)


def _verify(db: Database, anchors: dict[int, str] | None = None) -> Verification:
    with db.read() as session:
        return verify_trail(session, anchors=anchors)


def _cli_verify(db: Database, *anchors: str) -> tuple[int, dict[str, Any]]:
    """``ketapain audit verify --format json`` on ``db``: the exit status and the JSON."""
    args = ["audit", "verify", "--database-url", _url(db), "--format", "json"]
    for anchor in anchors:
        args += ["--anchor", anchor]
    result = _invoke(args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


def _invoke(args: list[str]) -> Result:
    """Run the CLI; close the databases it opened (the command leaves its engine open,
    and an unclosed connection collected later would fail the run as a ResourceWarning)."""
    opened: list[Database] = []
    original = cli_clinic._open

    def tracked(url: str | None) -> tuple[Settings, Database]:
        settings_, database = original(url)
        opened.append(database)
        return settings_, database

    cli_clinic._open = tracked
    try:
        return runner.invoke(app, args)
    finally:
        cli_clinic._open = original
        for database in opened:
            database.dispose()


def _assert_linked(rows: list[dict[str, Any]], head: tuple[int, str] | None) -> None:
    """Entries (in id order) carry seq 1..n, each links to the one before, each hash
    matches its content, and the head row is the last entry."""
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    prev = GENESIS
    for r in rows:
        assert r["prev_sha256"] == prev, r["seq"]
        assert r["sha256"] == entry_sha256(r, seq=r["seq"], prev_sha256=prev), r["seq"]
        prev = r["sha256"]
    assert head == (len(rows), prev)


def _drop_guards(db: Database) -> None:
    """What someone with DDL rights could do: lift the audit table's append-only triggers."""
    with db.engine.begin() as conn:
        if _is_pg(db):
            conn.exec_driver_sql("DROP TRIGGER audit_entries_append_only ON audit_entries")
        else:
            conn.exec_driver_sql("DROP TRIGGER audit_entries_no_update")
            conn.exec_driver_sql("DROP TRIGGER audit_entries_no_delete")


def _downgrade(db: Database, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrate.MIGRATIONS_DIR))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _mixed_writes(db: Database, staff: dict[str, Actor], patient: Patient) -> None:
    """Registration, vitals, a correction, a refused charting (audited as denied) and a
    failed login: every kind of audit entry the clinic writes."""
    nurse, desk = staff["nurse"], staff["front_desk"]
    register_patient(
        db, desk, mrn="T-0002", family_name="Roe", given_name="Zoë",
        birth_date=date(1970, 2, 3), sex="male",
    )  # fmt: skip
    record_vitals(db, nurse, (), patient_id=patient.id, sbp_mmhg=121.0, hr_per_min=70.0)
    with db.session() as session:
        m_id = session.scalars(
            select(BodyMeasurement.id).where(BodyMeasurement.patient_id == patient.id)
        ).one()
    correct_row(
        db, nurse, Action.CHART, BodyMeasurement, m_id, kind="body measurement",
        reason="scale misread", changes={"weight_kg": 67.5},
    )  # fmt: skip
    with pytest.raises(AccessDeniedError):
        record_vitals(db, desk, (), patient_id=patient.id, hr_per_min=80.0)
    with pytest.raises(AuthenticationError):
        authenticate(db, Settings(), username="nurse", password="not-the-password")


# --- an intact chain ------------------------------------------------------------------


def test_mixed_writes_leave_an_intact_chain(
    db: Database, staff: dict[str, Actor], patient: Patient
) -> None:
    """After every kind of write the trail verifies, seq runs 1..n in id order with no gap,
    each prev_sha256 is the sha256 before it, the head is the last entry, and the API's
    JSON of an entry carries its seq and sha256."""
    _mixed_writes(db, staff, patient)
    rows = _rows(db)
    actions = Counter(r["action"] for r in rows)
    assert {"create", "correct", "denied", "login_failed"} <= set(actions)
    _assert_linked(rows, _head(db))
    result = _verify(db)
    assert result.intact, result.as_dict()
    assert result.entries == len(rows)
    assert (result.head_seq, result.head_sha256) == (len(rows), rows[-1]["sha256"])
    with db.session() as session:
        served = [e.as_dict() for e in list_entries(session, limit=100_000)]
    assert [(e["seq"], e["sha256"]) for e in served] == [(r["seq"], r["sha256"]) for r in rows]


def test_cli_verify_of_an_intact_chain(
    db: Database, staff: dict[str, Actor], patient: Patient
) -> None:
    """``ketapain audit verify``: exit 0, the JSON says intact with the head, and the
    table form prints the head as SEQ:SHA256 (the form ``--anchor`` takes back)."""
    _mixed_writes(db, staff, patient)
    head = _head(db)
    assert head is not None
    code, out = _cli_verify(db)
    assert code == 0
    assert out["intact"] is True
    assert out["problem_count"] == 0
    assert out["problems"] == []
    assert out["entries"] == head[0]
    assert out["head"] == {"seq": head[0], "sha256": head[1]}
    result = _invoke(["audit", "verify", "--database-url", _url(db)])
    assert result.exit_code == 0, result.output
    assert f"head: {head[0]}:{head[1]}" in result.stdout
    assert "intact" in result.stdout
    code, out = _cli_verify(db, f"{head[0]}:{head[1]}", f"1:{_rows(db)[0]['sha256']}")
    assert code == 0
    assert out["intact"] is True


def test_triggers_refuse_update_and_delete(db: Database, patient: Patient) -> None:
    """Before anyone drops them, the database's own triggers refuse raw UPDATE and DELETE
    of audit entries (and the chain stays intact)."""
    for statement in (
        "UPDATE audit_entries SET detail = 'edited' WHERE seq = 1",
        "DELETE FROM audit_entries WHERE seq = 1",
        "DELETE FROM audit_entries",
    ):
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(statement))
    assert _verify(db).intact


# --- tampering ------------------------------------------------------------------------


Undo = Callable[[], None]
Tampering = Callable[[Database, list[dict[str, Any]]], tuple[str, int | None, Undo]]


def _restore_rows(db: Database, rows: list[dict[str, Any]]) -> Undo:
    """Put deleted entries back exactly as they were (same id and values)."""

    def undo() -> None:
        with db.engine.begin() as conn:
            conn.execute(insert(ENTRIES), rows)

    return undo


def _edit_detail(db: Database, rows: list[dict[str, Any]]) -> tuple[str, int | None, Undo]:
    target = rows[len(rows) // 2 - 1]
    statement = text("UPDATE audit_entries SET detail = :d WHERE seq = :s")
    with db.engine.begin() as conn:
        conn.execute(statement, {"d": "nothing to see", "s": target["seq"]})

    def undo() -> None:
        with db.engine.begin() as conn:
            conn.execute(statement, {"d": target["detail"], "s": target["seq"]})

    return "altered", target["seq"], undo


def _edit_after(db: Database, rows: list[dict[str, Any]]) -> tuple[str, int | None, Undo]:
    target = next(r for r in rows if r["entity"] == "body_measurements")
    value = "CAST(:v AS JSON)" if _is_pg(db) else ":v"
    statement = text(f'UPDATE audit_entries SET "after" = {value} WHERE seq = :s')
    with db.engine.begin() as conn:
        edited = {**target["after"], "weight_kg": 86.0}  # was 68.0
        conn.execute(statement, {"v": json.dumps(edited), "s": target["seq"]})

    def undo() -> None:
        with db.engine.begin() as conn:
            conn.execute(statement, {"v": json.dumps(target["after"]), "s": target["seq"]})

    return "altered", target["seq"], undo


def _delete_middle(db: Database, rows: list[dict[str, Any]]) -> tuple[str, int | None, Undo]:
    target = rows[len(rows) // 2 - 1]
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE seq = :s"), {"s": target["seq"]})
    return "missing", target["seq"] + 1, _restore_rows(db, [target])


def _delete_newest(db: Database, rows: list[dict[str, Any]]) -> tuple[str, int | None, Undo]:
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE seq >= :s"), {"s": len(rows) - 1})
    return "head", len(rows), _restore_rows(db, rows[-2:])


def _insert_unchained(db: Database, rows: list[dict[str, Any]]) -> tuple[str, int | None, Undo]:
    with db.engine.begin() as conn:
        new_id = conn.execute(
            insert(ENTRIES)
            .values(
                time_utc=rows[-1]["time_utc"] - timedelta(minutes=5),
                actor_id=None,
                actor_username="desk",
                actor_role="front_desk",
                action="create",
                entity="patients",
                entity_id=str(uuid.uuid4()),
                detail="slipped in",
            )
            .returning(ENTRIES.c.id)
        ).scalar_one()

    def undo() -> None:
        with db.engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_entries WHERE id = :i"), {"i": new_id})

    return "unchained", None, undo


TAMPERING: dict[str, Tampering] = {
    "edit detail": _edit_detail,
    "edit after": _edit_after,
    "delete a middle entry": _delete_middle,
    "delete the newest entries": _delete_newest,
    "insert without seq": _insert_unchained,
}


def test_tampering_is_detected(db: Database, staff: dict[str, Actor], patient: Patient) -> None:
    """Each kind of tampering by someone who dropped the triggers - an edited detail, an
    edited ``after`` value, a deleted middle entry, deleted newest entries, an entry
    inserted without seq - is reported with its kind and entry by ``verify_trail`` and by
    ``ketapain audit verify`` (exit 1); undoing it makes the chain verify again."""
    record_vitals(db, staff["nurse"], (), patient_id=patient.id, hr_per_min=71.0)
    assert _verify(db).intact
    _drop_guards(db)
    for name, tamper in TAMPERING.items():
        rows = _rows(db)
        kind, seq, undo = tamper(db, rows)

        result = _verify(db)
        found = [(p.kind, p.seq) for p in result.problems]
        assert not result.intact, name
        assert (kind, seq) in found, (name, found)
        assert {p.seq for p in result.problems} == {seq}, (name, found)
        if kind == "unchained":
            unchained = [r["id"] for r in _rows(db) if r["seq"] is None]
            assert [p.entry_id for p in result.problems] == unchained

        code, out = _cli_verify(db)
        assert code == 1, name
        assert out["intact"] is False
        assert out["problem_count"] == result.problem_count
        assert {"kind": kind, "seq": seq} in [
            {"kind": p["kind"], "seq": p["seq"]} for p in out["problems"]
        ], name

        undo()
        assert _rows(db) == rows, name
        assert _verify(db).intact, name


def _rehash_from(db: Database, seq: int) -> None:
    """Recompute the hashes of entry ``seq`` and every later one, and the head: what a
    forger who knows the scheme would do after an edit."""
    rows = [r for r in _rows(db) if r["seq"] is not None]
    prev = GENESIS if seq == 1 else rows[seq - 2]["sha256"]
    table = ENTRIES
    with db.engine.begin() as conn:
        for r in rows[seq - 1 :]:
            digest = entry_sha256(r, seq=r["seq"], prev_sha256=prev)
            conn.execute(
                update(table).where(table.c.id == r["id"]).values(prev_sha256=prev, sha256=digest)
            )
            prev = digest
        conn.execute(update(AuditChainHead).where(AuditChainHead.id == 1).values(sha256=prev))


def test_consistent_rewrite_is_caught_only_by_an_anchor(
    db: Database, staff: dict[str, Actor], patient: Patient
) -> None:
    """An edit with every later hash and the head recomputed passes the chain alone, but
    not an anchor (SEQ:SHA256) noted before it; an anchor older than the edit still holds."""
    _mixed_writes(db, staff, patient)
    rows = _rows(db)
    n = len(rows)
    edited = n - 3
    early = f"{edited - 1}:{rows[edited - 2]['sha256']}"
    anchor = f"{n}:{rows[-1]['sha256']}"
    _drop_guards(db)
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_entries SET actor_username = 'someone else' WHERE seq = :s"),
            {"s": edited},
        )
    assert [p.kind for p in _verify(db).problems] == ["altered"]
    _rehash_from(db, edited)

    _assert_linked(_rows(db), _head(db))
    assert _verify(db).intact
    assert _cli_verify(db)[0] == 0
    assert _cli_verify(db, early)[0] == 0

    result = _verify(db, dict([parse_anchor(anchor)]))
    assert [(p.kind, p.seq) for p in result.problems] == [("anchor", n)]
    code, out = _cli_verify(db, anchor, early)
    assert code == 1
    assert out["intact"] is False
    assert [(p["kind"], p["seq"]) for p in out["problems"]] == [("anchor", n)]


@ON_SQLITE
def test_anchor_beyond_the_trail_and_cli_errors(db: Database) -> None:
    """An anchor for an entry the trail does not hold is a problem (exit 1); a malformed
    anchor, an unknown --format or an unmigrated database is an error (exit 2)."""
    head = _head(db)
    assert head is not None
    code, out = _cli_verify(db, f"{head[0] + 5}:{'ab' * 32}")
    assert code == 1
    assert [(p["kind"], p["seq"]) for p in out["problems"]] == [("anchor", head[0] + 5)]
    for args in (
        ["--anchor", "12-abc"],
        ["--anchor", f"x:{'a' * 64}"],
        ["--format", "xml"],
    ):
        result = _invoke(["audit", "verify", "--database-url", _url(db), *args])
        assert result.exit_code == 2, result.output
    result = _invoke(["audit", "verify", "--database-url", _url(db), "--anchor", "1:a"])
    assert "anchor" in result.output
    empty = f"sqlite:///{db.engine.url.database}.empty.db"
    result = _invoke(["audit", "verify", "--database-url", empty])
    assert result.exit_code == 2, result.output
    assert "ketapain db upgrade" in result.output


def test_verify_during_a_concurrent_commit_sees_one_snapshot(
    db: Database, staff: dict[str, Actor]
) -> None:
    """A writer committing while ``verify_trail`` reads (between the entries and the head)
    must not make an intact chain look broken: the check reads one snapshot."""
    record_event(db, staff["admin"], action="export", entity="patients")
    fired = threading.Event()

    def commit_between(_conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
        if "audit_chain_head" in statement and statement.lstrip().upper().startswith("SELECT"):
            if fired.is_set():
                return
            fired.set()
            writer = threading.Thread(
                target=record_event,
                args=(db, staff["nurse"]),
                kwargs={"action": "read", "entity": "x"},
            )
            writer.start()
            writer.join()

    event.listen(db.read_engine, "before_cursor_execute", commit_between)
    try:
        result = _verify(db)
    finally:
        event.remove(db.read_engine, "before_cursor_execute", commit_between)
    assert fired.is_set()
    assert result.intact, result.as_dict()
    assert _verify(db).intact


# --- concurrent writers ---------------------------------------------------------------


def test_concurrent_writers_keep_one_chain(
    db: Database, staff: dict[str, Actor], patient: Patient
) -> None:
    """6 threads x 15 audited writes at once (each its own session through the services):
    the chain stays intact, seq follows id with no gap, and no two entries link to the
    same predecessor (no fork)."""
    threads_n, writes_n = 6, 15
    before = len(_rows(db))
    errors: list[BaseException] = []
    start = threading.Barrier(threads_n)

    def write(worker: int) -> None:
        try:
            start.wait()
            for i in range(writes_n):
                if i % 5 == 4:
                    record_event(db, staff["admin"], action="read", entity="patients",
                                 detail=f"worker {worker} read {i}")  # fmt: skip
                else:
                    row = BodyMeasurement(patient_id=patient.id, weight_kg=50.0 + worker + i / 100)
                    add_row(db, staff["nurse"], Action.CHART, row)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = _rows(db)
    assert len(rows) == before + threads_n * writes_n
    _assert_linked(rows, _head(db))
    prevs = Counter(r["prev_sha256"] for r in rows)
    assert prevs.most_common(1)[0][1] == 1
    assert _verify(db).intact
    with db.session() as session:
        measured = session.scalar(
            select(func.count())
            .select_from(BodyMeasurement)
            .where(BodyMeasurement.patient_id == patient.id)
        )
    assert measured == 1 + threads_n * (writes_n - writes_n // 5)


# --- migration from 0002 --------------------------------------------------------------

_ACTOR = uuid.UUID("0b6a3f4e-2c1d-4e5f-8a9b-0c1d2e3f4a5b")
PRE_CHAIN_ROWS: list[dict[str, Any]] = [
    {
        "time_utc": datetime(2026, 11, 20, 9, 0, 0, 123456, tzinfo=UTC),
        "actor_id": None, "actor_username": "system", "actor_role": "system",
        "action": "create", "entity": "users", "entity_id": "u-1", "before": None,
        "after": {"username": "zoë", "weights": [68.0, 0.1, -0.0, 1e300], "n": 2**62,
                  "nested": {"a": None, "b": [1, {"ü": "🙂"}], "t": True}},
        "detail": None,
    },
    {
        "time_utc": datetime(2026, 11, 20, 14, 30, 0, 5, tzinfo=timezone(timedelta(hours=5))),
        "actor_id": _ACTOR, "actor_username": "nurse", "actor_role": "nurse",
        "action": "correct", "entity": "body_measurements", "entity_id": "m-2",
        "before": {"weight_kg": 68.0}, "after": {"weight_kg": 67.5, "note": "line\nbreak"},
        "detail": "scale misread — «corrected»",
    },
    {  # earlier than the entry before it: the chain follows the order written (id)
        "time_utc": datetime(2026, 11, 19, 23, 59, 59, tzinfo=UTC),
        "actor_id": _ACTOR, "actor_username": "nurse", "actor_role": "nurse",
        "action": "denied", "entity": "chart", "entity_id": None, "before": None,
        "after": None, "detail": "",
    },
    {
        "time_utc": datetime(2026, 11, 21, 8, 0, tzinfo=UTC),
        "actor_id": None, "actor_username": "system", "actor_role": "system",
        "action": "login_failed", "entity": "users", "entity_id": None, "before": None,
        "after": None, "detail": "wrong username or password (unknown user 'x')",
    },
]  # fmt: skip


def _expected_head(rows: list[dict[str, Any]]) -> tuple[int, str]:
    prev = GENESIS
    for seq, row in enumerate(rows, start=1):
        prev = link(dict(row), seq=seq, prev_sha256=prev)
    return len(rows), prev


def test_upgrade_from_0002_links_existing_entries(db: Database) -> None:
    """Entries written at revision 0002 (no chain columns) are linked by the upgrade in
    id order, with the hashes the application computes from the same values; a downgrade
    to 0002 keeps them and a second upgrade links them identically."""
    _downgrade(db, "base")
    assert migrate.upgrade(db, "0002") == "0002"
    assert "seq" not in {c["name"] for c in inspect(db.engine).get_columns("audit_entries")}
    with db.engine.begin() as conn:
        for row in PRE_CHAIN_ROWS:
            conn.execute(insert(PRE_CHAIN).values(**row))

    assert migrate.upgrade(db) == migrate.head()
    rows = _rows(db)
    assert [r["detail"] for r in rows] == [r["detail"] for r in PRE_CHAIN_ROWS]
    _assert_linked(rows, _head(db))
    assert _head(db) == _expected_head(PRE_CHAIN_ROWS)
    assert _verify(db).intact
    linked = [(r["id"], r["seq"], r["prev_sha256"], r["sha256"]) for r in rows]
    with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_entries SET detail = 'x' WHERE seq = 1"))

    _downgrade(db, "0002")
    assert migrate.current(db) == "0002"
    columns = {c["name"] for c in inspect(db.engine).get_columns("audit_entries")}
    assert not columns & {"seq", "prev_sha256", "sha256"}
    assert "audit_chain_head" not in inspect(db.engine).get_table_names()
    with db.engine.connect() as conn:
        kept = conn.execute(select(PRE_CHAIN.c.id, PRE_CHAIN.c.detail).order_by(PRE_CHAIN.c.id))
        assert [tuple(r) for r in kept] == [
            (r[0], d["detail"]) for r, d in zip(linked, PRE_CHAIN_ROWS, strict=True)
        ]
    with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entries"))

    assert migrate.upgrade(db) == migrate.head()
    assert [(r["id"], r["seq"], r["prev_sha256"], r["sha256"]) for r in _rows(db)] == linked
    record_event(db, SYSTEM, action="upgrade", entity="database")
    rows = _rows(db)
    assert len(rows) == len(PRE_CHAIN_ROWS) + 1
    _assert_linked(rows, _head(db))
    assert _verify(db).intact


# --- properties of the chain (no database) --------------------------------------------

_SHORT = st.text(max_size=12)
_JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _SHORT
)
_JSON = st.recursive(
    _JSON_LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_SHORT, inner, max_size=3),
    max_leaves=8,
)
_OBJECT = st.none() | st.dictionaries(_SHORT, _JSON, max_size=4)
_TIME = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
_HEX64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "time_utc": _TIME,
    "actor_id": st.none() | st.uuids(),
    "actor_username": _SHORT,
    "actor_role": _SHORT,
    "action": _SHORT,
    "entity": _SHORT,
    "entity_id": st.none() | _SHORT,
    "before": _OBJECT,
    "after": _OBJECT,
    "detail": st.none() | st.text(max_size=40),
    "seq": st.integers(min_value=0, max_value=50),
    "prev_sha256": _HEX64,
    "sha256": _HEX64,
}
_ROW = st.fixed_dictionaries({name: FIELDS[name] for name in CONTENT})


def _canonical_json(value: Any) -> str:
    """The value as the chain's canonical JSON would write it (UTC times, UUID text)."""
    if isinstance(value, datetime):
        value = value.astimezone(UTC).isoformat(timespec="microseconds")
    elif isinstance(value, uuid.UUID):
        value = str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _chain(contents: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], tuple[int, str]]:
    rows, prev = [], GENESIS
    for i, content in enumerate(contents, start=1):
        row = {"id": 100 + i, **copy.deepcopy(content)}
        prev = link(row, seq=i, prev_sha256=prev)
        rows.append(row)
    return rows, (len(rows), prev)


@given(contents=st.lists(_ROW, min_size=1, max_size=6), data=st.data())
def test_any_single_field_change_is_detected(
    contents: list[dict[str, Any]], data: st.DataObject
) -> None:
    """A generated chain verifies; changing any one field (content, seq or a hash) of any
    entry to a different value breaks it, and a content change is named 'altered' at
    that entry."""
    rows, head = _chain(contents)
    assert verify_chain(rows, head).intact
    index = data.draw(st.integers(min_value=0, max_value=len(rows) - 1), label="entry")
    name = data.draw(st.sampled_from(sorted(FIELDS)), label="field")
    value = data.draw(FIELDS[name], label="new value")
    assume(_canonical_json(value) != _canonical_json(rows[index][name]))
    tampered = copy.deepcopy(rows)
    tampered[index][name] = value
    result = verify_chain(tampered, head)
    assert not result.intact
    if name in CONTENT:
        assert ("altered", index + 1) in [(p.kind, p.seq) for p in result.problems]


def test_verify_chain_problem_kinds() -> None:
    """The kinds named for each break: missing (gap), broken (wrong link), unchained (no
    seq), head (head row ahead, missing or behind), anchor (mismatch or absent)."""
    contents = [
        {**dict.fromkeys(CONTENT), "action": "create", "detail": f"entry {i}"} for i in range(5)
    ]
    rows, head = _chain(contents)

    def kinds(entries: Sequence[Mapping[str, Any]], h: tuple[int, str] | None, **kw: Any) -> Any:
        return [(p.kind, p.seq) for p in verify_chain(entries, h, **kw).problems]

    assert kinds(rows[:2] + rows[3:], head) == [("missing", 4), ("broken", 4)]
    assert kinds(rows[1:], head) == [("missing", 2), ("broken", 2)]
    assert kinds(rows[:3], head) == [("head", 5)]
    assert kinds(rows, None) == [("head", None)]
    assert kinds(rows, (6, head[1])) == [("head", 6)]
    assert kinds([*rows, {**rows[0], "seq": None, "id": 7}], head) == [("unchained", None)]
    assert kinds([], None) == []
    assert kinds(rows, head, anchors={3: rows[2]["sha256"], 5: rows[4]["sha256"]}) == []
    assert kinds(rows, head, anchors={3: rows[1]["sha256"]}) == [("anchor", 3)]
    assert kinds(rows, head, anchors={9: rows[1]["sha256"]}) == [("anchor", 9)]
    long_rows, long_head = _chain(contents * 30)
    result = verify_chain([{**r, "detail": "x"} for r in long_rows], long_head)
    assert result.problem_count == 150
    assert len(result.problems) == 100


# A fixed entry and its hash: version 1 of the canonical form must never change, or every
# chain written before would stop verifying.
GOLDEN_ROW: dict[str, Any] = {
    "time_utc": datetime(2026, 11, 22, 10, 0, 0, 1, tzinfo=timezone(timedelta(hours=1))),
    "actor_id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "actor_username": "Zoë Ünal",
    "actor_role": "nurse",
    "action": "correct",
    "entity": "body_measurements",
    "entity_id": "42",
    "before": {"weight_kg": 68.0, "tags": ["a", None, 1.5e-7]},
    "after": {"weight_kg": 0.1, "nested": {"z": [1, 2, {"k": "🙂"}], "a": -0.0, "b": True}},
    "detail": "「訂正」 ketamine 0.5 mg/kg",
}
# Its canonical JSON, written out: sorted keys, no spaces, UTF-8, the time in UTC to the us.
GOLDEN_TEXT = (
    '{"action":"correct","actor_id":"12345678-1234-5678-1234-567812345678",'
    '"actor_role":"nurse","actor_username":"Zoë Ünal",'
    '"after":{"nested":{"a":-0.0,"b":true,"z":[1,2,{"k":"🙂"}]},"weight_kg":0.1},'
    '"before":{"tags":["a",null,1.5e-07],"weight_kg":68.0},'
    '"detail":"「訂正」 ketamine 0.5 mg/kg","entity":"body_measurements","entity_id":"42",'
    f'"prev_sha256":"{"ab" * 32}","seq":7,"time_utc":"2026-11-22T09:00:00.000001+00:00","v":1}}'
)
GOLDEN_SHA256 = "fd6587c330d9b2bc5e4c3d9d45d662df7b4c3de2f9f133d330d9c627efa4dfe9"


def test_entry_sha256_golden_value() -> None:
    """The hash of a fixed entry (unicode, floats, None, nested JSON, a non-UTC time, a
    UUID) is the SHA-256 of its canonical form written out by hand, and the recorded
    value: version 1 of the form is stable across releases."""
    assert hashlib.sha256(GOLDEN_TEXT.encode()).hexdigest() == GOLDEN_SHA256
    assert entry_sha256(GOLDEN_ROW, seq=7, prev_sha256="ab" * 32) == GOLDEN_SHA256


def _shuffled(value: Any) -> Any:
    """The same JSON value with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {k: _shuffled(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_shuffled(v) for v in value]
    return value


@given(row=_ROW, seq=st.integers(min_value=1, max_value=2**40), prev=_HEX64)
def test_entry_sha256_is_stable(row: dict[str, Any], seq: int, prev: str) -> None:
    """The hash depends on the content alone: not on key order, on a JSON round trip of
    before/after, on the time zone a time is given in, on extra keys (id, seq, sha256)
    or on a missing key read as None."""
    digest = entry_sha256(row, seq=seq, prev_sha256=prev)
    assert len(digest) == 64
    assert entry_sha256(copy.deepcopy(row), seq=seq, prev_sha256=prev) == digest
    same = {k: _shuffled(row[k]) for k in reversed(list(row))}
    for key in ("before", "after"):
        same[key] = json.loads(json.dumps(same[key]))
    same["time_utc"] = row["time_utc"].astimezone(timezone(timedelta(hours=-7, minutes=-30)))
    same.update(id=1, seq=seq + 1, sha256="f" * 64, prev_sha256=GENESIS)
    assert entry_sha256(same, seq=seq, prev_sha256=prev) == digest
    if row["detail"] is None:
        assert entry_sha256({k: v for k, v in row.items() if k != "detail"}, seq=seq,
                            prev_sha256=prev) == digest  # fmt: skip
    assert entry_sha256(row, seq=seq + 1, prev_sha256=prev) != digest
    linked = dict(row)
    assert link(linked, seq=seq, prev_sha256=prev) == digest
    assert (linked["seq"], linked["prev_sha256"], linked["sha256"]) == (seq, prev, digest)


@ON_SQLITE
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=_ROW)
def test_stored_entries_hash_the_same(db: Database, row: dict[str, Any]) -> None:
    """An entry appended with any content (unicode, floats, None, nested JSON) reads back
    from the database with the same hash it was linked with, and the trail verifies."""
    with db.write() as session, session.begin():
        _append(session, [copy.deepcopy(row)])
    stored = _rows(db)[-1]
    assert stored["sha256"] == entry_sha256(
        stored, seq=stored["seq"], prev_sha256=stored["prev_sha256"]
    )
    assert stored["sha256"] == entry_sha256(
        row, seq=stored["seq"], prev_sha256=stored["prev_sha256"]
    )
    assert _verify(db).intact


# --- anchors --------------------------------------------------------------------------


@given(seq=st.integers(min_value=0, max_value=2**62), digest=_HEX64, upper=st.booleans())
def test_parse_anchor_reads_what_verify_prints(seq: int, digest: str, upper: bool) -> None:
    """``SEQ:SHA256`` as printed (hex in either case, spaces around) parses back."""
    text_ = f" {seq} : {digest.upper() if upper else digest} "
    assert parse_anchor(f"{seq}:{digest}") == (seq, digest)
    assert parse_anchor(text_) == (seq, digest)


@given(text_=st.text(alphabet=st.characters(max_codepoint=127), max_size=80))
@example(text_="")
@example(text_=":")
@example(text_=f"-1:{'a' * 64}")
@example(text_=f"1:{'a' * 63}")
@example(text_=f"1:{'a' * 65}")
@example(text_=f"1:{'g' * 64}")
@example(text_=f"1;{'a' * 64}")
@example(text_=f"{'a' * 64}")
def test_parse_anchor_refuses_malformed_ascii(text_: str) -> None:
    """Any text either parses to a (seq, 64 lowercase hex digits) it spells, or is refused
    with an InvalidValueError naming 'anchor' (never another exception)."""
    refused: str | None = None
    try:
        seq, digest = parse_anchor(text_)
    except InvalidValueError as err:
        refused = err.field
    if refused is not None:
        assert refused == "anchor"
        return
    assert seq >= 0
    assert len(digest) == 64
    assert set(digest) <= set("0123456789abcdef")
    assert text_.strip().lower().endswith(digest)
    assert int(text_.partition(":")[0]) == seq


@pytest.mark.parametrize(
    "anchor",
    [
        "12",
        f"1.5:{'a' * 64}",
        f"0x1:{'a' * 64}",
        f"²:{'a' * 64}",
    ],
)
def test_parse_anchor_refuses(anchor: str) -> None:
    """Malformed anchors, including non-ASCII digits, are refused naming 'anchor'."""
    with pytest.raises(InvalidValueError) as err:
        parse_anchor(anchor)
    assert err.value.field == "anchor"
