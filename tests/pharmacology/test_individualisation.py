"""Tests of ketapain.pharmacology.individualisation: MAP sensitivity and the suggested rate."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy.optimize import minimize_scalar

from ketapain.errors import InvalidValueError
from ketapain.pharmacology import Covariates, Infusion, Output, Schedule, get_model, simulate
from ketapain.pharmacology.individualisation import (
    CADSS6_MAX_TOTAL,
    DEFAULT_OMEGA,
    DEFAULT_SIGMA_RELIEF,
    DEFAULT_SIGMA_SIDE_EFFECTS,
    ETA_BOUND,
    Endpoint,
    RateBound,
    SensitivityEstimate,
    SensitivityPrior,
    cadss6_fraction,
    fit_sensitivity,
    relief_fraction,
    suggest_rate,
    unit_rate_concentration,
)
from ketapain.pharmacology.pd.acute import ACUTE_C50_NG_PER_ML, AcuteEffectModel
from ketapain.pharmacology.pd.emax import sigmoid_emax

ACUTE = AcuteEffectModel()
RELIEF = SensitivityPrior.from_acute(ACUTE, endpoint=Endpoint.RELIEF)
SIDE = SensitivityPrior.from_acute(ACUTE, endpoint=Endpoint.SIDE_EFFECTS)
SEED = 2022


def _sessions(rng: np.random.Generator, n_sessions: int = 3, per_session: int = 4) -> np.ndarray:
    """S-ketamine effect-site concentrations (ng/mL) of scores over a few sessions."""
    return np.concatenate(
        [np.sort(rng.uniform(20.0, 150.0, per_session)) for _ in range(n_sessions)]
    )


def _synthetic(prior: SensitivityPrior, eta_true: float, seed: int = SEED, noise: float = 0.05):
    """Scores from a known sensitivity with normal noise, kept in the endpoint's range."""
    rng = np.random.default_rng(seed)
    conc = _sessions(rng)
    y = prior.effect(conc, eta=eta_true) + rng.normal(0.0, noise, conc.size)
    low, high = prior.endpoint.observed_range
    return conc, np.clip(y, low, high)


def _objective(eta: float, conc: np.ndarray, y: np.ndarray, p: SensitivityPrior) -> float:
    """J(eta) written from the module docstring, independently of the fit's code."""
    c50 = p.c50_ng_per_ml * math.exp(eta)
    f = p.emax * conc**p.gamma / (c50**p.gamma + conc**p.gamma)
    return float(np.sum((y - f) ** 2) / p.sigma**2 + eta**2 / p.omega**2)


def _estimate(prior: SensitivityPrior, eta: float, sd: float = 0.2) -> SensitivityEstimate:
    return SensitivityEstimate(
        prior=prior, eta=eta, sd=sd, n_observations=10, iterations=4, converged=True
    )


# --- prior ---------------------------------------------------------------------------------


def test_default_omega_is_derived_from_the_dahan_2011_c50_interval():
    """omega = ln(21.2 / 4.37) / (2 x 1.959964) = 0.4029 (Dahan 2011 95% CI; rtol 1e-6)."""
    assert_allclose(DEFAULT_OMEGA, math.log(21.2 / 4.37) / (2 * 1.959964), rtol=1e-6)
    assert_allclose(DEFAULT_OMEGA, 0.4029, atol=1e-4)


def test_prior_from_the_acute_model_uses_olofsen_c50_and_the_default_sigmas():
    """C50 121 ng/mL, gamma and Emax from the acute model; sigma 0.15 for both endpoints."""
    assert RELIEF.c50_ng_per_ml == SIDE.c50_ng_per_ml == ACUTE_C50_NG_PER_ML
    assert RELIEF.sigma == DEFAULT_SIGMA_RELIEF == 0.15
    assert SIDE.sigma == DEFAULT_SIGMA_SIDE_EFFECTS == 0.15
    assert RELIEF.omega == SIDE.omega == DEFAULT_OMEGA
    model = AcuteEffectModel(emax_relief=0.7, gamma=1.5)
    prior = SensitivityPrior.from_acute(model, sigma=0.1, omega=0.5)
    assert (prior.emax, prior.gamma, prior.sigma, prior.omega) == (0.7, 1.5, 0.1, 0.5)
    assert SensitivityPrior.from_acute(model, endpoint="side_effects").emax == 1.0
    assert SensitivityPrior(endpoint="relief", sigma=0.1).endpoint is Endpoint.RELIEF


