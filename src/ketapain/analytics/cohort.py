"""The analysis table: one row per course, de-identified, the input of every outcome figure.

The clinic builds it from the records (:func:`ketapain.clinic.outcomes.analysis_table`);
a virtual trial or another registry can build the same table, and every function of
:mod:`ketapain.analytics` reads nothing else. :data:`COLUMNS` documents each column: its
type, unit and meaning. Times count in days from the end of the series (the stop of the
last session given), except ``series_end_day``, which counts from the start date.

Nothing in the table names a person: keys are keyed hashes of the record ids, ages of 90
and over read 90, and :func:`deidentify` (for exports) keeps only the year of the start
date, as the HIPAA Safe Harbor method asks (45 CFR 164.514(b)(2)).

>>> [c.name for c in COLUMNS][:4]
['course_key', 'patient_key', 'protocol', 'diagnosis']
>>> check_cohort(empty_cohort()).height
0
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

import polars as pl

from ketapain.errors import InvalidValueError
from ketapain.sources import Source

__all__ = [
    "AGE_CAP_Y",
    "COLUMNS",
    "FOLLOW_UP_WEEKS",
    "HIPAA_SAFE_HARBOR",
    "CohortFilter",
    "Column",
    "check_cohort",
    "deidentify",
    "empty_cohort",
    "filter_cohort",
    "week_column",
]

HIPAA_SAFE_HARBOR: Final = Source(
    authors="US Department of Health and Human Services",
    year=2012,
    journal="45 CFR 164.514(b)(2), Guidance on de-identification (Safe Harbor method)",
    locator="dates reduced to the year; ages over 89 aggregated into one category of 90 or older",
)
AGE_CAP_Y: Final = 90  # HIPAA Safe Harbor: ages over 89 read "90 or older"
# Weekly follow-up visits for 12 weeks after the series (Sigtermans 2009, Pain 145:304).
FOLLOW_UP_WEEKS: Final = tuple(range(1, 13))


def week_column(week: int) -> str:
    """The column of the follow-up NRS ``week`` weeks after the series."""
    return f"nrs_week_{week}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    """One column of the analysis table."""

    name: str
    dtype: type[pl.DataType] | pl.DataType
    description: str
    low: float | None = None
    high: float | None = None


def _nrs(name: str, what: str) -> Column:
    return Column(name=name, dtype=pl.Float64, description=what, low=0.0, high=10.0)


def _count(name: str, what: str) -> Column:
    return Column(name=name, dtype=pl.Int64, description=what, low=0.0)


def _days(name: str, what: str) -> Column:
    return Column(name=name, dtype=pl.Float64, description=what, low=0.0)


COLUMNS: Final[tuple[Column, ...]] = (
    Column(name="course_key", dtype=pl.String, description="pseudonymous course key"),
    Column(name="patient_key", dtype=pl.String, description="pseudonymous patient key"),
    Column(name="protocol", dtype=pl.String, description="protocol name"),
    Column(
        name="diagnosis",
        dtype=pl.String,
        description="vocabulary key of the patient's first pain diagnosis ('unknown' if none)",
    ),
    Column(name="sex", dtype=pl.String, description="female, male, other or unknown"),
    Column(
        name="age_y",
        dtype=pl.Int64,
        description="age at the start date, whole years (90 for 90 and over)",
        low=0.0,
        high=AGE_CAP_Y,
    ),
    Column(name="start_date", dtype=pl.Date, description="the plan's start date"),
    Column(
        name="status",
        dtype=pl.String,
        description="planned, in_progress, completed, stopped_early or cancelled",
    ),
    _count("sessions_planned", "sessions in the plan in force"),
    _count("sessions_given", "sessions whose pump started (the last bag hung for each)"),
    _count(
        "early_stops",
        "sessions stopped at least one charting interval (15 min) before the programmed end",
    ),
    Column(
        name="infusion_h", dtype=pl.Float64, description="hours the pump ran, all sessions", low=0
    ),
    Column(name="dose_mg", dtype=pl.Float64, description="ketamine delivered, mg", low=0.0),
    Column(
        name="dosing_weight_kg",
        dtype=pl.Float64,
        description="dosing weight of the first session, kg",
        low=0.0,
    ),
    Column(
        name="mean_rate_mg_per_kg_h",
        dtype=pl.Float64,
        description="dose_mg / dosing_weight_kg / infusion_h",
        low=0.0,
    ),
    _nrs("baseline_nrs", "pain NRS the plan started from"),
    _nrs("nrs_end", "pain NRS charted after the last session given"),
    _days("series_end_day", "days from the start date (midnight) to the last session's stop"),
    *(
        _nrs(week_column(w), f"mean follow-up NRS charted {w} weeks (+-3.5 days) after the series")
        for w in FOLLOW_UP_WEEKS
    ),
    _days("last_follow_up_day", "days from the series end to the last follow-up NRS"),
    _days(
        "relief_lost_day",
        "days from the series end to the first follow-up NRS above 70% of baseline",
    ),
    _days(
        "booster_day",
        "days from the series end to the first booster, if its date has come by the analysis",
    ),
    _count("boosters", "boosters booked"),
    _days("observed_day", "days from the series end to the analysis time"),
    Column(
        name="mme_before",
        dtype=pl.Float64,
        description="opioid morphine milligram equivalents a day at the first session",
        low=0.0,
    ),
    Column(
        name="mme_after",
        dtype=pl.Float64,
        description="MME/day 12 weeks after the series end, or at the analysis time if earlier",
        low=0.0,
    ),
    _days("mme_after_day", "days from the series end to when mme_after was read"),
    _count("side_effects", "side effects charted during the course's sessions"),
    _count("significant_side_effects", "of which moderate or severe"),
    _count("sessions_with_side_effects", "sessions with at least one side effect"),
    _count("alarms", "vital-sign and score alarms raised during the sessions"),
    _count("stop_alarms", "of which at the stop level"),
    Column(
        name="lft_checked",
        dtype=pl.Boolean,
        description="an ALT or AST collected after the first session",
    ),
    Column(
        name="lft_elevated",
        dtype=pl.Boolean,
        description="ALT or AST above the lab's upper reference limit after the first session",
    ),
    Column(
        name="lft_over_3x_uln",
        dtype=pl.Boolean,
        description="ALT or AST above 3 x the upper limit (Noppers 2011) after the first session",
    ),
    _nrs("predicted_nrs_end", "NRS the plan's forecast expected after the last session"),
    _nrs("predicted_nrs_week_4", "NRS the plan's forecast expected 4 weeks after the series"),
    _nrs("predicted_nrs_week_12", "NRS the plan's forecast expected 12 weeks after the series"),
)
_BY_NAME: Final = {c.name: c for c in COLUMNS}


def empty_cohort() -> pl.DataFrame:
    """A table with every column and no rows."""
    return pl.DataFrame(schema={c.name: c.dtype for c in COLUMNS})


def check_cohort(table: pl.DataFrame) -> pl.DataFrame:
    """Return ``table`` with its columns in order, or raise naming the first bad column.

    Every column of :data:`COLUMNS` must be there with its type; numbers must lie in
    their range and finite (nulls pass: a course not yet followed up has no week-12 NRS).
    """
    missing = [c.name for c in COLUMNS if c.name not in table.columns]
    if missing:
        raise InvalidValueError(missing[0], "a column of the analysis table", "missing")
    for c in COLUMNS:
        dtype = table.schema[c.name]
        if dtype != c.dtype:
            raise InvalidValueError(c.name, f"a column of type {c.dtype}", str(dtype))
        if c.low is None and c.high is None:
            continue
        col = table.get_column(c.name)
        odd = ~col.is_finite() if dtype == pl.Float64 else col.is_null() & False
        bad = odd.fill_null(False)
        if c.low is not None:
            bad = bad | (col < c.low).fill_null(False)
        if c.high is not None:
            bad = bad | (col > c.high).fill_null(False)
        if bad.any():
            value = col.filter(bad)[0]
            span = f"from {c.low:g}" if c.low is not None else ""
            span += f" to {c.high:g}" if c.high is not None else " up"
            raise InvalidValueError(c.name, f"numbers {span.strip()}", value)
    return table.select([c.name for c in COLUMNS])


@dataclass(frozen=True, slots=True, kw_only=True)
class CohortFilter:
    """Which courses a report covers: start dates, protocols and diagnoses (empty: all)."""

    start_from: date | None = None
    start_to: date | None = None
    protocols: tuple[str, ...] = ()
    diagnoses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.start_from and self.start_to and self.start_from > self.start_to:
            raise InvalidValueError(
                "start_to", f"on or after start_from ({self.start_from})", str(self.start_to)
            )

    def describe(self) -> str:
        """The filter in words, for a report's heading."""
        parts = []
        if self.start_from or self.start_to:
            lo = self.start_from.isoformat() if self.start_from else "the first course"
            hi = self.start_to.isoformat() if self.start_to else "today"
            parts.append(f"courses starting {lo} to {hi}")
        if self.protocols:
            parts.append("protocol " + ", ".join(self.protocols))
        if self.diagnoses:
            parts.append("diagnosis " + ", ".join(self.diagnoses))
        return "; ".join(parts) or "all courses"


def filter_cohort(table: pl.DataFrame, f: CohortFilter) -> pl.DataFrame:
    """The rows of ``table`` that ``f`` selects."""
    cond = pl.lit(True)
    if f.start_from is not None:
        cond = cond & (pl.col("start_date") >= f.start_from)
    if f.start_to is not None:
        cond = cond & (pl.col("start_date") <= f.start_to)
    if f.protocols:
        cond = cond & pl.col("protocol").is_in(list(f.protocols))
    if f.diagnoses:
        cond = cond & pl.col("diagnosis").is_in(list(f.diagnoses))
    return table.filter(cond)


def deidentify(table: pl.DataFrame) -> pl.DataFrame:
    """The table for export: the start date reduced to its year (HIPAA Safe Harbor)."""
    out = check_cohort(table)
    year = pl.col("start_date").dt.year().cast(pl.Int64).alias("start_year")
    return (
        out.with_columns(year)
        .drop("start_date")
        .select([("start_year" if c.name == "start_date" else c.name) for c in COLUMNS])
    )


def column(name: str) -> Column:
    """The documented column ``name``."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise InvalidValueError("column", "a column of the analysis table", name) from None
