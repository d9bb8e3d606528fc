"""Tests of ketapain.protocols.library and .schema: the built-in protocols and the loader."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from ketapain.errors import InvalidValueError, ModelFileError, UnknownNameError
from ketapain.pharmacology.model import Drug
from ketapain.pharmacology.schedules import Infusion, OralDose, Route
from ketapain.protocols import Protocol, get_protocol, list_protocols, load_protocol_file
from ketapain.protocols.guardrails import Quantity
from ketapain.protocols.library import LIBRARY_DIR
from ketapain.protocols.schema import Setting, Trigger

BUILTIN = (
    "booster",
    "continuous-100h",
    "five-day-getson",
    "five-day-outpatient-ramp",
    "five-day-ramp",
    "oral-follow-on",
    "seed-outpatient",
    "single-day",
    "ten-weekdays",
    "ten-weekdays-40-80mg",
)


def _infusion_rates_per_kg(schedule) -> list[float]:
    return [d.rate_mg_per_kg_h for d in schedule.infusions]


# --- built-in protocols --------------------------------------------------------------------


def test_list_protocols_returns_the_builtins_sorted_by_name():
    """The library ships ten protocols, listed sorted by name."""
    protocols = list_protocols()
    assert [p.name for p in protocols] == list(BUILTIN)
    assert all(isinstance(p, Protocol) for p in protocols)


def test_every_library_file_is_a_builtin():
    """Each TOML file in the library directory is one built-in, named after its file."""
    stems = sorted(path.stem for path in LIBRARY_DIR.glob("*.toml"))
    assert stems == sorted(BUILTIN)


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_protocols_are_complete(name):
    """Each built-in has a title, sources, a setting, phases with doses and a model of its drug."""
    p = get_protocol(name)
    assert p.name == name
    assert p.title
    assert p.description and "  " not in p.description and "\n" not in p.description
    assert isinstance(p.setting, Setting)
    assert len(p.sources) >= 1
    assert all(s.authors for s in p.sources)
    assert p.path is not None and p.path.parent == LIBRARY_DIR
    assert p.path.name == f"{name}.toml"
    assert p.pk_model().name == p.model
    assert p.pk_model().drug is p.drug
    assert p.phases
    assert all(ph.session.doses for ph in p.phases)
    assert p.slots()
    p.check_layout()


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_protocols_load_from_their_file(name):
    """Loading the built-in's file again gives an equal protocol."""
    p = get_protocol(name)
    assert load_protocol_file(p.path) == p


def test_builtin_settings():
    """The continuous multi-day protocols are inpatient; the others outpatient."""
    inpatient = {p.name for p in list_protocols() if p.setting is Setting.INPATIENT}
    assert inpatient == {"continuous-100h", "five-day-getson", "five-day-ramp"}


def test_seed_outpatient_phases_and_rules():
    """Test, series, oral and booster phases; decision after session 2; midazolam; escort."""
    p = get_protocol("seed-outpatient")
    assert [ph.name for ph in p.phases] == ["test", "series", "oral", "booster"]
    assert [ph.trigger for ph in p.phases] == [
        Trigger.SCHEDULED,
        Trigger.AFTER_DECISION,
        Trigger.AFTER_DECISION,
        Trigger.ON_RELAPSE,
    ]
    assert [dp.after_session for dp in p.decision_points] == [2]
    assert p.decision_points[0].source is not None
    midazolam = [m for m in p.premedication if m.drug == "midazolam"]
    assert len(midazolam) == 1
    assert midazolam[0].dose_mg == 2.0
    assert midazolam[0].route == "iv"
    assert not midazolam[0].prn
    assert midazolam[0].text() == "midazolam 2 mg iv, before the infusion"
    assert p.discharge is not None
    assert p.discharge.escort_home is True
    assert p.discharge.observation_min == 120.0
    assert p.setting is Setting.OUTPATIENT


def test_seed_outpatient_oral_phase():
    """14 days of 0.5 mg/kg at 08:00, 14:00 and 20:00: 42 oral doses of the course."""
    p = get_protocol("seed-outpatient")
    oral = p.phases[2]
    assert oral.oral
    assert oral.days == tuple(range(14))
    assert oral.session.doses == tuple(
        OralDose(time_h=t, dose_mg_per_kg=0.5) for t in (8.0, 14.0, 20.0)
    )
    assert len(p.oral_doses) == 14 * 3
    assert all(d.route is Route.ORAL for d in p.oral_doses)


