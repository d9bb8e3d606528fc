"""Haemodynamic response to S-ketamine: cardiac output, heart rate, blood pressure.

Fractional rise from baseline, E = Emax * Ce / (C50 + Ce), on the S-ketamine effect-site
concentration; one C50 for the three signals (a shared sympathomimetic drive).

* Cardiac output: Emax 0.5 and "+40-50% over the dose range tested" (Sigtermans 2009,
  arterial S-ketamine up to about 320 ng/mL, target-controlled). C50 is not published; it
  is fitted so that the rise is 45% at 300 ng/mL: C50 = 300 * (0.5 / 0.45 - 1) = 33.3
  ng/mL [computed].
* Heart rate and mean arterial pressure: Långsjö 2005 measured rises of up to 43.5% and
  27.0% at 1959 ng/mL S-ketamine; Emax is set so that the curve passes through those
  points with the same C50 [computed].

S-norketamine lowers cardiac output (Kamp 2021) and benzodiazepine or clonidine
premedication blunts the response; neither is modelled, so predictions are an upper bound
for a premedicated patient. The warning threshold, a MAP rise of more than 20% from
baseline, is the edge of the "within 20% of pre-procedure" vital-sign band of the
Post-Anaesthetic Discharge Scoring System (Chung 1995) and is configurable.

>>> cv = CardiovascularModel()
>>> round(float(cv.cardiac_output_rise(300.0)), 2)
0.45
>>> round(float(cv.map_rise(1959.0)), 3)
0.27
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from numpy.typing import ArrayLike

from ketapain.pharmacology._types import FloatArray
from ketapain.pharmacology.pd.emax import check_positive, sigmoid_emax
from ketapain.sources import LANGSJO_2005, SIGTERMANS_2009, Source

__all__ = ["CHUNG_1995", "CardiovascularModel"]

CHUNG_1995: Final = Source(
    authors="Chung F, Chan VW, Ong D",
    year=1995,
    journal="J Clin Anesth 7(6):500-506",
    title="A post-anesthetic discharge scoring system for home readiness after ambulatory surgery",
    doi="10.1016/0952-8180(95)00130-A",
    locator="vital signs within 20% of the pre-operative value score 2",
)

CO_EMAX: Final = 0.5  # Sigtermans 2009: +40-50% cardiac output
_CO_TARGET_RISE: Final = 0.45  # Sigtermans 2009: midpoint of +40-50%
_CO_TARGET_NG_PER_ML: Final = 300.0  # Sigtermans 2009: top of the tested range (320 target)
CV_C50_NG_PER_ML: Final = _CO_TARGET_NG_PER_ML * (CO_EMAX / _CO_TARGET_RISE - 1.0)
_LANGSJO_NG_PER_ML: Final = 1959.0  # Långsjö 2005: anaesthetic S-ketamine level
HR_EMAX: Final = 0.435 * (CV_C50_NG_PER_ML + _LANGSJO_NG_PER_ML) / _LANGSJO_NG_PER_ML
MAP_EMAX: Final = 0.270 * (CV_C50_NG_PER_ML + _LANGSJO_NG_PER_ML) / _LANGSJO_NG_PER_ML
MAP_RISE_WARNING: Final = 0.20  # Chung 1995: edge of the "within 20%" vital-sign band


@dataclass(frozen=True, slots=True, kw_only=True)
class CardiovascularModel:
    """Fractional rises of cardiac output, heart rate and MAP (see module docstring)."""

    c50_ng_per_ml: float = CV_C50_NG_PER_ML
    co_emax: float = CO_EMAX
    hr_emax: float = HR_EMAX
    map_emax: float = MAP_EMAX
    map_rise_warning: float = MAP_RISE_WARNING

    def __post_init__(self) -> None:
        check_positive("cardiovascular.c50_ng_per_ml", self.c50_ng_per_ml, high=1.0e5)
        for name in ("co_emax", "hr_emax", "map_emax", "map_rise_warning"):
            check_positive(f"cardiovascular.{name}", getattr(self, name), high=5.0)

    @staticmethod
    def sources() -> tuple[Source, ...]:
        """Works the parameters come from."""
        return (SIGTERMANS_2009, LANGSJO_2005, CHUNG_1995)

    def cardiac_output_rise(self, s_effect_site_ng_per_ml: ArrayLike) -> FloatArray:
        """Fractional rise of cardiac output."""
        return sigmoid_emax(
            s_effect_site_ng_per_ml, c50_ng_per_ml=self.c50_ng_per_ml, emax=self.co_emax
        )

    def heart_rate_rise(self, s_effect_site_ng_per_ml: ArrayLike) -> FloatArray:
        """Fractional rise of heart rate."""
        return sigmoid_emax(
            s_effect_site_ng_per_ml, c50_ng_per_ml=self.c50_ng_per_ml, emax=self.hr_emax
        )

    def map_rise(self, s_effect_site_ng_per_ml: ArrayLike) -> FloatArray:
        """Fractional rise of mean arterial pressure."""
        return sigmoid_emax(
            s_effect_site_ng_per_ml, c50_ng_per_ml=self.c50_ng_per_ml, emax=self.map_emax
        )
