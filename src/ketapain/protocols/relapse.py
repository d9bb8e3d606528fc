"""Relapse after the series, and whether to suggest a booster.

Relief is lost when the NRS is back above ``relapse_fraction`` of the pre-course
baseline: 0.70 by default, i.e. relief has fallen below the 30% "much improved" change
of Farrar 2001 (0.70 = 1 - 0.30: a derivation, not a published relapse rule; the seed
protocol's booster note says the same, "pain back within 30% of the pre-treatment
level"). Each protocol may set its own ``relapse_fraction``.

- **Scores.** ``consecutive`` follow-up scores in a row above the threshold (1 by
  default: the first such score; 2 asks for a confirming score) make a relapse. Only
  the scores after the latest booster count, and only the latest run matters: a later
  score back at or below the threshold ends the relapse.
- **Patient request.** A booster request after the latest booster (or the series) is a
  relapse too, dated by the request.
- **Booster.** Suggested on relapse when the series brought relief (best NRS at or
  below the threshold) and the clinic's minimum interval, if it sets one
  (``min_interval_days``, no default: no published value), has passed since the last
  infusion given (latest booster, else the end of the series). A suggestion the interval
  blocks says so, with the earliest date.

>>> from datetime import date
>>> a = assess_relapse(baseline_nrs=8, best_nrs=3, series_end=date(2025, 3, 14),
...                    follow_up=[(date(2025, 4, 1), 4), (date(2025, 5, 2), 6)],
...                    as_of=date(2025, 5, 3))
>>> a.relapsed, a.since, a.trigger, a.suggest_booster
(True, datetime.date(2025, 5, 2), 'scores', True)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

from ketapain.errors import InvalidValueError
from ketapain.protocols._monitoring import calendar_date, number
from ketapain.sources import FARRAR_2001, Source

__all__ = ["RELAPSE_FRACTION", "RELAPSE_SOURCE", "RelapseAssessment", "assess_relapse"]

# Derived: relief below Farrar 2001's 30% "much improved" change, 1 - 0.30.
RELAPSE_FRACTION: Final = 0.70
RELAPSE_SOURCE: Final = FARRAR_2001.at(
    "relapse = NRS above 70% of baseline: relief below the 30% 'much improved' change "
    "(derived, 1 - 0.30)"
)
_SEED_BOOSTER: Final = Source(
    authors="NY Ketamine Infusions (seed 000); Power of Pain Foundation (Schwartzman/Getson)",
    year=None,
    journal="clinic page; protocol summary",
    locator="booster infusions (1-2 days) when pain returns",
)
_CLINIC_INTERVAL: Final = Source(
    authors="Clinic policy",
    year=None,
    journal="minimum interval between boosters set by the clinic (no published value)",
)
_TOL: Final = 1e-9  # NRS in tenths: keeps 0.7 x 8 = 5.6000000000000005 from moving the line


@dataclass(frozen=True, slots=True, kw_only=True)
class RelapseAssessment:
    """Relapse, the booster suggestion, the reasons and the booster history.

    ``booster_intervals_days`` are the days from the series end to the first booster,
    then between consecutive boosters; ``mean_interval_days`` is their mean.
    """

    relapsed: bool
    since: date | None
    trigger: str | None
    suggest_booster: bool
    reasons: tuple[str, ...]
    sources: tuple[Source, ...]
    as_of: date
    baseline_nrs: float
    best_nrs: float
    latest_nrs: float | None
    threshold_nrs: float
    relapse_fraction: float
    consecutive: int
    boosters: tuple[date, ...]
    booster_intervals_days: tuple[int, ...]
    mean_interval_days: float | None
    days_since_series_end: int
    days_since_last_booster: int | None
    min_interval_days: int | None
    earliest_booster_date: date | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record; dates in ISO format."""

        def iso(d: date | None) -> str | None:
            return None if d is None else d.isoformat()

        return {
            "relapsed": self.relapsed,
            "since": iso(self.since),
            "trigger": self.trigger,
            "suggest_booster": self.suggest_booster,
            "reasons": list(self.reasons),
            "sources": [s.cite() for s in self.sources],
            "as_of": self.as_of.isoformat(),
            "baseline_nrs": self.baseline_nrs,
            "best_nrs": self.best_nrs,
            "latest_nrs": self.latest_nrs,
            "threshold_nrs": self.threshold_nrs,
            "relapse_fraction": self.relapse_fraction,
            "consecutive": self.consecutive,
            "boosters": [b.isoformat() for b in self.boosters],
            "booster_intervals_days": list(self.booster_intervals_days),
            "mean_interval_days": self.mean_interval_days,
            "days_since_series_end": self.days_since_series_end,
            "days_since_last_booster": self.days_since_last_booster,
            "min_interval_days": self.min_interval_days,
            "earliest_booster_date": iso(self.earliest_booster_date),
        }


