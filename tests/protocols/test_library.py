"""Tests of ketapain.protocols.library: the built-in protocols and the TOML loader."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from ketapain.errors import InvalidValueError, ModelFileError, UnknownNameError
from ketapain.pharmacology.model import Drug
from ketapain.pharmacology.schedules import Infusion, weekdays
from ketapain.protocols import Protocol, get_protocol, list_protocols, load_protocol_file
from ketapain.protocols.library import LIBRARY_DIR

BUILTIN = ("continuous-100h", "five-day-ramp", "single-day", "ten-weekdays")


# --- built-in protocols --------------------------------------------------------------------


def test_list_protocols_returns_the_four_builtins_sorted():
    """The library ships continuous-100h, five-day-ramp, single-day and ten-weekdays."""
    protocols = list_protocols()
    assert tuple(p.name for p in protocols) == BUILTIN
    assert all(isinstance(p, Protocol) for p in protocols)


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_protocols_are_complete(name):
    """Each built-in has a title, a source, a file in the library and a model of its drug."""
    p = get_protocol(name)
    assert p.title
    assert p.description and "  " not in p.description and "\n" not in p.description
    assert len(p.sources) >= 1
    assert all(s.authors for s in p.sources)
    assert p.path is not None and p.path.parent == LIBRARY_DIR
    assert p.path.name == f"{name}.toml"
    assert p.pk_model().name == p.model
    assert p.pk_model().drug is p.drug
    assert p.session.doses


def test_ten_weekdays_skips_weekends():
    """Ten 9:00-13:00 sessions on weekdays: days 0-4 and 7-11, ending at 277 h."""
    p = get_protocol("ten-weekdays")
    assert p.days == weekdays(10) == (0, 1, 2, 3, 4, 7, 8, 9, 10, 11)
    assert all(day % 7 < 5 for day in p.days)
    sched = p.schedule()
    assert len(sched.doses) == 10
    assert sched.end_h() == 277.0
    assert [d.start_h for d in sched.doses] == [24.0 * day + 9.0 for day in p.days]
    assert p.drug is Drug.RACEMIC
    assert p.max_rate_mg_per_h == 25.0


def test_ten_weekdays_rate_cap_through_the_dosing_weight():
    """The 25 mg/h cap doses a 90-kg patient as 25/0.35 kg; lighter patients are unchanged.

    rtol 1e-14: one division.
    """
    p = get_protocol("ten-weekdays")
    got = p.dosing_weight_kg(np.array([50.0, 70.0, 90.0, 120.0]))
    assert_allclose(got, [50.0, 70.0, 25 / 0.35, 25 / 0.35], rtol=1e-14)
    assert_allclose(0.35 * got[2], 25.0, rtol=1e-14)


def test_ten_weekdays_total_dose():
    """70 kg: 10 x 4 h x min(0.35 x 70, 25) mg/h = 980 mg; 90 kg: 10 x 4 x 25 = 1000 mg."""
    p = get_protocol("ten-weekdays")
    assert_allclose(p.total_dose_mg(70.0), 10 * 4 * min(0.35 * 70, 25), rtol=1e-12)
    assert_allclose(p.total_dose_mg(70.0), 980.0, rtol=1e-12)
    assert_allclose(p.total_dose_mg(90.0), 1000.0, rtol=1e-12)


def test_dosing_weight_cap_only_for_capped_per_kg_protocols():
    """ten-weekdays caps at 25/0.35 kg (rtol 1e-14); no cap without a limit or per-kg rates."""
    assert_allclose(get_protocol("ten-weekdays").dosing_weight_cap_kg, 25 / 0.35, rtol=1e-14)
    assert get_protocol("single-day").dosing_weight_cap_kg is None
    assert get_protocol("continuous-100h").dosing_weight_cap_kg is None


def test_cap_on_absolute_rates_leaves_the_dosing_weight_alone(tmp_path):
    """A cap in a protocol given in mg/h cannot be applied through the weight: no cap."""
    doses = (
        '[[doses]]\nroute = "iv_infusion"\nstart_h = 8.0\nduration_h = 2.0\nrate_mg_per_h = 30\n'
    )
    p = load_protocol_file(_write(tmp_path, _toml("max_rate_mg_per_h = 20\n", doses=doses)))
    assert p.dosing_weight_cap_kg is None
    assert p.dosing_weight_kg(np.array([90.0])).tolist() == [90.0]


def test_absolute_rates_are_not_scaled_by_the_cap_logic():
    """five-day-ramp gives mg/h rates: the dosing weight is the body weight."""
    p = get_protocol("five-day-ramp")
    assert_allclose(p.dosing_weight_kg(np.array([55.0, 130.0])), [55.0, 130.0], rtol=0)
    assert all(d.rate_mg_per_h is not None for d in p.session.infusions)


def test_five_day_ramp_dose_and_duration():
    """10-20-30 mg/h for 1.5 h each then 40 mg/h: 4710 mg ending at 129 h (rtol 1e-12)."""
    p = get_protocol("five-day-ramp")
    assert p.schedule().end_h() == 129.0
    assert_allclose(p.total_dose_mg(80.0), 1.5 * (10 + 20 + 30) + 115.5 * 40, rtol=1e-12)


def test_continuous_100h_titrates_to_22_2_mg_per_h_per_70_kg():
    """Eight steps over 100 h from 9:00; the last is 0.31714 mg/kg/h = 22.2 mg/h at 70 kg."""
    p = get_protocol("continuous-100h")
    assert p.drug is Drug.S_KETAMINE
    infusions = p.session.infusions
    assert len(infusions) == 8
    assert infusions[0].start_h == 9.0
    assert p.schedule().end_h() == 109.0
    assert all(a.end_h == b.start_h for a, b in itertools.pairwise(infusions))
    rates = [d.rate_mg_per_kg_h for d in infusions]
    assert rates == sorted(rates)
    assert_allclose(infusions[-1].rate_for(70.0), 22.2, rtol=1e-4)


def test_single_day_is_140_mg_for_70_kg():
    """0.5 mg/kg/h for 4 h: 140 mg for 70 kg (rtol 1e-12)."""
    p = get_protocol("single-day")
    assert_allclose(p.total_dose_mg(70.0), 140.0, rtol=1e-12)
    assert p.days == (0,)


def test_get_protocol_by_path(tmp_path):
    """A path (str or Path, with or without .toml) loads that file."""
    builtin = get_protocol("single-day")
    assert get_protocol(str(builtin.path)).name == "single-day"
    assert get_protocol(builtin.path).schedule() == builtin.schedule()
    copy = tmp_path / "my-protocol.txt"
    copy.write_text(builtin.path.read_text(encoding="utf-8"), encoding="utf-8")
    loaded = get_protocol(copy)
    assert loaded.path == copy
    assert loaded.session == builtin.session


def test_unknown_protocol_lists_the_known_names():
    """An unknown name raises UnknownNameError listing every built-in."""
    with pytest.raises(UnknownNameError, match="unknown protocol 'weekly'") as info:
        get_protocol("weekly")
    assert info.value.known == list(BUILTIN)
    for name in BUILTIN:
        assert name in str(info.value)


def test_missing_toml_file_is_an_invalid_value(tmp_path):
    """A .toml path that does not exist raises InvalidValueError naming the protocol file."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(InvalidValueError, match=r"^protocol file must be an existing file"):
        get_protocol(missing)


