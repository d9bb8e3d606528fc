"""How long relief lasts, and how long until a booster: Kaplan-Meier curves with censoring.

**Relief duration** counts, for the courses that responded at the end of the series
(>= 30% below baseline; Farrar 2001), the days from the series end until relief was
lost: the first follow-up NRS above 70% of baseline, or a booster booked, whichever
came first. A course still relieved at its last follow-up NRS is censored there (at 0
with no follow-up at all): what happened after is unknown.

**Time to booster** counts, for every course with a session given, the days from the
series end to the first booster booked; a course without one is censored at the
analysis time, since a booster would have been booked in this clinic's records.

>>> import polars as pl
>>> from ketapain.analytics.cohort import empty_cohort
>>> relief_duration(empty_cohort()) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import polars as pl

from ketapain.analytics.responders import relieved
from ketapain.analytics.survival import KaplanMeier, kaplan_meier

__all__ = ["RELIEF_RESPONSE_FRACTION", "Durability", "relief_duration", "time_to_booster"]

RELIEF_RESPONSE_FRACTION: Final = 0.30  # Farrar 2001: a 30% reduction is "much improved"


@dataclass(frozen=True, slots=True, kw_only=True)
class Durability:
    """A Kaplan-Meier curve with the numbers behind it."""

    what: str
    curve: KaplanMeier
    events: int
    censored: int

    def as_dict(self) -> dict[str, Any]:
        lo, hi = self.curve.median_ci()
        return {
            "what": self.what,
            "n": self.curve.n,
            "events": self.events,
            "censored": self.censored,
            "median_days": self.curve.median(),
            "median_ci_days": [lo, hi],
            "time_days": self.curve.time.tolist(),
            "survival": self.curve.survival.tolist(),
            "ci_low": self.curve.ci_low.tolist(),
            "ci_high": self.curve.ci_high.tolist(),
            "at_risk": self.curve.at_risk.tolist(),
        }


def _fit(what: str, durations: np.ndarray, events: np.ndarray) -> Durability | None:
    if durations.size == 0:
        return None
    return Durability(
        what=what,
        curve=kaplan_meier(durations, events),
        events=int(events.sum()),
        censored=int((~events).sum()),
    )


def relief_duration(table: pl.DataFrame) -> Durability | None:
    """Days of relief after the series among end-of-series responders (None if none)."""
    responded = relieved(pl.col("baseline_nrs"), pl.col("nrs_end"), RELIEF_RESPONSE_FRACTION)
    t = table.filter((pl.col("sessions_given") > 0) & responded).select(
        lost=pl.min_horizontal("relief_lost_day", "booster_day"),
        seen=pl.col("last_follow_up_day").fill_null(0.0),
    )
    event = t.get_column("lost").is_not_null().to_numpy()
    days = t.select(pl.coalesce("lost", "seen")).to_series().to_numpy().astype(float)
    return _fit("relief duration (days after the series)", days, event)


def time_to_booster(table: pl.DataFrame) -> Durability | None:
    """Days from the series end to the first booster (None if no course was given)."""
    t = table.filter(pl.col("sessions_given") > 0).select(
        "booster_day", seen=pl.col("observed_day").fill_null(0.0)
    )
    event = t.get_column("booster_day").is_not_null().to_numpy()
    days = t.select(pl.coalesce("booster_day", "seen")).to_series().to_numpy().astype(float)
    return _fit("time to first booster (days after the series)", days, event)
