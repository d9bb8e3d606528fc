"""Safety over a course: holds on liver tests and urinary symptoms, and their review;
labs due, cumulative ketamine dose, blood pressure across sessions, oral interactions.

A liver-test result above the hold limit or a positive urinary symptom screen holds
further infusions until a physician reviews it. The review is a :class:`SafetyReview`
row naming the result (or screen) it reviews, the outcome and the reason.

Which result holds: the newest result of each liver test (ALT, AST, bilirubin) that is
above its limit, and the newest positive urinary screen. A review ``resume`` of that
result releases it; ``keep_holding`` keeps it; a newer result above the limit needs a
review of its own. A newer result within the limits does not release a hold by itself:
it is shown with the hold, and a physician releases it (no nurse override).

Before each session of a repeated patient (one whose earlier infusion, of any course,
started more than :data:`SCREEN_WINDOW` before) the urinary screen must be charted in
the :data:`SCREEN_WINDOW` before the start; the pump does not start without it
(:func:`check_start`, called by :func:`ketapain.clinic.pump.pump_event`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar, Final

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from ketapain.clinic import _safety_figures as figures
from ketapain.clinic._safety_figures import (
    LIVER_TESTS,
    SCREEN_WINDOW,
    UrinaryScreenStatus,
    liver_finding,
    urinary_finding,
    urinary_screen_status,
)
from ketapain.clinic._service import check_day, user_id
from ketapain.clinic.audit import Actor, unit_of_work
from ketapain.clinic.courses import Course, course_status, current_plan
from ketapain.clinic.db import Database
from ketapain.clinic.infusions import Infusion
from ketapain.clinic.observations import Score
from ketapain.clinic.patients import LabResult, Patient
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.records import Correctable, current, current_of, get_or_raise
from ketapain.errors import ConflictError, InvalidValueError
from ketapain.protocols import course_safety as rules
from ketapain.protocols.findings import Finding
from ketapain.protocols.guardrails import LimitSet

__all__ = [
    "SCREEN_WINDOW",
    "Hold",
    "ReviewOutcome",
    "SafetyReview",
    "UrinaryScreenStatus",
    "bp_trend",
    "check_start",
    "course_safety",
    "cumulative_dose",
    "holds",
    "labs_due",
    "patient_holds",
    "review_hold",
    "urinary_screen_status",
]


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


# --- Holds --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Hold:
    """A result that holds infusions (or did, until a physician released it): the rule's
    finding, the result or screen, its latest review, and the newest result since."""

    kind: str  # "liver" or "urinary"
    finding: Finding
    lab_result: LabResult | None = None
    score: Score | None = None
    review: SafetyReview | None = None
    newest: LabResult | Score | None = None

    @property
    def standing(self) -> bool:
        """True unless the latest review of the held result says resume."""
        return self.review is None or self.review.outcome != ReviewOutcome.RESUME

    @property
    def state(self) -> str:
        """``awaiting_review``, ``keep_holding`` or ``resume``."""
        return "awaiting_review" if self.review is None else str(self.review.outcome)

    @property
    def when(self) -> datetime:
        """When the held result was collected (or the screen charted)."""
        if self.lab_result is not None:
            return self.lab_result.collected_utc
        assert self.score is not None  # a hold holds a lab result or a screen
        return self.score.measured_utc

    def message(self) -> str:
        """The reason with its date and source, as the pump's refusal says it."""
        source = "" if self.finding.source is None else f" ({self.finding.source.cite()})"
        return f"{self.when:%d %b %Y}: {self.finding.reason}{source}"

    def as_dict(self) -> dict[str, Any]:
        """Kind, reason, source, the result or score, and the review state."""
        return {
            "kind": self.kind,
            "code": self.finding.code,
            "holds": self.standing,
            "state": self.state,
            "reason": self.finding.reason,
            "source": None if self.finding.source is None else self.finding.source.cite(),
            "since_utc": self.when.isoformat(),
            "lab_result": None if self.lab_result is None else self.lab_result.as_dict(),
            "score": None if self.score is None else self.score.as_dict(),
            "review": None if self.review is None else self.review.as_dict(),
            "newest": None if self.newest is None else self.newest.as_dict(),
        }


