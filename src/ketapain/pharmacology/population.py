"""Virtual populations: covariates and log-normal inter-individual variability.

Random numbers come from a seeded :class:`numpy.random.Generator`, drawn in a fixed
order, so the same seed gives the same population on any machine.

Examples
--------
>>> from ketapain.pharmacology.models import get_model
>>> pop = virtual_population(get_model("domino-cl79"), n=1000, seed=1)
>>> pop.parameters.n_subjects
1000
>>> bool(abs(np.median(pop.parameters.cl_l_per_h) / 79.0 - 1) < 0.1)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from ketapain.errors import InvalidValueError
from ketapain.pharmacology._types import FloatArray
from ketapain.pharmacology.covariates import Covariates
from ketapain.pharmacology.model import ETA_NAMES, PKModel
from ketapain.pharmacology.parameters import PKParameters
from ketapain.units import cv_to_log_sd

__all__ = [
    "CovariateDistribution",
    "VirtualPopulation",
    "sample_covariates",
    "sample_etas",
    "virtual_population",
]

MAX_SUBJECTS: Final = 10_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class CovariateDistribution:
    """How covariates of a virtual cohort are drawn.

    Weight is normal, clipped to ``weight_range_kg``; age is normal, clipped to
    ``age_range_y``; sex is Bernoulli with ``female_fraction``. The defaults describe an
    adult pain-clinic cohort and are configurable, not published values.
    """

    weight_mean_kg: float = 75.0
    weight_sd_kg: float = 12.0
    weight_range_kg: tuple[float, float] = (40.0, 150.0)
    age_mean_y: float = 45.0
    age_sd_y: float = 12.0
    age_range_y: tuple[float, float] = (18.0, 85.0)
    female_fraction: float = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualPopulation:
    """Covariates, random effects and the resulting parameters of a virtual cohort."""

    covariates: Covariates
    etas: dict[str, FloatArray]
    parameters: PKParameters


def sample_covariates(
    n: int, *, rng: np.random.Generator, distribution: CovariateDistribution | None = None
) -> Covariates:
    """Draw covariates of ``n`` subjects."""
    d = distribution or CovariateDistribution()
    _check_n(n)
    weight = np.clip(rng.normal(d.weight_mean_kg, d.weight_sd_kg, n), *d.weight_range_kg)
    age = np.clip(rng.normal(d.age_mean_y, d.age_sd_y, n), *d.age_range_y)
    female = rng.random(n) < d.female_fraction
    return Covariates(weight_kg=weight, female=female, age_y=age)


def sample_etas(model: PKModel, n: int, *, rng: np.random.Generator) -> dict[str, FloatArray]:
    """Draw log-normal random effects for every parameter with variability in ``model``.

    eta ~ N(0, omega^2) with omega^2 = ln(1 + CV^2); names are drawn in the fixed order of
    :data:`ETA_NAMES` so results do not depend on dictionary order.
    """
    _check_n(n)
    cv = model.variability
    return {
        name: rng.normal(0.0, float(cv_to_log_sd(cv[name])), n)
        for name in ETA_NAMES
        if cv.get(name, 0.0) > 0
    }


def virtual_population(
    model: PKModel,
    *,
    n: int,
    seed: int | np.random.Generator,
    covariates: Covariates | None = None,
    distribution: CovariateDistribution | None = None,
) -> VirtualPopulation:
    """Return ``n`` virtual subjects of ``model``.

    With ``covariates`` of one subject (or of ``n`` subjects), everyone shares (or has)
    those covariates and differs only by inter-individual variability; otherwise
    covariates are drawn from ``distribution``.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if covariates is None:
        covariates = sample_covariates(n, rng=rng, distribution=distribution)
    elif covariates.n_subjects == 1:
        covariates = covariates.take(np.zeros(n, dtype=np.intp))
    elif covariates.n_subjects != n:
        raise InvalidValueError("covariates", f"1 or {n} subjects", covariates.n_subjects)
    etas = sample_etas(model, n, rng=rng)
    return VirtualPopulation(
        covariates=covariates,
        etas=etas,
        parameters=model.parameters(covariates, etas=etas, warn=False),
    )


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SUBJECTS:
        raise InvalidValueError("n", f"an integer from 1 to {MAX_SUBJECTS}", n)
