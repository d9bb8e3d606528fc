"""Sustained relief of chronic pain: the Dahan 2011 slow effect-compartment model.

Dahan 2011 fitted the pain scores of the Sigtermans 2009 CRPS-1 trial (100-h S-ketamine
or placebo, weekly scores for 12 weeks) with a biophase that equilibrates with plasma
S-ketamine very slowly, driving a sigmoid Emax reduction of pain, inside a
responder/non-responder mixture:

    dCe/dt = ke0 * (Cp_S - Ce),           ke0 = ln 2 / 10.9 days
    relief = Emax * Ce^gamma / (C50^gamma + Ce^gamma),   C50 = 10.5 ng/mL S-ketamine
    P(response) = 0.67 on ketamine, 0.23 on placebo

Both arms share the placebo (treatment-context) response: a placebo responder's pain is
reduced by ``placebo_relief`` throughout follow-up. On ketamine a patient also responds
to the drug with the probability that makes the overall response 0.67
(:attr:`SustainedReliefModel.p_drug_response`).

For racemic ketamine Cp_S is the S-share of total ketamine (R-ketamine adds nothing,
Olofsen 2022). The slow compartment is solved exactly by the PK engine as one more linear
compartment (:meth:`PKParameters.with_slow_effect_site`).

The abstract gives neither gamma nor Emax, nor how large the placebo response is. They are
fields of :class:`SustainedReliefModel`, with defaults calibrated on the published
summary of the parent trial (Sigtermans 2009: week-1 NRS 2.68 +/- 0.51 vs 5.45 +/- 0.48,
mean +/- SEM, 30 patients per arm) by ``tools/calibrate_sustained.py``; the README shows
the calibration and what it reproduces.

>>> model = SustainedReliefModel()
>>> round(model.t_half_days * 24 * model.ke0_per_h, 4)  # ke0 * t1/2 = ln 2
0.6931
>>> round(float(model.relief(model.c50_ng_per_ml)), 2)
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
from ketapain.sources import DAHAN_2011, SIGTERMANS_2009_CRPS, Source
from ketapain.units import half_life_to_rate_per_h

__all__ = [
    "P_RESPONSE_KETAMINE",
    "P_RESPONSE_PLACEBO",
    "SUSTAINED_C50_NG_PER_ML",
    "SUSTAINED_T_HALF_DAYS",
    "SustainedReliefModel",
]

SUSTAINED_T_HALF_DAYS: Final = 10.9  # Dahan 2011: t1/2 onset/offset 10.9 +/- 4.0 days
SUSTAINED_C50_NG_PER_ML: Final = 10.5  # Dahan 2011: C50 10.5 +/- 4.8 ng/mL S-ketamine
P_RESPONSE_KETAMINE: Final = 0.67  # Dahan 2011: 67 +/- 10%
P_RESPONSE_PLACEBO: Final = 0.23  # Dahan 2011: 23 +/- 9%
# Calibrated on Sigtermans 2009 by tools/calibrate_sustained.py (not published values).
CALIBRATED_GAMMA: Final = 1.95
CALIBRATED_PLACEBO_RELIEF: Final = 0.87


@dataclass(frozen=True, slots=True, kw_only=True)
class SustainedReliefModel:
    """Slow biophase, sigmoid Emax and responder mixture (see module docstring).

    ``omega_c50`` and ``omega_t_half`` are the log-normal SDs of inter-individual
    variability of C50 and t1/2 (unpublished; 0 by default) used in virtual trials.
    """

    t_half_days: float = SUSTAINED_T_HALF_DAYS
    c50_ng_per_ml: float = SUSTAINED_C50_NG_PER_ML
    gamma: float = CALIBRATED_GAMMA
    emax: float = 1.0  # assumption (reference file): full relief at Emax
    p_response: float = P_RESPONSE_KETAMINE
    p_response_placebo: float = P_RESPONSE_PLACEBO
    placebo_relief: float = CALIBRATED_PLACEBO_RELIEF
    omega_c50: float = 0.0
    omega_t_half: float = 0.0

    def __post_init__(self) -> None:
        check_positive("sustained.t_half_days", self.t_half_days, high=365.0)
        check_positive("sustained.c50_ng_per_ml", self.c50_ng_per_ml, high=1.0e4)
        check_gamma("sustained.gamma", self.gamma)
        for name in ("emax", "p_response", "p_response_placebo", "placebo_relief"):
            check_probability(f"sustained.{name}", getattr(self, name))
        for name in ("omega_c50", "omega_t_half"):
            value = getattr(self, name)
            if value != 0.0:
                check_positive(f"sustained.{name}", value, high=3.0)

    @staticmethod
    def sources() -> tuple[Source, ...]:
        """Works the parameters come from."""
        return (DAHAN_2011, SIGTERMANS_2009_CRPS)

    @property
    def ke0_per_h(self) -> float:
        """Rate constant of the slow biophase, 1/h."""
        return float(half_life_to_rate_per_h(self.t_half_days * 24.0))

    def relief(
        self, s_slow_effect_ng_per_ml: ArrayLike, *, c50_ng_per_ml: ArrayLike | None = None
    ) -> FloatArray:
        """Fraction of baseline pain removed in a responder (0-Emax)."""
        c50 = self.c50_ng_per_ml if c50_ng_per_ml is None else c50_ng_per_ml
        return sigmoid_emax(
            s_slow_effect_ng_per_ml, c50_ng_per_ml=c50, gamma=self.gamma, emax=self.emax
        )

    @property
    def p_drug_response(self) -> float:
        """Probability of a drug-specific response, independent of the placebo response.

        A ketamine patient responds if they respond to the drug or to the treatment context
        (the placebo response, which both arms share); independence gives
        1 - (1 - q)(1 - p0) = p, so q = (p - p0) / (1 - p0) [computed].
        """
        p0 = self.p_response_placebo
        return max(self.p_response - p0, 0.0) / (1.0 - p0) if p0 < 1.0 else 0.0

    def expected_relief(self, s_slow_effect_ng_per_ml: ArrayLike) -> FloatArray:
        """Drug relief averaged over drug responders and non-responders."""
        return np.asarray(self.p_drug_response * self.relief(s_slow_effect_ng_per_ml), dtype=float)
