"""Hijazi 2003: two-compartment racemic ketamine in adult ICU patients.

12 adults with brain or spinal-cord injury on long-term infusion. V1 1.08 L/kg;
k10 0.0333, k12 0.0088, k21 0.0030 /min as shipped in opentiva (class Hijazi; its age
limit of 18 y is wrong for this adult study and is not kept). Per kilogram. The abstract
reports CL 36.0 (SD 13.3) mL/min/kg and Vbeta 16.0 (8.6) L/kg, the variability used here.
For intensive care only.
"""

from __future__ import annotations

from typing import Final

from ketapain.pharmacology.model import PER_KG, Disposition, Drug, PKModel
from ketapain.pharmacology.models._shared import (
    KE0_PER_H,
    RACEMIC_NORKETAMINE,
    RACEMIC_ORAL,
    RACEMIC_S_FRACTION,
    SHARED_RACEMIC_NOTES,
)
from ketapain.sources import HERD_2007, HIJAZI_2003
from ketapain.units import per_min_to_per_h

V1_L_PER_KG: Final = 1.08  # opentiva Hijazi
K10_PER_MIN: Final = 0.0333
K12_PER_MIN: Final = 0.0088
K21_PER_MIN: Final = 0.0030

_V1_70 = V1_L_PER_KG * 70.0
_Q2_70 = per_min_to_per_h(K12_PER_MIN) * _V1_70

MODEL: Final = PKModel(
    name="hijazi-2003",
    drug=Drug.RACEMIC,
    population="adult ICU patients with brain or spinal-cord injury (Hijazi 2003); ICU only",
    source=HIJAZI_2003,
    disposition=Disposition(
        cl_l_per_h=per_min_to_per_h(K10_PER_MIN) * _V1_70,
        v1_l=_V1_70,
        q2_l_per_h=_Q2_70,
        v2_l=_Q2_70 / per_min_to_per_h(K21_PER_MIN),
    ),
    scaling=PER_KG,
    ke0_per_h=KE0_PER_H,
    oral=RACEMIC_ORAL,
    metabolite=RACEMIC_NORKETAMINE,
    # CL 13.3 / 36.0 = 37%; Vbeta 8.6 / 16.0 = 54% (on both volumes); Q from Herd 2007.
    variability_cv=(("cl", 13.3 / 36.0), ("v1", 8.6 / 16.0), ("v2", 8.6 / 16.0), ("q2", 0.19)),
    s_fraction=RACEMIC_S_FRACTION,
    notes=(
        ("V1 1.08 L/kg; k10 .0333 k12 .0088 k21 .0030 /min (opentiva Hijazi)", HIJAZI_2003),
        ("variability: CL 37%, volumes 54% from the abstract's SDs", HIJAZI_2003),
        ("variability: Q 19% (borrowed)", HERD_2007),
        *SHARED_RACEMIC_NOTES,
    ),
)
