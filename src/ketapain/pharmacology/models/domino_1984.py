"""Domino 1984: three-compartment racemic ketamine, the STANPUMP parameter set.

V1 0.063 L/kg; k10 0.438, k12 0.592, k13 0.590, k21 0.247, k31 0.0146 /min, as shipped in
STANPUMP (DRUGS.C), stanpumpR (R/drugs_ketamine.R, citing Domino 1984 Clin Pharmacol Ther
36:645, PMID 6488686) and opentiva. Published per kilogram, so every clearance and volume
scales linearly with weight. Derived at 70 kg: V1 4.4 L, CL 116 L/h, Vss 193 L.
"""

from __future__ import annotations

from typing import Final

from ketapain.pharmacology.model import PER_KG, Disposition, Drug, PKModel
from ketapain.pharmacology.models._shared import (
    BORROWED_CV,
    BORROWED_CV_NOTE,
    KE0_PER_H,
    RACEMIC_NORKETAMINE,
    RACEMIC_ORAL,
    RACEMIC_S_FRACTION,
    SHARED_RACEMIC_NOTES,
)
from ketapain.sources import DOMINO_1984, STANPUMP
from ketapain.units import per_min_to_per_h

V1_L_PER_KG: Final = 0.063  # Domino 1984 via STANPUMP
K10_PER_MIN: Final = 0.438
K12_PER_MIN: Final = 0.592
K13_PER_MIN: Final = 0.590
K21_PER_MIN: Final = 0.247
K31_PER_MIN: Final = 0.0146


def domino_disposition(weight_kg: float = 70.0) -> Disposition:
    """Return the Domino clearances and volumes for a patient of ``weight_kg``."""
    v1 = V1_L_PER_KG * weight_kg
    q2 = per_min_to_per_h(K12_PER_MIN) * v1
    q3 = per_min_to_per_h(K13_PER_MIN) * v1
    return Disposition(
        cl_l_per_h=per_min_to_per_h(K10_PER_MIN) * v1,
        v1_l=v1,
        q2_l_per_h=q2,
        v2_l=q2 / per_min_to_per_h(K21_PER_MIN),
        q3_l_per_h=q3,
        v3_l=q3 / per_min_to_per_h(K31_PER_MIN),
    )


MODEL: Final = PKModel(
    name="domino",
    drug=Drug.RACEMIC,
    population="adult surgical patients (Domino 1984); STANPUMP/TCI set, for boluses",
    source=DOMINO_1984,
    disposition=domino_disposition(),
    scaling=PER_KG,
    ke0_per_h=KE0_PER_H,
    oral=RACEMIC_ORAL,
    metabolite=RACEMIC_NORKETAMINE,
    variability_cv=BORROWED_CV,
    s_fraction=RACEMIC_S_FRACTION,
    notes=(
        ("V1 0.063 L/kg; k10 .438 k12 .592 k13 .590 k21 .247 k31 .0146 /min", DOMINO_1984),
        ("same constants shipped by STANPUMP DRUGS.C", STANPUMP),
        *SHARED_RACEMIC_NOTES,
        BORROWED_CV_NOTE,
    ),
)
