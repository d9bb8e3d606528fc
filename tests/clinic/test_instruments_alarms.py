"""Score instruments (ranges, items, pass marks) and alarm rules (defaults, file, words)."""

from __future__ import annotations

import pytest

from ketapain.clinic.alarms import DEFAULT_RULES, Rule, evaluate, load_rules
from ketapain.clinic.instruments import INSTRUMENTS
from ketapain.clinic.observations import Score
from ketapain.errors import InvalidValueError
from ketapain.sources import Source

SRC = Source(authors="Test A", year=2020, journal="J Test 1:1")
ALDRETE_9 = {"activity": 2, "respiration": 2, "circulation": 2, "consciousness": 1, "spo2": 2}


# --- instruments --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "low", "high", "pass_at"),
    [
        ("pain_nrs", 0, 10, None),
        ("nausea_nrs", 0, 10, None),
        ("moaas", 0, 5, None),
        ("rass", -5, 4, None),
        ("cadss6", 0, 24, None),
        ("aldrete", 0, 10, 9),
        ("padss", 0, 10, 9),
    ],
)
def test_instrument_ranges(name, low, high, pass_at):
    """Each instrument accepts whole numbers from its low to its high end only."""
    inst = INSTRUMENTS[name]
    assert (inst.low, inst.high, inst.pass_at_least) == (low, high, pass_at)
    for v in (low, high, float(low)):
        inst.check(v)
    for v in (low - 1, high + 1, low + 0.5):
        with pytest.raises(InvalidValueError, match=f"from {low} to {high}") as err:
            inst.check(v)
        assert err.value.field == f"{name} value"


def test_rass_runs_from_minus_5_to_4():
    """RASS spans -5 (unarousable) to +4 (combative)."""
    rass = INSTRUMENTS["rass"]
    for v in range(-5, 5):
        rass.check(v)
    with pytest.raises(InvalidValueError):
        rass.check(-6)
    with pytest.raises(InvalidValueError):
        rass.check(5)


def test_itemised_instruments_add_up_to_their_range():
    """An itemised instrument's items at their maximum give its highest total (the PEG,
    a mean, is tested on its own)."""
    itemised = [i for i in INSTRUMENTS.values() if i.items and not i.mean_of_items]
    assert {i.name for i in itemised} == {
        "cadss6",
        "aldrete",
        "padss",
        "phq9",
        "gad7",
        "pdq5",
        "urinary_screen",
    }
    for inst in itemised:
        assert inst.low == 0
        assert len(inst.items) * inst.item_max == inst.high
        assert inst.total(dict.fromkeys(inst.items, inst.item_max)) == inst.high
        assert inst.total(dict.fromkeys(inst.items, 0)) == 0


def test_peg_is_the_mean_of_its_three_items():
    """The PEG (Krebs 2009): pain, enjoyment and activity, each 0-10; the score is their
    mean, which may be a fraction, and no typed value other than the mean is accepted."""
    peg = INSTRUMENTS["peg"]
    assert peg.items == ("pain", "enjoyment", "activity")
    assert (peg.low, peg.high, peg.item_max, peg.mean_of_items) == (0, 10, 10, True)
    assert peg.source.short() == "Krebs 2009"
    assert peg.total({"pain": 7, "enjoyment": 6, "activity": 6}) == pytest.approx(19 / 3)
    assert peg.total(dict.fromkeys(peg.items, 10)) == 10.0
    peg.check(19 / 3)
    with pytest.raises(InvalidValueError, match="a mean from 0 to 10"):
        peg.check(10.5)
    score = Score(instrument="peg", items={"pain": 8, "enjoyment": 5, "activity": 5})
    score.check()
    assert score.value == pytest.approx(6.0)
    with pytest.raises(InvalidValueError, match=r"the mean of the items \(6\)") as err:
        Score(instrument="peg", items={"pain": 8, "enjoyment": 5, "activity": 5}, value=7).check()
    assert err.value.field == "value"
    with pytest.raises(InvalidValueError) as err:
        Score(instrument="peg", items={"pain": 11, "enjoyment": 5, "activity": 5}).check()
    assert err.value.field == "items.pain"


def test_aldrete_total_and_pass_mark():
    """Aldrete items sum to the total; 9 or more passes, 8 does not."""
    aldrete = INSTRUMENTS["aldrete"]
    assert aldrete.total(ALDRETE_9) == 9
    assert aldrete.passes(9) is True
    assert aldrete.passes(8) is False
    assert INSTRUMENTS["pain_nrs"].passes(3) is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"spo2": None}, "items.spo2"),
        ({"spo2": 3}, "items.spo2"),
        ({"spo2": -1}, "items.spo2"),
        ({"spo2": 1.0}, "items.spo2"),
        ({"spo2": True}, "items.spo2"),
        ({"spo2": "2"}, "items.spo2"),
        ({"colour": 2}, "items.colour"),
    ],
)
def test_itemised_total_refuses_bad_items(change, field):
    """A missing, out-of-range, non-integer or unknown item is refused naming items.<key>."""
    items = {**ALDRETE_9, **change}
    if change.get("spo2", 0) is None:
        del items["spo2"]
    with pytest.raises(InvalidValueError) as err:
        INSTRUMENTS["aldrete"].total(items)
    assert err.value.field == field


