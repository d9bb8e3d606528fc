"""Tests of opioid change before and after a course (ketapain.analytics.opioids).

Counted: courses with a session given and MME/day > 0 at the first session; the shares
use those with a reading after the series. A reduction by a fraction f counts when
(before - after) / before >= f, exactly f included.
"""

from __future__ import annotations

import numpy as np
from numpy.testing import assert_allclose

from ketapain.analytics.opioids import opioid_change
from ketapain.analytics.proportions import Proportion, mean_ci

CASES = [
    {"mme_before": 100.0, "mme_after": 80.0},  # exactly 20% down
    {"mme_before": 60.0, "mme_after": 30.0},  # exactly 50% down
    {"mme_before": 15.0, "mme_after": 12.0},  # exactly 20% down (3/15)
    {"mme_before": 40.0, "mme_after": 0.0},  # stopped: 100% down
    {"mme_before": 30.0, "mme_after": 45.0},  # increased
    {"mme_before": 50.0, "mme_after": 45.0},  # 10% down: neither
    {"mme_before": 20.0, "mme_after": None},  # on opioids, no reading after
    {"mme_before": 0.0, "mme_after": 0.0},  # not on opioids: excluded
    {"mme_before": None, "mme_after": 10.0},  # unknown before: excluded
    {"mme_before": 90.0, "mme_after": 10.0, "sessions_given": 0},  # never treated: excluded
]
BEFORE = np.array([100.0, 60.0, 15.0, 40.0, 30.0, 50.0])
AFTER = np.array([80.0, 30.0, 12.0, 0.0, 45.0, 45.0])


def test_counts_and_shares(make_cohort) -> None:
    """Seven courses on opioids, one without a reading after; shares among the six."""
    o = opioid_change(make_cohort(*CASES))
    assert o.on_opioids == 7
    assert o.without_reading_after == 1
    assert o.reduced_20 == Proportion(4, 6)  # 20%, 50%, 20%, stopped
    assert o.reduced_50 == Proportion(2, 6)  # 50%, stopped
    assert o.increased == Proportion(1, 6)
    assert o.stopped == Proportion(1, 6)


def test_means_and_medians(make_cohort) -> None:
    """Means with t intervals and medians of MME/day before and after, the six with both."""
    o = opioid_change(make_cohort(*CASES))
    for got, x in ((o.before, BEFORE), (o.after, AFTER)):
        ref = mean_ci(x)
        assert got.n == 6
        assert_allclose((got.mean, got.ci_low, got.ci_high), (ref.mean, ref.ci_low, ref.ci_high))
    assert_allclose(o.before.mean, BEFORE.mean(), rtol=1e-15)
    assert o.median_before == 45.0  # (40 + 50) / 2
    assert o.median_after == 37.5  # (30 + 45) / 2


def test_just_under_the_threshold_does_not_count(make_cohort) -> None:
    """A 19.9% reduction is not a 20% reduction; 49.9% is not a halving."""
    o = opioid_change(
        make_cohort(
            {"mme_before": 100.0, "mme_after": 80.1}, {"mme_before": 100.0, "mme_after": 50.1}
        )
    )
    assert o.reduced_20 == Proportion(1, 2)
    assert o.reduced_50 == Proportion(0, 2)


def test_no_course_on_opioids(make_cohort) -> None:
    """Nobody on opioids: zero counts, n 0 everywhere, medians None."""
    o = opioid_change(make_cohort({"mme_before": 0.0}, {"mme_before": None}))
    assert (o.on_opioids, o.without_reading_after) == (0, 0)
    assert o.reduced_20 == Proportion(0, 0)
    assert o.median_before is None and o.median_after is None
    assert o.before.n == 0


def test_all_without_reading_after(make_cohort) -> None:
    """On opioids but none read after: counted as on opioids, no shares."""
    o = opioid_change(make_cohort({"mme_before": 30.0}, {"mme_before": 10.0}))
    assert (o.on_opioids, o.without_reading_after) == (2, 2)
    assert o.reduced_20.n == 0
    assert o.median_after is None


def test_as_dict(make_cohort) -> None:
    """as_dict names the 20% and 50% shares, the MME means and the seed source."""
    d = opioid_change(make_cohort(*CASES)).as_dict()
    assert d["reduced_20pct"]["count"] == 4
    assert d["reduced_50pct"]["n"] == 6
    assert d["mme_before"]["n"] == 6
    assert d["median_mme_before"] == 45.0
    assert "52%" in d["source"]
