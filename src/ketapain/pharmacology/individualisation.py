"""One patient's sensitivity to ketamine from their own scores, and the next session's rate.

Model
-----
Olofsen 2022 found that acute antinociception and the psychedelic (dissociative) effect of
ketamine share one PD: a sigmoid Emax on the S-ketamine effect-site concentration Ce
(population C50 0.51 nmol/mL = 121 ng/mL, t1/2ke0 8.3 min; :mod:`.pd.acute`). Every PK
model carries that effect compartment, and racemic models count their S share of it.

A patient's sensitivity is estimated separately for relief and for side effects, as
``eta = ln(C50_i / C50_pop)`` with prior ``N(0, omega^2)``. The observations are

* relief fractions ``y = 1 - NRS_now / NRS_before_infusion`` (negative when pain rose;
  :func:`relief_fraction`), and
* side-effect fractions ``y = CADSS-6 total / 24`` (Rodrigues 2021: six items scored
  0-4; :func:`cadss6_fraction`),

each predicted by ``f(Ce) = emax * Ce^g / (C50_i^g + Ce^g)`` with an additive normal
residual of SD ``sigma``. The maximum a posteriori (MAP) estimate minimises

    J(eta) = sum((y - f(Ce; eta))^2) / sigma^2 + eta^2 / omega^2

over ``eta`` in [-4, 4]: a vectorised grid picks the start, then a safeguarded Newton
iteration (analytic derivatives; Gauss-Newton curvature where the Newton curvature is not
positive; steps capped at 1 and halved until J falls) runs to ``|step| < 1e-8``, at most
50 iterations. With no observations the estimate is the prior. The posterior SD is the
Laplace approximation with the Gauss-Newton curvature,
``sd = (sum(f'(eta)^2) / sigma^2 + 1 / omega^2)^(-1/2)``.

Numbers and assumptions (all parameters of :class:`SensitivityPrior`)
---------------------------------------------------------------------
* ``omega = ln(21.2 / 4.37) / (2 * 1.959964) = 0.403`` (:data:`DEFAULT_OMEGA`): a
  *derivation*, not a published inter-individual variability. It is the log-scale SD
  implied by the 95% CI (4.37-21.2 ng/mL) of the only published ketamine chronic-pain
  C50 (Dahan 2011, 10.5 ng/mL, the sustained layer). That interval describes the
  uncertainty of the population value, borrowed here as the scale of individual spread.
* ``sigma = 0.15`` for relief (:data:`DEFAULT_SIGMA_RELIEF`): an assumption. Half of the
  30% (about 2-point) NRS change that Farrar 2001 found clinically important, so that
  score-to-score noise is taken as smaller than a change a patient would call an
  improvement.
* ``sigma = 0.15`` for side effects (:data:`DEFAULT_SIGMA_SIDE_EFFECTS`): an assumption
  (3.6 of 24 CADSS-6 points).
* ``emax`` for relief is the acute model's ``emax_relief``; for side effects it is 1, an
  assumption that the full dissociative effect is the top CADSS-6 score.

Rate
----
PK is linear in the infusion rate, so a constant rate R (mg/kg/h) for a session ends at
``Ce = R * c_unit``, where ``c_unit`` is the S-ketamine effect-site concentration per
1 mg/kg/h (:func:`unit_rate_concentration`). :func:`suggest_rate` inverts the Emax for the
rate that reaches the target relief with the patient's C50, and for the highest rate that
keeps predicted side effects at the caller's ceiling, and suggests the lowest of those and
the caller's maximum (never above the maximum, never below the minimum).

Examples
--------
>>> prior = SensitivityPrior.from_acute(AcuteEffectModel(), endpoint="relief")
>>> est = fit_sensitivity([40.0, 80.0, 120.0, 150.0], [0.15, 0.28, 0.38, 0.42], prior=prior)
>>> round(est.c50_ng_per_ml), est.converged
(164, True)
>>> round(est.sd, 2)
0.26
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike

from ketapain.errors import InvalidValueError
from ketapain.pharmacology._types import FloatArray
from ketapain.pharmacology._validate import finite_in_range
from ketapain.pharmacology.covariates import Covariates, Sex
from ketapain.pharmacology.model import PKModel
from ketapain.pharmacology.pd.acute import ACUTE_C50_NG_PER_ML, AcuteEffectModel
from ketapain.pharmacology.pd.emax import check_gamma, check_positive
from ketapain.pharmacology.schedules import DOSE_LIMITS, Infusion, Route, Schedule
from ketapain.pharmacology.simulation import Output, simulate
from ketapain.sources import DAHAN_2011, FARRAR_2001, OLOFSEN_2022, RODRIGUES_2021

__all__ = [
    "CADSS6_MAX_TOTAL",
    "DEFAULT_OMEGA",
    "DEFAULT_SIGMA_RELIEF",
    "DEFAULT_SIGMA_SIDE_EFFECTS",
    "ETA_BOUND",
    "RODRIGUES_2021",
    "SOURCES",
    "Endpoint",
    "RateBound",
    "RateSuggestion",
    "SensitivityEstimate",
    "SensitivityPrior",
    "cadss6_fraction",
    "fit_sensitivity",
    "relief_fraction",
    "suggest_rate",
    "unit_rate_concentration",
]

_DAHAN_C50_CI: Final = DAHAN_2011.at(
    "abstract: C50 10.5 ng/mL, 95% CI 4.37-21.2; omega = ln(21.2/4.37)/(2 x 1.96) = 0.403 "
    "[computed; a CI of the population value, not a published IIV]"
)
_FARRAR_MCID: Final = FARRAR_2001.at(
    "abstract: about 30% (2 points) is clinically important; sigma 0.15 = half of it [assumption]"
)
SOURCES: Final = (OLOFSEN_2022, _DAHAN_C50_CI, _FARRAR_MCID, RODRIGUES_2021)

# Dahan 2011: C50 of chronic-pain relief 10.5 ng/mL S-ketamine, 95% CI 4.37-21.2 ng/mL.
_DAHAN_C50_CI_NG_PER_ML: Final = (4.37, 21.2)
_Z95: Final = NormalDist().inv_cdf(0.975)
#: Prior SD of eta, derived from Dahan 2011's CI (see module docstring); about 0.403.
DEFAULT_OMEGA: Final = math.log(_DAHAN_C50_CI_NG_PER_ML[1] / _DAHAN_C50_CI_NG_PER_ML[0]) / (
    2.0 * _Z95
)
DEFAULT_SIGMA_RELIEF: Final = 0.15  # assumption: half the 30% difference of Farrar 2001
DEFAULT_SIGMA_SIDE_EFFECTS: Final = 0.15  # assumption
DEFAULT_EMAX_SIDE_EFFECTS: Final = 1.0  # assumption: full effect = top CADSS-6 score
CADSS6_MAX_TOTAL: Final = 24  # Rodrigues 2021: six items scored 0-4
ETA_BOUND: Final = 4.0  # numerical safeguard: C50 within 55x of the population either way
# Settings of the iteration (numerical, not clinical).
_TOLERANCE: Final = 1e-8
_MAX_ITERATIONS: Final = 50
_MAX_STEP: Final = 1.0
_GRID: Final = np.linspace(-ETA_BOUND, ETA_BOUND, 33)


class Endpoint(StrEnum):
    """What a score measures; each has its own sensitivity."""

    RELIEF = "relief"
    SIDE_EFFECTS = "side_effects"

    @property
    def observed_range(self) -> tuple[float, float]:
        """Allowed observed fractions: relief -1 to 1, side effects 0 to 1."""
        return (-1.0, 1.0) if self is Endpoint.RELIEF else (0.0, 1.0)


class RateBound(StrEnum):
    """What decided a suggested rate."""

    TARGET = "target"
    SIDE_EFFECTS = "side_effects"
    LIMIT = "limit"


def relief_fraction(*, nrs_before: ArrayLike, nrs_now: ArrayLike) -> FloatArray:
    """Relief ``1 - nrs_now / nrs_before`` on the 0-10 NRS, floored at -1.

    A rise of more than 100% counts as -1 so that one flare cannot outweigh every other
    score under the normal residual.

    >>> relief_fraction(nrs_before=8, nrs_now=[6, 8, 10]).tolist()
    [0.25, 0.0, -0.25]
    """
    before = np.asarray(nrs_before, dtype=float)
    now = np.asarray(nrs_now, dtype=float)
    if np.any(~np.isfinite(before) | (before <= 0) | (before > 10)):
        raise InvalidValueError("nrs_before", "greater than 0 and at most 10", nrs_before)
    if np.any(~np.isfinite(now) | (now < 0) | (now > 10)):
        raise InvalidValueError("nrs_now", "between 0 and 10", nrs_now)
    return np.asarray(np.maximum(1.0 - now / before, -1.0), dtype=float)


def cadss6_fraction(total: ArrayLike) -> FloatArray:
    """Side-effect fraction ``CADSS-6 total / 24`` (Rodrigues 2021).

    >>> cadss6_fraction([0, 6, 24]).tolist()
    [0.0, 0.25, 1.0]
    """
    arr = np.asarray(total, dtype=float)
    if np.any(~np.isfinite(arr) | (arr < 0) | (arr > CADSS6_MAX_TOTAL)):
        raise InvalidValueError("cadss6_total", f"between 0 and {CADSS6_MAX_TOTAL}", total)
    return np.asarray(arr / CADSS6_MAX_TOTAL, dtype=float)


def _endpoint(value: object) -> Endpoint:
    for member in Endpoint:
        if value == member:  # a StrEnum equals its text
            return member
    raise InvalidValueError("endpoint", "'relief' or 'side_effects'", value)


@dataclass(frozen=True, slots=True, kw_only=True)
class SensitivityPrior:
    """Population PD and prior of one endpoint's sensitivity (see module docstring)."""

    endpoint: Endpoint
    sigma: float
    c50_ng_per_ml: float = ACUTE_C50_NG_PER_ML
    gamma: float = 1.0
    emax: float = 1.0
    omega: float = DEFAULT_OMEGA

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoint", _endpoint(self.endpoint))
        check_positive("c50_ng_per_ml", self.c50_ng_per_ml, high=1.0e5)
        check_gamma("gamma", self.gamma)
        finite_in_range("emax", self.emax, low=0.0, high=1.0, low_inclusive=False)
        finite_in_range("omega", self.omega, low=0.0, high=10.0, low_inclusive=False)
        finite_in_range("sigma", self.sigma, low=0.0, high=2.0, low_inclusive=False)

    @classmethod
    def from_acute(
        cls,
        model: AcuteEffectModel,
        *,
        endpoint: Endpoint | str = Endpoint.RELIEF,
        sigma: float | None = None,
        omega: float = DEFAULT_OMEGA,
    ) -> SensitivityPrior:
        """The prior for ``endpoint`` from the acute model's C50, gamma and Emax.

        ``sigma`` defaults to :data:`DEFAULT_SIGMA_RELIEF` or
        :data:`DEFAULT_SIGMA_SIDE_EFFECTS`.
        """
        kind = _endpoint(endpoint)
        relief = kind is Endpoint.RELIEF
        default_sigma = DEFAULT_SIGMA_RELIEF if relief else DEFAULT_SIGMA_SIDE_EFFECTS
        return cls(
            endpoint=kind,
            sigma=default_sigma if sigma is None else sigma,
            c50_ng_per_ml=model.c50_ng_per_ml,
            gamma=model.gamma,
            emax=model.emax_relief if relief else DEFAULT_EMAX_SIDE_EFFECTS,
            omega=omega,
        )

    def effect(self, conc_ng_per_ml: ArrayLike, *, eta: float = 0.0) -> FloatArray:
        """Predicted fraction at S-ketamine effect-site ``conc_ng_per_ml`` for ``eta``."""
        conc = np.maximum(np.asarray(conc_ng_per_ml, dtype=float), 0.0)
        ratio = (conc / self.c50_ng_per_ml) ** self.gamma
        return np.asarray(self.emax * ratio / (math.exp(self.gamma * eta) + ratio), dtype=float)

    def conc_for(self, fraction: float, *, eta: float) -> float:
        """Ce (ng/mL) at which the effect reaches ``fraction``; inf at or above Emax."""
        if fraction >= self.emax:
            return math.inf
        odds = fraction / (self.emax - fraction)
        return self.c50_ng_per_ml * math.exp(eta) * math.pow(odds, 1.0 / self.gamma)


