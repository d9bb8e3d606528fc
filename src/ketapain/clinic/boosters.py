"""After the goal: completing a series early, relapse, and boosters.

**Early completion.** Seed 003: "if the desired result is reached early in the week and
the patient prefers not to complete the week, that is their prerogative". The goal
counts as reached when the NRS after each of the last :data:`SUSTAINED_SESSIONS`
sessions given is at least :data:`GOAL_FRACTION` (50%, "substantial improvement",
Dworkin 2008, IMMPACT) below the course's baseline, or the protocol's decision-point
threshold if one is higher. Two sessions in a row is a choice (a parameter, no published
value): one low score may be a fluctuation. Completing early is the existing status change
(in progress -> completed) with the reason, by a physician
(:func:`ketapain.clinic.treatment.change_status`); this module only suggests.

**Relapse and boosters.** The follow-up NRS (pain charted outside infusions after the
series) and the boosters booked go to :func:`ketapain.protocols.relapse.assess_relapse`
with the protocol's ``relapse_fraction``. A booster whose date has passed counts as
given (a booster row has no infusion of its own). A patient's request for a booster has
no record of its own: the physician books the booster directly
(:func:`ketapain.clinic.treatment.book_booster`), with the request as the reason.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy.orm import Session

from ketapain.clinic._service import check_day
from ketapain.clinic.audit import Actor
from ketapain.clinic.booking import BookingStatus, course_calendar, protocol_of
from ketapain.clinic.courses import Booster, Course, CourseStatus, course_status
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.progress import course_progress
from ketapain.clinic.records import current, get_or_raise
from ketapain.errors import InvalidValueError
from ketapain.protocols.continuation import DWORKIN_2008, RESPONSE_FRACTION_SUBSTANTIAL
from ketapain.protocols.relapse import RELAPSE_FRACTION, assess_relapse
from ketapain.protocols.schema import Protocol
from ketapain.sources import Source

__all__ = ["GOAL_FRACTION", "SUSTAINED_SESSIONS", "booster_suggestion", "early_completion"]

# Dworkin 2008 (IMMPACT), J Pain 9:105: a 50% fall in pain is substantial improvement.
GOAL_FRACTION: Final = RESPONSE_FRACTION_SUBSTANTIAL
# Sessions in a row that must reach the goal: a choice (no published value), a parameter.
SUSTAINED_SESSIONS: Final = 2
SEED_003: Final = Source(
    authors="Ketamine Center of NY (seed 003)",
    year=None,
    journal="clinic page 'Pain management'",
    locator="if the desired result is reached early in the week and the patient prefers "
    "not to complete the week, that is their prerogative",
)
_DWORKIN_50: Final = DWORKIN_2008.at("a 50% fall in pain is substantial improvement")
# NRS in tenths: keeps an exact 50% fall (8 -> 4) on the goal side of the line.
_TOL: Final = 1e-9
_HOW: Final = (
    "A physician completes the course early: status in_progress -> completed, with the "
    "reason (POST /courses/{id}/status)."
)


def _goal(proto: Protocol | None) -> float:
    """The goal: 50%, or a protocol's decision-point threshold if that is higher."""
    points = () if proto is None else proto.decision_points
    return max([GOAL_FRACTION, *(dp.response_threshold for dp in points)])