def test_seed_outpatient_calendar():
    """Tests on days 0-1, series on 2-4 and 7-8, oral days 9-22; the booster is not laid out."""
    p = get_protocol("seed-outpatient")
    slots = p.slots()
    by_phase = {
        name: [s.day for s in group]
        for name, group in itertools.groupby(slots, key=lambda s: s.phase.name)
    }
    assert by_phase == {
        "test": [0, 1],
        "series": [2, 3, 4, 7, 8],
        "oral": list(range(9, 23)),
    }
    assert [ph.name for ph in p.boosters()] == ["booster"]
    assert [s.index for s in slots if s.phase.name == "series"] == [0, 1, 2, 3, 4]


def test_seed_outpatient_titration():
    """Tests 0.2 then 0.3 mg/kg/h; series 0.35, 0.40, 0.45, 0.5 and held at 0.5 (rtol 1e-12)."""
    p = get_protocol("seed-outpatient")
    test, series = p.phases[0], p.phases[1]
    assert series.titration is not None and series.titration.unit == "mg/kg/h"
    got = [_infusion_rates_per_kg(series.session_schedule(i))[0] for i in range(5)]
    assert_allclose(got, [0.35, 0.40, 0.45, 0.5, 0.5], rtol=1e-12)
    tests = [_infusion_rates_per_kg(test.session_schedule(i))[0] for i in range(2)]
    assert_allclose(tests, [0.2, 0.3], rtol=1e-12)
    assert_allclose(series.titration.rate(0.35, 40), 0.5, rtol=1e-12)


def test_titrated_slots_carry_the_titrated_rates():
    """A slot's schedule is the titrated session moved to its day (09:00-13:00 at day 8)."""
    p = get_protocol("seed-outpatient")
    last = [s for s in p.slots() if s.phase.name == "series"][-1]
    (inf,) = last.schedule.infusions
    assert inf.start_h == 8 * 24 + 9.0
    assert inf.end_h == 8 * 24 + 13.0
    assert_allclose(inf.rate_mg_per_kg_h, 0.5, rtol=1e-12)


def test_infusion_rates_include_titration_ceilings():
    """The course's rates end with each titration ceiling (0.3 and 0.5 mg/kg/h)."""
    rates = [d.rate_mg_per_kg_h for d in get_protocol("seed-outpatient").infusion_rates()]
    assert_allclose(rates[-2:], [0.3, 0.5], rtol=1e-12)
    assert_allclose(max(rates), 0.5, rtol=1e-12)


def test_five_day_getson_steps_20_to_40_mg_per_h():
    """20, 25, 30, 35 then 40 mg/h, each step 5 mg/h, 4 h apart, for 120 h from 09:00."""
    p = get_protocol("five-day-getson")
    infusions = p.phases[0].session.infusions
    rates = [d.rate_mg_per_h for d in infusions]
    assert rates == [20.0, 25.0, 30.0, 35.0, 40.0]
    assert_allclose(np.diff(rates), 5.0, rtol=0)
    assert [d.duration_h for d in infusions[:-1]] == [4.0] * 4
    assert all(a.end_h == b.start_h for a, b in itertools.pairwise(infusions))
    assert infusions[0].start_h == 9.0
    assert p.schedule().end_h() == 9.0 + 120.0
    assert p.limits.highest(Quantity.RATE_MG_PER_H) == 40.0
    assert p.setting is Setting.INPATIENT


def test_ten_weekdays_40_80mg_session_doses():
    """40, 50, 60, 70 then 80 mg per session, whatever the weight (mg/h titration)."""
    p = get_protocol("ten-weekdays-40-80mg")
    expected = [40.0, 50.0, 60.0, 70.0] + [80.0] * 6
    for weight in (50.0, 120.0):
        got = [s.schedule.total_dose_mg(weight_kg=weight) for s in p.slots()]
        assert_allclose(got, expected, rtol=1e-12)
    assert_allclose(p.total_dose_mg(70.0), sum(expected), rtol=1e-12)
    assert p.limits.highest(Quantity.SESSION_DOSE_MG) == 80.0


def test_ten_weekdays_skips_weekends():
    """Ten 9:00-13:00 sessions on weekdays: days 0-4 and 7-11, ending at 277 h."""
    p = get_protocol("ten-weekdays")
    days = [s.day for s in p.slots()]
    assert days == [0, 1, 2, 3, 4, 7, 8, 9, 10, 11]
    sched = p.schedule()
    assert len(sched.doses) == 10
    assert sched.end_h() == 277.0
    assert [d.start_h for d in sched.doses] == [24.0 * day + 9.0 for day in days]
    assert p.drug is Drug.RACEMIC
    assert p.max_rate_mg_per_h == 25.0


