"""The series calendar as booked: missed and moved sessions on top of the plan's dates.

A plan puts each session on a date (weekends off where the protocol says so). What
happens at the desk is kept as :class:`SessionChange` rows, appended, never edited: a
session missed, or moved to another day and time. The calendar in force is the plan's
dates with the latest change of each session applied.
"""

from __future__ import annotations

import uuid
from datetime import date, time
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ketapain.clinic._service import check_range
from ketapain.clinic.records import Correctable
from ketapain.errors import InvalidValueError

__all__ = ["ChangeKind", "SessionChange"]


class ChangeKind(StrEnum):
    """What happened to a booked session."""

    MISSED = "missed"
    MOVED = "moved"


class SessionChange(Correctable):
    """A session of a course missed, or moved to ``new_date`` (and ``new_start``)."""

    __tablename__ = "session_changes"
    __copy_on_correct__: ClassVar = (
        "course_id",
        "session_number",
        "kind",
        "new_date",
        "new_start",
        "reason",
    )

    course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courses.id"), index=True)
    session_number: Mapped[int]
    kind: Mapped[ChangeKind] = mapped_column(String(10))
    new_date: Mapped[date | None] = mapped_column(default=None)
    new_start: Mapped[time | None] = mapped_column(default=None)
    reason: Mapped[str] = mapped_column(Text)

    def check(self) -> None:
        if self.kind not in set(ChangeKind):
            raise InvalidValueError("kind", f"one of {', '.join(ChangeKind)}", self.kind)
        check_range("session_number", self.session_number, 1, 1000)
        if self.kind == ChangeKind.MOVED and self.new_date is None:
            raise InvalidValueError("new_date", "the day the session moves to", None)
        if self.kind == ChangeKind.MISSED and (self.new_date or self.new_start):
            raise InvalidValueError("new_date", "none for a missed session", self.new_date)
        if not (self.reason or "").strip():
            raise InvalidValueError("reason", "why (a non-empty text)", self.reason)

    def as_dict(self) -> dict[str, Any]:
        """Session, what happened, the new day and time, the reason."""
        return {
            "id": str(self.id),
            "session_number": self.session_number,
            "kind": str(self.kind),
            "new_date": None if self.new_date is None else self.new_date.isoformat(),
            "new_start": None
            if self.new_start is None
            else self.new_start.isoformat(timespec="minutes"),
            "reason": self.reason,
            "recorded_utc": self.recorded_utc.isoformat(),
        }
