"""Tests of ketapain.protocols.titration: increase, hold or reduce by one step, never
above a limit, with reasons and sources."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from ketapain.errors import InvalidValueError
from ketapain.protocols.findings import Severity
from ketapain.protocols.guardrails import Limit, LimitSet, Quantity, load_drug_library
from ketapain.protocols.library import get_protocol
from ketapain.protocols.titration import (
    DEFAULT_TOLERABILITY,
    MONITORING_RULES,
    Tolerability,
    next_session_rate,
)

SEED = get_protocol("seed-outpatient")
SERIES = SEED.phases[1]  # 0.35 mg/kg/h, +0.05 per session up to 0.5
OUTPATIENT = load_drug_library().limits_for("outpatient")  # 1 mg/kg/h and 60 mg/h hard


def _step(**kw):
    """The seed series at 0.4 mg/kg/h, 70 kg, 10% relief, tolerated, changed by ``kw``."""
    args = {
        "phase": SERIES,
        "last_rate": 0.4,
        "relief_fraction": 0.1,
        "dosing_weight_kg": 70,
        "limits": OUTPATIENT,
    }
    return next_session_rate(**(args | kw))


def _explicit(**kw):
    """An explicit mg/kg/h rule (step 0.05, maximum 1) without limits, changed by ``kw``."""
    args = {
        "step": 0.05,
        "max_rate": 1.0,
        "per_kg": True,
        "last_rate": 0.4,
        "relief_fraction": 0.1,
        "dosing_weight_kg": 70,
        "limits": LimitSet(),
    }
    return next_session_rate(**(args | kw))


# --- the three actions ---------------------------------------------------------------------


def test_tolerated_without_enough_relief_steps_up():
    """0.4 -> 0.45 mg/kg/h (31.5 mg/h at 70 kg), citing the phase's rule and Cohen 2018."""
    s = _step()
    assert s.action == "increase"
    assert_allclose([s.rate_next, s.rate_mg_per_h_next], [0.45, 31.5], rtol=1e-12)
    assert s.unit == "mg/kg/h"
    assert s.capped_by == ()
    assert s.reasons[0].startswith("Increase by one step (0.05 mg/kg/h)")
    assert SERIES.titration is not None and SERIES.titration.source in s.sources
    assert s.limit_findings == ()


@pytest.mark.parametrize(("relief", "action"), [(0.30, "hold"), (0.299, "increase")])
def test_relief_at_the_target_holds(relief, action):
    """Relief exactly 30% holds (seed: "hold if relief at least 30%"); 29.9% steps up."""
    assert _step(relief_fraction=relief).action == action


def test_target_is_configurable():
    """With a 50% target, 40% relief still steps up."""
    assert _step(relief_fraction=0.4, response_target=0.5).action == "increase"


@pytest.mark.parametrize(
    ("kw", "action"),
    [
        ({"min_moaas": 3}, "hold"),
        ({"min_moaas": 4}, "increase"),
        ({"max_sbp_mmhg": 161}, "hold"),
        ({"max_sbp_mmhg": 160}, "increase"),
        ({"max_dbp_mmhg": 101}, "hold"),
        ({"max_dbp_mmhg": 100}, "increase"),
    ],
)
def test_warn_level_holds_and_the_level_itself_does_not(kw, action):
    """MOAA/S 3, SBP above 160 and DBP above 100 hold; exactly 160/100 do not."""
    assert _step(**kw).action == action


@pytest.mark.parametrize(
    ("kw", "action"),
    [
        ({"min_moaas": 2}, "reduce"),
        ({"min_moaas": 0}, "reduce"),
        ({"max_sbp_mmhg": 181}, "reduce"),
        ({"max_sbp_mmhg": 180}, "hold"),
        ({"max_dbp_mmhg": 111}, "reduce"),
        ({"max_dbp_mmhg": 110}, "hold"),
        ({"stop_alarm": True}, "reduce"),
        ({"severe_side_effect": True}, "reduce"),
    ],
)
def test_stop_level_reduces_one_step(kw, action):
    """MOAA/S 2 or less, SBP above 180, DBP above 110, a stop alarm or a severe side
    effect take one step off; exactly 180/110 are warn level only (hold)."""
    s = _step(**kw)
    assert s.action == action
    if action == "reduce":
        assert_allclose(s.rate_next, 0.35, rtol=1e-12)
        assert s.reasons[0].startswith("Not tolerated")


def test_reduce_reason_cites_the_monitoring_rules():
    """SBP 185: the reason gives the value and cites Mo 2020; DBP cites the derived rules."""
    s = _step(max_sbp_mmhg=185, max_dbp_mmhg=115)
    assert "SBP 185 mmHg (above 180)" in s.reasons[0]
    assert "DBP 115 mmHg (above 110)" in s.reasons[0]
    assert any(src.short() == "Mo 2020" for src in s.sources)
    assert MONITORING_RULES in s.sources


