"""Tests of ketapain.pharmacology.prediction: one patient's curves and summary."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from ketapain.errors import InvalidValueError
from ketapain.pharmacology.covariates import Covariates
from ketapain.pharmacology.models import get_model
from ketapain.pharmacology.pd import PDModel, time_to_relief_h
from ketapain.pharmacology.pd.cardiovascular import CardiovascularModel
from ketapain.pharmacology.pd.pain import predicted_nrs
from ketapain.pharmacology.prediction import (
    Prediction,
    PredictionSummary,
    dosing_time_grid,
    predict,
)
from ketapain.pharmacology.schedules import Bolus, Infusion, Schedule
from ketapain.protocols import get_protocol

FIVE_MIN = 5.0 / 60.0


def _predict_protocol(name: str, weight_kg: float = 70.0, **kwargs) -> Prediction:
    protocol = get_protocol(name)
    dosing = float(protocol.dosing_weight_kg(np.array([weight_kg]))[0])
    return predict(
        protocol.pk_model(),
        protocol.schedule(),
        weight_kg=weight_kg,
        baseline_nrs=7.0,
        dosing_weight_kg=dosing,
        **kwargs,
    )


@pytest.fixture(scope="module")
def by_protocol() -> dict[str, Prediction]:
    """Predictions of three built-in protocols for a 70-kg man, baseline NRS 7."""
    return {
        name: _predict_protocol(name) for name in ("continuous-100h", "ten-weekdays", "single-day")
    }


# --- the Sigtermans 100-h infusion -------------------------------------------------------


def test_continuous_100h_reaches_the_fanta_steady_state(by_protocol):
    """Peak S plasma = 22.2 mg/h / 95 L/h = 234 ng/mL (rtol 0.5%).

    The last rate step lasts 44 h, about ten half-lives of the slowest disposition phase
    of the model at 70 kg, so the peak is the steady state to well within 0.5% (the brief
    allows 2%).
    """
    params = get_model("flint-fanta-s").parameters(Covariates.single(weight_kg=70.0))
    assert_allclose(params.cl_l_per_h, [95.0], rtol=1e-12)
    css = 0.31714 * 70.0 / 95.0 * 1000.0
    summary = by_protocol["continuous-100h"].summary
    assert_allclose(summary.peak_s_plasma_ng_per_ml, css, rtol=0.005)
    assert_allclose(summary.peak_s_plasma_ng_per_ml, 22.2 / 95 * 1000, rtol=0.02)
    assert summary.peak_s_plasma_ng_per_ml <= css * (1 + 1e-9)  # approached from below


def test_continuous_100h_side_effect_probability_matches_sigtermans(by_protocol):
    """The predicted psychotomimetic rate is 70-76% (Sigtermans 2009 observed 76%)."""
    summary = by_protocol["continuous-100h"].summary
    assert 0.70 <= summary.psychotomimetic_probability <= 0.76


def test_relief_lasts_longer_after_longer_courses(by_protocol):
    """Relief duration: 100-h continuous > ten weekdays > single day, which is < 2 days."""
    d = {name: p.summary.relief_duration_days for name, p in by_protocol.items()}
    assert d["continuous-100h"] > d["ten-weekdays"] > d["single-day"]
    assert d["single-day"] < 2.0
    assert not any(p.summary.relief_censored for p in by_protocol.values())


def test_end_of_treatment_and_horizon(by_protocol):
    """The grid runs from 0 to the last dose end plus the follow-up (84 days by default)."""
    p = by_protocol["ten-weekdays"]
    assert p.summary.end_of_treatment_h == 277.0
    assert p.time_h[0] == 0.0
    assert_allclose(p.time_h[-1], 277.0 + 84 * 24, rtol=1e-12)
    assert np.all(np.diff(p.time_h) > 0)


# --- curves -------------------------------------------------------------------------------


def test_curves_have_the_grid_shape_and_s_share(by_protocol):
    """Every curve is (T,); S-ketamine curves are the model's S share of total (rtol 1e-14)."""
    p = by_protocol["ten-weekdays"]
    s = get_model("domino-cl79").s_fraction
    for name, curve in p.curves.items():
        assert curve.shape == p.time_h.shape, name
    assert_allclose(
        p.curves["s_ketamine_plasma_ng_per_ml"],
        s * p.curves["ketamine_plasma_ng_per_ml"],
        rtol=1e-14,
    )
    assert "norketamine_plasma_ng_per_ml" in p.curves


def test_curves_are_bounded(by_protocol):
    """Occupancy and effects are in [0, 1]; every NRS curve is in [0, baseline]."""
    for p in by_protocol.values():
        for name in ("nmda_occupancy", "acute_relief", "psychotomimetic_effect"):
            assert np.all((p.curves[name] >= 0) & (p.curves[name] <= 1)), name
        for name in ("nrs_responder", "nrs_non_responder", "nrs_expected"):
            assert np.all((p.curves[name] >= 0) & (p.curves[name] <= 7.0)), name


