"""Continue or stop after the test infusions: the recommendation from the patient's own
scores, as the physician sees it before signing the decision.

The figures come from the chart, never typed in: the pre-course baseline NRS of the plan,
the NRS charted after each session up to the decision point, the side effects, the
highest dissociation (CADSS-6) and deepest sedation (MOAA/S) charted during those
sessions, and the latest PGIC. The rule is :func:`ketapain.protocols.continuation.
recommend_continuation`, with the response threshold of the protocol's decision point
(30% by default, Farrar 2001). A signed decision keeps the recommendation and its inputs
(:func:`ketapain.clinic.treatment.decide`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ketapain.clinic.audit import Actor
from ketapain.clinic.courses import Course, current_plan
from ketapain.clinic.infusions import Infusion
from ketapain.clinic.observations import Score, SideEffect
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.progress import course_progress
from ketapain.clinic.records import current, get_or_raise
from ketapain.errors import InvalidValueError
from ketapain.protocols.continuation import recommend_continuation
from ketapain.protocols.library import get_protocol
from ketapain.protocols.schema import RESPONSE_THRESHOLD

__all__ = ["continuation"]


def _threshold(protocol_name: str, after_session: int) -> float:
    try:
        protocol = get_protocol(protocol_name)
    except (InvalidValueError, OSError):  # a plan kept from a protocol file since removed
        return RESPONSE_THRESHOLD
    return protocol.response_threshold(after_session)


def _inputs(
    session: Session,
    course: Course,
    infusion_ids: list[uuid.UUID],
    first_session_utc: datetime | None,
) -> dict[str, Any]:
    effects = [
        (e.effect, e.severity)
        for e in session.scalars(
            current(SideEffect)
            .where(SideEffect.infusion_id.in_(infusion_ids))
            .order_by(SideEffect.observed_utc)
        )
    ]

    def extreme(instrument: str, agg: Any) -> float | None:
        value = session.scalar(
            current(Score)
            .where(Score.infusion_id.in_(infusion_ids), Score.instrument == instrument)
            .with_only_columns(agg(Score.value))
        )
        return None if value is None else float(value)

    pgic = None
    if first_session_utc is not None:
        pgic = session.scalar(
            current(Score)
            .where(
                Score.patient_id == course.patient_id,
                Score.instrument == "pgic",
                Score.measured_utc >= first_session_utc,
            )
            .order_by(Score.measured_utc.desc())
            .limit(1)
            .with_only_columns(Score.value)
        )
    return {
        "side_effects": effects,
        "max_cadss6": extreme("cadss6", func.max),
        "min_moaas": extreme("moaas", func.min),
        "pgic": None if pgic is None else int(pgic),
    }


def continuation(
    session: Session,
    actor: Actor,
    course_id: uuid.UUID,
    *,
    after_session: int | None = None,
    progress: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The continue/stop recommendation after ``after_session`` (default: the plan's first
    decision point), with the figures and the inputs it was computed from. ``progress`` is
    the course's :func:`course_progress`, when the caller has read it already."""
    require(actor, Action.READ_CLINICAL)
    course = get_or_raise(session, Course, course_id, "course")
    plan = current_plan(session, course_id).plan
    points = [int(dp["after_session"]) for dp in plan["decision_points"]]
    n = after_session if after_session is not None else (points[0] if points else None)
    planned = len(plan["sessions"])
    if n is None or isinstance(n, bool) or not 1 <= n <= planned:
        raise InvalidValueError("after_session", f"a session of the plan, 1 to {planned}", n)
    progress = progress or course_progress(session, actor, course_id)
    rows = [r for r in progress["sessions"] if r["number"] <= n and r["infusion_id"]]
    session_nrs = [float(r["nrs_after"]) for r in rows if r["nrs_after"] is not None]
    infusion_ids = list(
        session.scalars(
            select(Infusion.id).where(Infusion.course_id == course_id, Infusion.session_number <= n)
        )
    )
    starts = [datetime.fromisoformat(r["started_utc"]) for r in rows if r["started_utc"]]
    first = min(starts) if starts else None
    inputs = _inputs(session, course, infusion_ids, first)
    baseline = float(plan["baseline_nrs"])
    threshold = _threshold(course.protocol, n)
    base = {
        "after_session": n,
        "sessions_given": len(rows),
        "inputs": {"baseline_nrs": baseline, "session_nrs": session_nrs, **inputs},
    }
    if baseline <= 0:
        return {
            **base,
            "recommend": "insufficient_data",
            "reasons": ["The plan's baseline NRS is 0: a fall from no pain cannot be measured."],
            "threshold_pct": 100.0 * threshold,
            "sources": [],
        }
    rec = recommend_continuation(
        baseline_nrs=baseline,
        session_nrs=session_nrs,
        side_effects=inputs["side_effects"],
        max_cadss6=inputs["max_cadss6"],
        min_moaas=None if inputs["min_moaas"] is None else int(inputs["min_moaas"]),
        pgic=inputs["pgic"],
        response_threshold=threshold,
    )
    return {**base, **rec.as_dict()}