def _reviews(session: Session, patient_id: uuid.UUID) -> dict[uuid.UUID, SafetyReview]:
    """The latest current review of each result or score reviewed, by its id."""
    rows = session.scalars(
        current_of(SafetyReview, "patient_id", "recorded_utc"), {"patient_id": patient_id}
    )
    out: dict[uuid.UUID, SafetyReview] = {}
    for r in rows:
        out[r.lab_result_id or r.score_id or r.id] = r  # the latest of each wins
    return out


def _liver(labs: Sequence[LabResult], reviews: dict[uuid.UUID, SafetyReview]) -> list[Hold]:
    """Per liver test, the newest result above its limit (``labs`` newest first)."""
    out = []
    for test in LIVER_TESTS:
        of_test = [lab for lab in labs if lab.test == test]
        held = next(((lab, f) for lab in of_test if (f := liver_finding(lab))), None)
        if held is not None:
            lab, finding = held
            newest = of_test[0] if of_test[0] is not lab else None
            out.append(
                Hold(
                    kind="liver",
                    finding=finding,
                    lab_result=lab,
                    review=reviews.get(lab.id),
                    newest=newest,
                )
            )
    return out


def _urinary(scores: Sequence[Score], reviews: dict[uuid.UUID, SafetyReview]) -> list[Hold]:
    """The newest positive urinary screen (``scores`` newest first)."""
    held = next(((s, f) for s in scores if (f := urinary_finding(s))), None)
    if held is None:
        return []
    score, finding = held
    newest = scores[0] if scores[0] is not score else None
    return [
        Hold(
            kind="urinary",
            finding=finding,
            score=score,
            review=reviews.get(score.id),
            newest=newest,
        )
    ]


# Read on every view of a chair and every pump start: built once.
_LIVER_RESULTS: Final = current_of(LabResult, "patient_id", "-collected_utc").where(
    LabResult.test.in_(LIVER_TESTS)
)
_URINARY_SCREENS: Final = current_of(Score, "patient_id", "-measured_utc").where(
    Score.instrument == "urinary_screen"
)


def _all_holds(session: Session, patient_id: uuid.UUID) -> list[Hold]:
    """Every hold of the patient, standing or released."""
    labs = session.scalars(_LIVER_RESULTS, {"patient_id": patient_id}).all()
    scores = session.scalars(_URINARY_SCREENS, {"patient_id": patient_id}).all()
    reviews = _reviews(session, patient_id)
    return _liver(labs, reviews) + _urinary(scores, reviews)


def holds(session: Session, patient_id: uuid.UUID) -> list[Hold]:
    """The holds standing on the patient's infusions (the check at pump start)."""
    return [h for h in _all_holds(session, patient_id) if h.standing]


def patient_holds(session: Session, actor: Actor, patient_id: uuid.UUID) -> list[dict[str, Any]]:
    """The holds standing on the patient's infusions, with reason, source and review state."""
    require(actor, Action.READ_CLINICAL)
    get_or_raise(session, Patient, patient_id, "patient")
    return [h.as_dict() for h in holds(session, patient_id)]


def _is_current(session: Session, model: Any, record_id: uuid.UUID) -> bool:
    return session.scalar(current(model).where(model.id == record_id)) is not None