def test_responder_pain_is_never_above_non_responder_pain(by_protocol):
    """Sustained relief only lowers pain: responder NRS <= non-responder NRS everywhere."""
    for p in by_protocol.values():
        assert np.all(p.curves["nrs_responder"] <= p.curves["nrs_non_responder"])


def test_expected_pain_averages_the_drug_and_placebo_responses(by_protocol):
    """NRS_expected = NRS0 (1 - acute)(1 - q sustained)(1 - p0 placebo) (rtol 1e-12).

    The placebo response starts with the first dose (none before it). It is never above
    the non-responder curve and never below a patient who responds to both drug and
    treatment context.
    """
    sus = PDModel().sustained
    for p in by_protocol.values():
        c = p.curves
        want = predicted_nrs(
            7.0,
            acute_relief=c["acute_relief"],
            sustained_relief=sus.p_drug_response * c["sustained_relief_responder"],
            placebo_relief=np.where(
                p.time_h >= 9.0, sus.p_response_placebo * sus.placebo_relief, 0.0
            ),
        )
        assert_allclose(c["nrs_expected"], want, rtol=1e-12)
        floor = c["nrs_responder"] * (1.0 - sus.placebo_relief)
        assert np.all(c["nrs_expected"] <= c["nrs_non_responder"])
        assert np.all(c["nrs_expected"] >= floor)


def test_cardiovascular_curves_follow_the_effect_site(by_protocol):
    """MAP, HR and CO rises are the default model at the S effect site (rtol 1e-14)."""
    p = by_protocol["single-day"]
    cv = CardiovascularModel()
    ce = p.curves["s_ketamine_effect_site_ng_per_ml"]
    assert_allclose(p.curves["map_rise"], cv.map_rise(ce), rtol=1e-14)
    assert_allclose(p.curves["heart_rate_rise"], cv.heart_rate_rise(ce), rtol=1e-14)
    assert_allclose(p.curves["cardiac_output_rise"], cv.cardiac_output_rise(ce), rtol=1e-14)


# --- summary -------------------------------------------------------------------------------


def test_summary_types_and_consistency(by_protocol):
    """Summary fields have their declared types and agree with the curves."""
    for p in by_protocol.values():
        s = p.summary
        values = s.as_dict()
        assert set(values) == set(PredictionSummary.__dataclass_fields__)
        for key in ("bp_warning", "relief_censored"):
            assert type(values[key]) is bool, key
        for key, value in values.items():
            if key not in ("bp_warning", "relief_censored", "time_to_relief_h"):
                assert isinstance(value, float), key
        assert s.peak_plasma_ng_per_ml == float(p.curves["ketamine_plasma_ng_per_ml"].max())
        assert s.peak_occupancy == float(p.curves["nmda_occupancy"].max())
        assert s.lowest_nrs == float(p.curves["nrs_responder"].min())
        assert s.response_probability == 0.67
        ttr = time_to_relief_h(p.time_h, p.curves["nrs_responder"][None, :], np.array([7.0]))
        assert s.time_to_relief_h == float(ttr[0]) - 9.0  # from the first dose at 09:00
        assert_allclose(
            s.psychotomimetic_probability,
            0.18 + 0.82 * s.peak_psychotomimetic_effect,
            rtol=1e-14,
        )


def test_bp_warning_is_a_map_rise_above_the_threshold(by_protocol):
    """bp_warning is true exactly when the peak MAP rise exceeds map_rise_warning (0.2)."""
    for p in by_protocol.values():
        assert p.summary.bp_warning == (p.summary.peak_map_rise > 0.2)
    lenient = PDModel(cardiovascular=CardiovascularModel(map_rise_warning=0.5))
    relaxed = _predict_protocol("single-day", pd=lenient).summary
    assert by_protocol["single-day"].summary.bp_warning
    assert not relaxed.bp_warning
    assert relaxed.peak_map_rise == by_protocol["single-day"].summary.peak_map_rise


def test_small_dose_gives_no_relief_and_no_warning():
    """1 mg over an hour: never 30% relief (time None, duration 0) and no BP warning."""
    p = predict(
        get_model("domino-cl79"),
        Schedule.of(Infusion(start_h=0.0, duration_h=1.0, rate_mg_per_h=1.0)),
        weight_kg=70.0,
        baseline_nrs=6.0,
        follow_up_days=2.0,
    )
    assert p.summary.time_to_relief_h is None
    assert p.summary.relief_duration_days == 0.0
    assert not p.summary.relief_censored
    assert not p.summary.bp_warning


