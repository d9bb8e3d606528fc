"""Tests of ketapain.pharmacology.targeting: pump steps that reach and hold a concentration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from ketapain.errors import InvalidValueError
from ketapain.pharmacology import Covariates, Output, get_model, simulate
from ketapain.pharmacology.schedules import Infusion, Schedule
from ketapain.pharmacology.targeting import TargetSite, step_durations_h, target_steps

MODELS = ("domino-cl79", "flint-fanta-s")
START_H = 9.0
DURATION_H = 4.0
TARGET = 150.0


def _params(model: str = "domino-cl79", weight_kg: float = 70.0):
    return get_model(model).parameters(Covariates.single(weight_kg=weight_kg))


def _conc(params, schedule: Schedule, times_h: np.ndarray, site: TargetSite) -> np.ndarray:
    prof = simulate(params, schedule, times_h=times_h, outputs=(site.output,))
    return next(iter(prof.curves().values()))[0]


def _plan(model: str = "domino-cl79", site: TargetSite = TargetSite.PLASMA, **kwargs):
    values = {
        "target_ng_per_ml": TARGET,
        "start_h": START_H,
        "duration_h": DURATION_H,
        "max_rate_mg_per_h": 1000.0,
        "site": site,
    } | kwargs
    return target_steps(_params(model), **values)


# --- step lengths --------------------------------------------------------------------------


def test_step_durations_example():
    """3 h with 15-min loading steps: four of 15 min, two of 30 min, one of 1 h."""
    assert step_durations_h(3.0, min_step_min=15) == [0.25] * 4 + [0.5, 0.5, 1.0]


def test_long_targets_use_four_hour_steps():
    """After hour 6 the steps are 4 h; the last is cut to the duration."""
    got = step_durations_h(16.0, min_step_min=30)
    assert got == [0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 4.0, 4.0, 2.0]


@given(duration=st.floats(0.01, 48.0), min_step=st.floats(1.0, 60.0))
def test_step_durations_sum_to_the_duration(duration, min_step):
    """The steps are positive and cover the duration exactly (rtol 1e-12)."""
    steps = step_durations_h(duration, min_step_min=min_step)
    assert all(d > 0 for d in steps)
    assert_allclose(sum(steps), duration, rtol=1e-12)
    assert max(steps) <= max(min_step / 60.0, 4.0)
    assert_allclose(steps[0], min(min_step / 60.0, duration), rtol=1e-12)


@pytest.mark.parametrize("min_step", [3.0, 5.0, 12.0, 15.0, 20.0])
def test_loading_steps_fill_the_first_hour(min_step):
    """60 / min_step loading steps, then 30-min steps from hour 1."""
    steps = step_durations_h(4.0, min_step_min=min_step)
    n = int(60.0 // min_step)
    assert_allclose(steps[:n], min_step / 60.0, rtol=1e-12)
    assert steps[n : n + 2] == [0.5, 0.5]
    assert steps[n + 2 :] == [1.0, 1.0]


@pytest.mark.parametrize("min_step", [2.0, 4.0, 6.0, 10.0])
def test_loading_steps_fill_exactly_the_first_hour(min_step):
    """With the default 10 min: six loading steps, two of 30 min, two of 1 h for 4 h."""
    steps = step_durations_h(4.0, min_step_min=min_step)
    n = int(60.0 // min_step)
    assert len(steps) == n + 4
    assert_allclose(steps, [min_step / 60.0] * n + [0.5, 0.5, 1.0, 1.0], rtol=1e-12)


@pytest.mark.parametrize("min_step", [0.0, 0.99, 60.01, -10.0, float("nan")])
def test_min_step_outside_1_to_60_min_is_refused(min_step):
    """The loading step must be 1 to 60 min."""
    with pytest.raises(InvalidValueError) as info:
        step_durations_h(4.0, min_step_min=min_step)
    assert info.value.field == "min_step_min"


@pytest.mark.parametrize("min_step", [1.0, 60.0])
def test_min_step_bounds_are_inclusive(min_step):
    """1 and 60 min are accepted."""
    steps = step_durations_h(2.0, min_step_min=min_step)
    assert_allclose(steps[0], min_step / 60.0, rtol=1e-12)


# --- reaching and holding the target -------------------------------------------------------


@pytest.mark.parametrize("site", list(TargetSite))
@pytest.mark.parametrize("model", MODELS)
def test_steps_are_contiguous_and_cover_the_duration(model, site):
    """Steps follow each other from the start to the end, at rates from 0 up."""
    plan = _plan(model, site)
    assert plan.steps[0].start_h == START_H
    for a, b in itertools.pairwise(plan.steps):
        assert_allclose(a.end_h, b.start_h, rtol=1e-12)
        assert a.rate_mg_per_h != b.rate_mg_per_h
    assert_allclose(plan.steps[-1].end_h, START_H + DURATION_H, rtol=1e-12)
    assert all(s.rate_mg_per_h >= 0 for s in plan.steps)
    assert len(plan.at_max_rate) == len(plan.steps)
    assert not any(plan.at_max_rate)
    assert plan.site is site
    assert plan.target_ng_per_ml == TARGET


@pytest.mark.parametrize("site", list(TargetSite))
@pytest.mark.parametrize("model", MODELS)
def test_target_is_met_at_every_step_end(model, site):
    """Simulated independently, the concentration equals the target at each step's end."""
    params = _params(model)
    plan = _plan(model, site)
    ends = np.array([s.end_h for s in plan.steps])
    c = _conc(params, Schedule.of(plan.steps), ends, site)
    assert_allclose(c, TARGET, rtol=1e-6)
    assert_allclose(plan.end_conc_ng_per_ml, c[-1], rtol=1e-9)


