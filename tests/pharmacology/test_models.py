"""Tests of the model registry (ketapain.pharmacology.models) and of PKModel.

The published-observation tests simulate each model and compare with numbers in
shared/reference/pharmacology.md; each docstring states why its tolerance is what it is.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from ketapain.errors import ExtrapolationWarning, InvalidValueError, UnknownNameError
from ketapain.pharmacology.covariates import Covariates
from ketapain.pharmacology.model import (
    ALLOMETRIC,
    ETA_NAMES,
    PER_KG,
    Drug,
    PKModel,
    set_variability,
    set_weight_scaling,
)
from ketapain.pharmacology.models import DEFAULT_MODEL, get_model, list_models
from ketapain.pharmacology.schedules import Bolus, Infusion, OralDose, Schedule
from ketapain.pharmacology.simulation import simulate
from ketapain.sources import Source

MODEL_NAMES = [m.name for m in list_models()]
RACEMIC = [m.name for m in list_models() if m.drug is Drug.RACEMIC]
ADULT_70 = Covariates.single(weight_kg=70.0)


def _params(name: str, weight_kg: float = 70.0, sex: str = "male"):
    return get_model(name).parameters(Covariates.single(weight_kg=weight_kg, sex=sex), warn=False)


def _plasma(name: str, schedule: Schedule, times_h, weight_kg: float = 70.0) -> np.ndarray:
    prof = simulate(_params(name, weight_kg), schedule, times_h=np.asarray(times_h, dtype=float))
    return prof.ketamine_plasma_ng_per_ml[0]


# --- registry ------------------------------------------------------------------------------


def test_registry_lists_the_default_first_with_unique_names():
    """The default model is registered, listed first, and names are unique."""
    assert MODEL_NAMES[0] == DEFAULT_MODEL == "domino-cl79"
    assert len(set(MODEL_NAMES)) == len(MODEL_NAMES)
    assert {"domino", "clements-250", "herd-2007", "hijazi-2003", "flint-fanta-s"} <= set(
        MODEL_NAMES
    )
    for name in MODEL_NAMES:
        assert get_model(name).name == name


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_cites_its_numbers(name):
    """Each model has a source, a drug, a population in words, and notes with sources."""
    model = get_model(name)
    assert isinstance(model.source, Source)
    assert model.source.year > 1900 and model.source.authors and model.source.journal
    assert isinstance(model.drug, Drug)
    assert len(model.population) > 10
    assert model.notes, "no numbers cited"
    assert all(text for text, _ in model.notes)
    assert any(src is not None for _, src in model.notes)
    sources = model.sources()
    assert sources[0] == model.source
    assert len({s.cite() for s in sources}) == len(sources)
    for block in (model.oral, model.metabolite):
        if block is not None:
            assert block.sources, f"{name}: a borrowed block without its sources"
            assert set(block.sources) <= set(sources)
    assert set(model.variability) <= set(ETA_NAMES)
    assert 0 < model.s_fraction <= 1


def test_unknown_name_lists_the_known_names():
    """An unknown model name raises UnknownNameError listing every registered name."""
    with pytest.raises(UnknownNameError) as err:
        get_model("propofol")
    message = str(err.value)
    assert message.startswith("unknown model 'propofol'; known: ")
    for name in MODEL_NAMES:
        assert name in message
    assert isinstance(err.value, LookupError)
    assert sorted(err.value.known) == sorted(MODEL_NAMES)


def test_racemic_models_share_the_s_fraction():
    """Racemic models carry the S share 15.8 / (15.8 + 18.4) from the Wang 2019 clearances."""
    for name in RACEMIC:
        assert_allclose(get_model(name).s_fraction, 15.8 / (15.8 + 18.4), rtol=1e-12)
    assert get_model("flint-fanta-s").s_fraction == 1.0
    assert get_model("flint-fanta-s").drug is Drug.S_KETAMINE


# --- covariates and scaling ----------------------------------------------------------------


def test_domino_cl79_clearance_is_79_l_per_h_at_70_kg():
    """Domino-CL79: CL = 79 L/h at 70 kg (Kamp 2020), Domino's volumes otherwise."""
    p = _params("domino-cl79")
    d = _params("domino")
    assert_allclose(p.cl_l_per_h, [79.0], rtol=1e-12)
    for field in ("v1_l", "q2_l_per_h", "v2_l", "q3_l_per_h", "v3_l", "ke0_per_h"):
        assert_allclose(getattr(p, field), getattr(d, field), rtol=1e-12, err_msg=field)


