"""Herd 2007: allometric two-compartment racemic ketamine in children.

54 children (8.3 +/- 3.5 y, 32.5 +/- 15.6 kg), 1-1.5 mg/kg IV. V1 38.7 L/70 kg (BSV 64%),
V2 102 L/70 kg (51.7%), CL 90 L/h/70 kg (38.1%), Q 215 L/h/70 kg (19%); exponent 0.75 on
clearances, 1 on volumes. Studied range 1-14 y and 10.8-74.8 kg (opentiva class Herd);
adults are extrapolation.
"""

from __future__ import annotations

from typing import Final

from ketapain.pharmacology.model import ALLOMETRIC, Disposition, Drug, PKModel
from ketapain.pharmacology.models._shared import (
    KE0_PER_H,
    RACEMIC_NORKETAMINE,
    RACEMIC_ORAL,
    RACEMIC_S_FRACTION,
    SHARED_RACEMIC_NOTES,
)
from ketapain.sources import HERD_2007

MODEL: Final = PKModel(
    name="herd-2007",
    drug=Drug.RACEMIC,
    population="children 1-14 y, 10.8-74.8 kg, 1-1.5 mg/kg IV (Herd 2007); allometric",
    source=HERD_2007,
    disposition=Disposition(cl_l_per_h=90.0, v1_l=38.7, q2_l_per_h=215.0, v2_l=102.0),
    scaling=ALLOMETRIC,
    ke0_per_h=KE0_PER_H,
    oral=RACEMIC_ORAL,
    metabolite=RACEMIC_NORKETAMINE,
    variability_cv=(("cl", 0.381), ("v1", 0.64), ("q2", 0.19), ("v2", 0.517)),
    s_fraction=RACEMIC_S_FRACTION,
    weight_range_kg=(10.8, 74.8),
    age_range_y=(1.0, 14.0),
    notes=(
        ("V1 38.7, V2 102 L/70 kg; CL 90, Q 215 L/h/70 kg; BSV 64/51.7/38.1/19%", HERD_2007),
        *SHARED_RACEMIC_NOTES,
    ),
)
