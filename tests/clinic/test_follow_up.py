"""Follow-up of a course: the questionnaire schedule and its windows, done, due and
overdue, the staff's reminders, and the PHQ-9 / GAD-7 alerts raised when staff chart."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from tests.conftest import statements_sent

from ketapain.clinic._service import add_row
from ketapain.clinic.alarms import Alarm
from ketapain.clinic.charting import acknowledge_alarm, open_alarms, record_score
from ketapain.clinic.follow_up import (
    BASELINE_WINDOW_DAYS,
    FOLLOW_UP_DAYS,
    HALF_WEEK_DAYS,
    build_schedule,
    due_reminders,
    pro_alerts,
    pro_schedule,
)
from ketapain.clinic.instruments import KROENKE_2001, SPITZER_2006
from ketapain.clinic.observations import Score
from ketapain.clinic.patients import BodyMeasurement, Diagnosis
from ketapain.clinic.permissions import Action
from ketapain.clinic.registry import register_patient
from ketapain.clinic.treatment import change_status, create_course
from ketapain.errors import AccessDeniedError, InvalidValueError

MONDAY = date(2026, 9, 7)  # a past Monday: the course's first session
SERIES_END = date(2026, 9, 15)  # the seventh weekday: seed-outpatient's last session
PHQ9_ZERO = {f"item{i}": 0 for i in range(1, 10)}
GAD7_ZERO = {f"item{i}": 0 for i in range(1, 8)}


def _phq9(total: int, item9: int = 0) -> dict[str, int]:
    """PHQ-9 answers adding up to ``total`` with item 9 as given (items 1-8 fill the rest)."""
    items = dict(PHQ9_ZERO, item9=item9)
    rest = total - item9
    for i in range(1, 9):
        items[f"item{i}"] = min(3, rest)
        rest -= items[f"item{i}"]
    assert rest == 0
    return items


def _gad7(total: int) -> dict[str, int]:
    items = dict(GAD7_ZERO)
    rest = total
    for i in range(1, 8):
        items[f"item{i}"] = min(3, rest)
        rest -= items[f"item{i}"]
    return items


def _noon(day: date) -> datetime:
    return datetime.combine(day, time(12), UTC)


@pytest.fixture
def course(db, staff, patient):
    """A seed-outpatient course of the fixture patient: sessions 7-15 Sep 2026."""
    return create_course(
        db, staff["physician"], patient_id=patient.id, protocol="seed-outpatient",
        start_date=MONDAY, bag_mg=250, bag_ml=250,
    )  # fmt: skip


def _chart(db, staff, patient, instrument, when, **values):
    """The nurse charts a score outside an infusion; returns (score, alarms)."""
    return record_score(
        db, staff["nurse"], (), patient_id=patient.id, instrument=instrument,
        measured_utc=when, **values,
    )  # fmt: skip


def _items(db, staff, course, today, **kw):
    with db.session() as s:
        return pro_schedule(s, staff["nurse"], course.id, today=today, **kw)


def _item(schedule, instrument, timepoint):
    found = [
        i
        for i in schedule["items"]
        if i["instrument"] == instrument and i["timepoint"] == timepoint
    ]
    assert len(found) == 1, (instrument, timepoint, found)
    return found[0]


# --- the schedule (pure) ----------------------------------------------------------------


def test_schedule_windows_of_each_kind():
    """Baseline in the 14 days before the first infusion; the diary one day each; weekly
    and week-4/12 items within half a week of their day; the end from the last infusion."""
    items = build_schedule(first_date=MONDAY, series_end=SERIES_END)
    by = {(i.instrument, i.timepoint): i for i in items}
    base = by[("phq9", "baseline")]
    assert (base.window_start, base.window_end) == (MONDAY - timedelta(14), MONDAY)
    end = by[("pgic", "end")]
    assert (end.window_start, end.window_end) == (SERIES_END, SERIES_END + timedelta(3))
    w4 = by[("gad7", "week_4")]
    assert w4.due_date == SERIES_END + timedelta(days=28)
    assert (w4.window_start, w4.window_end) == (
        w4.due_date - timedelta(3),
        w4.due_date + timedelta(3),
    )
    assert by[("eq_vas", "week_12")].due_date == SERIES_END + timedelta(days=84)
    peg1 = by[("peg", "week 1")]
    assert (peg1.window_start, peg1.window_end) == (date(2026, 9, 11), date(2026, 9, 17))
    diary = sorted(i.due_date for i in items if i.instrument == "pain_nrs")
    assert diary[0] == MONDAY and diary[-1] == SERIES_END + timedelta(weeks=2)
    assert len(diary) == len(set(diary)) == 9 + 14
    assert all(i.window_start == i.window_end for i in items if i.instrument == "pain_nrs")
    assert BASELINE_WINDOW_DAYS == 14 and HALF_WEEK_DAYS == 3
    assert FOLLOW_UP_DAYS == {"end": 0, "week_4": 28, "week_12": 84}


def test_schedule_instruments_at_each_time_point():
    """PHQ-9, GAD-7, EQ VAS and PDQ-5 at baseline, end and weeks 4 and 12; PGIC at the
    end and follow-ups but not at baseline; the weekly PEG to week 12; each with a source."""
    items = build_schedule(first_date=MONDAY, series_end=SERIES_END)
    at = {}
    for i in items:
        at.setdefault(i.timepoint, set()).add(i.instrument)
    evaluation = {"phq9", "gad7", "eq_vas", "pdq5"}
    assert at["baseline"] == evaluation | {"peg"}
    for point in ("end", "week_4", "week_12"):
        assert at[point] == evaluation | {"pgic"}
    weekly = sorted(
        i.due_date for i in items if i.instrument == "peg" and i.timepoint != "baseline"
    )
    assert weekly[-1] <= SERIES_END + timedelta(days=84) < weekly[-1] + timedelta(weeks=1)
    assert all(i.reason and i.source.cite() for i in items)


def test_schedule_parameters_diary_weeks_and_bpi():
    """The diary runs ``diary_weeks`` after the series; ``weekly="bpi"`` asks both BPI
    short-form scores instead of the PEG."""
    items = build_schedule(first_date=MONDAY, series_end=SERIES_END, diary_weeks=0, weekly="bpi")
    diary = [i.due_date for i in items if i.instrument == "pain_nrs"]
    assert max(diary) == SERIES_END
    names = {i.instrument for i in items}
    assert {"bpi_severity", "bpi_interference"} <= names and "peg" not in names


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"series_end": MONDAY - timedelta(1)}, "series_end"),
        ({"diary_weeks": 13}, "diary_weeks"),
        ({"diary_weeks": -1}, "diary_weeks"),
        ({"weekly": "promis"}, "weekly"),
    ],
)
def test_schedule_refuses_impossible_parameters(kw, field):
    """A series ending before it starts, a diary of more than 12 weeks or less than none,
    an unknown weekly questionnaire: each refused, naming the field."""
    args = {"first_date": MONDAY, "series_end": SERIES_END} | kw
    with pytest.raises(InvalidValueError) as err:
        build_schedule(**args)
    assert err.value.field == field


def test_item_status_at_the_window_edges():
    """Upcoming the day before the window, due on its first and last day, overdue the
    day after; done whenever a score is in it."""
    item = next(i for i in build_schedule(first_date=MONDAY, series_end=SERIES_END)
                if i.instrument == "phq9" and i.timepoint == "week_4")  # fmt: skip
    start, end = item.window_start, item.window_end
    assert item.status(done=False, today=start - timedelta(1)) == "upcoming"
    assert item.status(done=False, today=start) == "due"
    assert item.status(done=False, today=end) == "due"
    assert item.status(done=False, today=end + timedelta(1)) == "overdue"
    assert item.status(done=True, today=end + timedelta(1)) == "done"


# --- the schedule of a course -----------------------------------------------------------


def test_a_score_inside_the_window_marks_the_item_done(db, staff, patient, course):
    """A PHQ-9 on the last day of the week-4 window is done; the GAD-7 charted one day
    after its window does not count, and the GAD-7 is overdue."""
    w4 = SERIES_END + timedelta(days=28)
    _chart(db, staff, patient, "phq9", _noon(w4 + timedelta(3)), items=PHQ9_ZERO)
    _chart(db, staff, patient, "gad7", _noon(w4 + timedelta(4)), items=GAD7_ZERO)
    sched = _items(db, staff, course, w4 + timedelta(5))
    assert sched["first_infusion_date"] == MONDAY.isoformat()
    assert sched["series_end_date"] == SERIES_END.isoformat()
    assert _item(sched, "phq9", "week_4")["status"] == "done"
    assert _item(sched, "gad7", "week_4")["status"] == "overdue"
    assert _item(sched, "phq9", "week_12")["status"] == "upcoming"


def test_daily_diary_is_due_today_and_overdue_after(db, staff, patient, course):
    """The diary day is due on its day; yesterday's, missed, is overdue; one charted on
    its day is done."""
    day = MONDAY + timedelta(2)
    _chart(db, staff, patient, "pain_nrs", _noon(day - timedelta(2)), value=6.0)
    sched = _items(db, staff, course, day)
    diary = {i["due_date"]: i["status"] for i in sched["items"] if i["instrument"] == "pain_nrs"}
    assert diary[(day - timedelta(2)).isoformat()] == "done"
    assert diary[(day - timedelta(1)).isoformat()] == "overdue"
    assert diary[day.isoformat()] == "due"
    assert diary[(day + timedelta(1)).isoformat()] == "upcoming"


def test_scores_are_dated_in_the_clinic_time_zone(db, staff, patient, course):
    """A pain score at 23:30 UTC on 8 Sep is 9 Sep in Amsterdam (UTC+2): it fills the
    diary of 9 Sep there, and of 8 Sep in UTC."""
    late = datetime(2026, 9, 8, 23, 30, tzinfo=UTC)
    _chart(db, staff, patient, "pain_nrs", late, value=5.0)
    today = date(2026, 9, 10)
    for tz, filled in ((ZoneInfo("Europe/Amsterdam"), "2026-09-09"), (UTC, "2026-09-08")):
        sched = _items(db, staff, course, today, tz=tz)
        done = [i["due_date"] for i in sched["items"]
                if i["instrument"] == "pain_nrs" and i["status"] == "done"]  # fmt: skip
        assert done == [filled]


def test_a_course_stopped_early_ends_its_series_on_the_stop(db, staff, patient):
    """A course stopped early (today) before its planned sessions ends its series then,
    not on the planned last day; a cancelled course has no questionnaires."""
    today = datetime.now(UTC).date()
    start = today + timedelta(days=14)
    ahead = create_course(
        db, staff["physician"], patient_id=patient.id, protocol="seed-outpatient",
        start_date=start, bag_mg=250, bag_ml=250,
    )  # fmt: skip
    planned = _items(db, staff, ahead, today)
    assert planned["series_end_date"] > planned["first_infusion_date"]
    change_status(db, staff["physician"], ahead.id, status="in_progress", reason="started")
    change_status(db, staff["physician"], ahead.id, status="stopped_early", reason="no relief")
    stopped = _items(db, staff, ahead, today)
    assert stopped["series_end_date"] == stopped["first_infusion_date"]
    other = create_course(
        db, staff["physician"], patient_id=patient.id, protocol="seed-outpatient",
        start_date=start, bag_mg=250, bag_ml=250,
    )  # fmt: skip
    change_status(db, staff["physician"], other.id, status="cancelled", reason="moved away")
    assert _items(db, staff, other, today)["items"] == []


def test_the_front_desk_may_not_read_the_schedule(db, staff, course):
    """Questionnaires are clinical: the front desk is refused the schedule and reminders."""
    with db.session() as s, pytest.raises(AccessDeniedError):
        pro_schedule(s, staff["front_desk"], course.id)
    with db.session() as s, pytest.raises(AccessDeniedError):
        due_reminders(s, staff["front_desk"], today=MONDAY)


# --- reminders --------------------------------------------------------------------------


def test_reminders_list_due_and_overdue_with_since_when(db, staff, patient, course):
    """On the third session day: the diary overdue since the first day (two missed, one
    due), the weekly PEG not yet due, the baseline questionnaires overdue since their
    window opened; what was done is not listed; overdue rows come first."""
    today = MONDAY + timedelta(2)
    _chart(db, staff, patient, "pain_nrs", _noon(MONDAY + timedelta(1)), value=6.0)
    _chart(db, staff, patient, "phq9", _noon(MONDAY - timedelta(3)), items=PHQ9_ZERO)
    with db.session() as s:
        rows = due_reminders(s, staff["nurse"], today=today)
    by = {r["instrument"]: r for r in rows}
    assert set(by) == {"pain_nrs", "gad7", "eq_vas", "pdq5", "peg"}
    diary = by["pain_nrs"]
    assert (diary["status"], diary["since"], diary["count"]) == ("overdue", "2026-09-07", 2)
    assert diary["due_by"] == today.isoformat() and diary["patient"] == "Doe, Jane"
    assert by["gad7"]["since"] == (MONDAY - timedelta(14)).isoformat()
    assert by["gad7"]["timepoints"] == ["baseline"]
    assert [r["status"] for r in rows] == sorted((r["status"] for r in rows), reverse=True)
    assert all(r["reason"] and r["source"] for r in rows)


def test_reminders_drop_items_overdue_for_more_than_a_week(db, staff, patient, course):
    """An item overdue for 7 days is still listed; for 8 days it is a missed item."""
    end_window_last = SERIES_END + timedelta(HALF_WEEK_DAYS)
    with db.session() as s:
        at7 = due_reminders(s, staff["nurse"], today=end_window_last + timedelta(7))
        at8 = due_reminders(s, staff["nurse"], today=end_window_last + timedelta(8))
    assert "pgic" in {r["instrument"] for r in at7}
    assert "pgic" not in {r["instrument"] for r in at8}


def test_reminders_skip_cancelled_courses(db, staff, patient, course):
    """A cancelled course asks nothing of the patient."""
    change_status(db, staff["physician"], course.id, status="cancelled", reason="declined")
    with db.session() as s:
        assert due_reminders(s, staff["nurse"], today=MONDAY) == []


# --- alerts -----------------------------------------------------------------------------


def _alarms(db):
    with db.session() as s:
        return list(s.scalars(select(Alarm).order_by(Alarm.level)))


@pytest.mark.parametrize(("item9", "raised"), [(0, False), (1, True), (3, True)])
def test_phq9_item9_raises_a_stop_alarm(db, staff, patient, item9, raised):
    """Item 9 at 0: no alarm; at 1 ("several days") or more: a stop alarm for the
    physician, citing Kroenke 2001, saying to contact the patient today."""
    score, alarms = _chart(db, staff, patient, "phq9", None, items=_phq9(item9, item9))
    stops = [a for a in _alarms(db) if a.signal == "phq9_item9"]
    assert bool(stops) is raised and len(alarms) == len(stops)
    if raised:
        alarm = stops[0]
        assert (alarm.level, alarm.value, alarm.score_id) == ("stop", float(item9), score.id)
        assert alarm.source == KROENKE_2001.cite()
        assert "contact the patient today" in alarm.message
        assert "suicide-risk protocol" in alarm.message


@pytest.mark.parametrize(("total", "raised"), [(14, False), (15, True)])
def test_phq9_of_15_or_more_is_a_warning_for_review(db, staff, patient, total, raised):
    """PHQ-9 14: nothing; 15 (moderately severe, Kroenke 2001): a warning, not a stop."""
    _chart(db, staff, patient, "phq9", None, items=_phq9(total))
    levels = [(a.signal, a.level) for a in _alarms(db)]
    assert levels == ([("phq9_total", "warn")] if raised else [])


@pytest.mark.parametrize(("total", "raised"), [(14, False), (15, True)])
def test_gad7_of_15_or_more_is_a_warning_for_review(db, staff, patient, total, raised):
    """GAD-7 14: nothing; 15 (severe anxiety, Spitzer 2006): a warning for review."""
    _chart(db, staff, patient, "gad7", None, items=_gad7(total))
    alarms = _alarms(db)
    assert [(a.signal, a.level) for a in alarms] == ([("gad7_total", "warn")] if raised else [])
    if raised:
        assert alarms[0].source == SPITZER_2006.cite()


def test_the_alert_shows_until_acknowledged(db, staff, patient):
    """The PHQ-9 alarm is open for the physician until acknowledged with what was done."""
    _, alarms = _chart(db, staff, patient, "phq9", None, items=_phq9(20, 2))
    assert [a.level for a in alarms] == ["stop", "warn"]
    with db.session() as s:
        listed = open_alarms(s, staff["physician"], patient_id=patient.id)
    assert [a["signal"] for a in listed] == ["phq9_item9", "phq9_total"]
    assert "severe depression" in listed[1]["message"]
    for alarm in alarms:
        acknowledge_alarm(db, staff["physician"], alarm.id, note="called the patient")
    with db.session() as s:
        assert open_alarms(s, staff["physician"], patient_id=patient.id) == []


def test_no_score_no_alarm(db, staff, patient):
    """A PHQ-9 refused (an item missing) writes neither the score nor an alarm."""
    items = _phq9(5, 1)
    del items["item3"]
    with pytest.raises(InvalidValueError):
        _chart(db, staff, patient, "phq9", None, items=items)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Score)) == 0
        assert s.scalar(select(func.count()).select_from(Alarm)) == 0


def test_other_instruments_raise_no_follow_up_alert():
    """Only PHQ-9 and GAD-7 raise these alerts: a pain score of 10 does not."""
    assert pro_alerts("pain_nrs", 10.0, None) == []
    assert pro_alerts("pdq5", 20.0, None) == []


def test_reminders_read_in_a_fixed_number_of_statements(db, staff, patient, course):
    """One course or three, the reminders take the same number of SQL statements."""

    def statements() -> int:
        with statements_sent(db.read_engine) as seen, db.session() as s:
            rows = due_reminders(s, staff["nurse"], today=MONDAY + timedelta(2))
        assert rows
        return len(seen)

    one = statements()
    for n in (2, 3):
        other = register_patient(
            db, staff["front_desk"], mrn=f"T-000{n}", family_name=f"Roe{n}", given_name="Al",
            birth_date=date(1970, 1, 1), sex="male",
        )  # fmt: skip
        add_row(db, staff["nurse"], Action.CHART,
                BodyMeasurement(patient_id=other.id, weight_kg=80.0, height_cm=180.0))  # fmt: skip
        add_row(
            db, staff["physician"], Action.CHART, Diagnosis(patient_id=other.id, code="G90.511")
        )
        create_course(
            db, staff["physician"], patient_id=other.id, protocol="seed-outpatient",
            start_date=MONDAY, bag_mg=250, bag_ml=250,
        )  # fmt: skip
    assert statements() == one
