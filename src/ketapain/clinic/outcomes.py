"""The analysis table of outcome reports, built from the records in one set-based query.

:func:`analysis_table` returns one de-identified row per course in the layout
:mod:`ketapain.analytics.cohort` documents. The database does the work (window functions
over the pump events, aggregates over scores, side effects, alarms and labs; see
:mod:`._outcome_sql`), and Polars the rest: morphine equivalents as of two dates, ages and
pseudonymous keys. It reads what the services wrote and nothing else: the dose is the
integral of the pump events, NRS the charted scores, a session the last bag hung for it.

Definitions (each in :data:`~ketapain.analytics.cohort.COLUMNS`):

* **early stop**: the pump ran at least one charting interval (15 min, Goldberg 2005)
  less than the session's program;
* **relief lost**: the first follow-up NRS above 70% of baseline, i.e. no longer a 30%
  reduction (Farrar 2001);
* **MME before**: opioid MME/day at the first session, or on the first medication list
  charted if that came later;
* **MME after**: opioid MME/day 12 weeks after the series (the Sigtermans 2009 follow-up)
  or at the analysis time if that is earlier;
* **LFT elevation**: ALT or AST above the lab's upper reference limit after the first
  session; above 3 x ULN is the hold threshold of Noppers 2011.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import polars as pl
from sqlalchemy.orm import Session

from ketapain.analytics.cohort import AGE_CAP_Y, check_cohort
from ketapain.clinic._outcome_raw import (
    LFT_HOLD_MULTIPLE,
    MME_AFTER_DAYS,
    RELIEF_LOST_FRACTION,
    hex_id,
    mme_after_time,
    raw_table,
)
from ketapain.clinic.audit import Actor, reading, record_event
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.outcome_snapshot import refreshed_raw
from ketapain.clinic.permissions import Action, require
from ketapain.errors import InvalidValueError
from ketapain.protocols.citations import NOPPERS_2011_LIVER
from ketapain.sources import FARRAR_2001

__all__ = [
    "LFT_HOLD_MULTIPLE",
    "MME_AFTER_DAYS",
    "RELIEF_LOST_FRACTION",
    "analysis_table",
    "cohort_table",
]

_SOURCES: Final = (FARRAR_2001, NOPPERS_2011_LIVER)
_DAY_S: Final = 86400.0


def _pseudonym(key: bytes) -> Any:
    def keyed(value: Any) -> str:
        return hashlib.blake2b(hex_id(value).encode(), key=key, digest_size=8).hexdigest()

    return keyed


def _age(birth: pl.Expr, on: pl.Expr) -> pl.Expr:
    years = on.dt.year() - birth.dt.year()
    before_birthday = (on.dt.month() < birth.dt.month()) | (
        (on.dt.month() == birth.dt.month()) & (on.dt.day() < birth.dt.day())
    )
    return (years - before_birthday.cast(pl.Int32)).clip(0, AGE_CAP_Y).cast(pl.Int64)


def analysis_table(
    session: Session,
    actor: Actor,
    *,
    as_of: datetime | None = None,
    key: bytes | None = None,
    snapshot: Path | None = None,
) -> pl.DataFrame:
    """One de-identified row per course (:data:`ketapain.analytics.cohort.COLUMNS`).

    ``as_of`` (default now) is the analysis time: an infusion still running counts up to
    it, and follow-up scores, liver tests and boosters dated after it are not counted.
    ``start_date`` is the first plan's (a replan that moves the course keeps its start).
    ``key`` makes the pseudonymous keys repeatable
    across exports; by default each call draws a new one, so two exports cannot be linked.
    ``snapshot`` names a file that keeps the raw rows between calls: only the courses of
    patients whose records changed since (by the audit log) are read again.
    """
    require(actor, Action.READ_OUTCOMES, "outcome reports are for physicians and admins")
    as_of = as_of or utc_now()
    if as_of.tzinfo is None:
        raise InvalidValueError("as_of", "a timezone-aware time (UTC)", as_of.isoformat())
    as_of_t = as_of.timestamp()
    if snapshot is None:
        raw = raw_table(session, as_of_t=as_of_t)
    else:
        raw = refreshed_raw(session, snapshot, as_of_t=as_of_t)
    start_t = pl.col("start_t")
    raw = raw.with_columns(mme_after_t=mme_after_time(as_of_t))
    keyed = _pseudonym(key or secrets.token_bytes(16))
    end = pl.col("series_end_t")
    given = pl.col("sessions_given").fill_null(0) > 0

    def days(expr: pl.Expr) -> pl.Expr:
        return expr / _DAY_S

    table = raw.select(
        pl.col("course_id").map_elements(keyed, return_dtype=pl.String).alias("course_key"),
        pl.col("patient_id").map_elements(keyed, return_dtype=pl.String).alias("patient_key"),
        "protocol",
        pl.col("diagnosis").fill_null("unknown"),
        pl.col("sex").fill_null("unknown"),
        _age(pl.col("birth_date"), pl.col("start_date")).alias("age_y"),
        "start_date",
        pl.col("status").fill_null("planned"),
        pl.col("sessions_planned").cast(pl.Int64),
        pl.col("sessions_given").fill_null(0).cast(pl.Int64),
        pl.col("early_stops").fill_null(0).cast(pl.Int64),
        pl.col("infusion_h").fill_null(0.0),
        pl.col("dose_mg").fill_null(0.0),
        "dosing_weight_kg",
        pl.when(pl.col("infusion_h") > 0)
        .then(pl.col("dose_mg") / pl.col("dosing_weight_kg") / pl.col("infusion_h"))
        .alias("mean_rate_mg_per_kg_h"),
        "baseline_nrs",
        "nrs_end",
        days(end - pl.min_horizontal(start_t, pl.col("first_start_t"))).alias("series_end_day"),
        *(pl.col(f"nrs_week_{w}") for w in range(1, 13)),
        days(pl.col("last_follow_up_s")).alias("last_follow_up_day"),
        days(pl.col("relief_lost_s")).alias("relief_lost_day"),
        pl.when(pl.col("booster_t") <= as_of_t)
        .then(days(pl.col("booster_t") - end).clip(0.0))
        .alias("booster_day"),
        pl.col("boosters").fill_null(0).cast(pl.Int64),
        pl.when(given).then(days(pl.lit(as_of_t) - end).clip(0.0)).alias("observed_day"),
        pl.col("mme_before").fill_null(0.0),
        pl.when(given).then(pl.col("mme_after").fill_null(0.0)).alias("mme_after"),
        days(pl.col("mme_after_t") - end).alias("mme_after_day"),
        *(
            pl.col(n).fill_null(0).cast(pl.Int64)
            for n in (
                "side_effects",
                "significant_side_effects",
                "sessions_with_side_effects",
                "alarms",
                "stop_alarms",
            )
        ),
        pl.col("lft_checked").fill_null(False),
        pl.col("lft_elevated").fill_null(False),
        pl.col("lft_over_3x_uln").fill_null(False),
        "predicted_nrs_end",
        "predicted_nrs_week_4",
        "predicted_nrs_week_12",
    )
    return check_cohort(table.sort("start_date", "course_key"))


def cohort_table(
    db: Database,
    actor: Actor,
    *,
    purpose: str,
    as_of: datetime | None = None,
    key: bytes | None = None,
    snapshot: Path | None = None,
) -> pl.DataFrame:
    """:func:`analysis_table` in a read session of its own; the read is audited with its
    ``purpose`` (report, export) and the number of courses."""
    with reading(db, actor) as session:
        table = analysis_table(session, actor, as_of=as_of, key=key, snapshot=snapshot)
    record_event(
        db,
        actor,
        action="read_outcomes",
        entity="analysis_table",
        detail=f"{purpose}: {table.height} courses, de-identified",
    )
    return table
