"""PostgreSQL transactions: reads run on read-only connections in autocommit and keep
their prepared statements; every write transaction takes the writers' advisory lock once,
in the round trip of its ``BEGIN``; a pooled connection the server has ended is replaced
without a ping on every checkout.

psycopg prepares a statement on the server after it has run it 5 times on one
connection, and drops every prepared statement at a ``ROLLBACK``; a read has no
transaction to end, so it keeps them, and its connection refuses a write.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.pool import NullPool
from tests.conftest import statements_sent

from ketapain.clinic.accounts import User
from ketapain.clinic.audit import Actor
from ketapain.clinic.audit_chain import append_links
from ketapain.clinic.db import PG_WRITE_LOCK, Database
from ketapain.clinic.registry import register_patient

# Runs past psycopg's prepare threshold (5), on the one connection a sequential caller gets.
RUNS = 8
_PREPARED = text("SELECT count(*) FROM pg_prepared_statements")
_USERS = select(User.username).order_by(User.username)


pytestmark = pytest.mark.parametrize("db", ["postgresql"], indirect=True)


@contextmanager
def statements_on(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements ``engine`` sends while the block runs, pings included."""
    ping = engine.dialect.do_ping
    with statements_sent(engine) as sent:

        def _ping(dbapi_conn: object) -> bool:
            sent.append("<ping>")
            return ping(dbapi_conn)

        engine.dialect.do_ping = _ping  # type: ignore[method-assign]
        try:
            yield sent
        finally:
            del engine.dialect.do_ping


def statements(db: Database) -> Iterator[Any]:
    """The SQL statements the write engine of ``db`` sends while the block runs."""
    return statements_on(db.engine)


def test_a_read_session_cannot_write(db: Database) -> None:
    with db.read() as session, pytest.raises(DBAPIError, match="read-only transaction"):
        session.execute(text("UPDATE users SET active = active"))


def test_a_write_session_and_a_plain_connection_can_write(db: Database) -> None:
    with db.write() as session, session.begin():
        session.execute(text("UPDATE users SET active = active"))
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE users SET active = active"))


def test_reads_keep_their_prepared_statements(db: Database) -> None:
    names = []
    for _ in range(RUNS):
        with db.read() as session:
            names = list(session.scalars(_USERS))
    with db.read() as session:
        assert session.scalar(_PREPARED), "a read's ROLLBACK dropped the prepared statements"
    assert "nurse" in names


def test_a_read_has_no_transaction(db: Database) -> None:
    """Each statement of a read is a transaction of its own (no BEGIN, no COMMIT): it
    starts when the statement does."""
    with db.read() as session:
        session.scalars(_USERS).all()
        alone = session.scalar(text("SELECT now() = statement_timestamp()"))
    with db.write() as session, session.begin():
        session.scalars(_USERS).all()
        within = session.scalar(text("SELECT now() = statement_timestamp()"))
    assert alone is True
    assert within is False


def test_a_failed_read_leaves_its_connection_serving(db: Database) -> None:
    for _ in range(RUNS):
        with db.read() as session:
            session.scalars(_USERS).all()
    with db.read() as session, pytest.raises(ProgrammingError):
        session.execute(text("SELECT no_such_column FROM users"))
    with db.read() as session:
        assert "nurse" in session.scalars(_USERS).all()
        # No ROLLBACK followed the failure: the prepared statements are still there.
        assert session.scalar(_PREPARED)


def _end_backend(db: Database, pid: int) -> None:
    """End the server process of a pooled connection, and wait until it has exited."""
    outside = create_engine(db.engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with outside.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        alive = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
        deadline = time.monotonic() + 10
        while other.scalar(alive, {"pid": pid}) and time.monotonic() < deadline:
            time.sleep(0.01)
    outside.dispose()


def test_a_read_whose_connection_was_ended_gives_way_to_the_next(db: Database) -> None:
    """The server ends a pooled read connection (a restart, an administrator): the next
    read is served on a new one."""
    with db.read() as session:
        pid = session.scalar(text("SELECT pg_backend_pid()"))
    _end_backend(db, pid)
    with db.read() as session:
        assert "nurse" in session.scalars(_USERS).all()
        assert session.scalar(text("SELECT pg_backend_pid()")) != pid


def test_a_write_whose_connection_was_ended_gives_way_to_the_next(
    db: Database, staff: dict[str, Actor]
) -> None:
    with db.write() as session, session.begin():
        pid = session.scalar(text("SELECT pg_backend_pid()"))
    _end_backend(db, pid)
    register_patient(db, staff["front_desk"], mrn="PG-ENDED-1", family_name="Ended",
                     given_name="Write", birth_date=date(1970, 1, 1), sex="female")  # fmt: skip
    with db.write() as session, session.begin():
        assert session.scalar(text("SELECT pg_backend_pid()")) != pid


def test_an_idle_connection_is_not_pinged(db: Database) -> None:
    """A connection leaves the pool without a round trip: only the statements run."""
    for _ in range(2):
        with db.read() as session:
            session.scalars(_USERS).all()
    with statements_on(db.read_engine) as sent, db.read() as session:
        session.scalars(_USERS).all()
    assert len(sent) == 1


def test_a_write_begins_with_its_lock_in_one_statement(db: Database) -> None:
    with statements(db) as sent, db.write() as session, session.begin():
        session.scalars(_USERS).all()
        within = session.scalar(text("SELECT now() = statement_timestamp()"))
    assert sent[0] == f"BEGIN; SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})"
    assert within is False  # a transaction: it began before this statement


def test_a_failed_write_ends_its_transaction_and_frees_the_lock(db: Database) -> None:
    with pytest.raises(ProgrammingError), db.write() as session, session.begin():
        session.execute(text("SELECT no_such_column FROM users"))
    with db.engine.connect() as other:
        free = other.scalar(text(f"SELECT pg_try_advisory_lock({PG_WRITE_LOCK})"))
        other.execute(text(f"SELECT pg_advisory_unlock({PG_WRITE_LOCK})"))
    assert free is True
    with db.write() as session, session.begin():
        assert "nurse" in session.scalars(_USERS).all()


def _locks(sent: list[str]) -> int:
    return sum(f"pg_advisory_xact_lock({PG_WRITE_LOCK})" in s for s in sent)


def test_a_write_takes_the_writers_lock_once(db: Database, staff: dict[str, Actor]) -> None:
    with statements(db) as sent:
        register_patient(db, staff["front_desk"], mrn="PG-LOCK-1", family_name="Lock",
                         given_name="Once", birth_date=date(1970, 1, 1), sex="female")  # fmt: skip
    assert _locks(sent) == 1
    assert any(s.startswith("INSERT INTO audit_entries") for s in sent)


def test_a_chain_link_outside_a_write_session_takes_the_lock(db: Database) -> None:
    row = {"time_utc": "2026-11-22T09:00:00.000000+00:00", "actor_id": None,
           "actor_username": "system", "actor_role": "system", "action": "note",
           "entity": "test", "entity_id": "1", "before": None, "after": None,
           "detail": None}  # fmt: skip
    with statements(db) as sent, db.engine.connect() as conn, conn.begin() as tx:
        append_links(conn, [row])
        tx.rollback()  # the entry itself was not inserted: leave the chain as it was
    assert _locks(sent) == 1