def early_completion(session: Session, actor: Actor, course_id: uuid.UUID) -> dict[str, Any]:
    """Say whether the series' goal is reached, so that the course may end early, and why.

    Returns ``goal_reached`` (None when it cannot be told), ``suggest_complete`` (goal
    reached, the course in progress and sessions left), the reason, the rule and its
    sources, the last sessions' NRS and relief, and the sessions left.
    """
    require(actor, Action.READ_CLINICAL)
    course = get_or_raise(session, Course, course_id, "course")
    progress = course_progress(session, actor, course_id)
    status, _ = course_status(session, course_id)
    goal = _goal(protocol_of(course))
    baseline = float(progress["baseline_nrs"])
    line = (1.0 - goal) * baseline
    given = [r for r in progress["sessions"] if r["infusion_id"] is not None]
    last = given[-SUSTAINED_SESSIONS:]
    left = [
        b.number
        for b in course_calendar(session, course)
        if b.kind == "session" and b.status in (BookingStatus.BOOKED, BookingStatus.MOVED)
    ]
    reached: bool | None
    if baseline <= 0:
        reached, why = None, "The baseline NRS is 0: a fall in pain cannot be measured."
    elif len(last) < SUSTAINED_SESSIONS:
        reached = False
        why = f"{len(given)} session(s) given; the goal needs {SUSTAINED_SESSIONS} in a row."
    elif missing := [r["number"] for r in last if r["nrs_after"] is None]:
        reached = None
        why = f"No NRS after session(s) {', '.join(map(str, missing))}: chart it first."
    else:
        reached = all(r["nrs_after"] <= line + _TOL for r in last)
        scores = ", ".join(f"{r['nrs_after']:g} after session {r['number']}" for r in last)
        verdict = "reached" if reached else "not reached"
        why = (
            f"Goal {verdict}: NRS {scores}, against {line:g} or below ({goal:.0%} below the "
            f"baseline {baseline:g}) in each of the last {SUSTAINED_SESSIONS} sessions."
        )
    suggest = bool(reached) and status is CourseStatus.IN_PROGRESS and bool(left)
    if reached and not suggest:
        why += (
            f" The course is {status}; nothing to complete early."
            if status is not CourseStatus.IN_PROGRESS
            else " No session is left: complete the course as planned."
        )
    elif suggest:
        why += (
            f" Sessions {', '.join(map(str, left))} are left: the patient may stop here "
            "(seed 003); the physician completes the course with the reason."
        )
    return {
        "course_id": str(course_id),
        "status": str(status),
        "goal_reached": reached,
        "suggest_complete": suggest,
        "reason": why,
        "rule": f"NRS after each of the last {SUSTAINED_SESSIONS} sessions at least "
        f"{goal:.0%} below the baseline",
        "threshold_pct": 100.0 * goal,
        "sustained_sessions": SUSTAINED_SESSIONS,
        "baseline_nrs": baseline,
        "sessions": [
            {
                "number": r["number"],
                "date": r["date"],
                "nrs_after": r["nrs_after"],
                "relief_pct": None
                if r["nrs_after"] is None or baseline <= 0
                else 100.0 * (baseline - r["nrs_after"]) / baseline,
            }
            for r in last
        ],
        "sessions_left": left,
        "how": _HOW,
        "sources": [_DWORKIN_50.cite(), SEED_003.cite()],
    }


def _booster_phase(proto: Protocol | None) -> dict[str, Any] | None:
    """The protocol's booster phase, for the booking: sessions, start, length, rates."""
    phases = () if proto is None else proto.boosters()
    if not phases:
        return None
    p = phases[0]
    start_h = p.session.start_h()
    return {
        "name": p.name,
        "title": p.title,
        "sessions": p.sessions if p.days is None else len(p.days),
        "skip_weekends": p.skip_weekends,
        "start": f"{int(start_h):02d}:{round(start_h % 1 * 60):02d}",
        "duration_h": p.session.end_h() - start_h,
        "rates": [
            {"rate_mg_per_kg_h": d.rate_mg_per_kg_h, "rate_mg_per_h": d.rate_mg_per_h}
            for d in p.session.infusions
        ],
        "note": p.note,
    }


def _history(boosters: list[Booster], series_end: date | None, today: date) -> list[dict[str, Any]]:
    """Each booster with the days since the one before (the first: since the series end)."""
    out, before = [], series_end
    for b in boosters:
        out.append(
            {
                "id": str(b.id),
                "date": b.scheduled_date.isoformat(),
                "reason": b.reason,
                "given": b.scheduled_date <= today,
                "days_since_previous": None if before is None else (b.scheduled_date - before).days,
            }
        )
        before = b.scheduled_date
    return out


