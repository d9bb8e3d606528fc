"""Side effects and safety over the cohort: per session and per patient.

Per session: the share of sessions with a side effect, early stops, and alarms per 100
sessions (exact Poisson interval, Garwood 1936, Biometrika 28:437). Per patient: any
side effect, any moderate or severe ("significant") side effect, to set beside the seed
clinic's "35% of pain patients report significant side effects" (Calliope Health, seed
002); and, among patients whose ALT or AST was checked after a first session, an
elevation above the upper reference limit (seed 002: "approximately 10% ... temporary
enzyme elevations") or above 3 x ULN (Noppers 2011).

>>> from ketapain.analytics.cohort import empty_cohort
>>> safety(empty_cohort()).sessions
0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import polars as pl
from scipy import stats

from ketapain.analytics.proportions import Proportion

__all__ = ["PER_SESSIONS", "EventRate", "Safety", "safety"]

PER_SESSIONS: Final = 100  # alarms are counted per 100 sessions


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRate:
    """Events per 100 sessions with the exact Poisson 95% interval (Garwood 1936)."""

    events: int
    sessions: int

    def as_dict(self) -> dict[str, float | int | None]:
        if self.sessions == 0:
            return {"events": self.events, "sessions": 0, "per_100": None,
                    "ci_low": None, "ci_high": None}  # fmt: skip
        lo = stats.chi2.ppf(0.025, 2 * self.events) / 2 if self.events else 0.0
        hi = stats.chi2.ppf(0.975, 2 * self.events + 2) / 2
        scale = PER_SESSIONS / self.sessions
        return {
            "events": self.events,
            "sessions": self.sessions,
            "per_100": self.events * scale,
            "ci_low": float(lo) * scale,
            "ci_high": float(hi) * scale,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Safety:
    """Safety figures of the cohort."""

    sessions: int
    patients: int
    sessions_with_side_effects: Proportion
    early_stops: Proportion
    alarms: EventRate
    stop_alarms: EventRate
    patients_with_side_effects: Proportion
    patients_with_significant_side_effects: Proportion
    lft_elevated: Proportion
    lft_over_3x_uln: Proportion
    lft_checked_patients: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "patients": self.patients,
            "sessions_with_side_effects": self.sessions_with_side_effects.as_dict(),
            "early_stops": self.early_stops.as_dict(),
            "alarms_per_100_sessions": self.alarms.as_dict(),
            "stop_alarms_per_100_sessions": self.stop_alarms.as_dict(),
            "patients_with_side_effects": self.patients_with_side_effects.as_dict(),
            "patients_with_significant_side_effects": (
                self.patients_with_significant_side_effects.as_dict()
            ),
            "lft_elevated": self.lft_elevated.as_dict(),
            "lft_over_3x_uln": self.lft_over_3x_uln.as_dict(),
            "lft_checked_patients": self.lft_checked_patients,
        }


def safety(table: pl.DataFrame) -> Safety:
    """Per-session and per-patient safety figures of the courses with a session given."""
    t = table.filter(pl.col("sessions_given") > 0)
    s = t.select(
        pl.col("sessions_given").sum(),
        pl.col("sessions_with_side_effects").sum(),
        pl.col("early_stops").sum(),
        pl.col("alarms").sum(),
        pl.col("stop_alarms").sum(),
    ).row(0)
    sessions, with_se, early, alarms, stops = (int(v or 0) for v in s)
    per_patient = t.group_by("patient_key").agg(
        (pl.col("side_effects").sum() > 0).alias("any"),
        (pl.col("significant_side_effects").sum() > 0).alias("significant"),
        pl.col("lft_checked").any().alias("checked"),
        pl.col("lft_elevated").any().alias("elevated"),
        pl.col("lft_over_3x_uln").any().alias("over3"),
    )
    n = per_patient.height
    checked = per_patient.filter(pl.col("checked"))
    return Safety(
        sessions=sessions,
        patients=n,
        sessions_with_side_effects=Proportion(with_se, sessions),
        early_stops=Proportion(early, sessions),
        alarms=EventRate(events=alarms, sessions=sessions),
        stop_alarms=EventRate(events=stops, sessions=sessions),
        patients_with_side_effects=Proportion(int(per_patient.get_column("any").sum()), n),
        patients_with_significant_side_effects=Proportion(
            int(per_patient.get_column("significant").sum()), n
        ),
        lft_elevated=Proportion(int(checked.get_column("elevated").sum()), checked.height),
        lft_over_3x_uln=Proportion(int(checked.get_column("over3").sum()), checked.height),
        lft_checked_patients=checked.height,
    )
