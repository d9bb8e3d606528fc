"""Follow-up of a course: the questionnaires a patient reports and when, the reminders
for the staff, and the alarms a questionnaire raises.

The rules (:func:`build_schedule`, :func:`pro_alerts`, in :mod:`._pro_rules`) are applied
here to the records: the course's plan gives the first and last infusion days (a course
stopped early ends on the day it stopped; a cancelled one has no follow-up), and an item
is done when a current score of its instrument is dated, in the clinic's time zone,
within its window. Alarms are written with the score, in its transaction, however the
score came (charted by the staff or submitted through the patient portal).
"""

from __future__ import annotations

import bisect
import uuid
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ketapain.clinic._pro_rules import (
    BASELINE_WINDOW_DAYS,
    DIARY_WEEKS_AFTER_SERIES,
    FOLLOW_UP_DAYS,
    GAD7_REVIEW_AT,
    HALF_WEEK_DAYS,
    PHQ9_ITEM9_ALERT_AT,
    PHQ9_REVIEW_AT,
    PHQ9_SEVERE_AT,
    PRO_SIGNALS,
    DueItem,
    ProAlert,
    build_schedule,
    pro_alerts,
)
from ketapain.clinic._service import check_day, check_range
from ketapain.clinic.alarms import Alarm
from ketapain.clinic.audit import Actor
from ketapain.clinic.courses import Course, CourseStatus, CourseStatusEvent, current_plans
from ketapain.clinic.db import utc_now
from ketapain.clinic.instruments import INSTRUMENTS, PATIENT_REPORTED
from ketapain.clinic.observations import Score
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.records import current, get_or_raise
from ketapain.clinic.schedule import booking_headers

__all__ = [
    "BASELINE_WINDOW_DAYS",
    "DIARY_WEEKS_AFTER_SERIES",
    "FOLLOW_UP_DAYS",
    "GAD7_REVIEW_AT",
    "HALF_WEEK_DAYS",
    "OVERDUE_LISTED_DAYS",
    "PHQ9_ITEM9_ALERT_AT",
    "PHQ9_REVIEW_AT",
    "PHQ9_SEVERE_AT",
    "PRO_SIGNALS",
    "DueItem",
    "ProAlert",
    "build_schedule",
    "due_for_patient",
    "due_reminders",
    "pro_alarms",
    "pro_alerts",
    "pro_schedule",
]

# Reminders list an item overdue for at most a week, then it is a missed item: the
# clinic's choice (no published figure), a parameter of due_reminders.
OVERDUE_LISTED_DAYS: Final = 7


def _series_dates(plan: dict[str, Any], stopped_on: date | None) -> tuple[date, date] | None:
    """First and last infusion day of the plan; a course stopped early ends at its stop."""
    sessions = plan.get("sessions") or []
    if not sessions:
        return None
    first = date.fromisoformat(sessions[0]["date"])
    last = date.fromisoformat(sessions[-1]["date"])
    if stopped_on is not None:
        last = max(first, min(last, stopped_on))
    return first, last


def _statuses(
    session: Session, course_ids: Collection[uuid.UUID] | None
) -> dict[uuid.UUID, tuple[CourseStatus, date]]:
    """The latest status of each course (of every course when ``course_ids`` is None)
    and the day it was set, in one statement; a course without events is not listed."""
    latest = select(CourseStatusEvent.course_id, func.max(CourseStatusEvent.sequence).label("n"))
    if course_ids is not None:
        latest = latest.where(CourseStatusEvent.course_id.in_(course_ids))
    sub = latest.group_by(CourseStatusEvent.course_id).subquery()
    rows = session.execute(
        select(
            CourseStatusEvent.course_id, CourseStatusEvent.status, CourseStatusEvent.recorded_utc
        ).join(
            sub,
            (sub.c.course_id == CourseStatusEvent.course_id)
            & (sub.c.n == CourseStatusEvent.sequence),
        )
    )
    return {cid: (CourseStatus(status), when.date()) for cid, status, when in rows}


