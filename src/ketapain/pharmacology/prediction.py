"""Predicted concentrations, receptor occupancy, relief and side effects for one patient.

:func:`predict` runs the PK engine with the fast (acute) and slow (sustained-relief)
effect compartments on a grid that is fine (5 min) while drug is given and hourly
afterwards, then applies every layer of a :class:`~ketapain.pharmacology.pd.PDModel`.
Pain is predicted for a drug responder (sustained relief applies) and a non-responder
(acute relief only); the expected curve averages over the drug and placebo responses
with their probabilities (Dahan 2011; :mod:`.pd.sustained`).

Examples
--------
>>> from ketapain.pharmacology import Infusion, Schedule, get_model
>>> sched = Schedule.of(Infusion(start_h=0, duration_h=100, rate_mg_per_h=22.2))
>>> p = predict(get_model("flint-fanta-s"), sched, weight_kg=70, baseline_nrs=7,
...             follow_up_days=28)
>>> round(p.summary.peak_s_plasma_ng_per_ml)
234
>>> p.summary.bp_warning
True
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Final

import numpy as np

from ketapain.errors import InvalidValueError
from ketapain.pharmacology._types import FloatArray
from ketapain.pharmacology.covariates import Covariates, Sex
from ketapain.pharmacology.model import PKModel
from ketapain.pharmacology.parameters import PKParameters
from ketapain.pharmacology.pd import PDModel, relief_duration_days, time_to_relief_h
from ketapain.pharmacology.pd.pain import check_baseline, predicted_nrs
from ketapain.pharmacology.schedules import Schedule
from ketapain.pharmacology.simulation import Output, simulate
from ketapain.units import min_to_h

__all__ = ["Prediction", "PredictionSummary", "dosing_time_grid", "predict", "predict_nrs_at"]

DEFAULT_RESOLUTION_MIN: Final = 5.0
DEFAULT_FOLLOW_UP_DAYS: Final = 84.0  # 12 weeks, the Sigtermans 2009 follow-up
_AFTER_DOSE_H: Final = 2.0  # fine sampling continues this long after each dose


def dosing_time_grid(
    schedule: Schedule,
    *,
    end_h: float,
    resolution_min: float = DEFAULT_RESOLUTION_MIN,
    coarse_h: float = 1.0,
) -> FloatArray:
    """Times from 0 to ``end_h``: every ``resolution_min`` while drug is given (and 2 h
    after each dose), every ``coarse_h`` elsewhere, and every dose boundary."""
    if not (np.isfinite(resolution_min) and 0.5 <= resolution_min <= 60):
        raise InvalidValueError("resolution_min", "between 0.5 and 60", resolution_min)
    if not (np.isfinite(coarse_h) and 0 < coarse_h <= 24 * 7):
        raise InvalidValueError("coarse_h", "above 0 and at most 168", coarse_h)
    step = float(min_to_h(resolution_min))
    sampled = [np.arange(0.0, end_h, coarse_h)]
    exact = [0.0, float(end_h)]
    for dose in schedule.doses:
        lo, hi = dose.start_h, min(dose.end_h + _AFTER_DOSE_H, end_h)
        if lo < end_h:
            sampled.append(np.arange(lo, hi, step))
            exact += [lo, min(dose.end_h, end_h)]
    bounds = np.unique(np.asarray(exact))
    grid = np.unique(np.concatenate(sampled))
    grid = grid[np.concatenate(([True], np.diff(grid) > 1e-9))]
    # Drop sampled points within 1e-9 h of an exact time (a dose boundary or the end), so
    # boundaries and the end are kept exactly and the grid stays strictly increasing.
    i = np.clip(np.searchsorted(bounds, grid), 1, bounds.size - 1)
    near = np.minimum(np.abs(grid - bounds[i - 1]), np.abs(grid - bounds[i])) < 1e-9
    t = np.union1d(grid[~near], bounds)
    return t[(t >= 0) & (t <= end_h)]


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictionSummary:
    """The numbers a clinician reads from a prediction."""

    total_dose_mg: float
    end_of_treatment_h: float
    peak_plasma_ng_per_ml: float
    peak_s_plasma_ng_per_ml: float
    peak_s_effect_site_ng_per_ml: float
    peak_norketamine_ng_per_ml: float | None
    peak_occupancy: float
    peak_psychotomimetic_effect: float
    psychotomimetic_probability: float
    peak_map_rise: float
    peak_heart_rate_rise: float
    bp_warning: bool
    peak_sustained_relief: float
    response_probability: float
    time_to_relief_h: float | None
    relief_duration_days: float
    relief_censored: bool
    lowest_nrs: float

    def as_dict(self) -> dict[str, float | bool | None]:
        """Plain values for JSON."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True, kw_only=True)
