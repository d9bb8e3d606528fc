"""Opioid use before and after a course, in morphine milligram equivalents a day.

Among the courses whose patient took opioids at the first session (MME/day > 0, CDC 2022
factors) and that have a reading after the series, the share that reduced the daily dose
by at least 20% (the seed clinic's figure: "52% of patients reduce their opioid
consumption by at least 20%", Calliope Health, seed 002) and by at least half.

>>> from ketapain.analytics.cohort import empty_cohort
>>> opioid_change(empty_cohort()).reduced_20.n
0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import polars as pl

from ketapain.analytics.proportions import Mean, Proportion, mean_ci

__all__ = ["REDUCTION_FRACTIONS", "OpioidChange", "opioid_change"]

# 20%: the seed clinic's threshold (seed 002); 50%: a halving of the daily dose.
REDUCTION_FRACTIONS: Final = (0.20, 0.50)


@dataclass(frozen=True, slots=True, kw_only=True)
class OpioidChange:
    """MME/day before and after, and the shares that reduced."""

    on_opioids: int
    without_reading_after: int
    before: Mean
    after: Mean
    median_before: float | None
    median_after: float | None
    reduced_20: Proportion
    reduced_50: Proportion
    increased: Proportion
    stopped: Proportion

    def as_dict(self) -> dict[str, Any]:
        return {
            "on_opioids": self.on_opioids,
            "without_reading_after": self.without_reading_after,
            "mme_before": self.before.as_dict(),
            "mme_after": self.after.as_dict(),
            "median_mme_before": self.median_before,
            "median_mme_after": self.median_after,
            "reduced_20pct": self.reduced_20.as_dict(),
            "reduced_50pct": self.reduced_50.as_dict(),
            "increased": self.increased.as_dict(),
            "stopped": self.stopped.as_dict(),
            "source": "Calliope Health (seed 002), clinic page: 52% reduce by at least 20%",
        }


def opioid_change(table: pl.DataFrame) -> OpioidChange:
    """Before and after among the courses that started on opioids."""
    on = table.filter((pl.col("sessions_given") > 0) & (pl.col("mme_before") > 0))
    t = on.filter(pl.col("mme_after").is_not_null())
    before = t.get_column("mme_before").to_numpy().astype(float)
    after = t.get_column("mme_after").to_numpy().astype(float)
    n = int(before.size)
    change = (before - after) / before if n else np.zeros(0)
    lo20, lo50 = REDUCTION_FRACTIONS
    return OpioidChange(
        on_opioids=on.height,
        without_reading_after=on.height - n,
        before=mean_ci(before),
        after=mean_ci(after),
        median_before=float(np.median(before)) if n else None,
        median_after=float(np.median(after)) if n else None,
        reduced_20=Proportion(int(np.sum(change >= lo20 - 1e-12)), n),
        reduced_50=Proportion(int(np.sum(change >= lo50 - 1e-12)), n),
        increased=Proportion(int(np.sum(after > before)), n),
        stopped=Proportion(int(np.sum(after == 0)), n),
    )
