"""Tests of virtual populations (ketapain.pharmacology.population)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from ketapain.errors import InvalidValueError
from ketapain.pharmacology import Covariates, get_model, set_variability
from ketapain.pharmacology.population import (
    CovariateDistribution,
    sample_covariates,
    sample_etas,
    virtual_population,
)


def test_same_seed_same_population() -> None:
    """A seed fixes the population exactly."""
    model = get_model("domino-cl79")
    a = virtual_population(model, n=200, seed=7)
    b = virtual_population(model, n=200, seed=7)
    c = virtual_population(model, n=200, seed=8)
    assert_array_equal(a.parameters.cl_l_per_h, b.parameters.cl_l_per_h)
    assert not np.array_equal(a.parameters.cl_l_per_h, c.parameters.cl_l_per_h)


def test_log_normal_variability_matches_cv() -> None:
    """Sampled etas have SD sqrt(ln(1 + CV^2)) and the parameters the stated CV."""
    model = set_variability(get_model("domino"), {"cl": 0.3})
    etas = sample_etas(model, 200_000, rng=np.random.default_rng(0))
    assert set(etas) == {"cl"}
    assert_allclose(np.std(etas["cl"]), np.sqrt(np.log1p(0.09)), rtol=0.01)
    pop = virtual_population(model, n=200_000, seed=0, covariates=Covariates.single(weight_kg=70))
    cl = pop.parameters.cl_l_per_h
    assert_allclose(np.std(cl) / np.mean(cl), 0.3, rtol=0.02)


def test_covariates_follow_their_distribution() -> None:
    """Weights are clipped to the range and women appear at the requested share."""
    d = CovariateDistribution(
        weight_mean_kg=75, weight_sd_kg=12, weight_range_kg=(40, 150), female_fraction=0.3
    )
    cov = sample_covariates(50_000, rng=np.random.default_rng(1), distribution=d)
    assert cov.weight_kg.min() >= 40 and cov.weight_kg.max() <= 150
    assert_allclose(cov.weight_kg.mean(), 75, rtol=0.01)
    assert_allclose(cov.female.mean(), 0.3, atol=0.01)


def test_shared_covariates_vary_only_by_iiv() -> None:
    """With one patient's covariates every virtual subject has that weight."""
    pop = virtual_population(
        get_model("flint-fanta-s"),
        n=50,
        seed=1,
        covariates=Covariates.single(weight_kg=82, sex="female"),
    )
    assert_array_equal(pop.parameters.weight_kg, np.full(50, 82.0))
    assert pop.covariates.female.all()


def test_bioavailability_stays_a_fraction() -> None:
    """Logit-normal variability keeps oral bioavailability within 0 to 1."""
    model = set_variability(get_model("flint-fanta-s"), {"bioavailability": 2.0})
    pop = virtual_population(model, n=10_000, seed=3)
    assert pop.parameters.oral is not None
    f = pop.parameters.oral.bioavailability
    assert (f > 0).all() and (f < 1).all()


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_bad_n(n: object) -> None:
    """The cohort size must be a positive integer."""
    with pytest.raises(InvalidValueError, match="n must be"):
        virtual_population(get_model("domino"), n=n, seed=0)  # type: ignore[arg-type]
