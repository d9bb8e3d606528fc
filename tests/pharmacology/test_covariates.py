"""Tests of ketapain.pharmacology.covariates."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from ketapain.errors import InvalidValueError
from ketapain.pharmacology.covariates import AGE_RANGE_Y, WEIGHT_RANGE_KG, Covariates, Sex


def test_single_and_repeat():
    """single() is one subject; repeat() is n identical subjects."""
    c = Covariates.single(weight_kg=70, sex="female", age_y=45)
    assert c.n_subjects == 1
    assert_array_equal(c.weight_kg, [70.0])
    assert c.weight_kg.dtype == np.float64
    assert bool(c.female[0]) is True
    r = Covariates.repeat(weight_kg=80.0, sex=Sex.MALE, n=4)
    assert r.n_subjects == 4
    assert not r.female.any()
    assert_array_equal(r.age_y, np.full(4, 40.0))


def test_take():
    """take() selects subjects from every array."""
    c = Covariates(
        weight_kg=np.array([50.0, 60.0, 70.0]),
        female=np.array([True, False, True]),
        age_y=np.array([20.0, 30.0, 40.0]),
    )
    sub = c.take(np.array([2, 1]))
    assert_array_equal(sub.weight_kg, [70.0, 60.0])
    assert_array_equal(sub.female, [True, False])
    assert_array_equal(sub.age_y, [40.0, 30.0])


@given(
    weight=st.floats(WEIGHT_RANGE_KG[0], WEIGHT_RANGE_KG[1]),
    age=st.floats(AGE_RANGE_Y[0], AGE_RANGE_Y[1]),
    sex=st.sampled_from(["female", "male"]),
)
def test_plausible_covariates_are_kept_exactly(weight, age, sex):
    """Values inside the plausibility bounds are stored unchanged."""
    c = Covariates.single(weight_kg=weight, sex=sex, age_y=age)
    assert c.weight_kg[0] == weight and c.age_y[0] == age
    assert bool(c.female[0]) is (sex == "female")


@pytest.mark.parametrize(
    ("kwargs", "field", "allowed"),
    [
        ({"weight_kg": 1.0}, "weight_kg", "at least 2 and at most 400"),
        ({"weight_kg": 700.0}, "weight_kg", "at least 2 and at most 400"),
        ({"weight_kg": float("nan")}, "weight_kg", "at least 2 and at most 400"),
        ({"weight_kg": 70.0, "age_y": -1.0}, "age_y", "at least 0 and at most 120"),
        ({"weight_kg": 70.0, "age_y": 130.0}, "age_y", "at least 0 and at most 120"),
        ({"weight_kg": 70.0, "sex": "f"}, "sex", "'female' or 'male'"),
        ({"weight_kg": "70"}, "weight_kg", "a number"),
        ({"weight_kg": True}, "weight_kg", "a number"),
    ],
)
def test_implausible_covariates_are_refused(kwargs, field, allowed):
    """Out-of-range covariates raise InvalidValueError naming field, range and value."""
    with pytest.raises(InvalidValueError) as err:
        Covariates.single(**kwargs)
    assert err.value.field == field
    assert err.value.allowed == allowed
    assert str(err.value).startswith(f"{field} must be {allowed}; got ")


def test_unequal_lengths_are_refused():
    """Covariate arrays must have one equal length."""
    with pytest.raises(InvalidValueError, match=r"^covariates must be arrays of one equal length"):
        Covariates(
            weight_kg=np.array([70.0, 80.0]), female=np.array([True]), age_y=np.array([40.0, 50.0])
        )
