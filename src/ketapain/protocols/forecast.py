"""The pain forecast a plan carries: predicted NRS at the end of each session and at each
weekly follow-up visit for 12 weeks after the series.

It is computed when the plan is built and stored with the course, so that outcome
analysis can set what the model predicted, before treatment, beside what was observed
(calibration; :mod:`ketapain.analytics.calibration`). Times count from midnight of the
course's start date, as the plan's schedule does.

>>> from datetime import date
>>> from ketapain.protocols.library import get_protocol
>>> from ketapain.protocols.patient import Patient
>>> from ketapain.protocols.planning import Bag, build_plan
>>> p = Patient.from_dict({"patient_id": "F1", "age_y": 45, "sex": "female",
...                        "weight_kg": 70, "pain_nrs": 8})
>>> plan = build_plan(p, get_protocol("ten-weekdays"), start_date=date(2026, 1, 5),
...                   bag=Bag(drug_mg=250, volume_ml=250), predict_outcome=False)
>>> f = plan.forecast
>>> len(f.sessions), [w.week for w in f.follow_up][-1]
(10, 12)
>>> bool(f.follow_up[3].nrs_expected < f.baseline_nrs)
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from ketapain.errors import ExtrapolationWarning
from ketapain.pharmacology.covariates import Sex
from ketapain.pharmacology.model import PKModel
from ketapain.pharmacology.prediction import predict_nrs_at
from ketapain.pharmacology.schedules import Schedule
from ketapain.sources import DAHAN_2011, OLOFSEN_2022, SIGTERMANS_2009_CRPS

__all__ = ["FOLLOW_UP_WEEKS", "ForecastPoint", "PainForecast", "forecast_pain"]

# Weekly visits for 12 weeks after the series: the follow-up of Sigtermans 2009 (Pain
# 145:304), which measured pain weekly and lost the effect at week 12.
FOLLOW_UP_WEEKS: Final = tuple(range(1, 13))
_SOURCES: Final = (OLOFSEN_2022, DAHAN_2011, SIGTERMANS_2009_CRPS)


@dataclass(frozen=True, slots=True, kw_only=True)
class ForecastPoint:
    """Predicted NRS at one time: the expected value and a drug responder's."""

    time_h: float
    nrs_expected: float
    nrs_responder: float
    session: int | None = None
    week: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON values."""
        out: dict[str, Any] = {
            "time_h": self.time_h,
            "nrs_expected": self.nrs_expected,
            "nrs_responder": self.nrs_responder,
        }
        if self.session is not None:
            out["session"] = self.session
        if self.week is not None:
            out["week"] = self.week
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class PainForecast:
    """Predicted NRS at each session's end and each weekly visit after the series."""

    model: str
    baseline_nrs: float
    series_end_h: float
    sessions: tuple[ForecastPoint, ...]
    follow_up: tuple[ForecastPoint, ...]
    extrapolation: tuple[str, ...] = ()

    def at_week(self, week: int) -> ForecastPoint:
        """The visit ``week`` weeks after the series."""
        return next(p for p in self.follow_up if p.week == week)

    def as_dict(self) -> dict[str, Any]:
        """JSON: the points, and the end of series, week 4 and week 12 as named anchors."""
        return {
            "model": self.model,
            "baseline_nrs": self.baseline_nrs,
            "time_origin": "midnight of the course start date",
            "series_end_h": self.series_end_h,
            "end_of_series": self.sessions[-1].as_dict(),
            "week_4": self.at_week(4).as_dict(),
            "week_12": self.at_week(12).as_dict(),
            "sessions": [p.as_dict() for p in self.sessions],
            "follow_up": [p.as_dict() for p in self.follow_up],
            "extrapolation": list(self.extrapolation),
            "sources": [s.cite() for s in _SOURCES],
        }


def forecast_pain(
    model: PKModel,
    schedule: Schedule,
    *,
    session_ends_h: tuple[float, ...],
    baseline_nrs: float,
    weight_kg: float,
    sex: Sex | str,
    age_y: float,
    dosing_weight_kg: float | None = None,
) -> PainForecast:
    """Predict NRS at ``session_ends_h`` and weekly for 12 weeks after the last of them."""
    end = max(session_ends_h)
    weeks = np.array([end + 7 * 24.0 * w for w in FOLLOW_UP_WEEKS])
    times = np.unique(np.concatenate((np.asarray(session_ends_h, dtype=float), weeks)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExtrapolationWarning)
        at = predict_nrs_at(
            model,
            schedule,
            times_h=times,
            weight_kg=weight_kg,
            baseline_nrs=baseline_nrs,
            sex=sex,
            age_y=age_y,
            dosing_weight_kg=dosing_weight_kg,
        )
    notes = tuple(
        dict.fromkeys(
            str(w.message) for w in caught if issubclass(w.category, ExtrapolationWarning)
        )
    )

    def point(t: float, **which: int) -> ForecastPoint:
        i = int(np.searchsorted(times, t))
        return ForecastPoint(
            time_h=float(t),
            nrs_expected=round(float(at["nrs_expected"][i]), 3),
            nrs_responder=round(float(at["nrs_responder"][i]), 3),
            **which,
        )

    return PainForecast(
        model=model.name,
        baseline_nrs=float(baseline_nrs),
        series_end_h=float(end),
        sessions=tuple(point(t, session=n) for n, t in enumerate(session_ends_h, start=1)),
        follow_up=tuple(
            point(float(t), week=w) for w, t in zip(FOLLOW_UP_WEEKS, weeks, strict=True)
        ),
        extrapolation=notes,
    )