class Prediction:
    """Curves (shape (T,)) and summary of one patient's prediction."""

    time_h: FloatArray
    baseline_nrs: float
    curves: dict[str, FloatArray] = field(repr=False)
    summary: PredictionSummary


def predict(
    model: PKModel,
    schedule: Schedule,
    *,
    weight_kg: float,
    baseline_nrs: float,
    sex: Sex | str = Sex.MALE,
    age_y: float = 40.0,
    dosing_weight_kg: float | None = None,
    follow_up_days: float = DEFAULT_FOLLOW_UP_DAYS,
    pd: PDModel | None = None,
    resolution_min: float = DEFAULT_RESOLUTION_MIN,
) -> Prediction:
    """Predict every layer for one patient; see the module docstring.

    ``follow_up_days`` counts from the end of the last dose. ``dosing_weight_kg`` (default
    ``weight_kg``) turns mg/kg doses into mg, e.g. to apply a protocol's rate cap.
    """
    pd = pd or PDModel()
    b = float(check_baseline(baseline_nrs))
    if not (np.isfinite(follow_up_days) and 0 <= follow_up_days <= 730):
        raise InvalidValueError("follow_up_days", "between 0 and 730", follow_up_days)
    params = _parameters(model, schedule, pd, weight_kg, sex, age_y, dosing_weight_kg)
    end_treatment = schedule.end_h()
    horizon = end_treatment + 24.0 * follow_up_days
    t = dosing_time_grid(schedule, end_h=horizon, resolution_min=resolution_min)
    outputs = [
        Output.KETAMINE_PLASMA,
        Output.KETAMINE_EFFECT_SITE,
        Output.KETAMINE_SLOW_EFFECT_SITE,
    ]
    if model.has_metabolite:
        outputs.append(Output.METABOLITE_PLASMA)
    prof = simulate(params, schedule, times_h=t, outputs=tuple(outputs))
    s = model.s_fraction
    row = {name: np.ascontiguousarray(values[0]) for name, values in prof.curves().items()}
    plasma = row["ketamine_plasma_ng_per_ml"]
    effect = row["ketamine_effect_site_ng_per_ml"]
    slow = row["ketamine_slow_effect_site_ng_per_ml"]
    nk = row.get("norketamine_plasma_ng_per_ml")
    s_effect = s * effect
    occupancy = pd.receptor.occupancy(
        s_ketamine_ng_per_ml=s_effect,
        r_ketamine_ng_per_ml=(1.0 - s) * effect,
        norketamine_ng_per_ml=0.0 if nk is None else nk,
        norketamine_racemic=s < 1.0,
    )
    acute = pd.acute.relief(s_effect)
    psycho = pd.acute.effect(s_effect)
    sustained = pd.sustained.relief(s * slow)
    nrs_resp, nrs_non, nrs_expected = _nrs(pd, schedule, t, b, acute, sustained)
    map_rise = pd.cardiovascular.map_rise(s_effect)
    hr_rise = pd.cardiovascular.heart_rate_rise(s_effect)
    curves = {
        "ketamine_plasma_ng_per_ml": plasma,
        "s_ketamine_plasma_ng_per_ml": s * plasma,
        "s_ketamine_effect_site_ng_per_ml": s_effect,
        "s_ketamine_slow_effect_site_ng_per_ml": s * slow,
        "nmda_occupancy": occupancy,
        "acute_relief": acute,
        "psychotomimetic_effect": psycho,
        "sustained_relief_responder": sustained,
        "nrs_responder": nrs_resp,
        "nrs_non_responder": nrs_non,
        "nrs_expected": nrs_expected,
        "map_rise": map_rise,
        "heart_rate_rise": hr_rise,
        "cardiac_output_rise": pd.cardiovascular.cardiac_output_rise(s_effect),
    }
    if nk is not None:
        curves["norketamine_plasma_ng_per_ml"] = nk
    ttr = time_to_relief_h(t, nrs_resp[None, :], np.array([b]))[0]
    duration, censored = relief_duration_days(
        t, nrs_resp[None, :], np.array([b]), after_h=end_treatment
    )
    weight_for_dose = float(params.weight_kg[0])
    summary = PredictionSummary(
        total_dose_mg=float(schedule.total_dose_mg(weight_kg=weight_for_dose)),
        end_of_treatment_h=float(end_treatment),
        peak_plasma_ng_per_ml=float(plasma.max()),
        peak_s_plasma_ng_per_ml=float(s * plasma.max()),
        peak_s_effect_site_ng_per_ml=float(s_effect.max()),
        peak_norketamine_ng_per_ml=None if nk is None else float(nk.max()),
        peak_occupancy=float(occupancy.max()),
        peak_psychotomimetic_effect=float(psycho.max()),
        psychotomimetic_probability=float(pd.acute.side_effect_probability(psycho.max())),
        peak_map_rise=float(map_rise.max()),
        peak_heart_rate_rise=float(hr_rise.max()),
        bp_warning=bool(map_rise.max() > pd.cardiovascular.map_rise_warning),
        peak_sustained_relief=float(sustained.max()),
        response_probability=pd.sustained.p_response,
        time_to_relief_h=None if np.isnan(ttr) else max(float(ttr) - schedule.start_h(), 0.0),
        relief_duration_days=float(duration[0]),
        relief_censored=bool(censored[0]),
        lowest_nrs=float(nrs_resp.min()),
    )
    return Prediction(time_h=t, baseline_nrs=b, curves=curves, summary=summary)