def test_reduce_never_goes_below_one_step():
    """0.08 -> 0.05 (not 0.03); at 0.05 it stays at 0.05 (hold) and says so."""
    assert_allclose(_explicit(last_rate=0.08, min_moaas=2).rate_next, 0.05, rtol=1e-12)
    s = _explicit(last_rate=0.05, min_moaas=2)
    assert (s.action, s.rate_next) == ("hold", 0.05)
    assert any("already at one step" in r for r in s.reasons)


def test_reduce_respects_a_hard_minimum():
    """A hard minimum of 0.2 mg/kg/h stops a reduction from 0.22 at 0.2, and is named."""
    floor = LimitSet((Limit(quantity=Quantity.RATE_MG_PER_KG_H, origin="clinic", hard_min=0.2),))
    s = _explicit(last_rate=0.22, min_moaas=2, limits=floor)
    assert (s.action, s.rate_next) == ("reduce", 0.2)
    assert any("hard minimum of 0.2 mg/kg/h" in r for r in s.reasons)
    assert s.limit_findings == ()


def test_warnings_are_listed_alongside_a_stop():
    """A stop and a warn finding together: reduce, and the warning is still reported."""
    s = _step(min_moaas=2, max_sbp_mmhg=170)
    assert s.action == "reduce"
    assert any(r.startswith("Also at the warn level") and "SBP 170" in r for r in s.reasons)


# --- caps ----------------------------------------------------------------------------------


def test_titration_maximum_caps_and_is_named():
    """At the 0.5 mg/kg/h maximum, a step up is held at 0.5 and the reason names it."""
    s = _step(last_rate=0.5)
    assert (s.action, s.rate_next) == ("hold", 0.5)
    assert s.capped_by == ("the titration maximum of 0.5 mg/kg/h",)
    assert "Capped at 0.5 mg/kg/h by the titration maximum" in s.reasons[-1]


def test_drug_library_hard_maximum_caps_a_heavy_patient():
    """0.45 mg/kg/h at 150 kg is 67.5 mg/h, above the 60 mg/h hard maximum: 0.4 mg/kg/h."""
    s = _step(last_rate=0.45, dosing_weight_kg=150)
    assert s.action == "reduce"
    assert_allclose([s.rate_next, s.rate_mg_per_h_next], [0.4, 60.0], rtol=1e-12)
    assert s.capped_by[0].startswith("the hard maximum of 60 mg/h (drug library")
    assert not [f for f in s.limit_findings if f.severity is Severity.HARD_STOP]


def test_protocol_maximum_caps():
    """The protocol's 25 mg/h cap at 70 kg holds 0.35 -> 25/70 mg/kg/h, not 0.4."""
    s = _step(last_rate=0.35, protocol_max_rate_mg_per_h=25)
    assert_allclose(s.rate_mg_per_h_next, 25.0, rtol=1e-12)
    assert s.capped_by == ("the protocol maximum of 25 mg/h",)


def test_two_equal_caps_are_both_named():
    """A library hard maximum equal to the titration maximum: both are named."""
    lim = LimitSet((Limit(quantity=Quantity.RATE_MG_PER_KG_H, origin="clinic", hard_max=0.5),))
    s = _explicit(last_rate=0.5, max_rate=0.5, limits=lim)
    assert len(s.capped_by) == 2


def test_soft_limit_is_reported_not_capped():
    """0.5 -> 0.55 mg/kg/h crosses the soft maximum 0.5: a warning finding, no cap."""
    s = _explicit(last_rate=0.5, limits=OUTPATIENT)
    assert_allclose(s.rate_next, 0.55, rtol=1e-12)
    assert [f.code for f in s.limit_findings] == ["rate_mg_per_kg_h.soft_max"]


def test_mg_per_h_titration():
    """The 40 -> 80 mg protocol titrates in mg/h: 10 -> 12.5 mg/h whatever the weight."""
    phase = get_protocol("ten-weekdays-40-80mg").phases[0]
    s = _step(phase=phase, last_rate=10.0, dosing_weight_kg=50)
    assert (s.unit, s.rate_next, s.rate_mg_per_h_next) == ("mg/h", 12.5, 12.5)


# --- CADSS-6 and the thresholds ------------------------------------------------------------


def test_cadss6_is_not_checked_without_clinic_levels():
    """No published CADSS-6 cut-off: by default a CADSS-6 of 20 changes nothing."""
    assert DEFAULT_TOLERABILITY.cadss6_stop_above is None
    assert _step(max_cadss6=20).action == "increase"


@pytest.mark.parametrize(("cadss", "action"), [(8, "increase"), (9, "hold"), (13, "reduce")])
def test_cadss6_levels_set_by_the_clinic(cadss, action):
    """Warn above 8, stop above 12 (the clinic's levels)."""
    tol = Tolerability(cadss6_warn_above=8, cadss6_stop_above=12)
    assert _step(max_cadss6=cadss, tolerability=tol).action == action


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"sbp_warn_above_mmhg": 190}, "tolerability.sbp_warn_above_mmhg"),
        ({"dbp_warn_above_mmhg": 120}, "tolerability.dbp_warn_above_mmhg"),
        ({"moaas_warn_at_or_below": 1}, "tolerability.moaas_warn_at_or_below"),
        ({"cadss6_warn_above": 10, "cadss6_stop_above": 5}, "tolerability.cadss6_warn_above"),
        ({"moaas_stop_at_or_below": 1.5}, "tolerability.moaas_stop_at_or_below"),
        ({"sbp_stop_above_mmhg": 400}, "tolerability.sbp_stop_above_mmhg"),
    ],
)
def test_tolerability_levels_are_validated(kw, field):
    """Warn levels beyond stop levels, or values off the scale, are refused by field."""
    with pytest.raises(InvalidValueError) as info:
        Tolerability(**kw)
    assert info.value.field == field