@pytest.mark.parametrize(
    ("start_weekday", "first"),
    [(0, 0), (1, 0), (4, 0), (5, 2), (6, 1)],
)
def test_weekday_course_starts_on_the_next_weekday(start_weekday, first):
    """A Saturday start moves a weekday-only course to day 2, a Sunday start to day 1."""
    days = [s.day for s in get_protocol("ten-weekdays").slots(start_weekday=start_weekday)]
    assert days[0] == first
    assert len(days) == 10
    assert all((start_weekday + d) % 7 < 5 for d in days)


def test_saturday_start_of_seed_outpatient():
    """From a Saturday: tests Monday-Tuesday, series Wed-Fri and Mon-Tue, oral from Wednesday."""
    slots = get_protocol("seed-outpatient").slots(start_weekday=5)
    days = {name: [s.day for s in slots if s.phase.name == name] for name in ("test", "series")}
    assert days == {"test": [2, 3], "series": [4, 5, 6, 9, 10]}
    oral = [s.day for s in slots if s.phase.name == "oral"]
    assert oral == list(range(11, 25))


def test_weekend_days_are_kept_when_the_phase_does_not_skip_them():
    """The continuous protocols start on day 0 whatever the weekday."""
    for name in ("continuous-100h", "five-day-ramp", "five-day-getson", "oral-follow-on"):
        assert get_protocol(name).slots(start_weekday=5)[0].day == 0


def test_ten_weekdays_rate_cap_through_the_dosing_weight():
    """The 25 mg/h cap doses a 90-kg patient as 25/0.35 kg (rtol 1e-14); lighter ones as is."""
    p = get_protocol("ten-weekdays")
    got = p.dosing_weight_kg(np.array([50.0, 70.0, 90.0, 120.0]))
    assert_allclose(got, [50.0, 70.0, 25 / 0.35, 25 / 0.35], rtol=1e-14)
    assert_allclose(0.35 * got[2], 25.0, rtol=1e-14)


def test_ten_weekdays_total_dose():
    """70 kg: 10 x 4 h x min(0.35 x 70, 25) mg/h = 980 mg; 90 kg: 10 x 4 x 25 = 1000 mg."""
    p = get_protocol("ten-weekdays")
    assert_allclose(p.total_dose_mg(70.0), 980.0, rtol=1e-12)
    assert_allclose(p.total_dose_mg(90.0), 1000.0, rtol=1e-12)


def test_dosing_weight_cap_uses_the_titration_ceiling():
    """five-day-outpatient-ramp caps at 60 mg/h / 1.0 mg/kg/h = 60 kg; uncapped ones None."""
    assert_allclose(get_protocol("ten-weekdays").dosing_weight_cap_kg, 25 / 0.35, rtol=1e-14)
    assert_allclose(get_protocol("five-day-outpatient-ramp").dosing_weight_cap_kg, 60.0, rtol=0)
    assert get_protocol("single-day").dosing_weight_cap_kg is None
    assert get_protocol("continuous-100h").dosing_weight_cap_kg is None


def test_absolute_rates_are_not_scaled_by_the_cap_logic():
    """five-day-ramp gives mg/h rates: the dosing weight is the body weight."""
    p = get_protocol("five-day-ramp")
    assert_allclose(p.dosing_weight_kg(np.array([55.0, 130.0])), [55.0, 130.0], rtol=0)
    assert all(d.rate_mg_per_h is not None for d in p.phases[0].session.infusions)


def test_five_day_ramp_dose_and_duration():
    """10-20-30 mg/h for 1.5 h each then 40 mg/h: 4710 mg ending at 129 h (rtol 1e-12)."""
    p = get_protocol("five-day-ramp")
    assert p.schedule().end_h() == 129.0
    assert_allclose(p.total_dose_mg(80.0), 1.5 * (10 + 20 + 30) + 115.5 * 40, rtol=1e-12)


def test_continuous_100h_titrates_to_22_2_mg_per_h_per_70_kg():
    """Eight steps over 100 h from 9:00; the last is 0.31714 mg/kg/h = 22.2 mg/h at 70 kg."""
    p = get_protocol("continuous-100h")
    assert p.drug is Drug.S_KETAMINE
    infusions = p.phases[0].session.infusions
    assert len(infusions) == 8
    assert infusions[0].start_h == 9.0
    assert p.schedule().end_h() == 109.0
    assert all(a.end_h == b.start_h for a, b in itertools.pairwise(infusions))
    rates = [d.rate_mg_per_kg_h for d in infusions]
    assert rates == sorted(rates)
    assert_allclose(infusions[-1].rate_for(70.0), 22.2, rtol=1e-4)


