"""The audit trail and the unit of work every write goes through.

Each write commits with its audit entries in one transaction: who (user id, name, role),
when (UTC), what (table and row id, create / correct / update / delete) and the values
before and after. Entries are written by session hooks, so no service can forget them;
a flush with changes and no actor is refused. A refused request (a role rule, a failed
login) is audited in a transaction of its own, since the request's is rolled back.

>>> from sqlalchemy import func
>>> from ketapain.clinic.db import Database
>>> db = Database.connect("sqlite://")
>>> Base.metadata.create_all(db.engine)
>>> with db.session() as s:
...     s.scalar(select(func.count()).select_from(AuditEntry))
0
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, ClassVar, Final

from sqlalchemy import BigInteger, Integer, String, Text, event, insert, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, attributes, mapped_column

from ketapain.clinic.audit_chain import (
    CONTENT,
    AuditChainHead,
    Verification,
    append_links,
    verify_chain,
)
from ketapain.clinic.db import Base, Database, UTCDateTime, utc_now
from ketapain.clinic.records import Record
from ketapain.errors import (
    AccessDeniedError,
    AppendOnlyError,
    ConflictError,
    InvalidValueError,
    RecordError,
)

__all__ = [
    "SYSTEM",
    "Actor",
    "AuditEntry",
    "add_event",
    "list_entries",
    "reading",
    "record_event",
    "snapshot",
    "unit_of_work",
    "verify_trail",
]

_REDACTED: Final = "[redacted]"


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who is acting: a user (id, name, role) or the system itself."""

    user_id: uuid.UUID | None
    username: str
    role: str


SYSTEM: Final = Actor(user_id=None, username="system", role="system")


