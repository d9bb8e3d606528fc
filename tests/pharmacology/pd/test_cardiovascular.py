"""Tests of ketapain.pharmacology.pd.cardiovascular: haemodynamic rises from S-ketamine."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from ketapain.errors import InvalidValueError
from ketapain.pharmacology.pd.cardiovascular import (
    CV_C50_NG_PER_ML,
    MAP_RISE_WARNING,
    CardiovascularModel,
)


def test_c50_fitted_to_45_percent_cardiac_output_rise_at_300():
    """C50 = 300 (0.5/0.45 - 1) = 33.33 ng/mL (rtol 1e-12, rounding)."""
    assert_allclose(CV_C50_NG_PER_ML, 100.0 / 3.0, rtol=1e-12)


def test_cardiac_output_rise_at_300_ng_per_ml():
    """Cardiac output rises 45% at 300 ng/mL (Sigtermans 2009 midpoint; atol 1e-9)."""
    assert_allclose(CardiovascularModel().cardiac_output_rise(300.0), 0.45, atol=1e-9)


def test_heart_rate_and_map_at_langsjo_concentration():
    """At 1959 ng/mL HR rises 43.5% and MAP 27.0% (Långsjö 2005; atol 1e-9)."""
    cv = CardiovascularModel()
    assert_allclose(cv.heart_rate_rise(1959.0), 0.435, atol=1e-9)
    assert_allclose(cv.map_rise(1959.0), 0.270, atol=1e-9)


def test_one_c50_for_the_three_signals():
    """At the common C50 every signal is at half its Emax (rtol 1e-14)."""
    cv = CardiovascularModel()
    c = cv.c50_ng_per_ml
    assert_allclose(cv.cardiac_output_rise(c), cv.co_emax / 2, rtol=1e-14)
    assert_allclose(cv.heart_rate_rise(c), cv.hr_emax / 2, rtol=1e-14)
    assert_allclose(cv.map_rise(c), cv.map_emax / 2, rtol=1e-14)


def test_no_drug_no_rise():
    """Zero concentration gives no rise of any signal."""
    cv = CardiovascularModel()
    for f in (cv.cardiac_output_rise, cv.heart_rate_rise, cv.map_rise):
        assert float(f(0.0)) == 0.0


def test_warning_threshold_is_20_percent():
    """The MAP warning threshold is a 20% rise (Chung 1995 vital-sign band)."""
    assert CardiovascularModel().map_rise_warning == MAP_RISE_WARNING == 0.20


@given(c=st.floats(0.0, 1.0e4), d=st.floats(0.0, 1.0e4))
def test_rises_are_monotone_and_below_emax(c, d):
    """Every rise is non-decreasing in concentration and below its Emax."""
    cv = CardiovascularModel()
    lo, hi = sorted((c, d))
    for f, emax in (
        (cv.cardiac_output_rise, cv.co_emax),
        (cv.heart_rate_rise, cv.hr_emax),
        (cv.map_rise, cv.map_emax),
    ):
        assert 0.0 <= float(f(lo)) <= float(f(hi)) <= emax * (1.0 + 1e-15)


def test_arrays_broadcast():
    """(N, T) concentrations give (N, T) rises."""
    c = np.array([[0.0, 100.0], [300.0, 1959.0]])
    assert CardiovascularModel().map_rise(c).shape == (2, 2)


def test_sources_cite_the_three_works():
    """Sigtermans 2009, Långsjö 2005 and Chung 1995 are cited."""
    assert sorted(s.year for s in CardiovascularModel.sources()) == [1995, 2005, 2009]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("c50_ng_per_ml", 0.0),
        ("c50_ng_per_ml", 1.5e5),
        ("co_emax", -0.5),
        ("hr_emax", 0.0),
        ("map_emax", 6.0),
        ("map_rise_warning", 0.0),
        ("map_rise_warning", np.inf),
    ],
)
def test_validation_names_the_field(field, value):
    """Non-positive or implausible parameters raise naming cardiovascular.<field>."""
    with pytest.raises(InvalidValueError, match=rf"^cardiovascular\.{field} must be"):
        CardiovascularModel(**{field: value})