def _score_days(
    session: Session, patient_ids: Collection[uuid.UUID], since: date, tz: tzinfo
) -> dict[tuple[uuid.UUID, str], list[date]]:
    """The local days on which each patient reported each instrument, sorted."""
    out: dict[tuple[uuid.UUID, str], list[date]] = defaultdict(list)
    if not patient_ids:
        return out
    rows = session.execute(
        current(Score)
        .with_only_columns(Score.patient_id, Score.instrument, Score.measured_utc)
        .where(
            Score.patient_id.in_(patient_ids),
            Score.instrument.in_(PATIENT_REPORTED),
            Score.measured_utc
            >= datetime.combine(since - timedelta(days=1), datetime.min.time(), UTC),
        )
    )
    for patient_id, instrument, measured in rows:
        out[(patient_id, instrument)].append(measured.astimezone(tz).date())
    for days in out.values():
        days.sort()
    return out


def _done(days: list[date], item: DueItem) -> bool:
    i = bisect.bisect_left(days, item.window_start)
    return i < len(days) and days[i] <= item.window_end


@dataclass(frozen=True, slots=True, kw_only=True)
class _Followed:
    course: Course
    first: date
    end: date
    items: tuple[DueItem, ...]


@lru_cache(maxsize=4096)
def _schedule(first: date, end: date, diary_weeks: int, weekly: str) -> tuple[DueItem, ...]:
    """:func:`build_schedule`, kept per process: the home page asks it of every course
    followed on every view, and its items (frozen) depend on these four values alone."""
    return tuple(
        build_schedule(first_date=first, series_end=end, diary_weeks=diary_weeks, weekly=weekly)
    )


def _followed(
    session: Session,
    courses: list[Course],
    statuses: Mapping[uuid.UUID, tuple[CourseStatus, date]],
    *,
    diary_weeks: int,
    weekly: str,
) -> list[_Followed]:
    """The courses with a schedule (not cancelled, with sessions) and their items."""
    plans = current_plans(session, [c.id for c in courses])
    out = []
    for course in courses:
        status, when = statuses.get(course.id, (CourseStatus.PLANNED, None))
        if status is CourseStatus.CANCELLED:
            continue
        stopped = when if status is CourseStatus.STOPPED_EARLY else None
        dates = _series_dates(plans[course.id], stopped)
        if dates is None:
            continue
        items = _schedule(dates[0], dates[1], diary_weeks, weekly)
        out.append(_Followed(course=course, first=dates[0], end=dates[1], items=items))
    return out


def _window_start(followed: list[_Followed]) -> date:
    return min(item.window_start for f in followed for item in f.items)


def pro_schedule(
    session: Session,
    actor: Actor,
    course_id: uuid.UUID,
    *,
    today: date | None = None,
    tz: tzinfo = UTC,
    diary_weeks: int = DIARY_WEEKS_AFTER_SERIES,
    weekly: str = "peg",
) -> dict[str, Any]:
    """The course's questionnaires, each done, upcoming, due or overdue on ``today``
    (default: today in ``tz``, the clinic's time zone, in which scores are dated)."""
    require(actor, Action.READ_CLINICAL)
    check_day("today", today)
    course = get_or_raise(session, Course, course_id, "course")
    today = today or utc_now().astimezone(tz).date()
    statuses = _statuses(session, [course.id])
    followed = _followed(session, [course], statuses, diary_weeks=diary_weeks, weekly=weekly)
    out: dict[str, Any] = {
        "course_id": str(course.id),
        "patient_id": str(course.patient_id),
        "today": today.isoformat(),
        "first_infusion_date": None,
        "series_end_date": None,
        "diary_weeks_after_series": diary_weeks,
        "weekly": weekly,
        "items": [],
    }
    if not followed:
        return out
    f = followed[0]
    days = _score_days(session, [course.patient_id], _window_start(followed), tz)
    out["first_infusion_date"] = f.first.isoformat()
    out["series_end_date"] = f.end.isoformat()
    for item in f.items:
        done = _done(days.get((course.patient_id, item.instrument), []), item)
        out["items"].append({**item.as_dict(), "status": item.status(done=done, today=today)})
    return out


def due_for_patient(
    session: Session, patient_id: uuid.UUID, *, today: date, tz: tzinfo = UTC
) -> list[DueItem]:
    """The items of the patient's courses due on ``today`` and not done, one per
    instrument (what the patient portal asks; the caller holds the patient's link)."""
    courses = list(session.scalars(select(Course).where(Course.patient_id == patient_id)))
    statuses = _statuses(session, [c.id for c in courses])
    followed = _followed(
        session, courses, statuses, diary_weeks=DIARY_WEEKS_AFTER_SERIES, weekly="peg"
    )
    if not followed:
        return []
    days = _score_days(session, [patient_id], _window_start(followed), tz)
    due: dict[str, DueItem] = {}
    for f in followed:
        for item in f.items:
            done = _done(days.get((patient_id, item.instrument), []), item)
            if item.status(done=done, today=today) == "due":
                due.setdefault(item.instrument, item)
    order = {name: i for i, name in enumerate(PATIENT_REPORTED)}
    return sorted(due.values(), key=lambda i: order[i.instrument])


