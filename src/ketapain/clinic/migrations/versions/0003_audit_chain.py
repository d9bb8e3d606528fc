"""The audit trail becomes a hash chain: every entry gets a sequence number, its
predecessor's SHA-256 and its own; one head row holds the newest link.

Existing entries are linked in the order they were written (by id). The append-only
triggers of the audit table are lifted for that one update and put back.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 09:00:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from ketapain.clinic.audit_chain import GENESIS, link
from ketapain.clinic.db import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TABLE = "audit_entries"
_MESSAGE = "append-only: clinical records and the audit trail are never edited or deleted"


def _drop_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {_TABLE}_append_only ON {_TABLE}")
    else:
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {_TABLE}_no_{verb}")


def _create_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":  # the function comes with 0001
        op.execute(
            f"CREATE TRIGGER {_TABLE}_append_only BEFORE UPDATE OR DELETE ON {_TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION ketapain_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {_TABLE}_no_{verb.lower()} BEFORE {verb} ON {_TABLE} "
                f"BEGIN SELECT RAISE(ABORT, '{_TABLE}: {_MESSAGE}'); END"
            )


def _link_existing() -> tuple[int, str]:
    """Link the entries already written, oldest first; return the head (seq, sha256)."""
    bind = op.get_bind()
    entries = sa.table(
        _TABLE,
        sa.column("id", sa.BigInteger()),
        sa.column("seq", sa.BigInteger()),
        sa.column("prev_sha256", sa.String()),
        sa.column("sha256", sa.String()),
        sa.column("time_utc", UTCDateTime()),
        sa.column("actor_id", sa.Uuid()),
        sa.column("actor_username", sa.String()),
        sa.column("actor_role", sa.String()),
        sa.column("action", sa.String()),
        sa.column("entity", sa.String()),
        sa.column("entity_id", sa.String()),
        sa.column("before", sa.JSON()),
        sa.column("after", sa.JSON()),
        sa.column("detail", sa.Text()),
    )
    seq, prev = 0, GENESIS
    updates: list[dict[str, Any]] = []
    for row in bind.execute(sa.select(entries).order_by(entries.c.id)).mappings():
        seq, before = seq + 1, prev
        prev = link(dict(row), seq=seq, prev_sha256=before)
        updates.append({"b_id": row["id"], "b_seq": seq, "b_prev": before, "b_sha": prev})
    if updates:
        bind.execute(
            entries.update()
            .where(entries.c.id == sa.bindparam("b_id"))
            .values(
                seq=sa.bindparam("b_seq"),
                prev_sha256=sa.bindparam("b_prev"),
                sha256=sa.bindparam("b_sha"),
            ),
            updates,
        )
    return seq, prev


def upgrade() -> None:
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.add_column(_TABLE, sa.Column("seq", sa.BigInteger(), nullable=True))
    op.add_column(_TABLE, sa.Column("prev_sha256", sa.String(length=64), nullable=True))
    op.add_column(_TABLE, sa.Column("sha256", sa.String(length=64), nullable=True))
    op.create_index("ix_audit_entries_seq", _TABLE, ["seq"], unique=True)
    _drop_guards()
    seq, sha256 = _link_existing()
    _create_guards()
    head = sa.table(
        "audit_chain_head",
        sa.column("id", sa.Integer()),
        sa.column("seq", sa.BigInteger()),
        sa.column("sha256", sa.String()),
    )
    op.get_bind().execute(head.insert().values(id=1, seq=seq, sha256=sha256))


def downgrade() -> None:
    _drop_guards()
    op.drop_index("ix_audit_entries_seq", table_name=_TABLE)
    with op.batch_alter_table(_TABLE, schema=None) as batch_op:
        batch_op.drop_column("sha256")
        batch_op.drop_column("prev_sha256")
        batch_op.drop_column("seq")
    _create_guards()
    op.drop_table("audit_chain_head")
