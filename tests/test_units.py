"""Tests of ketapain.units: known values and round trips."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from ketapain import units

POSITIVE = st.floats(1e-6, 1e6)
WEIGHT = st.floats(2.0, 400.0)


def test_known_values():
    """Reference §0: 1 µM ketamine = 237.73 ng/mL, 0.15 mg/L = 150 ng/mL, HCl/base 1.1534."""
    assert units.mg_per_l_to_ng_per_ml(0.15) == 150.0
    assert_allclose(
        units.ng_per_ml_to_umol_per_l(100.0, molar_mass_g_per_mol=units.KETAMINE_MW_G_PER_MOL),
        0.421,
        rtol=1e-3,
    )
    assert_allclose(
        units.umol_per_l_to_ng_per_ml(1.0, molar_mass_g_per_mol=units.KETAMINE_MW_G_PER_MOL),
        237.73,
    )
    assert_allclose(units.KETAMINE_HCL_MW_G_PER_MOL, units.KETAMINE_MW_G_PER_MOL + 36.46)
    # Simons thesis: 57.7 mg S-ketamine HCl corresponds to 50 mg base.
    assert_allclose(units.ketamine_hcl_mg_to_base_mg(57.7), 50.0, rtol=1e-3)
    assert units.per_min_to_per_h(0.438) == 0.438 * 60
    assert units.h_to_min(1.5) == 90.0
    assert units.min_to_h(90.0) == 1.5
    # Hijazi 2003: 36.0 mL/min/kg at 70 kg is 151 L/h (reference table 1b).
    assert_allclose(units.ml_per_min_per_kg_to_l_per_h(36.0, weight_kg=70.0), 151.2)
    assert units.mg_per_kg_h_to_mg_per_h(0.5, weight_kg=70.0) == 35.0
    assert units.mg_per_h_to_ml_per_h(35.0, bag_conc_mg_per_ml=2.0) == 17.5
    assert_allclose(units.half_life_to_rate_per_h(math.log(2.0)), 1.0)
    assert_allclose(units.cv_to_log_sd(0.3), math.sqrt(math.log(1.09)))


def test_conversions_work_on_arrays():
    """Every conversion accepts numpy arrays element-wise."""
    x = np.array([0.1, 1.0, 10.0])
    assert_allclose(units.mg_per_l_to_ng_per_ml(x), 1000.0 * x)
    assert_allclose(units.rate_per_h_to_half_life_h(x), math.log(2.0) / x)
    assert_allclose(units.log_sd_to_cv(units.cv_to_log_sd(x)), x, rtol=1e-12)


@given(POSITIVE)
def test_concentration_round_trip(x):
    """mg/L -> ng/mL -> mg/L is the identity."""
    assert_allclose(units.ng_per_ml_to_mg_per_l(units.mg_per_l_to_ng_per_ml(x)), x, rtol=1e-15)


@given(
    POSITIVE,
    st.sampled_from(
        [
            units.KETAMINE_MW_G_PER_MOL,
            units.NORKETAMINE_MW_G_PER_MOL,
            units.HYDROXYNORKETAMINE_MW_G_PER_MOL,
            units.DEHYDRONORKETAMINE_MW_G_PER_MOL,
        ]
    ),
)
def test_molar_round_trip(x, mw):
    """ng/mL -> µmol/L -> ng/mL is the identity for each molar mass."""
    there = units.ng_per_ml_to_umol_per_l(x, molar_mass_g_per_mol=mw)
    assert_allclose(units.umol_per_l_to_ng_per_ml(there, molar_mass_g_per_mol=mw), x, rtol=1e-15)


@given(POSITIVE)
def test_salt_round_trip(x):
    """Base -> HCl -> base is the identity, and the salt is always heavier."""
    hcl = units.ketamine_base_mg_to_hcl_mg(x)
    assert hcl > x
    assert_allclose(units.ketamine_hcl_mg_to_base_mg(hcl), x, rtol=1e-15)


@given(POSITIVE)
def test_time_and_rate_round_trips(x):
    """h <-> min and half-life <-> rate constant are inverse pairs."""
    assert_allclose(units.min_to_h(units.h_to_min(x)), x, rtol=1e-15)
    assert_allclose(
        units.rate_per_h_to_half_life_h(units.half_life_to_rate_per_h(x)), x, rtol=1e-15
    )
    assert_allclose(units.min_to_h(units.per_min_to_per_h(x)), x, rtol=1e-15)


@given(POSITIVE, WEIGHT, st.floats(0.1, 100.0))
def test_rate_chain(rate_mg_per_kg_h, weight_kg, bag_mg_per_ml):
    """mg/kg/h -> mg/h -> mL/h, multiplied back, returns the mg/kg/h rate."""
    mg_per_h = units.mg_per_kg_h_to_mg_per_h(rate_mg_per_kg_h, weight_kg=weight_kg)
    ml_per_h = units.mg_per_h_to_ml_per_h(mg_per_h, bag_conc_mg_per_ml=bag_mg_per_ml)
    assert_allclose(ml_per_h * bag_mg_per_ml / weight_kg, rate_mg_per_kg_h, rtol=1e-14)


@given(st.floats(1e-4, 3.0))
def test_cv_round_trip(cv):
    """CV -> log-normal SD -> CV is the identity (from 0.01%), and the SD is below the CV."""
    sd = units.cv_to_log_sd(cv)
    assert sd <= cv
    assert_allclose(units.log_sd_to_cv(sd), cv, rtol=1e-12)
    assert units.cv_to_log_sd(0.0) == 0.0


@given(st.floats(1e-3, 1e4), WEIGHT)
def test_clearance_per_kg_scales_with_weight(cl_ml_per_min_per_kg, weight_kg):
    """mL/min/kg -> L/h is x 0.06 x weight."""
    assert_allclose(
        units.ml_per_min_per_kg_to_l_per_h(cl_ml_per_min_per_kg, weight_kg=weight_kg),
        cl_ml_per_min_per_kg * weight_kg * 0.06,
        rtol=1e-14,
    )


def test_intake_conversions_of_weight_height_and_temperature():
    """Pounds, inches and Fahrenheit convert by their exact definitions: 154 lb is
    69.85 kg, 65 in is 165.1 cm, 98.6 F is 37 C and 32 F is 0 C."""
    assert_allclose(units.lb_to_kg(154.0), 69.85322498, rtol=1e-9)
    assert_allclose(units.inch_to_cm(65.0), 165.1, rtol=1e-12)
    assert_allclose(units.degf_to_celsius(98.6), 37.0, rtol=1e-12)
    assert units.degf_to_celsius(32.0) == 0.0


def test_laboratory_molar_units_convert_with_young_1987_factors():
    """Bilirubin 17.1 umol/L is 1 mg/dL and creatinine 88.4 umol/L is 1 mg/dL (Young
    1987), and the factors carry their source."""
    assert_allclose(
        units.umol_per_l_to_mg_per_dl(
            17.1, umol_per_l_per_mg_per_dl=units.BILIRUBIN_UMOL_PER_L_PER_MG_PER_DL
        ),
        1.0,
        rtol=1e-12,
    )
    assert_allclose(
        units.umol_per_l_to_mg_per_dl(
            176.8, umol_per_l_per_mg_per_dl=units.CREATININE_UMOL_PER_L_PER_MG_PER_DL
        ),
        2.0,
        rtol=1e-12,
    )
    assert units.YOUNG_1987.short() == "Young 1987"