def test_prior_effect_is_the_sigmoid_emax_at_the_individual_c50():
    """f(C; eta) = emax x sigmoid_emax(C, C50 e^eta, gamma) (rtol 1e-12)."""
    prior = SensitivityPrior(endpoint=Endpoint.RELIEF, sigma=0.1, gamma=2.0, emax=0.8)
    conc = np.array([0.0, 30.0, 121.0, 400.0])
    for eta in (-1.0, 0.0, 0.7):
        expected = 0.8 * sigmoid_emax(
            conc, c50_ng_per_ml=prior.c50_ng_per_ml * math.exp(eta), gamma=2.0
        )
        assert_allclose(prior.effect(conc, eta=eta), expected, rtol=1e-12, atol=1e-15)


# --- the MAP fit ---------------------------------------------------------------------------


def test_no_observations_give_the_prior():
    """With no scores the estimate is eta 0, SD omega and the population C50."""
    est = fit_sensitivity([], [], prior=RELIEF)
    assert (est.eta, est.sd, est.n_observations, est.iterations) == (0.0, DEFAULT_OMEGA, 0, 0)
    assert est.converged
    assert est.c50_ng_per_ml == ACUTE_C50_NG_PER_ML


@pytest.mark.parametrize("endpoint", list(Endpoint))
@pytest.mark.parametrize("c50_factor", [2.0, 0.5])
def test_map_recovers_a_known_sensitivity(endpoint, c50_factor):
    """12 scores (3 sessions, Ce 20-150 ng/mL, noise SD 0.05, seed 2022) recover ln(C50):
    |eta_hat - eta_true| < 0.2, and the truth lies within 3 posterior SDs."""
    prior = SensitivityPrior.from_acute(ACUTE, endpoint=endpoint, sigma=0.05)
    eta_true = math.log(c50_factor)
    conc, y = _synthetic(prior, eta_true)
    est = fit_sensitivity(conc, y, prior=prior)
    assert est.converged
    assert abs(est.eta - eta_true) < 0.2
    assert abs(est.eta - eta_true) < 3 * est.sd
    assert_allclose(est.c50_ng_per_ml, ACUTE_C50_NG_PER_ML * math.exp(est.eta), rtol=1e-12)


def test_posterior_sd_shrinks_as_scores_are_added():
    """The posterior SD falls from omega as 4, 8 and 12 scores come in (true C50 2x)."""
    prior = SensitivityPrior.from_acute(ACUTE, sigma=0.05)
    conc, y = _synthetic(prior, math.log(2.0))
    sds = [fit_sensitivity(conc[:n], y[:n], prior=prior).sd for n in (0, 4, 8, 12)]
    assert sds[0] == DEFAULT_OMEGA
    assert np.all(np.diff(sds) < 0)


@pytest.mark.parametrize("case", range(12))
def test_map_agrees_with_a_generic_minimiser(case):
    """Same objective minimised by scipy's bounded Brent (xatol 1e-12): |d eta| < 1e-6,
    over random data, gamma 0.7-2.5, Emax 0.6-1, sigma 0.05-0.3 and true eta -1.5-1.5."""
    rng = np.random.default_rng(SEED + case)
    endpoint = Endpoint.RELIEF if case % 2 else Endpoint.SIDE_EFFECTS
    prior = SensitivityPrior(
        endpoint=endpoint,
        sigma=float(rng.uniform(0.05, 0.3)),
        gamma=float(rng.uniform(0.7, 2.5)),
        emax=float(rng.uniform(0.6, 1.0)),
    )
    n = int(rng.integers(1, 21))
    conc = rng.uniform(0.0, 250.0, n)
    y = prior.effect(conc, eta=float(rng.uniform(-1.5, 1.5))) + rng.normal(0.0, prior.sigma, n)
    y = np.clip(y, *endpoint.observed_range)
    est = fit_sensitivity(conc, y, prior=prior)
    ref = minimize_scalar(
        _objective,
        bounds=(-ETA_BOUND, ETA_BOUND),
        args=(conc, y, prior),
        method="bounded",
        options={"xatol": 1e-12},
    )
    assert est.converged and est.iterations <= 20
    assert abs(est.eta - ref.x) < 1e-6
    assert _objective(est.eta, conc, y, prior) <= ref.fun + 1e-9


def test_posterior_sd_is_the_gauss_newton_laplace_sd():
    """sd = (sum f'^2 / sigma^2 + 1 / omega^2)^-1/2 with f' by central differences (rtol 1e-6)."""
    conc, y = _synthetic(RELIEF, 0.4)
    est = fit_sensitivity(conc, y, prior=RELIEF)
    h = 1e-5
    slope = (RELIEF.effect(conc, eta=est.eta + h) - RELIEF.effect(conc, eta=est.eta - h)) / (2 * h)
    info = float(np.sum(slope**2)) / RELIEF.sigma**2 + 1.0 / RELIEF.omega**2
    assert_allclose(est.sd, info**-0.5, rtol=1e-6)


