"""Database engine, declarative base and the column types every record shares.

SQLite is the embedded default: write-ahead log, foreign keys on, ``synchronous=FULL``
(a committed transaction survives a power cut, not only a process crash), and every
write transaction starts with ``BEGIN IMMEDIATE`` so that two writers queue instead of
failing half-way. Writers to a SQLite file queue first on a gate (a lock in the process
and a ``flock`` on ``<file>-writer`` across the server's processes), which wakes the next
writer within 2 ms of a commit: SQLite's own busy handler polls with sleeps of up to 100 ms.
PostgreSQL is selected by its URL; its write transactions queue the
same way on a transaction-scoped advisory lock, so that the audit trail's hash chain
(:mod:`ketapain.clinic.audit_chain`) grows one link at a time and a check-then-write
(an infusion's version) cannot interleave with another writer's. Its read sessions have
a pool of their own, of read-only connections in autocommit: no ``BEGIN`` and no
``COMMIT`` around a read, a write refused at once, and the statements psycopg has
prepared on the server kept (it drops them at every ``ROLLBACK``). A write transaction
sends its ``BEGIN`` with the lock, in one round trip, and a connection leaving a pool is
checked by polling its socket, not pinged: one the server has ended (a restart) is
replaced. A request so spends its round trips on its own statements.

>>> db = Database.connect("sqlite://")
>>> with db.engine.connect() as conn:
...     conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
1
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVarTuple, overload

from sqlalchemy import JSON, DateTime, Engine, Executable, Result, create_engine, event

try:
    import fcntl
except ImportError:  # Windows: the gate serialises the writers of one process only
    fcntl = None  # type: ignore[assignment]
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator, Uuid

if TYPE_CHECKING:
    from sqlalchemy.sql.selectable import TypedReturnsRows

from ketapain.errors import InvalidValueError

__all__ = [
    "PG_WRITE_LOCK",
    "POOL_SIZE",
    "READ_ONLY",
    "WRITE",
    "Base",
    "Database",
    "UTCDateTime",
    "column_rows",
    "utc_now",
]

_Ts = TypeVarTuple("_Ts")

# Wait this long for another writer before giving up (SQLite busy timeout).
_BUSY_TIMEOUT_MS: Final = 30_000
# session.info key: set on every session of Database.read (never used to write), so that
# a reader may keep what it has read for the rest of its transaction.
READ_ONLY: Final = "ketapain_read_only"
# The execution option of the connections of Database.write.
WRITE: Final = "ketapain_write"

# The key, in a pooled connection's info, that says it holds the writer gate.
_GATED: Final = "ketapain_writer_gate"

# Connections each process keeps: more than the requests its thread pool runs at once,
# and as many again in overflow (a request may hold a read and then a write), so that a
# request does not wait for a connection. Past that it waits at most _POOL_TIMEOUT_S and
# is answered 503 (the server is overloaded) instead of hanging.
POOL_SIZE: Final = 16
_POOL_TIMEOUT_S: Final = 5.0
_POOL: Final = {"pool_size": POOL_SIZE, "max_overflow": POOL_SIZE, "pool_timeout": _POOL_TIMEOUT_S}


class _NoResultRows(logging.Filter):
    """SQLAlchemy logs each result row at DEBUG (``echo="debug"``): rows are patient data,
    so they are dropped even when SQL logging is turned on; statements (INFO) pass, their
    parameters hidden (``hide_parameters``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


logging.getLogger("sqlalchemy.engine.Engine").addFilter(_NoResultRows())

# The PostgreSQL advisory lock every write transaction holds (any fixed 64-bit key).
PG_WRITE_LOCK: Final = 0x6B65_7461_6175_6474


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


@overload
def column_rows(  # type: ignore[overload-overlap]  # a typed select is also an Executable
    session: Session,
    statement: TypedReturnsRows[*_Ts],
    params: Mapping[str, Any] | None = None,
) -> Result[*_Ts]: ...


@overload
def column_rows(
    session: Session, statement: Executable, params: Mapping[str, Any] | None = None
) -> Result[Any]: ...


def column_rows(
    session: Session, statement: Executable, params: Mapping[str, Any] | None = None
) -> Result[Any]:
    """Run ``statement``, a select of columns (no objects), on the session's connection.

    It skips the ORM's work per statement (its compile state and loading context), which
    rows of columns do not need. Alternated in one process, the mix of
    ``bench/clinic_load.py`` cost 4.7-6.4% less CPU per request on PostgreSQL and
    3.5-5.2% less on SQLite (README, "A busy clinic day"). A session that may hold
    unflushed changes is flushed first, as its own ``execute`` would (autoflush).
    """
    if session.autoflush and not session.info.get(READ_ONLY):
        session.flush()
    return session.connection().execute(statement, params)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database (SQLite stores none)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise InvalidValueError("time", "a timezone-aware time (UTC)", value.isoformat())
        value = value.astimezone(UTC)
        # SQLite keeps the text; store it without an offset so that it sorts as text.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table."""

    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
        uuid.UUID: Uuid(),
    }


