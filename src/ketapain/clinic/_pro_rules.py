"""The rules of follow-up, without the records: when each patient-reported questionnaire
is due after a course (:func:`build_schedule`) and the alerts a score raises
(:func:`pro_alerts`). :mod:`ketapain.clinic.follow_up` applies them to the records and
re-exports them.

**Schedule.** From the first infusion day and the series' last infusion day:

* a daily pain NRS diary from the first infusion to ``diary_weeks`` after the series
  (default 2: relief "lasting up to two weeks", seed 002; a parameter);
* a weekly PEG (Krebs 2009: the past week), or the BPI short form (Cleeland 1994),
  through the week-12 follow-up;
* PHQ-9, GAD-7, EQ VAS and PDQ-5 at baseline, the end of the series and weeks 4 and 12,
  the regular evaluation of seed 002 (pain, quality of life, mental health, cognition),
  and PGIC at the end and each follow-up. The time points are the outcome reports'
  (:data:`ketapain.analytics.calibration.ANCHORS`: week 4 Mangnus 2022, week 12
  Sigtermans 2009).

Each item has a window of days; it is ``done`` when a score of its instrument lies in the
window, else ``upcoming`` before it, ``due`` in it and ``overdue`` after it.

**Alerts.** PHQ-9 item 9 at 1 or more is a ``stop`` for the physician (Kroenke 2001);
a PHQ-9 of 15 or more (moderately severe, Kroenke 2001) or a GAD-7 of 15 or more (severe,
Spitzer 2006) a ``warn`` for review.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

from ketapain.analytics.calibration import ANCHORS
from ketapain.analytics.literature import MANGNUS_2022
from ketapain.clinic._service import check_range
from ketapain.clinic.instruments import (
    CLEELAND_1994,
    INSTRUMENTS,
    KREBS_2009,
    KROENKE_2001,
    SPITZER_2006,
)
from ketapain.errors import InvalidValueError
from ketapain.sources import SIGTERMANS_2009_CRPS, Source

__all__ = [
    "BASELINE_WINDOW_DAYS",
    "DIARY_WEEKS_AFTER_SERIES",
    "FOLLOW_UP_DAYS",
    "GAD7_REVIEW_AT",
    "HALF_WEEK_DAYS",
    "PHQ9_ITEM9_ALERT_AT",
    "PHQ9_REVIEW_AT",
    "PHQ9_SEVERE_AT",
    "PRO_SIGNALS",
    "SEED_002_FOLLOW_UP",
    "DueItem",
    "ProAlert",
    "build_schedule",
    "pro_alerts",
]

SEED_002_FOLLOW_UP: Final = Source(
    authors="Calliope Health",
    year=None,
    journal="Clinic page 'Ketamine infusion therapy for chronic pain' (seed 002)",
    locator="pain relief lasting up to two weeks; regular evaluation of pain, quality of "
    "life, mental health and cognitive function",
)
# The diary runs to two weeks after the series: relief "lasting up to two weeks" (seed
# 002), the span of the oral follow-on after the series (seed 003). A parameter.
DIARY_WEEKS_AFTER_SERIES: Final = 2
# PHQ-9 and GAD-7 ask about the last two weeks (Kroenke 2001; Spitzer 2006): a baseline in
# the 14 days before the first infusion describes the patient before treatment.
BASELINE_WINDOW_DAYS: Final = 14
# Days after the series end of each outcome time point (end, week 4, week 12).
FOLLOW_UP_DAYS: Final = {name: int(days) for name, (_obs, _pred, days) in ANCHORS.items()}
# A follow-up score counts within half a week of its day, as the outcome table counts a
# follow-up NRS for the nearest whole week (ketapain.clinic._outcome_sql): not a published
# figure, the reports' own convention.
HALF_WEEK_DAYS: Final = 3
# PHQ-9 item 9 answered "several days" or more (Kroenke 2001, item 9).
PHQ9_ITEM9_ALERT_AT: Final = 1
# PHQ-9 15-19 moderately severe, 20-27 severe depression (Kroenke 2001, severity bands).
PHQ9_REVIEW_AT: Final = 15
PHQ9_SEVERE_AT: Final = 20
# GAD-7 15-21 severe anxiety (Spitzer 2006).
GAD7_REVIEW_AT: Final = 15
PRO_SIGNALS: Final = ("phq9_item9", "phq9_total", "gad7_total")

_WEEKLY: Final = {"peg": ("peg",), "bpi": ("bpi_severity", "bpi_interference")}
_WEEKLY_SOURCE: Final = {"peg": KREBS_2009, "bpi": CLEELAND_1994}
_WEEKLY_REASON: Final = {
    "peg": "weekly to the last follow-up: the PEG asks about the past week",
    "bpi": "weekly to the last follow-up: the BPI short form (pain and interference)",
}
_EVALUATION: Final = ("phq9", "gad7", "eq_vas", "pdq5")
_TIMEPOINT_SOURCE: Final = {
    "end": SEED_002_FOLLOW_UP,
    "week_4": MANGNUS_2022,
    "week_12": SIGTERMANS_2009_CRPS,
}
_ANSWERS: Final = ("not at all", "several days", "more than half the days", "nearly every day")


@dataclass(frozen=True, slots=True, kw_only=True)
class DueItem:
    """One questionnaire due: instrument, time point, due date, window of dates, why."""

    instrument: str
    timepoint: str
    due_date: date
    window_start: date
    window_end: date
    reason: str
    source: Source

    def status(self, *, done: bool, today: date) -> str:
        """``done``, else ``upcoming`` before the window, ``due`` in it, ``overdue`` after."""
        if done:
            return "done"
        if today < self.window_start:
            return "upcoming"
        return "due" if today <= self.window_end else "overdue"

    def as_dict(self) -> dict[str, Any]:
        """JSON, with the instrument's title and the reason's source."""
        return {
            "instrument": self.instrument,
            "title": INSTRUMENTS[self.instrument].title,
            "timepoint": self.timepoint,
            "due_date": self.due_date.isoformat(),
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "reason": self.reason,
            "source": self.source.cite(),
        }


def build_schedule(
    *,
    first_date: date,
    series_end: date,
    diary_weeks: int = DIARY_WEEKS_AFTER_SERIES,
    weekly: str = "peg",
) -> list[DueItem]:
    """The questionnaires of a course, in date order.

    Parameters
    ----------
    first_date : date
        Day of the first infusion.
    series_end : date
        Day of the last infusion of the series.
    diary_weeks : int
        Weeks after the series the daily pain diary runs (0 to 12).
    weekly : str
        ``"peg"`` (Krebs 2009) or ``"bpi"`` (BPI short form, Cleeland 1994).

    Examples
    --------
    >>> items = build_schedule(first_date=date(2026, 11, 9), series_end=date(2026, 11, 17))
    >>> [(i.instrument, str(i.window_start), str(i.window_end)) for i in items
    ...  if i.timepoint == "week_4" and i.instrument == "phq9"]
    [('phq9', '2026-12-12', '2026-12-18')]
    >>> sum(i.instrument == "pain_nrs" for i in items)  # 9 series days + 14 after
    23
    """
    if series_end < first_date:
        raise InvalidValueError("series_end", f"on or after {first_date}", series_end)
    check_range("diary_weeks", diary_weeks, 0, 12)
    if weekly not in _WEEKLY:
        raise InvalidValueError("weekly", '"peg" or "bpi"', weekly)
    day = timedelta(days=1)
    half = timedelta(days=HALF_WEEK_DAYS)
    items: list[DueItem] = []

    def add(
        names: Collection[str],
        point: str,
        due: date,
        start: date,
        end: date,
        reason: str,
        source: Source,
    ) -> None:
        items.extend(
            DueItem(
                instrument=n,
                timepoint=point,
                due_date=due,
                window_start=start,
                window_end=end,
                reason=reason,
                source=source,
            )
            for n in names
        )

    add(
        (*_EVALUATION, *_WEEKLY[weekly]),
        "baseline",
        first_date,
        first_date - BASELINE_WINDOW_DAYS * day,
        first_date,
        f"baseline: PHQ-9 and GAD-7 ask about the last two weeks, so within "
        f"{BASELINE_WINDOW_DAYS} days before the first infusion",
        KROENKE_2001,
    )
    last_diary = series_end + timedelta(weeks=diary_weeks)
    d = first_date
    while d <= last_diary:
        add(
            ("pain_nrs",),
            "diary",
            d,
            d,
            d,
            f"daily pain diary from the first infusion to {diary_weeks} weeks after the "
            "series (relief 'lasting up to two weeks')",
            SEED_002_FOLLOW_UP,
        )
        d += day
    last_follow_up = series_end + timedelta(days=max(FOLLOW_UP_DAYS.values()))
    week = 1
    while (d := first_date + timedelta(weeks=week)) <= last_follow_up:
        add(
            _WEEKLY[weekly],
            f"week {week}",
            d,
            d - half,
            d + half,
            _WEEKLY_REASON[weekly],
            _WEEKLY_SOURCE[weekly],
        )
        week += 1
    for point, days in FOLLOW_UP_DAYS.items():
        due = series_end + timedelta(days=days)
        start = due if days == 0 else due - half  # the end: after the last infusion
        add(
            (*_EVALUATION, "pgic"),
            point,
            due,
            start,
            due + half,
            f"outcome time point '{point}' of the reports ({days} days after the series)",
            _TIMEPOINT_SOURCE.get(point, SEED_002_FOLLOW_UP),
        )
    return sorted(items, key=lambda i: (i.due_date, i.instrument))


@dataclass(frozen=True, slots=True, kw_only=True)
class ProAlert:
    """An alert a patient-reported score raises: signal, level, value, what to do, source."""

    signal: str
    level: str
    value: float
    message: str
    source: Source


def pro_alerts(instrument: str, value: float, items: Mapping[str, Any] | None) -> list[ProAlert]:
    """The alerts of a PHQ-9 or GAD-7 score, most serious first (none for others).

    Examples
    --------
    >>> answers = {f"item{i}": 0 for i in range(1, 10)} | {"item9": 1}
    >>> [(a.signal, a.level) for a in pro_alerts("phq9", 1.0, answers)]
    [('phq9_item9', 'stop')]
    >>> [a.level for a in pro_alerts("gad7", 14.0, None)], pro_alerts("gad7", 15.0, None)[0].level
    ([], 'warn')
    """
    out: list[ProAlert] = []
    if instrument == "phq9":
        item9 = int((items or {}).get("item9", 0))
        if item9 >= PHQ9_ITEM9_ALERT_AT:
            answer = _ANSWERS[item9] if item9 < len(_ANSWERS) else str(item9)
            out.append(
                ProAlert(
                    signal="phq9_item9",
                    level="stop",
                    value=float(item9),
                    source=KROENKE_2001,
                    message=f"PHQ-9 item 9 (thoughts of being better off dead or of hurting "
                    f"oneself) answered '{answer}': contact the patient today and "
                    "follow the clinic's suicide-risk protocol.",
                )
            )
        if value >= PHQ9_REVIEW_AT:
            band = "severe" if value >= PHQ9_SEVERE_AT else "moderately severe"
            out.append(
                ProAlert(
                    signal="phq9_total",
                    level="warn",
                    value=value,
                    source=KROENKE_2001,
                    message=f"PHQ-9 {value:g} ({band} depression, {PHQ9_REVIEW_AT} or more): "
                    "review the patient's mood and treatment.",
                )
            )
    elif instrument == "gad7" and value >= GAD7_REVIEW_AT:
        out.append(
            ProAlert(
                signal="gad7_total",
                level="warn",
                value=value,
                source=SPITZER_2006,
                message=f"GAD-7 {value:g} (severe anxiety, {GAD7_REVIEW_AT} or more): review "
                "the patient's anxiety and treatment.",
            )
        )
    return out