def test_single_day_is_140_mg_for_70_kg():
    """0.5 mg/kg/h for 4 h: 140 mg for 70 kg (rtol 1e-12), on day 0 only."""
    p = get_protocol("single-day")
    assert_allclose(p.total_dose_mg(70.0), 140.0, rtol=1e-12)
    assert [s.day for s in p.slots()] == [0]


def test_booster_decides_after_the_first_day():
    """Two booster days on weekdays, a decision after the first, capped at 25 mg/h."""
    p = get_protocol("booster")
    assert [s.day for s in p.slots(start_weekday=4)] == [0, 3]
    assert [dp.after_session for dp in p.decision_points] == [1]
    assert p.limits.highest(Quantity.RATE_MG_PER_H) == 25.0


def test_get_protocol_by_path(tmp_path):
    """A path (str or Path, with or without .toml) loads that file."""
    builtin = get_protocol("single-day")
    assert get_protocol(str(builtin.path)).name == "single-day"
    assert get_protocol(builtin.path).schedule() == builtin.schedule()
    copy = tmp_path / "my-protocol.txt"
    copy.write_text(builtin.path.read_text(encoding="utf-8"), encoding="utf-8")
    loaded = get_protocol(copy)
    assert loaded.path == copy
    assert loaded.phases == builtin.phases


def test_unknown_protocol_lists_the_known_names():
    """An unknown name raises UnknownNameError listing every built-in."""
    with pytest.raises(UnknownNameError, match="unknown protocol 'weekly'") as info:
        get_protocol("weekly")
    assert info.value.known == list(BUILTIN)
    for name in BUILTIN:
        assert name in str(info.value)


def test_missing_toml_file_is_an_invalid_value(tmp_path):
    """A .toml path that does not exist raises InvalidValueError naming the file."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(InvalidValueError, match=r"^file must be an existing TOML file") as info:
        get_protocol(missing)
    assert info.value.value == str(missing)


# --- the loader: phased files --------------------------------------------------------------

PHASED = """\
name = "clinic-course"
title = "Clinic course"
drug = "racemic"
model = "domino-cl79"
setting = "outpatient"
description = \"\"\"Two test
   infusions, then a series.\"\"\"

[discharge]
observation_min = 90
escort_home = false
no_driving = "for 24 h"

[[premedication]]
drug = "midazolam"
dose_mg = 1.0
route = "iv"
timing = "before the infusion"

[[phases]]
name = "test"
sessions = 2
doses = [{ route = "iv_infusion", start_h = 9.0, duration_h = 2.0, rate_mg_per_kg_h = 0.2 }]

[[phases]]
name = "series"
title = "Series"
sessions = 3
every_days = 2
gap_days = 1
skip_weekends = true
trigger = "after_decision"
doses = [{ route = "iv_infusion", start_h = 9.0, duration_h = 4.0, rate_mg_per_kg_h = 0.3 }]
titration = { increase_mg_per_kg_h = 0.1, max_rate_mg_per_kg_h = 0.45, \
increase_if = "tolerated", hold_if = "not tolerated" }

[[phases]]
name = "again"
trigger = "on_relapse"
doses = [{ route = "iv_infusion", start_h = 9.0, duration_h = 4.0, rate_mg_per_kg_h = 0.3 }]

[[decision_points]]
after_session = 2
decision = "Continue?"
criterion = "30% relief"

[limits]
rate_mg_per_h = { hard_max = 30.0 }

[[sources]]
authors = "Doe J"
year = 2020
journal = "J Pain 1:1"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _raises_naming(path: Path, field: str):
    """pytest.raises for a ModelFileError whose message starts with the file and field."""
    return pytest.raises(ModelFileError, match=rf"^{re.escape(str(path))}: {re.escape(field)} ")


def test_phased_file_loads(tmp_path):
    """Every table of a phased file is read: phases, titration, rules, limits, sources."""
    path = _write(tmp_path, PHASED)
    p = load_protocol_file(path)
    assert p.name == "clinic-course"
    assert p.description == "Two test infusions, then a series."
    assert [ph.name for ph in p.phases] == ["test", "series", "again"]
    assert [ph.title for ph in p.phases] == ["test", "Series", "again"]
    series = p.phases[1]
    assert (series.sessions, series.every_days, series.gap_days) == (3, 2, 1)
    assert series.skip_weekends and series.trigger is Trigger.AFTER_DECISION
    assert series.titration is not None
    assert (series.titration.increase, series.titration.max_rate) == (0.1, 0.45)
    assert series.titration.per_kg
    assert series.titration.increase_if == "tolerated"
    assert p.discharge is not None
    assert (p.discharge.observation_min, p.discharge.escort_home) == (90.0, False)
    assert p.premedication[0].text() == "midazolam 1 mg iv, before the infusion"
    assert p.decision_points[0].criterion == "30% relief"
    (limit,) = p.limits.of(Quantity.RATE_MG_PER_H)
    assert limit.hard_max == 30.0
    assert limit.origin == "protocol clinic-course"
    assert p.sources[0].authors == "Doe J"
    assert [ph.name for ph in p.boosters()] == ["again"]