class _WriterGate:
    """One writer at a time on a SQLite file, in this process (a lock) and across processes
    (``flock`` on a file beside the database, where the platform has it; the file stays, as
    a lock file must, and is opened only while a writer holds it). A writer waits at most
    the busy timeout, as SQLite's own lock would make it, then gets a pool timeout (503)."""

    def __init__(self, database_path: str) -> None:
        self._path = f"{database_path}-writer"
        self._local = threading.Lock()
        self._fd: int | None = None

    def acquire(self) -> None:
        deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
        if not self._local.acquire(timeout=_BUSY_TIMEOUT_MS / 1000):
            raise _busy()
        try:
            if fcntl is not None:
                self._fd = self._flock(deadline)
        except BaseException:
            self._local.release()
            raise

    def _flock(self, deadline: float) -> int:
        # Only one thread per process gets here, so polling is cheap; the waits stay short
        # so that the next writer goes soon after the last one commits.
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            wait_s = 0.0002
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise _busy() from None
                    time.sleep(wait_s)
                    wait_s = min(wait_s * 2, 0.002)
        except BaseException:
            os.close(fd)
            raise

    def release(self) -> None:
        fd, self._fd = self._fd, None
        try:
            if fd is not None:
                os.close(fd)  # and with it the flock
        finally:
            self._local.release()


def _busy() -> PoolTimeoutError:
    return PoolTimeoutError(f"another writer held the database for {_BUSY_TIMEOUT_MS / 1000:g} s")


