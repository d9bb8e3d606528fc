"""Published trials rebuilt as virtual-trial designs, for validation and calibration.

:func:`sigtermans_2009` is the CRPS-1 trial behind the Dahan 2011 model: 100-h S-ketamine
titrated to about 22 mg/h/70 kg against placebo, 30 patients per arm, pain scored for 12
weeks. The cohort's covariates are the published ones (Dahan 2011 patients 46 +/- 12 y,
79 +/- 19 kg; Sigtermans 2009: 48 of 60 women). :func:`noppers_2011` is a single 30-min
S-ketamine infusion of 0.5 mg/kg.

>>> design = sigtermans_2009(n_per_arm=30, seed=7)
>>> [a.name for a in design.arms], design.n_per_arm
(['ketamine', 'placebo'], 30)
"""

from __future__ import annotations

from typing import Final

from ketapain.pharmacology.models import get_model
from ketapain.pharmacology.pd import PDModel
from ketapain.pharmacology.population import CovariateDistribution
from ketapain.pharmacology.schedules import Infusion, Schedule, stepped_infusion
from ketapain.pharmacology.trial import Arm, BaselineNRS, TrialDesign

__all__ = ["SIGTERMANS_COHORT", "noppers_2011", "sigtermans_2009", "sigtermans_schedule"]

SIGTERMANS_COHORT: Final = CovariateDistribution(
    weight_mean_kg=79.0,  # Dahan 2011 (via Otto 2021 Table 2): 79 +/- 19 kg
    weight_sd_kg=19.0,
    age_mean_y=46.0,  # Dahan 2011: 46 +/- 12 y
    age_sd_y=12.0,
    female_fraction=48 / 60,  # Sigtermans 2009: 48 women of 60 patients
)
# Sigtermans 2009: start 5 mg/h/70 kg, end 22.2 mg/h/70 kg after 100 h; equal steps every
# 8 h (an assumption: the trial titrated each patient by effect and side effects).
_START_MG_PER_KG_H: Final = 5.0 / 70.0
_END_MG_PER_KG_H: Final = 22.2 / 70.0
_STEPS: Final = 8
_STEP_H: Final = 8.0
_INFUSION_H: Final = 100.0


def sigtermans_schedule(start_h: float = 9.0) -> Schedule:
    """The 100-h S-ketamine titration (mg/kg/h steps, see module docstring)."""
    rates = [
        _START_MG_PER_KG_H + (_END_MG_PER_KG_H - _START_MG_PER_KG_H) * i / (_STEPS - 1)
        for i in range(_STEPS)
    ]
    durations = [_STEP_H] * (_STEPS - 1) + [_INFUSION_H - _STEP_H * (_STEPS - 1)]
    return Schedule.of(
        stepped_infusion(start_h=start_h, steps=list(zip(durations, rates, strict=True)))
    )


def _against_placebo(schedule: Schedule) -> tuple[Arm, Arm]:
    """S-ketamine (flint-fanta-s) on ``schedule`` and its placebo."""
    model = get_model("flint-fanta-s")
    return (
        Arm(name="ketamine", schedule=schedule, model=model),
        Arm(name="placebo", schedule=schedule, model=model, placebo=True),
    )


def sigtermans_2009(
    *,
    n_per_arm: int = 30,
    seed: int = 2009,
    pd: PDModel | None = None,
    baseline: BaselineNRS | None = None,
    residual_sd: float | None = None,
    report_weeks: tuple[int, ...] = tuple(range(1, 13)),
    chunk_size: int = 5_000,
) -> TrialDesign:
    """The Sigtermans 2009 trial as a two-arm design (ketamine, placebo)."""
    extra = {} if residual_sd is None else {"residual_sd": residual_sd}
    return TrialDesign(
        arms=_against_placebo(sigtermans_schedule()),
        n_per_arm=n_per_arm,
        seed=seed,
        follow_up_weeks=12,
        report_weeks=report_weeks,
        pd=pd or PDModel(),
        covariates=SIGTERMANS_COHORT,
        baseline=baseline or BaselineNRS(),
        chunk_size=chunk_size,
        **extra,
    )


def noppers_2011(*, n_per_arm: int = 1_000, seed: int = 2011) -> TrialDesign:
    """S-ketamine 0.5 mg/kg over 30 min against placebo; scores for 8 weeks."""
    schedule = Schedule.of(Infusion(start_h=9.0, duration_h=0.5, rate_mg_per_kg_h=1.0))
    return TrialDesign(
        arms=_against_placebo(schedule),
        n_per_arm=n_per_arm,
        seed=seed,
        follow_up_weeks=8,
        report_weeks=(1, 8),
    )