@pytest.mark.parametrize("site", list(TargetSite))
@pytest.mark.parametrize("model", MODELS)
def test_target_is_reached_and_held_within_10_percent(model, site):
    """Reached within the loading steps, then within 10% of the target to the end."""
    params = _params(model)
    plan = _plan(model, site)
    assert plan.time_to_target_h is not None
    assert plan.time_to_target_h < 0.5
    times = np.linspace(START_H, START_H + DURATION_H, 2401)
    c = _conc(params, Schedule.of(plan.steps), times, site)
    reached = times >= START_H + plan.time_to_target_h
    assert c[reached].min() >= 0.9 * TARGET
    assert c[reached].max() <= 1.1 * TARGET
    assert_allclose(plan.max_overshoot_ng_per_ml, max(0.0, c.max() - TARGET), atol=0.5)


def test_plasma_steps_fall_after_loading():
    """A plasma target needs the highest rate first, then ever lower rates."""
    rates = [s.rate_mg_per_h for s in _plan().steps]
    assert all(a > b for a, b in itertools.pairwise(rates))


def test_effect_site_loads_harder_than_plasma():
    """The effect-site target starts with a bigger first step than the plasma target."""
    plasma = _plan(site=TargetSite.PLASMA).steps[0].rate_mg_per_h
    effect = _plan(site=TargetSite.EFFECT_SITE).steps[0].rate_mg_per_h
    assert effect > 1.5 * plasma


def test_site_outputs():
    """Plasma targets the plasma output, the effect site its own."""
    assert TargetSite.PLASMA.output is Output.KETAMINE_PLASMA
    assert TargetSite.EFFECT_SITE.output is Output.KETAMINE_EFFECT_SITE


# --- limits and pump resolution ------------------------------------------------------------


@pytest.mark.parametrize("site", list(TargetSite))
def test_max_rate_is_respected_and_flagged(site):
    """With a 20 mg/h ceiling no step exceeds it, the first is flagged, the target comes later."""
    free = _plan(site=site)
    low = _plan(site=site, max_rate_mg_per_h=20.0)
    assert all(s.rate_mg_per_h <= 20.0 for s in low.steps)
    assert low.steps[0].rate_mg_per_h == 20.0
    assert low.at_max_rate[0]
    assert not any(low.at_max_rate[1:])
    assert low.time_to_target_h > free.time_to_target_h
    assert_allclose(low.end_conc_ng_per_ml, TARGET, rtol=0.01)


def test_unreachable_target_stays_at_the_max_rate():
    """A ceiling too low for the target runs at it throughout: one flagged step."""
    plan = _plan(max_rate_mg_per_h=5.0)
    assert [s.rate_mg_per_h for s in plan.steps] == [5.0]
    assert plan.at_max_rate == (True,)
    assert plan.time_to_target_h is None
    assert plan.end_conc_ng_per_ml < 0.95 * TARGET