def _sqlite_engine(url: str) -> Engine:
    memory = url in ("sqlite://", "sqlite:///:memory:")
    engine = create_engine(
        url,
        # Errors and logs never quote a statement's values: they are patient data.
        hide_parameters=True,
        connect_args={"check_same_thread": False, "timeout": _BUSY_TIMEOUT_MS / 1000},
        **({"poolclass": StaticPool} if memory else _POOL),
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        cur.close()

    gate = None if memory or not engine.url.database else _WriterGate(engine.url.database)

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        write = conn.get_execution_options().get(WRITE, False)
        if write and gate is not None and not conn.info.get(_GATED):
            gate.acquire()
            conn.info[_GATED] = True
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        # Back in the pool: committed or rolled back, the next writer may go.
        if gate is not None and record.info.pop(_GATED, False):
            gate.release()

    return engine


_poll = getattr(select, "poll", None)


def _closed_by_server(dbapi_conn: Any) -> bool:
    """Whether the server has closed (or written to) an idle pooled connection.

    An idle connection has nothing to read: the server writes to it unasked only to end it
    (a restart, ``pg_terminate_backend``, its own exit), and the socket then turns
    readable. Polling the socket costs no round trip, where a ping (``pool_pre_ping``) costs
    one at every checkout: a request checks out two or three connections.
    """
    fd = dbapi_conn.fileno()
    if _poll is None:  # Windows: no poll(2); select() takes sockets there
        return bool(select.select([fd], [], [], 0)[0])
    poller = _poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _discard_closed(engine: Engine) -> None:
    """Check each connection as it leaves the pool: one the server has closed, or written
    to, is pinged, and replaced by a new one when the ping fails (after a restart, every
    pooled connection, one checkout each)."""

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        try:
            closed = _closed_by_server(dbapi_conn)
        except Exception:  # the driver has lost the socket already
            closed = True
        if closed:
            try:
                alive = engine.dialect.do_ping(dbapi_conn)
            except Exception:
                alive = False
            if not alive:
                raise DisconnectionError("the server closed this pooled connection")


def _postgresql_engine(url: str) -> Engine:
    """The engine of the writes (and of migrations, backups and the audit check)."""
    engine = create_engine(url, hide_parameters=True, **_POOL)
    _discard_closed(engine)

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        if conn.get_execution_options().get(WRITE, False):
            # A write session's connection is in autocommit (Database.write): its BEGIN
            # goes with the lock, in one round trip, where psycopg would send it alone.
            raw = conn.connection.dbapi_connection
            begin = "BEGIN; " if raw.autocommit else ""
            conn.exec_driver_sql(f"{begin}SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})")

    return engine


def _postgresql_read_engine(url: str) -> Engine:
    """The engine of the reads: its own pool of connections in autocommit whose every
    statement the server runs read-only.

    Under READ COMMITTED, PostgreSQL's default, each statement of a transaction sees the
    rows committed when it starts, so a read gains nothing from a transaction but its
    ``BEGIN`` and its ``COMMIT``: two round trips of a read session's few. A read-only
    connection (``default_transaction_read_only``) refuses a write at once, and a read
    never ends with ``ROLLBACK``, at which psycopg drops the statements it prepared.
    """
    engine = create_engine(url, isolation_level="AUTOCOMMIT", hide_parameters=True, **_POOL)
    _discard_closed(engine)

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_conn: Any, _record: Any) -> None:
        autocommit = dbapi_conn.autocommit
        dbapi_conn.autocommit = True
        dbapi_conn.execute("SET default_transaction_read_only = on")
        dbapi_conn.autocommit = autocommit

    return engine


class Database:
    """An engine and the session factories for reading and for writing.

    ``begin_with_lock``: the engine's begin hook sends a write's ``BEGIN`` with the
    writers' lock (PostgreSQL through psycopg 3, as :meth:`connect` builds it).
    """

    def __init__(
        self, engine: Engine, read_engine: Engine | None = None, *, begin_with_lock: bool = False
    ) -> None:
        self.engine = engine
        # SQLite: the reads' connections are the writes'; a read is a deferred transaction.
        self.read_engine = engine if read_engine is None else read_engine
        self.read = sessionmaker(self.read_engine, expire_on_commit=False, info={READ_ONLY: True})
        writes: dict[str, Any] = {WRITE: True}
        if begin_with_lock:
            # psycopg in autocommit sends no BEGIN of its own: the engine's begin hook
            # sends it with the writers' lock. The transaction is the server's, and ends
            # with COMMIT or ROLLBACK as before: psycopg 3's commit() and rollback() follow
            # the server's transaction status, not the autocommit flag (psycopg2's would
            # do nothing, hence psycopg 3 only, and only on _postgresql_engine's engines).
            writes["isolation_level"] = "AUTOCOMMIT"
        self.write = sessionmaker(engine.execution_options(**writes), expire_on_commit=False)

    @classmethod
    def connect(cls, url: str) -> Database:
        """Open the database at ``url`` (SQLite file, in-memory SQLite or PostgreSQL)."""
        if url.startswith("sqlite"):
            return cls(_sqlite_engine(url))
        if url.startswith("postgresql"):
            engine = _postgresql_engine(url)
            psycopg3 = engine.dialect.driver == "psycopg"
            return cls(engine, _postgresql_read_engine(url), begin_with_lock=psycopg3)
        raise InvalidValueError("database_url", "an sqlite:/// or postgresql+psycopg:// URL", url)

    def session(self) -> Session:
        """A read session (use :func:`ketapain.clinic.audit.unit_of_work` to write)."""
        return self.read()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()
