"""Tests of ketapain.pharmacology.simulation: reference solutions and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from ketapain.errors import InvalidValueError
from ketapain.pharmacology._propagators import MAX_EIGENVECTOR_CONDITION, modal_decomposition
from ketapain.pharmacology.compartments import Output, build_system
from ketapain.pharmacology.covariates import Covariates
from ketapain.pharmacology.models import get_model, list_models
from ketapain.pharmacology.parameters import (
    MetaboliteParameters,
    OralParameters,
    PKParameters,
)
from ketapain.pharmacology.schedules import Bolus, Infusion, OralDose, Schedule
from ketapain.pharmacology.simulation import Profile, default_outputs, simulate

ALL_OUTPUTS = tuple(Output)
# The reference is integrated with rtol 1e-10; the engine is exact up to rounding. Their
# difference is the reference's own error, far below this.
RTOL = 1e-7


def _outputs_for(params: PKParameters) -> tuple[Output, ...]:
    return (*default_outputs(params), Output.AMOUNT_IN_BODY, Output.AMOUNT_ELIMINATED)


def _assert_matches(profile: Profile, expected: dict[str, np.ndarray], rtol: float = RTOL) -> None:
    curves = profile.curves()
    assert curves, "the profile holds no curve"
    for name, got in curves.items():
        want = expected[name]
        scale = float(np.max(np.abs(want))) or 1.0
        assert_allclose(got, want, rtol=rtol, atol=rtol * 1e-2 * scale, err_msg=name)


def _one_compartment(
    *,
    cl: float,
    v1: float,
    ke0: float | None = None,
    ka: float | None = None,
    met_cl: float | None = None,
    met_v1: float = 10.0,
    weight_kg: float = 70.0,
) -> PKParameters:
    one = np.ones(1)
    return PKParameters(
        weight_kg=weight_kg * one,
        cl_l_per_h=cl * one,
        v1_l=v1 * one,
        ke0_per_h=None if ke0 is None else ke0 * one,
        oral=None
        if ka is None
        else OralParameters(
            ka_per_h=ka * one, bioavailability=0.4 * one, first_pass_metabolite_fraction=0.3 * one
        ),
        metabolite=None
        if met_cl is None
        else MetaboliteParameters(
            cl_l_per_h=met_cl * one, v1_l=met_v1 * one, fraction_formed=0.8 * one
        ),
    )


def _stack(subjects: list[PKParameters]) -> PKParameters:
    """Stack single-subject parameters of identical structure into one N-subject value."""

    def cat(values: list[object]) -> object:
        first = values[0]
        if isinstance(first, np.ndarray):
            return np.concatenate(values)
        if isinstance(first, OralParameters):
            return OralParameters(
                ka_per_h=np.concatenate([v.ka_per_h for v in values]),
                bioavailability=np.concatenate([v.bioavailability for v in values]),
                first_pass_metabolite_fraction=np.concatenate(
                    [v.first_pass_metabolite_fraction for v in values]
                ),
                zero_order_h=first.zero_order_h,
            )
        if isinstance(first, MetaboliteParameters):
            return MetaboliteParameters(
                cl_l_per_h=np.concatenate([v.cl_l_per_h for v in values]),
                v1_l=np.concatenate([v.v1_l for v in values]),
                fraction_formed=np.concatenate([v.fraction_formed for v in values]),
                molar_mass_ratio=first.molar_mass_ratio,
            )
        return first

    names = (
        "weight_kg",
        "cl_l_per_h",
        "v1_l",
        "q2_l_per_h",
        "v2_l",
        "q3_l_per_h",
        "v3_l",
        "ke0_per_h",
        "oral",
        "metabolite",
    )
    return PKParameters(**{n: cat([getattr(s, n) for s in subjects]) for n in names})


MIXED_SCHEDULE = Schedule.of(
    Bolus(time_h=0.5, dose_mg_per_kg=0.3),
    Infusion(start_h=1.0, duration_h=6.0, rate_mg_per_kg_h=0.4),
    Infusion(start_h=3.0, duration_h=2.0, rate_mg_per_h=20.0),
    OralDose(time_h=10.0, dose_mg=50.0),
    Bolus(time_h=30.0, dose_mg=15.0),
)
MIXED_TIMES = np.unique(np.concatenate([np.linspace(0.0, 48.0, 97), [0.5, 30.0, 30.01]]))


# --- reference tests against an independent ODE solution -------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_random_models_and_schedules_match_the_ode_reference(
    seed, reference, make_parameters, make_schedule
):
    """Random models under random three-day schedules match an LSODA solution (rtol 1e-10).

    Cases come from numpy's default_rng(seed): 1-3 compartments, with or without effect
    site, oral absorption and metabolite, two subjects of different weights; boluses,
    overlapping infusions and oral doses, per kg or absolute. The reference integrates the
    flow equations piecewise between breakpoints (tests/pharmacology/conftest.py).
    """
    rng = np.random.default_rng(seed)
    oral = bool(rng.integers(2)) or seed == 0
    params = make_parameters(
        rng,
        n_subjects=2,
        n_compartments=1 + seed % 3,
        effect_site=bool(rng.integers(2)) or seed == 1,
        oral=oral,
        metabolite=bool(rng.integers(2)) or seed == 2,
    )
    schedule = make_schedule(rng, days=3, oral=oral)
    boluses = [d.time_h for d in schedule.doses if isinstance(d, Bolus)]
    first_output = rng.uniform(0.0, 6.0)  # doses before the first output time count too
    times = np.unique(np.concatenate([np.linspace(first_output, 84.0, 60), boluses]))
    profile = simulate(params, schedule, times_h=times, outputs=_outputs_for(params))
    _assert_matches(profile, reference(params, schedule, times))


def test_bolus_is_included_at_its_own_time(reference):
    """Concentrations are right-continuous: an output at a bolus time includes the bolus."""
    params = _one_compartment(cl=40.0, v1=20.0, ke0=3.0)
    schedule = Schedule.of(Bolus(time_h=2.0, dose_mg=35.0))
    times = np.array([1.0, 2.0, 3.0])
    profile = simulate(params, schedule, times_h=times)
    assert profile.ketamine_plasma_ng_per_ml[0, 0] == 0.0
    assert_allclose(profile.ketamine_plasma_ng_per_ml[0, 1], 35.0 / 20.0 * 1000.0, rtol=1e-12)
    _assert_matches(profile, reference(params, schedule, times))


def test_every_published_model_matches_the_ode_reference(reference):
    """Each registered model, with its oral and metabolite blocks, matches the reference."""
    cov = Covariates.single(weight_kg=60.0, sex="female", age_y=12.0)
    for model in list_models():
        params = model.parameters(cov, warn=False)
        profile = simulate(
            params, MIXED_SCHEDULE, times_h=MIXED_TIMES, outputs=_outputs_for(params)
        )
        _assert_matches(profile, reference(params, MIXED_SCHEDULE, MIXED_TIMES))


def test_subjects_are_simulated_independently_of_chunking():
    """Splitting the subjects into chunks of any size gives the same profiles."""
    model = get_model("domino-cl79")
    cov = Covariates(
        weight_kg=np.array([50.0, 70.0, 90.0, 110.0, 65.0]),
        female=np.array([True, False, True, False, False]),
        age_y=np.full(5, 40.0),
    )
    etas = {"cl": np.array([0.3, -0.2, 0.0, 0.1, -0.4])}
    params = model.parameters(cov, etas=etas)
    whole = simulate(params, MIXED_SCHEDULE, times_h=MIXED_TIMES)
    for chunk in (1, 2, 3):
        split = simulate(params, MIXED_SCHEDULE, times_h=MIXED_TIMES, chunk_subjects=chunk)
        for name, curve in whole.curves().items():
            assert_allclose(split.curves()[name], curve, rtol=1e-12, err_msg=name)


# --- repeated eigenvalues: the matrix-exponential fallback ------------------------------


def _uses_fallback(params: PKParameters, outputs: tuple[Output, ...], with_oral: bool) -> bool:
    system = build_system(params, outputs=outputs, with_oral=with_oral)
    *_, cond = modal_decomposition(system.a)
    return bool(np.all(cond > MAX_EIGENVECTOR_CONDITION))


DEGENERATE_SCHEDULE = Schedule.of(
    Bolus(time_h=0.0, dose_mg=20.0),
    Infusion(start_h=1.0, duration_h=3.0, rate_mg_per_h=30.0),
    OralDose(time_h=5.0, dose_mg=100.0),
)
DEGENERATE_TIMES = np.linspace(0.0, 24.0, 49)


@pytest.mark.parametrize(
    ("case", "params"),
    [
        ("ke0 = k10", _one_compartment(cl=20.0, v1=40.0, ke0=0.5, ka=1.7)),
        ("ka = k10", _one_compartment(cl=20.0, v1=40.0, ke0=3.0, ka=0.5)),
        ("metabolite k = k10", _one_compartment(cl=20.0, v1=40.0, ka=1.7, met_cl=5.0, met_v1=10.0)),
        ("ke0 = ka = k10", _one_compartment(cl=20.0, v1=40.0, ke0=0.5, ka=0.5)),
    ],
)
def test_equal_eigenvalues_still_match_the_ode_reference(case, params, reference):
    """Equal rate constants make A defective; the fallback must still give the exact answer."""
    outputs = _outputs_for(params)
    assert _uses_fallback(params, outputs, with_oral=True), case
    profile = simulate(params, DEGENERATE_SCHEDULE, times_h=DEGENERATE_TIMES, outputs=outputs)
    _assert_matches(profile, reference(params, DEGENERATE_SCHEDULE, DEGENERATE_TIMES))


def test_ke0_equal_to_a_two_compartment_eigenvalue_matches_the_ode_reference(reference):
    """ke0 set to the slow disposition eigenvalue of a two-compartment model still matches."""
    cl, v1, q, v2 = 30.0, 15.0, 40.0, 80.0
    k10, k12, k21 = cl / v1, q / v1, q / v2
    s = k10 + k12 + k21
    slow = 0.5 * (s - np.sqrt(s * s - 4.0 * k10 * k21))
    one = np.ones(1)
    params = PKParameters(
        weight_kg=70 * one,
        cl_l_per_h=cl * one,
        v1_l=v1 * one,
        q2_l_per_h=q * one,
        v2_l=v2 * one,
        ke0_per_h=slow * one,
    )
    schedule = Schedule.of(DEGENERATE_SCHEDULE.boluses, DEGENERATE_SCHEDULE.infusions)
    outputs = _outputs_for(params)
    assert _uses_fallback(params, outputs, with_oral=False)
    profile = simulate(params, schedule, times_h=DEGENERATE_TIMES, outputs=outputs)
    _assert_matches(profile, reference(params, schedule, DEGENERATE_TIMES))


@pytest.mark.parametrize("gap", [1e-14, 1e-11, 1e-9, 1e-7, 1e-5, 1e-3, 1e-1])
def test_nearly_equal_eigenvalues_match_the_ode_reference(gap, reference):
    """ke0 = k10 (1 + gap): on either side of the fallback threshold the answer is exact."""
    params = _one_compartment(cl=20.0, v1=40.0, ke0=0.5 * (1.0 + gap), ka=0.5 * (1.0 - gap))
    profile = simulate(
        params, DEGENERATE_SCHEDULE, times_h=DEGENERATE_TIMES, outputs=_outputs_for(params)
    )
    _assert_matches(profile, reference(params, DEGENERATE_SCHEDULE, DEGENERATE_TIMES))


def test_degenerate_and_regular_subjects_together_match_the_ode_reference(reference):
    """A degenerate subject between regular ones is handled without disturbing them."""
    subjects = [
        _one_compartment(cl=20.0, v1=40.0, ke0=2.0, ka=1.0, met_cl=30.0, weight_kg=60.0),
        _one_compartment(cl=20.0, v1=40.0, ke0=0.5, ka=0.5, met_cl=5.0, weight_kg=80.0),
        _one_compartment(cl=50.0, v1=25.0, ke0=4.0, ka=0.7, met_cl=12.0, weight_kg=95.0),
    ]
    params = _stack(subjects)
    outputs = _outputs_for(params)
    system = build_system(params, outputs=outputs, with_oral=True)
    cond = modal_decomposition(system.a)[3]
    assert list(cond > MAX_EIGENVECTOR_CONDITION) == [False, True, False]
    profile = simulate(params, MIXED_SCHEDULE, times_h=MIXED_TIMES, outputs=outputs)
    _assert_matches(profile, reference(params, MIXED_SCHEDULE, MIXED_TIMES))
    for i, single in enumerate(subjects):
        alone = simulate(single, MIXED_SCHEDULE, times_h=MIXED_TIMES, outputs=outputs)
        for name, curve in alone.curves().items():
            assert_allclose(profile.curves()[name][i], curve[0], rtol=1e-12, err_msg=name)


# --- properties ----------------------------------------------------------------------------


def _log_uniform(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(np.log(low), np.log(high)).map(lambda x: float(np.exp(x)))


@st.composite
def subjects(draw, *, oral: bool = True, metabolite: bool = True) -> PKParameters:
    """One subject of a random 1-3 compartment model, optionally with oral and metabolite."""
    one = np.ones(1)
    n_comp = draw(st.integers(1, 3))

    def value(low: float, high: float) -> np.ndarray:
        return draw(_log_uniform(low, high)) * one

    oral_block = None
    if oral:
        f = draw(st.floats(0.05, 0.95))
        oral_block = OralParameters(
            ka_per_h=value(0.2, 5.0),
            bioavailability=f * one,
            first_pass_metabolite_fraction=draw(st.floats(0.0, 1.0)) * (1.0 - f) * one,
            zero_order_h=draw(st.sampled_from([0.0, 0.32, 2.0])),
        )
    met_block = None
    if metabolite:
        peripheral = draw(st.booleans())
        met_block = MetaboliteParameters(
            cl_l_per_h=value(10.0, 120.0),
            v1_l=value(1.0, 150.0),
            fraction_formed=draw(st.floats(0.1, 1.0)) * one,
            molar_mass_ratio=draw(st.sampled_from([1.0, 223.70 / 237.73])),
            q2_l_per_h=value(5.0, 80.0) if peripheral else None,
            v2_l=value(20.0, 300.0) if peripheral else None,
        )
    return PKParameters(
        weight_kg=draw(st.floats(45.0, 120.0)) * one,
        cl_l_per_h=value(10.0, 200.0),
        v1_l=value(3.0, 150.0),
        q2_l_per_h=value(5.0, 300.0) if n_comp >= 2 else None,
        v2_l=value(10.0, 500.0) if n_comp >= 2 else None,
        q3_l_per_h=value(5.0, 100.0) if n_comp >= 3 else None,
        v3_l=value(20.0, 600.0) if n_comp >= 3 else None,
        ke0_per_h=value(0.3, 40.0) if draw(st.booleans()) else None,
        oral=oral_block,
        metabolite=met_block,
    )


# Times and durations on a 1/16 h grid: shifting them by a multiple of 1/16 h is exact in
# floating point, so a dose never slides onto or off an output time by rounding.
_TIME = st.integers(0, 48 * 16).map(lambda k: k / 16)
_DURATION = st.integers(1, 24 * 16).map(lambda k: k / 16)


def _doses(oral: bool) -> st.SearchStrategy:
    bolus = st.one_of(
        st.builds(Bolus, time_h=_TIME, dose_mg_per_kg=st.floats(0.01, 1.0)),
        st.builds(Bolus, time_h=_TIME, dose_mg=st.floats(1.0, 60.0)),
    )
    infusion = st.one_of(
        st.builds(
            Infusion, start_h=_TIME, duration_h=_DURATION, rate_mg_per_kg_h=st.floats(0.01, 2.0)
        ),
        st.builds(
            Infusion, start_h=_TIME, duration_h=_DURATION, rate_mg_per_h=st.floats(1.0, 100.0)
        ),
    )
    kinds = [bolus, infusion]
    if oral:
        kinds.append(
            st.one_of(
                st.builds(OralDose, time_h=_TIME, dose_mg_per_kg=st.floats(0.1, 2.0)),
                st.builds(OralDose, time_h=_TIME, dose_mg=st.floats(10.0, 150.0)),
            )
        )
    return st.one_of(*kinds)


def schedules(*, oral: bool = True, min_size: int = 1) -> st.SearchStrategy[Schedule]:
    """Random schedules of up to six doses in the first two days."""
    return st.lists(_doses(oral), min_size=min_size, max_size=6).map(Schedule.of)


TIMES = np.linspace(0.0, 72.0, 145)
# The engine keeps the modal solution up to an eigenvector condition number of 1e8, where
# its rounding error approaches 1e-8 of the largest modal amplitude (nearly equal rate
# constants, e.g. ke0 within 1e-7 of ka); identities between simulations hold to that, and
# a curve may dip below zero by that much, relative to its peak, where it should be 0.
PROPERTY_RTOL = 1e-7


def _cumulative_iv_mg(schedule: Schedule, weight_kg: float, t: np.ndarray) -> np.ndarray:
    total = np.zeros_like(t)
    for b in schedule.boluses:
        total += np.where(t >= b.time_h, b.amount_mg(weight_kg), 0.0)
    for i in schedule.infusions:
        total += i.rate_for(weight_kg) * np.clip(t - i.start_h, 0.0, i.duration_h)
    return total


def _oral_input_mg(schedule: Schedule, params: PKParameters, t: np.ndarray) -> tuple:
    """Amount swallowed into the gut depot so far, and the amount still in it (mg)."""
    assert params.oral is not None
    ka = float(params.oral.ka_per_h[0])
    zo = params.oral.zero_order_h
    weight = float(params.weight_kg[0])
    entered = np.zeros_like(t)
    in_gut = np.zeros_like(t)
    for d in schedule.oral_doses:
        dose = d.amount_mg(weight)
        s = t - d.time_h
        if zo == 0.0:
            entered += np.where(s >= 0, dose, 0.0)
            in_gut += np.where(s >= 0, dose * np.exp(-ka * np.maximum(s, 0.0)), 0.0)
        else:
            during = np.clip(s, 0.0, zo)
            entered += dose / zo * during
            at_end = dose / zo / ka * -np.expm1(-ka * during)
            in_gut += at_end * np.exp(-ka * np.maximum(s - zo, 0.0))
    return entered, in_gut


@given(params=subjects(oral=True, metabolite=False), schedule=schedules(oral=True))
def test_mass_balance(params, schedule):
    """Body + eliminated = IV dose given so far + F x what has left the gut."""
    outputs = (Output.AMOUNT_IN_BODY, Output.AMOUNT_ELIMINATED)
    prof = simulate(params, schedule, times_h=TIMES, outputs=outputs)
    weight = float(params.weight_kg[0])
    iv = _cumulative_iv_mg(schedule, weight, TIMES)
    if schedule.oral_doses:
        entered, in_gut = _oral_input_mg(schedule, params, TIMES)
        iv = iv + float(params.oral.bioavailability[0]) * (entered - in_gut)
    total = prof.amount_in_body_mg[0] + prof.amount_eliminated_mg[0]
    scale = schedule.total_dose_mg(weight_kg=weight)
    assert_allclose(total, iv, rtol=PROPERTY_RTOL, atol=PROPERTY_RTOL * scale)


@given(params=subjects(), schedule=schedules())
def test_concentrations_and_amounts_are_never_negative(params, schedule):
    """No output drops below zero beyond rounding (PROPERTY_RTOL of its largest value)."""
    prof = simulate(params, schedule, times_h=TIMES, outputs=_outputs_for(params))
    for name, curve in prof.curves().items():
        assert np.all(curve >= -PROPERTY_RTOL * np.max(np.abs(curve))), name


@given(params=subjects(), a=schedules(), b=schedules())
def test_superposition(params, a, b):
    """The response to schedule A + B is the sum of the responses to A and to B."""
    outputs = _outputs_for(params)
    both = simulate(params, a + b, times_h=TIMES, outputs=outputs).curves()
    only_a = simulate(params, a, times_h=TIMES, outputs=outputs).curves()
    only_b = simulate(params, b, times_h=TIMES, outputs=outputs).curves()
    for name, curve in both.items():
        summed = only_a[name] + only_b[name]
        assert_allclose(
            curve,
            summed,
            rtol=PROPERTY_RTOL,
            atol=PROPERTY_RTOL * np.max(summed),
            err_msg=name,
        )


def _scaled(schedule: Schedule, factor: float) -> Schedule:
    doses = []
    for d in schedule.doses:
        if isinstance(d, Infusion):
            doses.append(
                Infusion(
                    start_h=d.start_h,
                    duration_h=d.duration_h,
                    rate_mg_per_h=None if d.rate_mg_per_h is None else d.rate_mg_per_h * factor,
                    rate_mg_per_kg_h=None
                    if d.rate_mg_per_kg_h is None
                    else d.rate_mg_per_kg_h * factor,
                )
            )
        else:
            doses.append(
                type(d)(
                    time_h=d.time_h,
                    dose_mg=None if d.dose_mg is None else d.dose_mg * factor,
                    dose_mg_per_kg=None if d.dose_mg_per_kg is None else d.dose_mg_per_kg * factor,
                )
            )
    return Schedule.of(doses)


@given(params=subjects(), schedule=schedules(), factor=st.floats(0.05, 2.0))
def test_response_is_linear_in_dose(params, schedule, factor):
    """Multiplying every dose by a factor multiplies every output by it."""
    outputs = _outputs_for(params)
    base = simulate(params, schedule, times_h=TIMES, outputs=outputs).curves()
    scaled = simulate(params, _scaled(schedule, factor), times_h=TIMES, outputs=outputs).curves()
    for name, curve in base.items():
        assert_allclose(
            scaled[name],
            factor * curve,
            rtol=PROPERTY_RTOL,
            atol=PROPERTY_RTOL * factor * np.max(np.abs(curve)),
            err_msg=name,
        )


@given(
    params=subjects(),
    schedule=schedules(),
    shift=st.integers(-200 * 16, 200 * 16).map(lambda k: k / 16),
)
def test_time_shift_invariance(params, schedule, shift):
    """Shifting the schedule and the output times by the same amount changes nothing."""
    outputs = _outputs_for(params)
    base = simulate(params, schedule, times_h=TIMES, outputs=outputs).curves()
    moved = simulate(params, schedule.shift(shift), times_h=TIMES + shift, outputs=outputs).curves()
    for name, curve in base.items():
        assert_allclose(
            moved[name],
            curve,
            rtol=PROPERTY_RTOL,
            atol=PROPERTY_RTOL * np.max(np.abs(curve)),
            err_msg=name,
        )


def _slowest_rate_per_h(params: PKParameters) -> float:
    """Smallest |eigenvalue| of the parent and metabolite disposition, from the flows."""
    cl, v1 = float(params.cl_l_per_h[0]), float(params.v1_l[0])
    peripherals = [
        (float(q[0]), float(v[0]))
        for q, v in ((params.q2_l_per_h, params.v2_l), (params.q3_l_per_h, params.v3_l))
        if q is not None and v is not None
    ]
    k = np.zeros((1 + len(peripherals),) * 2)
    k[0, 0] = -cl / v1
    for j, (q, v) in enumerate(peripherals, start=1):
        k[0, 0] -= q / v1
        k[j, 0], k[0, j], k[j, j] = q / v1, q / v, -q / v
    rates = list(np.abs(np.linalg.eigvals(k)))
    if params.ke0_per_h is not None:
        rates.append(float(params.ke0_per_h[0]))
    met = params.metabolite
    if met is not None:
        mk = -float(met.cl_l_per_h[0] / met.v1_l[0])
        if met.q2_l_per_h is not None and met.v2_l is not None:
            mq, mv1, mv2 = float(met.q2_l_per_h[0]), float(met.v1_l[0]), float(met.v2_l[0])
            m = np.array([[mk - mq / mv1, mq / mv2], [mq / mv1, -mq / mv2]])
            rates.extend(np.abs(np.linalg.eigvals(m)))
        else:
            rates.append(-mk)
    return float(min(rates))


def _assert_steady_state(params: PKParameters, rate_mg_per_kg_h: float) -> None:
    duration = 60.0 / _slowest_rate_per_h(params)  # e^-60: any transient is gone
    schedule = Schedule.of(
        Infusion(start_h=0.0, duration_h=duration, rate_mg_per_kg_h=rate_mg_per_kg_h)
    )
    prof = simulate(params, schedule, times_h=np.array([duration]))
    rate_mg_per_h = rate_mg_per_kg_h * params.weight_kg
    expected = 1000.0 * rate_mg_per_h / params.cl_l_per_h
    assert_allclose(prof.ketamine_plasma_ng_per_ml[:, 0], expected, rtol=PROPERTY_RTOL)
    if prof.ketamine_effect_site_ng_per_ml is not None:
        assert_allclose(prof.ketamine_effect_site_ng_per_ml[:, 0], expected, rtol=PROPERTY_RTOL)
    met = params.metabolite
    if met is not None:
        formed = rate_mg_per_h * met.fraction_formed * met.molar_mass_ratio
        assert_allclose(
            prof.norketamine_plasma_ng_per_ml[:, 0],
            1000.0 * formed / met.cl_l_per_h,
            rtol=PROPERTY_RTOL,
        )


@given(params=subjects(oral=False), rate=st.floats(0.01, 3.0))
def test_steady_state_is_rate_over_clearance(params, rate):
    """A long infusion reaches rate/CL (metabolite: fm x MW ratio x rate / CL_m)."""
    assume(60.0 / _slowest_rate_per_h(params) < 40_000.0)
    _assert_steady_state(params, rate)


@pytest.mark.parametrize("name", [m.name for m in list_models()])
def test_published_models_reach_rate_over_clearance(name):
    """Every registered model's steady state at 0.5 mg/kg/h is rate/CL."""
    params = get_model(name).parameters(Covariates.single(weight_kg=70.0), warn=False)
    _assert_steady_state(params, 0.5)


