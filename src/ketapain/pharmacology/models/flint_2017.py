"""S-ketamine with S-norketamine: Flint 2017 structure, Fanta 2015 clearance, adults.

Structure and volumes from Flint 2017 (PICU children, allometric to 70 kg): V1 7.73 L,
Q 196 L/h, V2 545 L, and an apparent one-compartment S-norketamine with CL/Fm 53.2 L/h
and V/Fm 1 L (fixed), fed by the whole parent elimination without molar-mass conversion,
as coded in nlmixr2lib. Clearance 95 L/h/70 kg (IIV 13%) from Fanta 2015 in adult
volunteers; women +20% clearance of S-ketamine and S-norketamine (Sigtermans 2009).

Left out: Flint's linear rise of norketamine clearance with time (+0.87%/h), estimated in
ventilated children and unbounded over a multi-day course.

Oral: F 8% (IIV 11%) from Fanta 2015; absorption from Perez-Ruixo 2021 (zero-order
0.32 h, then ka 0.97 /h). The presystemic norketamine fraction reproduces Fanta's
steady-state oral AUC ratio of 16.5 [computed]: AUC_NK / AUC_K = (F + fp) / F x CL / CLnk,
so fp = F (16.5 x 53.2 / 95 - 1) = 0.66.
"""

from __future__ import annotations

from typing import Final

from ketapain.pharmacology.model import (
    ALLOMETRIC,
    Disposition,
    Drug,
    MetaboliteModel,
    OralModel,
    PKModel,
)
from ketapain.pharmacology.models._shared import KE0_NOTE, KE0_PER_H
from ketapain.sources import FANTA_2015, FLINT_2017, PEREZ_RUIXO_2021, SIGTERMANS_2009

CL_L_PER_H: Final = 95.0  # Fanta 2015
CLNK_L_PER_H: Final = 53.2  # Flint 2017, CL/Fm
F_ORAL: Final = 0.08  # Fanta 2015
ORAL_NK_AUC_RATIO: Final = 16.5  # Fanta 2015
FEMALE_CLEARANCE_FACTOR: Final = 1.20  # Sigtermans 2009

MODEL: Final = PKModel(
    name="flint-fanta-s",
    drug=Drug.S_KETAMINE,
    population="adults (Flint 2017 structure scaled to 70 kg; clearance of Fanta 2015 "
    "volunteers); S-ketamine (esketamine) with S-norketamine",
    source=FLINT_2017,
    disposition=Disposition(cl_l_per_h=CL_L_PER_H, v1_l=7.73, q2_l_per_h=196.0, v2_l=545.0),
    scaling=ALLOMETRIC,
    ke0_per_h=KE0_PER_H,
    oral=OralModel(
        bioavailability=F_ORAL,
        first_pass_metabolite_fraction=F_ORAL * (ORAL_NK_AUC_RATIO * CLNK_L_PER_H / CL_L_PER_H - 1),
        ka_per_h=0.97,
        zero_order_h=0.32,
        sources=(FANTA_2015, PEREZ_RUIXO_2021),
    ),
    metabolite=MetaboliteModel(
        name="s-norketamine",
        cl_l_per_h=CLNK_L_PER_H,
        v1_l=1.0,
        fraction_formed=1.0,
        molar_mass_ratio=1.0,
        female_clearance_factor=FEMALE_CLEARANCE_FACTOR,
        sources=(FLINT_2017, SIGTERMANS_2009),
    ),
    variability_cv=(("cl", 0.13), ("bioavailability", 0.11)),
    s_fraction=1.0,
    female_clearance_factor=FEMALE_CLEARANCE_FACTOR,
    notes=(
        ("V1 7.73 L, Q 196 L/h, V2 545 L per 70 kg; S-NK CL/Fm 53.2 L/h, V/Fm 1 L", FLINT_2017),
        ("CL 95 L/h/70 kg (IIV 13%); oral F 8% (IIV 11%); oral NK AUC 16.5x", FANTA_2015),
        ("women: clearance x 1.20 (S-ketamine and S-norketamine)", SIGTERMANS_2009),
        ("oral absorption zero-order 0.32 h then ka 0.97 /h", PEREZ_RUIXO_2021),
        KE0_NOTE,
    ),
)
