"""Virtual trials: a cohort through one or more treatment arms, simulated in chunks.

Each patient has covariates and PK variability (:mod:`.population`), response draws
(placebo response with probability 0.23 in every arm, and on ketamine a drug response
that brings the overall response to 0.67; Dahan 2011), a baseline NRS, and residual
noise on every daily score. The cohort of each arm is cut into chunks of ``chunk_size``
patients; chunk ``c`` of arm ``a`` draws its random numbers from ``SeedSequence(seed,
spawn_key=(a, c))``, so a chunk's result depends only on the design, and a trial gives
identical results however the chunks are spread over processes or machines
(:mod:`ketapain.analytics.trials` runs them on Dask).

Pain is scored once a day at :data:`DIARY_HOUR` (a morning diary, before an outpatient
session starts), from day 0 to the end of follow-up. Concentrations are computed every
``resolution_min`` minutes while drug is given, for the peak levels and side effects.

Examples
--------
>>> from ketapain.pharmacology.models import get_model
>>> from ketapain.pharmacology.schedules import Infusion, Schedule
>>> arm = Arm(name="4h", schedule=Schedule.of(Infusion(start_h=9, duration_h=4,
...           rate_mg_per_kg_h=0.5)), model=get_model("domino-cl79"))
>>> design = TrialDesign(arms=(arm,), n_per_arm=50, seed=1, follow_up_weeks=2,
...                      report_weeks=(1, 2))
>>> chunk = simulate_chunk(design, 0, 0)
>>> chunk.nrs.shape
(50, 15)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Final

import numpy as np

from ketapain.errors import InvalidValueError
from ketapain.pharmacology._types import BoolArray, FloatArray, IntArray
from ketapain.pharmacology.covariates import Covariates
from ketapain.pharmacology.model import PKModel
from ketapain.pharmacology.parameters import PKParameters
from ketapain.pharmacology.pd import PDModel, relief_duration_days
from ketapain.pharmacology.pd.emax import check_positive
from ketapain.pharmacology.pd.pain import NRS_MAX, predicted_nrs
from ketapain.pharmacology.population import (
    CovariateDistribution,
    sample_covariates,
    sample_etas,
)
from ketapain.pharmacology.prediction import dosing_time_grid
from ketapain.pharmacology.schedules import Schedule
from ketapain.pharmacology.simulation import Output, simulate

__all__ = [
    "CHUNK_OUTPUTS",
    "DIARY_HOUR",
    "Arm",
    "BaselineNRS",
    "ChunkResult",
    "PatientDraws",
    "TrialDesign",
    "chunk_count",
    "draw_patients",
    "output_times",
    "patient_outcomes",
    "simulate_chunk",
]

DIARY_HOUR: Final = 8.0  # assumption: daily pain score at 08:00
MAX_PATIENTS_PER_ARM: Final = 10_000_000
# Calibrated on Sigtermans 2009 with the sustained-relief defaults; see
# tools/calibrate_sustained.py and the README (not published values). The calibration puts
# the baseline SD at 0: the responder mixture alone gives the published week-1 spread.
# The residual SD of a daily score is held at 1 NRS point, the size of the minimal
# clinically important difference (Farrar 2001); it is an assumption.
CALIBRATED_BASELINE_MEAN: Final = 6.7
CALIBRATED_BASELINE_SD: Final = 0.0
CALIBRATED_RESIDUAL_SD: Final = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class BaselineNRS:
    """Baseline NRS of the cohort: normal, truncated (by clipping) to [low, high]."""

    mean: float = CALIBRATED_BASELINE_MEAN
    sd: float = CALIBRATED_BASELINE_SD
    low: float = 1.0  # clipping bounds, not an inclusion rule; with the calibrated SD of 0
    # they do not bind. A study's inclusion threshold belongs here when it has one.
    high: float = NRS_MAX

    def __post_init__(self) -> None:
        if not (0 < self.low < self.high <= NRS_MAX):
            # Responses are reductions relative to baseline, so a baseline of 0 is excluded.
            raise InvalidValueError(
                "baseline.low/high", "0 < low < high <= 10", (self.low, self.high)
            )
        if not (self.low <= self.mean <= self.high):
            raise InvalidValueError(
                "baseline.mean", f"between {self.low} and {self.high}", self.mean
            )
        if not (np.isfinite(self.sd) and 0 <= self.sd <= 5):
            raise InvalidValueError("baseline.sd", "between 0 and 5", self.sd)

    def sample(self, n: int, rng: np.random.Generator) -> FloatArray:
        """Draw ``n`` baseline scores."""
        return np.clip(rng.normal(self.mean, self.sd, n), self.low, self.high)


@dataclass(frozen=True, slots=True, kw_only=True)
class Arm:
    """A treatment arm: a schedule given with a PK model, or its placebo.

    ``dosing_weight_cap_kg`` doses heavier patients as if they weighed the cap (how a
    protocol's mg/h cap on a mg/kg/h rate applies). A placebo arm keeps the schedule for
    its timing (end of treatment) and gives no drug.
    """

    name: str
    schedule: Schedule
    model: PKModel
    placebo: bool = False
    dosing_weight_cap_kg: float | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InvalidValueError("arm.name", "a non-empty name", self.name)
        if not self.schedule.doses:
            raise InvalidValueError(f"arm {self.name}: schedule", "at least one dose", "none")
        if self.dosing_weight_cap_kg is not None:
            check_positive(
                f"arm {self.name}: dosing_weight_cap_kg", self.dosing_weight_cap_kg, high=400
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialDesign:
    """Everything that determines a virtual trial's result."""

    arms: tuple[Arm, ...]
    n_per_arm: int
    seed: int
    follow_up_weeks: float = 12.0
    report_weeks: tuple[int, ...] = (1, 4, 12)
    pd: PDModel = field(default_factory=PDModel)
    covariates: CovariateDistribution = field(default_factory=CovariateDistribution)
    baseline: BaselineNRS = field(default_factory=BaselineNRS)
    residual_sd: float = CALIBRATED_RESIDUAL_SD
    chunk_size: int = 5_000
    resolution_min: float = 5.0

    def __post_init__(self) -> None:
        if not self.arms:
            raise InvalidValueError("arms", "at least one arm", "none")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise InvalidValueError("arms", "distinct names", names)
        n = self.n_per_arm
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_PATIENTS_PER_ARM:
            raise InvalidValueError("n_per_arm", f"an integer from 1 to {MAX_PATIENTS_PER_ARM}", n)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidValueError("seed", "a non-negative integer", self.seed)
        if not (np.isfinite(self.follow_up_weeks) and 0 < self.follow_up_weeks <= 104):
            raise InvalidValueError(
                "follow_up_weeks", "above 0 and at most 104", self.follow_up_weeks
            )
        for arm in self.arms:
            if arm.schedule.end_h() > self.horizon_h:
                raise InvalidValueError(
                    "follow_up_weeks",
                    f"long enough to cover arm {arm.name} (ends at day "
                    f"{arm.schedule.end_h() / 24:.1f})",
                    self.follow_up_weeks,
                )
        for w in self.report_weeks:
            if isinstance(w, bool) or not isinstance(w, int) or not 0 < w <= self.follow_up_weeks:
                raise InvalidValueError(
                    "report_weeks", f"whole weeks from 1 to {self.follow_up_weeks:g}", w
                )
        if not (np.isfinite(self.residual_sd) and 0 <= self.residual_sd <= 5):
            raise InvalidValueError("residual_sd", "between 0 and 5 NRS points", self.residual_sd)
        cs = self.chunk_size
        if isinstance(cs, bool) or not isinstance(cs, int) or not 1 <= cs <= 200_000:
            raise InvalidValueError("chunk_size", "an integer from 1 to 200000", cs)

    @property
    def n_days(self) -> int:
        """Number of follow-up days; scores are taken on days 0 to ``n_days``."""
        return math.floor(7 * self.follow_up_weeks + 1e-9)

    @property
    def horizon_h(self) -> float:
        """Time of the last diary score, h."""
        return 24.0 * self.n_days + DIARY_HOUR

    @property
    def diary_times_h(self) -> FloatArray:
        """Times of the daily scores, h."""
        return 24.0 * np.arange(self.n_days + 1, dtype=float) + DIARY_HOUR


def chunk_count(design: TrialDesign) -> int:
    """Chunks per arm."""
    return -(-design.n_per_arm // design.chunk_size)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkResult:
    """Per-patient results of one chunk (arrays of shape (n,), ``nrs`` (n, days + 1))."""

    arm_index: int
    chunk_index: int
    patient_id: IntArray
    weight_kg: FloatArray
    female: BoolArray
    age_y: FloatArray
    baseline_nrs: FloatArray
    responder: BoolArray
    nrs: np.ndarray  # observed daily scores, float32
    relief_days: FloatArray
    relief_censored: BoolArray
    peak_s_plasma_ng_per_ml: FloatArray
    peak_psychotomimetic_effect: FloatArray
    psychotomimetic: BoolArray
    peak_map_rise: FloatArray
    bp_warning: BoolArray
    total_dose_mg: FloatArray


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientDraws:
    """The random draws of one chunk, in the fixed order of :func:`draw_patients`.

    ``params`` are the PK parameters with the dosing-weight cap and the slow effect site
    applied (None in a placebo arm, which gives no drug).
    """

    covariates: Covariates
    params: PKParameters | None
    placebo_responder: BoolArray
    drug_responder: BoolArray
    c50_ng_per_ml: FloatArray
    baseline_nrs: FloatArray
    side_effect_u: FloatArray
    noise: FloatArray

    @property
    def responder(self) -> BoolArray:
        """Responders to the drug or to the treatment context."""
        return self.placebo_responder | self.drug_responder

    def take(self, rows: IntArray) -> PatientDraws:
        """The draws of ``rows`` (indices within the chunk)."""
        return PatientDraws(
            covariates=self.covariates.take(rows),
            params=None if self.params is None else self.params.take(rows),
            placebo_responder=self.placebo_responder[rows],
            drug_responder=self.drug_responder[rows],
            c50_ng_per_ml=self.c50_ng_per_ml[rows],
            baseline_nrs=self.baseline_nrs[rows],
            side_effect_u=self.side_effect_u[rows],
            noise=self.noise[rows],
        )


def _check_chunk(design: TrialDesign, arm_index: int, chunk_index: int) -> None:
    if not 0 <= arm_index < len(design.arms):
        raise InvalidValueError("arm_index", f"0 to {len(design.arms) - 1}", arm_index)
    if not 0 <= chunk_index < chunk_count(design):
        raise InvalidValueError("chunk_index", f"0 to {chunk_count(design) - 1}", chunk_index)


def draw_patients(design: TrialDesign, arm_index: int, chunk_index: int) -> PatientDraws:
    """Draw the patients of one chunk from ``SeedSequence(seed, spawn_key=(arm, chunk))``.

    Order: covariates, PK etas, placebo response, drug response, C50, t1/2, baseline,
    side-effect draw, residual noise.
    """
    _check_chunk(design, arm_index, chunk_index)
    arm = design.arms[arm_index]
    n = min(design.chunk_size, design.n_per_arm - chunk_index * design.chunk_size)
    rng = np.random.default_rng(
        np.random.SeedSequence(design.seed, spawn_key=(arm_index, chunk_index))
    )
    sus = design.pd.sustained
    cov = sample_covariates(n, rng=rng, distribution=design.covariates)
    etas = sample_etas(arm.model, n, rng=rng)
    placebo_responder = rng.random(n) < sus.p_response_placebo
    drug_responder = (rng.random(n) < sus.p_drug_response) & (not arm.placebo)
    c50 = sus.c50_ng_per_ml * np.exp(sus.omega_c50 * rng.standard_normal(n))
    t_half_h = 24.0 * sus.t_half_days * np.exp(sus.omega_t_half * rng.standard_normal(n))
    baseline = design.baseline.sample(n, rng)
    side_u = rng.random(n)
    noise = rng.standard_normal((n, design.n_days + 1)) * design.residual_sd
    params = None
    if not arm.placebo:
        params = arm.model.parameters(cov, etas=etas, warn=False)
        if arm.dosing_weight_cap_kg is not None:
            params = replace(
                params, weight_kg=np.minimum(params.weight_kg, arm.dosing_weight_cap_kg)
            )
        params = params.with_slow_effect_site(np.log(2.0) / t_half_h)
    return PatientDraws(
        covariates=cov,
        params=params,
        placebo_responder=placebo_responder,
        drug_responder=drug_responder,
        c50_ng_per_ml=c50,
        baseline_nrs=baseline,
        side_effect_u=side_u,
        noise=noise,
    )


#: What a drug arm reads from the PK engine, in this order.
CHUNK_OUTPUTS: Final = (
    Output.KETAMINE_PLASMA,
    Output.KETAMINE_EFFECT_SITE,
    Output.KETAMINE_SLOW_EFFECT_SITE,
)


def output_times(design: TrialDesign, arm: Arm) -> tuple[FloatArray, IntArray]:
    """Times a drug arm reads concentrations at, and the columns of the diary times."""
    fine = dosing_time_grid(
        arm.schedule,
        end_h=min(arm.schedule.end_h() + 2.0, design.horizon_h),
        resolution_min=design.resolution_min,
        coarse_h=24.0,
    )
    times = np.union1d(fine, design.diary_times_h)
    return times, np.searchsorted(times, design.diary_times_h)


def patient_outcomes(
    design: TrialDesign,
    arm: Arm,
    draws: PatientDraws,
    concentrations: tuple[FloatArray, FloatArray, FloatArray] | None,
    at_diary: IntArray,
) -> dict[str, np.ndarray]:
    """Every per-patient outcome from the draws and the (N, T) plasma, effect-site and
    slow effect-site concentrations (ng/mL, total ketamine; None in a placebo arm)."""
    sus, pd = design.pd.sustained, design.pd
    n, diary = draws.baseline_nrs.size, design.diary_times_h
    if concentrations is None or draws.params is None:
        zeros = np.zeros(n)
        acute = sustained = np.zeros((n, diary.size))
        peak_s = peak_psy = peak_map = total = zeros
        psycho = draws.side_effect_u < pd.acute.placebo_side_effect_rate
        bp = np.zeros(n, dtype=bool)
    else:
        plasma, effect, slow = concentrations
        s = arm.model.s_fraction
        peak_s = s * plasma.max(axis=1)
        peak_effect_s = s * effect.max(axis=1)
        acute = pd.acute.relief(s * effect[:, at_diary])
        sustained = np.where(
            draws.drug_responder[:, None],
            sus.relief(s * slow[:, at_diary], c50_ng_per_ml=draws.c50_ng_per_ml[:, None]),
            0.0,
        )
        peak_psy = pd.acute.effect(peak_effect_s)
        psycho = draws.side_effect_u < pd.acute.side_effect_probability(peak_psy)
        peak_map = pd.cardiovascular.map_rise(peak_effect_s)
        bp = peak_map > pd.cardiovascular.map_rise_warning
        # The total dose is affine in the dosing weight: mg doses plus mg/kg doses times w.
        fixed = arm.schedule.total_dose_mg(weight_kg=1.0)
        per_kg = arm.schedule.total_dose_mg(weight_kg=2.0) - fixed
        total = fixed + per_kg * (draws.params.weight_kg - 1.0)
    # The placebo response starts with treatment (a day-0 diary before the first dose
    # shows none).
    treated = diary >= arm.schedule.start_h()
    placebo = np.where(draws.placebo_responder[:, None] & treated[None, :], sus.placebo_relief, 0.0)
    true_nrs = predicted_nrs(
        draws.baseline_nrs[:, None],
        acute_relief=acute,
        sustained_relief=sustained,
        placebo_relief=placebo,
    )
    relief_days, censored = relief_duration_days(
        diary, true_nrs, draws.baseline_nrs, after_h=arm.schedule.end_h()
    )
    return {
        "nrs": np.clip(true_nrs + draws.noise, 0.0, NRS_MAX).astype(np.float32),
        "relief_days": relief_days,
        "relief_censored": censored,
        "peak_s_plasma_ng_per_ml": np.asarray(peak_s, dtype=float),
        "peak_psychotomimetic_effect": np.asarray(peak_psy, dtype=float),
        "psychotomimetic": np.asarray(psycho, dtype=bool),
        "peak_map_rise": np.asarray(peak_map, dtype=float),
        "bp_warning": np.asarray(bp, dtype=bool),
        "total_dose_mg": np.asarray(total, dtype=float),
    }


def simulate_chunk(design: TrialDesign, arm_index: int, chunk_index: int) -> ChunkResult:
    """Simulate chunk ``chunk_index`` of arm ``arm_index`` (see module docstring)."""
    draws = draw_patients(design, arm_index, chunk_index)
    arm = design.arms[arm_index]
    times, at_diary = output_times(design, arm)
    concentrations = None
    if draws.params is not None:
        prof = simulate(
            draws.params,
            arm.schedule,
            times_h=times,
            outputs=CHUNK_OUTPUTS,
            chunk_subjects=draws.baseline_nrs.size,
        )
        curves = prof.curves()
        plasma, effect, slow = (
            curves["ketamine_plasma_ng_per_ml"],
            curves["ketamine_effect_site_ng_per_ml"],
            curves["ketamine_slow_effect_site_ng_per_ml"],
        )
        concentrations = (plasma, effect, slow)
    start = chunk_index * design.chunk_size
    cov = draws.covariates
    return ChunkResult(
        arm_index=arm_index,
        chunk_index=chunk_index,
        patient_id=np.arange(start, start + draws.baseline_nrs.size),
        weight_kg=cov.weight_kg,
        female=cov.female,
        age_y=cov.age_y,
        baseline_nrs=draws.baseline_nrs,
        responder=draws.responder,
        **patient_outcomes(design, arm, draws, concentrations, at_diary),
    )
