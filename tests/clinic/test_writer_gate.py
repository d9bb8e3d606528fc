"""The writer gate of a SQLite file: one writer at a time, across threads and processes.

A write transaction (``unit_of_work`` or a ``Database.write`` session) holds an exclusive
``flock`` on ``<database file>-writer`` from its first statement until its connection
goes back to the pool, committed or rolled back; reads never wait for it. These tests
take the same lock from outside (``LOCK_EX | LOCK_NB``), write from threads and from a
second process, and check that nothing is lost and the gate is never left held.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Final, TypeVar

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool, StaticPool

from ketapain.clinic import db as db_module
from ketapain.clinic import migrate
from ketapain.clinic.audit import (
    SYSTEM,
    AuditEntry,
    add_event,
    record_event,
    unit_of_work,
    verify_trail,
)
from ketapain.clinic.db import POOL_SIZE, Database
from ketapain.clinic.patients import BodyMeasurement
from ketapain.errors import AccessDeniedError, ConflictError

fcntl = pytest.importorskip("fcntl", reason="the writer gate across processes needs flock")

T = TypeVar("T")

# How long a write that must not wait may take, and how long a blocked one is watched.
PROMPT_S: Final = 10.0
BLOCKED_S: Final = 0.75
CHILD_START_S: Final = 90.0
THREADS: Final = 4
WRITES_EACH: Final = 20


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "clinic.db"


@pytest.fixture
def db(db_file: Path) -> Iterator[Database]:
    """A migrated SQLite file database (no users: the writes are audit events)."""
    database = Database.connect(f"sqlite:///{db_file}")
    migrate.upgrade(database)
    yield database
    database.dispose()


def _gate(db_file: Path) -> Path:
    return db_file.with_name(f"{db_file.name}-writer")


def _gate_free(db_file: Path) -> bool:
    """Whether an exclusive flock on the gate file can be had at once (it is then let go)."""
    fd = os.open(_gate(db_file), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _promptly(work: Callable[[], T], timeout: float = PROMPT_S) -> T:
    """``work()`` in a thread of its own; fail (instead of hanging) if it takes too long."""
    out: list[T] = []
    err: list[BaseException] = []

    def run() -> None:
        try:
            out.append(work())
        except BaseException as e:
            err.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"still waiting after {timeout:g} s (the gate is held)"
    if err:
        raise err[0]
    return out[0]


def _events(db: Database, action: str) -> list[str | None]:
    with db.session() as s:
        return list(
            s.scalars(
                select(AuditEntry.detail).where(AuditEntry.action == action).order_by(AuditEntry.id)
            )
        )


def _write(db: Database, detail: str = "after") -> None:
    record_event(db, SYSTEM, action="gate_test", entity="test", detail=detail)


def _uow_session(db: Database) -> AbstractContextManager[Session]:
    return unit_of_work(db, SYSTEM)


@contextmanager
def _write_session(db: Database) -> Iterator[Session]:
    with db.write() as session, session.begin():
        yield session


WRITERS: Final = {"unit_of_work": _uow_session, "Database.write": _write_session}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_gate_is_held_while_writing_and_freed_on_commit(
    db: Database, db_file: Path, writer: str
) -> None:
    """After a write statement, the gate file is there and exclusively locked until the
    commit; the file stays, unlocked."""
    assert not _gate(db_file).exists()
    with WRITERS[writer](db) as session:
        add_event(session, SYSTEM, action="gate_test", entity="test", detail="held")
        assert _gate(db_file).is_file()
        assert not _gate_free(db_file), "a write transaction is open without the gate"
    assert _gate(db_file).is_file()
    assert _gate_free(db_file), "the gate is still held after the commit"
    assert _events(db, "gate_test") == ["held"]
    _promptly(lambda: _write(db))
    assert _events(db, "gate_test") == ["held", "after"]


def _raise_runtime(_session: Session) -> None:
    raise RuntimeError("boom")


def _raise_denied(_session: Session) -> None:
    raise AccessDeniedError("nurse", "plan", "only a physician plans a course")


def _violate_foreign_key(session: Session) -> None:
    # No such patient and no such user: the database refuses the row.
    session.add(
        BodyMeasurement(
            patient_id=uuid.uuid4(), weight_kg=68.0, height_cm=165.0, recorded_by_id=uuid.uuid4()
        )
    )
    session.flush()


FAILURES: Final = {
    "exception": (_raise_runtime, RuntimeError),
    "access denied": (_raise_denied, AccessDeniedError),
    "integrity error": (_violate_foreign_key, ConflictError),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_gate_is_freed_on_rollback(db: Database, db_file: Path, failure: str) -> None:
    """A unit of work that fails after writing rolls back and lets the gate go: the write
    is gone, a refusal still gets its own audit entry, and the next write goes through."""
    fail, error = FAILURES[failure]

    def failing() -> None:
        with unit_of_work(db, SYSTEM) as session:
            add_event(session, SYSTEM, action="gate_test", entity="test", detail="rolled back")
            assert not _gate_free(db_file)
            fail(session)

    with pytest.raises(error):
        # The refusal's own audit write comes after the rollback: a gate not let go
        # would make it wait forever.
        _promptly(failing)
    assert _gate_free(db_file), "the gate is still held after the rollback"
    assert _events(db, "gate_test") == []
    denied = ["a nurse may not plan: only a physician plans a course"]
    assert _events(db, "denied") == (denied if failure == "access denied" else [])
    _promptly(lambda: _write(db))
    assert _events(db, "gate_test") == ["after"]
    assert _gate_free(db_file)


def test_a_read_is_not_blocked_by_an_open_write(db: Database, db_file: Path) -> None:
    """While a write transaction holds the gate, a read session answers at once (WAL) and
    sees the last committed state, not the write in progress."""
    _write(db, "committed")

    def read() -> list[str | None]:
        return _events(db, "gate_test")

    with unit_of_work(db, SYSTEM) as session:
        add_event(session, SYSTEM, action="gate_test", entity="test", detail="in progress")
        assert not _gate_free(db_file)
        assert _promptly(read, timeout=5.0) == ["committed"]
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(AuditEntry)) == 1
    assert read() == ["committed", "in progress"]


def test_a_second_writer_thread_waits_for_the_commit(db: Database, db_file: Path) -> None:
    """A writer thread of the same process waits while a unit of work is open and goes
    once it commits: its entry comes after."""
    done = threading.Event()

    def second() -> None:
        _write(db, "second")
        done.set()

    with unit_of_work(db, SYSTEM) as session:
        add_event(session, SYSTEM, action="gate_test", entity="test", detail="first")
        thread = threading.Thread(target=second, daemon=True)
        thread.start()
        assert not done.wait(BLOCKED_S), "a second writer did not wait for the first"
    thread.join(PROMPT_S)
    assert done.is_set()
    assert _events(db, "gate_test") == ["first", "second"]
    assert _gate_free(db_file)


def test_threads_writing_at_once_lose_nothing(db: Database, db_file: Path) -> None:
    """4 threads of 20 writes each, at once, on one file: every write is there once and the
    audit trail's hash chain is intact."""
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            start.wait()
            for i in range(WRITES_EACH):
                if i % 2:
                    _write(db, f"{k}-{i}")
                else:
                    with unit_of_work(db, SYSTEM) as session:
                        add_event(
                            session, SYSTEM, action="gate_test", entity="t", detail=f"{k}-{i}"
                        )
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(k,), daemon=True) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60.0)
    assert not any(t.is_alive() for t in threads), "a writer thread hangs"
    assert errors == []
    written = _events(db, "gate_test")
    assert sorted(written) == sorted(f"{k}-{i}" for k in range(THREADS) for i in range(WRITES_EACH))
    with db.session() as s:
        trail = verify_trail(s)
    assert trail.intact, trail.problems
    assert trail.entries == THREADS * WRITES_EACH
    assert _gate_free(db_file)


