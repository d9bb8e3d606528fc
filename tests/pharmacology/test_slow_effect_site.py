"""Tests of the slow (sustained-relief) effect compartment in the PK engine.

The reference integrates, with ``scipy.integrate.solve_ivp``, the compartment equations
written out here flow by flow (central, peripherals, fast and slow effect sites), piece
by piece between dose changes; it shares nothing with the engine but the parameter
values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.integrate import solve_ivp

from ketapain.errors import InvalidValueError
from ketapain.pharmacology.compartments import Output, build_system
from ketapain.pharmacology.covariates import Covariates
from ketapain.pharmacology.models import get_model
from ketapain.pharmacology.parameters import PKParameters
from ketapain.pharmacology.schedules import Bolus, Infusion, Schedule
from ketapain.pharmacology.simulation import default_outputs, simulate

SLOW_KE0 = math.log(2) / (10.9 * 24)  # Dahan 2011, 1/h
BOTH = (Output.KETAMINE_PLASMA, Output.KETAMINE_EFFECT_SITE, Output.KETAMINE_SLOW_EFFECT_SITE)


def _reference(params: PKParameters, schedule: Schedule, times: np.ndarray) -> np.ndarray:
    """Plasma, fast and slow effect-site ng/mL of subject 0, shape (3, T), by LSODA."""
    cl, v1 = float(params.cl_l_per_h[0]), float(params.v1_l[0])
    q2 = 0.0 if params.q2_l_per_h is None else float(params.q2_l_per_h[0])
    v2 = 1.0 if params.v2_l is None else float(params.v2_l[0])
    q3 = 0.0 if params.q3_l_per_h is None else float(params.q3_l_per_h[0])
    v3 = 1.0 if params.v3_l is None else float(params.v3_l[0])
    ke0 = 0.0 if params.ke0_per_h is None else float(params.ke0_per_h[0])
    slow = float(params.slow_ke0_per_h[0])
    w = float(params.weight_kg[0])

    def rhs(x: np.ndarray, rate: float) -> np.ndarray:
        c1, c2, c3 = x[0] / v1, x[1] / v2, x[2] / v3
        return np.array(
            [
                rate - cl * c1 - q2 * (c1 - c2) - q3 * (c1 - c3),
                q2 * (c1 - c2),
                q3 * (c1 - c3),
                ke0 * (c1 - x[3]),
                slow * (c1 - x[4]),
            ]
        )

    jac = np.column_stack([rhs(e, 0.0) for e in np.eye(5)])
    edges = [t for d in schedule.infusions for t in (d.start_h, d.end_h)]
    edges += [b.time_h for b in schedule.boluses]
    breaks = np.unique(np.concatenate([times, edges]))
    x = np.zeros(5)
    out = {}
    for k, t in enumerate(breaks):
        for b in schedule.boluses:
            if b.time_h == t:
                x[0] += b.amount_mg(w)
        out[t] = x.copy()
        if k + 1 == breaks.size:
            break
        mid = 0.5 * (t + breaks[k + 1])
        rate = sum(d.rate_for(w) for d in schedule.infusions if d.start_h <= mid < d.end_h)
        sol = solve_ivp(
            lambda _t, y, rate=rate: rhs(y, rate),
            (t, breaks[k + 1]),
            x,
            method="LSODA",
            jac=lambda _t, _y: jac,
            rtol=1e-10,
            atol=1e-12,
        )
        assert sol.success, sol.message
        x = sol.y[:, -1]
    xs = np.array([out[t] for t in times])
    return 1000.0 * np.array([xs[:, 0] / v1, xs[:, 3], xs[:, 4]])


def _params(model: str, slow_ke0: float) -> PKParameters:
    params = get_model(model).parameters(Covariates.single(weight_kg=70.0))
    return params.with_slow_effect_site(np.array([slow_ke0]))


@pytest.mark.parametrize(
    ("model", "slow_ke0"),
    [
        ("flint-fanta-s", SLOW_KE0),
        ("domino-cl79", SLOW_KE0),
        ("domino-cl79", 0.05),
        ("clements-250", 0.8),
    ],
)
def test_slow_effect_site_matches_an_independent_ode_solution(model, slow_ke0):
    """A 100-h infusion then 300 h washout: plasma, fast and slow sites match LSODA.

    Tolerance 1e-6 of each curve's peak: the reference is integrated with rtol 1e-10, and
    the engine is exact up to rounding.
    """
    params = _params(model, slow_ke0)
    schedule = Schedule.of(
        Bolus(time_h=0.0, dose_mg=20.0),
        Infusion(start_h=0.0, duration_h=100.0, rate_mg_per_h=20.0),
        Infusion(start_h=150.0, duration_h=4.0, rate_mg_per_kg_h=0.35),
    )
    times = np.linspace(0.0, 400.0, 161)
    prof = simulate(params, schedule, times_h=times, outputs=BOTH)
    want = _reference(params, schedule, times)
    got = (
        prof.ketamine_plasma_ng_per_ml[0],
        prof.ketamine_effect_site_ng_per_ml[0],
        prof.ketamine_slow_effect_site_ng_per_ml[0],
    )
    for name, g, r in zip(("plasma", "fast", "slow"), got, want, strict=True):
        assert_allclose(g, r, rtol=0, atol=1e-6 * np.max(np.abs(r)), err_msg=name)


def test_one_compartment_constant_infusion_matches_the_analytic_convolution():
    """Ce(t) = R/CL [1 - (ke0 e^-kt - k e^-ke0 t)/(ke0 - k)] for a constant infusion.

    Cp = R/CL (1 - e^-kt) convolved with ke0 e^-ke0 t; rtol 1e-9 (closed form, rounding).
    """
    cl, v, rate, ke0 = 60.0, 30.0, 15.0, 0.05
    k = cl / v
    one = np.ones(1)
    params = PKParameters(weight_kg=70 * one, cl_l_per_h=cl * one, v1_l=v * one)
    params = params.with_slow_effect_site(ke0)
    t = np.linspace(0.0, 200.0, 81)
    prof = simulate(
        params,
        Schedule.of(Infusion(start_h=0.0, duration_h=500.0, rate_mg_per_h=rate)),
        times_h=t,
        outputs=(Output.KETAMINE_SLOW_EFFECT_SITE,),
    )
    css = rate / cl * 1000.0
    want = css * (1.0 - (ke0 * np.exp(-k * t) - k * np.exp(-ke0 * t)) / (ke0 - k))
    assert_allclose(prof.ketamine_slow_effect_site_ng_per_ml[0], want, rtol=1e-9, atol=1e-12)


def test_slow_site_equal_to_fast_site_when_rates_are_equal():
    """slow ke0 = fast ke0 gives two identical curves (a defective system; rtol 1e-9)."""
    params = get_model("domino-cl79").parameters(Covariates.single(weight_kg=70.0))
    params = params.with_slow_effect_site(params.ke0_per_h)
    schedule = Schedule.of(Infusion(start_h=1.0, duration_h=4.0, rate_mg_per_kg_h=0.5))
    prof = simulate(params, schedule, times_h=np.linspace(0.0, 12.0, 49), outputs=BOTH)
    assert_allclose(
        prof.ketamine_slow_effect_site_ng_per_ml,
        prof.ketamine_effect_site_ng_per_ml,
        rtol=1e-9,
        atol=1e-9,
    )


def test_slow_site_lags_plasma_and_approaches_it():
    """During a long infusion the slow site rises below plasma; after it, it stays above."""
    params = _params("flint-fanta-s", 0.05)
    schedule = Schedule.of(Infusion(start_h=0.0, duration_h=200.0, rate_mg_per_h=10.0))
    t = np.array([10.0, 50.0, 199.0, 210.0, 300.0])
    prof = simulate(params, schedule, times_h=t, outputs=BOTH)
    cp = prof.ketamine_plasma_ng_per_ml[0]
    ce = prof.ketamine_slow_effect_site_ng_per_ml[0]
    assert np.all(ce[:3] < cp[:3])
    assert np.all(ce[3:] > cp[3:])
    assert ce[2] > 0.99 * cp[2]  # 1 - e^(-0.05 x 199) ~ 1


def test_slow_site_is_not_a_default_output():
    """default_outputs never adds the slow site: it must be asked for."""
    params = _params("flint-fanta-s", SLOW_KE0)
    assert Output.KETAMINE_SLOW_EFFECT_SITE not in default_outputs(params)
    prof = simulate(params, Schedule.of(Bolus(time_h=0.0, dose_mg=10.0)), times_h=np.ones(1))
    assert prof.ketamine_slow_effect_site_ng_per_ml is None


def test_requesting_the_slow_site_without_slow_ke0_is_an_error():
    """Output.KETAMINE_SLOW_EFFECT_SITE needs slow_ke0_per_h; the error names outputs."""
    params = get_model("domino-cl79").parameters(Covariates.single(weight_kg=70.0))
    assert params.slow_ke0_per_h is None
    schedule = Schedule.of(Bolus(time_h=0.0, dose_mg=10.0))
    with pytest.raises(InvalidValueError, match=r"^outputs must be without the slow effect site"):
        simulate(params, schedule, times_h=np.ones(1), outputs=(Output.KETAMINE_SLOW_EFFECT_SITE,))


def test_slow_site_state_is_appended_after_the_fast_site():
    """The system gains one state, named slow_effect_site, after the fast effect site."""
    params = _params("domino-cl79", SLOW_KE0)
    system = build_system(params, outputs=BOTH, with_oral=False)
    names = system.state_names
    assert names.index("slow_effect_site") == names.index("effect_site") + 1
    e = names.index("slow_effect_site")
    assert_allclose(system.a[0, e, e], -SLOW_KE0, rtol=1e-15)


def test_with_slow_effect_site_broadcasts_one_value_to_every_subject():
    """A scalar slow ke0 is copied to every subject; the original parameters are unchanged."""
    params = get_model("domino-cl79").parameters(
        Covariates(
            weight_kg=np.array([60.0, 80.0]),
            female=np.array([False, True]),
            age_y=np.array([40.0, 50.0]),
        )
    )
    slow = params.with_slow_effect_site(0.01)
    assert slow.slow_ke0_per_h.tolist() == [0.01, 0.01]
    assert slow.slow_ke0_per_h.flags.writeable
    assert params.slow_ke0_per_h is None


def test_take_keeps_the_slow_ke0_of_the_selected_subjects():
    """PKParameters.take slices slow_ke0_per_h like every other per-subject field."""
    params = get_model("domino-cl79").parameters(
        Covariates(
            weight_kg=np.array([60.0, 70.0, 80.0]),
            female=np.zeros(3, dtype=bool),
            age_y=np.full(3, 40.0),
        )
    )
    params = params.with_slow_effect_site(np.array([0.01, 0.02, 0.03]))
    assert params.take(np.array([2, 0])).slow_ke0_per_h.tolist() == [0.03, 0.01]
    assert params.take(slice(1, 2)).slow_ke0_per_h.tolist() == [0.02]


def test_slow_site_per_subject_rates_match_single_subject_runs():
    """Two subjects with different slow ke0 each match their own one-subject run (rtol 1e-12)."""
    base = get_model("domino-cl79").parameters(
        Covariates(
            weight_kg=np.array([70.0, 70.0]),
            female=np.zeros(2, dtype=bool),
            age_y=np.full(2, 40.0),
        )
    )
    params = base.with_slow_effect_site(np.array([0.01, 0.2]))
    schedule = Schedule.of(Infusion(start_h=0.0, duration_h=24.0, rate_mg_per_h=20.0))
    t = np.linspace(0.0, 96.0, 25)
    out = (Output.KETAMINE_SLOW_EFFECT_SITE,)
    both = simulate(params, schedule, times_h=t, outputs=out).ketamine_slow_effect_site_ng_per_ml
    for i in range(2):
        one = simulate(params.take(np.array([i])), schedule, times_h=t, outputs=out)
        assert_allclose(both[i], one.ketamine_slow_effect_site_ng_per_ml[0], rtol=1e-12)
    assert both[0, 4] < both[1, 4]  # faster equilibration, higher early level


@pytest.mark.parametrize("value", [0.0, -0.01, np.nan, 2.0e5])
def test_invalid_slow_ke0_names_the_field(value):
    """Non-positive, non-finite or implausible slow ke0 raises naming slow_ke0_per_h."""
    params = get_model("domino-cl79").parameters(Covariates.single(weight_kg=70.0))
    with pytest.raises(InvalidValueError, match=r"^slow_ke0_per_h must be"):
        params.with_slow_effect_site(np.array([value]))
