"""Tests of ketapain.pharmacology.pd.sustained: the Dahan 2011 sustained-relief model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from ketapain.errors import InvalidValueError
from ketapain.pharmacology.pd.sustained import (
    P_RESPONSE_KETAMINE,
    P_RESPONSE_PLACEBO,
    SUSTAINED_C50_NG_PER_ML,
    SUSTAINED_T_HALF_DAYS,
    SustainedReliefModel,
)


def test_published_dahan_2011_values():
    """t1/2 10.9 days, C50 10.5 ng/mL, P(response) 0.67 on ketamine and 0.23 on placebo."""
    assert SUSTAINED_T_HALF_DAYS == 10.9
    assert SUSTAINED_C50_NG_PER_ML == 10.5
    assert P_RESPONSE_KETAMINE == 0.67
    assert P_RESPONSE_PLACEBO == 0.23
    model = SustainedReliefModel()
    assert model.t_half_days == 10.9
    assert model.c50_ng_per_ml == 10.5


def test_ke0_is_ln2_over_the_half_life_in_hours():
    """ke0 = ln 2 / (10.9 x 24) per hour (rtol 1e-14, rounding)."""
    assert_allclose(SustainedReliefModel().ke0_per_h, math.log(2) / (10.9 * 24), rtol=1e-14)
    assert_allclose(SustainedReliefModel(t_half_days=1.0).ke0_per_h, math.log(2) / 24, rtol=1e-14)


@pytest.mark.parametrize(("gamma", "emax"), [(1.0, 1.0), (1.95, 1.0), (4.0, 0.6)])
def test_relief_at_c50_is_half_emax(gamma, emax):
    """relief(C50) = Emax / 2 for any gamma (rtol 1e-14)."""
    model = SustainedReliefModel(gamma=gamma, emax=emax)
    assert_allclose(model.relief(model.c50_ng_per_ml), emax / 2, rtol=1e-14)


def test_relief_hand_value():
    """C = 2 C50, gamma 2: relief = 4/5 Emax (rtol 1e-14)."""
    model = SustainedReliefModel(gamma=2.0, emax=0.9)
    assert_allclose(model.relief(21.0), 0.9 * 0.8, rtol=1e-14)


def test_relief_takes_a_per_subject_c50():
    """c50_ng_per_ml of shape (N, 1) overrides the model's C50 row by row (rtol 1e-14)."""
    model = SustainedReliefModel(gamma=1.0)
    conc = np.full((2, 3), 10.0)
    got = model.relief(conc, c50_ng_per_ml=np.array([[10.0], [30.0]]))
    assert_allclose(got[0], 0.5, rtol=1e-14)
    assert_allclose(got[1], 0.25, rtol=1e-14)


def test_drug_response_combines_with_placebo_response_to_0_67():
    """1 - (1 - q)(1 - 0.23) = 0.67 with q the drug-specific probability (rtol 1e-14)."""
    q = SustainedReliefModel().p_drug_response
    assert_allclose(q, (0.67 - 0.23) / (1 - 0.23), rtol=1e-14)
    assert_allclose(1.0 - (1.0 - q) * (1.0 - 0.23), 0.67, rtol=1e-14)


@given(p=st.floats(0.0, 1.0), p0=st.floats(0.0, 0.99))
def test_drug_response_probability_property(p, p0):
    """q is in [0, 1] and reproduces p when p >= p0, else is 0 (atol 1e-12, rounding)."""
    q = SustainedReliefModel(p_response=p, p_response_placebo=p0).p_drug_response
    assert 0.0 <= q <= 1.0 + 1e-15
    if p >= p0:
        assert_allclose(1.0 - (1.0 - q) * (1.0 - p0), p, atol=1e-12)
    else:
        assert q == 0.0


def test_drug_response_is_zero_when_everyone_responds_to_placebo():
    """A placebo response probability of 1 leaves no drug-specific response (no 0/0)."""
    assert SustainedReliefModel(p_response_placebo=1.0).p_drug_response == 0.0


def test_expected_relief_averages_over_drug_responders():
    """expected_relief = q x responder relief (rtol 1e-14)."""
    model = SustainedReliefModel()
    c = np.array([0.0, 5.0, 10.5, 50.0])
    assert_allclose(model.expected_relief(c), model.p_drug_response * model.relief(c), rtol=1e-14)


@given(c=st.floats(0.0, 1.0e3), d=st.floats(0.0, 1.0e3))
def test_relief_is_monotone_and_bounded(c, d):
    """Relief is non-decreasing in the slow effect-site concentration and in [0, Emax]."""
    model = SustainedReliefModel()
    lo, hi = sorted((c, d))
    assert 0.0 <= float(model.relief(lo)) <= float(model.relief(hi)) <= model.emax


def test_omegas_default_to_zero_and_accept_positive_values():
    """Inter-individual SDs are 0 by default; 0 < omega <= 3 is accepted."""
    model = SustainedReliefModel()
    assert model.omega_c50 == model.omega_t_half == 0.0
    assert SustainedReliefModel(omega_c50=0.5, omega_t_half=3.0).omega_t_half == 3.0


def test_sources_cite_dahan_and_sigtermans():
    """Dahan 2011 and Sigtermans 2009 are cited."""
    assert sorted(s.year for s in SustainedReliefModel.sources()) == [2009, 2011]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("t_half_days", 0.0),
        ("t_half_days", 400.0),
        ("c50_ng_per_ml", -1.0),
        ("c50_ng_per_ml", 2.0e4),
        ("gamma", 0.0),
        ("gamma", 12.0),
        ("emax", 1.01),
        ("p_response", -0.1),
        ("p_response_placebo", 1.5),
        ("placebo_relief", np.nan),
        ("omega_c50", -0.1),
        ("omega_t_half", 3.5),
        ("omega_c50", np.nan),
    ],
)
def test_validation_names_the_field(field, value):
    """Out-of-range parameters raise InvalidValueError naming sustained.<field>."""
    with pytest.raises(InvalidValueError, match=rf"^sustained\.{field} must be"):
        SustainedReliefModel(**{field: value})