def test_degenerate_model_reaches_rate_over_clearance():
    """The matrix-exponential path is exact over very long intervals too."""
    params = _one_compartment(cl=20.0, v1=40.0, ke0=0.5, met_cl=5.0, met_v1=10.0)
    assert _uses_fallback(params, default_outputs(params), with_oral=False)
    _assert_steady_state(params, 0.4)


# --- behaviour and errors ----------------------------------------------------------------


def test_system_is_at_rest_before_the_first_dose():
    """Outputs before the first dose are exactly zero."""
    params = get_model("domino").parameters(Covariates.single(weight_kg=70.0))
    schedule = Schedule.of(Infusion(start_h=5.0, duration_h=1.0, rate_mg_per_kg_h=0.5))
    prof = simulate(params, schedule, times_h=np.array([0.0, 2.0, 5.0, 5.5]))
    for name, curve in prof.curves().items():
        assert np.all(curve[0, :3] == 0.0), name
        assert curve[0, 3] > 0.0, name


def test_empty_schedule_gives_zero():
    """No doses, no drug."""
    params = get_model("domino").parameters(Covariates.single(weight_kg=70.0))
    times = np.linspace(0.0, 10.0, 5)
    prof = simulate(params, Schedule(), times_h=times)
    for name, curve in prof.curves().items():
        assert curve.shape == (1, times.size), name
        assert np.all(curve == 0.0), name