# --- the loader ----------------------------------------------------------------------------

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


def _toml(extra: str = "", *, series: str = SERIES, doses: str = DOSES, **header) -> str:
    values = HEADER | header
    top = "".join(f"{k} = {v}\n" for k, v in values.items() if v is not None)
    return top + extra + "\n" + series + "\n" + doses + "\n" + SOURCES


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _raises_naming(path: Path, field: str):
    """pytest.raises for a ModelFileError whose message starts with the file and field."""
    return pytest.raises(ModelFileError, match=rf"^{re.escape(str(path))}: {re.escape(field)} ")


def test_valid_file_loads(tmp_path):
    """A minimal valid file loads with its days, doses, sources and default description."""
    path = _write(tmp_path, _toml('max_rate_mg_per_h = 20\ndescription = """a\n  b"""\n'))
    p = load_protocol_file(path)
    assert p.name == "clinic-plan"
    assert p.days == (0, 2)
    assert p.max_rate_mg_per_h == 20.0
    assert isinstance(p.max_rate_mg_per_h, float)
    assert p.description == "a b"
    assert p.sources[0].authors == "Doe J"
    assert p.sources[0].year == 2020
    assert p.path == path
    assert p.session.doses == (Infusion(start_h=8.0, duration_h=2.0, rate_mg_per_kg_h=0.2),)
    assert p.schedule().end_h() == 58.0