def test_phased_file_calendar(tmp_path):
    """Tests days 0-1; series after a gap day, every 2 days, weekends skipped: 3, 7, 9."""
    p = load_protocol_file(_write(tmp_path, PHASED))
    assert [(s.phase.name, s.day) for s in p.slots()] == [
        ("test", 0),
        ("test", 1),
        ("series", 3),
        ("series", 7),
        ("series", 9),
    ]
    rates = [_infusion_rates_per_kg(s.schedule)[0] for s in p.slots()]
    assert_allclose(rates, [0.2, 0.2, 0.3, 0.4, 0.45], rtol=1e-12)


def test_overlapping_sessions_are_refused(tmp_path):
    """A 30-h session repeated daily overlaps the next: the error names the file and phase."""
    text = PHASED.replace("duration_h = 2.0", "duration_h = 30.0")
    path = _write(tmp_path, text)
    with _raises_naming(path, "phases.test") as info:
        load_protocol_file(path)
    assert info.value.path == str(path)
    assert info.value.field == "phases.test"


def test_overlap_across_phases_is_refused(tmp_path):
    """A test session running past 09:00 of the next day overlaps the series' first session."""
    text = PHASED.replace("sessions = 2\n", "sessions = 1\n").replace(
        "start_h = 9.0, duration_h = 2.0", "start_h = 22.0, duration_h = 36.0"
    )
    path = _write(tmp_path, text.replace("gap_days = 1\n", ""))
    with _raises_naming(path, "phases.series"):
        load_protocol_file(path)


def test_decision_point_beyond_the_sessions_is_refused(tmp_path):
    """A decision after session 6 of a 5-session course names decision_points.after_session."""
    path = _write(tmp_path, PHASED.replace("after_session = 2", "after_session = 6"))
    with _raises_naming(path, "decision_points.after_session") as info:
        load_protocol_file(path)
    assert info.value.value == 6
    assert "1 to 5" in str(info.value)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('setting = "outpatient"\n', 'setting = "outpatient"\ncolour = 1\n', "colour"),
        ('name = "series"\n', 'name = "series"\ncolour = 1\n', "phases[1].colour"),
        (
            'increase_if = "tolerated"',
            'colour = 1, increase_if = "tolerated"',
            "phases[1].titration.colour",
        ),
        (
            'timing = "before the infusion"\n',
            'timing = "x"\ncolour = 1\n',
            "premedication[0].colour",
        ),
        ("after_session = 2\n", "after_session = 2\ncolour = 1\n", "decision_points[0].colour"),
        ("[limits]\n", "[limits]\ncolour = 1\n", "limits.colour"),
        ("{ hard_max = 30.0 }", "{ hard_max = 30.0, colour = 1 }", "limits.rate_mg_per_h.colour"),
        ("escort_home = false\n", "escort_home = false\ncolour = 1\n", "discharge.colour"),
    ],
)
def test_unknown_keys_name_the_field(tmp_path, old, new, field):
    """An unknown key in any table is refused with its path in the file."""
    assert old in PHASED
    path = _write(tmp_path, PHASED.replace(old, new, 1))
    with _raises_naming(path, field) as info:
        load_protocol_file(path)
    assert info.value.field == field
    assert info.value.value == "given"


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('setting = "outpatient"', 'setting = "home"', "setting"),
        ('trigger = "after_decision"', 'trigger = "sometimes"', "phases[1].trigger"),
        ('name = "series"', 'name = "test"', "phases.name"),
        ('name = "series"', 'name = "Series"', "phases[1].name"),
        ("sessions = 3\n", "sessions = 3\ndays = [0, 2]\n", "phases[1].days"),
        ("sessions = 3", "sessions = 0", "phases[1].sessions"),
        ("every_days = 2", "every_days = 0", "phases[1].every_days"),
        ("gap_days = 1", "gap_days = -1", "phases[1].gap_days"),
        ("skip_weekends = true", 'skip_weekends = "yes"', "phases[1].skip_weekends"),
        (
            "start_h = 9.0, duration_h = 2.0",
            "start_h = 24.0, duration_h = 2.0",
            "phases[0].doses.start_h",
        ),
        (
            "rate_mg_per_kg_h = 0.2",
            "rate_mg_per_kg_h = -0.2",
            "phases[0].doses[0].rate_mg_per_kg_h",
        ),
        (
            "max_rate_mg_per_kg_h = 0.45",
            "max_rate_mg_per_kg_h = 0.25",
            "phases[1].titration.max_rate_mg_per_kg_h",
        ),
        (
            "max_rate_mg_per_kg_h = 0.45",
            "max_rate_mg_per_kg_h = 0.45, increase_mg_per_h = 5",
            "phases[1].titration.increase_*",
        ),
        (
            "increase_mg_per_kg_h = 0.1",
            "increase_mg_per_kg_h = 0",
            "phases[1].titration.increase_mg_per_kg_h",
        ),
        ('hold_if = "not tolerated"', 'hold_if = ""', "phases[1].titration.hold_if"),
        ("observation_min = 90", "observation_min = -5", "discharge.observation_min"),
        ("escort_home = false", "escort_home = 0", "discharge.escort_home"),
        ("dose_mg = 1.0", "dose_mg = 0", "premedication[0].dose_mg"),
        ('drug = "midazolam"', 'drug = ""', "premedication[0].drug"),
        ("after_session = 2", "after_session = 0", "decision_points[0].after_session"),
        ('criterion = "30% relief"', "criterion = 30", "decision_points[0].criterion"),
        ("{ hard_max = 30.0 }", "{ hard_max = -1.0 }", "limits.rate_mg_per_h.hard_max"),
        (
            'trigger = "on_relapse"\n',
            'trigger = "on_relapse"\nsessions = 2\ndays = [0]\n',
            "phases[2].days",
        ),
    ],
)
def test_invalid_phased_files_name_the_file_and_the_field(tmp_path, old, new, field):
    """Each malformed value of a phased file raises ModelFileError naming file and field."""
    assert old in PHASED
    path = _write(tmp_path, PHASED.replace(old, new, 1))
    with _raises_naming(path, field) as info:
        load_protocol_file(path)
    assert info.value.field == field


