"""Fixtures for the pharmacology tests: an independent ODE solution and random cases.

The reference solution integrates the compartment equations written out by hand, flow by
flow, with ``scipy.integrate.solve_ivp`` (LSODA with the exact Jacobian, rtol 1e-10, atol
1e-12 on amounts), piece by piece between the times at which an input changes. It shares
nothing with the engine but the parameter and schedule values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from ketapain.pharmacology.parameters import (
    MetaboliteParameters,
    OralParameters,
    PKParameters,
)
from ketapain.pharmacology.schedules import Bolus, Infusion, OralDose, Schedule
from ketapain.units import KETAMINE_MW_G_PER_MOL, NORKETAMINE_MW_G_PER_MOL

RTOL = 1e-10
ATOL_MG = 1e-12

# State layout of the reference: amounts in mg except the effect site (mg/L).
_A1, _A2, _A3, _GUT, _CE, _M1, _M2, _ELIM = range(8)


@dataclass(frozen=True)
class _Subject:
    """One subject's parameters as plain floats; absent compartments have no flow."""

    weight_kg: float
    cl: float
    v1: float
    q2: float
    v2: float
    q3: float
    v3: float
    ke0: float
    ka: float
    f: float
    fp: float
    zero_order_h: float
    mcl: float
    mv1: float
    mq2: float
    mv2: float
    fm: float
    mmr: float


def _subject(params: PKParameters, i: int) -> _Subject:
    def at(value: np.ndarray | None, default: float) -> float:
        return default if value is None else float(value[i])

    oral, met = params.oral, params.metabolite
    return _Subject(
        weight_kg=float(params.weight_kg[i]),
        cl=float(params.cl_l_per_h[i]),
        v1=float(params.v1_l[i]),
        q2=at(params.q2_l_per_h, 0.0),
        v2=at(params.v2_l, 1.0),
        q3=at(params.q3_l_per_h, 0.0),
        v3=at(params.v3_l, 1.0),
        ke0=at(params.ke0_per_h, 0.0),
        ka=at(oral.ka_per_h if oral else None, 0.0),
        f=at(oral.bioavailability if oral else None, 0.0),
        fp=at(oral.first_pass_metabolite_fraction if oral else None, 0.0),
        zero_order_h=oral.zero_order_h if oral else 0.0,
        mcl=at(met.cl_l_per_h if met else None, 0.0),
        mv1=at(met.v1_l if met else None, 1.0),
        mq2=at(met.q2_l_per_h if met else None, 0.0),
        mv2=at(met.v2_l if met else None, 1.0),
        fm=at(met.fraction_formed if met else None, 0.0),
        mmr=met.molar_mass_ratio if met else 1.0,
    )


def _derivative(s: _Subject, x: np.ndarray, iv_mg_per_h: float, oral_mg_per_h: float):
    """Right-hand side written as mass flows (mg/h) between compartments."""
    c1, c2, c3 = x[_A1] / s.v1, x[_A2] / s.v2, x[_A3] / s.v3
    m1, m2 = x[_M1] / s.mv1, x[_M2] / s.mv2
    elimination = s.cl * c1
    to_p2 = s.q2 * (c1 - c2)
    to_p3 = s.q3 * (c1 - c3)
    absorption = s.ka * x[_GUT]
    met_out = s.mcl * m1
    met_to_p2 = s.mq2 * (m1 - m2)
    dx = np.empty(8)
    dx[_A1] = iv_mg_per_h - elimination - to_p2 - to_p3 + s.f * absorption
    dx[_A2] = to_p2
    dx[_A3] = to_p3
    dx[_GUT] = oral_mg_per_h - absorption
    dx[_CE] = s.ke0 * (c1 - x[_CE])
    dx[_M1] = s.mmr * (s.fm * elimination + s.fp * absorption) - met_out - met_to_p2
    dx[_M2] = met_to_p2
    dx[_ELIM] = elimination
    return dx


