"""Tests of ketapain.protocols.dosing_weight: actual, ideal and adjusted body weight."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from ketapain.errors import InvalidValueError
from ketapain.protocols.dosing_weight import (
    WeightPolicy,
    dosing_weight,
    ideal_body_weight_kg,
)


def test_devine_ideal_body_weight():
    """Devine: man 170 cm = 65.94 kg; woman 165 cm = 45.5 + 2.3 x (165 - 152.4) / 2.54 kg."""
    man = ideal_body_weight_kg(height_cm=170.0, sex="male")
    assert_allclose(man, 50.0 + 2.3 * (170.0 - 152.4) / 2.54, rtol=1e-12)
    assert_allclose(man, 65.94, rtol=1e-4)
    woman = ideal_body_weight_kg(height_cm=165.0, sex="female")
    assert_allclose(woman, 45.5 + 2.3 * (165.0 - 152.4) / 2.54, rtol=1e-12)
    assert_allclose(woman, 56.91, rtol=1e-4)


def test_ideal_weight_at_five_feet_and_below():
    """At 5 feet (152.4 cm) or shorter the base weight is returned."""
    assert_allclose(ideal_body_weight_kg(height_cm=152.4, sex="male"), 50.0, rtol=1e-12)
    assert_allclose(ideal_body_weight_kg(height_cm=140.0, sex="female"), 45.5, rtol=0)


def test_ideal_weight_needs_a_known_sex():
    """A sex other than female or male names sex."""
    with pytest.raises(InvalidValueError) as info:
        ideal_body_weight_kg(height_cm=170.0, sex="other")
    assert info.value.field == "sex"


def test_actual_policy_uses_the_body_weight():
    """The actual policy doses by the measured weight, without needing a height."""
    w = dosing_weight(weight_kg=120.0, height_cm=None, sex="male")
    assert w.policy is WeightPolicy.ACTUAL
    assert w.dosing_kg == 120.0
    assert w.ideal_kg is None and w.adjusted_kg is None and w.source is None
    assert w.explain() == "actual body weight 120.0 kg (actual 120 kg)"


def test_adjusted_weight_of_an_obese_man():
    """120 kg, 170 cm: IBW 65.94 kg, adjusted = IBW + 0.4 x (120 - IBW) = 87.56 kg."""
    w = dosing_weight(weight_kg=120.0, height_cm=170.0, sex="male", policy=WeightPolicy.ADJUSTED)
    ibw = 50.0 + 2.3 * (170.0 - 152.4) / 2.54
    assert_allclose(w.ideal_kg, ibw, rtol=1e-12)
    assert_allclose(w.dosing_kg, ibw + 0.4 * (120.0 - ibw), rtol=1e-12)
    assert_allclose(w.adjusted_kg, w.dosing_kg, rtol=0)
    assert "Traynor" in w.source.authors
    assert w.explain() == "adjusted body weight 87.6 kg (actual 120 kg, ideal 65.9 kg)"


def test_ideal_policy_of_an_obese_woman():
    """110 kg, 165 cm woman under the ideal policy: dosed at 56.9 kg (Devine)."""
    w = dosing_weight(weight_kg=110.0, height_cm=165.0, sex="female", policy=WeightPolicy.IDEAL)
    assert_allclose(w.dosing_kg, 45.5 + 2.3 * (165.0 - 152.4) / 2.54, rtol=1e-12)
    assert "Devine" in w.source.authors


@pytest.mark.parametrize("policy", [WeightPolicy.IDEAL, WeightPolicy.ADJUSTED])
def test_below_the_ideal_weight_the_actual_weight_is_used(policy):
    """A 50-kg man of 180 cm (IBW 74.9 kg) is dosed at 50 kg under every policy."""
    w = dosing_weight(weight_kg=50.0, height_cm=180.0, sex="male", policy=policy)
    assert w.dosing_kg == 50.0
    assert w.adjusted_kg == 50.0
    assert w.ideal_kg > 74.0


@given(
    weight=st.floats(20.0, 400.0),
    height=st.floats(50.0, 250.0),
    sex=st.sampled_from(["female", "male"]),
)
def test_policies_are_ordered(weight, height, sex):
    """ideal <= adjusted <= actual; none above the measured weight."""
    ideal = dosing_weight(weight_kg=weight, height_cm=height, sex=sex, policy=WeightPolicy.IDEAL)
    adjusted = dosing_weight(
        weight_kg=weight, height_cm=height, sex=sex, policy=WeightPolicy.ADJUSTED
    )
    assert ideal.dosing_kg <= weight
    assert ideal.dosing_kg <= adjusted.dosing_kg * (1 + 1e-12)
    assert adjusted.dosing_kg <= weight * (1 + 1e-12)


def test_cap_applies_after_the_policy():
    """A 100-kg cap limits a 150-kg actual weight, but not an adjusted weight below it."""
    w = dosing_weight(weight_kg=150.0, height_cm=None, sex="male", cap_kg=100.0)
    assert w.dosing_kg == 100.0
    assert w.cap_kg == 100.0
    assert w.explain().endswith("capped at 100 kg)")
    adj = dosing_weight(
        weight_kg=150.0, height_cm=170.0, sex="male", policy=WeightPolicy.ADJUSTED, cap_kg=100.0
    )
    ibw = 50.0 + 2.3 * (170.0 - 152.4) / 2.54
    assert_allclose(adj.dosing_kg, ibw + 0.4 * (150.0 - ibw), rtol=1e-12)
    assert dosing_weight(weight_kg=80.0, height_cm=None, sex="male", cap_kg=100.0).dosing_kg == 80


@pytest.mark.parametrize("policy", [WeightPolicy.IDEAL, WeightPolicy.ADJUSTED])
def test_ideal_and_adjusted_need_the_height(policy):
    """Without a height the ideal and adjusted policies name height_cm."""
    with pytest.raises(InvalidValueError) as info:
        dosing_weight(weight_kg=120.0, height_cm=None, sex="male", policy=policy)
    assert info.value.field == "height_cm"
    assert policy.value in info.value.allowed


@pytest.mark.parametrize("cap", [0.0, 19.9, 400.1, -100.0, float("nan")])
def test_bad_cap_is_refused(cap):
    """A cap outside 20-400 kg names weight cap_kg."""
    with pytest.raises(InvalidValueError) as info:
        dosing_weight(weight_kg=80.0, height_cm=None, sex="male", cap_kg=cap)
    assert info.value.field == "weight cap_kg"


@pytest.mark.parametrize("cap", [20.0, 400.0])
def test_cap_bounds_are_inclusive(cap):
    """20 and 400 kg are accepted caps."""
    w = dosing_weight(weight_kg=80.0, height_cm=None, sex="male", cap_kg=cap)
    assert w.dosing_kg == min(80.0, cap)
