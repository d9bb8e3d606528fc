"""Tests of ketapain.protocols.continuation: the continue/stop suggestion after the test
infusions, its figures, reasons and sources."""

from __future__ import annotations

import json
import math

import pytest
from numpy.testing import assert_allclose

from ketapain.errors import InvalidValueError
from ketapain.protocols.continuation import (
    DWORKIN_2008,
    PGIC_MUCH_IMPROVED,
    RESPONSE_FRACTION_MUCH_IMPROVED,
    RESPONSE_FRACTION_SUBSTANTIAL,
    RESPONSE_POINTS_MUCH_IMPROVED,
    recommend_continuation,
)
from ketapain.protocols.library import get_protocol
from ketapain.sources import FARRAR_2001

AS_DICT_KEYS = {
    "recommend",
    "reasons",
    "baseline_nrs",
    "best_nrs",
    "latest_nrs",
    "drop_points",
    "drop_pct",
    "threshold_pct",
    "responded",
    "responded_50pct",
    "responded_2_points",
    "pgic",
    "pgic_much_improved",
    "side_effects",
    "max_cadss6",
    "min_moaas",
    "sources",
}


def _rec(baseline: float, *scores: float, **kw):
    return recommend_continuation(baseline_nrs=baseline, session_nrs=list(scores), **kw)


def test_constants_are_the_published_responder_thresholds():
    """30% and 2 points (Farrar 2001), 50% (Dworkin 2008), PGIC 2 or better."""
    assert RESPONSE_FRACTION_MUCH_IMPROVED == 0.30
    assert RESPONSE_POINTS_MUCH_IMPROVED == 2.0
    assert RESPONSE_FRACTION_SUBSTANTIAL == 0.50
    assert PGIC_MUCH_IMPROVED == 2
    assert DWORKIN_2008.year == 2008
    assert DWORKIN_2008.journal.startswith("J Pain 9(2):105")


# --- the response --------------------------------------------------------------------------


def test_exactly_thirty_percent_is_a_response_despite_rounding():
    """6 -> 4.2 is a 30% fall (0.7 x 6 is 4.1999... in floating point): continue."""
    r = _rec(6, 4.2)
    assert r.recommend == "continue"
    assert r.responded_at_threshold is True
    assert r.responded_2_points is False
    assert_allclose(r.drop_pct, 30.0, rtol=1e-12)


def test_just_under_thirty_percent_and_under_two_points_is_no_response():
    """5 -> 3.6 is 28% and 1.4 points: stop, saying neither criterion was met."""
    r = _rec(5, 3.6)
    assert r.recommend == "stop"
    assert (r.responded_at_threshold, r.responded_2_points) == (False, False)
    assert r.responded is False
    assert "no response" in r.reasons[0]


def test_two_points_below_thirty_percent_is_a_response():
    """8 -> 6 is 25% but exactly 2 points: a response by Farrar's raw-score criterion."""
    r = _rec(8, 6)
    assert r.recommend == "continue"
    assert (r.responded_at_threshold, r.responded_2_points, r.responded) == (False, True, True)
    assert_allclose(r.drop_points, 2.0)
    assert "2 points" in r.reasons[0]
    assert FARRAR_2001.at("a 2-point NRS fall corresponds to 'much improved'") in r.sources


def test_just_under_two_points_from_a_high_baseline_is_no_response():
    """8 -> 6.1 is 1.9 points and 24%: stop."""
    assert _rec(8, 6.1).recommend == "stop"


@pytest.mark.parametrize(("best", "substantial"), [(4.0, True), (4.1, False)])
def test_fifty_percent_is_substantial(best, substantial):
    """8 -> 4 is a 50% fall (Dworkin 2008: substantial); 4.1 is not."""
    r = _rec(8, best)
    assert r.responded_50pct is substantial
    assert (DWORKIN_2008.at("a 50% fall is substantial improvement") in r.sources) is substantial


def test_best_is_the_lowest_and_latest_the_last_score():
    """Scores 3 then 6 from 8: the best (3) decides, the latest (6) is reported."""
    r = _rec(8, 3, 6)
    assert (r.best_nrs, r.latest_nrs) == (3.0, 6.0)
    assert r.recommend == "continue"
    assert "latest 6" in r.reasons[0]


def test_threshold_comes_from_the_decision_point_and_is_configurable():
    """4 -> 2.6 (35%, 1.4 points) responds at 30% but not at a clinic's 50%."""
    seed = get_protocol("seed-outpatient").decision_points[0].response_threshold
    assert _rec(4, 2.6, response_threshold=seed).recommend == "continue"
    strict = _rec(4, 2.6, response_threshold=0.5)
    assert strict.recommend == "stop"
    assert strict.as_dict()["threshold_pct"] == 50.0
    assert "less than 50%" in strict.reasons[0]


# --- no data -------------------------------------------------------------------------------


def test_no_score_after_a_session_is_insufficient_data():
    """Without an NRS after a session nothing is computed and the reason says so."""
    r = _rec(7)
    assert r.recommend == "insufficient_data"
    assert (r.best_nrs, r.latest_nrs, r.drop_points, r.drop_pct) == (None, None, None, None)
    assert r.responded is None
    assert "No NRS" in r.reasons[0]
    assert r.sources


