"""Database engine, declarative base and the column types every record shares.

SQLite is the embedded default: write-ahead log, foreign keys on, ``synchronous=FULL``
(a committed transaction survives a power cut, not only a process crash), and every
write transaction starts with ``BEGIN IMMEDIATE`` so that two writers queue instead of
failing half-way. PostgreSQL is selected by its URL; its write transactions queue the
same way on a transaction-scoped advisory lock, so that the audit trail's hash chain
(:mod:`ketapain.clinic.audit_chain`) grows one link at a time and a check-then-write
(an infusion's version) cannot interleave with another writer's.

>>> db = Database.connect("sqlite://")
>>> with db.engine.connect() as conn:
...     conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
1
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import JSON, DateTime, Engine, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator, Uuid

from ketapain.errors import InvalidValueError

__all__ = ["PG_WRITE_LOCK", "Base", "Database", "UTCDateTime", "utc_now"]

# Wait this long for another writer before giving up (SQLite busy timeout).
_BUSY_TIMEOUT_MS: Final = 30_000


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


def _sqlite_engine(url: str) -> Engine:
    memory = url in ("sqlite://", "sqlite:///:memory:")
    engine = create_engine(
        url,
        # Errors and logs never quote a statement's values: they are patient data.
        hide_parameters=True,
        connect_args={"check_same_thread": False, "timeout": _BUSY_TIMEOUT_MS / 1000},
        **({"poolclass": StaticPool} if memory else {}),
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

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        write = conn.get_execution_options().get("ketapain_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _postgresql_engine(url: str) -> Engine:
    engine = create_engine(url, pool_pre_ping=True, hide_parameters=True)

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        if conn.get_execution_options().get("ketapain_write", False):
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})")

    return engine


class Database:
    """An engine and the session factories for reading and for writing."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.read = sessionmaker(engine, expire_on_commit=False)
        self.write = sessionmaker(
            engine.execution_options(ketapain_write=True), expire_on_commit=False
        )

    @classmethod
    def connect(cls, url: str) -> Database:
        """Open the database at ``url`` (SQLite file, in-memory SQLite or PostgreSQL)."""
        if url.startswith("sqlite"):
            return cls(_sqlite_engine(url))
        if url.startswith("postgresql"):
            return cls(_postgresql_engine(url))
        raise InvalidValueError("database_url", "an sqlite:/// or postgresql+psycopg:// URL", url)

    def session(self) -> Session:
        """A read session (use :func:`ketapain.clinic.audit.unit_of_work` to write)."""
        return self.read()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
