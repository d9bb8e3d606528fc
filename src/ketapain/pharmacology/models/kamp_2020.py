"""Domino-CL79: Domino's volumes and distribution with the Kamp 2020 meta-analytic clearance.

Kamp 2020 (18 studies) found a weighted mean clearance of 79 L/h at 70 kg (95% CI
69-90), against Domino's 116 L/h, which under-predicts multi-hour infusions. This model
keeps Domino's per-kilogram volumes and distribution clearances and sets
CL = 79 L/h x (WT/70)^0.75: the default for infusions of an hour or more.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from ketapain.pharmacology.model import WeightScaling
from ketapain.pharmacology.models import domino_1984
from ketapain.sources import KAMP_2020

CL_L_PER_H_AT_70_KG: Final = 79.0  # Kamp 2020, weighted mean (95% CI 69-90)

MODEL: Final = replace(
    domino_1984.MODEL,
    name="domino-cl79",
    population="adults; Domino volumes with the meta-analytic clearance of Kamp 2020; "
    "default for infusions of 1 h or more",
    source=KAMP_2020,
    disposition=replace(domino_1984.MODEL.disposition, cl_l_per_h=CL_L_PER_H_AT_70_KG),
    scaling=WeightScaling(
        clearance_exponent=0.75, intercompartmental_exponent=1.0, volume_exponent=1.0
    ),
    notes=(("CL 79 L/h x (WT/70)^0.75", KAMP_2020), *domino_1984.MODEL.notes),
)
