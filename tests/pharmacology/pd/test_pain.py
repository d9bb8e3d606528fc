"""Tests of ketapain.pharmacology.pd.pain: predicted NRS, time to relief, relief duration."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose

from ketapain.errors import InvalidValueError
from ketapain.pharmacology.pd.pain import (
    NRS_MAX,
    RELIEF_THRESHOLD,
    predicted_nrs,
    relief_duration_days,
    time_to_relief_h,
)

T = np.array([0.0, 24.0, 48.0, 72.0])
FRACTION = st.floats(0.0, 1.0)
NRS = st.floats(0.0, 10.0)


# --- predicted_nrs -----------------------------------------------------------------------


def test_threshold_and_scale_constants():
    """The scale is 0-10 and relief is a 30% reduction (Farrar 2001)."""
    assert NRS_MAX == 10.0
    assert RELIEF_THRESHOLD == 0.30


def test_layers_combine_multiplicatively():
    """8 x (1 - 0.5)(1 - 0.25)(1 - 0.2) = 2.4 (rtol 1e-14, three multiplications)."""
    got = predicted_nrs(8.0, acute_relief=0.5, sustained_relief=0.25, placebo_relief=0.2)
    assert_allclose(got, 2.4, rtol=1e-14)


def test_no_relief_keeps_the_baseline():
    """Without any layer the prediction is the baseline itself."""
    assert float(predicted_nrs(6.5)) == 6.5


def test_baseline_broadcasts_against_time_courses():
    """Baselines of shape (N, 1) broadcast against (N, T) relief (rtol 1e-14)."""
    relief = np.array([[0.0, 0.5], [0.25, 1.0]])
    got = predicted_nrs(np.array([[8.0], [4.0]]), acute_relief=relief)
    assert_allclose(got, [[8.0, 4.0], [3.0, 0.0]], rtol=1e-14)


def test_prediction_is_clipped_to_the_scale():
    """Relief above 1 cannot make pain negative and negative relief cannot exceed 10."""
    assert float(predicted_nrs(7.0, acute_relief=1.5)) == 0.0
    assert float(predicted_nrs(7.0, sustained_relief=-1.0)) == 10.0


@given(
    b=NRS,
    acute=arrays(float, 5, elements=FRACTION),
    sustained=arrays(float, 5, elements=FRACTION),
    placebo=FRACTION,
)
def test_prediction_within_scale_and_not_above_baseline(b, acute, sustained, placebo):
    """With reliefs in [0, 1], predicted NRS lies in [0, baseline] (and so in [0, 10])."""
    nrs = predicted_nrs(b, acute_relief=acute, sustained_relief=sustained, placebo_relief=placebo)
    assert np.all(nrs >= 0.0)
    assert np.all(nrs <= b)


@given(b=NRS, r1=FRACTION, r2=FRACTION)
def test_more_relief_never_raises_pain(b, r1, r2):
    """NRS is non-increasing in each relief layer."""
    lo, hi = sorted((r1, r2))
    assert float(predicted_nrs(b, sustained_relief=hi)) <= float(
        predicted_nrs(b, sustained_relief=lo)
    )


@pytest.mark.parametrize("baseline", [-0.1, 10.5, np.nan, np.inf])
def test_bad_baseline_names_the_field(baseline):
    """Baselines outside 0-10 raise InvalidValueError naming baseline_nrs."""
    with pytest.raises(InvalidValueError, match=r"^baseline_nrs must be between 0 and 10"):
        predicted_nrs(baseline)


def test_one_bad_baseline_among_many_is_reported():
    """The first offending baseline is the reported value."""
    with pytest.raises(InvalidValueError, match="baseline_nrs") as info:
        predicted_nrs(np.array([5.0, 11.0, 3.0]))
    assert info.value.value == 11.0


# --- time_to_relief_h --------------------------------------------------------------------


def test_time_to_relief_hand_example():
    """Level 0.7 x 8 = 5.6 is crossed between 8 (0 h) and 4 (24 h): at 0.6 x 24 = 14.4 h."""
    got = time_to_relief_h(T, np.array([[8.0, 4.0, 5.0, 7.0]]), np.array([8.0]))
    assert_allclose(got, [14.4], rtol=1e-14)


def test_time_to_relief_is_nan_when_never_relieved():
    """A patient who never reaches 30% below baseline has NaN time to relief."""
    got = time_to_relief_h(T, np.array([[8.0, 6.0, 5.7, 8.0]]), np.array([8.0]))
    assert np.isnan(got[0])


def test_time_to_relief_at_the_first_sample():
    """A patient already at or below the level at the first sample is relieved then."""
    got = time_to_relief_h(T + 5.0, np.array([[5.0, 8.0, 8.0, 8.0]]), np.array([8.0]))
    assert got[0] == 5.0


def test_time_to_relief_exactly_on_the_level():
    """Reaching the level exactly at a sample counts, at that sample's time."""
    got = time_to_relief_h(T, np.array([[8.0, 8.0, 5.6, 8.0]]), np.array([8.0]))
    assert_allclose(got, [48.0], rtol=1e-14)


