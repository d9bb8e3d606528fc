"""Tests of ketapain.pharmacology.pd.emax: the sigmoid Emax relation and its checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from ketapain.errors import InvalidValueError
from ketapain.pharmacology.pd.emax import (
    check_gamma,
    check_positive,
    check_probability,
    sigmoid_emax,
)

CONC = st.floats(0.0, 1.0e4)
C50 = st.floats(0.1, 1.0e3)
GAMMA = st.floats(0.1, 10.0)
EMAX = st.floats(0.01, 2.0)


@pytest.mark.parametrize("gamma", [0.1, 0.5, 1.0, 2.0, 10.0])
def test_half_effect_at_c50(gamma):
    """At C = C50 the effect is Emax/2 for every gamma (rtol 1e-15: 1/(1+1) is exact)."""
    got = sigmoid_emax(121.24, c50_ng_per_ml=121.24, gamma=gamma, emax=0.8)
    assert_allclose(got, 0.4, rtol=1e-15)


def test_zero_concentration_gives_zero_effect():
    """No drug, no effect: exactly 0 for any gamma."""
    for gamma in (0.1, 1.0, 10.0):
        assert float(sigmoid_emax(0.0, c50_ng_per_ml=10.0, gamma=gamma)) == 0.0


def test_large_concentration_approaches_emax():
    """At 1e6 x C50 the effect is within 1e-5 of Emax (the Hill curve's 1/(1+r) tail)."""
    got = float(sigmoid_emax(1.0e8, c50_ng_per_ml=100.0, emax=0.7))
    assert got < 0.7
    assert_allclose(got, 0.7, rtol=1e-5)


def test_hand_computed_value():
    """300 ng/mL, C50 100, gamma 2, Emax 0.8: 0.8 * 9 / 10 = 0.72 (rtol 1e-14, rounding)."""
    got = sigmoid_emax(300.0, c50_ng_per_ml=100.0, gamma=2.0, emax=0.8)
    assert_allclose(got, 0.72, rtol=1e-14)


def test_gamma_sets_the_steepness():
    """Below C50 a larger gamma gives less effect, above C50 more (the curve is steeper)."""
    low = [float(sigmoid_emax(50.0, c50_ng_per_ml=100.0, gamma=g)) for g in (0.5, 1.0, 3.0)]
    high = [float(sigmoid_emax(200.0, c50_ng_per_ml=100.0, gamma=g)) for g in (0.5, 1.0, 3.0)]
    assert low[0] > low[1] > low[2]
    assert high[0] < high[1] < high[2]
    assert_allclose(low[1], 1.0 / 3.0, rtol=1e-14)
    assert_allclose(low[2], 1.0 / 9.0, rtol=1e-14)


def test_negative_concentrations_count_as_zero():
    """Round-off below zero after a drug is gone gives exactly 0, not a negative effect."""
    got = sigmoid_emax(np.array([-1e-9, -5.0, 0.0]), c50_ng_per_ml=10.0, gamma=0.5)
    assert got.tolist() == [0.0, 0.0, 0.0]


def test_per_subject_c50_broadcasts_over_time():
    """C50 of shape (N, 1) applies row by row to a (N, T) array (rtol 1e-14, rounding)."""
    conc = np.array([[10.0, 20.0], [10.0, 20.0]])
    c50 = np.array([[10.0], [20.0]])
    got = sigmoid_emax(conc, c50_ng_per_ml=c50)
    assert got.shape == (2, 2)
    assert_allclose(got, [[0.5, 2.0 / 3.0], [1.0 / 3.0, 0.5]], rtol=1e-14)


@given(c=CONC, d=st.floats(0.0, 1.0e4), c50=C50, gamma=GAMMA, emax=EMAX)
def test_monotone_in_concentration_and_bounded_by_emax(c, d, c50, gamma, emax):
    """E(C) is non-decreasing in C and in [0, Emax], up to 4 ulp (r and Emax * r are rounded)."""
    lo, hi = sorted((c, d))
    e_lo = float(sigmoid_emax(lo, c50_ng_per_ml=c50, gamma=gamma, emax=emax))
    e_hi = float(sigmoid_emax(hi, c50_ng_per_ml=c50, gamma=gamma, emax=emax))
    ulp = 4.0 * np.finfo(float).eps
    assert 0.0 <= e_lo <= e_hi * (1.0 + ulp)
    assert e_hi <= emax * (1.0 + ulp)


@given(c=CONC, c50=C50, gamma=GAMMA)
def test_unit_emax_never_exceeds_one(c, c50, gamma):
    """With Emax 1 the effect r / (1 + r) is at most 1 exactly: 1 - E is never negative."""
    assert 0.0 <= float(sigmoid_emax(c, c50_ng_per_ml=c50, gamma=gamma)) <= 1.0


@given(c=st.floats(0.01, 1.0e3), c50=C50, gamma=GAMMA)
def test_decreasing_in_c50(c, c50, gamma):
    """A higher C50 (a less potent drug) never gives more effect at the same concentration."""
    e1 = float(sigmoid_emax(c, c50_ng_per_ml=c50, gamma=gamma))
    e2 = float(sigmoid_emax(c, c50_ng_per_ml=2.0 * c50, gamma=gamma))
    assert e2 <= e1


@given(c=st.floats(0.01, 1.0e3), c50=C50, gamma=GAMMA)
def test_matches_the_hill_formula(c, c50, gamma):
    """E = C^g / (C50^g + C^g), the textbook form (rtol 1e-10: different rounding paths)."""
    want = c**gamma / (c50**gamma + c**gamma)
    assert_allclose(float(sigmoid_emax(c, c50_ng_per_ml=c50, gamma=gamma)), want, rtol=1e-10)


@pytest.mark.parametrize("c50", [0.0, -1.0, np.inf, np.nan, 2.0e6])
def test_bad_c50_is_rejected_naming_the_field(c50):
    """C50 must be finite, above 0 and at most 1e6; the error names c50_ng_per_ml."""
    with pytest.raises(InvalidValueError, match="c50_ng_per_ml") as info:
        sigmoid_emax(1.0, c50_ng_per_ml=c50)
    assert info.value.field == "c50_ng_per_ml"


def test_one_bad_c50_in_an_array_is_rejected():
    """A single non-positive C50 among many subjects is reported with its value."""
    with pytest.raises(InvalidValueError, match="c50_ng_per_ml") as info:
        sigmoid_emax(1.0, c50_ng_per_ml=np.array([[10.0], [-3.0], [5.0]]))
    assert info.value.value == -3.0


@pytest.mark.parametrize("gamma", [0.0, 0.09, 10.5, -1.0, np.nan, np.inf])
def test_gamma_outside_0_1_to_10_is_rejected(gamma):
    """Hill coefficients outside 0.1-10 raise InvalidValueError naming gamma."""
    with pytest.raises(InvalidValueError, match=r"gamma must be between 0\.1 and 10"):
        sigmoid_emax(1.0, c50_ng_per_ml=1.0, gamma=gamma)


def test_checks_accept_their_bounds():
    """The closed bounds are allowed: gamma 0.1 and 10, probability 0 and 1, value = high."""
    check_gamma("g", 0.1)
    check_gamma("g", 10.0)
    check_probability("p", 0.0)
    check_probability("p", 1.0)
    check_positive("v", 5.0, high=5.0)


@pytest.mark.parametrize("value", [-0.01, 1.01, np.nan])
def test_check_probability_rejects_values_outside_0_1(value):
    """Probabilities outside [0, 1] (or NaN) raise naming the given field."""
    with pytest.raises(InvalidValueError, match=r"^acute\.emax_relief must be between 0 and 1"):
        check_probability("acute.emax_relief", value)


def test_check_positive_respects_high():
    """A value above ``high`` is rejected and the message states the bound."""
    with pytest.raises(InvalidValueError, match="at most 5"):
        check_positive("x", 5.0001, high=5.0)