def booster_suggestion(
    session: Session, actor: Actor, course_id: uuid.UUID, *, today: date
) -> dict[str, Any]:
    """Assess relapse after the series from the follow-up NRS and the boosters so far, and
    suggest a booster or not, with the reasons, the sources, the booster history (intervals
    in days) and the protocol's booster phase for the booking."""
    require(actor, Action.READ_CLINICAL)
    check_day("today", today)
    course = get_or_raise(session, Course, course_id, "course")
    progress = course_progress(session, actor, course_id)
    status, _ = course_status(session, course_id)
    proto = protocol_of(course)
    rows = [b for b in course_calendar(session, course) if b.kind == "session"]
    given = [b.start.date() for b in rows if b.status is BookingStatus.GIVEN]
    left = [b.number for b in rows if b.status in (BookingStatus.BOOKED, BookingStatus.MOVED)]
    boosters = sorted(
        session.scalars(current(Booster).where(Booster.course_id == course_id)),
        key=lambda b: b.scheduled_date,
    )
    series_end = max(given, default=None)
    history = _history(boosters, series_end, today)
    intervals = [h["days_since_previous"] for h in history if h["days_since_previous"] is not None]
    out: dict[str, Any] = {
        "course_id": str(course_id),
        "as_of": today.isoformat(),
        "series_end": None if series_end is None else series_end.isoformat(),
        "history": history,
        "intervals_days": intervals,
        "mean_interval_days": sum(intervals) / len(intervals) if intervals else None,
        "booster_phase": _booster_phase(proto),
        "how_to_book": "A physician books the booster (POST /courses/{id}/boosters); a "
        "patient's request is booked the same way, with the request as the reason.",
        "assessment": None,
    }
    nrs_after = [r["nrs_after"] for r in progress["sessions"] if r["nrs_after"] is not None]
    not_yet = _not_assessable(status, series_end, left, nrs_after, progress["baseline_nrs"])
    if not_yet is not None:
        return out | {
            "relapsed": False,
            "since": None,
            "suggest_booster": False,
            "reason": not_yet,
            "sources": [],
        }
    assert series_end is not None
    if today < series_end:
        raise InvalidValueError("today", f"on or after the series end ({series_end})", today)
    follow_up = [
        (d, float(f["value"]))
        for f in progress["follow_up"]
        if f["value"] is not None
        and series_end < (d := datetime.fromisoformat(f["measured_utc"]).date()) <= today
    ]
    a = assess_relapse(
        baseline_nrs=float(progress["baseline_nrs"]),
        best_nrs=min(nrs_after),
        series_end=series_end,
        as_of=today,
        follow_up=follow_up,
        boosters=[b.scheduled_date for b in boosters if series_end <= b.scheduled_date <= today],
        relapse_fraction=RELAPSE_FRACTION if proto is None else proto.relapse_fraction,
    )
    reasons = list(a.reasons)
    ahead = [b.scheduled_date.isoformat() for b in boosters if b.scheduled_date > today]
    suggest = a.suggest_booster and not ahead
    if a.suggest_booster and ahead:
        reasons.append(f"A booster is already booked for {', '.join(ahead)}: none more suggested.")
    return out | {
        "relapsed": a.relapsed,
        "since": None if a.since is None else a.since.isoformat(),
        "suggest_booster": suggest,
        "reason": " ".join(reasons),
        "sources": [s.cite() for s in a.sources],
        "assessment": a.as_dict(),
    }


def _not_assessable(
    status: CourseStatus,
    series_end: date | None,
    left: list[int | None],
    nrs_after: list[float],
    baseline_nrs: float,
) -> str | None:
    """Why relapse cannot be assessed yet, or None when it can."""
    if series_end is None:
        return "No session of the series is given yet: relapse is assessed after the series."
    if left and status in (CourseStatus.PLANNED, CourseStatus.IN_PROGRESS):
        rest = ", ".join(map(str, left))
        return f"The series is still going (sessions {rest} left): relapse is assessed after it."
    if not nrs_after:
        return "No NRS after a session is charted: the relief the series brought is unknown."
    if float(baseline_nrs) <= 0:
        return "The baseline NRS is 0: relapse against it cannot be measured."
    return None