def test_map_is_a_stationary_point_of_the_objective():
    """dJ/deta at the estimate is ~0 by central differences (|dJ| < 1e-5)."""
    conc, y = _synthetic(SIDE, -0.5)
    est = fit_sensitivity(conc, y, prior=SIDE)
    h = 1e-6
    slope = (_objective(est.eta + h, conc, y, SIDE) - _objective(est.eta - h, conc, y, SIDE)) / (
        2 * h
    )
    assert abs(slope) < 1e-5


def test_band_is_the_effect_at_eta_plus_minus_z_sd():
    """The 90% band is f at eta -+ 1.6449 sd (rtol 1e-12); low <= estimate <= high."""
    est = _estimate(RELIEF, 0.3, sd=0.25)
    conc = np.array([20.0, 80.0, 150.0])
    low, high = est.band(conc)
    assert_allclose(low, RELIEF.effect(conc, eta=0.3 + 1.6448536269514722 * 0.25), rtol=1e-12)
    assert_allclose(high, RELIEF.effect(conc, eta=0.3 - 1.6448536269514722 * 0.25), rtol=1e-12)
    assert np.all((low <= est.effect(conc)) & (est.effect(conc) <= high))


def test_estimate_as_dict_is_json_ready_and_cites_its_sources():
    """as_dict() dumps to JSON and names Olofsen 2022, Dahan 2011, Farrar 2001, Rodrigues 2021."""
    conc, y = _synthetic(RELIEF, 0.2)
    data = json.loads(json.dumps(fit_sensitivity(conc, y, prior=RELIEF).as_dict()))
    assert data["endpoint"] == "relief" and data["n_observations"] == 12
    low, high = data["c50_band_90_ng_per_ml"]
    assert low < data["c50_ng_per_ml"] < high
    cited = " ".join(s["citation"] for s in data["sources"])
    for name in ("Olofsen", "Dahan", "Farrar", "Rodrigues"):
        assert name in cited


# --- observations --------------------------------------------------------------------------


def test_relief_fraction_and_cadss6_fraction():
    """Relief 1 - now/before floored at -1; CADSS-6 total / 24 (Rodrigues 2021)."""
    assert_allclose(relief_fraction(nrs_before=8, nrs_now=[0, 4, 8, 10]), [1.0, 0.5, 0.0, -0.25])
    assert_allclose(relief_fraction(nrs_before=2, nrs_now=[10]), [-1.0])
    assert CADSS6_MAX_TOTAL == 24
    assert_allclose(cadss6_fraction([0, 3, 12, 24]), [0.0, 0.125, 0.5, 1.0])


# --- the rate ------------------------------------------------------------------------------


def test_unit_rate_concentration_approaches_steady_state_s_rate_over_cl():
    """After 400 h at 1 mg/kg/h, Ce_S = s x rate x weight / CL (domino-cl79, 70 kg: CL 79
    L/h, S share 0.462; rtol 1e-3)."""
    model = get_model("domino-cl79")
    got = unit_rate_concentration(model, weight_kg=70, sex="male", age_y=40, duration_h=400)
    assert_allclose(got, model.s_fraction * 70.0 / 79.0 * 1000.0, rtol=1e-3)


@pytest.mark.parametrize("name", ["domino-cl79", "flint-fanta-s"])
def test_concentration_is_the_unit_value_times_the_rate(name):
    """Ce_S at the end of 4 h at 0.35 mg/kg/h = 0.35 x c_unit (linear PK; rtol 1e-10)."""
    model = get_model(name)
    c_unit = unit_rate_concentration(model, weight_kg=82, sex="female", age_y=55, duration_h=4)
    params = model.parameters(Covariates.single(weight_kg=82, sex="female", age_y=55))
    sched = Schedule.of(Infusion(start_h=0, duration_h=4, rate_mg_per_kg_h=0.35))
    prof = simulate(params, sched, times_h=np.array([4.0]), outputs=(Output.KETAMINE_EFFECT_SITE,))
    assert_allclose(
        model.s_fraction * prof.ketamine_effect_site_ng_per_ml[0, 0], 0.35 * c_unit, rtol=1e-10
    )