def test_misordered_limit_names_the_limits_table(tmp_path):
    """A soft maximum above the hard maximum names the field with its table path."""
    path = _write(
        tmp_path, PHASED.replace("{ hard_max = 30.0 }", "{ soft_max = 40, hard_max = 30 }")
    )
    with pytest.raises(ModelFileError, match=re.escape(str(path))) as info:
        load_protocol_file(path)
    assert info.value.field.endswith("rate_mg_per_h.hard_max")


@pytest.mark.parametrize(
    ("limit", "field"),
    [
        ("{ soft_max = 40, hard_max = 30 }", "limits.rate_mg_per_h.hard_max"),
        ("{ }", "limits.rate_mg_per_h"),
    ],
)
def test_limit_errors_name_the_full_path(tmp_path, limit, field):
    """A misordered or empty limit is named with its table path, as for other values."""
    path = _write(tmp_path, PHASED.replace("{ hard_max = 30.0 }", limit))
    with _raises_naming(path, field):
        load_protocol_file(path)


def test_phases_must_be_a_non_empty_array(tmp_path):
    """phases = [] names phases."""
    head = PHASED.split("[[phases]]")[0]
    text = head.replace('setting = "outpatient"\n', 'setting = "outpatient"\nphases = []\n')
    path = _write(tmp_path, text)
    with _raises_naming(path, "phases"):
        load_protocol_file(path)


def test_phases_and_legacy_keys_are_exclusive(tmp_path):
    """A file with phases and top-level doses names doses/series."""
    text = PHASED.replace(
        "[discharge]",
        'doses = [{ route = "iv_infusion", start_h = 9.0, duration_h = 1.0, '
        "rate_mg_per_h = 5.0 }]\n\n[discharge]",
    )
    path = _write(tmp_path, text)
    with _raises_naming(path, "doses/series"):
        load_protocol_file(path)


def test_a_course_of_boosters_only_is_refused(tmp_path):
    """If every phase is on relapse nothing is scheduled: phases.trigger is named."""
    text = PHASED.replace('trigger = "after_decision"', 'trigger = "on_relapse"')
    text = text.replace("sessions = 2\n", 'sessions = 2\ntrigger = "on_relapse"\n', 1)
    path = _write(tmp_path, text)
    with _raises_naming(path, "phases.trigger"):
        load_protocol_file(path)


