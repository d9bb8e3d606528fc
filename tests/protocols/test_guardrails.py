"""Tests of ketapain.protocols.guardrails: limits, the drug library and rate checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ketapain.errors import InvalidValueError, ModelFileError, UnknownNameError
from ketapain.protocols.findings import Severity
from ketapain.protocols.guardrails import (
    DRUG_LIBRARY_FILE,
    Limit,
    LimitSet,
    Quantity,
    check_rate,
    load_drug_library,
)

RATE = Limit(
    quantity=Quantity.RATE_MG_PER_KG_H,
    origin="test",
    hard_min=0.01,
    soft_min=0.05,
    soft_max=0.5,
    hard_max=1.0,
)


def _codes(findings) -> list[str]:
    return [f.code for f in findings]


# --- Limit ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bounds", "field"),
    [
        ({"hard_min": 3.0, "soft_min": 2.0}, "rate_mg_per_h.soft_min"),
        ({"soft_min": 3.0, "soft_max": 2.0}, "rate_mg_per_h.soft_max"),
        ({"soft_max": 3.0, "hard_max": 2.0}, "rate_mg_per_h.hard_max"),
        ({"hard_min": 3.0, "hard_max": 2.0}, "rate_mg_per_h.hard_max"),
        ({"soft_min": 3.0, "hard_max": 2.0}, "rate_mg_per_h.hard_max"),
        ({}, "rate_mg_per_h"),
    ],
)
def test_limit_bounds_must_be_ordered(bounds, field):
    """hard_min <= soft_min <= soft_max <= hard_max, and at least one bound."""
    with pytest.raises(InvalidValueError) as info:
        Limit(quantity=Quantity.RATE_MG_PER_H, origin="test", **bounds)
    assert info.value.field == field


def test_equal_bounds_are_allowed():
    """A soft maximum equal to the hard maximum is a valid limit."""
    limit = Limit(quantity=Quantity.RATE_MG_PER_H, origin="t", soft_max=25.0, hard_max=25.0)
    assert limit.check(25.0, what="x") == []


def test_check_above_the_hard_maximum_gives_hard_and_soft_findings():
    """1.2 mg/kg/h is above both maxima: a hard stop then a warning, with codes and origin."""
    findings = RATE.check(1.2, what="Session 1")
    assert _codes(findings) == ["rate_mg_per_kg_h.hard_max", "rate_mg_per_kg_h.soft_max"]
    assert [f.severity for f in findings] == [Severity.HARD_STOP, Severity.WARNING]
    assert findings[0].reason.startswith("Session 1: 1.2 mg/kg/h is above the hard maximum of 1")
    assert "(test)" in findings[0].reason
    assert "overrides" in findings[0].reason
    assert findings[0].blocks


def test_check_below_the_minimums():
    """0.005 is below both minimums; 0.03 only below the soft minimum (a warning)."""
    assert _codes(RATE.check(0.005, what="x")) == [
        "rate_mg_per_kg_h.hard_min",
        "rate_mg_per_kg_h.soft_min",
    ]
    (warning,) = RATE.check(0.03, what="x")
    assert warning.code == "rate_mg_per_kg_h.soft_min"
    assert warning.severity is Severity.WARNING
    assert "below the soft minimum" in warning.reason


@pytest.mark.parametrize("value", [0.05, 0.3, 0.5])
def test_values_within_or_at_the_bounds_pass(value):
    """Values at a soft bound or between the soft bounds give no finding."""
    assert RATE.check(value, what="x") == []


@pytest.mark.parametrize(("value", "code"), [(0.01, "soft_min"), (1.0, "soft_max")])
def test_at_a_hard_bound_only_the_soft_bound_is_crossed(value, code):
    """At a hard bound there is no hard stop, only the warning of the soft bound beyond."""
    (f,) = RATE.check(value, what="x")
    assert f.code == f"rate_mg_per_kg_h.{code}"
    assert f.severity is Severity.WARNING


@pytest.mark.parametrize("weight_kg", [68.0, 187.0, 30.3, 46.2])
def test_exactly_at_the_limit_after_a_round_trip_passes(weight_kg):
    """0.35 x w / w equals 0.35 up to rounding (above it for 187 kg) and passes 0.35."""
    limit = Limit(quantity=Quantity.RATE_MG_PER_KG_H, origin="t", hard_max=0.35)
    assert limit.check(0.35 * weight_kg / weight_kg, what="x") == []
    assert _codes(limit.check(0.35 * 1.000001, what="x")) == ["rate_mg_per_kg_h.hard_max"]


def test_round_trip_above_the_limit_exists():
    """The tolerance matters: 0.35 x 187 / 187 is above 0.35 in floating point."""
    assert 0.35 * 187.0 / 187.0 > 0.35


@given(st.floats(0.0, 2.0))
def test_findings_match_the_bounds(value):
    """A hard stop exactly when outside the hard bounds, a warning when outside the soft ones."""
    findings = RATE.check(value, what="x")
    hard = [f for f in findings if f.severity is Severity.HARD_STOP]
    soft = [f for f in findings if f.severity is Severity.WARNING]
    assert bool(hard) == (value > 1.0 * (1 + 1e-9) or value < 0.01 - 1e-9)
    assert bool(soft) == (value > 0.5 + 1e-9 or value < 0.05 - 1e-9)


def test_limit_set_checks_every_limit_on_the_quantity():
    """Drug library and protocol limits both apply; highest is the tightest hard maximum."""
    library = Limit(quantity=Quantity.RATE_MG_PER_H, origin="library", hard_max=60.0)
    protocol = Limit(quantity=Quantity.RATE_MG_PER_H, origin="protocol", hard_max=25.0)
    other = Limit(quantity=Quantity.SESSION_DOSE_MG, origin="protocol", soft_min=80.0)
    limits = LimitSet((library,)) + LimitSet((protocol, other))
    assert limits.of(Quantity.RATE_MG_PER_H) == (library, protocol)
    assert limits.highest(Quantity.RATE_MG_PER_H) == 25.0
    assert limits.highest(Quantity.SESSION_DOSE_MG) is None
    assert limits.highest(Quantity.BOLUS_MG_PER_KG) is None
    findings = limits.check(Quantity.RATE_MG_PER_H, 70.0, what="x")
    assert _codes(findings) == ["rate_mg_per_h.hard_max"] * 2
    assert ["(library)" in f.reason for f in findings] == [True, False]
    assert limits.check(Quantity.RATE_MG_PER_H, 20.0, what="x") == []


def test_every_quantity_has_a_unit():
    """Each quantity prints with its unit."""
    assert Quantity.RATE_MG_PER_KG_H.unit == "mg/kg/h"
    assert Quantity.BAG_CONC_MG_PER_ML.unit == "mg/mL"
    assert all(q.unit for q in Quantity)


# --- the drug library ----------------------------------------------------------------------


def test_builtin_drug_library_profiles():
    """The built-in library has outpatient and inpatient profiles, each limit with a source."""
    lib = load_drug_library()
    assert lib.path == DRUG_LIBRARY_FILE
    assert sorted(lib.profiles) == ["inpatient", "outpatient"]
    for name in ("outpatient", "inpatient"):
        limits = lib.limits_for(name)
        assert limits.limits
        for limit in limits.limits:
            assert limit.source is not None and limit.source.authors
            assert limit.origin == f"drug library: {lib.titles[name]}"
    assert lib.titles["outpatient"] == "KETAMINE - CHRONIC PAIN (outpatient)"


def test_builtin_outpatient_values():
    """Outpatient: 1 mg/kg/h and 60 mg/h hard maxima, 5 mg/mL bags, weights 30-200 kg."""
    out = load_drug_library().limits_for("outpatient")
    assert out.highest(Quantity.RATE_MG_PER_KG_H) == 1.0
    assert out.highest(Quantity.RATE_MG_PER_H) == 60.0
    assert out.highest(Quantity.BAG_CONC_MG_PER_ML) == 5.0
    (weight,) = out.of(Quantity.WEIGHT_KG)
    assert (weight.hard_min, weight.hard_max) == (30.0, 200.0)
    inpatient = load_drug_library().limits_for("inpatient")
    assert inpatient.highest(Quantity.RATE_MG_PER_KG_H) == 2.0
    assert inpatient.highest(Quantity.RATE_MG_PER_H) == 100.0


def test_unknown_profile_lists_the_profiles():
    """An unknown setting raises UnknownNameError listing the profiles."""
    with pytest.raises(UnknownNameError) as info:
        load_drug_library().limits_for("home")
    assert info.value.known == ["inpatient", "outpatient"]


CLINIC = """\
[profiles.outpatient]
title = "Clinic outpatient"
rate_mg_per_kg_h = { soft_max = 0.4, hard_max = 0.8 }
weight_kg = { hard_min = 40.0, hard_max = 150.0 }
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "library.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_clinic_drug_library_loads(tmp_path):
    """A clinic file replaces the built-in values."""
    path = _write(tmp_path, CLINIC)
    lib = load_drug_library(path)
    assert lib.path == path
    assert list(lib.profiles) == ["outpatient"]
    limits = lib.limits_for("outpatient")
    assert limits.highest(Quantity.RATE_MG_PER_KG_H) == 0.8
    assert _codes(limits.check(Quantity.WEIGHT_KG, 35.0, what="w")) == ["weight_kg.hard_min"]
    assert limits.of(Quantity.WEIGHT_KG)[0].origin == "drug library: Clinic outpatient"


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("soft_max = 0.4,", "soft_maxx = 0.4,", "profiles.outpatient.rate_mg_per_kg_h.soft_maxx"),
        ("hard_max = 0.8", "hard_max = -0.8", "profiles.outpatient.rate_mg_per_kg_h.hard_max"),
        ("hard_max = 0.8", "hard_max = 46.0", "profiles.outpatient.rate_mg_per_kg_h.hard_max"),
        ("hard_max = 0.8", 'hard_max = "0.8"', "profiles.outpatient.rate_mg_per_kg_h.hard_max"),
        ("rate_mg_per_kg_h =", "rate_mg_per_min =", "profiles.outpatient.rate_mg_per_min"),
        ('title = "Clinic outpatient"', "title = 3", "profiles.outpatient.title"),
        ("[profiles.outpatient]\n", "colour = 1\n[profiles.outpatient]\n", "colour"),
        (
            "weight_kg = { hard_min = 40.0, hard_max = 150.0 }",
            "weight_kg = 40.0",
            "profiles.outpatient.weight_kg",
        ),
    ],
)
def test_bad_clinic_library_names_the_file_and_field(tmp_path, old, new, field):
    """A bad key or value in a clinic drug library raises ModelFileError naming file and field."""
    assert old in CLINIC
    path = _write(tmp_path, CLINIC.replace(old, new, 1))
    with pytest.raises(ModelFileError, match=rf"^{re.escape(str(path))}: ") as info:
        load_drug_library(path)
    assert info.value.path == str(path)
    assert info.value.field == field