def test_every_instrument_cites_a_source():
    """Each instrument names the work its scale comes from."""
    for inst in INSTRUMENTS.values():
        assert inst.title
        assert inst.source.cite().strip()
        assert inst.source.authors.strip()


# --- scores -------------------------------------------------------------------------


def test_score_computes_the_total_from_items():
    """An itemised score without a typed total gets the sum of its items."""
    score = Score(
        instrument="padss",
        items={"vital_signs": 2, "activity": 2, "nausea_vomiting": 2, "pain": 1, "bleeding": 2},
    )
    score.check()
    assert score.value == 9.0
    typed = Score(instrument="aldrete", items=ALDRETE_9, value=9)
    typed.check()  # a typed total equal to the sum is accepted
    assert typed.value == 9.0


def test_score_refuses_a_mismatching_typed_total():
    """A typed total that differs from the sum of the items is refused."""
    with pytest.raises(InvalidValueError, match=r"the sum of the items \(9\)") as err:
        Score(instrument="aldrete", items=ALDRETE_9, value=10).check()
    assert err.value.field == "value"


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"instrument": "gcs", "value": 15}, "instrument"),
        ({"instrument": "aldrete", "value": 9}, "items"),
        ({"instrument": "pain_nrs", "value": 4, "items": {"a": 1}}, "items"),
        ({"instrument": "pain_nrs", "value": 11}, "pain_nrs value"),
        ({"instrument": "rass", "value": -6}, "rass value"),
        ({"instrument": "moaas", "value": 2.5}, "moaas value"),
    ],
)
def test_score_checks(kw, field):
    """Unknown instruments, missing or unexpected items and out-of-range values are refused."""
    with pytest.raises(InvalidValueError) as err:
        Score(**kw).check()
    assert err.value.field == field


def test_plain_score_passes():
    """A plain score in range passes the check unchanged."""
    score = Score(instrument="rass", value=-5)
    score.check()
    assert score.value == -5


# --- default rules ------------------------------------------------------------------


def test_every_default_rule_has_a_source():
    """Every default rule cites where its threshold comes from."""
    assert len(DEFAULT_RULES) == 22
    for rule in DEFAULT_RULES:
        assert rule.source.cite().strip()
        assert rule.source.authors.strip()


def test_default_stop_thresholds_follow_the_reference():
    """The stop values are Mo 2020's do-not-give limits, Aldrete's SpO2 and the scales'."""
    stops = {(r.signal, r.op): r.value for r in DEFAULT_RULES if r.level == "stop"}
    assert stops[("sbp_mmhg", ">")] == 180
    assert stops[("sbp_mmhg", "<")] == 90
    assert stops[("hr_per_min", ">")] == 150
    assert stops[("hr_per_min", "<")] == 50
    assert stops[("rr_per_min", ">")] == 30
    assert stops[("spo2_pct", "<")] == 90
    assert stops[("moaas", "<=")] == 2
    assert stops[("rass", "<=")] == -3
    assert stops[("rass", ">=")] == 3
    mo = [r for r in DEFAULT_RULES if r.level == "stop" and r.signal == "sbp_mmhg"]
    assert all("Mo" in r.source.cite() for r in mo)


def test_every_signal_with_a_stop_also_warns_first():
    """Each signal with a stop rule has a warning rule too (the middle step)."""
    stop_signals = {r.signal for r in DEFAULT_RULES if r.level == "stop"}
    warn_signals = {r.signal for r in DEFAULT_RULES if r.level == "warn"}
    assert stop_signals <= warn_signals


def test_evaluate_puts_stops_first_and_skips_missing_values():
    """Fired rules come most serious first; unmeasured signals fire nothing."""
    fired = evaluate(DEFAULT_RULES, {"sbp_mmhg": 185.0, "spo2_pct": None}, {})
    assert [(r.level, r.value) for r, _ in fired] == [("stop", 180), ("warn", 160)]
    assert evaluate(DEFAULT_RULES, {"sbp_mmhg": None}, {"sbp_mmhg": 100.0}) == []


@pytest.mark.parametrize(
    ("value", "baseline", "fires"),
    [(150.0, 120.0, True), (144.0, 120.0, False), (130.0, 100.0, True), (150.0, None, False)],
)
def test_rise_rule_needs_a_baseline(value, baseline, fires):
    """A rise of more than 20% over the baseline fires; without a baseline it cannot."""
    rise = Rule(signal="sbp_mmhg", level="warn", op="rise_pct", value=20, source=SRC)
    assert rise.fires(value, baseline=baseline) is fires