def test_series_defaults_to_day_zero(tmp_path):
    """Without a [series] table the session is given once, on day 0."""
    p = load_protocol_file(_write(tmp_path, _toml(series="")))
    assert p.days == (0,)


def test_weekdays_series(tmp_path):
    """series.weekdays = 6 gives Monday-Friday and the next Monday."""
    p = load_protocol_file(_write(tmp_path, _toml(series="[series]\nweekdays = 6\n")))
    assert p.days == (0, 1, 2, 3, 4, 7)


def test_stepped_doses_load(tmp_path):
    """An infusion with steps becomes consecutive infusions."""
    doses = (
        '[[doses]]\nroute = "iv_infusion"\nstart_h = 9.0\n'
        "steps = [{ duration_h = 1.0, rate_mg_per_h = 10.0 },"
        " { duration_h = 2.0, rate_mg_per_h = 20.0 }]\n"
    )
    p = load_protocol_file(_write(tmp_path, _toml(doses=doses)))
    assert [(d.start_h, d.end_h) for d in p.session.infusions] == [(9.0, 10.0), (10.0, 12.0)]


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
        ({"drug": '"s-ketamine"'}, "model"),
        ({"model": '"flint-fanta-s"'}, "model"),
        ({"extra": "max_rate_mg_per_h = 0\n"}, "max_rate_mg_per_h"),
        ({"extra": "max_rate_mg_per_h = 1001\n"}, "max_rate_mg_per_h"),
        ({"extra": "max_rate_mg_per_h = true\n"}, "max_rate_mg_per_h"),
        ({"extra": 'max_rate_mg_per_h = "25"\n'}, "max_rate_mg_per_h"),
        ({"series": "[series]\ndays = [0, 2, 1]\n"}, "series.days"),
        ({"series": "[series]\ndays = [0, 0]\n"}, "series.days"),
        ({"series": "[series]\ndays = [-1, 0]\n"}, "series.days"),
        ({"series": "[series]\ndays = [0, 367]\n"}, "series.days"),
        ({"series": "[series]\ndays = []\n"}, "series.days"),
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
    ],
)
def test_invalid_files_name_the_file_and_the_field(tmp_path, kwargs, field):
    """Each malformed file raises ModelFileError whose message starts 'path: field'."""
    path = _write(tmp_path, _toml(**kwargs))
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
    path = _write(tmp_path, _toml() + "\n" + sources)
    with _raises_naming(path, field):
        load_protocol_file(path)


def test_invalid_toml_syntax_names_the_file(tmp_path):
    """A file that is not TOML raises ModelFileError naming the file and 'valid TOML'."""
    path = _write(tmp_path, 'name = "x"\ntitle = \n')
    with _raises_naming(path, "(file)") as info:
        load_protocol_file(path)
    assert "valid TOML" in str(info.value)


def test_unknown_model_names_the_file(tmp_path):
    """The module promises that loader errors name the file, the field and allowed values."""
    path = _write(tmp_path, _toml(model='"no-such-model"'))
    with _raises_naming(path, "model"):
        load_protocol_file(path)


def test_missing_drug_names_the_file_and_field(tmp_path):
    """A file without a drug key raises ModelFileError naming drug."""
    path = _write(tmp_path, _toml(drug=None))
    with _raises_naming(path, "drug"):
        load_protocol_file(path)
