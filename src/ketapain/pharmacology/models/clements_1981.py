"""Clements 250: two-compartment racemic ketamine after 0.25 mg/kg IV in volunteers.

V1 1.7522 L/kg; k10 0.0109, k12 0.0186, k21 0.0137 /min, as shipped in opentiva
(class Clements250, citing Clements & Nimmo 1981, PMID 7459184). Per kilogram.
Derived at 70 kg: CL 80 L/h, Vss 289 L.
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
from ketapain.sources import CLEMENTS_1981
from ketapain.units import per_min_to_per_h

V1_L_PER_KG: Final = 1.7522  # opentiva Clements250
K10_PER_MIN: Final = 0.0109
K12_PER_MIN: Final = 0.0186
K21_PER_MIN: Final = 0.0137

_V1_70 = V1_L_PER_KG * 70.0
_Q2_70 = per_min_to_per_h(K12_PER_MIN) * _V1_70

MODEL: Final = PKModel(
    name="clements-250",
    drug=Drug.RACEMIC,
    population="adult volunteers, 0.25 mg/kg IV bolus (Clements & Nimmo 1981)",
    source=CLEMENTS_1981,
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
    variability_cv=tuple((k, v) for k, v in BORROWED_CV if k not in ("q3", "v3")),
    s_fraction=RACEMIC_S_FRACTION,
    notes=(
        (
            "V1 1.7522 L/kg; k10 .0109 k12 .0186 k21 .0137 /min (opentiva Clements250)",
            CLEMENTS_1981,
        ),
        *SHARED_RACEMIC_NOTES,
        BORROWED_CV_NOTE,
    ),
)