def test_time_to_relief_with_a_custom_threshold_and_several_rows():
    """Threshold 0.5 on baselines 8 and 6: levels 4 and 3; NaN for the row never there.

    Row 0 crosses 4 between 6 (24 h) and 2 (48 h): 24 + 0.5 x 24 = 36 h (rtol 1e-14).
    """
    nrs = np.array([[8.0, 6.0, 2.0, 2.0], [6.0, 5.0, 4.0, 3.5], [6.0, 0.0, 6.0, 6.0]])
    got = time_to_relief_h(T, nrs, np.array([8.0, 6.0, 6.0]), threshold=0.5)
    assert_allclose(got[0], 36.0, rtol=1e-14)
    assert np.isnan(got[1])
    assert_allclose(got[2], 12.0, rtol=1e-14)


@given(
    b=st.floats(1.0, 10.0),
    nrs=arrays(float, 6, elements=NRS),
    threshold=st.floats(0.05, 0.95),
)
def test_time_to_relief_is_consistent_with_the_crossing(b, nrs, threshold):
    """The time is NaN iff no sample reaches the level; otherwise it lies in the interval
    ending at the first sample that does, and the linear interpolant equals the level there
    (atol 1e-9 x 10: interpolation rounding on a 0-10 scale)."""
    t = np.array([0.0, 1.0, 3.0, 7.0, 12.0, 30.0])
    level = (1.0 - threshold) * b
    got = float(time_to_relief_h(t, nrs[None, :], np.array([b]), threshold=threshold)[0])
    below = np.flatnonzero(nrs <= level)
    if below.size == 0:
        assert np.isnan(got)
        return
    k = below[0]
    if k == 0:
        assert got == t[0]
        return
    assert t[k - 1] <= got <= t[k]
    assert_allclose(np.interp(got, t, nrs), level, atol=1e-8)


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.3, 1.3])
def test_threshold_must_be_strictly_between_0_and_1(threshold):
    """Thresholds of 0, 1 or outside raise InvalidValueError naming threshold."""
    with pytest.raises(InvalidValueError, match=r"^threshold must be between 0 and 1"):
        time_to_relief_h(T, np.ones((1, 4)), np.array([8.0]), threshold=threshold)
    with pytest.raises(InvalidValueError, match=r"^threshold must be between 0 and 1"):
        relief_duration_days(T, np.ones((1, 4)), np.array([8.0]), after_h=0.0, threshold=threshold)


def test_bad_baseline_in_time_to_relief_names_the_field():
    """time_to_relief_h validates baselines like predicted_nrs does."""
    with pytest.raises(InvalidValueError, match=r"^baseline_nrs"):
        time_to_relief_h(T, np.ones((1, 4)), np.array([12.0]))


# --- relief_duration_days ----------------------------------------------------------------