def test_titration_in_mg_per_h_needs_mg_per_h_rates(tmp_path):
    """A mg/h titration of a per-kg session names the mg/h increase key."""
    text = PHASED.replace(
        "increase_mg_per_kg_h = 0.1, max_rate_mg_per_kg_h = 0.45",
        "increase_mg_per_h = 5, max_rate_mg_per_h = 40",
    )
    path = _write(tmp_path, text)
    with _raises_naming(path, "phases[1].titration.increase_mg_per_h"):
        load_protocol_file(path)


# --- the loader: legacy single-series files ------------------------------------------------

HEADER = {
    "name": '"clinic-plan"',
    "title": '"Clinic plan"',
    "drug": '"racemic"',
    "model": '"domino-cl79"',
}
SERIES = "[series]\ndays = [0, 2]\n"
DOSES = (
    '[[doses]]\nroute = "iv_infusion"\nstart_h = 8.0\nduration_h = 2.0\nrate_mg_per_kg_h = 0.2\n'
)
SOURCES = '[[sources]]\nauthors = "Doe J"\nyear = 2020\njournal = "J Pain 1:1"\n'


def _legacy(extra: str = "", *, series: str = SERIES, doses: str = DOSES, **header) -> str:
    values = HEADER | header
    top = "".join(f"{k} = {v}\n" for k, v in values.items() if v is not None)
    return top + extra + "\n" + series + "\n" + doses + "\n" + SOURCES


def test_legacy_file_loads_as_one_phase_named_series(tmp_path):
    """Top-level doses and series load as one scheduled phase named series."""
    path = _write(tmp_path, _legacy('max_rate_mg_per_h = 20\ndescription = """a\n  b"""\n'))
    p = load_protocol_file(path)
    assert p.name == "clinic-plan"
    assert [ph.name for ph in p.phases] == ["series"]
    (phase,) = p.phases
    assert phase.trigger is Trigger.SCHEDULED
    assert phase.titration is None
    assert phase.days == (0, 2)
    assert [s.day for s in p.slots()] == [0, 2]
    assert p.setting is Setting.OUTPATIENT
    assert p.max_rate_mg_per_h == 20.0
    assert isinstance(p.max_rate_mg_per_h, float)
    assert p.description == "a b"
    assert p.sources[0].authors == "Doe J"
    assert p.sources[0].year == 2020
    assert p.path == path
    assert phase.session.doses == (Infusion(start_h=8.0, duration_h=2.0, rate_mg_per_kg_h=0.2),)
    assert p.schedule().end_h() == 58.0
    assert p.discharge is None
    assert p.premedication == ()
    assert p.decision_points == ()


def test_series_defaults_to_day_zero(tmp_path):
    """Without a [series] table the session is given once, on day 0."""
    p = load_protocol_file(_write(tmp_path, _legacy(series="")))
    assert p.phases[0].name == "series"
    assert [s.day for s in p.slots()] == [0]


def test_weekdays_series(tmp_path):
    """series.weekdays = 6 gives Monday-Friday and the next Monday."""
    p = load_protocol_file(_write(tmp_path, _legacy(series="[series]\nweekdays = 6\n")))
    assert [s.day for s in p.slots()] == [0, 1, 2, 3, 4, 7]
    assert p.phases[0].skip_weekends


def test_stepped_doses_load(tmp_path):
    """An infusion with steps becomes consecutive infusions."""
    doses = (
        '[[doses]]\nroute = "iv_infusion"\nstart_h = 9.0\n'
        "steps = [{ duration_h = 1.0, rate_mg_per_h = 10.0 },"
        " { duration_h = 2.0, rate_mg_per_h = 20.0 }]\n"
    )
    p = load_protocol_file(_write(tmp_path, _legacy(doses=doses)))
    infusions = p.phases[0].session.infusions
    assert [(d.start_h, d.end_h) for d in infusions] == [(9.0, 10.0), (10.0, 12.0)]


