"""Acute analgesia and psychotomimetic effect of S-ketamine (Olofsen 2022).

Olofsen 2022 fitted antinociception and the psychedelic "external perception" score of
S- and racemic ketamine with one and the same PD model: a sigmoid Emax on the S-ketamine
effect-site concentration with C50 0.51 nmol/mL (= 121 ng/mL) and t1/2ke0 8.3 min;
R-ketamine contributed nothing. The effect site is the PK model's (fast) effect
compartment, whose ke0 every shipped model takes from the same paper.

Assumptions, exposed as fields:

* ``gamma = 1``. The abstract reports no Hill coefficient; Bowdle 1998 found psychedelic
  scores linear in concentration over 50-200 ng/mL racemic, which a gamma near 1 (with
  C50 above that range) reproduces.
* ``emax_relief = 1``: at full effect, the acute layer removes the pain being felt. The
  clinical endpoint (chronic-pain NRS) was not Olofsen's (experimental pressure pain).
* Reported side effect. A patient reports a psychotomimetic side effect with probability
  p0 + (1 - p0) * E_peak, where E_peak is the peak effect (0-1) and p0 the rate under
  placebo (18%, Sigtermans 2009 CRPS). For the Sigtermans 100-h infusion (S-ketamine
  about 230 ng/mL at 22 mg/h) this gives 0.18 + 0.82 * 0.66 = 72%, against 76% observed.

>>> model = AcuteEffectModel()
>>> round(model.c50_ng_per_ml, 1)
121.2
>>> round(float(model.effect(121.24)), 2)
0.5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike

from ketapain.pharmacology._types import FloatArray
from ketapain.pharmacology.pd.emax import (
    check_gamma,
    check_positive,
    check_probability,
    sigmoid_emax,
)
from ketapain.sources import BOWDLE_1998, OLOFSEN_2022, SIGTERMANS_2009_CRPS, Source
from ketapain.units import KETAMINE_MW_G_PER_MOL, umol_per_l_to_ng_per_ml

__all__ = [
    "ACUTE_C50_NG_PER_ML",
    "PLACEBO_PSYCHOTOMIMETIC_RATE",
    "AcuteEffectModel",
]

# Olofsen 2022: S-ketamine C50 0.51 nmol/mL (= umol/L) for antinociception and the
# psychedelic effect alike.
ACUTE_C50_NG_PER_ML: Final = float(
    umol_per_l_to_ng_per_ml(0.51, molar_mass_g_per_mol=KETAMINE_MW_G_PER_MOL)
)
# Sigtermans 2009 (CRPS): psychomimetic side effects in 18% of placebo patients.
PLACEBO_PSYCHOTOMIMETIC_RATE: Final = 0.18


@dataclass(frozen=True, slots=True, kw_only=True)
class AcuteEffectModel:
    """Sigmoid Emax on the S-ketamine effect-site concentration (Olofsen 2022)."""

    c50_ng_per_ml: float = ACUTE_C50_NG_PER_ML
    gamma: float = 1.0  # assumption: not reported; compatible with Bowdle 1998
    emax_relief: float = 1.0  # assumption: full relief of felt pain at Emax
    placebo_side_effect_rate: float = PLACEBO_PSYCHOTOMIMETIC_RATE

    def __post_init__(self) -> None:
        check_positive("acute.c50_ng_per_ml", self.c50_ng_per_ml, high=1.0e5)
        check_gamma("acute.gamma", self.gamma)
        check_probability("acute.emax_relief", self.emax_relief)
        check_probability("acute.placebo_side_effect_rate", self.placebo_side_effect_rate)

    @staticmethod
    def sources() -> tuple[Source, ...]:
        """Works the parameters come from."""
        return (OLOFSEN_2022, BOWDLE_1998, SIGTERMANS_2009_CRPS)

    def effect(self, s_effect_site_ng_per_ml: ArrayLike) -> FloatArray:
        """Fractional effect (0-1) at the S-ketamine effect-site concentration."""
        return sigmoid_emax(
            s_effect_site_ng_per_ml, c50_ng_per_ml=self.c50_ng_per_ml, gamma=self.gamma
        )

    def relief(self, s_effect_site_ng_per_ml: ArrayLike) -> FloatArray:
        """Fraction of felt pain removed while the drug is present (0-1)."""
        return self.emax_relief * self.effect(s_effect_site_ng_per_ml)

    def side_effect_probability(self, peak_effect: ArrayLike) -> FloatArray:
        """Probability of a reported psychotomimetic side effect given the peak effect."""
        p0 = self.placebo_side_effect_rate
        peak = np.clip(np.asarray(peak_effect, dtype=float), 0.0, 1.0)
        return np.asarray(p0 + (1.0 - p0) * peak, dtype=float)
