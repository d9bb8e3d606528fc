"""Exposure and blood pressure over a course: cumulative dose and the pre-infusion trend.

Re-exported by :mod:`ketapain.protocols.course_safety`, which documents the rules.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

from ketapain.errors import InvalidValueError
from ketapain.protocols._monitoring import (
    DEFAULT_TOLERABILITY,
    MONITORING_RULES,
    Tolerability,
    calendar_date,
)
from ketapain.protocols._monitoring import number as _num
from ketapain.protocols.findings import Finding, Severity
from ketapain.protocols.guardrails import LimitSet, Quantity

__all__ = ["BPTrend", "CourseDose", "CumulativeDose", "SessionBP", "bp_trend", "cumulative_dose"]

_YEAR_DAYS: Final = 365
_TOL: Final = 1e-9
_WARN: Final = Severity.WARNING


# --- Cumulative dose -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CourseDose:
    """The total of one course: from its start to its last dose."""

    start: date
    last_dose: date | None
    doses: int
    total_mg: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CumulativeDose:
    """Totals per course, per calendar year and over 365 days, with the limit findings."""

    as_of: date
    total_mg: float
    courses: tuple[CourseDose, ...]
    per_year_mg: tuple[tuple[int, float], ...]
    rolling_365_mg: float
    peak_rolling_365_mg: float
    peak_window_end: date | None
    findings: tuple[Finding, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record; dates in ISO format, years as text keys."""
        return {
            "as_of": self.as_of.isoformat(),
            "total_mg": self.total_mg,
            "courses": [
                {
                    "start": c.start.isoformat(),
                    "last_dose": None if c.last_dose is None else c.last_dose.isoformat(),
                    "doses": c.doses,
                    "total_mg": c.total_mg,
                }
                for c in self.courses
            ],
            "per_year_mg": {str(y): mg for y, mg in self.per_year_mg},
            "rolling_365_mg": self.rolling_365_mg,
            "peak_rolling_365_mg": self.peak_rolling_365_mg,
            "peak_window_end": None
            if self.peak_window_end is None
            else self.peak_window_end.isoformat(),
            "findings": [f.as_dict() for f in self.findings],
        }


def cumulative_dose(
    doses: Sequence[tuple[date, float]],
    *,
    as_of: date,
    course_starts: Sequence[date] = (),
    limits: LimitSet | None = None,
) -> CumulativeDose:
    """Cumulative ketamine given: per course, per calendar year, over the last 365 days.

    Repeated courses are where harm was seen (liver: Noppers 2011; bladder: regular use,
    Chan 2022); no published cumulative limit exists, so the limits are the clinic's
    (``course_dose_mg`` in its drug library or the protocol), each course checked.

    Parameters
    ----------
    doses : sequence of (date, float)
        Day and mg of each dose (any order).
    as_of : date
        The day of the summary: the 365-day window ends on it (inclusive).
    course_starts : sequence of date
        First day of each course, in time order; a course runs until the next one starts.
        Empty: all doses form one course.
    limits : LimitSet, optional
        Limits on ``course_dose_mg``.

    Examples
    --------
    >>> s = cumulative_dose([(date(2024, 12, 30), 80), (date(2025, 1, 2), 100)],
    ...                     as_of=date(2025, 1, 2))
    >>> s.total_mg, s.per_year_mg, s.rolling_365_mg
    (180.0, ((2024, 80.0), (2025, 100.0)), 180.0)
    """
    end = calendar_date(as_of, "as_of")
    rows: list[tuple[date, float]] = []
    for i, item in enumerate(doses):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise InvalidValueError(f"doses[{i}]", "a pair (date, mg)", item)
        d = calendar_date(item[0], f"doses[{i}].date")
        if d > end:
            raise InvalidValueError(f"doses[{i}].date", f"on or before as_of ({end})", d)
        rows.append((d, _num(item[1], f"doses[{i}].mg", 0, 100000)))
    rows.sort()
    starts = [calendar_date(s, f"course_starts[{i}]") for i, s in enumerate(course_starts)]
    for i, (a, b) in enumerate(itertools.pairwise(starts), start=1):
        if b <= a:
            raise InvalidValueError(f"course_starts[{i}]", f"after {a} (time order)", b)
    if starts and rows and rows[0][0] < starts[0]:
        raise InvalidValueError(
            "doses", f"on or after the first course start ({starts[0]})", rows[0][0]
        )
    if not starts:
        starts = [rows[0][0] if rows else end]
    courses = []
    for a, b in itertools.zip_longest(starts, starts[1:]):
        mine = [(d, mg) for d, mg in rows if d >= a and (b is None or d < b)]
        courses.append(
            CourseDose(
                start=a,
                last_dose=mine[-1][0] if mine else None,
                doses=len(mine),
                total_mg=math.fsum(mg for _, mg in mine),
            )
        )
    years: dict[int, float] = {}
    for d, mg in rows:
        years[d.year] = years.get(d.year, 0.0) + mg

    def window(last: date) -> float:
        return math.fsum(mg for d, mg in rows if last - timedelta(days=_YEAR_DAYS) < d <= last)

    peaks = [(window(d), d) for d, _ in rows]
    peak_mg, peak_end = max(peaks, key=lambda p: p[0], default=(0.0, None))
    findings = (
        []
        if limits is None
        else [
            f
            for c in courses
            for f in limits.check(
                Quantity.COURSE_DOSE_MG, c.total_mg, what=f"Course from {c.start}"
            )
        ]
    )
    return CumulativeDose(
        as_of=end,
        total_mg=math.fsum(mg for _, mg in rows),
        courses=tuple(courses),
        per_year_mg=tuple(sorted(years.items())),
        rolling_365_mg=window(end),
        peak_rolling_365_mg=peak_mg,
        peak_window_end=peak_end,
        findings=tuple(findings),
    )