def _parameters(
    model: PKModel,
    schedule: Schedule,
    pd: PDModel,
    weight_kg: float,
    sex: Sex | str,
    age_y: float,
    dosing_weight_kg: float | None,
) -> PKParameters:
    if not schedule.doses:
        raise InvalidValueError("schedule", "at least one dose", "no doses")
    covariates = Covariates.single(weight_kg=weight_kg, sex=sex, age_y=age_y)
    params = model.parameters(covariates)
    if dosing_weight_kg is not None:
        params = replace(params, weight_kg=np.array([float(dosing_weight_kg)]))
    return params.with_slow_effect_site(np.array([pd.sustained.ke0_per_h]))


def _nrs(
    pd: PDModel,
    schedule: Schedule,
    t: FloatArray,
    b: float,
    acute: FloatArray,
    sustained: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """NRS of a drug responder, of a non-responder, and expected over both and placebo."""
    nrs_resp = predicted_nrs(b, acute_relief=acute, sustained_relief=sustained)
    nrs_non = predicted_nrs(b, acute_relief=acute)
    q, p0 = pd.sustained.p_drug_response, pd.sustained.p_response_placebo
    treated = t >= schedule.start_h()  # the placebo response starts with treatment
    nrs_expected = predicted_nrs(
        b,
        acute_relief=acute,
        sustained_relief=q * sustained,
        placebo_relief=np.where(treated, p0 * pd.sustained.placebo_relief, 0.0),
    )
    return nrs_resp, nrs_non, nrs_expected


def predict_nrs_at(
    model: PKModel,
    schedule: Schedule,
    *,
    times_h: FloatArray,
    weight_kg: float,
    baseline_nrs: float,
    sex: Sex | str = Sex.MALE,
    age_y: float = 40.0,
    dosing_weight_kg: float | None = None,
    pd: PDModel | None = None,
) -> dict[str, FloatArray]:
    """Predicted NRS at ``times_h`` only: ``nrs_expected``, ``nrs_responder`` and
    ``nrs_non_responder``, as :func:`predict` computes them.

    The simulation is exact at any time, so a few chosen times (session ends, weekly
    follow-up visits) cost a few milliseconds where a whole curve costs a hundred.

    >>> from ketapain.pharmacology import Infusion, Schedule, get_model
    >>> sched = Schedule.of(Infusion(start_h=0, duration_h=4, rate_mg_per_h=20))
    >>> at = predict_nrs_at(get_model("domino-cl79"), sched, times_h=np.array([4.0, 676.0]),
    ...                     weight_kg=70, baseline_nrs=7)
    >>> bool(at["nrs_expected"][0] < at["nrs_expected"][1] <= 7)
    True
    """
    pd = pd or PDModel()
    b = float(check_baseline(baseline_nrs))
    t = np.asarray(times_h, dtype=float)
    if t.ndim != 1 or t.size == 0 or np.any(~np.isfinite(t) | (t < 0)) or np.any(np.diff(t) <= 0):
        raise InvalidValueError("times_h", "increasing times >= 0 (h)", t)
    params = _parameters(model, schedule, pd, weight_kg, sex, age_y, dosing_weight_kg)
    prof = simulate(
        params,
        schedule,
        times_h=t,
        outputs=(Output.KETAMINE_EFFECT_SITE, Output.KETAMINE_SLOW_EFFECT_SITE),
    )
    curves = prof.curves()
    s = model.s_fraction
    acute = pd.acute.relief(s * curves["ketamine_effect_site_ng_per_ml"][0])
    sustained = pd.sustained.relief(s * curves["ketamine_slow_effect_site_ng_per_ml"][0])
    resp, non, expected = _nrs(pd, schedule, t, b, acute, sustained)
    return {"nrs_expected": expected, "nrs_responder": resp, "nrs_non_responder": non}