def test_model_without_metabolite_has_no_norketamine():
    """Without a metabolite block the summary's norketamine peak is None and no curve."""
    model = replace(get_model("domino-cl79"), metabolite=None)
    p = predict(
        model,
        Schedule.of(Infusion(start_h=0.0, duration_h=4.0, rate_mg_per_kg_h=0.5)),
        weight_kg=70.0,
        baseline_nrs=6.0,
        follow_up_days=1.0,
    )
    assert p.summary.peak_norketamine_ng_per_ml is None
    assert "norketamine_plasma_ng_per_ml" not in p.curves


def test_dosing_weight_changes_the_dose_and_not_the_kinetics():
    """Dosing weight 25/0.35 kg for a 90-kg patient: 1000 mg over ten days, not 1260 mg."""
    protocol = get_protocol("ten-weekdays")
    model, schedule = protocol.pk_model(), protocol.schedule()
    full = predict(model, schedule, weight_kg=90.0, baseline_nrs=6.0, follow_up_days=1.0)
    capped = predict(
        model,
        schedule,
        weight_kg=90.0,
        baseline_nrs=6.0,
        follow_up_days=1.0,
        dosing_weight_kg=25.0 / 0.35,
    )
    assert_allclose(full.summary.total_dose_mg, 10 * 4 * 0.35 * 90, rtol=1e-12)
    assert_allclose(capped.summary.total_dose_mg, 10 * 4 * 25.0, rtol=1e-12)
    # Linear kinetics with the same clearance: concentrations scale with the dose.
    ratio = capped.summary.peak_plasma_ng_per_ml / full.summary.peak_plasma_ng_per_ml
    assert_allclose(ratio, 25.0 / (0.35 * 90.0), rtol=1e-9)


def test_women_clear_s_ketamine_faster():
    """Flint-Fanta: women have 20% higher clearance, so a lower steady state (rtol 1%)."""
    protocol = get_protocol("continuous-100h")
    kw = {"weight_kg": 70.0, "baseline_nrs": 7.0, "follow_up_days": 1.0}
    man = predict(protocol.pk_model(), protocol.schedule(), sex="male", **kw)
    woman = predict(protocol.pk_model(), protocol.schedule(), sex="female", **kw)
    ratio = woman.summary.peak_s_plasma_ng_per_ml / man.summary.peak_s_plasma_ng_per_ml
    assert_allclose(ratio, 1 / 1.2, rtol=0.01)


def test_follow_up_of_zero_days_ends_at_the_last_dose():
    """follow_up_days 0 is allowed: the grid ends at the end of treatment."""
    p = predict(
        get_model("domino-cl79"),
        Schedule.of(Infusion(start_h=1.0, duration_h=2.0, rate_mg_per_kg_h=0.3)),
        weight_kg=70.0,
        baseline_nrs=5.0,
        follow_up_days=0.0,
    )
    assert p.time_h[-1] == 3.0


# --- errors -------------------------------------------------------------------------------

SCHEDULE = Schedule.of(Infusion(start_h=0.0, duration_h=1.0, rate_mg_per_kg_h=0.3))


@pytest.mark.parametrize("baseline", [-1.0, 10.1, np.nan])
def test_bad_baseline_is_rejected(baseline):
    """Baselines outside 0-10 raise InvalidValueError naming baseline_nrs."""
    with pytest.raises(InvalidValueError, match=r"^baseline_nrs must be"):
        predict(get_model("domino-cl79"), SCHEDULE, weight_kg=70.0, baseline_nrs=baseline)


@pytest.mark.parametrize("days", [-1.0, 731.0, np.nan, np.inf])
def test_bad_follow_up_is_rejected(days):
    """follow_up_days outside 0-730 raises InvalidValueError naming the field."""
    with pytest.raises(InvalidValueError, match=r"^follow_up_days must be between 0 and 730"):
        predict(
            get_model("domino-cl79"),
            SCHEDULE,
            weight_kg=70.0,
            baseline_nrs=5.0,
            follow_up_days=days,
        )


def test_empty_schedule_is_rejected():
    """A schedule without doses raises InvalidValueError naming schedule."""
    with pytest.raises(InvalidValueError, match=r"^schedule must be at least one dose"):
        predict(get_model("domino-cl79"), Schedule(), weight_kg=70.0, baseline_nrs=5.0)


# --- dosing_time_grid ----------------------------------------------------------------------


def test_grid_hand_example():
    """One 9:30-10:48 infusion to 30 h: hourly, then 5-min steps from 9:30 to 12:45."""
    sched = Schedule.of(Infusion(start_h=9.5, duration_h=1.3, rate_mg_per_h=1.0))
    t = dosing_time_grid(sched, end_h=30.0)
    fine = 9.5 + FIVE_MIN * np.arange(40)  # 9.5 ... 12.75
    want = np.unique(np.round(np.concatenate([np.arange(31.0), fine, [10.8]]), 9))
    assert_allclose(t, want, rtol=0, atol=1e-9)


