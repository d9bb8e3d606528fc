"""Course progress: each session given or planned, its pain before and after, and the
response at each decision point.

The response figure is the one the decision points of the protocols name: pain fell by
at least 30% or at least 2 NRS points from the pre-course baseline (Farrar 2001, "much
improved"). It is computed from the charted scores, never typed in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketapain.clinic.audit import Actor
from ketapain.clinic.courses import Course, current_plan
from ketapain.clinic.db import utc_now
from ketapain.clinic.infusions import EventKind, Infusion, InfusionEvent, delivery
from ketapain.clinic.observations import Score
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.records import current, get_or_raise
from ketapain.protocols.continuation import (
    RESPONSE_FRACTION_MUCH_IMPROVED,
    RESPONSE_POINTS_MUCH_IMPROVED,
)
from ketapain.sources import FARRAR_2001

__all__ = [
    "RESPONSE_DROP_FRACTION",
    "RESPONSE_DROP_POINTS",
    "Response",
    "course_progress",
    "response",
]

# "Much improved": a 30% or 2-point fall on the 11-point NRS (Farrar 2001, Pain 94:149).
RESPONSE_DROP_FRACTION: Final = RESPONSE_FRACTION_MUCH_IMPROVED
RESPONSE_DROP_POINTS: Final = RESPONSE_POINTS_MUCH_IMPROVED
_TOL: Final = 1e-9  # an exact 30% fall (6 -> 4.2) is a response despite rounding


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """Pain at baseline and at best after the sessions so far, and whether it responded.

    >>> response(baseline_nrs=7.0, best_nrs=5.0).responded
    True
    >>> round(response(baseline_nrs=8.0, best_nrs=7.0).drop_fraction, 3)
    0.125
    >>> response(baseline_nrs=6.0, best_nrs=4.2).responded  # exactly 30%
    True
    """

    baseline_nrs: float
    best_nrs: float | None
    drop_points: float | None
    drop_fraction: float | None
    responded: bool | None

    def as_dict(self) -> dict[str, Any]:
        """JSON, with the criterion's source."""
        return {
            "baseline_nrs": self.baseline_nrs,
            "best_nrs": self.best_nrs,
            "drop_points": self.drop_points,
            "drop_pct": None if self.drop_fraction is None else 100.0 * self.drop_fraction,
            "responded": self.responded,
            "criterion": f"a fall of at least {RESPONSE_DROP_FRACTION:.0%} or "
            f"{RESPONSE_DROP_POINTS:g} NRS points",
            "source": FARRAR_2001.cite(),
        }


def response(*, baseline_nrs: float, best_nrs: float | None) -> Response:
    """The response from ``baseline_nrs`` to the lowest NRS after the sessions."""
    if best_nrs is None:
        return Response(
            baseline_nrs=baseline_nrs,
            best_nrs=None,
            drop_points=None,
            drop_fraction=None,
            responded=None,
        )
    drop = baseline_nrs - best_nrs
    fraction = drop / baseline_nrs if baseline_nrs > 0 else 0.0
    return Response(
        baseline_nrs=baseline_nrs,
        best_nrs=best_nrs,
        drop_points=drop,
        drop_fraction=fraction,
        responded=fraction >= RESPONSE_DROP_FRACTION - _TOL or drop >= RESPONSE_DROP_POINTS - _TOL,
    )


def _infusion_row(session: Session, inf: Infusion) -> dict[str, Any]:
    events = list(
        session.scalars(
            select(InfusionEvent)
            .where(InfusionEvent.infusion_id == inf.id)
            .order_by(InfusionEvent.sequence)
        )
    )
    start = next((e.time_utc for e in events if e.kind == EventKind.START), None)
    stop = next((e.time_utc for e in events if e.kind == EventKind.STOP), None)
    nrs = list(
        session.scalars(
            current(Score)
            .where(Score.infusion_id == inf.id, Score.instrument == "pain_nrs")
            .order_by(Score.measured_utc)
        )
    )
    before = [s.value for s in nrs if start is None or s.measured_utc <= start]
    after = [s.value for s in nrs if stop is not None and s.measured_utc >= stop]
    d = delivery([e.pump_event() for e in events], until=utc_now())
    return {
        "infusion_id": str(inf.id),
        "state": str(d.state),
        "delivered_mg": d.delivered_mg,
        "started_utc": None if start is None else start.isoformat(),
        "stopped_utc": None if stop is None else stop.isoformat(),
        "nrs_before": before[0] if before else None,
        "nrs_after": after[-1] if after else None,
    }


def course_progress(session: Session, actor: Actor, course_id: uuid.UUID) -> dict[str, Any]:
    """Sessions (planned, with the infusion given), response at each decision point, and
    pain scores charted outside infusions since the course started (follow-up)."""
    require(actor, Action.READ_CLINICAL)
    course = get_or_raise(session, Course, course_id, "course")
    plan = current_plan(session, course_id).plan
    given: dict[int, Infusion] = {}
    for inf in session.scalars(
        select(Infusion).where(Infusion.course_id == course_id).order_by(Infusion.recorded_utc)
    ):
        given[inf.session_number] = inf  # the latest bag hung for a session counts
    rows = []
    for s in plan["sessions"]:
        row: dict[str, Any] = {
            "number": s["number"],
            "phase": s["phase"],
            "date": s["date"],
            "start": s["start"],
            "dose_mg": s["dose_mg"],
            "infusion_id": None,
            "state": "planned",
            "delivered_mg": None,
            "nrs_before": None,
            "nrs_after": None,
        }
        if s["number"] in given:
            row |= _infusion_row(session, given[s["number"]])
        rows.append(row)
    baseline = float(plan["baseline_nrs"])
    points = []
    for dp in plan["decision_points"]:
        after = [
            r["nrs_after"]
            for r in rows
            if r["number"] <= dp["after_session"] and r["nrs_after"] is not None
        ]
        best = min(after) if after else None
        points.append({**dp, **response(baseline_nrs=baseline, best_nrs=best).as_dict()})
    start = date.fromisoformat(plan["start_date"])
    follow_up = [
        {"measured_utc": sc.measured_utc.isoformat(), "value": sc.value}
        for sc in session.scalars(
            current(Score)
            .where(
                Score.patient_id == course.patient_id,
                Score.instrument == "pain_nrs",
                Score.infusion_id.is_(None),
            )
            .order_by(Score.measured_utc)
        )
        if sc.measured_utc.date() >= start
    ]
    return {
        "course_id": str(course.id),
        "baseline_nrs": baseline,
        "sessions": rows,
        "decision_points": points,
        "follow_up": follow_up,
    }
