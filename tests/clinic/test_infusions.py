"""The pump arithmetic: dose delivered from the pump events, and the pump's state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ketapain.clinic.infusions import (
    EventKind,
    Infusion,
    InfusionEvent,
    PumpEvent,
    PumpState,
    delivery,
    next_state,
)
from ketapain.errors import ConflictError, InvalidValueError

T0 = datetime(2026, 12, 7, 9, tzinfo=UTC)


def _h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def _ev(kind: str, hours: float, rate: float | None = None) -> PumpEvent:
    return PumpEvent(kind=kind, time_utc=_h(hours), rate_mg_per_h=rate)


REFERENCE = [_ev("start", 0, 20.0), _ev("rate_change", 1, 30.0), _ev("stop", 2)]


# --- reference cases ----------------------------------------------------------------


def test_start_change_stop_delivers_50_mg():
    """20 mg/h for 1 h then 30 mg/h for 1 h, stopped: 50 mg in 2 h, whatever comes later."""
    d = delivery(REFERENCE, until=_h(5))
    assert d.delivered_mg == pytest.approx(50.0)
    assert d.running_h == pytest.approx(2.0)
    assert d.state is PumpState.STOPPED
    assert d.rate_mg_per_h == 30.0


def test_until_at_the_stop_equals_until_after_it():
    """The dose at the stop time equals the dose long after it."""
    assert delivery(REFERENCE, until=_h(2)).delivered_mg == pytest.approx(50.0)


def test_pause_in_the_middle_is_subtracted():
    """A 30-min pause at 20 mg/h takes 10 mg off the total."""
    events = [
        _ev("start", 0, 20.0),
        _ev("pause", 0.5),
        _ev("resume", 1.0),
        _ev("rate_change", 1.0, 30.0),
        _ev("stop", 2),
    ]
    d = delivery(events, until=_h(3))
    assert d.delivered_mg == pytest.approx(40.0)
    assert d.running_h == pytest.approx(1.5)


def test_rate_change_while_paused_applies_on_resume():
    """A rate programmed while paused delivers nothing until the pump resumes."""
    events = [
        _ev("start", 0, 20.0),
        _ev("pause", 1),
        _ev("rate_change", 1.5, 40.0),
        _ev("resume", 2),
        _ev("stop", 2.5),
    ]
    d = delivery(events, until=_h(4))
    assert d.delivered_mg == pytest.approx(20.0 + 40.0 * 0.5)
    assert d.running_h == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("until_h", "mg", "running_h"),
    [(-1.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.5, 10.0, 0.5), (1.0, 20.0, 1.0), (1.5, 35.0, 1.5)],
)
def test_until_before_the_stop_truncates(until_h, mg, running_h):
    """The dose and running time count only up to ``until`` when it comes before the stop."""
    d = delivery(REFERENCE, until=_h(until_h))
    assert d.delivered_mg == pytest.approx(mg)
    assert d.running_h == pytest.approx(running_h)


def test_still_running_counts_up_to_until():
    """A running pump delivers at the current rate up to ``until``."""
    d = delivery(REFERENCE[:2], until=_h(3))
    assert d.delivered_mg == pytest.approx(20.0 + 30.0 * 2)
    assert d.state is PumpState.RUNNING
    assert d.running_h == pytest.approx(3.0)


def test_not_started_delivers_nothing():
    """No events, or a stop without a start, deliver 0 mg."""
    for events in ([], [_ev("stop", 1)]):
        d = delivery(events, until=_h(5))
        assert (d.delivered_mg, d.running_h, d.rate_mg_per_h) == (0.0, 0.0, None)
    assert delivery([], until=_h(5)).state is PumpState.NOT_STARTED
    assert delivery([_ev("stop", 1)], until=_h(5)).state is PumpState.STOPPED


def test_impossible_event_order_is_a_conflict():
    """A record with a rate change before the start cannot be integrated."""
    with pytest.raises(ConflictError):
        delivery([_ev("rate_change", 0, 10.0), _ev("start", 1, 20.0)], until=_h(2))


# --- property: the dose is the integral of the rate ---------------------------------


@st.composite
def schedules(draw):
    """Random valid pump records: the events and the (rate, running hours) pieces."""
    rate = draw(st.floats(0.0, 200.0))
    t = draw(st.floats(0.0, 5.0))
    events = [PumpEvent(kind="start", time_utc=_h(t), rate_mg_per_h=rate)]
    state = PumpState.RUNNING
    n = draw(st.integers(0, 8))
    for _ in range(n):
        choices = {
            PumpState.RUNNING: ["rate_change", "pause"],
            PumpState.PAUSED: ["resume", "rate_change"],
        }[state]
        kind = draw(st.sampled_from(choices))
        t += draw(st.floats(0.0, 3.0))
        new_rate = draw(st.floats(0.0, 200.0)) if kind == "rate_change" else None
        events.append(PumpEvent(kind=kind, time_utc=_h(t), rate_mg_per_h=new_rate))
        state = next_state(state, EventKind(kind))
    stopped = draw(st.booleans())
    if stopped:
        t += draw(st.floats(0.0, 3.0))
        events.append(PumpEvent(kind="stop", time_utc=_h(t)))
    return events, stopped


def _expected(events, until):
    """Sum of rate x running time over the pieces, cut at ``until`` (an independent sum)."""
    total = 0.0
    rate = None
    running = False
    for ev, nxt in zip(events, [*events[1:], None], strict=True):
        if ev.rate_mg_per_h is not None:
            rate = ev.rate_mg_per_h
        if ev.kind in ("start", "resume"):
            running = True
        elif ev.kind in ("pause", "stop"):
            running = False
        end = until if nxt is None else min(nxt.time_utc, until)
        if running and end > ev.time_utc:
            total += rate * (end - ev.time_utc).total_seconds() / 3600.0
    return total


@given(schedules(), st.floats(-1.0, 40.0))
def test_delivered_dose_is_the_integral_of_the_rate(schedule, until_h):
    """For any valid record, the dose is the sum of rate x running time, and never negative."""
    events, _ = schedule
    until = _h(until_h)
    d = delivery(events, until=until)
    assert d.delivered_mg >= 0.0
    assert d.running_h >= 0.0
    assert d.delivered_mg == pytest.approx(_expected(events, until), rel=1e-9, abs=1e-9)


@given(schedules(), st.floats(-1.0, 40.0), st.floats(0.0, 10.0))
def test_delivered_dose_never_decreases_with_until(schedule, until_h, more_h):
    """Reading later never gives less dose or less running time."""
    events, _ = schedule
    early = delivery(events, until=_h(until_h))
    late = delivery(events, until=_h(until_h + more_h))
    assert late.delivered_mg >= early.delivered_mg - 1e-9
    assert late.running_h >= early.running_h - 1e-12


@given(schedules(), st.floats(0.0, 10.0))
def test_stopped_record_stops_counting(schedule, extra_h):
    """After the stop the dose no longer grows."""
    events, stopped = schedule
    if not stopped:
        return
    at_stop = delivery(events, until=events[-1].time_utc)
    later = delivery(events, until=events[-1].time_utc + timedelta(hours=extra_h))
    assert later.delivered_mg == pytest.approx(at_stop.delivered_mg)
    assert later.state is PumpState.STOPPED


# --- the state machine --------------------------------------------------------------

S, K = PumpState, EventKind
ALLOWED = {
    (S.NOT_STARTED, K.START): S.RUNNING,
    (S.NOT_STARTED, K.STOP): S.STOPPED,
    (S.RUNNING, K.RATE_CHANGE): S.RUNNING,
    (S.RUNNING, K.PAUSE): S.PAUSED,
    (S.RUNNING, K.STOP): S.STOPPED,
    (S.PAUSED, K.RESUME): S.RUNNING,
    (S.PAUSED, K.RATE_CHANGE): S.PAUSED,
    (S.PAUSED, K.STOP): S.STOPPED,
}


@pytest.mark.parametrize("state", list(PumpState))
@pytest.mark.parametrize("kind", list(EventKind))
def test_next_state_table(state, kind):
    """Each state allows exactly the listed events; anything else is a conflict on kind."""
    if (state, kind) in ALLOWED:
        assert next_state(state, kind) is ALLOWED[(state, kind)]
    else:
        with pytest.raises(ConflictError, match=f"a {kind} is not possible when {state}") as err:
            next_state(state, kind)
        assert err.value.field == "kind"


def test_nothing_follows_a_stop():
    """After a stop, even a start is refused, and the message says the infusion has stopped."""
    with pytest.raises(ConflictError, match="the infusion has stopped"):
        next_state(PumpState.STOPPED, EventKind.START)


# --- row checks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"kind": "start"}, "rate_mg_per_h"),
        ({"kind": "rate_change", "reason": "titrate"}, "rate_mg_per_h"),
        ({"kind": "stop", "rate_mg_per_h": 10.0}, "rate_mg_per_h"),
        ({"kind": "start", "rate_mg_per_h": -1.0}, "rate_mg_per_h"),
        ({"kind": "start", "rate_mg_per_h": 4501.0}, "rate_mg_per_h"),
        ({"kind": "rate_change", "rate_mg_per_h": 10.0}, "reason"),
        ({"kind": "rate_change", "rate_mg_per_h": 10.0, "reason": "  "}, "reason"),
        ({"kind": "bolus", "rate_mg_per_h": 10.0}, "kind"),
    ],
)
def test_event_row_checks(kw, field):
    """Starts and rate changes need a rate, others none; a rate change needs a reason."""
    with pytest.raises(InvalidValueError) as err:
        InfusionEvent(time_utc=T0, sequence=1, **kw).check()
    assert err.value.field == field


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"bag_mg": 0.5}, "bag_mg"),
        ({"bag_mg": 5001.0}, "bag_mg"),
        ({"bag_ml": 1001.0}, "bag_ml"),
        ({"lot": " "}, "lot"),
        ({"session_number": 0}, "session_number"),
    ],
)
def test_infusion_row_checks(kw, field):
    """Bag contents, volume, lot number and session number are checked."""
    values = {"bag_mg": 250.0, "bag_ml": 250.0, "lot": "L1", "session_number": 1}
    values.update(kw)
    with pytest.raises(InvalidValueError) as err:
        Infusion(**values).check()
    assert err.value.field == field


def test_infusion_concentration():
    """The bag concentration is drug over volume."""
    assert Infusion(bag_mg=500.0, bag_ml=250.0).conc_mg_per_ml == pytest.approx(2.0)