@pytest.mark.parametrize("text", ["", "profiles = {}\n", "profiles = 3\n"])
def test_clinic_library_needs_profiles(tmp_path, text):
    """A file without profile tables names profiles."""
    path = _write(tmp_path, text)
    with pytest.raises(ModelFileError) as info:
        load_drug_library(path)
    assert info.value.field == "profiles"


def test_misordered_clinic_limit_is_refused(tmp_path):
    """A soft maximum above the hard maximum is refused with the file named."""
    path = _write(tmp_path, CLINIC.replace("soft_max = 0.4", "soft_max = 0.9"))
    with pytest.raises(ModelFileError, match=re.escape(str(path))) as info:
        load_drug_library(path)
    assert info.value.field.endswith("rate_mg_per_kg_h.hard_max")


def test_misordered_clinic_limit_names_the_profile(tmp_path):
    """The misordered limit's field includes its profile, like every other library error."""
    path = _write(tmp_path, CLINIC.replace("soft_max = 0.4", "soft_max = 0.9"))
    with pytest.raises(ModelFileError) as info:
        load_drug_library(path)
    assert info.value.field == "profiles.outpatient.rate_mg_per_kg_h.hard_max"


def test_missing_library_file(tmp_path):
    """A missing file raises InvalidValueError naming it."""
    with pytest.raises(InvalidValueError) as info:
        load_drug_library(tmp_path / "none.toml")
    assert info.value.value == str(tmp_path / "none.toml")


