"""Tests of ketapain.pharmacology.pd.receptor: NMDA occupancy from unbound concentrations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from ketapain.errors import InvalidValueError
from ketapain.pharmacology.pd.receptor import (
    KI_R_KETAMINE_UMOL_PER_L,
    KI_RACEMIC_NORKETAMINE_UMOL_PER_L,
    KI_S_KETAMINE_UMOL_PER_L,
    KI_S_NORKETAMINE_UMOL_PER_L,
    UNBOUND_FRACTION,
    ReceptorModel,
    nmda_occupancy,
)

CONC = st.floats(0.0, 5000.0)
# Published constants, typed here from the papers rather than read from the module.
KETAMINE_MW = 237.73
NORKETAMINE_MW = 223.70


def test_published_constants():
    """Ki values (Ebert 1997, Sałat 2015) and unbound fraction 1 - 0.47 (Dayton 1983)."""
    assert KI_S_KETAMINE_UMOL_PER_L == 0.30
    assert KI_R_KETAMINE_UMOL_PER_L == 1.4
    assert KI_S_NORKETAMINE_UMOL_PER_L == 1.7
    assert KI_RACEMIC_NORKETAMINE_UMOL_PER_L == 0.97
    assert_allclose(UNBOUND_FRACTION, 0.53, rtol=1e-15)


def test_hand_computed_s_ketamine_occupancy():
    """100 ng/mL S-ketamine: x = 0.53 (100/237.73)/0.30, occ = x/(1+x) ~ 0.426 (rtol 1e-12)."""
    x = 0.53 * (100.0 / KETAMINE_MW) / 0.30
    got = float(nmda_occupancy(s_ketamine_ng_per_ml=100.0))
    assert_allclose(got, x / (1.0 + x), rtol=1e-12)
    assert round(got, 3) == 0.426


def test_hand_computed_mixture_occupancy():
    """S + R + racemic NK add as competitors of one site: x = sum fu C/Ki (rtol 1e-12)."""
    x = 0.53 * (
        (60.0 / KETAMINE_MW) / 0.30 + (60.0 / KETAMINE_MW) / 1.4 + (150.0 / NORKETAMINE_MW) / 0.97
    )
    got = nmda_occupancy(
        s_ketamine_ng_per_ml=60.0, r_ketamine_ng_per_ml=60.0, norketamine_ng_per_ml=150.0
    )
    assert_allclose(got, x / (1.0 + x), rtol=1e-12)


def test_no_drug_no_occupancy():
    """Zero concentrations give exactly zero occupancy."""
    assert float(nmda_occupancy(s_ketamine_ng_per_ml=0.0)) == 0.0


def test_species_add_up():
    """S-ketamine, R-ketamine and norketamine together occupy more than any one alone."""
    s = float(nmda_occupancy(s_ketamine_ng_per_ml=80.0))
    r = float(nmda_occupancy(s_ketamine_ng_per_ml=0.0, r_ketamine_ng_per_ml=80.0))
    nk = float(nmda_occupancy(s_ketamine_ng_per_ml=0.0, norketamine_ng_per_ml=80.0))
    both = float(
        nmda_occupancy(
            s_ketamine_ng_per_ml=80.0, r_ketamine_ng_per_ml=80.0, norketamine_ng_per_ml=80.0
        )
    )
    assert both > max(s, r, nk)
    assert s > r  # S-ketamine binds about 4.7 times more tightly (Ki 0.30 vs 1.4)
    assert both < 1.0


def test_racemic_and_s_norketamine_binding_constants():
    """norketamine_racemic picks Ki 0.97 (racemic) or 1.7 (S) umol/L (rtol 1e-12)."""
    c = 200.0
    for racemic, ki in ((True, 0.97), (False, 1.7)):
        x = 0.53 * (c / NORKETAMINE_MW) / ki
        got = nmda_occupancy(
            s_ketamine_ng_per_ml=0.0, norketamine_ng_per_ml=c, norketamine_racemic=racemic
        )
        assert_allclose(got, x / (1.0 + x), rtol=1e-12)


def test_custom_model_uses_its_constants():
    """A ReceptorModel with fu 1 and Ki 1 umol/L gives x = C/MW (rtol 1e-12)."""
    model = ReceptorModel(ki_s_ketamine_umol_per_l=1.0, unbound_fraction=1.0)
    x = 237.73 / KETAMINE_MW
    assert_allclose(model.occupancy(s_ketamine_ng_per_ml=237.73), x / (1 + x), rtol=1e-12)


def test_broadcasts_over_subjects_and_times():
    """(N, T) arrays give (N, T) occupancy equal to the element-wise scalar calls."""
    s = np.array([[0.0, 50.0, 100.0], [10.0, 20.0, 400.0]])
    nk = np.array([[0.0, 30.0, 60.0], [5.0, 5.0, 5.0]])
    got = nmda_occupancy(s_ketamine_ng_per_ml=s, r_ketamine_ng_per_ml=s, norketamine_ng_per_ml=nk)
    assert got.shape == (2, 3)
    for i, j in np.ndindex(got.shape):
        one = nmda_occupancy(
            s_ketamine_ng_per_ml=s[i, j],
            r_ketamine_ng_per_ml=s[i, j],
            norketamine_ng_per_ml=nk[i, j],
        )
        assert_allclose(got[i, j], one, rtol=1e-14)


def test_negative_concentrations_count_as_zero():
    """Round-off below zero adds no occupancy."""
    got = nmda_occupancy(
        s_ketamine_ng_per_ml=-1e-6, r_ketamine_ng_per_ml=-2.0, norketamine_ng_per_ml=-3.0
    )
    assert float(got) == 0.0


@given(s=CONC, r=CONC, nk=CONC, racemic=st.booleans())
def test_occupancy_in_zero_one(s, r, nk, racemic):
    """Occupancy lies in [0, 1) for any non-negative concentrations."""
    occ = float(
        nmda_occupancy(
            s_ketamine_ng_per_ml=s,
            r_ketamine_ng_per_ml=r,
            norketamine_ng_per_ml=nk,
            norketamine_racemic=racemic,
        )
    )
    assert 0.0 <= occ < 1.0


@given(s=CONC, extra=st.floats(0.1, 1000.0), which=st.sampled_from(["s", "r", "nk"]))
def test_occupancy_increases_with_each_species(s, extra, which):
    """Adding any species strictly raises occupancy (below saturation in floating point)."""
    base = {"s_ketamine_ng_per_ml": s, "r_ketamine_ng_per_ml": 20.0, "norketamine_ng_per_ml": 20.0}
    more = dict(base)
    key = {"s": "s_ketamine_ng_per_ml", "r": "r_ketamine_ng_per_ml", "nk": "norketamine_ng_per_ml"}
    more[key[which]] += extra
    assert float(nmda_occupancy(**more)) > float(nmda_occupancy(**base))


def test_sources_are_the_binding_papers():
    """The model cites Ebert 1997, Sałat 2015 and Dayton 1983."""
    years = sorted(s.year for s in ReceptorModel.sources())
    assert years == [1983, 1997, 2015]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ki_s_ketamine_umol_per_l", 0.0),
        ("ki_r_ketamine_umol_per_l", -1.4),
        ("ki_s_norketamine_umol_per_l", np.nan),
        ("ki_racemic_norketamine_umol_per_l", 2.0e4),
        ("unbound_fraction", 0.0),
        ("unbound_fraction", 1.2),
    ],
)
def test_receptor_model_validation_names_the_field(field, value):
    """Non-positive, non-finite or implausibly large constants raise naming the field."""
    with pytest.raises(InvalidValueError, match=f"^{field} must be") as info:
        ReceptorModel(**{field: value})
    assert info.value.field == field


def test_unbound_fraction_of_one_is_allowed():
    """fu = 1 (no protein binding) is a valid upper bound."""
    assert ReceptorModel(unbound_fraction=1.0).unbound_fraction == 1.0
