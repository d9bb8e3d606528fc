"""Fixtures for the outcome-analytics tests: an analysis table from a few hand-written courses.

``make_cohort`` builds a valid analysis table (every column of ``COLUMNS``, with its
type) from course dicts that name only the columns a test is about; every other column
takes a neutral default: a completed five-session course of a 50-year-old woman with
CRPS, baseline NRS 8, no follow-up, no booster, no opioids, no side effects, no liver
tests and no forecast. Course ``i`` gets key ``c{i}`` and, unless told, patient ``p{i}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

import polars as pl
import pytest

from ketapain.analytics.cohort import COLUMNS, empty_cohort

MakeCohort = Callable[..., pl.DataFrame]

# Neutral values of the columns a test leaves out (None: null).
DEFAULTS: dict[str, Any] = {
    "protocol": "outpatient",
    "diagnosis": "crps",
    "sex": "female",
    "age_y": 50,
    "start_date": date(2024, 1, 1),
    "status": "completed",
    "sessions_planned": 5,
    "sessions_given": 5,
    "early_stops": 0,
    "infusion_h": 20.0,
    "dose_mg": 400.0,
    "dosing_weight_kg": 80.0,
    "mean_rate_mg_per_kg_h": 0.25,
    "baseline_nrs": 8.0,
    "series_end_day": 4.5,
    "boosters": 0,
    "observed_day": 90.0,
    "mme_before": 0.0,
    "side_effects": 0,
    "significant_side_effects": 0,
    "sessions_with_side_effects": 0,
    "alarms": 0,
    "stop_alarms": 0,
    "lft_checked": False,
    "lft_elevated": False,
    "lft_over_3x_uln": False,
}


def build_cohort(*courses: Mapping[str, Any]) -> pl.DataFrame:
    """An analysis table with one row per course dict, defaults filling the rest."""
    schema = empty_cohort().schema
    unknown = {k for c in courses for k in c} - set(schema)
    if unknown:
        raise KeyError(f"not columns of the analysis table: {sorted(unknown)}")
    rows = []
    for i, course in enumerate(courses):
        row: dict[str, Any] = {c.name: None for c in COLUMNS}
        row |= DEFAULTS | {"course_key": f"c{i}", "patient_key": f"p{i}"} | dict(course)
        for name, dtype in schema.items():
            if dtype == pl.Float64 and isinstance(row[name], int):
                row[name] = float(row[name])
        rows.append(row)
    return pl.DataFrame(rows, schema=schema)


@pytest.fixture
def make_cohort() -> MakeCohort:
    """The factory ``make_cohort(course, ...)`` of valid analysis tables."""
    return build_cohort