@given(weight=st.floats(40.0, 150.0))
def test_domino_cl79_scales_clearance_allometrically(weight):
    """CL = 79 (WT/70)^0.75; volumes and distribution clearances scale per kilogram."""
    p = _params("domino-cl79", weight)
    assert_allclose(p.cl_l_per_h, [79.0 * (weight / 70.0) ** 0.75], rtol=1e-12)
    assert_allclose(p.v1_l, [0.063 * weight], rtol=1e-12)
    assert_allclose(p.q2_l_per_h, [0.592 * 60 * 0.063 * weight], rtol=1e-12)
    assert_allclose(p.v3_l, [0.590 / 0.0146 * 0.063 * weight], rtol=1e-12)


@given(weight=st.floats(40.0, 150.0))
def test_domino_is_per_kilogram(weight):
    """Domino's micro-constants do not depend on weight: k10 = 0.438 /min at any weight."""
    p = _params("domino", weight)
    assert_allclose(p.cl_l_per_h / p.v1_l, [0.438 * 60], rtol=1e-12)
    assert_allclose(p.q3_l_per_h / p.v3_l, [0.0146 * 60], rtol=1e-12)


def test_s_ketamine_model_gives_women_20_percent_more_clearance():
    """Sigtermans 2009: women have 20% greater clearance of S-ketamine and S-norketamine."""
    man, woman = _params("flint-fanta-s", sex="male"), _params("flint-fanta-s", sex="female")
    assert_allclose(man.cl_l_per_h, [95.0], rtol=1e-12)
    assert_allclose(woman.cl_l_per_h, 1.2 * man.cl_l_per_h, rtol=1e-12)
    assert_allclose(woman.metabolite.cl_l_per_h, 1.2 * man.metabolite.cl_l_per_h, rtol=1e-12)
    assert_allclose(woman.v1_l, man.v1_l, rtol=1e-12)
    for name in RACEMIC:
        assert_allclose(_params(name, sex="female").cl_l_per_h, _params(name).cl_l_per_h)


def test_herd_warns_for_an_adult():
    """Herd 2007 (children 1-14 y, 10.8-74.8 kg) warns when used for an adult."""
    model = get_model("herd-2007")
    with pytest.warns(ExtrapolationWarning, match=r"herd-2007: age outside .* 1-14 y"):
        model.parameters(Covariates.single(weight_kg=70.0, age_y=40.0))
    with pytest.warns(ExtrapolationWarning, match=r"weight outside .* 10.8-74.8 kg"):
        model.parameters(Covariates.single(weight_kg=90.0, age_y=12.0))
    messages = model.check_covariates(Covariates.single(weight_kg=30.0, age_y=8.0))
    assert messages == []
    model.parameters(Covariates.single(weight_kg=30.0, age_y=8.0))  # no warning: error filter


def test_adult_models_warn_for_a_child():
    """Adult models extrapolate below 18 years."""
    with pytest.warns(ExtrapolationWarning, match="domino-cl79: age outside"):
        get_model("domino-cl79").parameters(Covariates.single(weight_kg=50.0, age_y=10.0))


def test_etas_multiply_typical_values():
    """Etas multiply typical values by exp(eta); F moves on the logit scale within (0, 1)."""
    model = get_model("flint-fanta-s")
    cov = Covariates.repeat(weight_kg=70.0, n=3)
    eta = np.array([-0.5, 0.0, 0.5])
    p = model.parameters(cov, etas={"cl": eta, "v1": eta, "bioavailability": 5 * eta})
    assert_allclose(p.cl_l_per_h, 95.0 * np.exp(eta), rtol=1e-12)
    assert_allclose(p.v1_l, 7.73 * np.exp(eta), rtol=1e-12)
    f = p.oral.bioavailability
    assert f[0] < 0.08 < f[2] and f[1] == pytest.approx(0.08)
    assert np.all((f > 0) & (f < 1))
    assert np.all(f + p.oral.first_pass_metabolite_fraction <= 1.0 + 1e-12)


def test_set_functions_return_changed_copies():
    """set_variability and set_weight_scaling leave the registered model unchanged."""
    model = get_model("domino")
    changed = set_variability(model, {"cl": 0.5})
    assert changed.variability == {"cl": 0.5}
    assert get_model("domino").variability["cl"] == 0.18
    rescaled = set_weight_scaling(model, ALLOMETRIC)
    assert rescaled.scaling == ALLOMETRIC and model.scaling == PER_KG
    assert_allclose(
        rescaled.parameters(Covariates.single(weight_kg=140.0)).cl_l_per_h,
        [model.disposition.cl_l_per_h * 2.0**0.75],
        rtol=1e-12,
    )