@pytest.mark.parametrize(
    ("schedule", "expected_ng_per_ml"),
    [(Schedule(), 0.0), (Schedule.of(Bolus(time_h=3.0, dose_mg=8.0)), 200.0)],
    ids=["no dose", "bolus at the output time"],
)
def test_a_single_output_time_at_the_only_event(schedule, expected_ng_per_ml):
    """One output time and no other breakpoint: no dose gives 0, a bolus gives dose/V1."""
    params = _one_compartment(cl=20.0, v1=40.0)
    prof = simulate(params, schedule, times_h=np.array([3.0]))
    assert_allclose(prof.ketamine_plasma_ng_per_ml, [[expected_ng_per_ml]], rtol=1e-12)


def test_profile_shapes_percentiles_and_curves():
    """Profile arrays are (N, T); percentiles are taken over subjects and named _pNN."""
    cov = Covariates.repeat(weight_kg=70.0, n=7)
    etas = {"cl": np.linspace(-0.5, 0.5, 7)}
    params = get_model("domino-cl79").parameters(cov, etas=etas)
    times = np.linspace(0.0, 10.0, 11)
    prof = simulate(params, MIXED_SCHEDULE, times_h=times)
    assert prof.n_subjects == 7
    assert set(prof.curves()) == {
        "ketamine_plasma_ng_per_ml",
        "ketamine_effect_site_ng_per_ml",
        "norketamine_plasma_ng_per_ml",
    }
    assert prof.amount_in_body_mg is None
    assert prof.ketamine_plasma_ng_per_ml.shape == (7, 11)
    pct = prof.percentiles((5.0, 50.0, 95.0))
    assert "ketamine_plasma_ng_per_ml_p05" in pct
    assert_allclose(
        pct["ketamine_plasma_ng_per_ml_p50"],
        np.median(prof.ketamine_plasma_ng_per_ml, axis=0),
        rtol=1e-12,
    )
    assert_allclose(
        pct["norketamine_plasma_ng_per_ml_p95"],
        np.percentile(prof.norketamine_plasma_ng_per_ml, 95.0, axis=0),
        rtol=1e-12,
    )


