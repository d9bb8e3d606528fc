"""Safety over a course: holds on liver tests and urinary symptoms, and their review.

A liver-test result above the hold limit or a positive urinary symptom screen holds
further infusions until a physician reviews it. The review is a :class:`SafetyReview`
row naming the result (or screen) it reviews, the outcome and the reason.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ketapain.clinic.records import Correctable
from ketapain.errors import InvalidValueError

__all__ = ["ReviewOutcome", "SafetyReview"]


class ReviewOutcome(StrEnum):
    """What the reviewing physician decided."""

    RESUME = "resume"
    KEEP_HOLDING = "keep_holding"


class SafetyReview(Correctable):
    """A physician's review of a hold: the lab result or score held on, outcome, reason."""

    __tablename__ = "safety_reviews"
    __copy_on_correct__: ClassVar = (
        "patient_id",
        "lab_result_id",
        "score_id",
        "outcome",
        "reason",
    )

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    lab_result_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("lab_results.id"), default=None, index=True
    )
    score_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("scores.id"), default=None, index=True
    )
    outcome: Mapped[ReviewOutcome] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)

    def check(self) -> None:
        if (self.lab_result_id is None) == (self.score_id is None):
            raise InvalidValueError(
                "lab_result_id", "exactly one of lab_result_id and score_id", None
            )
        if self.outcome not in set(ReviewOutcome):
            raise InvalidValueError("outcome", f"one of {', '.join(ReviewOutcome)}", self.outcome)
        if not (self.reason or "").strip():
            raise InvalidValueError("reason", "why (a non-empty text)", self.reason)

    def as_dict(self) -> dict[str, Any]:
        """What was reviewed, the outcome, the reason, who and when."""
        return {
            "id": str(self.id),
            "lab_result_id": None if self.lab_result_id is None else str(self.lab_result_id),
            "score_id": None if self.score_id is None else str(self.score_id),
            "outcome": str(self.outcome),
            "reason": self.reason,
            "reviewed_by": str(self.recorded_by_id),
            "reviewed_utc": self.recorded_utc.isoformat(),
        }