def test_invalid_variability_is_refused():
    """Unknown random-effect names and absurd CVs raise InvalidValueError naming them."""
    model = get_model("domino")
    with pytest.raises(InvalidValueError, match=r"^variability must be one of cl, v1"):
        set_variability(model, {"clearance": 0.3})
    with pytest.raises(InvalidValueError, match=r"^variability\.cl must be a CV between 0 and 3"):
        set_variability(model, {"cl": 4.0})


def test_pk_model_rejects_unknown_eta_at_construction():
    """PKModel validates its variability when built directly."""
    base = get_model("domino")
    with pytest.raises(InvalidValueError):
        PKModel(
            name="x",
            drug=Drug.RACEMIC,
            population="p",
            source=base.source,
            disposition=base.disposition,
            variability_cv=(("vss", 0.2),),
        )


# --- derived disposition (reference §1b) -----------------------------------------------------


def _half_lives_min(p) -> np.ndarray:
    cl, v1 = float(p.cl_l_per_h[0]), float(p.v1_l[0])
    pairs = [(q, v) for q, v in ((p.q2_l_per_h, p.v2_l), (p.q3_l_per_h, p.v3_l)) if q is not None]
    k = np.zeros((1 + len(pairs),) * 2)
    k[0, 0] = -cl / v1
    for j, (q, v) in enumerate(pairs, start=1):
        q, v = float(q[0]), float(v[0])
        k[0, 0] -= q / v1
        k[j, 0], k[0, j], k[j, j] = q / v1, q / v, -q / v
    return np.sort(60.0 * np.log(2.0) / np.abs(np.linalg.eigvals(k)))


@pytest.mark.parametrize(
    ("name", "v1_l", "cl_l_per_h", "vss_l", "half_lives_min"),
    [
        ("domino", 4.4, 116, 193, [0.4, 4.6, 115]),
        ("clements-250", 123, 80, 289, [17.6, 183]),
        ("hijazi-2003", 76, 151, 297, [16, 297]),
        ("herd-2007", 38.7, 90, 141, [4.4, 80]),
    ],
)
def test_derived_disposition_matches_the_reference_table(
    name, v1_l, cl_l_per_h, vss_l, half_lives_min
):
    """V1, CL, Vss and half-lives at 70 kg match reference table 1b.

    The table prints 2-3 significant figures, so 3% covers its rounding; Domino's 0.4 min
    is printed to one figure, hence its own 13%.
    """
    p = _params(name)
    assert_allclose(p.v1_l, [v1_l], rtol=0.03)
    assert_allclose(p.cl_l_per_h, [cl_l_per_h], rtol=0.03)
    assert_allclose(p.vss_l(), [vss_l], rtol=0.03)
    got = _half_lives_min(p)
    assert got.size == len(half_lives_min)
    if name == "domino":
        assert_allclose(got[0], half_lives_min[0], rtol=0.13)
        got, half_lives_min = got[1:], half_lives_min[1:]
    assert_allclose(got, half_lives_min, rtol=0.03)


# --- published observations ----------------------------------------------------------------

# Reference table "Typical plasma concentrations by regimen (70 kg, racemic; ng/mL)".
REGIMEN_TABLE = {
    "domino": {0.1: (35, 52, 60), 0.25: (88, 130, 151), 0.5: (176, 260, 302)},
    "clements-250": {0.1: (30, 59, 87), 0.25: (75, 148, 218), 0.5: (150, 296, 436)},
    "herd-2007": {0.1: (41, 70, 78), 0.25: (102, 175, 194), 0.5: (204, 350, 389)},
    "hijazi-2003": {0.1: (34, 40, 46), 0.25: (85, 100, 116), 0.5: (171, 201, 232)},
}
BOLUS_TABLE = {  # 0.5 mg/kg over 1 min: 5 / 15 / 30 / 60 min
    "domino": (297, 110, 60, 46),
    "clements-250": (251, 191, 135, 83),
    "herd-2007": (520, 217, 132, 96),
    "hijazi-2003": (383, 252, 136, 42),
}
FORTY_MIN_TABLE = {  # 0.5 mg/kg over 40 min: end / +40 / +80 min
    "domino": (240, 46, 36),
    "clements-250": (177, 85, 59),
    "herd-2007": (253, 96, 68),
    "hijazi-2003": (225, 46, 13),
}
# Long enough for every racemic model's slowest phase (at most 297 min) to vanish.
STEADY_STATE_H = 2000.0


