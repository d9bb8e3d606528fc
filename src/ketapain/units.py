"""Unit conversions, each a named function.

ketapain keeps the unit of every quantity in its name (``weight_kg``, ``rate_mg_per_h``,
``conc_ng_per_ml``) and converts at the edges, once, with the functions here. Doses are
ketamine *base*; vials labelled as the hydrochloride convert with
:func:`ketamine_hcl_mg_to_base_mg`.

Examples
--------
>>> mg_per_l_to_ng_per_ml(0.15)
150.0
>>> round(ng_per_ml_to_umol_per_l(237.73, molar_mass_g_per_mol=KETAMINE_MW_G_PER_MOL), 6)
1.0
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from ketapain.sources import Source

__all__ = [
    "BILIRUBIN_UMOL_PER_L_PER_MG_PER_DL",
    "CREATININE_UMOL_PER_L_PER_MG_PER_DL",
    "DEHYDRONORKETAMINE_MW_G_PER_MOL",
    "HYDROXYNORKETAMINE_MW_G_PER_MOL",
    "KETAMINE_HCL_MW_G_PER_MOL",
    "KETAMINE_MW_G_PER_MOL",
    "MOLAR_MASS_SOURCE",
    "NORKETAMINE_MW_G_PER_MOL",
    "YOUNG_1987",
    "cv_to_log_sd",
    "degf_to_celsius",
    "h_to_min",
    "half_life_to_rate_per_h",
    "inch_to_cm",
    "ketamine_base_mg_to_hcl_mg",
    "ketamine_hcl_mg_to_base_mg",
    "lb_to_kg",
    "log_sd_to_cv",
    "mg_per_h_to_ml_per_h",
    "mg_per_kg_h_to_mg_per_h",
    "mg_per_l_to_ng_per_ml",
    "min_to_h",
    "ml_per_min_per_kg_to_l_per_h",
    "ng_per_ml_to_mg_per_l",
    "ng_per_ml_to_umol_per_l",
    "per_min_to_per_h",
    "rate_per_h_to_half_life_h",
    "umol_per_l_to_mg_per_dl",
    "umol_per_l_to_ng_per_ml",
]

MOLAR_MASS_SOURCE = Source(
    authors="PubChem / IUPAC atomic weights",
    year=2024,
    journal="C13H16ClNO (ketamine), C12H14ClNO (norketamine); HCl adds 36.46 g/mol",
    title="Molar masses of ketamine and its metabolites",
    locator="ketamine 237.73 g/mol; HCl salt 274.19 g/mol (shared/reference pharmacology.md §0)",
)
KETAMINE_MW_G_PER_MOL = 237.73  # C13H16ClNO; MOLAR_MASS_SOURCE
KETAMINE_HCL_MW_G_PER_MOL = 274.19  # 237.73 + 36.46 (HCl); MOLAR_MASS_SOURCE
NORKETAMINE_MW_G_PER_MOL = 223.70  # C12H14ClNO; MOLAR_MASS_SOURCE
HYDROXYNORKETAMINE_MW_G_PER_MOL = 239.70  # C12H14ClNO2; MOLAR_MASS_SOURCE
DEHYDRONORKETAMINE_MW_G_PER_MOL = 221.68  # C12H12ClNO; MOLAR_MASS_SOURCE

YOUNG_1987 = Source(
    authors="Young DS",
    year=1987,
    journal="Ann Intern Med 106(1):114-129",
    title="Implementation of SI units for clinical laboratory data: style specifications "
    "and conversion tables",
    locator="bilirubin 1 mg/dL = 17.10 umol/L; creatinine 1 mg/dL = 88.40 umol/L",
)
BILIRUBIN_UMOL_PER_L_PER_MG_PER_DL = 17.10  # YOUNG_1987
CREATININE_UMOL_PER_L_PER_MG_PER_DL = 88.40  # YOUNG_1987

_NG_PER_ML_PER_MG_PER_L = 1000.0  # 1 mg/L = 1 ug/mL = 1000 ng/mL
_KG_PER_LB = 0.45359237  # the international avoirdupois pound (1959), exactly
_CM_PER_INCH = 2.54  # the international inch (1959), exactly
_MIN_PER_H = 60.0

Num = TypeVar("Num", float, NDArray[np.float64])


def mg_per_l_to_ng_per_ml(conc_mg_per_l: Num) -> Num:
    """Convert a concentration from mg/L (= ug/mL) to ng/mL (= ug/L)."""
    return conc_mg_per_l * _NG_PER_ML_PER_MG_PER_L


def ng_per_ml_to_mg_per_l(conc_ng_per_ml: Num) -> Num:
    """Convert a concentration from ng/mL to mg/L."""
    return conc_ng_per_ml / _NG_PER_ML_PER_MG_PER_L


def ng_per_ml_to_umol_per_l(conc_ng_per_ml: Num, *, molar_mass_g_per_mol: float) -> Num:
    """Convert ng/mL to umol/L (uM) for a substance of the given molar mass.

    ng/mL equals ug/L, and ug/L divided by g/mol is umol/L.
    """
    return conc_ng_per_ml / molar_mass_g_per_mol


def umol_per_l_to_ng_per_ml(conc_umol_per_l: Num, *, molar_mass_g_per_mol: float) -> Num:
    """Convert umol/L (uM) to ng/mL for a substance of the given molar mass."""
    return conc_umol_per_l * molar_mass_g_per_mol


def ketamine_hcl_mg_to_base_mg(dose_hcl_mg: Num) -> Num:
    """Convert a mass of ketamine hydrochloride to ketamine base (x 237.73/274.19)."""
    return dose_hcl_mg * (KETAMINE_MW_G_PER_MOL / KETAMINE_HCL_MW_G_PER_MOL)


def ketamine_base_mg_to_hcl_mg(dose_base_mg: Num) -> Num:
    """Convert a mass of ketamine base to the hydrochloride salt (x 274.19/237.73)."""
    return dose_base_mg * (KETAMINE_HCL_MW_G_PER_MOL / KETAMINE_MW_G_PER_MOL)


def per_min_to_per_h(rate_per_min: Num) -> Num:
    """Convert a first-order rate constant from 1/min to 1/h."""
    return rate_per_min * _MIN_PER_H


def min_to_h(time_min: Num) -> Num:
    """Convert minutes to hours."""
    return time_min / _MIN_PER_H


def h_to_min(time_h: Num) -> Num:
    """Convert hours to minutes."""
    return time_h * _MIN_PER_H


def ml_per_min_per_kg_to_l_per_h(clearance_ml_per_min_per_kg: Num, *, weight_kg: float) -> Num:
    """Convert a weight-normalised clearance in mL/min/kg to L/h for one patient."""
    return clearance_ml_per_min_per_kg * weight_kg * _MIN_PER_H / 1000.0


def mg_per_kg_h_to_mg_per_h(rate_mg_per_kg_h: Num, *, weight_kg: Num) -> Num:
    """Convert a weight-based infusion rate (mg/kg/h) to mg/h for the given weight."""
    return rate_mg_per_kg_h * weight_kg


def mg_per_h_to_ml_per_h(rate_mg_per_h: Num, *, bag_conc_mg_per_ml: float) -> Num:
    """Convert an infusion rate in mg/h to the pump rate in mL/h for a bag concentration."""
    return rate_mg_per_h / bag_conc_mg_per_ml


def half_life_to_rate_per_h(half_life_h: Num) -> Num:
    """Convert a half-life (h) to a first-order rate constant (1/h): ln 2 / t1/2."""
    return math.log(2.0) / half_life_h


def rate_per_h_to_half_life_h(rate_per_h: Num) -> Num:
    """Convert a first-order rate constant (1/h) to a half-life (h): ln 2 / k."""
    return math.log(2.0) / rate_per_h


def cv_to_log_sd(cv: Num) -> Num:
    """Convert a coefficient of variation to the SD of log-normal variability.

    For a log-normal parameter, omega^2 = ln(1 + CV^2) (exact, not the small-CV
    approximation omega = CV).
    """
    return np.sqrt(np.log1p(np.square(cv)))  # type: ignore[no-any-return]


def log_sd_to_cv(log_sd: Num) -> Num:
    """Convert the SD of log-normal variability to a coefficient of variation."""
    return np.sqrt(np.expm1(np.square(log_sd)))  # type: ignore[no-any-return]


def lb_to_kg(weight_lb: Num) -> Num:
    """Convert pounds (avoirdupois) to kilograms, exactly (x 0.45359237)."""
    return weight_lb * _KG_PER_LB


def inch_to_cm(length_in: Num) -> Num:
    """Convert inches to centimetres, exactly (x 2.54)."""
    return length_in * _CM_PER_INCH


def degf_to_celsius(temp_f: Num) -> Num:
    """Convert degrees Fahrenheit to Celsius.

    >>> degf_to_celsius(98.6)
    37.0
    """
    return (temp_f - 32.0) * 5.0 / 9.0


def umol_per_l_to_mg_per_dl(conc_umol_per_l: Num, *, umol_per_l_per_mg_per_dl: float) -> Num:
    """Convert a laboratory result from umol/L to mg/dL with the analyte's factor
    (:data:`BILIRUBIN_UMOL_PER_L_PER_MG_PER_DL`, :data:`CREATININE_UMOL_PER_L_PER_MG_PER_DL`).

    >>> round(umol_per_l_to_mg_per_dl(17.1, umol_per_l_per_mg_per_dl=17.10), 6)
    1.0
    """
    return conc_umol_per_l / umol_per_l_per_mg_per_dl
