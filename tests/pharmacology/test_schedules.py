"""Tests of ketapain.pharmacology.schedules: doses, schedules and their JSON form."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from ketapain.errors import InvalidValueError
from ketapain.pharmacology.schedules import (
    DOSE_LIMITS,
    Bolus,
    Infusion,
    OralDose,
    Route,
    Schedule,
    stepped_infusion,
    weekdays,
)

_TIME = st.floats(-1000.0, 1000.0)
_DOSE = st.one_of(
    st.builds(Bolus, time_h=_TIME, dose_mg=st.floats(0.0, 1350.0)),
    st.builds(Bolus, time_h=_TIME, dose_mg_per_kg=st.floats(0.0, 4.5)),
    st.builds(OralDose, time_h=_TIME, dose_mg=st.floats(0.0, 2100.0)),
    st.builds(OralDose, time_h=_TIME, dose_mg_per_kg=st.floats(0.0, 7.0)),
    st.builds(
        Infusion,
        start_h=_TIME,
        duration_h=st.floats(1e-3, 500.0),
        rate_mg_per_h=st.floats(0.0, 13500.0),
    ),
    st.builds(
        Infusion,
        start_h=_TIME,
        duration_h=st.floats(1e-3, 500.0),
        rate_mg_per_kg_h=st.floats(0.0, 45.0),
    ),
)
SCHEDULES = st.lists(_DOSE, max_size=8).map(Schedule.of)

DAY = Schedule.of(
    Infusion(start_h=8.0, duration_h=4.0, rate_mg_per_kg_h=0.35),
    Bolus(time_h=8.0, dose_mg=10.0),
)


# --- JSON form ---------------------------------------------------------------------------


@given(SCHEDULES)
def test_json_round_trip(schedule):
    """to_dict -> JSON text -> from_dict gives back the same schedule."""
    text = json.dumps(schedule.to_dict())
    assert Schedule.from_dict(json.loads(text)) == schedule


def test_json_form_is_readable():
    """The JSON form names the route and only the fields that were given."""
    assert DAY.to_dict() == {
        "doses": [
            {"route": "iv_infusion", "start_h": 8.0, "duration_h": 4.0, "rate_mg_per_kg_h": 0.35},
            {"route": "iv_bolus", "time_h": 8.0, "dose_mg": 10.0},
        ]
    }


def test_json_file_round_trip(tmp_path):
    """A schedule written as JSON reads back from the file."""
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(DAY.to_dict()), encoding="utf-8")
    assert Schedule.from_json_file(path) == DAY


def test_malformed_json_file_names_the_file(tmp_path):
    """Invalid JSON text is an InvalidValueError naming the file and the line."""
    path = tmp_path / "broken.json"
    path.write_text('{"doses": [\n  {"route": }\n]}', encoding="utf-8")
    with pytest.raises(InvalidValueError, match="line 2") as err:
        Schedule.from_json_file(path)
    assert err.value.field == "schedule file"
    assert err.value.value == str(path)


def test_steps_form_becomes_consecutive_infusions():
    """An infusion given as steps is read as back-to-back infusions."""
    schedule = Schedule.from_dict(
        {
            "doses": [
                {
                    "route": "iv_infusion",
                    "start_h": 1.0,
                    "steps": [
                        {"duration_h": 0.5, "rate_mg_per_kg_h": 0.1},
                        {"duration_h": 3.5, "rate_mg_per_kg_h": 0.35},
                        {"duration_h": 2.0, "rate_mg_per_h": 12.0},
                    ],
                }
            ]
        }
    )
    assert schedule.doses == (
        Infusion(start_h=1.0, duration_h=0.5, rate_mg_per_kg_h=0.1),
        Infusion(start_h=1.5, duration_h=3.5, rate_mg_per_kg_h=0.35),
        Infusion(start_h=5.0, duration_h=2.0, rate_mg_per_h=12.0),
    )
    assert schedule.doses == (
        *stepped_infusion(start_h=1.0, steps=[(0.5, 0.1), (3.5, 0.35)]),
        Infusion(start_h=5.0, duration_h=2.0, rate_mg_per_h=12.0),
    )


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (
            {
                "doses": [
                    {"route": "iv_bolus", "time_h": 0, "dose_mg": 10},
                    {"route": "iv_infusion", "start_h": 0, "duration_h": 1, "rate_mg_per_kg_h": 99},
                ]
            },
            "doses[1].rate_mg_per_kg_h",
        ),
        (
            {"doses": [{"route": "iv_bolus", "time_h": 0, "dose_mg_per_kg": -1}]},
            "doses[0].dose_mg_per_kg",
        ),
        (
            {"doses": [{"route": "oral", "time_h": 0, "dose_mg": 10, "dose_mg_per_kg": 1}]},
            "doses[0].dose_mg_per_kg/dose_mg",
        ),
        ({"doses": [{"route": "oral", "dose_mg": 10}]}, "doses[0].time_h"),
        ({"doses": [{"route": "oral", "time_h": "8:00", "dose_mg": 10}]}, "doses[0].time_h"),
        (
            {"doses": [{"route": "iv_bolus", "time_h": 0, "dose_mg": 1, "rate_mg_per_h": 1}]},
            "doses[0].rate_mg_per_h",
        ),
        ({"doses": [{"route": "iv_drip", "time_h": 0}]}, "doses[0].route"),
        (
            {"doses": [{"route": "iv_infusion", "start_h": 0, "rate_mg_per_h": 10}]},
            "doses[0].duration_h",
        ),
        (
            {
                "doses": [
                    {"route": "iv_infusion", "start_h": 0, "duration_h": 0, "rate_mg_per_h": 10}
                ]
            },
            "doses[0].duration_h",
        ),
        (
            {
                "doses": [
                    {
                        "route": "iv_infusion",
                        "start_h": 0,
                        "steps": [
                            {"duration_h": 1, "rate_mg_per_kg_h": 0.1},
                            {"duration_h": 1, "rate_mg_per_kg_h": 50},
                        ],
                    }
                ]
            },
            "doses[0].steps[1].rate_mg_per_kg_h",
        ),
        ({"doses": [{"route": "iv_infusion", "start_h": 0, "steps": []}]}, "doses[0].steps"),
        (
            {
                "doses": [
                    {
                        "route": "iv_infusion",
                        "start_h": 0,
                        "duration_h": 1,
                        "steps": [{"duration_h": 1, "rate_mg_per_h": 1}],
                    }
                ]
            },
            "doses[0].duration_h",
        ),
        ({"doses": [3]}, "doses[0].dose"),
        ({"doses": {"route": "oral"}}, "doses"),
        ({"dose": []}, "schedule"),
        ([], "schedule"),
    ],
)
def test_errors_name_the_offending_field(data, field):
    """Every error in the JSON form names the field by its path in the document."""
    with pytest.raises(InvalidValueError) as err:
        Schedule.from_dict(data)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field} must be ")


# --- limits: refuse, never clamp ---------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "field", "limit"),
    [
        (lambda v: Infusion(start_h=0, duration_h=1, rate_mg_per_kg_h=v), "rate_mg_per_kg_h", 45.0),
        (lambda v: Bolus(time_h=0, dose_mg_per_kg=v), "dose_mg_per_kg", 4.5),
        (lambda v: OralDose(time_h=0, dose_mg_per_kg=v), "dose_mg_per_kg", 7.0),
        (lambda v: Infusion(start_h=0, duration_h=1, rate_mg_per_h=v), "rate_mg_per_h", 13500.0),
        (lambda v: Bolus(time_h=0, dose_mg=v), "dose_mg", 1350.0),
        (lambda v: OralDose(time_h=0, dose_mg=v), "dose_mg", 2100.0),
    ],
)
def test_out_of_range_doses_are_refused_not_clamped(make, field, limit):
    """A dose at the limit is kept exactly; beyond it raises naming field, range and value."""
    at_limit = make(limit)
    assert getattr(at_limit, field) == limit
    for bad in (limit * 1.001, -0.1, float("nan"), float("inf")):
        with pytest.raises(InvalidValueError) as err:
            make(bad)
        message = str(err.value)
        assert err.value.field == field
        assert err.value.value is bad or err.value.value == bad
        assert message.startswith(f"{field} must be ")
        assert repr(bad) in message
        if bad == limit * 1.001 or bad == -0.1:
            assert f"between 0 and {limit:g}" in message


def test_per_kg_limits_cite_their_sources():
    """Each route's per-kg limit carries the source it comes from."""
    assert DOSE_LIMITS[Route.IV_INFUSION].max_per_kg == 45.0  # 0.75 mg/kg/min (STANPUMP)
    assert DOSE_LIMITS[Route.IV_INFUSION].source.short() == "Shafer 1996"
    with pytest.raises(InvalidValueError, match=r"between 0 and 45 \(Shafer 1996\)"):
        Infusion(start_h=0, duration_h=1, rate_mg_per_kg_h=46)
    for limit in DOSE_LIMITS.values():
        assert limit.source.year > 1900


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Bolus(time_h=0), "dose_mg_per_kg/dose_mg"),
        (lambda: Bolus(time_h=0, dose_mg=1, dose_mg_per_kg=1), "dose_mg_per_kg/dose_mg"),
        (lambda: Infusion(start_h=0, duration_h=1), "rate_mg_per_kg_h/rate_mg_per_h"),
        (lambda: Bolus(time_h=True, dose_mg=1), "time_h"),
        (lambda: Bolus(time_h=1e6, dose_mg=1), "time_h"),
        (lambda: Infusion(start_h=0, duration_h=-1, rate_mg_per_h=1), "duration_h"),
        (lambda: Infusion(start_h=0, duration_h=1, rate_mg_per_h="5"), "rate_mg_per_h"),
    ],
)
def test_malformed_doses_name_the_field(make, field):
    """Missing, doubled, non-numeric or out-of-range values raise naming the field."""
    with pytest.raises(InvalidValueError) as err:
        make()
    assert err.value.field == field


