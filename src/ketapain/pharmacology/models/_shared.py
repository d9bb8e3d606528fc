"""Blocks shared by several published models, each number with its source.

Published racemic IV models describe ketamine only. To simulate oral follow-on
courses they share one oral-absorption block and one norketamine block, built from the
sources below; each model states that it borrows them.
"""

from __future__ import annotations

import math
from typing import Final

from ketapain.pharmacology.model import MetaboliteModel, OralModel
from ketapain.sources import (
    KOPPEL_1990,
    OLOFSEN_2022,
    PEREZ_RUIXO_2021,
    WANG_2019,
    Source,
)
from ketapain.units import KETAMINE_MW_G_PER_MOL, NORKETAMINE_MW_G_PER_MOL, min_to_h

CHONG_2006: Final = Source(
    authors="Chong C, Schug S, Page-Sharp M, Ilett K",
    year=2006,
    journal="Pain Med 7(5):469 (abstract)",
    title="Bioavailability of ketamine after oral or sublingual administration",
    locator="oral F 23 +/- 9%; ketamine + norketamine (as ketamine) 59 +/- 16%; n = 6",
)
OTTO_2021: Final = Source(
    authors="Otto ME, Bergmann KR, Jacobs G, van Esdonk MJ",
    year=2021,
    journal="Eur J Clin Pharmacol 77(8):1181-1192",
    title="Predictive performance of parent-metabolite population pharmacokinetic models of "
    "(S)-ketamine in healthy volunteers",
    locator="S-norketamine 2-compartment: V 98.6 L, CL 57.7 L/h, Vp 160 L, Q 42.8 L/h "
    "(as coded in nlmixr2lib Otto_2021_s_ketamine.R)",
)

# Olofsen 2022: t1/2ke0 8.3 min for antinociception and psychedelic effect of S-ketamine.
# Used as the effect-site rate of every model: the racemic IV models publish no ke0 of
# their own (STANPUMP's k41 = 10/min is marked "no idea", stanpumpR's tPeak 3 min "just a
# guess", opentiva's values come from an assumed 1-min tpeak).
KE0_HALF_LIFE_MIN: Final = 8.3
KE0_PER_H: Final = math.log(2.0) / min_to_h(KE0_HALF_LIFE_MIN)
KE0_NOTE: Final = (
    f"ke0 = ln2 / 8.3 min = {KE0_PER_H:.2f} /h (acute effect site, S-ketamine)",
    OLOFSEN_2022,
)

# Share of S-ketamine in total ketamine after racemic dosing [computed]: steady state
# C_S / C_total = CL_R / (CL_R + CL_S) = 15.8 / (15.8 + 18.4) with the enantiomer
# clearances of Wang 2019 (mL/min/kg, measured after racemate).
RACEMIC_S_FRACTION: Final = 15.8 / (15.8 + 18.4)
S_FRACTION_NOTE: Final = (
    f"S-ketamine share of total ketamine {RACEMIC_S_FRACTION:.2f} "
    "[computed: R-CL 15.8 / (15.8 + S-CL 18.4) mL/min/kg]",
    WANG_2019,
)

# Oral racemic ketamine. Chong 2006 (n = 6 neuropathic-pain patients): F 23%, and 59% of
# the dose reaches the circulation as ketamine + norketamine, so 0.59 - 0.23 = 0.36 is
# converted presystemically [computed]. No published oral ka for racemic ketamine was
# found; the esketamine oral-solution absorption of Perez-Ruixo 2021 is used (zero-order
# 0.32 h, then ka 0.97 /h).
RACEMIC_ORAL: Final = OralModel(
    bioavailability=0.23,
    first_pass_metabolite_fraction=0.59 - 0.23,
    ka_per_h=0.97,
    zero_order_h=0.32,
    sources=(CHONG_2006, PEREZ_RUIXO_2021),
)

# Racemic norketamine. No published clearance/volume of norketamine after racemic IV
# ketamine was found. Apparent clearance from the ICU steady state of Köppel 1990
# [computed]: 1.2 mg/kg/h x 70 kg x (223.70 / 237.73) / 1.0 mg/L = 79 L/h at 70 kg.
# Volumes and distribution clearance: the S-norketamine disposition of Otto 2021 as a
# proxy (fm = 1 assumed there too).
_MOLAR_MASS_RATIO: Final = NORKETAMINE_MW_G_PER_MOL / KETAMINE_MW_G_PER_MOL
RACEMIC_NORKETAMINE: Final = MetaboliteModel(
    name="norketamine",
    cl_l_per_h=1.2 * 70.0 * _MOLAR_MASS_RATIO / 1.0,
    v1_l=98.6,
    q2_l_per_h=42.8,
    v2_l=160.0,
    fraction_formed=1.0,
    molar_mass_ratio=_MOLAR_MASS_RATIO,
    sources=(KOPPEL_1990, OTTO_2021),
)
SHARED_RACEMIC_NOTES: Final = (
    KE0_NOTE,
    S_FRACTION_NOTE,
    ("oral F 0.23; presystemic norketamine 0.36 of the dose [computed 0.59 - 0.23]", CHONG_2006),
    ("oral absorption zero-order 0.32 h then ka 0.97 /h (esketamine proxy)", PEREZ_RUIXO_2021),
    (
        "norketamine CL 79 L/h/70 kg [computed from steady state 1.0 ug/mL at 1.2 mg/kg/h]",
        KOPPEL_1990,
    ),
    ("norketamine V 98.6 L, Vp 160 L, Q 42.8 L/h (S-norketamine proxy)", OTTO_2021),
)

# Inter-individual variability where a model publishes none: clearance from the spread of
# enantiomer clearance after racemate in Wang 2019 (18.4 +/- 3.4 mL/min/kg, CV 18%),
# volumes and distribution clearance from Herd 2007 (V1 64%, V2 51.7%, Q 19%), oral
# absorption rate from Perez-Ruixo 2021 (omega^2 1.009 on ka_po -> CV 132%).
BORROWED_CV: Final = (
    ("cl", 0.18),
    ("v1", 0.64),
    ("q2", 0.19),
    ("v2", 0.517),
    ("q3", 0.19),
    ("v3", 0.517),
    ("ka", math.sqrt(math.expm1(1.009))),
)
BORROWED_CV_NOTE: Final = (
    "variability borrowed: CL 18% (Wang 2019), V1 64%, V2/V3 51.7%, Q 19% (Herd 2007), "
    "ka 132% (Perez-Ruixo 2021)",
    None,
)

__all__ = [
    "BORROWED_CV",
    "BORROWED_CV_NOTE",
    "CHONG_2006",
    "KE0_NOTE",
    "KE0_PER_H",
    "OTTO_2021",
    "RACEMIC_NORKETAMINE",
    "RACEMIC_ORAL",
    "RACEMIC_S_FRACTION",
    "SHARED_RACEMIC_NOTES",
]
