"""Tests of ketapain.protocols.course_safety: liver hold and tests due, the urinary screen,
cumulative dose and the blood-pressure trend."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
from numpy.testing import assert_allclose

from ketapain.errors import InvalidValueError
from ketapain.protocols.course_safety import (
    CHAN_2022,
    LIVER_HOLD_RULE,
    URINARY_ITEMS,
    LiverPanel,
    SessionBP,
    bp_trend,
    cumulative_dose,
    liver_hold,
    liver_tests_due,
    urinary_screen,
)
from ketapain.protocols.findings import Severity
from ketapain.protocols.guardrails import Limit, LimitSet, Quantity
from ketapain.protocols.library import get_protocol
from ketapain.protocols.screening import frequent_high_dose
from ketapain.sources import NOPPERS_2011_LIVER

HARD, WARN = Severity.HARD_STOP, Severity.WARNING


def _codes(findings) -> list[str]:
    return [f.code for f in findings]


# --- liver hold ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alt", "codes"),
    [
        (40, []),
        (41, ["liver_enzymes_above_uln"]),
        (120, ["liver_enzymes_above_uln"]),
        (121, ["liver_enzymes_above_3x_uln"]),
    ],
)
def test_alt_thresholds(alt, codes):
    """ULN 40: 40 is normal, 120 (exactly 3 x) is a warning, 121 holds."""
    assert _codes(liver_hold(LiverPanel(alt_u_per_l=alt, alt_uln_u_per_l=40))) == codes


def test_ast_alone_holds_and_the_hold_blocks():
    """AST 4 x ULN with a normal ALT: a hard stop citing Noppers 2011, with the values."""
    (f,) = liver_hold(
        LiverPanel(alt_u_per_l=30, alt_uln_u_per_l=40, ast_u_per_l=140, ast_uln_u_per_l=35)
    )
    assert (f.code, f.severity, f.source) == (
        "liver_enzymes_above_3x_uln",
        HARD,
        NOPPERS_2011_LIVER,
    )
    assert f.blocks
    assert "AST 140 U/L = 4.00 x ULN (35)" in f.reason
    assert "physician reviews" in f.reason


@pytest.mark.parametrize(("bilirubin", "held"), [(2.4, False), (2.5, True)])
def test_bilirubin_above_twice_uln_holds(bilirubin, held):
    """ULN 1.2 mg/dL: 2.4 (exactly 2 x) does not hold, 2.5 does."""
    panel = LiverPanel(
        alt_u_per_l=20,
        alt_uln_u_per_l=40,
        bilirubin_mg_per_dl=bilirubin,
        bilirubin_uln_mg_per_dl=1.2,
    )
    assert ("bilirubin_above_2x_uln" in _codes(liver_hold(panel))) is held


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"alt_u_per_l": 50}, "alt_uln_u_per_l"),
        ({}, "alt_u_per_l/ast_u_per_l"),
        ({"alt_u_per_l": -1, "alt_uln_u_per_l": 40}, "alt_u_per_l"),
        ({"ast_u_per_l": 30, "ast_uln_u_per_l": 0}, "ast_uln_u_per_l"),
        (
            {"alt_u_per_l": 30, "alt_uln_u_per_l": 40, "bilirubin_mg_per_dl": 1},
            "bilirubin_uln_mg_per_dl",
        ),
    ],
)
def test_liver_panel_validation_names_the_field(kw, field):
    """A value without its ULN, no enzyme at all, or values off range are refused."""
    with pytest.raises(InvalidValueError) as info:
        LiverPanel(**kw)
    assert info.value.field == field


# --- liver tests due -----------------------------------------------------------------------


def _due(name: str = "seed-outpatient", **kw):
    args = {
        "protocol": get_protocol(name),
        "liver_risk": False,
        "first_session": date(2025, 3, 3),
        "last_session": date(2025, 3, 13),
        "post_series_within_days": 7,
    }
    return liver_tests_due(**(args | kw))


def test_frequent_high_dose_protocol_needs_liver_tests():
    """The seed course (7 infusions within 14 days) is frequent: baseline and post-series."""
    assert frequent_high_dose(get_protocol("seed-outpatient"))
    plan = _due()
    assert plan.required
    baseline, post = plan.due
    assert (baseline.what, baseline.due_by, baseline.earliest) == (
        "baseline",
        date(2025, 3, 3),
        None,
    )
    assert "creatinine" in baseline.tests
    assert (post.what, post.earliest, post.due_by) == (
        "post_series",
        date(2025, 3, 13),
        date(2025, 3, 20),
    )
    assert any(s.short() == "Cohen 2018" for s in plan.sources)


def test_single_day_without_risk_needs_none_and_with_risk_needs_them():
    """A single day is not frequent: tests only with liver risk."""
    assert not frequent_high_dose(get_protocol("single-day"))
    none = _due("single-day")
    assert (none.required, none.due) == (False, ())
    assert "not required" in none.reasons[0]
    risk = _due("single-day", liver_risk=True)
    assert risk.required and "liver risk" in risk.reasons[0]


def test_a_standing_hold_adds_a_weekly_recheck():
    """A hold since 20 March, last tested 24 March: recheck due 31 March, cited as derived."""
    plan = _due("single-day", hold_since=date(2025, 3, 20), last_tested_on=date(2025, 3, 24))
    assert plan.required
    (recheck,) = plan.due
    assert (recheck.what, recheck.due_by) == ("weekly_recheck", date(2025, 3, 31))
    assert recheck.sources == (LIVER_HOLD_RULE,)
    first = _due("single-day", hold_since=date(2025, 3, 20)).due[0]
    assert first.due_by == date(2025, 3, 27)


def test_liver_tests_due_record_is_json():
    """The plan serialises to JSON with ISO dates."""
    d = _due(hold_since=date(2025, 3, 20)).as_dict()
    assert json.loads(json.dumps(d)) == d
    assert [x["what"] for x in d["due"]] == ["baseline", "post_series", "weekly_recheck"]


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"last_session": date(2025, 3, 1)}, "last_session"),
        ({"post_series_within_days": -1}, "post_series_within_days"),
        ({"post_series_within_days": 1.5}, "post_series_within_days"),
        ({"liver_risk": "yes"}, "liver_risk"),
        ({"first_session": datetime(2025, 3, 3, 9)}, "first_session"),
        ({"hold_since": "2025-03-20"}, "hold_since"),
    ],
)
def test_liver_tests_due_bad_input(kw, field):
    """Bad dates, windows or flags are refused, naming the field."""
    with pytest.raises(InvalidValueError) as info:
        _due(**kw)
    assert info.value.field == field


# --- urinary screen ------------------------------------------------------------------------


def test_no_urinary_symptom_no_finding():
    """All five items answered no: nothing to hold."""
    assert urinary_screen(dict.fromkeys(URINARY_ITEMS, False)) == []


@pytest.mark.parametrize("item", URINARY_ITEMS)
def test_any_urinary_symptom_is_a_hard_stop(item):
    """Each item alone holds ketamine (hard stop), citing the uropathy meta-analysis."""
    (f,) = urinary_screen(dict.fromkeys(URINARY_ITEMS, False) | {item: True})
    assert (f.code, f.severity) == ("urinary_symptoms", HARD)
    assert item.replace("_", " ") in f.reason
    assert f.source is not None and f.source.authors == CHAN_2022.authors


def test_urinary_finding_lists_every_symptom():
    """Two symptoms: one finding naming both."""
    items = dict.fromkeys(URINARY_ITEMS, False) | {"frequency": True, "haematuria": True}
    (f,) = urinary_screen(items)
    assert "frequency, haematuria" in f.reason


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ({k: False for k in URINARY_ITEMS if k != "dysuria"}, "items.dysuria"),
        (dict.fromkeys(URINARY_ITEMS, False) | {"nocturia": True}, "items.nocturia"),
        (dict.fromkeys(URINARY_ITEMS, False) | {"urgency": 1}, "items.urgency"),
        (["frequency"], "items"),
    ],
)
def test_urinary_screen_bad_input(items, field):
    """A missing or unknown item, a non-boolean answer or a list is refused by field."""
    with pytest.raises(InvalidValueError) as info:
        urinary_screen(items)
    assert info.value.field == field


# --- cumulative dose -----------------------------------------------------------------------


def test_cumulative_dose_per_course_year_and_window():
    """Two courses (Nov 2024, Feb 2025): totals per course, per year and over 365 days."""
    doses = [
        (date(2024, 11, 4), 80.0),
        (date(2024, 11, 5), 100.0),
        (date(2025, 2, 3), 100.0),
        (date(2025, 2, 4), 120.0),
    ]
    s = cumulative_dose(
        doses, as_of=date(2025, 11, 4), course_starts=[date(2024, 11, 4), date(2025, 2, 1)]
    )
    assert [(c.start, c.doses, c.total_mg) for c in s.courses] == [
        (date(2024, 11, 4), 2, 180.0),
        (date(2025, 2, 1), 2, 220.0),
    ]
    assert s.per_year_mg == ((2024, 180.0), (2025, 220.0))
    assert s.total_mg == 400.0
    # The window is the 365 days ending on 4 Nov 2025: 4 Nov 2024 is 365 days back, out.
    assert s.rolling_365_mg == 320.0
    assert (s.peak_rolling_365_mg, s.peak_window_end) == (400.0, date(2025, 2, 4))


def test_window_includes_364_days_back():
    """A dose 364 days before as_of is inside the window, 365 days before is not."""
    day = date(2025, 6, 1)
    inside = cumulative_dose([(day - timedelta(days=364), 50)], as_of=day)
    outside = cumulative_dose([(day - timedelta(days=365), 50)], as_of=day)
    assert (inside.rolling_365_mg, outside.rolling_365_mg) == (50.0, 0.0)


def test_course_limits_give_findings():
    """A clinic course limit (soft 1000, hard 1500 mg): the second course crosses it."""
    lim = LimitSet(
        (Limit(quantity=Quantity.COURSE_DOSE_MG, origin="clinic", soft_max=1000, hard_max=1500),)
    )
    doses = [(date(2025, 1, d), 400.0) for d in (6, 7)] + [
        (date(2025, 5, d), 400.0) for d in (5, 6, 7, 8)
    ]
    s = cumulative_dose(
        doses,
        as_of=date(2025, 6, 1),
        course_starts=[date(2025, 1, 6), date(2025, 5, 5)],
        limits=lim,
    )
    assert _codes(s.findings) == ["course_dose_mg.hard_max", "course_dose_mg.soft_max"]
    assert "Course from 2025-05-05" in s.findings[0].reason


def test_no_doses_gives_zeros():
    """Nothing given: zero totals, one empty course, no peak."""
    s = cumulative_dose([], as_of=date(2025, 6, 1))
    assert (s.total_mg, s.rolling_365_mg, s.peak_window_end) == (0.0, 0.0, None)
    assert s.courses[0].doses == 0


def test_cumulative_dose_record_is_json():
    """The summary serialises to JSON, years as text keys."""
    d = cumulative_dose([(date(2025, 1, 6), 80)], as_of=date(2025, 2, 1)).as_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["per_year_mg"] == {"2025": 80.0}


@pytest.mark.parametrize(
    ("doses", "kw", "field"),
    [
        ([(date(2025, 7, 1), 80)], {}, "doses[0].date"),
        ([(date(2025, 1, 1), -5)], {}, "doses[0].mg"),
        ([(date(2025, 1, 1), 80)], {"course_starts": [date(2025, 2, 1)]}, "doses"),
        ([], {"course_starts": [date(2025, 2, 1), date(2025, 1, 1)]}, "course_starts[1]"),
        ([date(2025, 1, 1)], {}, "doses[0]"),
    ],
)
def test_cumulative_dose_bad_input(doses, kw, field):
    """Doses after as_of, negative, before the first course, or starts out of order."""
    with pytest.raises(InvalidValueError) as info:
        cumulative_dose(doses, as_of=date(2025, 6, 1), **kw)
    assert info.value.field == field


# --- blood-pressure trend ------------------------------------------------------------------


def _sessions(*pre_sbp: float, pre_dbp: float = 80) -> list[SessionBP]:
    return [
        SessionBP(
            day=date(2025, 3, 3) + timedelta(days=i),
            pre_sbp_mmhg=p,
            pre_dbp_mmhg=pre_dbp,
            peak_sbp_mmhg=p + 10 * (i + 1),
            peak_dbp_mmhg=pre_dbp + 5,
        )
        for i, p in enumerate(pre_sbp)
    ]


def test_slope_is_the_least_squares_fit():
    """130, 133, 142: slope 6 mmHg per session (least squares), peak rise 30 mmHg."""
    t = bp_trend(_sessions(130, 133, 142))
    assert_allclose(t.slope_sbp_mmhg_per_session, 6.0, rtol=1e-12)
    assert t.peak_rise_sbp_mmhg == 30.0
    assert t.findings == ()


@pytest.mark.parametrize(("limit", "warned"), [(6.0, False), (5.9, True)])
def test_rising_pre_infusion_sbp_warns_above_the_clinic_slope(limit, warned):
    """A slope exactly at the clinic's level does not warn; above it does."""
    t = bp_trend(_sessions(130, 133, 142), warn_slope_mmhg_per_session=limit)
    assert ("pre_sbp_rising" in _codes(t.findings)) is warned