@dataclass(frozen=True, slots=True, kw_only=True)
class SensitivityEstimate:
    """MAP estimate of one endpoint's ``eta = ln(C50_i / C50_pop)`` and its Laplace SD."""

    prior: SensitivityPrior
    eta: float
    sd: float
    n_observations: int
    iterations: int
    converged: bool

    @property
    def c50_ng_per_ml(self) -> float:
        """The patient's C50 (S-ketamine effect site, ng/mL)."""
        return self.prior.c50_ng_per_ml * math.exp(self.eta)

    def effect(self, conc_ng_per_ml: ArrayLike) -> FloatArray:
        """Predicted fraction at ``conc_ng_per_ml`` with the patient's C50."""
        return self.prior.effect(conc_ng_per_ml, eta=self.eta)

    def band(self, conc_ng_per_ml: ArrayLike, level: float = 0.90) -> tuple[FloatArray, FloatArray]:
        """Low and high predicted fraction for ``eta +- z sd`` (z = 1.645 at 0.90).

        The band is of the expected effect (uncertainty of the C50), not of one score.
        """
        z = _z(level)
        low = self.prior.effect(conc_ng_per_ml, eta=self.eta + z * self.sd)
        high = self.prior.effect(conc_ng_per_ml, eta=self.eta - z * self.sd)
        return low, high

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON, with the works cited."""
        z = _z(0.90)
        p = self.prior
        return {
            "endpoint": p.endpoint.value,
            "eta": self.eta,
            "sd": self.sd,
            "c50_ng_per_ml": self.c50_ng_per_ml,
            "c50_band_90_ng_per_ml": [
                p.c50_ng_per_ml * math.exp(self.eta - z * self.sd),
                p.c50_ng_per_ml * math.exp(self.eta + z * self.sd),
            ],
            "n_observations": self.n_observations,
            "iterations": self.iterations,
            "converged": self.converged,
            "prior": {
                "c50_ng_per_ml": p.c50_ng_per_ml,
                "gamma": p.gamma,
                "emax": p.emax,
                "omega": p.omega,
                "sigma": p.sigma,
            },
            "sources": [s.as_dict() for s in SOURCES],
        }


def _z(level: float) -> float:
    finite_in_range("level", level, low=0.0, high=0.999999, low_inclusive=False)
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def _observations(
    conc_ng_per_ml: ArrayLike, observed: ArrayLike, endpoint: Endpoint
) -> tuple[FloatArray, FloatArray]:
    conc = np.asarray(conc_ng_per_ml, dtype=float).ravel()
    y = np.asarray(observed, dtype=float).ravel()
    if conc.shape != y.shape:
        raise InvalidValueError("observed", f"{conc.size} values, one per concentration", y.size)
    if np.any(~np.isfinite(conc) | (conc < 0) | (conc > 1.0e5)):
        raise InvalidValueError("conc_ng_per_ml", "between 0 and 100000", conc_ng_per_ml)
    low, high = endpoint.observed_range
    if np.any(~np.isfinite(y) | (y < low) | (y > high)):
        raise InvalidValueError(f"observed ({endpoint.value})", f"between {low:g} and 1", observed)
    return conc, y


def _terms(
    eta: float, ratio: FloatArray, y: FloatArray, p: SensitivityPrior
) -> tuple[float, float, float, float]:
    """J, dJ/deta, the Newton and the Gauss-Newton d2J/deta2 at ``eta``."""
    s = ratio / (math.exp(p.gamma * eta) + ratio)  # f / emax
    res = y - p.emax * s
    d1 = -p.gamma * p.emax * s * (1.0 - s)  # df/deta
    d2 = -p.gamma * (1.0 - 2.0 * s) * d1  # d2f/deta2
    w, w0 = 1.0 / p.sigma**2, 1.0 / p.omega**2
    objective = w * float(res @ res) + w0 * eta * eta
    gradient = -2.0 * w * float(res @ d1) + 2.0 * w0 * eta
    gauss_newton = 2.0 * w * float(d1 @ d1) + 2.0 * w0
    return objective, gradient, gauss_newton - 2.0 * w * float(res @ d2), gauss_newton


def fit_sensitivity(
    conc_ng_per_ml: ArrayLike, observed: ArrayLike, *, prior: SensitivityPrior
) -> SensitivityEstimate:
    """MAP estimate of the patient's sensitivity from paired concentrations and scores.

    Parameters
    ----------
    conc_ng_per_ml : array_like, shape (n,)
        S-ketamine effect-site concentration at each score, ng/mL (>= 0).
    observed : array_like, shape (n,)
        Relief fractions (-1 to 1) or side-effect fractions (0 to 1), as ``prior.endpoint``.
    prior : SensitivityPrior
        Population PD, prior SD ``omega`` and residual SD ``sigma``.

    Returns
    -------
    SensitivityEstimate
        ``eta``, its posterior SD and the patient's C50; the prior when n = 0.

    Examples
    --------
    >>> prior = SensitivityPrior.from_acute(AcuteEffectModel(), endpoint="side_effects")
    >>> fit_sensitivity([], [], prior=prior).eta
    0.0
    >>> est = fit_sensitivity([100.0, 140.0], [0.60, 0.70], prior=prior)
    >>> est.eta < 0  # more dissociation than the population: a lower C50
    True
    """
    conc, y = _observations(conc_ng_per_ml, observed, prior.endpoint)
    if conc.size == 0:
        return SensitivityEstimate(
            prior=prior, eta=0.0, sd=prior.omega, n_observations=0, iterations=0, converged=True
        )
    ratio = (conc / prior.c50_ng_per_ml) ** prior.gamma
    # Start from the best of a coarse grid, so that a local minimum cannot trap the search.
    s_grid = ratio / (np.exp(prior.gamma * _GRID)[:, None] + ratio)
    res = y - prior.emax * s_grid
    j_grid = np.einsum("ij,ij->i", res, res) / prior.sigma**2 + (_GRID / prior.omega) ** 2
    eta = float(_GRID[int(np.argmin(j_grid))])
    objective, gradient, newton, gauss_newton = _terms(eta, ratio, y, prior)
    converged, iterations = False, 0
    while iterations < _MAX_ITERATIONS and not converged:
        iterations += 1
        curvature = newton if newton > 0.0 else gauss_newton
        step = max(-_MAX_STEP, min(_MAX_STEP, -gradient / curvature))
        trial = max(-ETA_BOUND, min(ETA_BOUND, eta + step))
        for _ in range(60):
            values = _terms(trial, ratio, y, prior)
            if values[0] <= objective:
                break
            trial = eta + 0.5 * (trial - eta)
        else:
            trial, values = eta, (objective, gradient, newton, gauss_newton)
        converged = abs(trial - eta) < _TOLERANCE
        eta, (objective, gradient, newton, gauss_newton) = trial, values
    return SensitivityEstimate(
        prior=prior,
        eta=eta,
        sd=math.sqrt(2.0 / gauss_newton),
        n_observations=int(conc.size),
        iterations=iterations,
        converged=converged,
    )


def unit_rate_concentration(
    model: PKModel, *, weight_kg: float, sex: Sex | str, age_y: float, duration_h: float
) -> float:
    """S-ketamine effect-site concentration (ng/mL) at the end of ``duration_h`` at 1 mg/kg/h.

    Concentrations are linear in the rate, so ``rate * c_unit`` is the end-of-session Ce.

    >>> from ketapain.pharmacology import get_model
    >>> round(unit_rate_concentration(get_model("domino-cl79"), weight_kg=70, sex="male",
    ...                               age_y=40, duration_h=4), 1)
    313.3
    """
    if model.ke0_per_h is None:
        raise InvalidValueError("model", "a model with an effect compartment (ke0)", model.name)
    params = model.parameters(Covariates.single(weight_kg=weight_kg, sex=sex, age_y=age_y))
    schedule = Schedule.of(Infusion(start_h=0.0, duration_h=duration_h, rate_mg_per_kg_h=1.0))
    times = np.array([float(duration_h)])
    prof = simulate(params, schedule, times_h=times, outputs=(Output.KETAMINE_EFFECT_SITE,))
    effect = prof.ketamine_effect_site_ng_per_ml
    if effect is None:  # requested above; the engine always returns it
        raise InvalidValueError("model", "a model with an effect compartment (ke0)", model.name)
    return float(model.s_fraction * effect[0, 0])


@dataclass(frozen=True, slots=True, kw_only=True)
class RateSuggestion:
    """The next session's rate and what it is predicted to do (fractions, with bands).

    ``target_rate_mg_per_kg_h`` is None when the target is at or above Emax (unreachable
    at any rate); ``side_effect_rate_mg_per_kg_h`` is None when the ceiling is never
    reached. ``target_reachable`` says the target rate is within ``max_rate_mg_per_kg_h``
    (the side-effect ceiling may still stop short of it: see ``decided_by``).
    ``within_side_effect_ceiling`` is False only when ``min_rate_mg_per_kg_h`` forced the
    rate above the side-effect rate. Bands hold ``level`` of the C50's posterior.
    """

    rate_mg_per_kg_h: float
    decided_by: RateBound
    target_reachable: bool
    target_rate_mg_per_kg_h: float | None
    side_effect_rate_mg_per_kg_h: float | None
    s_effect_site_ng_per_ml: float
    relief: float
    relief_band: tuple[float, float]
    side_effects: float
    side_effects_band: tuple[float, float]
    within_side_effect_ceiling: bool
    target_relief: float
    side_effect_ceiling: float
    max_rate_mg_per_kg_h: float
    min_rate_mg_per_kg_h: float
    level: float

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON, with the works cited."""
        out: dict[str, Any] = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["decided_by"] = self.decided_by.value
        out["relief_band"] = list(self.relief_band)
        out["side_effects_band"] = list(self.side_effects_band)
        out["sources"] = [s.as_dict() for s in SOURCES]
        return out