# --- check_rate ----------------------------------------------------------------------------


def test_check_rate_in_range():
    """35 mg/h at 70 kg (0.5 mg/kg/h) is within every outpatient limit."""
    limits = load_drug_library().limits_for("outpatient")
    assert check_rate(limits, rate_mg_per_h=35.0, dosing_weight_kg=70.0, what="change") == []


def test_check_rate_checks_mg_per_h_and_mg_per_kg_h():
    """70 mg/h at 70 kg: above 60 mg/h (hard) and 0.5 mg/kg/h (soft); 70 at 40 kg too."""
    limits = load_drug_library().limits_for("outpatient")
    got = check_rate(limits, rate_mg_per_h=70.0, dosing_weight_kg=70.0, what="change")
    assert _codes(got) == ["rate_mg_per_h.hard_max", "rate_mg_per_kg_h.soft_max"]
    got = check_rate(limits, rate_mg_per_h=50.0, dosing_weight_kg=40.0, what="change")
    assert _codes(got) == ["rate_mg_per_kg_h.hard_max", "rate_mg_per_kg_h.soft_max"]
    assert "1.25 mg/kg/h" in got[0].reason


def test_check_rate_low_rate_warns():
    """2 mg/h at 70 kg is below the 0.05 mg/kg/h soft minimum."""
    limits = load_drug_library().limits_for("outpatient")
    (f,) = check_rate(limits, rate_mg_per_h=2.0, dosing_weight_kg=70.0, what="change")
    assert f.code == "rate_mg_per_kg_h.soft_min"
    assert "0.02857 mg/kg/h" in f.reason


@pytest.mark.parametrize("weight", [0.0, -70.0, float("nan")])
def test_check_rate_needs_a_positive_weight(weight):
    """A dosing weight that is not above 0 names dosing_weight_kg."""
    limits = load_drug_library().limits_for("outpatient")
    with pytest.raises(InvalidValueError) as info:
        check_rate(limits, rate_mg_per_h=10.0, dosing_weight_kg=weight, what="x")
    assert info.value.field == "dosing_weight_kg"