# The second process: connects, says "ready", then writes one audit event for each line
# read, saying "done <line> <time>" once it is committed.
CHILD: Final = """
import sys, time
from ketapain.clinic.audit import SYSTEM, record_event
from ketapain.clinic.db import Database
db = Database.connect(sys.argv[1])
print("ready", flush=True)
for line in sys.stdin:
    label = line.strip()
    record_event(db, SYSTEM, action="gate_test", entity="test", detail=label)
    print("done", label, repr(time.time()), flush=True)
db.dispose()
"""


class _Child:
    """The second writer process, fed one label per write."""

    def __init__(self, url: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KETAPAIN_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr = ""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def expect(self, first_word: str, timeout: float) -> list[str]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"the second process said nothing within {timeout:g} s{self._err()}")
        words = line.split()
        assert words[:1] == [first_word], line
        return words

    def silent_for(self, seconds: float) -> bool:
        try:
            line = self.lines.get(timeout=seconds)
        except queue.Empty:
            return True
        self.lines.put(line)
        return False

    def send(self, label: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(label + "\n")
        self.proc.stdin.flush()

    def close(self) -> int:
        """End the input, wait for the exit (killing it after 30 s), close the pipes."""
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.reader.join(5.0)
        if self.proc.stderr is not None and not self.proc.stderr.closed:
            self.stderr = self.proc.stderr.read()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return code

    def _err(self) -> str:
        if self.proc.poll() is None:
            return ""
        self.close()
        return f"; it exited ({self.proc.returncode}):\n{self.stderr[-3000:]}"


def test_a_writer_in_another_process_waits_for_the_gate(db: Database, db_file: Path) -> None:
    """A second process writing to the same file waits while this one holds a write
    transaction open, and commits after this one's commit; it also waits while the gate
    file alone is locked (no SQLite transaction at all), until the lock is let go."""
    child = _Child(f"sqlite:///{db_file}")
    try:
        child.expect("ready", CHILD_START_S)
        # 1. A unit of work of this process is open.
        with unit_of_work(db, SYSTEM) as session:
            add_event(session, SYSTEM, action="gate_test", entity="test", detail="parent")
            child.send("child")
            assert child.silent_for(BLOCKED_S), "the other process wrote during our transaction"
            assert _events(db, "gate_test") == []
            committing = time.time()
        words = child.expect("done", PROMPT_S + 20)
        assert words[1] == "child"
        assert float(words[2]) >= committing
        assert _events(db, "gate_test") == ["parent", "child"]
        # 2. Only the gate file is locked, by this process: the other one still waits.
        fd = os.open(_gate(db_file), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            child.send("gated")
            assert child.silent_for(BLOCKED_S), "the other process wrote past the gate"
            assert _events(db, "gate_test") == ["parent", "child"]
            releasing = time.time()
        finally:
            os.close(fd)
        words = child.expect("done", PROMPT_S + 20)
        assert words[1] == "gated" and float(words[2]) >= releasing
        assert _events(db, "gate_test") == ["parent", "child", "gated"]
        assert child.close() == 0, child.stderr[-3000:]
    finally:
        child.close()
    assert _gate_free(db_file)
    with db.session() as s:
        assert verify_trail(s).intact


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_database_has_no_gate_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """An in-memory database writes and reads without any file beside it."""
    monkeypatch.chdir(tmp_path)
    db = Database.connect(url)
    try:
        assert isinstance(db.engine.pool, StaticPool)
        migrate.upgrade(db)
        with unit_of_work(db, SYSTEM) as session:
            add_event(session, SYSTEM, action="gate_test", entity="test", detail="one")
        _promptly(lambda: _write(db, "two"))
        assert _events(db, "gate_test") == ["one", "two"]
    finally:
        db.dispose()
    assert list(tmp_path.iterdir()) == []


def test_file_database_pool(db: Database) -> None:
    """A file database pools POOL_SIZE (16) connections, 16 more in overflow, and gives up
    waiting for one after 5 s."""
    pool = db.engine.pool
    assert isinstance(pool, QueuePool)
    assert (POOL_SIZE, pool.size(), pool.timeout()) == (16, 16, 5.0)
    held = [db.engine.connect() for _ in range(2 * POOL_SIZE)]
    try:
        assert (pool.checkedout(), pool.overflow()) == (32, 16)
    finally:
        for conn in held:
            conn.close()


# A shorter busy timeout than ketapain.clinic.db's 30 s, so that the test is quick.
BUSY_TIMEOUT_MS: Final = 1500


def test_a_writer_gives_up_after_the_busy_timeout(
    db: Database, db_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer queued behind a write transaction that stays open gives up with a pool
    timeout (the API's 503) after the busy timeout, freeing its thread and connection;
    the transaction it waited for commits."""
    monkeypatch.setattr(db_module, "_BUSY_TIMEOUT_MS", BUSY_TIMEOUT_MS)
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            _write(db, "queued")
            outcome.append(None)
        except Exception as err:
            outcome.append(err)

    thread = threading.Thread(target=write, daemon=True)
    started = time.monotonic()
    with unit_of_work(db, SYSTEM) as session:
        add_event(session, SYSTEM, action="gate_test", entity="test", detail="long")
        thread.start()
        thread.join(BUSY_TIMEOUT_MS / 1000 + 5.0)
        waited_on = thread.is_alive()
    waited_s = time.monotonic() - started
    assert not waited_on, f"the writer still waits after {BUSY_TIMEOUT_MS / 1000 + 5.0:g} s"
    assert outcome and isinstance(outcome[0], PoolTimeoutError), outcome
    assert waited_s >= BUSY_TIMEOUT_MS / 1000 * 0.9
    _write(db, "after")  # the gate is free again