def _dates(items: Sequence[date], field: str, *, after: date, until: date) -> tuple[date, ...]:
    """Dates in time order, from ``after`` to ``until``, or InvalidValueError naming one."""
    for i, d in enumerate(items):
        calendar_date(d, f"{field}[{i}]")
        if not after <= d <= until:
            raise InvalidValueError(f"{field}[{i}]", f"from {after} to {until}", d)
    for i, (a, b) in enumerate(itertools.pairwise(items), start=1):
        if b < a:
            raise InvalidValueError(f"{field}[{i}]", f"on or after {a} (time order)", b)
    return tuple(items)


def _follow_up(
    items: Sequence[tuple[date, float]], *, after: date, until: date
) -> list[tuple[date, float]]:
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise InvalidValueError(f"follow_up[{i}]", "a pair (date, NRS)", item)
        out.append((item[0], number(item[1], f"follow_up[{i}].nrs", 0, 10)))
    _dates([d for d, _ in out], "follow_up", after=after, until=until)
    return out


def _relapse_by_scores(
    scores: list[tuple[date, float]], *, threshold: float, consecutive: int
) -> date | None:
    """The first date of the trailing run of scores above ``threshold``, if long enough."""
    run: list[date] = []
    for d, nrs in scores:
        run = [*run, d] if nrs > threshold + _TOL else []
    return run[0] if len(run) >= consecutive else None


def _booster(
    *,
    relapsed: bool,
    responded: bool,
    best: float,
    threshold: float,
    last_given: date,
    as_of: date,
    min_days: int | None,
) -> tuple[bool, date | None, list[str], list[Source]]:
    """Whether to suggest a booster, the earliest date if the interval blocks it, why."""
    if not relapsed:
        return False, None, [], []
    if not responded:
        return (
            False,
            None,
            [
                f"No booster suggested: the series never brought pain to {threshold:.3g} or "
                f"below (best {best:g}), so there is no relief to restore; the physician "
                "decides."
            ],
            [],
        )
    if min_days is not None and (as_of - last_given).days < min_days:
        earliest = last_given + timedelta(days=min_days)
        return (
            False,
            earliest,
            [
                f"Booster not suggested yet: the clinic's minimum interval is {min_days} days "
                f"and the last infusion was on {last_given}; earliest {earliest}."
            ],
            [_SEED_BOOSTER, _CLINIC_INTERVAL],
        )
    return (
        True,
        None,
        ["A booster is suggested (1-2 days of infusions) to restore relief."],
        [_SEED_BOOSTER],
    )