# --- rule words ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "value", "text"),
    [
        (("sbp_mmhg", "stop", ">", 180), 185, "SBP 185 mmHg > 180 (stop)"),
        (("dbp_mmhg", "warn", ">", 100), 104.5, "DBP 104.5 mmHg > 100 (warn)"),
        (("spo2_pct", "warn", "<=", 92), 91, "SpO2 91 % <= 92 (warn)"),
        (("hr_per_min", "stop", "<", 50), 44, "HR 44 /min < 50 (stop)"),
        (("temp_c", "warn", ">=", 38.5), 39, "Temperature 39 C >= 38.5 (warn)"),
        (("moaas", "stop", "<=", 2), 2, "MOAA/S 2 <= 2 (stop)"),
        (("rass", "warn", ">=", 2), 3, "RASS 3 >= 2 (warn)"),
        (
            ("sbp_mmhg", "warn", "rise_pct", 20),
            150,
            "SBP 150 mmHg rose more than 20% from baseline (warn)",
        ),
    ],
)
def test_rule_describe(rule, value, text):
    """An alarm reads as signal, value and unit, the comparison, the threshold and the level."""
    signal, level, op, threshold = rule
    r = Rule(signal=signal, level=level, op=op, value=threshold, source=SRC)
    assert r.describe(value) == text


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"signal": "glucose"}, "rule signal"),
        ({"level": "panic"}, "rule level"),
        ({"op": "=="}, "rule op"),
    ],
)
def test_rule_refuses_unknown_signal_level_or_op(kw, field):
    """A rule needs a known signal, a level of warn or stop and a known comparison."""
    values = {"signal": "sbp_mmhg", "level": "warn", "op": ">", "value": 160, "source": SRC}
    values.update(kw)
    with pytest.raises(InvalidValueError) as err:
        Rule(**values)
    assert err.value.field == field


# --- rules from a file --------------------------------------------------------------

VALID = """
[[rule]]
signal = "sbp_mmhg"
level = "stop"
op = ">"
value = 170
source = "Clinic policy 2026"

[[rule]]
signal = "moaas"
level = "warn"
op = "<="
value = 3.0
source = "Chernik 1990"
"""


def test_load_rules_defaults_without_a_file():
    """Without a file the defaults apply."""
    assert load_rules(None) is DEFAULT_RULES


def test_load_rules_from_a_file_replaces_the_defaults(tmp_path):
    """A valid file's rules replace the defaults entirely, with their sources."""
    path = tmp_path / "alarms.toml"
    path.write_text(VALID, encoding="utf-8")
    rules = load_rules(path)
    assert [(r.signal, r.level, r.op, r.value) for r in rules] == [
        ("sbp_mmhg", "stop", ">", 170.0),
        ("moaas", "warn", "<=", 3.0),
    ]
    assert all(isinstance(r.value, float) for r in rules)
    assert rules[0].source.cite() == "Clinic policy 2026, n.d. clinic alarm rules"
    fired = evaluate(rules, {"sbp_mmhg": 175.0, "hr_per_min": 160.0}, {})
    assert [r.describe(v) for r, v in fired] == ["SBP 175 mmHg > 170 (stop)"]


_RULE = 'signal = "sbp_mmhg"\nlevel = "stop"\nop = ">"\nvalue = 170\nsource = "x"\n'


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[[rule]]\n" + _RULE.replace('source = "x"\n', ""), "rule[0]"),
        ("[[rule]]\n" + _RULE + 'extra = "y"\n', "rule[0]"),
        ("[[rule]]\n" + _RULE + "[[rule]]\n" + _RULE.replace('"stop"', '"alert"'), "rule level"),
        ("[[rule]]\n" + _RULE.replace('">"', '"=="'), "rule op"),
        ("[[rule]]\n" + _RULE.replace('"sbp_mmhg"', '"bp"'), "rule signal"),
        ("[[rule]]\n" + _RULE.replace("value = 170", 'value = "170"'), "rule[0].value"),
        ("[[rule]]\n" + _RULE.replace("value = 170", "value = true"), "rule[0].value"),
        ("rule = 5\n", "rule"),
        ("rule = []\n", "rule"),
        ("[thresholds]\nsbp = 180\n", "rule"),
        ("rule = [1, 2]\n", "rule[0]"),
        ("[[rule]\nsignal = \n", "alarm thresholds file"),
    ],
)
def test_load_rules_refuses_malformed_files(tmp_path, text, field):
    """Malformed tables, bad ops or levels, non-number values and bad TOML are refused."""
    path = tmp_path / "alarms.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidValueError) as err:
        load_rules(path)
    assert err.value.field == field


def test_load_rules_missing_file(tmp_path):
    """A file that cannot be read is refused naming the thresholds file."""
    with pytest.raises(InvalidValueError, match="readable TOML") as err:
        load_rules(tmp_path / "missing.toml")
    assert err.value.field == "alarm thresholds file"
