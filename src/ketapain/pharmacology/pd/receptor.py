"""NMDA-receptor occupancy from unbound ketamine and norketamine concentrations.

Ketamine and norketamine bind the same (phencyclidine) site inside the channel, so their
occupancies add as competitive ligands of one site:

    x_i = fu * C_i / Ki_i        (C in umol/L)
    occupancy = sum(x_i) / (1 + sum(x_i))

with the unbound fraction fu applied to every species. Ki values are [3H]MK-801 binding
constants (Ebert 1997: S-ketamine 0.30, R-ketamine 1.4, S-norketamine 1.7, R-norketamine
13 umol/L; racemic norketamine 0.97 umol/L, Sałat 2015). Plasma protein binding is "as much
as 47%" (Dayton 1983); the default unbound fraction 0.53 takes that upper bound, so
occupancy is not overstated. Binding constants come from rat brain membranes in the
absence of magnesium; in the presence of 1 mM Mg2+ functional IC50s are higher, so
occupancy here is an index of receptor exposure, not a measured block.

>>> round(float(nmda_occupancy(s_ketamine_ng_per_ml=100.0)), 3)
0.426
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike

from ketapain.pharmacology._types import FloatArray
from ketapain.pharmacology.pd.emax import check_positive
from ketapain.sources import DAYTON_1983, EBERT_1997, SALAT_2015, Source
from ketapain.units import (
    KETAMINE_MW_G_PER_MOL,
    NORKETAMINE_MW_G_PER_MOL,
    ng_per_ml_to_umol_per_l,
)

__all__ = [
    "KI_RACEMIC_NORKETAMINE_UMOL_PER_L",
    "KI_R_KETAMINE_UMOL_PER_L",
    "KI_R_NORKETAMINE_UMOL_PER_L",
    "KI_S_KETAMINE_UMOL_PER_L",
    "KI_S_NORKETAMINE_UMOL_PER_L",
    "UNBOUND_FRACTION",
    "ReceptorModel",
    "nmda_occupancy",
]

KI_S_KETAMINE_UMOL_PER_L: Final = 0.30  # Ebert 1997
KI_R_KETAMINE_UMOL_PER_L: Final = 1.4  # Ebert 1997
KI_S_NORKETAMINE_UMOL_PER_L: Final = 1.7  # Ebert 1997
KI_R_NORKETAMINE_UMOL_PER_L: Final = 13.0  # Ebert 1997
KI_RACEMIC_NORKETAMINE_UMOL_PER_L: Final = 0.97  # Sałat 2015
UNBOUND_FRACTION: Final = 1.0 - 0.47  # Dayton 1983: up to 47% bound in human plasma


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceptorModel:
    """Binding constants and unbound fraction used for NMDA occupancy."""

    ki_s_ketamine_umol_per_l: float = KI_S_KETAMINE_UMOL_PER_L
    ki_r_ketamine_umol_per_l: float = KI_R_KETAMINE_UMOL_PER_L
    ki_s_norketamine_umol_per_l: float = KI_S_NORKETAMINE_UMOL_PER_L
    ki_racemic_norketamine_umol_per_l: float = KI_RACEMIC_NORKETAMINE_UMOL_PER_L
    unbound_fraction: float = UNBOUND_FRACTION

    def __post_init__(self) -> None:
        for name in (
            "ki_s_ketamine_umol_per_l",
            "ki_r_ketamine_umol_per_l",
            "ki_s_norketamine_umol_per_l",
            "ki_racemic_norketamine_umol_per_l",
        ):
            check_positive(name, getattr(self, name), high=1.0e4)
        check_positive("unbound_fraction", self.unbound_fraction, high=1.0)

    @staticmethod
    def sources() -> tuple[Source, ...]:
        """Works the constants come from."""
        return (EBERT_1997, SALAT_2015, DAYTON_1983)

    def occupancy(
        self,
        *,
        s_ketamine_ng_per_ml: ArrayLike,
        r_ketamine_ng_per_ml: ArrayLike = 0.0,
        norketamine_ng_per_ml: ArrayLike = 0.0,
        norketamine_racemic: bool = True,
    ) -> FloatArray:
        """Fraction of NMDA receptors occupied (0-1), broadcasting over arrays.

        ``norketamine_racemic`` picks the racemic (Sałat 2015) or the S-norketamine
        (Ebert 1997) binding constant for ``norketamine_ng_per_ml``.
        """
        ki_nk = (
            self.ki_racemic_norketamine_umol_per_l
            if norketamine_racemic
            else self.ki_s_norketamine_umol_per_l
        )
        x = np.zeros(np.broadcast(s_ketamine_ng_per_ml, r_ketamine_ng_per_ml).shape)
        for conc, ki, mw in (
            (s_ketamine_ng_per_ml, self.ki_s_ketamine_umol_per_l, KETAMINE_MW_G_PER_MOL),
            (r_ketamine_ng_per_ml, self.ki_r_ketamine_umol_per_l, KETAMINE_MW_G_PER_MOL),
            (norketamine_ng_per_ml, ki_nk, NORKETAMINE_MW_G_PER_MOL),
        ):
            c = np.maximum(np.asarray(conc, dtype=float), 0.0)
            x = x + self.unbound_fraction * ng_per_ml_to_umol_per_l(c, molar_mass_g_per_mol=mw) / ki
        return np.asarray(x / (1.0 + x), dtype=float)


def nmda_occupancy(
    *,
    s_ketamine_ng_per_ml: ArrayLike,
    r_ketamine_ng_per_ml: ArrayLike = 0.0,
    norketamine_ng_per_ml: ArrayLike = 0.0,
    norketamine_racemic: bool = True,
) -> FloatArray:
    """NMDA occupancy with the default :class:`ReceptorModel`."""
    return ReceptorModel().occupancy(
        s_ketamine_ng_per_ml=s_ketamine_ng_per_ml,
        r_ketamine_ng_per_ml=r_ketamine_ng_per_ml,
        norketamine_ng_per_ml=norketamine_ng_per_ml,
        norketamine_racemic=norketamine_racemic,
    )