def _courses_followed_on(
    session: Session, oldest: date
) -> tuple[list[Course], dict[uuid.UUID, tuple[CourseStatus, date]]]:
    """Courses planned or in progress, and those completed or stopped recently enough
    that their last follow-up window can still end on or after ``oldest``."""
    statuses = _statuses(session, None)
    # The last window closes HALF_WEEK_DAYS after the last follow-up, which is after the
    # series end, itself on or before the day the course was completed or stopped.
    horizon = oldest - timedelta(days=max(FOLLOW_UP_DAYS.values()) + HALF_WEEK_DAYS)
    ids = [
        cid
        for cid, (status, when) in statuses.items()
        if status in (CourseStatus.PLANNED, CourseStatus.IN_PROGRESS)
        or (status is not CourseStatus.CANCELLED and when >= horizon)
    ]
    courses = list(session.scalars(select(Course).where(Course.id.in_(ids)))) if ids else []
    return courses, statuses


def due_reminders(
    session: Session,
    actor: Actor,
    *,
    today: date,
    tz: tzinfo = UTC,
    overdue_days: int = OVERDUE_LISTED_DAYS,
) -> list[dict[str, Any]]:
    """Patients with questionnaires due today or overdue (for at most ``overdue_days``),
    one row per course and instrument: what, how many, ``since`` (the first day of the
    earliest one's window) and ``due_by`` (the last day of the latest); overdue first."""
    require(actor, Action.READ_CLINICAL)
    check_day("today", today)
    check_range("overdue_days", overdue_days, 0, 365)
    oldest = today - timedelta(days=overdue_days)
    courses, statuses = _courses_followed_on(session, oldest)
    followed = _followed(
        session, courses, statuses, diary_weeks=DIARY_WEEKS_AFTER_SERIES, weekly="peg"
    )
    listed = [
        (f, [i for i in f.items if i.window_end >= oldest and i.window_start <= today])
        for f in followed
    ]
    listed = [(f, items) for f, items in listed if items]
    if not listed:
        return []
    headers = booking_headers(session, [f.course for f, _ in listed])
    since = min(i.window_start for _, items in listed for i in items)
    days = _score_days(session, {f.course.patient_id for f, _ in listed}, since, tz)
    rows: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}
    for f, items in listed:
        for item in items:
            done = _done(days.get((f.course.patient_id, item.instrument), []), item)
            status = item.status(done=done, today=today)
            if status not in ("due", "overdue"):
                continue
            row = rows.get((f.course.id, item.instrument))
            if row is None:
                row = rows[(f.course.id, item.instrument)] = {
                    **headers[f.course.id],
                    "instrument": item.instrument,
                    "title": INSTRUMENTS[item.instrument].title,
                    "status": status,
                    "since": item.window_start.isoformat(),
                    "due_by": item.window_end.isoformat(),
                    "count": 0,
                    "timepoints": [],
                    "reason": item.reason,
                    "source": item.source.cite(),
                }
            row["count"] += 1
            row["due_by"] = max(row["due_by"], item.window_end.isoformat())
            if item.timepoint not in row["timepoints"]:
                row["timepoints"].append(item.timepoint)
            if status == "overdue":
                row["status"] = "overdue"
    return sorted(rows.values(), key=lambda r: (r["status"] != "overdue", r["since"], r["patient"]))


def pro_alarms(row: Score, *, recorded_by_id: uuid.UUID) -> list[Alarm]:
    """The alarms of a score just flushed (its total computed), to add in its transaction."""
    return [
        Alarm(
            patient_id=row.patient_id,
            infusion_id=row.infusion_id,
            score_id=row.id,
            signal=a.signal,
            level=a.level,
            value=a.value,
            message=a.message,
            source=a.source.cite(),
            recorded_by_id=recorded_by_id,
        )
        for a in pro_alerts(row.instrument, row.value, row.items)
    ]
