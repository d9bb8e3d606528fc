"""What the record tests share."""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa

from ketapain.clinic.audit import AuditEntry

# The audit table as revision 0002 has it: the model's columns without the chain's.
PRE_CHAIN: Final = sa.table(
    "audit_entries",
    *(
        sa.column(c.name, c.type)
        for c in AuditEntry.__table__.columns
        if c.name not in ("seq", "prev_sha256", "sha256")
    ),
)