@pytest.mark.parametrize("q", [0.5, 0.35, 0.1])
def test_rates_are_multiples_of_the_pump_resolution(q):
    """Each rate is a whole number of resolution steps, and the target is still met within 1%."""
    plan = _plan(rate_resolution_mg_per_h=q)
    k = np.array([s.rate_mg_per_h for s in plan.steps]) / q
    assert_allclose(k, np.rint(k), rtol=0, atol=1e-9)
    assert_allclose(plan.end_conc_ng_per_ml, TARGET, rtol=0.01)
    assert plan.end_conc_ng_per_ml <= TARGET * (1 + 1e-9)


def test_rounding_never_exceeds_the_max_rate():
    """A max rate that is not a multiple of the resolution is rounded down."""
    plan = _plan(max_rate_mg_per_h=20.0, rate_resolution_mg_per_h=3.0)
    assert plan.steps[0].rate_mg_per_h == 18.0
    assert all(s.rate_mg_per_h <= 20.0 for s in plan.steps)


def test_prior_doses_reduce_the_first_step():
    """Ketamine still in the body from an earlier infusion lowers the loading rate."""
    prior = Schedule.of(Infusion(start_h=0.0, duration_h=4.0, rate_mg_per_h=30.0))
    fresh = _plan(start_h=6.0)
    after = _plan(start_h=6.0, prior=prior)
    assert after.steps[0].rate_mg_per_h < 0.5 * fresh.steps[0].rate_mg_per_h
    params = _params()
    end = np.array([10.0])
    c = _conc(params, prior + Schedule.of(after.steps), end, TargetSite.PLASMA)
    assert_allclose(c, TARGET, rtol=1e-6)


def test_prior_above_the_target_gives_a_zero_step():
    """Right after a high infusion the pump is stopped until the concentration falls."""
    prior = Schedule.of(Infusion(start_h=0.0, duration_h=1.0, rate_mg_per_h=100.0))
    plan = _plan(start_h=1.0, prior=prior)
    assert plan.steps[0].rate_mg_per_h == 0.0
    assert plan.steps[0].duration_h >= 1.0 - 1e-9  # the whole loading hour
    assert plan.steps[-1].rate_mg_per_h > 0.0
    assert plan.max_overshoot_ng_per_ml > TARGET


def test_weight_changes_the_rates():
    """A heavier patient needs higher rates for the same target."""
    light = target_steps(
        _params(weight_kg=50.0),
        target_ng_per_ml=TARGET,
        start_h=0.0,
        duration_h=2.0,
        max_rate_mg_per_h=1000.0,
    )
    heavy = target_steps(
        _params(weight_kg=110.0),
        target_ng_per_ml=TARGET,
        start_h=0.0,
        duration_h=2.0,
        max_rate_mg_per_h=1000.0,
    )
    assert heavy.steps[-1].rate_mg_per_h > light.steps[-1].rate_mg_per_h


# --- invalid input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target_ng_per_ml": 0.0}, "target_ng_per_ml"),
        ({"target_ng_per_ml": -5.0}, "target_ng_per_ml"),
        ({"target_ng_per_ml": 5001.0}, "target_ng_per_ml"),
        ({"target_ng_per_ml": float("nan")}, "target_ng_per_ml"),
        ({"duration_h": 0.0}, "duration_h"),
        ({"duration_h": 337.0}, "duration_h"),
        ({"max_rate_mg_per_h": 0.0}, "max_rate_mg_per_h"),
        ({"max_rate_mg_per_h": float("nan")}, "max_rate_mg_per_h"),
        ({"min_step_min": 0.5}, "min_step_min"),
    ],
)
def test_invalid_inputs_name_the_field(kwargs, field):
    """Targets, durations, maximum rates and step lengths outside their ranges are refused."""
    with pytest.raises(InvalidValueError) as info:
        _plan(**kwargs)
    assert info.value.field == field


def test_more_than_one_subject_is_refused():
    """Target steps are for one patient."""
    covariates = Covariates(
        weight_kg=np.array([70.0, 80.0]),
        female=np.array([False, True]),
        age_y=np.array([40.0, 50.0]),
    )
    params = get_model("domino-cl79").parameters(covariates)
    with pytest.raises(InvalidValueError) as info:
        target_steps(
            params, target_ng_per_ml=TARGET, start_h=0.0, duration_h=1.0, max_rate_mg_per_h=100.0
        )
    assert info.value.field == "params"