class AuditEntry(Base):
    """One audited event; never updated or deleted; a link of the hash chain
    (:mod:`ketapain.clinic.audit_chain`)."""

    __tablename__ = "audit_entries"
    __append_only__: ClassVar[bool] = True

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    time_utc: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, index=True)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)
    actor_username: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(40), index=True)
    entity: Mapped[str] = mapped_column(String(80), index=True)
    entity_id: Mapped[str | None] = mapped_column(String(80), default=None, index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    seq: Mapped[int | None] = mapped_column(BigInteger, default=None, unique=True, index=True)
    prev_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form served by the API."""
        return {
            "id": self.id,
            "time_utc": self.time_utc.isoformat(),
            "actor": {"id": _json(self.actor_id), "username": self.actor_username},
            "role": self.actor_role,
            "action": self.action,
            "entity": self.entity,
            "entity_id": self.entity_id,
            "before": self.before,
            "after": self.after,
            "detail": self.detail,
            "seq": self.seq,
            "sha256": self.sha256,
        }


def _json(value: object) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def snapshot(obj: Base) -> dict[str, Any]:
    """The row's column values as JSON, with secrets (password and token hashes) hidden."""
    redact = getattr(obj, "__audit_redact__", ())
    return {
        attr.key: _REDACTED if attr.key in redact else _json(getattr(obj, attr.key))
        for attr in inspect(type(obj)).column_attrs
    }


def _entity_id(obj: Base) -> str | None:
    # New rows have no identity key yet in after_flush; their primary key values are set.
    key = inspect(type(obj)).primary_key_from_instance(obj)
    return None if any(k is None for k in key) else ",".join(str(_json(k)) for k in key)


def _row(actor: Actor, action: str, obj: Base, **kw: Any) -> dict[str, Any]:
    return {
        "time_utc": utc_now(),
        "actor_id": actor.user_id,
        "actor_username": actor.username,
        "actor_role": actor.role,
        "action": action,
        "entity": obj.__tablename__,
        "entity_id": _entity_id(obj),
        "before": kw.get("before"),
        "after": kw.get("after"),
        "detail": kw.get("detail"),
    }


@event.listens_for(Session, "before_flush")
def _guard(session: Session, _ctx: Any, _instances: Any) -> None:
    """Refuse a write without an actor, edits and deletes of append-only rows; check every
    new record. All before any statement is sent."""
    if session.new or session.deleted or any(session.is_modified(o) for o in session.dirty):
        _actor(session)
    for obj in session.dirty:
        if getattr(obj, "__append_only__", False) and session.is_modified(obj):
            raise AppendOnlyError(
                f"{obj.__tablename__} rows are append-only: add a correction instead of editing"
            )
    for obj in session.deleted:
        if getattr(obj, "__append_only__", False):
            raise AppendOnlyError(f"{obj.__tablename__} rows are append-only and never deleted")
    for obj in (*session.new, *session.dirty):
        if isinstance(obj, Base):
            _check_times(obj)
    for obj in session.new:
        if isinstance(obj, Record):
            obj.check()


def _check_times(obj: Base) -> None:
    """Refuse a naive time here, naming the field (the column type would raise later)."""
    for attr in inspect(type(obj)).column_attrs:
        value = getattr(obj, attr.key)
        if isinstance(value, datetime) and value.tzinfo is None:
            raise InvalidValueError(attr.key, "a timezone-aware time (UTC)", value.isoformat())


@event.listens_for(Session, "after_flush")
def _audit(session: Session, _ctx: Any) -> None:
    """Write the audit entries of this flush in the same transaction."""
    rows: list[dict[str, Any]] = []
    for obj in session.new:
        if isinstance(obj, Base) and not isinstance(obj, AuditEntry):
            corrects = getattr(obj, "corrects_id", None)
            before = None
            if corrects is not None:
                old = session.get(type(obj), corrects)
                before = None if old is None else snapshot(old)
            action = "correct" if corrects is not None else "create"
            rows.append(_row(_actor(session), action, obj, before=before, after=snapshot(obj)))
    for obj in session.dirty:
        if isinstance(obj, Base) and session.is_modified(obj):
            before, after = _changes(obj)
            if after:
                rows.append(_row(_actor(session), "update", obj, before=before, after=after))
    for obj in session.deleted:
        if isinstance(obj, Base):
            rows.append(_row(_actor(session), "delete", obj, before=snapshot(obj)))
    if rows:
        _append(session, rows)


def _append(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert audit rows as the next links of the hash chain."""
    conn = session.connection()
    append_links(conn, rows)
    conn.execute(_INSERT_ENTRY, rows)


_INSERT_ENTRY: Final = insert(AuditEntry)


def _actor(session: Session) -> Actor:
    actor = session.info.get("actor")
    if not isinstance(actor, Actor):
        raise RecordError("a write needs an actor: use ketapain.clinic.audit.unit_of_work")
    return actor


def _changes(obj: Base) -> tuple[dict[str, Any], dict[str, Any]]:
    redact = getattr(obj, "__audit_redact__", ())
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for attr in inspect(type(obj)).column_attrs:
        hist = attributes.get_history(obj, attr.key)
        if hist.added or hist.deleted:
            old = hist.deleted[0] if hist.deleted else None
            new = hist.added[0] if hist.added else None
            before[attr.key] = _REDACTED if attr.key in redact else _json(old)
            after[attr.key] = _REDACTED if attr.key in redact else _json(new)
    return before, after


def record_event(
    db: Database,
    actor: Actor,
    *,
    action: str,
    entity: str,
    entity_id: str | None = None,
    detail: str | None = None,
) -> None:
    """Audit an event in a transaction of its own (a refusal, a failed login, a read)."""
    with db.write() as session, session.begin():
        add_event(session, actor, action=action, entity=entity, entity_id=entity_id, detail=detail)


def add_event(
    session: Session,
    actor: Actor,
    *,
    action: str,
    entity: str,
    entity_id: str | None = None,
    detail: str | None = None,
) -> None:
    """Audit an event in the session's transaction (it commits or rolls back with it)."""
    row = {
        "time_utc": utc_now(),
        "actor_id": actor.user_id,
        "actor_username": actor.username,
        "actor_role": actor.role,
        "action": action,
        "entity": entity,
        "entity_id": entity_id,
        "before": None,
        "after": None,
        "detail": detail,
    }
    _append(session, [row])


@contextmanager
def unit_of_work(db: Database, actor: Actor) -> Iterator[Session]:
    """A write transaction: the changes and their audit entries commit together or not at all.

    A refusal by a role rule rolls the transaction back and is audited on its own.
    """
    session = db.write()
    session.info["actor"] = actor
    try:
        with session.begin():
            yield session
    except AccessDeniedError as err:
        _audit_denial(db, actor, err)
        raise
    except IntegrityError as err:
        # A constraint the services did not foresee (two writers taking the same event
        # number, a reference to a missing row): nothing was written.
        raise ConflictError("record", f"the database refused the write: {err.orig}") from None
    finally:
        session.close()


def _audit_denial(db: Database, actor: Actor, err: AccessDeniedError) -> None:
    if not err.audited:
        record_event(db, actor, action="denied", entity=err.action, detail=str(err))
        err.audited = True


@contextmanager
def reading(db: Database, actor: Actor) -> Iterator[Session]:
    """A read-only session; a refusal by a role rule is audited."""
    session = db.read()
    session.info["actor"] = actor
    try:
        yield session
        if session.new or session.dirty or session.deleted:
            raise RecordError("a read session may not write; use unit_of_work")
    except AccessDeniedError as err:
        session.rollback()
        _audit_denial(db, actor, err)
        raise
    finally:
        session.close()


def list_entries(
    session: Session,
    *,
    entity: str | None = None,
    entity_id: str | None = None,
    actor_username: str | None = None,
    action: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> Sequence[AuditEntry]:
    """Audit entries in the order written, filtered, at most ``limit`` after ``after_id``."""
    query = select(AuditEntry).where(AuditEntry.id > after_id).order_by(AuditEntry.id)
    if entity is not None:
        query = query.where(AuditEntry.entity == entity)
    if entity_id is not None:
        query = query.where(AuditEntry.entity_id == entity_id)
    if actor_username is not None:
        query = query.where(AuditEntry.actor_username == actor_username)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    return session.scalars(query.limit(limit)).all()


def verify_trail(session: Session, *, anchors: dict[int, str] | None = None) -> Verification:
    """Check the whole audit trail's hash chain (``ketapain audit verify``).

    The entries and the head are read in one snapshot (on PostgreSQL a repeatable-read
    transaction), so that a write committed meanwhile is not taken for a break.
    ``session`` must not have begun a transaction yet.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    columns = [AuditEntry.id, AuditEntry.seq, AuditEntry.prev_sha256, AuditEntry.sha256]
    columns += [getattr(AuditEntry, name) for name in CONTENT]
    # Chained entries in chain order, then any entry inserted around the chain.
    query = select(*columns).order_by(AuditEntry.seq.is_(None), AuditEntry.seq, AuditEntry.id)
    rows = session.execute(query.execution_options(yield_per=2000)).mappings()
    head = session.execute(
        select(AuditChainHead.seq, AuditChainHead.sha256).where(AuditChainHead.id == 1)
    ).first()
    return verify_chain(rows, None if head is None else (head.seq, head.sha256), anchors=anchors)