@pytest.mark.parametrize("name", sorted(REGIMEN_TABLE))
@pytest.mark.parametrize("rate", [0.1, 0.25, 0.5])
def test_infusion_regimens_match_the_reference_table(name, rate):
    """Plasma at 1 h, 4 h and steady state of an infusion matches the reference table.

    The author computed the table with these same parameter sets and printed whole ng/mL,
    so agreement within 2% is expected (rounding the smallest entry, 30 ng/mL, is 1.7%).
    """
    schedule = Schedule.of(Infusion(start_h=0.0, duration_h=STEADY_STATE_H, rate_mg_per_kg_h=rate))
    got = _plasma(name, schedule, [1.0, 4.0, STEADY_STATE_H])
    assert_allclose(got, REGIMEN_TABLE[name][rate], rtol=0.02)


@pytest.mark.parametrize("name", sorted(BOLUS_TABLE))
def test_one_minute_bolus_matches_the_reference_table(name):
    """0.5 mg/kg over 1 min, read at 5/15/30/60 min, matches the table within 2% (rounding)."""
    schedule = Schedule.of(Infusion(start_h=0.0, duration_h=1 / 60, rate_mg_per_kg_h=30.0))
    got = _plasma(name, schedule, np.array([5, 15, 30, 60]) / 60)
    assert_allclose(got, BOLUS_TABLE[name], rtol=0.02)


@pytest.mark.parametrize("name", sorted(FORTY_MIN_TABLE))
def test_forty_minute_infusion_matches_the_reference_table(name):
    """0.5 mg/kg over 40 min, read at its end and 40 and 80 min later, matches the table.

    2% as above; the smallest entry, 13 ng/mL, is rounded by up to 3.8%, hence also
    0.5 ng/mL absolute.
    """
    schedule = Schedule.of(Infusion(start_h=0.0, duration_h=40 / 60, rate_mg_per_kg_h=0.75))
    got = _plasma(name, schedule, np.array([40, 80, 120]) / 60)
    assert_allclose(got, FORTY_MIN_TABLE[name], rtol=0.02, atol=0.5)


@pytest.mark.parametrize("rate", [0.1, 0.25, 0.5])
def test_domino_cl79_steady_state_matches_the_kamp_clearance(rate):
    """Domino-CL79 reaches the table's Kamp column (89/222/443 ng/mL) within 1% (rounding)."""
    expected = {0.1: 89, 0.25: 222, 0.5: 443}[rate]
    schedule = Schedule.of(Infusion(start_h=0.0, duration_h=STEADY_STATE_H, rate_mg_per_kg_h=rate))
    assert_allclose(_plasma("domino-cl79", schedule, [STEADY_STATE_H]), [expected], rtol=0.01)


def test_domino_four_hour_infusion_matches_pytci():
    """Domino, 0.5 mg/kg/h for 4 h at 70 kg, gives PyTCI's 259.73 ng/mL.

    PyTCI steps in 1-s increments and the value is quoted to two decimals; 1e-4 relative
    (0.026 ng/mL) allows for both.
    """
    schedule = Schedule.of(Infusion(start_h=0.0, duration_h=4.0, rate_mg_per_kg_h=0.5))
    assert_allclose(_plasma("domino", schedule, [4.0]), [259.73], rtol=1e-4)


KOPPEL_MEAN_UG_PER_ML, KOPPEL_SD_UG_PER_ML = 1.2, 0.3
KOPPEL_NK_MEAN_UG_PER_ML, KOPPEL_NK_SD_UG_PER_ML = 1.0, 0.6


def _koppel(name: str, rate: float, weight_kg: float) -> tuple[float, float]:
    schedule = Schedule.of(Infusion(start_h=0.0, duration_h=72.0, rate_mg_per_kg_h=rate))
    prof = simulate(_params(name, weight_kg), schedule, times_h=np.array([72.0]))
    return (
        float(prof.ketamine_plasma_ng_per_ml[0, 0]) / 1000.0,
        float(prof.norketamine_plasma_ng_per_ml[0, 0]) / 1000.0,
    )