def review_hold(
    db: Database,
    actor: Actor,
    patient_id: uuid.UUID,
    *,
    outcome: str,
    reason: str,
    lab_result_id: uuid.UUID | None = None,
    score_id: uuid.UUID | None = None,
) -> SafetyReview:
    """Review a held lab result or urinary screen: resume or keep holding, with a reason."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.REVIEW_SAFETY, "only a physician reviews a safety hold")
        get_or_raise(session, Patient, patient_id, "patient")
        row = SafetyReview(
            patient_id=patient_id,
            lab_result_id=lab_result_id,
            score_id=score_id,
            outcome=outcome,
            reason=(reason or "").strip(),
            recorded_by_id=user_id(actor),
        )
        row.check()
        if lab_result_id is not None:
            lab = get_or_raise(session, LabResult, lab_result_id, "lab result")
            if (
                lab.patient_id != patient_id
                or liver_finding(lab) is None
                or not _is_current(session, LabResult, lab.id)
            ):
                raise InvalidValueError(
                    "lab_result_id",
                    "a current liver test of this patient above its hold limit (ALT or AST "
                    "above 3 x ULN, bilirubin above 2 x ULN)",
                    str(lab_result_id),
                )
        if score_id is not None:
            score = get_or_raise(session, Score, score_id, "score")
            if (
                score.patient_id != patient_id
                or score.instrument != "urinary_screen"
                or urinary_finding(score) is None
                or not _is_current(session, Score, score.id)
            ):
                raise InvalidValueError(
                    "score_id",
                    "a current positive urinary symptom screen of this patient",
                    str(score_id),
                )
        session.add(row)
    return row


def check_start(session: Session, infusion: Infusion, *, time_utc: datetime) -> None:
    """Refuse a pump start while a hold stands, or before the urinary screen of a repeat."""
    standing = holds(session, infusion.patient_id)
    if standing:
        why = " ".join(h.message() for h in standing)
        raise ConflictError(
            "hold",
            f"Infusions are on hold. {why} Only a physician's safety review releases a hold.",
        )
    status = urinary_screen_status(session, infusion.patient_id, at=time_utc)
    if status.required and status.screen is None:
        hours = SCREEN_WINDOW.total_seconds() / 3600
        raise ConflictError(
            "urinary_screen",
            "Chart the urinary symptom screen (frequency, urgency, dysuria, haematuria, "
            f"suprapubic pain) first: this patient had an earlier session, and none was "
            f"charted in the {hours:g} h before this start ({rules.CHAN_2022.cite()}).",
        )


# --- The course view ----------------------------------------------------------------


def labs_due(
    session: Session, actor: Actor, course_id: uuid.UUID, *, today: date
) -> list[dict[str, Any]]:
    """The lab tests the course needs: baseline, after the series, weekly while a liver hold
    stands; each done, due, overdue or upcoming, with the reason and source."""
    require(actor, Action.READ_CLINICAL)
    course = get_or_raise(session, Course, course_id, "course")
    return _labs(session, course, today=today, standing=holds(session, course.patient_id))


def _labs(
    session: Session, course: Course, *, today: date, standing: Sequence[Hold]
) -> list[dict[str, Any]]:
    status, _ = course_status(session, course.id)
    liver = [h.when.date() for h in standing if h.kind == "liver"]
    return figures.lab_schedule(
        session,
        course,
        current_plan(session, course.id).plan,
        status,
        hold_since=min(liver, default=None),
        today=today,
    )


def cumulative_dose(
    session: Session,
    actor: Actor,
    course_id: uuid.UUID,
    *,
    today: date,
    limits: LimitSet | None = None,
) -> dict[str, Any]:
    """Ketamine delivered by the course, in the calendar year and the last 365 days (all
    courses), oral prescriptions' planned totals apart; findings against ``limits`` (the
    drug library's and the protocol's by default)."""
    require(actor, Action.READ_CLINICAL)
    course = get_or_raise(session, Course, course_id, "course")
    return figures.doses(session, course, today=today, limits=limits)


def bp_trend(
    session: Session,
    actor: Actor,
    course_id: uuid.UUID,
    *,
    warn_slope_mmhg_per_session: float | None = None,
) -> dict[str, Any]:
    """Pre-infusion and peak blood pressure of each session, the slope and the warnings."""
    require(actor, Action.READ_CLINICAL)
    course = get_or_raise(session, Course, course_id, "course")
    return figures.blood_pressure(
        session, course, warn_slope_mmhg_per_session=warn_slope_mmhg_per_session
    )


def course_safety(
    session: Session, actor: Actor, course_id: uuid.UUID, *, today: date
) -> dict[str, Any]:
    """The course's safety: holds (standing or released), labs due, cumulative dose,
    blood-pressure trend, and oral interactions when oral ketamine is prescribed."""
    require(actor, Action.READ_CLINICAL)
    check_day("today", today)
    course = get_or_raise(session, Course, course_id, "course")
    every = _all_holds(session, course.patient_id)
    standing = [h for h in every if h.standing]
    return {
        "course_id": str(course.id),
        "patient_id": str(course.patient_id),
        "today": today.isoformat(),
        "on_hold": bool(standing),
        "holds": [h.as_dict() for h in every],
        "labs_due": _labs(session, course, today=today, standing=standing),
        "cumulative_dose": figures.doses(session, course, today=today, limits=None),
        "bp_trend": figures.blood_pressure(session, course, warn_slope_mmhg_per_session=None),
        "interactions": figures.oral_interactions(session, course, today=today),
    }