def _jacobian(s: _Subject) -> np.ndarray:
    """Exact Jacobian of the linear right-hand side, one column per unit state."""
    return np.column_stack([_derivative(s, e, 0.0, 0.0) for e in np.eye(8)])


def _reference_one(s: _Subject, schedule: Schedule, times_h: np.ndarray) -> dict[str, np.ndarray]:
    segments: list[tuple[float, float, str, float]] = []  # start, end, route, mg/h
    jumps: list[tuple[float, int, float]] = []  # time, state, mg
    for dose in schedule.doses:
        if isinstance(dose, Infusion):
            segments.append((dose.start_h, dose.end_h, "iv", dose.rate_for(s.weight_kg)))
        elif isinstance(dose, Bolus):
            jumps.append((dose.time_h, _A1, dose.amount_mg(s.weight_kg)))
        elif isinstance(dose, OralDose):
            amount = dose.amount_mg(s.weight_kg)
            if s.zero_order_h > 0:
                end = dose.time_h + s.zero_order_h
                segments.append((dose.time_h, end, "oral", amount / s.zero_order_h))
            else:
                jumps.append((dose.time_h, _GUT, amount))
    edges = [t for seg in segments for t in seg[:2]] + [j[0] for j in jumps]
    breaks = np.unique(np.concatenate([times_h, np.asarray(edges, dtype=float)]))
    jac = _jacobian(s)
    x = np.zeros(8)
    states = {}
    wanted = set(times_h.tolist())
    for k, t in enumerate(breaks):
        for time, state, amount in jumps:
            if time == t:
                x[state] += amount
        if t in wanted:
            states[t] = x.copy()
        if k + 1 == breaks.size:
            break
        t_next = breaks[k + 1]
        mid = 0.5 * (t + t_next)
        iv = sum(r for a, b, route, r in segments if route == "iv" and a <= mid < b)
        oral = sum(r for a, b, route, r in segments if route == "oral" and a <= mid < b)
        forcing = _derivative(s, np.zeros(8), iv, oral)
        sol = solve_ivp(
            lambda _t, y, forcing=forcing: jac @ y + forcing,
            (t, t_next),
            x,
            method="LSODA",
            jac=lambda _t, _y: jac,
            rtol=RTOL,
            atol=ATOL_MG,
        )
        assert sol.success, sol.message
        x = sol.y[:, -1]
    xs = np.array([states[t] for t in times_h.tolist()])
    return {
        "ketamine_plasma_ng_per_ml": 1000.0 * xs[:, _A1] / s.v1,
        "ketamine_effect_site_ng_per_ml": 1000.0 * xs[:, _CE],
        "norketamine_plasma_ng_per_ml": 1000.0 * xs[:, _M1] / s.mv1,
        "amount_in_body_mg": xs[:, _A1] + xs[:, _A2] + xs[:, _A3],
        "amount_eliminated_mg": xs[:, _ELIM],
    }


def reference_solution(
    params: PKParameters, schedule: Schedule, times_h: np.ndarray
) -> dict[str, np.ndarray]:
    """Return every output of every subject, shape (N, T), from the independent solver."""
    rows = [
        _reference_one(_subject(params, i), schedule, np.asarray(times_h, dtype=float))
        for i in range(params.n_subjects)
    ]
    return {name: np.array([row[name] for row in rows]) for name in rows[0]}


def _loguniform(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(low), np.log(high), n))


