"""Tests of ketapain.pharmacology.parameters: individual parameter values and their checks."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from ketapain.errors import InvalidValueError
from ketapain.pharmacology.parameters import (
    MetaboliteParameters,
    OralParameters,
    PKParameters,
)

ONE = np.ones(1)
THREE = np.array([1.0, 2.0, 3.0])


def _oral(n: int = 3, **changes) -> OralParameters:
    values = {
        "ka_per_h": np.full(n, 0.97),
        "bioavailability": np.full(n, 0.23),
        "first_pass_metabolite_fraction": np.full(n, 0.36),
    }
    return OralParameters(**(values | changes))


def _metabolite(n: int = 3, **changes) -> MetaboliteParameters:
    values = {
        "cl_l_per_h": np.full(n, 79.0),
        "v1_l": np.full(n, 98.6),
        "fraction_formed": np.full(n, 1.0),
    }
    return MetaboliteParameters(**(values | changes))


def _three(**changes) -> PKParameters:
    values = {
        "weight_kg": np.array([50.0, 70.0, 90.0]),
        "cl_l_per_h": np.array([60.0, 79.0, 95.0]),
        "v1_l": np.array([3.0, 4.4, 5.7]),
        "q2_l_per_h": np.array([100.0, 150.0, 200.0]),
        "v2_l": np.array([8.0, 10.6, 13.0]),
        "q3_l_per_h": np.array([100.0, 150.0, 200.0]),
        "v3_l": np.array([120.0, 178.0, 230.0]),
        "ke0_per_h": np.full(3, 5.0),
        "oral": _oral(),
        "metabolite": _metabolite(),
    }
    return PKParameters(**(values | changes))


def test_from_microconstants_inverts_the_definitions():
    """CL = k10 V1, Q2 = k12 V1, V2 = Q2 / k21, Q3 = k13 V1, V3 = Q3 / k31 (Domino at 70 kg)."""
    v1 = 0.063 * 70.0 * ONE
    p = PKParameters.from_microconstants(
        weight_kg=70.0 * ONE,
        v1_l=v1,
        k10_per_h=0.438 * 60 * ONE,
        k12_per_h=0.592 * 60 * ONE,
        k21_per_h=0.247 * 60 * ONE,
        k13_per_h=0.590 * 60 * ONE,
        k31_per_h=0.0146 * 60 * ONE,
        ke0_per_h=39.0 * ONE,
    )
    assert_allclose(p.cl_l_per_h, 0.438 * 60 * v1, rtol=1e-12)
    assert_allclose(p.q2_l_per_h / p.v1_l, [0.592 * 60], rtol=1e-12)
    assert_allclose(p.q2_l_per_h / p.v2_l, [0.247 * 60], rtol=1e-12)
    assert_allclose(p.q3_l_per_h / p.v3_l, [0.0146 * 60], rtol=1e-12)
    assert_allclose(p.vss_l(), [193.0], rtol=0.005)  # reference table 1b: 193 L
    assert p.n_compartments == 3
    assert p.n_subjects == 1


def test_compartment_count_and_vss():
    """Absent peripheral blocks count as absent; Vss is the sum of the volumes present."""
    one = PKParameters(weight_kg=ONE, cl_l_per_h=ONE, v1_l=2 * ONE)
    assert one.n_compartments == 1
    assert_allclose(one.vss_l(), [2.0])
    p = _three()
    assert p.n_compartments == 3
    assert_allclose(p.vss_l(), p.v1_l + p.v2_l + p.v3_l)


def test_take_selects_subjects_in_every_block():
    """take() picks the same subjects from the parent, oral and metabolite arrays."""
    p = _three(oral=_oral(ka_per_h=THREE), metabolite=_metabolite(v1_l=10 * THREE))
    sub = p.take(np.array([2, 0]))
    assert_array_equal(sub.weight_kg, [90.0, 50.0])
    assert_array_equal(sub.oral.ka_per_h, [3.0, 1.0])
    assert_array_equal(sub.metabolite.v1_l, [30.0, 10.0])
    assert sub.oral.zero_order_h == p.oral.zero_order_h
    assert p.take(slice(1, 2)).n_subjects == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cl_l_per_h": np.array([60.0, -1.0, 95.0])}, "cl_l_per_h"),
        ({"v1_l": np.array([3.0, 0.0, 5.0])}, "v1_l"),
        ({"v1_l": np.array([3.0, np.nan, 5.0])}, "v1_l"),
        ({"v2_l": np.array([8.0, 1e9, 13.0])}, "v2_l"),
        ({"ke0_per_h": np.array([5.0, 5.0, np.inf])}, "ke0_per_h"),
        ({"weight_kg": np.array([50.0, 70.0, 500.0])}, "weight_kg"),
        ({"cl_l_per_h": np.ones(2)}, "cl_l_per_h"),
        ({"v2_l": None}, "q2_l_per_h/v2_l"),
        ({"q2_l_per_h": None, "v2_l": None}, "q3_l_per_h"),
    ],
)
def test_invalid_parameters_name_the_field(changes, field):
    """Non-positive, non-finite, implausible or mis-shaped values raise naming the field."""
    with pytest.raises(InvalidValueError) as err:
        _three(**changes)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field} must be ")


def test_invalid_value_is_reported_with_its_range():
    """The message gives the allowed range and the first offending value."""
    with pytest.raises(InvalidValueError) as err:
        _three(cl_l_per_h=np.array([60.0, -1.0, -2.0]))
    assert str(err.value) == "cl_l_per_h must be greater than 0 and at most 100000; got -1.0"


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: _oral(ka_per_h=np.zeros(3)), "ka_per_h"),
        (lambda: _oral(bioavailability=np.full(3, 1.2)), "bioavailability"),
        (
            lambda: _oral(first_pass_metabolite_fraction=np.full(3, -0.1)),
            "first_pass_metabolite_fraction",
        ),
        (
            lambda: _oral(bioavailability=np.full(3, 0.7)),
            "bioavailability + first_pass_metabolite_fraction",
        ),
        (lambda: _oral(zero_order_h=25.0), "zero_order_h"),
        (lambda: _oral(zero_order_h=float("nan")), "zero_order_h"),
        (lambda: _metabolite(cl_l_per_h=np.zeros(3)), "metabolite.cl_l_per_h"),
        (lambda: _metabolite(v1_l=-THREE), "metabolite.v1_l"),
        (lambda: _metabolite(fraction_formed=np.full(3, 2.0)), "metabolite.fraction_formed"),
        (lambda: _metabolite(q2_l_per_h=THREE), "metabolite.q2_l_per_h/v2_l"),
        (lambda: _metabolite(q2_l_per_h=THREE, v2_l=np.zeros(3)), "metabolite.v2_l"),
    ],
)
def test_invalid_blocks_name_the_field(make, field):
    """Oral and metabolite blocks check their own fields."""
    with pytest.raises(InvalidValueError) as err:
        make()
    assert err.value.field == field


def test_parameters_are_frozen():
    """Parameter values cannot be reassigned."""
    p = _three()
    with pytest.raises(AttributeError):
        p.cl_l_per_h = p.cl_l_per_h * 2  # type: ignore[misc]