def test_cap_on_absolute_rates_leaves_the_dosing_weight_alone(tmp_path):
    """A cap in a protocol given in mg/h cannot be applied through the weight: no cap."""
    doses = (
        '[[doses]]\nroute = "iv_infusion"\nstart_h = 8.0\nduration_h = 2.0\nrate_mg_per_h = 30\n'
    )
    p = load_protocol_file(_write(tmp_path, _legacy("max_rate_mg_per_h = 20\n", doses=doses)))
    assert p.dosing_weight_cap_kg is None
    assert p.dosing_weight_kg(np.array([90.0])).tolist() == [90.0]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"extra": "colour = 3\n"}, "colour"),
        ({"name": '"Clinic Plan"'}, "name"),
        ({"name": '"-plan"'}, "name"),
        ({"name": '"' + "a" * 65 + '"'}, "name"),
        ({"name": None}, "name"),
        ({"name": "7"}, "name"),
        ({"title": '"   "'}, "title"),
        ({"drug": '"ketamine"'}, "drug"),
        ({"drug": "3"}, "drug"),
        ({"drug": '""'}, "drug"),
        ({"drug": None}, "drug"),
        ({"drug": '"s-ketamine"'}, "model"),
        ({"model": '"flint-fanta-s"'}, "model"),
        ({"model": '"no-such-model"'}, "model"),
        ({"extra": "max_rate_mg_per_h = 0\n"}, "max_rate_mg_per_h"),
        ({"extra": "max_rate_mg_per_h = 1001\n"}, "max_rate_mg_per_h"),
        ({"extra": "max_rate_mg_per_h = true\n"}, "max_rate_mg_per_h"),
        ({"extra": 'max_rate_mg_per_h = "25"\n'}, "max_rate_mg_per_h"),
        ({"series": "[series]\ndays = [0, 2, 1]\n"}, "series.days"),
        ({"series": "[series]\ndays = [0, 0]\n"}, "series.days"),
        ({"series": "[series]\ndays = [-1, 0]\n"}, "series.days"),
        ({"series": "[series]\ndays = [0, 367]\n"}, "series.days"),
        ({"series": "[series]\ndays = []\n"}, "series.days"),
        ({"series": "[series]\ndays = [1, 2]\n"}, "series.days"),
        ({"series": "[series]\ndays = [0, 1.5]\n"}, "series.days"),
        ({"series": "[series]\ndays = [true]\n"}, "series.days"),
        ({"series": "[series]\nweekdays = 0\n"}, "series.weekdays"),
        ({"series": "[series]\nweekdays = 261\n"}, "series.weekdays"),
        ({"series": "[series]\nweekdays = true\n"}, "series.weekdays"),
        ({"series": "[series]\nweekdays = 5\ndays = [0]\n"}, "series"),
        ({"series": "[series]\nweeks = 2\n"}, "series"),
        ({"series": "", "extra": "series = [0, 1]\n"}, "series"),
        ({"doses": ""}, "doses"),
        ({"doses": DOSES.replace("0.2", "-0.2")}, "doses[0].rate_mg_per_kg_h"),
        ({"doses": DOSES + "rate_mg_per_h = 10\n"}, "doses[0].rate_mg_per_kg_h/rate_mg_per_h"),
        ({"doses": DOSES.replace("start_h", "begin_h")}, "doses[0].begin_h"),
        ({"doses": DOSES.replace('"iv_infusion"', '"im"')}, "doses[0].route"),
        ({"doses": "[doses]\nroute = 1\n"}, "doses"),
        ({"doses": DOSES.replace("start_h = 8.0", "start_h = -1.0")}, "doses.start_h"),
    ],
)
def test_invalid_legacy_files_name_the_file_and_the_field(tmp_path, kwargs, field):
    """Each malformed legacy file raises ModelFileError whose message starts 'path: field'."""
    path = _write(tmp_path, _legacy(**kwargs))
    with _raises_naming(path, field) as info:
        load_protocol_file(path)
    assert info.value.path == str(path)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("sources", "field"),
    [
        ('[[sources]]\njournal = "J Pain"\n', "sources[1]"),
        ('[[sources]]\nauthors = "X"\nvolume = 3\n', "sources[1]"),
        ('[[sources]]\nauthors = "X"\nyear = "2020"\n', "sources[1].year"),
        ('[[sources]]\nauthors = "X"\nyear = true\n', "sources[1].year"),
    ],
)
def test_invalid_sources_name_their_index(tmp_path, sources, field):
    """A source without authors, with unknown keys or a non-integer year is rejected."""
    path = _write(tmp_path, _legacy() + "\n" + sources)
    with _raises_naming(path, field):
        load_protocol_file(path)


def test_invalid_toml_syntax_names_the_file(tmp_path):
    """A file that is not TOML raises ModelFileError naming the file and 'valid TOML'."""
    path = _write(tmp_path, 'name = "x"\ntitle = \n')
    with _raises_naming(path, "(file)") as info:
        load_protocol_file(path)
    assert "valid TOML" in str(info.value)


def test_undecodable_file_names_the_file(tmp_path):
    """A file that is not UTF-8 raises ModelFileError naming the file."""
    path = tmp_path / "plan.toml"
    path.write_bytes(b'name = "\xff"\n')
    with _raises_naming(path, "(file)"):
        load_protocol_file(path)