# --- Blood pressure ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionBP:
    """One session's blood pressure: before the infusion and the highest during it, mmHg."""

    day: date
    pre_sbp_mmhg: float
    pre_dbp_mmhg: float
    peak_sbp_mmhg: float
    peak_dbp_mmhg: float

    def __post_init__(self) -> None:
        calendar_date(self.day, "day")
        for name in ("pre_sbp_mmhg", "peak_sbp_mmhg"):
            _num(getattr(self, name), name, 40, 300)
        for name in ("pre_dbp_mmhg", "peak_dbp_mmhg"):
            _num(getattr(self, name), name, 20, 200)


@dataclass(frozen=True, slots=True, kw_only=True)
class BPTrend:
    """The pre-infusion SBP slope per session, the peak rises, the series and warnings."""

    sessions: tuple[SessionBP, ...]
    slope_sbp_mmhg_per_session: float | None
    peak_rise_sbp_mmhg: float | None
    findings: tuple[Finding, ...]

    def series(self) -> dict[str, list[Any]]:
        """Columns for plotting: days (ISO), pre and peak SBP/DBP, SBP rise, mmHg."""
        s = self.sessions
        return {
            "day": [x.day.isoformat() for x in s],
            "pre_sbp_mmhg": [x.pre_sbp_mmhg for x in s],
            "pre_dbp_mmhg": [x.pre_dbp_mmhg for x in s],
            "peak_sbp_mmhg": [x.peak_sbp_mmhg for x in s],
            "peak_dbp_mmhg": [x.peak_dbp_mmhg for x in s],
            "rise_sbp_mmhg": [x.peak_sbp_mmhg - x.pre_sbp_mmhg for x in s],
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record, with the series."""
        return {
            "slope_sbp_mmhg_per_session": self.slope_sbp_mmhg_per_session,
            "peak_rise_sbp_mmhg": self.peak_rise_sbp_mmhg,
            "findings": [f.as_dict() for f in self.findings],
            "series": self.series(),
        }


def _slope(y: Sequence[float]) -> float | None:
    """Least-squares slope of ``y`` against 0, 1, 2, ... (None for fewer than 2 points)."""
    n = len(y)
    if n < 2:
        return None
    x_mean, y_mean = (n - 1) / 2, sum(y) / n
    num = sum((i - x_mean) * (v - y_mean) for i, v in enumerate(y))
    return num / sum((i - x_mean) ** 2 for i in range(n))


def bp_trend(
    sessions: Sequence[SessionBP],
    *,
    warn_slope_mmhg_per_session: float | None = None,
    tolerability: Tolerability = DEFAULT_TOLERABILITY,
) -> BPTrend:
    """Pre-infusion blood pressure over the course: slope, peak rises and warnings.

    A warning when the pre-infusion SBP rises by more than ``warn_slope_mmhg_per_session``
    (the clinic's choice; no published value, so None checks nothing), and when any
    pre-infusion SBP or DBP is above the warn level of the monitoring rules (160/100 mmHg,
    derived: clinical reference 3.1).

    >>> s = [SessionBP(day=date(2025, 3, d), pre_sbp_mmhg=p, pre_dbp_mmhg=80,
    ...                peak_sbp_mmhg=p + 20, peak_dbp_mmhg=90) for d, p in ((3, 130), (4, 136))]
    >>> t = bp_trend(s, warn_slope_mmhg_per_session=5)
    >>> t.slope_sbp_mmhg_per_session, [f.code for f in t.findings]
    (6.0, ['pre_sbp_rising'])
    """
    rows = tuple(sessions)
    for i, s in enumerate(rows):
        if not isinstance(s, SessionBP):
            raise InvalidValueError(f"sessions[{i}]", "a SessionBP", s)
    for i, (a, b) in enumerate(itertools.pairwise(rows), start=1):
        if b.day < a.day:
            raise InvalidValueError(
                f"sessions[{i}].day", f"on or after {a.day} (time order)", b.day
            )
    limit = None
    if warn_slope_mmhg_per_session is not None:
        limit = _num(warn_slope_mmhg_per_session, "warn_slope_mmhg_per_session", 0, 100, above=True)
    slope = _slope([s.pre_sbp_mmhg for s in rows])
    findings = []
    if limit is not None and slope is not None and slope > limit + _TOL:
        findings.append(
            Finding(
                severity=_WARN,
                code="pre_sbp_rising",
                reason=f"Pre-infusion SBP rises {slope:.1f} mmHg per session over {len(rows)} "
                f"sessions (the clinic warns above {limit:g}): review blood pressure control.",
                source=MONITORING_RULES,
            )
        )
    for code, label, attr, level in (
        ("pre_sbp_above_warn", "SBP", "pre_sbp_mmhg", tolerability.sbp_warn_above_mmhg),
        ("pre_dbp_above_warn", "DBP", "pre_dbp_mmhg", tolerability.dbp_warn_above_mmhg),
    ):
        high = [s for s in rows if getattr(s, attr) > level]
        if high:
            days = ", ".join(f"{getattr(s, attr):g} on {s.day}" for s in high)
            findings.append(
                Finding(
                    severity=_WARN,
                    code=code,
                    reason=f"Pre-infusion {label} above {level:g} mmHg: {days}.",
                    source=MONITORING_RULES,
                )
            )
    rises = [s.peak_sbp_mmhg - s.pre_sbp_mmhg for s in rows]
    return BPTrend(
        sessions=rows,
        slope_sbp_mmhg_per_session=slope,
        peak_rise_sbp_mmhg=max(rises, default=None),
        findings=tuple(findings),
    )