# --- building schedules ------------------------------------------------------------------


def test_weekdays():
    """Weekday offsets skip weekends; a weekend start moves to Monday."""
    assert weekdays(7) == (0, 1, 2, 3, 4, 7, 8)
    assert weekdays(3, start_weekday=3) == (0, 1, 4)  # Thu, Fri, Mon
    assert weekdays(2, start_weekday=5) == (2, 3)  # Saturday start -> Mon, Tue
    assert weekdays(0) == ()
    with pytest.raises(InvalidValueError, match=r"start_weekday must be 0 \(Monday\) to 6"):
        weekdays(5, start_weekday=7)


@given(n=st.integers(0, 60), start=st.integers(0, 6))
def test_weekdays_never_fall_on_a_weekend(n, start):
    """n distinct increasing offsets, none on a Saturday or Sunday."""
    days = weekdays(n, start_weekday=start)
    assert len(days) == n
    assert list(days) == sorted(set(days))
    assert all((start + d) % 7 < 5 for d in days)


def test_repeat_on_days_shift_and_concatenation():
    """Repeating on days shifts by 24 h per day; + merges and sorts by start."""
    series = DAY.repeat_on_days(weekdays(10))
    assert len(series.doses) == 20
    assert series.start_h() == 8.0
    assert series.end_h() == 11 * 24.0 + 12.0
    assert [d.start_h for d in series.infusions] == [24.0 * d + 8.0 for d in weekdays(10)]
    assert series.total_dose_mg(weight_kg=70.0) == pytest.approx(10 * (0.35 * 70 * 4 + 10))
    moved = DAY.shift(-8.0)
    assert [d.start_h for d in moved.doses] == [0.0, 0.0]
    assert moved.shift(8.0) == DAY
    oral = Schedule.of(OralDose(time_h=1.0, dose_mg_per_kg=0.5))
    both = moved + oral + DAY
    assert [d.start_h for d in both.doses] == [0.0, 0.0, 1.0, 8.0, 8.0]
    assert both.oral_doses == oral.doses
    assert len(both.boluses) == 2
    assert len(both.infusions) == 2