_QUARTER = st.integers(0, 4 * 48).map(lambda k: k / 4)
_LENGTH = st.integers(1, 4 * 12).map(lambda k: k / 4)


@st.composite
def _schedules(draw) -> Schedule:
    starts = draw(st.lists(_QUARTER, min_size=1, max_size=4))
    return Schedule.of(
        Infusion(start_h=s, duration_h=draw(_LENGTH), rate_mg_per_h=1.0) for s in starts
    )


@given(sched=_schedules(), extra=_QUARTER, coarse=st.sampled_from([0.5, 1.0, 3.0]))
def test_grid_properties(sched, extra, coarse):
    """Strictly increasing from 0 to end_h; every dose boundary present; steps <= 5 min
    during doses and <= coarse_h elsewhere; only coarse points, boundaries and end_h lie
    outside the 2-h windows after doses (atol 1e-8 h: times are rounded to 1e-9 h)."""
    end = sched.end_h() + extra
    t = dosing_time_grid(sched, end_h=end, coarse_h=coarse)
    assert t[0] == 0.0
    assert_allclose(t[-1], end, rtol=0, atol=1e-8)
    assert np.all(np.diff(t) > 0)
    assert np.max(np.diff(t)) <= coarse + 1e-8
    for dose in sched.infusions:
        for edge in (dose.start_h, dose.end_h):
            assert np.min(np.abs(t - edge)) < 1e-8
        inside = t[(t >= dose.start_h - 1e-8) & (t <= dose.end_h + 1e-8)]
        assert np.max(np.diff(inside)) <= FIVE_MIN + 1e-8
    windows = [(d.start_h, d.end_h + 2.0) for d in sched.infusions]
    edges = np.array([e for d in sched.infusions for e in (d.start_h, d.end_h)] + [end])
    for x in t:
        in_window = any(lo - 1e-8 <= x <= hi + 1e-8 for lo, hi in windows)
        on_coarse = abs(x / coarse - round(x / coarse)) < 1e-8
        assert in_window or on_coarse or np.min(np.abs(edges - x)) < 1e-8


def test_prediction_grid_reaches_a_horizon_that_is_not_a_round_number():
    """A 40-min infusion followed for 1 day: the last grid time is 24 h 40 min."""
    p = predict(
        get_model("domino-cl79"),
        Schedule.of(Infusion(start_h=0.0, duration_h=40.0 / 60.0, rate_mg_per_kg_h=0.3)),
        weight_kg=70.0,
        baseline_nrs=5.0,
        follow_up_days=1.0,
    )
    assert_allclose(p.time_h[-1], 24.0 + 40.0 / 60.0, rtol=1e-12)


def test_grid_clips_doses_before_zero_and_after_the_end():
    """A dose that starts before 0 or runs past end_h adds no time outside [0, end_h]."""
    sched = Schedule.of(
        Bolus(time_h=-1.0, dose_mg=1.0),
        Infusion(start_h=-0.5, duration_h=1.0, rate_mg_per_h=1.0),
        Infusion(start_h=5.0, duration_h=10.0, rate_mg_per_h=1.0),
    )
    t = dosing_time_grid(sched, end_h=8.0)
    assert t[0] == 0.0
    assert t[-1] == 8.0
    assert 0.5 in np.round(t, 9)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"resolution_min": 0.1}, "resolution_min"),
        ({"resolution_min": 61.0}, "resolution_min"),
        ({"resolution_min": np.nan}, "resolution_min"),
        ({"coarse_h": 0.0}, "coarse_h"),
        ({"coarse_h": 200.0}, "coarse_h"),
    ],
)
def test_grid_validation(kwargs, field):
    """Resolution must be 0.5-60 min and the coarse step in (0, 168] h."""
    with pytest.raises(InvalidValueError, match=f"^{field} must be"):
        dosing_time_grid(SCHEDULE, end_h=10.0, **kwargs)


def test_predict_uses_the_requested_resolution():
    """resolution_min 15: steps during the infusion are 15 min (atol 1e-9 h, rounding)."""
    p = predict(
        get_model("domino-cl79"),
        Schedule.of(Infusion(start_h=2.0, duration_h=2.0, rate_mg_per_kg_h=0.3)),
        weight_kg=70.0,
        baseline_nrs=5.0,
        follow_up_days=0.5,
        resolution_min=15.0,
    )
    during = p.time_h[(p.time_h >= 2.0) & (p.time_h <= 4.0)]
    assert_allclose(np.diff(during), 0.25, rtol=0, atol=1e-9)