# --- bad input and the record --------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"phase": SEED.phases[2]}, "phases.oral.titration"),
        ({"step": 0.05}, "step/max_rate/per_kg"),
        ({"phase": None}, "step/max_rate/per_kg"),
        ({"last_rate": 0}, "last_rate"),
        ({"dosing_weight_kg": 0}, "dosing_weight_kg"),
        ({"relief_fraction": 1.5}, "relief_fraction"),
        ({"relief_fraction": float("nan")}, "relief_fraction"),
        ({"response_target": 1.0}, "response_target"),
        ({"min_moaas": 2.5}, "min_moaas"),
        ({"max_sbp_mmhg": 400}, "max_sbp_mmhg"),
        ({"max_dbp_mmhg": 10}, "max_dbp_mmhg"),
        ({"max_cadss6": 30}, "max_cadss6"),
        ({"protocol_max_rate_mg_per_h": -1}, "protocol_max_rate_mg_per_h"),
    ],
)
def test_bad_input_names_the_field(kw, field):
    """Each bad input raises InvalidValueError naming its field."""
    with pytest.raises(InvalidValueError) as info:
        _step(**kw)
    assert info.value.field == field


def test_explicit_rule_refuses_a_zero_step():
    """An explicit step must be above 0."""
    with pytest.raises(InvalidValueError) as info:
        _explicit(step=0)
    assert info.value.field == "step"


def test_as_dict_is_json():
    """The record serialises to JSON with the findings and sources."""
    d = _step(last_rate=0.45, dosing_weight_kg=150).as_dict()
    assert set(d) == {
        "action",
        "rate_last",
        "rate_next",
        "unit",
        "rate_mg_per_h_next",
        "dosing_weight_kg",
        "capped_by",
        "reasons",
        "sources",
        "limit_findings",
    }
    assert json.loads(json.dumps(d)) == d
    assert d["sources"]


# --- property: never above a limit ---------------------------------------------------------


@st.composite
def _cases(draw):
    per_kg = draw(st.booleans())
    unit_high = 2.0 if per_kg else 150.0
    step = draw(st.floats(0.001 * unit_high, 0.2 * unit_high))
    limits = []
    for q, high in ((Quantity.RATE_MG_PER_H, 150.0), (Quantity.RATE_MG_PER_KG_H, 2.0)):
        if draw(st.booleans()):
            limits.append(Limit(quantity=q, origin="t", hard_max=draw(st.floats(0.01, high))))
    return {
        "step": step,
        "max_rate": draw(st.floats(step, unit_high)),
        "per_kg": per_kg,
        "last_rate": draw(st.floats(0.001 * unit_high, 1.5 * unit_high)),
        "relief_fraction": draw(st.floats(-1.0, 1.0)),
        "dosing_weight_kg": draw(st.floats(30, 250)),
        "limits": LimitSet(tuple(limits)),
        "protocol_max_rate_mg_per_h": draw(st.none() | st.floats(1, 150)),
        "min_moaas": draw(st.none() | st.integers(0, 5)),
        "max_sbp_mmhg": draw(st.none() | st.floats(90, 220)),
        "stop_alarm": draw(st.booleans()),
    }


@given(_cases())
def test_suggestion_never_exceeds_any_maximum(case):
    """Whatever the last session, the suggestion is at or below the titration maximum, the
    protocol cap and every hard maximum, and no hard-maximum finding comes with it."""
    s = next_session_rate(**case)
    w, tol = case["dosing_weight_kg"], 1 + 1e-9
    per_kg_rate = s.rate_mg_per_h_next / w
    assert s.rate_next > 0
    assert s.rate_next <= case["max_rate"] * tol
    if case["protocol_max_rate_mg_per_h"] is not None:
        assert s.rate_mg_per_h_next <= case["protocol_max_rate_mg_per_h"] * tol
    for lim in case["limits"].limits:
        value = per_kg_rate if lim.quantity is Quantity.RATE_MG_PER_KG_H else s.rate_mg_per_h_next
        assert value <= lim.hard_max * tol
    assert not [f for f in s.limit_findings if f.code.endswith("hard_max")]
    if s.capped_by:
        assert any("Capped at" in r for r in s.reasons)


@given(_cases())
def test_a_step_is_at_most_one_step(case):
    """Unless a cap pulls it further down, the rate moves by at most one step."""
    s = next_session_rate(**case)
    if not s.capped_by:
        assert abs(s.rate_next - s.rate_last) <= case["step"] * (1 + 1e-9) + 1e-9
