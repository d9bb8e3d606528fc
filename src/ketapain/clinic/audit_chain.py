"""The audit trail as a hash chain: a later edit, deletion or insertion is detected.

Every audit entry carries a sequence number ``seq`` (1, 2, 3, ... with no gaps), the
SHA-256 of the entry before it (``prev_sha256``) and its own SHA-256 (``sha256``), taken
over a canonical JSON form of its content and ``prev_sha256``. One row,
``audit_chain_head``, holds the newest ``seq`` and ``sha256``; it is updated in the
transaction that appends. The database's triggers already refuse UPDATE and DELETE on the
audit table; the chain catches what bypasses them (a dropped trigger, an edited file).

Writers are serialised while they append: SQLite's ``BEGIN IMMEDIATE`` does it, and on
PostgreSQL every write transaction takes a transaction-scoped advisory lock when it
begins, so two transactions never link to the same predecessor.

>>> row = {"time_utc": "2026-11-22T09:00:00.000000+00:00", "actor_id": None,
...        "actor_username": "system", "actor_role": "system", "action": "create",
...        "entity": "patients", "entity_id": "1", "before": None, "after": {"a": 1},
...        "detail": None}
>>> link(row, seq=1, prev_sha256=GENESIS) == entry_sha256(row, seq=1, prev_sha256=GENESIS)
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import BigInteger, Integer, String, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from ketapain.clinic.db import PG_WRITE_LOCK, WRITE, Base
from ketapain.errors import InvalidValueError

__all__ = [
    "CONTENT",
    "GENESIS",
    "AuditChainHead",
    "Problem",
    "Verification",
    "append_links",
    "entry_sha256",
    "link",
    "parse_anchor",
    "verify_chain",
]

# The predecessor of the first entry.
GENESIS: Final = "0" * 64
# The columns an entry's hash covers, in this order (version 1 of the canonical form).
CONTENT: Final = (
    "time_utc",
    "actor_id",
    "actor_username",
    "actor_role",
    "action",
    "entity",
    "entity_id",
    "before",
    "after",
    "detail",
)
# At most this many problems are listed; the rest are counted.
_MAX_LISTED: Final = 100


class AuditChainHead(Base):
    """The newest link of the audit chain (one row, id 1)."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if value is None or isinstance(value, str | int | float | bool | dict | list):
        return value
    return str(value)  # a UUID


def entry_sha256(row: Mapping[Any, Any], *, seq: int, prev_sha256: str) -> str:
    """The SHA-256 (hex) of an entry: its sequence number, its predecessor's hash and its
    content as canonical JSON (sorted keys, no spaces, UTF-8, times in UTC to the µs)."""
    content = {key: _canonical(row.get(key)) for key in CONTENT}
    payload = {"v": 1, "seq": seq, "prev_sha256": prev_sha256, **content}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def link(row: dict[str, Any], *, seq: int, prev_sha256: str) -> str:
    """Give ``row`` its place in the chain; return its hash."""
    digest = entry_sha256(row, seq=seq, prev_sha256=prev_sha256)
    row.update(seq=seq, prev_sha256=prev_sha256, sha256=digest)
    return digest


# Run by every write: built once.
_HEAD: Final = select(AuditChainHead.seq, AuditChainHead.sha256).where(AuditChainHead.id == 1)
_FIRST_HEAD: Final = insert(AuditChainHead).values(id=1)
_MOVE_HEAD: Final = update(AuditChainHead).where(AuditChainHead.id == 1)


def append_links(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Link ``rows`` after the chain's head and move the head, in ``conn``'s transaction.

    The caller inserts the rows in the same transaction.
    """
    if conn.dialect.name == "postgresql" and not conn.get_execution_options().get(WRITE):
        # A write transaction took it when it began; any other takes it here.
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})")
    head = conn.execute(_HEAD).first()
    seq, prev = (0, GENESIS) if head is None else (head.seq, head.sha256)
    for row in rows:
        seq += 1
        prev = link(row, seq=seq, prev_sha256=prev)
    conn.execute(_FIRST_HEAD if head is None else _MOVE_HEAD, {"seq": seq, "sha256": prev})


@dataclass(frozen=True, slots=True)
class Problem:
    """One break of the chain: the entry (sequence number and id) and what is wrong."""

    kind: str
    message: str
    seq: int | None = None
    entry_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "seq": self.seq, "id": self.entry_id}


@dataclass(slots=True)
class Verification:
    """The outcome of :func:`verify_chain`."""

    entries: int = 0
    head_seq: int = 0
    head_sha256: str = GENESIS
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0

    @property
    def intact(self) -> bool:
        return self.problem_count == 0

    def add(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < _MAX_LISTED:
            self.problems.append(problem)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``ketapain audit verify --format json``."""
        return {
            "intact": self.intact,
            "entries": self.entries,
            "head": {"seq": self.head_seq, "sha256": self.head_sha256},
            "problem_count": self.problem_count,
            "problems": [p.as_dict() for p in self.problems],
        }


def verify_chain(
    entries: Iterable[Mapping[Any, Any]],
    head: tuple[int, str] | None,
    *,
    anchors: Mapping[int, str] | None = None,
) -> Verification:
    """Check entries given in ``seq`` order (entries without one last) against each other,
    the head and any ``anchors`` (seq -> sha256 recorded elsewhere, e.g. in a report)."""
    out = Verification()
    anchors = dict(anchors or {})
    expected_seq, prev = 1, GENESIS
    for row in entries:
        out.entries += 1
        seq, entry_id = row.get("seq"), row.get("id")
        if seq is None:
            out.add(
                Problem(
                    "unchained", "an entry outside the chain (inserted around it)", None, entry_id
                )
            )
            continue
        if seq > expected_seq:
            gap = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq} to {seq - 1}"
            out.add(Problem("missing", f"entries {gap} are missing (deleted)", seq, entry_id))
        if row.get("prev_sha256") != prev:
            out.add(Problem("broken", "does not link to the entry before it", seq, entry_id))
        digest = entry_sha256(row, seq=seq, prev_sha256=str(row.get("prev_sha256")))
        if digest != row.get("sha256"):
            out.add(
                Problem("altered", "its content no longer matches its hash (edited)", seq, entry_id)
            )
        if seq in anchors and anchors.pop(seq) != row.get("sha256"):
            out.add(Problem("anchor", "differs from the hash recorded for it", seq, entry_id))
        expected_seq, prev = seq + 1, str(row.get("sha256"))
        out.head_seq, out.head_sha256 = seq, prev
    for seq in anchors:
        out.add(Problem("anchor", "an anchored entry is not in the trail", seq, None))
    if head is None:
        if out.head_seq:
            out.add(Problem("head", "the chain's head row is missing", None, None))
    elif head != (out.head_seq, out.head_sha256):
        out.add(
            Problem(
                "head",
                f"the head is at entry {head[0]} but the trail ends at entry {out.head_seq}: "
                "the newest entries were deleted or the head was edited",
                head[0],
                None,
            )
        )
    return out


def parse_anchor(text: str) -> tuple[int, str]:
    """``SEQ:SHA256`` as written by ``ketapain audit verify`` (the head it printed)."""
    seq, _, digest = text.partition(":")
    seq, digest = seq.strip(), digest.strip().lower()
    if (
        not (seq.isascii() and seq.isdigit())
        or len(digest) != 64
        or any(c not in "0123456789abcdef" for c in digest)
    ):
        raise InvalidValueError("anchor", "SEQ:SHA256, e.g. 1042:9f86d0...(64 hex digits)", text)
    return int(seq), digest
