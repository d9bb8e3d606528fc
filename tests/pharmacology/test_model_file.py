"""Tests of user-defined model files (ketapain.pharmacology.model_file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from ketapain.errors import ModelFileError
from ketapain.pharmacology import Covariates, Infusion, Schedule, get_model, simulate
from ketapain.pharmacology.model import Drug
from ketapain.pharmacology.model_file import load_model_file, parse_model

ISSUE_EXAMPLE = """
name = "my-model"
drug = "racemic"            # or "s-ketamine"
[pk]                        # values for a patient of reference_weight_kg
reference_weight_kg = 70
cl_l_per_h = 79.0
v1_l = 4.4
q2_l_per_h = 156.0
v2_l = 11.0
q3_l_per_h = 155.0          # q3/v3 optional (two-compartment without them)
v3_l = 178.0
ke0_per_h = 6.0             # optional
allometric = false          # true: clearances scale with (WT/ref)^0.75, volumes with WT/ref
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "model.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_issue_example_loads(tmp_path: Path) -> None:
    """The example file of the specification loads with its values."""
    model = load_model_file(_write(tmp_path, ISSUE_EXAMPLE))
    assert model.name == "my-model"
    assert model.drug is Drug.RACEMIC
    assert model.n_compartments == 3
    assert model.ke0_per_h == 6.0
    p = model.parameters(Covariates.single(weight_kg=90))
    # allometric = false: the values are used as given whatever the weight
    assert_allclose(p.cl_l_per_h, [79.0])
    assert_allclose(p.v3_l, [178.0])


def test_allometric_scaling(tmp_path: Path) -> None:
    """allometric = true scales clearances with (WT/ref)^0.75 and volumes with WT/ref."""
    model = load_model_file(_write(tmp_path, ISSUE_EXAMPLE.replace("false ", "true ")))
    p = model.parameters(Covariates.single(weight_kg=140))
    assert_allclose(p.cl_l_per_h, [79.0 * 2**0.75])
    assert_allclose(p.q2_l_per_h, [156.0 * 2**0.75])
    assert_allclose(p.v1_l, [8.8])


def test_micro_constant_form_matches_published_domino() -> None:
    """Domino's micro-constants given in a file reproduce the built-in Domino model at 70 kg."""
    v1 = 0.063 * 70
    data = {
        "name": "domino-file",
        "drug": "racemic",
        "pk": {
            "v1_l": v1,
            "k10_per_h": 0.438 * 60,
            "k12_per_h": 0.592 * 60,
            "k21_per_h": 0.247 * 60,
            "k13_per_h": 0.590 * 60,
            "k31_per_h": 0.0146 * 60,
        },
    }
    cov = Covariates.single(weight_kg=70)
    times = np.linspace(0, 8, 33)
    sched = Schedule.of(Infusion(start_h=0, duration_h=4, rate_mg_per_kg_h=0.5))
    from_file = simulate(parse_model(data).parameters(cov), sched, times_h=times)
    built_in = simulate(get_model("domino").parameters(cov), sched, times_h=times)
    assert_allclose(
        from_file.ketamine_plasma_ng_per_ml, built_in.ketamine_plasma_ng_per_ml, rtol=1e-10
    )


def test_two_compartment_without_q3() -> None:
    """A file without q3/v3 gives a two-compartment model."""
    model = parse_model(
        {
            "name": "m",
            "drug": "s-ketamine",
            "pk": {"cl_l_per_h": 95, "v1_l": 7.7, "q2_l_per_h": 196, "v2_l": 545},
        }
    )
    assert model.n_compartments == 2
    assert model.s_fraction == 1.0


def test_optional_blocks(tmp_path: Path) -> None:
    """Variability, oral and metabolite blocks are read."""
    text = ISSUE_EXAMPLE + (
        "\n[variability]\ncl = 0.3\nv1 = 0.5\n[oral]\nbioavailability = 0.2\nka_per_h = 1.0\n"
        "first_pass_metabolite_fraction = 0.3\n[metabolite]\ncl_l_per_h = 60\nv1_l = 100\n"
    )
    model = load_model_file(_write(tmp_path, text))
    assert model.variability == {"cl": 0.3, "v1": 0.5}
    assert model.oral is not None and model.oral.bioavailability == 0.2
    assert model.metabolite is not None and model.metabolite.cl_l_per_h == 60


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("cl_l_per_h = 79.0", "cl_l_per_h = -1"), "pk.cl_l_per_h"),
        (("cl_l_per_h = 79.0", "cl_l_per_h = 79000000.0"), "pk.cl_l_per_h"),
        (("v1_l = 4.4", 'v1_l = "big"'), "pk.v1_l"),
        (("v3_l = 178.0", ""), "pk.v3_l"),
        (('drug = "racemic"', 'drug = "propofol"'), "drug"),
        (("reference_weight_kg = 70", "reference_weight_kg = 0"), "pk.reference_weight_kg"),
        (("ke0_per_h = 6.0", "ke0 = 6.0"), "pk.ke0"),
        (("allometric = false", 'allometric = "yes"'), "pk.allometric"),
        (("v2_l = 11.0", "v2_l = 11.0\nk21_per_h = 3.0"), "pk"),
    ],
)
def test_bad_files_name_file_and_field(tmp_path: Path, change: tuple[str, str], field: str) -> None:
    """Each malformed file is rejected with the file, the field and the allowed range."""
    path = _write(tmp_path, ISSUE_EXAMPLE.replace(*change))
    with pytest.raises(ModelFileError) as info:
        load_model_file(path)
    assert info.value.field == field
    assert str(path) in str(info.value)
    assert "must be" in str(info.value)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    """Syntax errors and missing files are ModelFileErrors, not tracebacks."""
    with pytest.raises(ModelFileError, match="valid TOML"):
        load_model_file(_write(tmp_path, "name = "))
    with pytest.raises(ModelFileError, match="existing TOML file"):
        load_model_file(tmp_path / "absent.toml")


def test_unknown_top_level_key_is_an_error() -> None:
    """Unknown keys are reported instead of ignored."""
    with pytest.raises(ModelFileError, match="colour"):
        parse_model(
            {"name": "m", "drug": "racemic", "colour": "red", "pk": {"cl_l_per_h": 1, "v1_l": 1}}
        )