@pytest.mark.parametrize("weight_kg", [60.0, 70.0, 90.0])
@pytest.mark.parametrize("rate", [1.1, 1.2, 1.3])
def test_icu_steady_state_of_koppel_1990_domino_cl79(rate, weight_kg):
    """Domino-CL79 reproduces the ICU steady state of Köppel 1990 within ± 1 SD.

    Köppel: 1.1-1.3 mg/kg/h for 3 days gives ketamine 1.2 ± 0.3 and norketamine
    1.0 ± 0.6 µg/mL. The model (clearance from the Kamp meta-analysis) predicts ketamine
    inside mean ± 1 SD over that dose range for 60-90 kg adults. Its norketamine clearance
    was derived from the same observation, so that check only guards the calibration.
    """
    ketamine, norketamine = _koppel("domino-cl79", rate, weight_kg)
    assert abs(ketamine - KOPPEL_MEAN_UG_PER_ML) <= KOPPEL_SD_UG_PER_ML
    assert abs(norketamine - KOPPEL_NK_MEAN_UG_PER_ML) <= KOPPEL_NK_SD_UG_PER_ML


def test_icu_steady_state_of_koppel_1990_hijazi_under_predicts():
    """Hijazi 2003 under-predicts Köppel's ICU steady state, within a factor of 2.5.

    Hijazi's clearance (36 mL/min/kg, ~151 L/h at 70 kg) is about twice the ~1 L/kg/h
    implied by Köppel's steady state, although both studied ICU patients. The claim that
    holds: at 1.2 mg/kg/h it predicts below mean - 1 SD yet within a factor of 2.5 of the
    observed mean. This guards the documented disagreement.
    """
    ketamine, _ = _koppel("hijazi-2003", 1.2, 70.0)
    assert KOPPEL_MEAN_UG_PER_ML / 2.5 <= ketamine < KOPPEL_MEAN_UG_PER_ML - KOPPEL_SD_UG_PER_ML
    assert_allclose(ketamine, 1.2 * 70 / 151.0, rtol=0.01)  # at steady state: rate / CL


def _auc(name: str, schedule: Schedule, weight_kg: float = 70.0) -> tuple[float, float]:
    """AUC of ketamine and metabolite (ng·h/mL) to 300 h by the trapezoid rule on a
    geometric grid (steps under 0.5% of the time since the dose, so the relative error
    stays below 1e-5 even for Domino's 0.4-min phase)."""
    times = np.concatenate([[0.0], np.geomspace(1e-5, 300.0, 4_000)])
    prof = simulate(_params(name, weight_kg), schedule, times_h=times)
    return (
        float(np.trapezoid(prof.ketamine_plasma_ng_per_ml[0], times)),
        float(np.trapezoid(prof.norketamine_plasma_ng_per_ml[0], times)),
    )


@pytest.mark.parametrize(("name", "f"), [("domino-cl79", 0.23), ("flint-fanta-s", 0.08)])
def test_oral_bioavailability_is_the_published_value(name, f):
    """AUC oral / AUC IV is the published F: 23% racemic (Chong), 8% S-ketamine (Fanta).

    0.1% covers the quadrature.
    """
    oral, _ = _auc(name, Schedule.of(OralDose(time_h=0.0, dose_mg=50.0)))
    iv, _ = _auc(name, Schedule.of(Bolus(time_h=0.0, dose_mg=50.0)))
    assert_allclose(oral / iv, f, rtol=1e-3)


def test_oral_s_norketamine_exposure_is_16_5_times_s_ketamine():
    """After oral S-ketamine the S-norketamine AUC is 16.5x the S-ketamine AUC (Fanta 2015).

    The presystemic fraction was derived from this ratio; 0.1% covers the quadrature.
    """
    ketamine, norketamine = _auc("flint-fanta-s", Schedule.of(OralDose(time_h=0.0, dose_mg=50.0)))
    assert_allclose(norketamine / ketamine, 16.5, rtol=1e-3)


def test_racemic_oral_ketamine_plus_norketamine_is_59_percent():
    """Oral racemic ketamine reaches the circulation as 23% ketamine, 59% K + NK (Chong).

    With fm = 1 every systemic ketamine molecule ends as norketamine, so
    CL_m x AUC_NK / (MW ratio) / dose = 0.59 and CL x AUC_K / dose = 0.23 (0.1% for the
    quadrature).
    """
    dose_mg = 50.0
    p = _params("domino-cl79")
    assert_allclose(p.metabolite.fraction_formed, [1.0])
    ketamine, norketamine = _auc("domino-cl79", Schedule.of(OralDose(time_h=0.0, dose_mg=dose_mg)))
    parent_mg = ketamine / 1000.0 * float(p.cl_l_per_h[0])
    formed_mg = norketamine / 1000.0 * float(p.metabolite.cl_l_per_h[0])
    assert_allclose(parent_mg / dose_mg, 0.23, rtol=1e-3)
    assert_allclose(formed_mg / p.metabolite.molar_mass_ratio / dose_mg, 0.59, rtol=1e-3)