def suggest_rate(
    *,
    relief: SensitivityEstimate,
    side_effects: SensitivityEstimate,
    c_unit_ng_per_ml_per_mg_per_kg_h: float,
    target_relief: float,
    side_effect_ceiling: float,
    max_rate_mg_per_kg_h: float,
    min_rate_mg_per_kg_h: float = 0.0,
    level: float = 0.90,
) -> RateSuggestion:
    """The rate reaching ``target_relief``, kept under the side-effect ceiling and the limits.

    Parameters
    ----------
    relief, side_effects : SensitivityEstimate
        The patient's fitted sensitivities (endpoints relief and side effects).
    c_unit_ng_per_ml_per_mg_per_kg_h : float
        End-of-session S-ketamine effect-site concentration per 1 mg/kg/h
        (:func:`unit_rate_concentration`).
    target_relief : float
        Relief fraction wanted, in (0, 1), e.g. 0.30.
    side_effect_ceiling : float
        Highest acceptable side-effect fraction, in (0, 1]; a clinical choice, no default.
    max_rate_mg_per_kg_h, min_rate_mg_per_kg_h : float
        The caller's limits; the suggestion never leaves them.
    level : float
        Probability of the bands on the predictions (eta +- z sd).

    Examples
    --------
    >>> acute = AcuteEffectModel()
    >>> r = fit_sensitivity([], [], prior=SensitivityPrior.from_acute(acute))
    >>> s = fit_sensitivity([], [], prior=SensitivityPrior.from_acute(acute,
    ...                                                               endpoint="side_effects"))
    >>> out = suggest_rate(relief=r, side_effects=s, c_unit_ng_per_ml_per_mg_per_kg_h=313.3,
    ...                    target_relief=0.30, side_effect_ceiling=0.25, max_rate_mg_per_kg_h=0.5)
    >>> round(out.rate_mg_per_kg_h, 3), out.decided_by.value, round(out.relief, 2)
    (0.129, 'side_effects', 0.25)
    """
    _check_endpoint("relief", relief, Endpoint.RELIEF)
    _check_endpoint("side_effects", side_effects, Endpoint.SIDE_EFFECTS)
    c_unit = finite_in_range(
        "c_unit_ng_per_ml_per_mg_per_kg_h",
        c_unit_ng_per_ml_per_mg_per_kg_h,
        low=0.0,
        high=1.0e6,
        low_inclusive=False,
    )
    target = finite_in_range(
        "target_relief", target_relief, low=0.0, high=0.999999, low_inclusive=False
    )
    ceiling = finite_in_range(
        "side_effect_ceiling", side_effect_ceiling, low=0.0, high=1.0, low_inclusive=False
    )
    engine_max = DOSE_LIMITS[Route.IV_INFUSION].max_per_kg
    max_rate = finite_in_range(
        "max_rate_mg_per_kg_h", max_rate_mg_per_kg_h, low=0.0, high=engine_max, low_inclusive=False
    )
    min_rate = finite_in_range("min_rate_mg_per_kg_h", min_rate_mg_per_kg_h, low=0.0, high=max_rate)
    z = _z(level)
    target_rate = relief.prior.conc_for(target, eta=relief.eta) / c_unit
    side_rate = side_effects.prior.conc_for(ceiling, eta=side_effects.eta) / c_unit
    rate, decided_by = min(
        (target_rate, RateBound.TARGET),
        (side_rate, RateBound.SIDE_EFFECTS),
        (max_rate, RateBound.LIMIT),
        key=lambda pair: pair[0],
    )
    if rate < min_rate:
        rate, decided_by = min_rate, RateBound.LIMIT
    ce = rate * c_unit
    return RateSuggestion(
        rate_mg_per_kg_h=rate,
        decided_by=decided_by,
        target_reachable=target_rate <= max_rate,
        target_rate_mg_per_kg_h=None if math.isinf(target_rate) else target_rate,
        side_effect_rate_mg_per_kg_h=None if math.isinf(side_rate) else side_rate,
        s_effect_site_ng_per_ml=ce,
        relief=float(relief.effect(ce)),
        relief_band=_band(relief, ce, z),
        side_effects=float(side_effects.effect(ce)),
        side_effects_band=_band(side_effects, ce, z),
        within_side_effect_ceiling=rate <= side_rate,
        target_relief=target,
        side_effect_ceiling=ceiling,
        max_rate_mg_per_kg_h=max_rate,
        min_rate_mg_per_kg_h=min_rate,
        level=level,
    )


def _check_endpoint(field: str, estimate: SensitivityEstimate, endpoint: Endpoint) -> None:
    if estimate.prior.endpoint is not endpoint:
        raise InvalidValueError(field, f"an estimate of {endpoint.value}", estimate.prior.endpoint)


def _band(estimate: SensitivityEstimate, conc_ng_per_ml: float, z: float) -> tuple[float, float]:
    p, eta, sd = estimate.prior, estimate.eta, estimate.sd
    low = float(p.effect(conc_ng_per_ml, eta=eta + z * sd))
    high = float(p.effect(conc_ng_per_ml, eta=eta - z * sd))
    return low, high
