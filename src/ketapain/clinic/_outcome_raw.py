"""The raw outcome rows of the courses: the set-based query and the opioid doses at two
dates, before de-identification and the derivations that depend on the analysis time
(:func:`ketapain.clinic.outcomes.analysis_table` does those).

Optionally scoped to some patients (their courses only), which is how a snapshot is
refreshed after a day's charting (:mod:`ketapain.clinic.outcome_snapshot`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from datetime import date
from typing import Any, Final

import polars as pl
from sqlalchemy import text
from sqlalchemy.orm import Session

from ketapain.clinic._outcome_sql import COURSE_QUERY_COLUMNS, course_query, medication_query
from ketapain.clinic.charting import CHARTING_INTERVAL
from ketapain.protocols.interactions import mme_per_day

__all__ = [
    "LFT_HOLD_MULTIPLE",
    "MME_AFTER_DAYS",
    "RELIEF_LOST_FRACTION",
    "hex_id",
    "mme_after_time",
    "raw_table",
]

# Relief is a 30% reduction (Farrar 2001): it is lost when NRS rises above 70% of baseline.
RELIEF_LOST_FRACTION: Final = 0.70
# ALT or AST above 3 x ULN: the hold threshold after Noppers 2011 (Pain 152:2173).
LFT_HOLD_MULTIPLE: Final = 3.0
# Opioid use is read again 12 weeks after the series: the Sigtermans 2009 follow-up.
MME_AFTER_DAYS: Final = 84.0
_DAY_S: Final = 86400.0


def hex_id(value: Any) -> str:
    """A record id as 32 hex digits, as either database returns it."""
    return value.hex if isinstance(value, uuid.UUID) else str(value).replace("-", "")


def _day(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _courses(session: Session, params: dict[str, Any], scoped: bool) -> pl.DataFrame:
    dialect = session.get_bind().dialect.name
    rows = session.execute(text(course_query(dialect, scoped=scoped)), params).fetchall()
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in COURSE_QUERY_COLUMNS]
    data: dict[str, list[Any]] = dict(zip(COURSE_QUERY_COLUMNS, map(list, columns), strict=True))
    for name in ("course_id", "patient_id"):
        data[name] = [hex_id(v) for v in data[name]]
    for name in ("start_date", "birth_date"):
        data[name] = [_day(v) for v in data[name]]
    for name in ("lft_checked", "lft_elevated", "lft_over_3x_uln"):
        data[name] = [None if v is None else int(v) > 0 for v in data[name]]
    schema: dict[str, Any] = dict.fromkeys(COURSE_QUERY_COLUMNS, pl.Float64)
    schema |= dict.fromkeys(
        ("course_id", "patient_id", "protocol", "status", "sex", "diagnosis"), pl.String
    )
    schema |= {"start_date": pl.Date, "birth_date": pl.Date}
    schema |= dict.fromkeys(("lft_checked", "lft_elevated", "lft_over_3x_uln"), pl.Boolean)
    return pl.DataFrame(data, schema=schema)


def _mme_rows(session: Session, scope: str | None) -> pl.DataFrame:
    """Opioid rows with the time each was valid: from its recording until a correction.

    A chain of corrections that ends in a retraction (entered in error) never counted.
    """
    dialect = session.get_bind().dialect.name
    query = text(medication_query(dialect, scoped=scope is not None))
    rows = session.execute(query, {} if scope is None else {"scope": scope}).fetchall()
    replaced: dict[str, float] = {}
    corrects: dict[str, str] = {}
    void: set[str] = set()
    for rid, fix, _, _, _, _, _, error, recorded_t in rows:
        if fix is not None:
            old, new = hex_id(fix), hex_id(rid)
            corrects[new] = old
            replaced[old] = min(replaced.get(old, recorded_t), recorded_t)
            if error:
                void.add(new)
    for rid in list(void):  # a retraction voids every earlier version of the entry
        while rid in corrects:
            rid = corrects[rid]
            void.add(rid)
    factors: dict[tuple[str, float | None, float | None], float | None] = {}
    out = []
    for rid, _, pid, name, mg, mcg, active, error, recorded_t in rows:
        k = (name, mg, mcg)
        if k not in factors:
            m = mme_per_day(name, dose_mg_per_day=mg, dose_mcg_per_h=mcg)
            factors[k] = None if m is None else m.mme_per_day
        mme = factors[k]
        key = hex_id(rid)
        if mme is None or not active or error or key in void:
            continue
        out.append((hex_id(pid), float(recorded_t), replaced.get(key), mme))
    return pl.DataFrame(
        out,
        schema={
            "patient_id": pl.String,
            "from_t": pl.Float64,
            "to_t": pl.Float64,
            "mme": pl.Float64,
        },
        orient="row",
    )


def _mme_at(courses: pl.DataFrame, meds: pl.DataFrame, at: str) -> pl.DataFrame:
    """MME/day of each course's patient at the time in column ``at`` (0 without opioids)."""
    valid = (
        courses.select("course_id", "patient_id", at)
        .join(meds, on="patient_id")
        .filter(
            (pl.col("from_t") <= pl.col(at))
            & (pl.col("to_t").is_null() | (pl.col("to_t") > pl.col(at)))
        )
        .group_by("course_id")
        .agg(pl.col("mme").sum())
    )
    return courses.select("course_id").join(valid, on="course_id", how="left")


def mme_after_time(as_of_t: float) -> pl.Expr:
    """When opioid use is read after the series: 12 weeks on, or the analysis time if
    earlier, never before the series end (epoch s)."""
    end = pl.col("series_end_t")
    return pl.max_horizontal(pl.min_horizontal(end + MME_AFTER_DAYS * _DAY_S, as_of_t), end)


def raw_table(
    session: Session, *, as_of_t: float, patients: Collection[str] | None = None
) -> pl.DataFrame:
    """One raw row per course (of ``patients`` only, as 32-hex ids, when given), with the
    opioid MME/day at the first session and after the series."""
    # The ids checked and written as 32 hex digits, the form SQLite keeps.
    scope = None if patients is None else json.dumps(sorted(uuid.UUID(hex=p).hex for p in patients))
    params: dict[str, Any] = {
        "as_of_t": as_of_t,
        "early_h": CHARTING_INTERVAL.total_seconds() / 3600.0,
        "lost_fraction": RELIEF_LOST_FRACTION,
        "uln_multiple": LFT_HOLD_MULTIPLE,
    }
    if scope is not None:
        params["scope"] = scope
    raw = _courses(session, params, scope is not None)
    start_t = pl.col("start_date").cast(pl.Datetime("ms")).dt.epoch("s").cast(pl.Float64)
    raw = raw.with_columns(
        start_t=start_t,
        mme_before_t=pl.coalesce("first_start_t", start_t),
        mme_after_t=mme_after_time(as_of_t),
    )
    meds = _mme_rows(session, scope)
    # A medication list first charted after the first session describes the start too.
    first_list = meds.group_by("patient_id").agg(pl.col("from_t").min().alias("first_list_t"))
    raw = raw.join(first_list, on="patient_id", how="left").with_columns(
        mme_before_t=pl.max_horizontal("mme_before_t", "first_list_t")
    )
    before = _mme_at(raw, meds, "mme_before_t")
    after = _mme_at(raw.filter(pl.col("series_end_t").is_not_null()), meds, "mme_after_t")
    raw = raw.join(before.rename({"mme": "mme_before"}), on="course_id", how="left").join(
        after.rename({"mme": "mme_after"}), on="course_id", how="left"
    )
    return raw.drop("first_list_t", "mme_before_t", "mme_after_t")