def _suggest(relief_eta=0.0, side_eta=0.0, **kwargs):
    values = {
        "c_unit_ng_per_ml_per_mg_per_kg_h": 300.0,
        "target_relief": 0.30,
        "side_effect_ceiling": 0.5,
        "max_rate_mg_per_kg_h": 0.5,
    } | kwargs
    return suggest_rate(
        relief=_estimate(RELIEF, relief_eta), side_effects=_estimate(SIDE, side_eta), **values
    )


def test_target_decides_and_is_predicted_exactly():
    """When the target binds, relief at the suggested rate is the target (rtol 1e-12)."""
    out = _suggest()
    assert out.decided_by == RateBound.TARGET == "target"
    assert out.target_reachable and out.within_side_effect_ceiling
    assert_allclose(out.relief, 0.30, rtol=1e-12)
    # Population C50 121 ng/mL, gamma 1: Ce = 121.24 x 0.3 / 0.7 = 51.96 ng/mL at 300 per unit.
    assert_allclose(out.rate_mg_per_kg_h, ACUTE_C50_NG_PER_ML * 0.3 / 0.7 / 300.0, rtol=1e-12)
    assert out.relief_band[0] < out.relief < out.relief_band[1]


def test_side_effect_ceiling_decides_when_it_binds_first():
    """A ceiling below the target's side effects sets the rate; side effects = ceiling."""
    out = _suggest(side_eta=-0.5, side_effect_ceiling=0.25)
    assert out.decided_by == RateBound.SIDE_EFFECTS == "side_effects"
    assert out.rate_mg_per_kg_h == out.side_effect_rate_mg_per_kg_h
    assert_allclose(out.side_effects, 0.25, rtol=1e-12)
    assert out.relief < 0.30 and out.target_reachable


def test_limit_decides_when_the_target_needs_more_than_the_maximum():
    """An insensitive patient: rate = max, decided by the limit, target not reachable."""
    out = _suggest(relief_eta=2.0, max_rate_mg_per_kg_h=0.2, side_effect_ceiling=0.9)
    assert out.decided_by == RateBound.LIMIT == "limit"
    assert out.rate_mg_per_kg_h == 0.2 and not out.target_reachable


def test_target_at_or_above_emax_is_unreachable():
    """With Emax 0.6 a target of 0.7 has no rate: target rate None, not reachable."""
    prior = SensitivityPrior.from_acute(AcuteEffectModel(emax_relief=0.6))
    out = suggest_rate(
        relief=_estimate(prior, 0.0),
        side_effects=_estimate(SIDE, 0.0),
        c_unit_ng_per_ml_per_mg_per_kg_h=300.0,
        target_relief=0.7,
        side_effect_ceiling=0.4,
        max_rate_mg_per_kg_h=1.0,
    )
    assert out.target_rate_mg_per_kg_h is None and not out.target_reachable
    assert out.decided_by == RateBound.SIDE_EFFECTS
    assert json.loads(json.dumps(out.as_dict()))["target_rate_mg_per_kg_h"] is None


def test_minimum_rate_can_override_the_side_effect_ceiling_and_says_so():
    """A minimum above the side-effect rate is kept; the suggestion flags the ceiling."""
    out = _suggest(side_eta=-2.0, side_effect_ceiling=0.1, min_rate_mg_per_kg_h=0.2)
    assert out.rate_mg_per_kg_h == 0.2 and out.decided_by == RateBound.LIMIT
    assert not out.within_side_effect_ceiling and out.side_effects > 0.1


ETA = st.floats(-3.0, 3.0)


@given(
    relief_eta=ETA,
    side_eta=ETA,
    sd=st.floats(0.0, 1.0),
    c_unit=st.floats(1.0, 2000.0),
    target=st.floats(0.01, 0.99),
    ceiling=st.floats(0.01, 1.0),
    max_rate=st.floats(0.01, 5.0),
    min_share=st.floats(0.0, 1.0),
)
def test_suggested_rate_stays_within_the_limits(
    relief_eta, side_eta, sd, c_unit, target, ceiling, max_rate, min_share
):
    """min_rate <= rate <= max_rate always; bands bracket the predictions."""
    out = suggest_rate(
        relief=_estimate(RELIEF, relief_eta, sd),
        side_effects=_estimate(SIDE, side_eta, sd),
        c_unit_ng_per_ml_per_mg_per_kg_h=c_unit,
        target_relief=target,
        side_effect_ceiling=ceiling,
        max_rate_mg_per_kg_h=max_rate,
        min_rate_mg_per_kg_h=min_share * max_rate,
    )
    assert min_share * max_rate <= out.rate_mg_per_kg_h <= max_rate
    assert out.relief_band[0] <= out.relief <= out.relief_band[1]
    assert out.side_effects_band[0] <= out.side_effects <= out.side_effects_band[1]
    if out.decided_by == RateBound.SIDE_EFFECTS:
        assert_allclose(out.side_effects, ceiling, rtol=1e-9)


