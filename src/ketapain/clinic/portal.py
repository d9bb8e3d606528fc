"""The patient portal: an expiring link through which a patient submits questionnaires.

A nurse or physician issues a link for one patient; the patient opens it without an
account and submits the scores that are due (pain diary, PEG, BPI, PGIC, PHQ-9, GAD-7,
quality of life, cognitive complaints). Only the SHA-256 of the link's secret is stored;
a link expires and can be revoked.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ketapain.clinic.db import Base, utc_now

__all__ = ["PatientLink"]


class PatientLink(Base):
    """A link for one patient: the hash of its secret, who issued it, when it expires."""

    __tablename__ = "patient_links"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    issued_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_utc: Mapped[datetime] = mapped_column(default=utc_now)
    expires_utc: Mapped[datetime]
    last_used_utc: Mapped[datetime | None] = mapped_column(default=None)
    revoked_utc: Mapped[datetime | None] = mapped_column(default=None)