def random_parameters(
    rng: np.random.Generator,
    *,
    n_subjects: int,
    n_compartments: int,
    effect_site: bool,
    oral: bool,
    metabolite: bool,
) -> PKParameters:
    """Return random but physiologically plausible parameters, built field by field."""
    n = n_subjects

    def lu(low: float, high: float) -> np.ndarray:
        return _loguniform(rng, low, high, n)

    oral_block = None
    if oral:
        f = rng.uniform(0.05, 0.9, n)
        oral_block = OralParameters(
            ka_per_h=lu(0.3, 4.0),
            bioavailability=f,
            first_pass_metabolite_fraction=rng.uniform(0.0, 1.0, n) * (1.0 - f),
            zero_order_h=float(rng.choice([0.0, 0.32, 1.5])),
        )
    met_block = None
    if metabolite:
        peripheral = bool(rng.integers(2))
        met_block = MetaboliteParameters(
            cl_l_per_h=lu(10.0, 120.0),
            v1_l=lu(1.0, 150.0),
            fraction_formed=rng.uniform(0.2, 1.0, n),
            molar_mass_ratio=float(
                rng.choice([1.0, NORKETAMINE_MW_G_PER_MOL / KETAMINE_MW_G_PER_MOL])
            ),
            q2_l_per_h=lu(5.0, 80.0) if peripheral else None,
            v2_l=lu(20.0, 300.0) if peripheral else None,
        )
    return PKParameters(
        weight_kg=rng.uniform(45.0, 110.0, n),
        cl_l_per_h=lu(20.0, 150.0),
        v1_l=lu(4.0, 120.0),
        q2_l_per_h=lu(10.0, 250.0) if n_compartments >= 2 else None,
        v2_l=lu(10.0, 400.0) if n_compartments >= 2 else None,
        q3_l_per_h=lu(2.0, 80.0) if n_compartments >= 3 else None,
        v3_l=lu(50.0, 600.0) if n_compartments >= 3 else None,
        ke0_per_h=lu(0.5, 30.0) if effect_site else None,
        oral=oral_block,
        metabolite=met_block,
    )


def random_schedule(rng: np.random.Generator, *, days: int, oral: bool) -> Schedule:
    """Return a random multi-day schedule: boluses, overlapping infusions, oral doses.

    Each dose is per kilogram or absolute at random; amounts stay within the engine's
    limits for any subject of 45 kg or more.
    """
    doses: list[Bolus | Infusion | OralDose] = []
    for day in range(days):
        t0 = 24.0 * day
        for _ in range(rng.integers(1, 3)):
            start = t0 + rng.uniform(0.0, 16.0)
            duration = rng.uniform(0.25, 10.0)
            if rng.integers(2):
                doses.append(
                    Infusion(
                        start_h=start, duration_h=duration, rate_mg_per_kg_h=rng.uniform(0.05, 1.5)
                    )
                )
            else:
                doses.append(
                    Infusion(start_h=start, duration_h=duration, rate_mg_per_h=rng.uniform(5, 100))
                )
        for _ in range(rng.integers(0, 3)):
            time = t0 + rng.uniform(0.0, 23.0)
            if rng.integers(2):
                doses.append(Bolus(time_h=time, dose_mg_per_kg=rng.uniform(0.05, 1.0)))
            else:
                doses.append(Bolus(time_h=time, dose_mg=rng.uniform(5.0, 60.0)))
        if oral:
            for _ in range(rng.integers(1, 4)):
                time = t0 + rng.uniform(0.0, 23.0)
                if rng.integers(2):
                    doses.append(OralDose(time_h=time, dose_mg_per_kg=rng.uniform(0.25, 2.0)))
                else:
                    doses.append(OralDose(time_h=time, dose_mg=rng.uniform(20.0, 150.0)))
    return Schedule.of(doses)


@pytest.fixture(scope="session")
def reference() -> Callable[[PKParameters, Schedule, np.ndarray], dict[str, np.ndarray]]:
    """The independent ODE solution, as a function (params, schedule, times_h) -> outputs."""
    return reference_solution


@pytest.fixture(scope="session")
def make_parameters() -> Callable[..., PKParameters]:
    """Random parameters from a generator, see :func:`random_parameters`."""
    return random_parameters


@pytest.fixture(scope="session")
def make_schedule() -> Callable[..., Schedule]:
    """Random multi-day schedules from a generator, see :func:`random_schedule`."""
    return random_schedule
