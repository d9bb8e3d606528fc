"""The whole outcome analysis of a cohort: every figure a report shows, from one table.

:func:`analyse` filters the analysis table (:mod:`.cohort`) and computes responder rates
overall and by each breakdown, the durability curves, opioid change, safety, model
calibration and the clinic's figures beside the literature's (:mod:`.literature`).

>>> from ketapain.analytics.cohort import empty_cohort
>>> a = analyse(empty_cohort())
>>> a.courses, a.as_dict()["filter"]
(0, 'all courses')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import polars as pl

from ketapain.analytics.calibration import (
    Anchor,
    TrajectoryPoint,
    calibration,
    per_course,
    trajectory,
)
from ketapain.analytics.cohort import CohortFilter, check_cohort, filter_cohort
from ketapain.analytics.durability import Durability, relief_duration, time_to_booster
from ketapain.analytics.literature import LITERATURE, LiteratureFigure
from ketapain.analytics.opioids import OpioidChange, opioid_change
from ketapain.analytics.proportions import Mean, Proportion, mean_ci
from ketapain.analytics.responders import GROUPINGS, ResponderRate, relieved, responder_rates
from ketapain.analytics.safety import Safety, safety
from ketapain.errors import InvalidValueError

__all__ = ["RELIEF_WEEKS_DAYS", "CohortAnalysis", "Comparison", "analyse"]

# Patil 2012 reports the share with relief beyond 3 weeks.
RELIEF_WEEKS_DAYS: Final = 21.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """A literature figure and the clinic's value of the same measure (None if unknown)."""

    figure: LiteratureFigure
    clinic: Proportion | Mean | None

    def as_dict(self) -> dict[str, Any]:
        return {"literature": self.figure.as_dict(),
                "clinic": None if self.clinic is None else self.clinic.as_dict()}  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class CohortAnalysis:
    """Every figure of a cohort report."""

    filter: CohortFilter
    table: pl.DataFrame = field(repr=False)
    courses: int
    patients: int
    treated: int
    responders: list[ResponderRate]
    responders_by: dict[str, list[ResponderRate]]
    relief: Durability | None
    booster: Durability | None
    opioids: OpioidChange
    safety: Safety
    calibration: list[Anchor]
    trajectory: list[TrajectoryPoint]
    measures: dict[str, Proportion | Mean]
    literature: list[Comparison]

    def responder(self, timepoint: str, criterion: str) -> Proportion:
        """The overall rate at ``timepoint`` by ``criterion``."""
        for r in self.responders:
            if r.timepoint == timepoint and r.criterion.name == criterion:
                return r.rate
        names = sorted({f"{r.timepoint}/{r.criterion.name}" for r in self.responders})
        raise InvalidValueError("timepoint/criterion", f"one of {', '.join(names)}",
                                f"{timepoint}/{criterion}")  # fmt: skip

    def per_course_calibration(self) -> pl.DataFrame:
        """Each course's predicted and observed NRS at each anchor."""
        return per_course(self.table)

    def as_dict(self) -> dict[str, Any]:
        """JSON of the whole analysis (the contract of ``ketapain report --format json``)."""
        return {
            "filter": self.filter.describe(),
            "courses": self.courses,
            "patients": self.patients,
            "treated_courses": self.treated,
            "responders": [r.as_dict() for r in self.responders],
            "responders_by": {
                by: [r.as_dict() for r in rows] for by, rows in self.responders_by.items()
            },
            "relief_duration": None if self.relief is None else self.relief.as_dict(),
            "time_to_booster": None if self.booster is None else self.booster.as_dict(),
            "opioids": self.opioids.as_dict(),
            "safety": self.safety.as_dict(),
            "calibration": [a.as_dict() for a in self.calibration],
            "trajectory": [p.as_dict() for p in self.trajectory],
            "measures": {k: v.as_dict() for k, v in self.measures.items()},
            "literature": [c.as_dict() for c in self.literature],
        }


def _relief_beyond(t: pl.DataFrame, days: float) -> Proportion:
    """Treated courses relieved at the end and still at ``days`` (status known then)."""
    known = t.filter(pl.col("nrs_end").is_not_null())
    responded = relieved(pl.col("baseline_nrs"), pl.col("nrs_end"))
    lost = pl.min_horizontal("relief_lost_day", "booster_day")
    lasted = responded & (lost.is_null() | (lost > days))
    unknown = responded & lost.is_null() & (pl.col("last_follow_up_day").fill_null(0.0) < days)
    flags = known.filter(~unknown).select(lasted.alias("lasted")).get_column("lasted")
    return Proportion(int(flags.sum()), flags.len())


def _measures(t: pl.DataFrame, a: dict[str, Any]) -> dict[str, Proportion | Mean]:
    rates: dict[tuple[str, str], Proportion] = {
        (r.timepoint, r.criterion.name): r.rate for r in a["responders"]
    }
    drop = (t.get_column("baseline_nrs") - t.get_column("nrs_end")).drop_nulls().to_numpy()
    s: Safety = a["safety"]
    o: OpioidChange = a["opioids"]
    return {
        "responders_end_30": rates[("end", "reduction_30")],
        "responders_end_2pt": rates[("end", "points_2")],
        "responders_week_4_2pt": rates[("week_4", "points_2")],
        "relief_beyond_3_weeks": _relief_beyond(t, RELIEF_WEEKS_DAYS),
        "mean_drop_end": mean_ci(np.asarray(drop, dtype=float)),
        "mean_nrs_week_1": mean_ci(t.get_column("nrs_week_1").drop_nulls().to_numpy()),
        "opioid_reduced_20": o.reduced_20,
        "significant_side_effects": s.patients_with_significant_side_effects,
        "any_side_effects": s.patients_with_side_effects,
        "lft_elevated": s.lft_elevated,
        "lft_over_3x_uln": s.lft_over_3x_uln,
    }


def analyse(table: pl.DataFrame, f: CohortFilter | None = None) -> CohortAnalysis:
    """Every figure of the report for the courses ``f`` selects (default: all)."""
    f = f or CohortFilter()
    t = filter_cohort(check_cohort(table), f)
    treated = t.filter(pl.col("sessions_given") > 0)
    parts: dict[str, Any] = {
        "responders": responder_rates(t),
        "safety": safety(t),
        "opioids": opioid_change(t),
    }
    measures = _measures(treated, parts)
    return CohortAnalysis(
        filter=f,
        table=t,
        courses=t.height,
        patients=t.get_column("patient_key").n_unique(),
        treated=treated.height,
        responders=parts["responders"],
        responders_by={by: responder_rates(t, by=by) for by in GROUPINGS},
        relief=relief_duration(t),
        booster=time_to_booster(t),
        opioids=parts["opioids"],
        safety=parts["safety"],
        calibration=calibration(treated),
        trajectory=trajectory(t),
        measures=measures,
        literature=[Comparison(figure=x, clinic=measures.get(x.measure)) for x in LITERATURE],
    )