@given(eta=ETA, more_sensitive_by=st.floats(0.0, 2.0), target=st.floats(0.01, 0.99))
def test_a_more_sensitive_patient_gets_a_lower_or_equal_rate(eta, more_sensitive_by, target):
    """Lower relief C50: target rate and suggested rate are lower or equal."""
    base = _suggest(relief_eta=eta, target_relief=target, side_effect_ceiling=1.0)
    other = _suggest(
        relief_eta=eta - more_sensitive_by, target_relief=target, side_effect_ceiling=1.0
    )
    assert base.target_rate_mg_per_kg_h is not None and other.target_rate_mg_per_kg_h is not None
    assert other.target_rate_mg_per_kg_h <= base.target_rate_mg_per_kg_h
    assert other.rate_mg_per_kg_h <= base.rate_mg_per_kg_h


def test_rate_suggestion_as_dict_is_json_ready():
    """as_dict() dumps to JSON with the bound's name and the works cited."""
    data = json.loads(json.dumps(_suggest().as_dict()))
    assert data["decided_by"] == "target" and len(data["relief_band"]) == 2
    assert any("Olofsen" in s["citation"] for s in data["sources"])


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: fit_sensitivity([10.0, 20.0], [0.1], prior=RELIEF), "observed"),
        (lambda: fit_sensitivity([-1.0], [0.1], prior=RELIEF), "conc_ng_per_ml"),
        (lambda: fit_sensitivity([np.nan], [0.1], prior=RELIEF), "conc_ng_per_ml"),
        (lambda: fit_sensitivity([50.0], [1.5], prior=RELIEF), "observed (relief)"),
        (lambda: fit_sensitivity([50.0], [-0.1], prior=SIDE), "observed (side_effects)"),
        (lambda: SensitivityPrior(endpoint=Endpoint.RELIEF, sigma=0.0), "sigma"),
        (lambda: SensitivityPrior(endpoint=Endpoint.RELIEF, sigma=0.1, omega=-1.0), "omega"),
        (lambda: SensitivityPrior(endpoint=Endpoint.RELIEF, sigma=0.1, emax=1.2), "emax"),
        (lambda: SensitivityPrior(endpoint="pain", sigma=0.1), "endpoint"),
        (lambda: SensitivityPrior.from_acute(ACUTE, endpoint="pain"), "endpoint"),
        (lambda: _suggest(target_relief=0.0), "target_relief"),
        (lambda: _suggest(target_relief=1.0), "target_relief"),
        (lambda: _suggest(side_effect_ceiling=0.0), "side_effect_ceiling"),
        (lambda: _suggest(max_rate_mg_per_kg_h=0.0), "max_rate_mg_per_kg_h"),
        (lambda: _suggest(max_rate_mg_per_kg_h=100.0), "max_rate_mg_per_kg_h"),
        (lambda: _suggest(min_rate_mg_per_kg_h=0.6), "min_rate_mg_per_kg_h"),
        (
            lambda: _suggest(c_unit_ng_per_ml_per_mg_per_kg_h=0.0),
            "c_unit_ng_per_ml_per_mg_per_kg_h",
        ),
        (lambda: _suggest(level=1.0), "level"),
        (
            lambda: suggest_rate(
                relief=_estimate(SIDE, 0.0),
                side_effects=_estimate(SIDE, 0.0),
                c_unit_ng_per_ml_per_mg_per_kg_h=300.0,
                target_relief=0.3,
                side_effect_ceiling=0.5,
                max_rate_mg_per_kg_h=0.5,
            ),
            "relief",
        ),
        (lambda: relief_fraction(nrs_before=0, nrs_now=[3]), "nrs_before"),
        (lambda: relief_fraction(nrs_before=5, nrs_now=[11]), "nrs_now"),
        (lambda: cadss6_fraction([25]), "cadss6_total"),
        (
            lambda: unit_rate_concentration(
                get_model("domino-cl79"), weight_kg=70, sex="male", age_y=40, duration_h=0
            ),
            "duration_h",
        ),
    ],
)
def test_bad_input_raises_an_error_naming_the_field(call, field):
    """Each bad value raises InvalidValueError whose field and message name it."""
    with pytest.raises(InvalidValueError) as info:
        call()
    assert info.value.field == field
    assert str(info.value).startswith(f"{field} must be")