def assess_relapse(
    *,
    baseline_nrs: float,
    best_nrs: float,
    series_end: date,
    as_of: date,
    follow_up: Sequence[tuple[date, float]] = (),
    booster_requests: Sequence[date] = (),
    boosters: Sequence[date] = (),
    relapse_fraction: float = RELAPSE_FRACTION,
    consecutive: int = 1,
    min_interval_days: int | None = None,
) -> RelapseAssessment:
    """Assess relapse after the series from follow-up scores and booster requests.

    Parameters
    ----------
    baseline_nrs : float
        Pain before the course, NRS above 0 to 10.
    best_nrs : float
        The lowest NRS the series reached (0-10).
    series_end : date
        Day of the last infusion of the series.
    as_of : date
        The day of the assessment; no input may be later.
    follow_up : sequence of (date, float)
        Follow-up NRS after the series, in time order.
    booster_requests : sequence of date
        Days the patient asked for a booster, in time order.
    boosters : sequence of date
        Days boosters were given (the first day of each), in time order.
    relapse_fraction : float
        Relapse when NRS is above this fraction of baseline, above 0 and at most 1
        (default 0.70, derived from Farrar 2001; pass ``protocol.relapse_fraction``).
    consecutive : int
        Follow-up scores in a row above the threshold that make a relapse (default 1).
    min_interval_days : int, optional
        The clinic's minimum days between boosters (None: no minimum).

    Returns
    -------
    RelapseAssessment

    Examples
    --------
    A patient request two weeks after a booster, with a 28-day minimum interval:

    >>> from datetime import date
    >>> a = assess_relapse(baseline_nrs=8, best_nrs=2, series_end=date(2025, 1, 10),
    ...                    boosters=[date(2025, 3, 1)], booster_requests=[date(2025, 3, 15)],
    ...                    min_interval_days=28, as_of=date(2025, 3, 15))
    >>> a.relapsed, a.trigger, a.suggest_booster, a.earliest_booster_date
    (True, 'patient_request', False, datetime.date(2025, 3, 29))
    """
    baseline = number(baseline_nrs, "baseline_nrs", 0, 10, above=True)
    best = number(best_nrs, "best_nrs", 0, 10)
    fraction = number(relapse_fraction, "relapse_fraction", 0, 1, above=True)
    n_run = int(number(consecutive, "consecutive", 1, 100, whole=True))
    min_days = None
    if min_interval_days is not None:
        min_days = int(number(min_interval_days, "min_interval_days", 0, 3660, whole=True))
    calendar_date(series_end, "series_end")
    if calendar_date(as_of, "as_of") < series_end:
        raise InvalidValueError("as_of", f"a date on or after series_end ({series_end})", as_of)
    scores = _follow_up(follow_up, after=series_end, until=as_of)
    given = _dates(boosters, "boosters", after=series_end, until=as_of)
    requests = _dates(booster_requests, "booster_requests", after=series_end, until=as_of)
    threshold = fraction * baseline
    after_booster = [(d, v) for d, v in scores if not given or d > given[-1]]
    by_scores = _relapse_by_scores(after_booster, threshold=threshold, consecutive=n_run)
    by_request = next((r for r in requests if not given or r > given[-1]), None)
    reasons: list[str] = []
    since: date | None = None
    trigger: str | None = None
    if by_scores is not None and (by_request is None or by_scores <= by_request):
        since, trigger = by_scores, "scores"
    elif by_request is not None:
        since, trigger = by_request, "patient_request"
    where = "since the latest booster" if given else "since the series"
    line = f"{fraction:.0%} of the baseline {baseline:g} = {threshold:.3g}"
    if by_scores is not None:
        reasons.append(
            f"Pain back above {line} from {by_scores} ({n_run} score(s) in a row {where}): "
            f"relief has fallen below {1 - fraction:.0%}."
        )
    if by_request is not None:
        reasons.append(f"The patient asked for a booster on {by_request}.")
        if after_booster and after_booster[-1][1] <= threshold + _TOL:
            reasons.append(
                f"The latest NRS, {after_booster[-1][1]:g}, is still at or below {threshold:.3g}:"
                " discuss before booking."
            )
    if trigger is None:
        reasons.append(
            f"No relapse: no follow-up NRS {where} is above {line} ({n_run} in a row needed),"
            " and no booster request."
        )
    suggest, earliest, more, why = _booster(
        relapsed=trigger is not None,
        responded=best <= threshold + _TOL,
        best=best,
        threshold=threshold,
        last_given=given[-1] if given else series_end,
        as_of=as_of,
        min_days=min_days,
    )
    intervals = tuple((b - a).days for a, b in itertools.pairwise((series_end, *given)))
    return RelapseAssessment(
        relapsed=trigger is not None,
        since=since,
        trigger=trigger,
        suggest_booster=suggest,
        reasons=(*reasons, *more),
        sources=(RELAPSE_SOURCE, *why),
        as_of=as_of,
        baseline_nrs=baseline,
        best_nrs=best,
        latest_nrs=scores[-1][1] if scores else None,
        threshold_nrs=threshold,
        relapse_fraction=fraction,
        consecutive=n_run,
        boosters=given,
        booster_intervals_days=intervals,
        mean_interval_days=sum(intervals) / len(intervals) if intervals else None,
        days_since_series_end=(as_of - series_end).days,
        days_since_last_booster=(as_of - given[-1]).days if given else None,
        min_interval_days=min_days,
        earliest_booster_date=earliest,
    )
