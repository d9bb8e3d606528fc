"""Tests of ketapain.protocols.relapse: relapse from follow-up scores or a request, the
booster suggestion and the booster history."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest

from ketapain.errors import InvalidValueError
from ketapain.protocols.library import get_protocol
from ketapain.protocols.relapse import RELAPSE_FRACTION, RELAPSE_SOURCE, assess_relapse
from ketapain.sources import FARRAR_2001

END = date(2025, 3, 14)  # last infusion of the series
TODAY = date(2025, 6, 30)


def _d(month: int, day: int) -> date:
    return date(2025, month, day)


def _assess(**kw):
    """Baseline 8, best 3 (relief 62%), series ended 14 March, assessed 30 June."""
    args = {"baseline_nrs": 8, "best_nrs": 3, "series_end": END, "as_of": TODAY}
    return assess_relapse(**(args | kw))


def test_default_fraction_is_derived_from_farrar():
    """0.70 = 1 - 0.30, cited to Farrar 2001 as a derivation; protocols default to it."""
    assert RELAPSE_FRACTION == 0.70
    assert RELAPSE_SOURCE.short() == FARRAR_2001.short()
    assert "derived" in (RELAPSE_SOURCE.locator or "")
    assert get_protocol("seed-outpatient").relapse_fraction == RELAPSE_FRACTION


def test_no_follow_up_is_no_relapse():
    """Nothing charted after the series: no relapse, no booster, and the reason says so."""
    a = _assess()
    assert (a.relapsed, a.since, a.trigger, a.suggest_booster) == (False, None, None, False)
    assert a.reasons[0].startswith("No relapse")
    assert a.latest_nrs is None


@pytest.mark.parametrize(("nrs", "relapsed"), [(5.6, False), (5.7, True)])
def test_threshold_is_strictly_above_seventy_percent(nrs, relapsed):
    """70% of 8 is 5.6 (5.6000000000000005 in floating point): 5.6 is not a relapse."""
    a = _assess(follow_up=[(_d(4, 1), nrs)])
    assert a.relapsed is relapsed
    assert a.since == (_d(4, 1) if relapsed else None)
    assert a.threshold_nrs == pytest.approx(5.6)


def test_first_score_above_is_the_relapse_date_and_suggests_a_booster():
    """One score above (the default) dates the relapse; a responder is offered a booster."""
    a = _assess(follow_up=[(_d(4, 1), 4), (_d(5, 2), 6), (_d(5, 20), 7)])
    assert (a.relapsed, a.since, a.trigger, a.suggest_booster) == (True, _d(5, 2), "scores", True)
    assert a.latest_nrs == 7
    assert "relief has fallen below 30%" in a.reasons[0]
    assert any("booster is suggested" in r for r in a.reasons)


def test_two_consecutive_scores_when_asked():
    """With consecutive=2 one score above is not yet a relapse; two in a row are."""
    one = [(_d(4, 1), 4), (_d(5, 2), 6)]
    assert not _assess(follow_up=one, consecutive=2).relapsed
    two = [*one, (_d(5, 9), 6.5)]
    a = _assess(follow_up=two, consecutive=2)
    assert (a.relapsed, a.since) == (True, _d(5, 2))


def test_a_score_back_below_the_threshold_ends_the_relapse():
    """Above then back at 4: not relapsed now (the latest run decides)."""
    a = _assess(follow_up=[(_d(5, 2), 6), (_d(5, 20), 4)])
    assert not a.relapsed


def test_scores_up_to_the_latest_booster_do_not_count():
    """A high score before (or on the day of) the latest booster is not a relapse after it."""
    a = _assess(follow_up=[(_d(5, 2), 7), (_d(5, 5), 7)], boosters=[_d(5, 5)])
    assert not a.relapsed
    assert "since the latest booster" in a.reasons[0]


def test_patient_request_is_a_relapse_dated_by_the_request():
    """A request without high scores: relapse by request, dated that day."""
    a = _assess(booster_requests=[_d(6, 1)])
    assert (a.relapsed, a.since, a.trigger, a.suggest_booster) == (
        True,
        _d(6, 1),
        "patient_request",
        True,
    )


def test_request_with_a_low_latest_score_asks_for_discussion():
    """The latest NRS still within relief: the reason asks to discuss before booking."""
    a = _assess(follow_up=[(_d(5, 30), 4)], booster_requests=[_d(6, 1)])
    assert any("discuss before booking" in r for r in a.reasons)


def test_request_before_the_latest_booster_is_spent():
    """A request answered by a booster is no longer a trigger."""
    assert not _assess(booster_requests=[_d(5, 1)], boosters=[_d(5, 3)]).relapsed


@pytest.mark.parametrize(
    ("request_day", "trigger", "since"),
    [(_d(5, 1), "patient_request", _d(5, 1)), (_d(5, 2), "scores", _d(5, 2))],
)
def test_the_earlier_trigger_wins_and_scores_win_a_tie(request_day, trigger, since):
    """Scores from 2 May and a request on 1 May: the request; on 2 May: the scores."""
    a = _assess(follow_up=[(_d(5, 2), 7)], booster_requests=[request_day])
    assert (a.trigger, a.since) == (trigger, since)
    assert len([r for r in a.reasons if "asked for a booster" in r]) == 1


def test_no_booster_for_a_series_that_never_brought_relief():
    """Best 6 from 8 (25%) never reached the threshold: relapsed, but no booster suggested."""
    a = _assess(best_nrs=6, follow_up=[(_d(5, 2), 7)])
    assert a.relapsed and not a.suggest_booster
    assert any("never brought pain" in r for r in a.reasons)


@pytest.mark.parametrize(("today", "blocked"), [(_d(5, 28), True), (_d(5, 29), False)])
def test_minimum_interval_blocks_with_the_earliest_date(today, blocked):
    """28 days after a booster on 1 May: blocked on 28 May (earliest 29 May), not on 29 May."""
    a = assess_relapse(
        baseline_nrs=8,
        best_nrs=3,
        series_end=END,
        as_of=today,
        boosters=[_d(5, 1)],
        booster_requests=[_d(5, 20)],
        min_interval_days=28,
    )
    assert a.relapsed
    assert a.suggest_booster is not blocked
    assert a.earliest_booster_date == (_d(5, 29) if blocked else None)
    if blocked:
        assert any("minimum interval is 28 days" in r and "2025-05-29" in r for r in a.reasons)


def test_minimum_interval_counts_from_the_series_end_without_boosters():
    """No booster yet: the interval runs from the last infusion of the series."""
    a = _assess(follow_up=[(_d(3, 20), 7)], as_of=_d(3, 21), min_interval_days=30)
    assert not a.suggest_booster
    assert a.earliest_booster_date == _d(4, 13)


def test_no_minimum_interval_by_default():
    """Without a clinic minimum, a relapse the day after a booster still suggests one."""
    a = _assess(boosters=[_d(6, 1)], booster_requests=[_d(6, 2)], as_of=_d(6, 2))
    assert a.suggest_booster and a.min_interval_days is None


def test_booster_history_intervals():
    """Series end 14 March, boosters 14 April and 24 May: 31 and 40 days, mean 35.5."""
    a = _assess(boosters=[_d(4, 14), _d(5, 24)])
    assert a.booster_intervals_days == (31, 40)
    assert a.mean_interval_days == 35.5
    assert a.days_since_series_end == (TODAY - END).days
    assert a.days_since_last_booster == (TODAY - _d(5, 24)).days


def test_no_boosters_no_intervals():
    """Without boosters the history is empty and the mean is None."""
    a = _assess()
    assert (a.booster_intervals_days, a.mean_interval_days, a.days_since_last_booster) == (
        (),
        None,
        None,
    )


def test_relapse_fraction_from_the_protocol_is_used():
    """A protocol fraction of 0.5 puts the line at 4 of 8: a score of 4.5 is a relapse."""
    a = _assess(follow_up=[(_d(5, 2), 4.5)], relapse_fraction=0.5)
    assert a.relapsed and a.threshold_nrs == 4.0
    assert "below 50%" in a.reasons[0]


def test_as_dict_is_json():
    """The record serialises to JSON with ISO dates."""
    d = _assess(follow_up=[(_d(5, 2), 7)], boosters=[_d(4, 14)]).as_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["since"] == "2025-05-02" and d["boosters"] == ["2025-04-14"]
    assert d["sources"][0] == RELAPSE_SOURCE.cite()


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"follow_up": [(_d(5, 2), 6), (_d(5, 1), 6)]}, "follow_up[1]"),
        ({"follow_up": [(_d(3, 1), 6)]}, "follow_up[0]"),
        ({"follow_up": [(_d(7, 1), 6)]}, "follow_up[0]"),
        ({"follow_up": [(datetime(2025, 5, 2, 9), 6)]}, "follow_up[0]"),
        ({"follow_up": [(_d(5, 2), 11)]}, "follow_up[0].nrs"),
        ({"follow_up": [_d(5, 2)]}, "follow_up[0]"),
        ({"boosters": [_d(5, 2), _d(4, 2)]}, "boosters[1]"),
        ({"booster_requests": ["2025-05-02"]}, "booster_requests[0]"),
        ({"as_of": _d(3, 1)}, "as_of"),
        ({"series_end": "2025-03-14"}, "series_end"),
        ({"baseline_nrs": 0}, "baseline_nrs"),
        ({"best_nrs": -1}, "best_nrs"),
        ({"relapse_fraction": 0}, "relapse_fraction"),
        ({"relapse_fraction": 1.1}, "relapse_fraction"),
        ({"consecutive": 0}, "consecutive"),
        ({"consecutive": 1.5}, "consecutive"),
        ({"min_interval_days": -1}, "min_interval_days"),
    ],
)
def test_bad_input_names_the_field(kw, field):
    """Out-of-order, out-of-range or ill-typed input raises InvalidValueError naming it."""
    with pytest.raises(InvalidValueError) as info:
        _assess(**kw)
    assert info.value.field == field
