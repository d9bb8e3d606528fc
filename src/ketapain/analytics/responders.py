"""Responder rates: at the end of the series and 4 and 12 weeks after, by three criteria,
overall and by protocol, diagnosis, dose band, age band and sex.

A course is a responder at a time point when its NRS then is at least 30% below baseline
(IMMPACT "much improved", Farrar 2001), at least 50% below ("substantial", Dworkin 2008,
J Pain 9:105), or at least 2 points below (Farrar 2001; the criterion of Mangnus 2022).
The denominator is the courses with an NRS at that time point (complete cases); the
courses without one are counted as ``missing`` beside each rate.

>>> import polars as pl
>>> from ketapain.analytics.cohort import empty_cohort
>>> rows = responder_rates(empty_cohort())
>>> len(rows), rows[0].rate.n
(9, 0)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import polars as pl

from ketapain.analytics.proportions import Proportion
from ketapain.errors import InvalidValueError
from ketapain.sources import FARRAR_2001, Source

__all__ = [
    "AGE_BANDS_Y",
    "CRITERIA",
    "DOSE_BANDS_MG_PER_KG_H",
    "GROUPINGS",
    "TIMEPOINTS",
    "Criterion",
    "ResponderRate",
    "at_or_below",
    "group_column",
    "relieved",
    "responder_rates",
    "with_bands",
]

DWORKIN_2008: Final = Source(
    authors="Dworkin RH, Turk DC, Wyrwich KW, et al.",
    year=2008,
    journal="J Pain 9(2):105-121",
    title="Interpreting the clinical importance of treatment outcomes in chronic pain "
    "clinical trials: IMMPACT recommendations",
    locator="30% moderately important, 50% substantial improvement",
)
FARRAR_2001_CITE: Final = FARRAR_2001.cite()


# NRS are charted in tenths at most: a tolerance far below that keeps an exact 30% fall
# (6 -> 4.2, where 0.7 * 6 is 4.199999...) on the responder side of the line.
_TOLERANCE: Final = 1e-9


def at_or_below(nrs: pl.Expr, limit: pl.Expr) -> pl.Expr:
    """``nrs <= limit``, with a tolerance for floating-point rounding of the limit."""
    return nrs <= limit + _TOLERANCE


def relieved(baseline: pl.Expr, nrs: pl.Expr, fraction: float = 0.30) -> pl.Expr:
    """NRS at least ``fraction`` below baseline (30%: "much improved", Farrar 2001)."""
    return at_or_below(nrs, (1.0 - fraction) * baseline)


@dataclass(frozen=True, slots=True, kw_only=True)
class Criterion:
    """A responder criterion: a fall from baseline by a fraction or by points."""

    name: str
    label: str
    fraction: float | None = None
    points: float | None = None
    source: str

    def responded(self, baseline: pl.Expr, nrs: pl.Expr) -> pl.Expr:
        """True or False where ``nrs`` is known; null where it is not."""
        if self.fraction is not None:
            return at_or_below(nrs, (1.0 - self.fraction) * baseline)
        assert self.points is not None
        return at_or_below(nrs, baseline - self.points)


CRITERIA: Final = (
    Criterion(
        name="reduction_30", label=">= 30% reduction", fraction=0.30, source=FARRAR_2001_CITE
    ),
    Criterion(
        name="reduction_50", label=">= 50% reduction", fraction=0.50, source=DWORKIN_2008.cite()
    ),
    Criterion(name="points_2", label=">= 2-point reduction", points=2.0, source=FARRAR_2001_CITE),
)
# Time points and the NRS column each reads.
TIMEPOINTS: Final = {"end": "nrs_end", "week_4": "nrs_week_4", "week_12": "nrs_week_12"}

# Dose bands of the mean infusion rate: the seed clinic's usual range is 0.1-0.5 mg/kg/h
# (Calliope Health, seed 002) and its test infusions stay at or below 0.3 mg/kg/h
# (seed-outpatient protocol, seeds 000 and 002).
DOSE_BANDS_MG_PER_KG_H: Final = (0.1, 0.3, 0.5)
# 65 years: the older-patient threshold of ICH E7 (1993), Studies in support of special
# populations: geriatrics.
AGE_BANDS_Y: Final = (65,)


def _bands(col: str, edges: Sequence[float], unit: str) -> pl.Expr:
    labels = [f"< {edges[0]:g}{unit}"]
    labels += [f"{lo:g}-{hi:g}{unit}" for lo, hi in itertools.pairwise(edges)]
    labels.append(f">= {edges[-1]:g}{unit}")
    expr: Any = pl.when(pl.col(col).is_null()).then(pl.lit("not given"))
    for edge, label in zip(edges, labels, strict=False):
        expr = expr.when(pl.col(col) < edge).then(pl.lit(label))
    out: pl.Expr = expr.otherwise(pl.lit(labels[-1]))
    return out


def with_bands(table: pl.DataFrame) -> pl.DataFrame:
    """The table with ``dose_band`` and ``age_band`` columns added."""
    return table.with_columns(
        _bands("mean_rate_mg_per_kg_h", DOSE_BANDS_MG_PER_KG_H, " mg/kg/h").alias("dose_band"),
        _bands("age_y", AGE_BANDS_Y, " y").alias("age_band"),
    )


# Breakdowns a report offers, and the column each groups by.
GROUPINGS: Final = {
    "protocol": "protocol",
    "diagnosis": "diagnosis",
    "dose_band": "dose_band",
    "age_band": "age_band",
    "sex": "sex",
}


def group_column(by: str) -> str:
    """The column a breakdown ``by`` groups on."""
    try:
        return GROUPINGS[by]
    except KeyError:
        raise InvalidValueError("by", f"one of {', '.join(GROUPINGS)}", by) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponderRate:
    """The share of responders by one criterion at one time point, in one group."""

    group: str | None
    timepoint: str
    criterion: Criterion
    rate: Proportion
    missing: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "timepoint": self.timepoint,
            "criterion": self.criterion.name,
            "label": self.criterion.label,
            **self.rate.as_dict(),
            "missing": self.missing,
            "source": self.criterion.source,
        }


def responder_rates(table: pl.DataFrame, *, by: str | None = None) -> list[ResponderRate]:
    """Rates for every time point and criterion, overall or per value of ``by``.

    Only courses with a session given count; a course stopped after the test infusions
    counts, with the NRS after its last session, as the series' end.
    """
    t = with_bands(table).filter(pl.col("sessions_given") > 0)
    key = group_column(by) if by else None
    exprs = []
    for tp, col in TIMEPOINTS.items():
        known = pl.col(col).is_not_null()
        exprs.append(known.sum().alias(f"{tp}|n"))
        exprs.append((~known).sum().alias(f"{tp}|missing"))
        for c in CRITERIA:
            hit = c.responded(pl.col("baseline_nrs"), pl.col(col)).fill_null(False)
            exprs.append(hit.sum().alias(f"{tp}|{c.name}"))
    agg = t.group_by(key).agg(exprs).sort(key) if key else t.select(exprs)
    out = []
    for row in agg.iter_rows(named=True):
        group = None if key is None else str(row[key] if row[key] is not None else "unknown")
        for tp in TIMEPOINTS:
            for c in CRITERIA:
                out.append(
                    ResponderRate(
                        group=group,
                        timepoint=tp,
                        criterion=c,
                        rate=Proportion(int(row[f"{tp}|{c.name}"]), int(row[f"{tp}|n"])),
                        missing=int(row[f"{tp}|missing"]),
                    )
                )
    return out
