"""Tests of the Kaplan-Meier estimator (ketapain.analytics.survival).

Expected values are computed by hand with the product-limit formula
S(t) = prod_{t_i <= t} (1 - d_i / n_i), where a subject censored at t_i still counts in
the risk set n_i at t_i; the curve has a step at 0, at every event time and, flat, at the
last follow-up time when that is later than the last event. With Greenwood's variance
and the log(-log) interval (Kalbfleisch & Prentice 2002, section 1.4):

    se_i = sqrt(sum_{t_j <= t_i} d_j / (n_j (n_j - d_j))) / |log S(t_i)|
    lower = S ** exp(+z se),  upper = S ** exp(-z se)      (z = 1.959964)

The lower bound takes the larger exponent: 0 < S < 1, so a larger power is smaller.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from ketapain.analytics.survival import kaplan_meier
from ketapain.errors import InvalidValueError

Z95 = 1.959963984540054

# Five subjects; at t = 2 one event and one censoring tie (the censored one is at risk).
TIE_T = np.array([1.0, 2.0, 2.0, 3.0, 4.0])
TIE_E = np.array([True, True, False, True, False])


def test_product_limit_with_event_and_censoring_tie() -> None:
    """Hand product-limit values (0.8, 0.6, 0.3) with a censoring tied to an event; 1e-12."""
    km = kaplan_meier(TIE_T, TIE_E)
    assert_array_equal(km.time, [0.0, 1.0, 2.0, 3.0, 4.0])
    # t=1: 1 - 1/5; t=2: the censored subject is at risk, 1 - 1/4; t=3: 1 - 1/2; the
    # censoring at 4 (last follow-up) carries 0.3 on.
    s3 = 4 / 5 * 3 / 4 * 1 / 2
    assert_allclose(km.survival, [1.0, 4 / 5, 4 / 5 * 3 / 4, s3, s3], rtol=1e-12)
    assert_array_equal(km.at_risk, [5.0, 5.0, 4.0, 2.0, 1.0])
    assert km.n == 5


def test_tied_events_and_censorings() -> None:
    """Several events and censorings at one time: hand values 0.75, 0.6, 0.4; 1e-12."""
    t = np.array([2.0, 2, 2, 5, 5, 7, 8, 8])
    e = np.array([True, True, False, True, False, True, False, False])
    km = kaplan_meier(t, e)
    assert_array_equal(km.time, [0.0, 2.0, 5.0, 7.0, 8.0])
    # t=2: 8 at risk, 2 die; t=5: 5 at risk, 1 dies; t=7: 3 at risk, 1 dies; 2 censored at 8.
    s7 = 6 / 8 * 4 / 5 * 2 / 3
    assert_allclose(km.survival, [1.0, 6 / 8, 6 / 8 * 4 / 5, s7, s7], rtol=1e-12)
    assert_array_equal(km.at_risk, [8.0, 8.0, 5.0, 3.0, 2.0])
    assert km.median() == 7.0


def test_unsorted_input_and_early_censoring() -> None:
    """Order of input is irrelevant; a censoring before the first event shrinks the risk set."""
    km = kaplan_meier(np.array([3.0, 0.5, 1.0]), np.array([True, False, True]))
    assert_array_equal(km.time, [0.0, 1.0, 3.0])  # last follow-up is an event: no extra step
    assert_allclose(km.survival, [1.0, 0.5, 0.0], rtol=1e-12)
    assert_array_equal(km.at_risk, [3.0, 2.0, 1.0])
    assert km.median() == 1.0  # S reaches exactly 0.5 at t = 1: "0.5 or below"


def test_all_censored() -> None:
    """With no events survival stays 1 from 0 to the last follow-up; median and its CI None."""
    km = kaplan_meier(np.array([1.0, 2.0, 5.0]), np.zeros(3, dtype=bool))
    assert_array_equal(km.time, [0.0, 5.0])
    assert_array_equal(km.survival, [1.0, 1.0])
    assert_array_equal(km.ci_low, [1.0, 1.0])
    assert_array_equal(km.ci_high, [1.0, 1.0])
    assert km.median() is None
    assert km.median_ci() == (None, None)
    assert km.at(100.0) == 1.0


def test_all_events_without_censoring() -> None:
    """All events, distinct times: S falls by 1/n per event to 0; CI is (0, 0) at S = 0."""
    km = kaplan_meier(np.array([4.0, 1.0, 3.0, 2.0]), np.ones(4, dtype=bool))
    assert_allclose(km.survival, [1.0, 0.75, 0.5, 0.25, 0.0], rtol=1e-12)
    assert km.median() == 2.0
    assert km.ci_low[-1] == 0.0 and km.ci_high[-1] == 0.0
    assert km.ci_low[0] == 1.0 and km.ci_high[0] == 1.0


def test_uncensored_equals_empirical_survival() -> None:
    """Without censoring KM is 1 - ECDF at every event time (integer times, many ties); 1e-12."""
    t = np.random.default_rng(3).integers(0, 20, 300).astype(float)
    km = kaplan_meier(t, np.ones(t.size, dtype=bool))
    ecdf = np.array([np.mean(t <= s) for s in km.time[1:]])
    assert_allclose(km.survival[1:], 1.0 - ecdf, rtol=1e-12, atol=1e-12)


def test_at_is_a_right_continuous_step() -> None:
    """.at(t) holds each value from its event time to the next; 1 before the first event."""
    km = kaplan_meier(TIE_T, TIE_E)
    assert km.at(-1.0) == 1.0
    assert km.at(0.999) == 1.0
    assert km.at(1.0) == pytest.approx(0.8, rel=1e-12)
    assert km.at(1.5) == pytest.approx(0.8, rel=1e-12)
    assert km.at(2.0) == pytest.approx(0.6, rel=1e-12)
    assert km.at(3.0) == pytest.approx(0.3, rel=1e-12)
    assert km.at(1e6) == pytest.approx(0.3, rel=1e-12)  # last censoring at 4: S stays 0.3


def test_median_never_reached() -> None:
    """Survival above 0.5 throughout gives median None."""
    km = kaplan_meier(np.array([1.0, 2, 3, 4]), np.array([True, False, False, False]))
    assert km.survival.min() == pytest.approx(0.75, rel=1e-12)
    assert km.median() is None


def test_log_log_ci_hand_value() -> None:
    """Greenwood log(-log) CI at t=2 of the tie example is the hand value (0.1257, 0.8818); 1e-9.

    Greenwood sum 1/(5*4) + 1/(4*3) = 2/15; se = sqrt(2/15)/|ln 0.6| = 0.714818;
    lower = 0.6**exp(+1.959964*se) = 0.125730, upper = 0.6**exp(-1.959964*se) = 0.881756
    (the values R's survfit(conf.type="log-log") and lifelines report).
    """
    km = kaplan_meier(TIE_T, TIE_E)
    s = 0.6
    se = math.sqrt(1 / 20 + 1 / 12) / abs(math.log(s))
    lower = s ** math.exp(Z95 * se)
    upper = s ** math.exp(-Z95 * se)
    assert lower == pytest.approx(0.125730, abs=1e-6) and upper == pytest.approx(0.881756, abs=1e-6)
    assert km.ci_low[2] == pytest.approx(lower, rel=1e-9)
    assert km.ci_high[2] == pytest.approx(upper, rel=1e-9)


def test_ci_brackets_the_estimate() -> None:
    """ci_low <= S <= ci_high at every step of a censored sample (exact inequality)."""
    rng = np.random.default_rng(11)
    t = rng.exponential(10.0, 200).round(1)
    km = kaplan_meier(t, rng.random(200) < 0.7)
    assert np.all(km.ci_low <= km.survival) and np.all(km.survival <= km.ci_high)


def test_median_ci_hand_value() -> None:
    """Median CI of the tie example: lower band crosses 0.5 at t=1, upper never -> (1.0, None)."""
    km = kaplan_meier(TIE_T, TIE_E)
    assert km.median_ci() == (1.0, None)


@pytest.mark.parametrize(
    ("durations", "events", "field"),
    [
        (np.ones((2, 2)), np.ones((2, 2), dtype=bool), "durations/events"),
        (np.ones(3), np.ones(2, dtype=bool), "durations/events"),
        (np.array([]), np.array([], dtype=bool), "durations/events"),
        (np.array([1.0, -0.5]), np.ones(2, dtype=bool), "durations"),
        (np.array([1.0, np.nan]), np.ones(2, dtype=bool), "durations"),
        (np.array([np.inf, 1.0]), np.ones(2, dtype=bool), "durations"),
    ],
)
def test_invalid_input(durations: np.ndarray, events: np.ndarray, field: str) -> None:
    """Bad shapes, empty input and negative or non-finite durations raise naming the field."""
    with pytest.raises(InvalidValueError) as info:
        kaplan_meier(durations, events)
    assert info.value.field == field