@pytest.mark.parametrize(
    ("sbp", "dbp", "codes"),
    [
        (160, 100, []),
        (161, 100, ["pre_sbp_above_warn"]),
        (150, 101, ["pre_dbp_above_warn"]),
    ],
)
def test_pre_infusion_pressure_above_the_warn_level(sbp, dbp, codes):
    """160/100 is at the warn level, not above; 161 or 101 warns (monitoring rules 3.1)."""
    t = bp_trend(_sessions(130, sbp, pre_dbp=dbp))
    assert _codes(t.findings) == codes
    assert all(f.severity is WARN for f in t.findings)


def test_one_session_has_no_slope():
    """A single session: no slope, no trend finding even with a clinic level."""
    t = bp_trend(_sessions(150), warn_slope_mmhg_per_session=1)
    assert t.slope_sbp_mmhg_per_session is None and t.findings == ()


def test_bp_trend_series_for_plotting_and_json():
    """The series has one value per session; the record serialises to JSON."""
    t = bp_trend(_sessions(130, 135))
    series = t.series()
    assert series["pre_sbp_mmhg"] == [130, 135]
    assert series["rise_sbp_mmhg"] == [10, 20]
    d = t.as_dict()
    assert json.loads(json.dumps(d)) == d


def test_bp_trend_bad_input():
    """Sessions out of order, a non-session, a bad pressure or a negative slope level."""
    a, b = _sessions(130, 135)
    with pytest.raises(InvalidValueError) as info:
        bp_trend([b, a])
    assert info.value.field == "sessions[1].day"
    with pytest.raises(InvalidValueError) as info:
        bp_trend([a, (date(2025, 3, 5), 130, 80, 140, 90)])  # type: ignore[list-item]
    assert info.value.field == "sessions[1]"
    with pytest.raises(InvalidValueError) as info:
        bp_trend([a], warn_slope_mmhg_per_session=0)
    assert info.value.field == "warn_slope_mmhg_per_session"
    with pytest.raises(InvalidValueError) as info:
        SessionBP(
            day=date(2025, 3, 3),
            pre_sbp_mmhg=350,
            pre_dbp_mmhg=80,
            peak_sbp_mmhg=140,
            peak_dbp_mmhg=90,
        )
    assert info.value.field == "pre_sbp_mmhg"