# --- side effects and tolerability ---------------------------------------------------------


def test_severe_side_effect_stops_even_a_responder_and_says_why():
    """A 57% fall with severe hallucinations: stop, 'intolerable side effects', physician."""
    r = _rec(7, 3, side_effects=[("hallucinations", "severe"), ("nausea", "mild")])
    assert r.recommend == "stop"
    assert r.reasons[0].startswith("Intolerable side effects: hallucinations")
    assert "physician reviews" in r.reasons[0]
    assert r.severe_side_effects == ("hallucinations",)
    assert any("nausea (mild)" in x for x in r.reasons)


def test_severe_side_effect_without_response_stops_with_both_reasons():
    """No response and a severe side effect: both reasons are given."""
    r = _rec(7, 6, side_effects=[("vomiting", "severe")])
    assert r.recommend == "stop"
    assert r.reasons[0].startswith("Intolerable side effects")
    assert "no response" in r.reasons[1]


def test_moderate_side_effect_does_not_stop_a_responder():
    """Moderate dizziness is reported as tolerable; the responder continues."""
    r = _rec(7, 4, side_effects=[("dizziness", "moderate")])
    assert r.recommend == "continue"
    assert r.as_dict()["side_effects"] == {"mild": [], "moderate": ["dizziness"], "severe": []}


def test_deep_sedation_is_reported_not_decisive():
    """MOAA/S 2 charted: the reason suggests a lower rate; the response still decides."""
    r = _rec(7, 4, min_moaas=2)
    assert r.recommend == "continue"
    assert any("MOAA/S 2" in x and "lower rate" in x for x in r.reasons)
    assert not any("MOAA/S" in x for x in _rec(7, 4, min_moaas=3).reasons)


def test_cadss6_is_reported_without_a_cut_off():
    """CADSS-6 has no published cut-off: reported, not used to decide."""
    r = _rec(7, 4, max_cadss6=18)
    assert r.recommend == "continue"
    assert any("CADSS-6 18 of 24" in x for x in r.reasons)


# --- PGIC ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("pgic", "much"), [(1, True), (2, True), (3, False), (7, False)])
def test_pgic_much_improved_is_2_or_better(pgic, much):
    """PGIC 1-2 is "much improved" or better, the anchor of Farrar 2001."""
    assert _rec(7, 4, pgic=pgic).pgic_much_improved is much


def test_pgic_disagreeing_with_the_nrs_is_flagged():
    """An NRS responder who reports no change: discuss before deciding."""
    r = _rec(7, 4, pgic=4)
    assert any("PGIC 4 (no change)" in x and "disagrees" in x for x in r.reasons)
    assert any("agrees with the NRS" in x for x in _rec(7, 4, pgic=2).reasons)


# --- the record ----------------------------------------------------------------------------


def test_as_dict_has_the_documented_keys_and_is_json():
    """as_dict has exactly the documented keys and serialises to JSON."""
    r = _rec(8, 5, side_effects=[("nausea", "mild")], pgic=2, max_cadss6=4, min_moaas=4)
    d = r.as_dict()
    assert set(d) == AS_DICT_KEYS
    assert json.loads(json.dumps(d)) == d
    assert d["responded"] is True and d["threshold_pct"] == 30.0
    assert d["sources"][0] == FARRAR_2001.cite()


def test_insufficient_data_record_is_json_too():
    """The record without scores has the same keys, with nulls."""
    d = _rec(7).as_dict()
    assert set(d) == AS_DICT_KEYS
    assert d["best_nrs"] is None and d["responded"] is None


def test_sources_are_not_repeated():
    """A source appears once however many reasons rest on it."""
    r = _rec(8, 4, pgic=1, side_effects=[("x", "severe")], min_moaas=1)
    assert len(r.sources) == len(set(r.sources))


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"baseline_nrs": 11}, "baseline_nrs"),
        ({"baseline_nrs": 0}, "baseline_nrs"),
        ({"baseline_nrs": math.nan}, "baseline_nrs"),
        ({"session_nrs": [5, -1]}, "session_nrs[1]"),
        ({"session_nrs": [True]}, "session_nrs[0]"),
        ({"pgic": 8}, "pgic"),
        ({"pgic": 2.5}, "pgic"),
        ({"min_moaas": 6}, "min_moaas"),
        ({"max_cadss6": 25}, "max_cadss6"),
        ({"side_effects": [("nausea", "extreme")]}, "side_effects[0].severity"),
        ({"side_effects": [(" ", "mild")]}, "side_effects[0].name"),
        ({"side_effects": ["nausea"]}, "side_effects[0]"),
        ({"response_threshold": 1.0}, "response_threshold"),
        ({"response_threshold": 0}, "response_threshold"),
        ({"response_threshold": True}, "response_threshold"),
    ],
)
def test_bad_input_names_the_field(kwargs, field):
    """Every out-of-range or ill-typed input raises InvalidValueError naming its field."""
    args = {"baseline_nrs": 7, "session_nrs": [4]} | kwargs
    with pytest.raises(InvalidValueError) as info:
        recommend_continuation(**args)
    assert info.value.field == field