def test_default_outputs_follow_the_model():
    """Effect site only with ke0; metabolite only with a metabolite block."""
    bare = _one_compartment(cl=20.0, v1=40.0)
    assert default_outputs(bare) == (Output.KETAMINE_PLASMA,)
    full = _one_compartment(cl=20.0, v1=40.0, ke0=1.0, met_cl=10.0)
    assert default_outputs(full) == (
        Output.KETAMINE_PLASMA,
        Output.KETAMINE_EFFECT_SITE,
        Output.METABOLITE_PLASMA,
    )


@pytest.mark.parametrize(
    ("times", "match"),
    [
        (np.array([0.0, 2.0, 1.0]), "times_h must be strictly increasing"),
        (np.array([0.0, 1.0, 1.0]), "times_h must be strictly increasing"),
        (np.array([]), "times_h must be a non-empty"),
        (np.array([0.0, np.nan]), "times_h must be finite"),
        (np.zeros((2, 2)), "times_h must be a non-empty one-dimensional"),
    ],
)
def test_bad_output_times_are_rejected(times, match):
    """Output times must be a finite, strictly increasing 1-D array."""
    params = _one_compartment(cl=20.0, v1=40.0)
    with pytest.raises(InvalidValueError, match=match):
        simulate(params, MIXED_SCHEDULE, times_h=times)