def test_repeat_every():
    """repeat_every places copies interval_h apart."""
    tid = Schedule.of(OralDose(time_h=8.0, dose_mg_per_kg=0.5)).repeat_every(
        interval_h=8.0, times=3
    )
    assert [d.time_h for d in tid.doses] == [8.0, 16.0, 24.0]
    assert tid.total_dose_mg(weight_kg=80.0) == pytest.approx(120.0)
    with pytest.raises(InvalidValueError, match="interval_h"):
        tid.repeat_every(interval_h=float("nan"), times=2)


def test_total_dose_by_route():
    """Total dose sums mg for the weight, over all routes or one."""
    schedule = Schedule.of(
        Infusion(start_h=0, duration_h=2, rate_mg_per_kg_h=0.5),
        Infusion(start_h=1, duration_h=3, rate_mg_per_h=10.0),
        Bolus(time_h=0, dose_mg_per_kg=0.25),
        OralDose(time_h=5, dose_mg=50.0),
    )
    assert_allclose(schedule.total_dose_mg(weight_kg=80.0, route=Route.IV_INFUSION), 110.0)
    assert_allclose(schedule.total_dose_mg(weight_kg=80.0, route=Route.IV_BOLUS), 20.0)
    assert_allclose(schedule.total_dose_mg(weight_kg=80.0, route=Route.ORAL), 50.0)
    assert_allclose(schedule.total_dose_mg(weight_kg=80.0), 180.0)
    assert Schedule().total_dose_mg(weight_kg=80.0) == 0.0
    assert Schedule().start_h() == Schedule().end_h() == 0.0


@given(a=SCHEDULES, b=SCHEDULES, shift=st.floats(-100.0, 100.0), weight=st.floats(2.0, 300.0))
def test_total_dose_is_additive_and_shift_invariant(a, b, shift, weight):
    """Total dose of A + B is the sum; shifting a schedule does not change it."""
    assert_allclose(
        (a + b).total_dose_mg(weight_kg=weight),
        a.total_dose_mg(weight_kg=weight) + b.total_dose_mg(weight_kg=weight),
        rtol=1e-12,
        atol=1e-9,
    )
    assert_allclose(
        a.shift(shift).total_dose_mg(weight_kg=weight),
        a.total_dose_mg(weight_kg=weight),
        rtol=1e-12,
    )
    assert len((a + b).doses) == len(a.doses) + len(b.doses)


def test_stepped_infusion_absolute_rates():
    """stepped_infusion with per_kg=False gives mg/h rates."""
    steps = stepped_infusion(start_h=2.0, steps=[(1.0, 5.0), (2.0, 10.0)], per_kg=False)
    assert steps == (
        Infusion(start_h=2.0, duration_h=1.0, rate_mg_per_h=5.0),
        Infusion(start_h=3.0, duration_h=2.0, rate_mg_per_h=10.0),
    )
    assert Schedule.of(steps).end_h() == 5.0


def test_shift_out_of_range_names_the_field():
    """A shift beyond the planning horizon is refused."""
    with pytest.raises(InvalidValueError, match=r"^shift by_h must be "):
        DAY.shift(1e9)
