"""ketapain.pharmacology: the pharmacokinetic engine (pure numpy/scipy).

Internal units: time h, amount mg (ketamine base), volume L, clearance L/h, rate
constant 1/h, concentration mg/L; results are reported in ng/mL.
"""

from ketapain.pharmacology.covariates import Covariates, Sex
from ketapain.pharmacology.model import Drug, PKModel, set_variability, set_weight_scaling
from ketapain.pharmacology.models import DEFAULT_MODEL, get_model, list_models
from ketapain.pharmacology.parameters import PKParameters
from ketapain.pharmacology.schedules import (
    Bolus,
    Infusion,
    OralDose,
    Route,
    Schedule,
    stepped_infusion,
    weekdays,
)
from ketapain.pharmacology.simulation import Output, Profile, simulate

__all__ = [
    "DEFAULT_MODEL",
    "Bolus",
    "Covariates",
    "Drug",
    "Infusion",
    "OralDose",
    "Output",
    "PKModel",
    "PKParameters",
    "Profile",
    "Route",
    "Schedule",
    "Sex",
    "get_model",
    "list_models",
    "set_variability",
    "set_weight_scaling",
    "simulate",
    "stepped_infusion",
    "weekdays",
]