def test_outputs_the_model_lacks_are_rejected():
    """Asking for an effect site, metabolite or oral route the model lacks names the field."""
    bare = _one_compartment(cl=20.0, v1=40.0)
    iv = Schedule.of(Bolus(time_h=0.0, dose_mg=10.0))
    with pytest.raises(InvalidValueError, match=r"^outputs must be without the effect site"):
        simulate(bare, iv, times_h=TIMES, outputs=(Output.KETAMINE_EFFECT_SITE,))
    with pytest.raises(InvalidValueError, match=r"^outputs must be without a metabolite"):
        simulate(bare, iv, times_h=TIMES, outputs=(Output.METABOLITE_PLASMA,))
    with pytest.raises(InvalidValueError, match=r"^route must be iv_bolus or iv_infusion") as err:
        simulate(bare, Schedule.of(OralDose(time_h=0.0, dose_mg=10.0)), times_h=TIMES)
    assert err.value.value == "oral"


def test_absolute_doses_are_checked_against_the_lightest_subject():
    """An absolute dose above the per-kg limit for the lightest subject is refused."""
    cov = Covariates(
        weight_kg=np.array([80.0, 10.0]), female=np.zeros(2, dtype=bool), age_y=np.full(2, 5.0)
    )
    params = get_model("herd-2007").parameters(cov, warn=False)
    ok = Schedule.of(Bolus(time_h=0.0, dose_mg=45.0))  # 4.5 mg/kg at 10 kg: the limit
    simulate(params, ok, times_h=TIMES)
    too_much = Schedule.of(
        Infusion(start_h=0.0, duration_h=1.0, rate_mg_per_h=1.0), Bolus(time_h=1.0, dose_mg=46.0)
    )
    with pytest.raises(InvalidValueError) as err:
        simulate(params, too_much, times_h=TIMES)
    message = str(err.value)
    assert err.value.field == "doses[1]"
    assert "at most 4.5 mg_per_kg" in message
    assert "10 kg" in message
    assert "46.0" in message