def test_relief_duration_hand_example():
    """After 24 h relief ends between 5 (48 h) and 7 (72 h) at 55.2 h: 31.2 h = 1.3 days.

    The level 5.6 is reached at 0.3 of the interval (rtol 1e-14, rounding).
    """
    d, censored = relief_duration_days(
        T, np.array([[8.0, 4.0, 5.0, 7.0]]), np.array([8.0]), after_h=24.0
    )
    assert_allclose(d, [1.3], rtol=1e-14)
    assert censored.tolist() == [False]


def test_no_relief_after_the_end_of_treatment_lasts_zero_days():
    """Relief that ended before ``after_h`` counts as 0 days, not censored."""
    d, censored = relief_duration_days(
        T, np.array([[8.0, 4.0, 8.0, 8.0]]), np.array([8.0]), after_h=48.0
    )
    assert d.tolist() == [0.0]
    assert censored.tolist() == [False]


def test_never_relieved_lasts_zero_days():
    """A patient never relieved has duration 0."""
    d, censored = relief_duration_days(
        T, np.array([[8.0, 7.0, 7.5, 8.0]]), np.array([8.0]), after_h=0.0
    )
    assert d.tolist() == [0.0]
    assert not censored[0]


def test_relief_at_the_last_sample_is_censored():
    """Still relieved at the last sample: censored, duration = last time - after_h."""
    d, censored = relief_duration_days(
        T, np.array([[8.0, 4.0, 4.0, 4.0]]), np.array([8.0]), after_h=24.0
    )
    assert censored.tolist() == [True]
    assert_allclose(d, [48.0 / 24.0], rtol=1e-14)


def test_relief_that_returns_counts_until_its_last_end():
    """Relief, a relapse, then relief again: duration runs to the end of the last episode.

    Level 5.6: relieved at 24 h, relapsed at 48 h, relieved again at 72 h and lost between
    72 h (4) and 96 h (8) at 72 + 0.4 x 24 = 81.6 h: (81.6 - 12)/24 days (rtol 1e-14).
    """
    t = np.array([0.0, 24.0, 48.0, 72.0, 96.0])
    d, censored = relief_duration_days(
        t, np.array([[8.0, 4.0, 8.0, 4.0, 8.0]]), np.array([8.0]), after_h=12.0
    )
    assert_allclose(d, [(81.6 - 12.0) / 24.0], rtol=1e-14)
    assert not censored[0]


def test_relief_duration_several_rows():
    """Rows are independent: censored, interpolated and zero durations side by side."""
    nrs = np.array([[8.0, 4.0, 4.0, 4.0], [8.0, 4.0, 5.0, 7.0], [8.0, 8.0, 8.0, 8.0]])
    d, censored = relief_duration_days(T, nrs, np.array([8.0, 8.0, 8.0]), after_h=24.0)
    assert_allclose(d, [2.0, 1.3, 0.0], rtol=1e-14)
    assert censored.tolist() == [True, False, False]


@given(
    b=st.floats(1.0, 10.0),
    nrs=arrays(float, 6, elements=NRS),
    after=st.floats(0.0, 40.0),
)
def test_relief_duration_is_non_negative_and_bounded(b, nrs, after):
    """Duration is in [0, (t_end - after)/24] days; censored only if relieved at the end."""
    t = np.array([0.0, 1.0, 3.0, 7.0, 12.0, 30.0])
    d, censored = relief_duration_days(t, nrs[None, :], np.array([b]), after_h=after)
    assert 0.0 <= d[0] <= max(t[-1] - after, 0.0) / 24.0 + 1e-15
    assert bool(censored[0]) == bool(nrs[-1] <= 0.7 * b and t[-1] >= after)


def test_scalar_baseline_applies_to_every_row():
    """A scalar baseline is documented as ArrayLike and should apply to every row."""
    nrs = np.array([[8.0, 4.0, 5.0, 7.0], [8.0, 8.0, 4.0, 8.0]])
    got = time_to_relief_h(T, nrs, 8.0)
    assert_allclose(got, [14.4, 38.4], rtol=1e-14)
