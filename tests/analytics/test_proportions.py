"""Tests of rates and means with 95% intervals (ketapain.analytics.proportions).

Wilson's score interval (Wilson 1927, J Am Stat Assoc 22:209), written out here apart
from the module, with p = x / n and z = 1.959964:

    centre = (p + z^2 / 2n) / (1 + z^2 / n)
    half   = z sqrt(p (1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n)

The mean's interval is checked against ``scipy.stats.t.interval`` with the standard error
``scipy.stats.sem``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy import stats

from ketapain.analytics.proportions import Proportion, mean_ci, wilson_interval

Z = 1.959963984540054


def _wilson(x: int, n: int) -> tuple[float, float]:
    p = x / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return centre - half, centre + half


@pytest.mark.parametrize(("x", "n"), [(8, 10), (1, 10), (5, 10), (52, 100), (3, 7), (1, 1000)])
def test_wilson_against_the_formula(x: int, n: int) -> None:
    """Interior counts match Wilson's formula written out by hand; rtol 1e-12."""
    assert_allclose(wilson_interval(x, n), _wilson(x, n), rtol=1e-12)


def test_wilson_8_of_10_published_value() -> None:
    """8/10: 0.4902 to 0.9433, what R's prop.test(8, 10, correct = FALSE) reports."""
    assert_allclose(wilson_interval(8, 10), (0.4902, 0.9433), atol=5e-5)


def test_wilson_zero_successes_has_lower_bound_exactly_zero() -> None:
    """0/10: the lower bound is exactly 0.0 (not a rounding residue); the upper is Wilson's."""
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0
    # p = 0: the upper bound is z^2/n / (1 + z^2/n).
    assert_allclose(hi, (Z * Z / 10) / (1 + Z * Z / 10), rtol=1e-12)


def test_wilson_all_successes_has_upper_bound_exactly_one() -> None:
    """10/10: the upper bound is exactly 1.0; the lower mirrors 0/10's upper bound."""
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0
    assert_allclose(lo, 1 - (Z * Z / 10) / (1 + Z * Z / 10), rtol=1e-12)


@pytest.mark.parametrize("n", [0, -1])
def test_wilson_without_trials_is_nan(n: int) -> None:
    """No trials: both bounds are NaN, and the Proportion's rate is NaN too."""
    assert all(math.isnan(b) for b in wilson_interval(0, n))
    assert math.isnan(Proportion(0, 0).rate)


def test_proportion_as_dict() -> None:
    """Proportion.as_dict carries the rate, the Wilson bounds, the count and n."""
    d = Proportion(8, 10).as_dict()
    assert d["count"] == 8
    assert d["n"] == 10
    assert_allclose(d["rate"], 0.8, rtol=1e-15)
    assert_allclose((d["ci_low"], d["ci_high"]), _wilson(8, 10), rtol=1e-12)


@given(n=st.integers(min_value=1, max_value=5000), data=st.data())
def test_wilson_interval_brackets_the_rate(n: int, data: st.DataObject) -> None:
    """Property: 0 <= lo <= p <= hi <= 1 for every count of every n."""
    x = data.draw(st.integers(min_value=0, max_value=n))
    lo, hi = wilson_interval(x, n)
    p = Proportion(x, n).rate
    assert 0.0 <= lo <= p <= hi <= 1.0


@pytest.mark.parametrize(
    "values",
    [[4.0, 5.0, 6.0], [1.0, 2.0], [0.5, 7.25, 3.0, 3.0, 9.5, 2.0, 6.0]],
)
def test_mean_ci_against_scipy(values: list[float]) -> None:
    """The t interval matches scipy.stats.t.interval(0.95, n - 1, mean, sem); rtol 1e-12."""
    m = mean_ci(values)
    x = np.asarray(values)
    expected = stats.t.interval(0.95, x.size - 1, loc=x.mean(), scale=stats.sem(x))
    assert m.n == x.size
    assert_allclose(m.mean, x.mean(), rtol=1e-15)
    assert_allclose((m.ci_low, m.ci_high), expected, rtol=1e-12)


def test_mean_ci_ignores_nan_and_infinity() -> None:
    """Non-finite values are dropped before the mean and its interval are computed."""
    m = mean_ci([4.0, float("nan"), 5.0, float("inf"), 6.0])
    ref = mean_ci([4.0, 5.0, 6.0])
    assert m.n == 3
    assert_allclose((m.mean, m.ci_low, m.ci_high), (ref.mean, ref.ci_low, ref.ci_high))


def test_mean_ci_with_one_or_no_value() -> None:
    """One value: its mean with NaN bounds; none: everything NaN and n 0."""
    one = mean_ci([3.5])
    assert (one.mean, one.n) == (3.5, 1)
    assert math.isnan(one.ci_low) and math.isnan(one.ci_high)
    none = mean_ci([])
    assert none.n == 0
    assert all(math.isnan(v) for v in (none.mean, none.ci_low, none.ci_high))


def test_mean_ci_of_constant_values_is_a_point() -> None:
    """Equal values: zero spread, so the interval closes on the mean."""
    m = mean_ci([2.0, 2.0, 2.0, 2.0])
    assert (m.mean, m.ci_low, m.ci_high, m.n) == (2.0, 2.0, 2.0, 4)


@given(st.lists(st.floats(min_value=-1e3, max_value=1e3, allow_nan=False), min_size=2, max_size=50))
def test_mean_ci_brackets_the_mean(values: list[float]) -> None:
    """Property: ci_low <= mean <= ci_high, and the mean lies within the data's range."""
    m = mean_ci(values)
    assert m.ci_low <= m.mean <= m.ci_high
    assert min(values) - 1e-9 <= m.mean <= max(values) + 1e-9
