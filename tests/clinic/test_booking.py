"""The series calendar in force (moves and missed sessions), the desk's schedule, the
chair capacity with recovery time, overbooking, rebooking, and the capacity settings."""

from __future__ import annotations

import uuid
from datetime import date, time, timedelta
from typing import Any, Final

import pytest
from sqlalchemy import func, select

from ketapain.clinic._service import add_row
from ketapain.clinic.audit import Actor, AuditEntry
from ketapain.clinic.booking import SessionChange
from ketapain.clinic.courses import Course
from ketapain.clinic.db import Database
from ketapain.clinic.patients import BodyMeasurement, Diagnosis
from ketapain.clinic.permissions import Action
from ketapain.clinic.pump import hang_infusion
from ketapain.clinic.rebooking import mark_missed, move_session
from ketapain.clinic.registry import register_patient
from ketapain.clinic.schedule import calendar, capacity, rebook_missed, schedule
from ketapain.clinic.treatment import book_booster, change_status, create_course
from ketapain.config import Settings
from ketapain.errors import AccessDeniedError, ConflictError, InvalidValueError

# A Monday. seed-outpatient: test sessions 1-2 (Mon, Tue) 09:00-11:00, series sessions
# 3-7 (Wed-Fri, Mon, Tue) 09:00-13:00; 120 min observation before discharge.
MONDAY: Final = date(2026, 11, 30)
ONE_CHAIR: Final = Settings(chairs=1)


def _day(k: int) -> date:
    return MONDAY + timedelta(days=k)


def _course(db: Database, staff: dict[str, Actor], patient_id: uuid.UUID, start: date) -> Course:
    return create_course(
        db,
        staff["physician"],
        patient_id=patient_id,
        protocol="seed-outpatient",
        start_date=start,
        bag_mg=250,
        bag_ml=250,
    )


def _other(db: Database, staff: dict[str, Actor], mrn: str, family: str) -> uuid.UUID:
    p = register_patient(
        db,
        staff["front_desk"],
        mrn=mrn,
        family_name=family,
        given_name="Test",
        birth_date=date(1970, 1, 1),
        sex="male",
    )
    add_row(db, staff["nurse"], Action.CHART, BodyMeasurement(patient_id=p.id, weight_kg=80.0))
    add_row(db, staff["physician"], Action.CHART, Diagnosis(patient_id=p.id, code="M79.7"))
    return p.id


@pytest.fixture
def course(db, staff, patient):
    """A seed-outpatient course of the fixture patient (Doe, Jane) from MONDAY."""
    return _course(db, staff, patient.id, MONDAY)


@pytest.fixture
def second(db, staff):
    """A second patient's course (Able, Test) starting the day after MONDAY."""
    return _course(db, staff, _other(db, staff, "T-0002", "Able"), _day(1))


def _calendar(db, actor, course_id) -> dict[str, Any]:
    with db.session() as s:
        return calendar(s, actor, course_id)


def _capacity(db, actor, day, settings=None) -> dict[str, Any]:
    with db.session() as s:
        return capacity(s, actor, day=day, settings=settings)


def _slot(cap: dict[str, Any], start: str) -> dict[str, Any]:
    return next(s for s in cap["slots"] if s["start"] == start)


# --- the calendar in force ----------------------------------------------------------


def test_calendar_applies_the_latest_move_and_marks_the_missed(db, staff, course):
    """A session moved twice is on its latest day and time with its length kept; a missed
    one is marked; the others stay on the plan's days."""
    desk = staff["front_desk"]
    move_session(
        db, desk, course.id, session_number=2, new_date=_day(1), new_start=time(11), reason="bus"
    )
    moved = move_session(
        db,
        desk,
        course.id,
        session_number=2,
        new_date=_day(1),
        new_start=time(12, 30),
        reason="later bus",
    )
    assert moved["session"]["start"] == "2026-12-01T12:30"
    mark_missed(db, desk, course.id, session_number=4, reason="flu")
    cal = _calendar(db, staff["physician"], course.id)
    by = {s["number"]: s for s in cal["sessions"]}
    assert (by[2]["status"], by[2]["start"], by[2]["end"]) == (
        "moved",
        "2026-12-01T12:30",
        "2026-12-01T14:30",
    )
    assert by[2]["chair_until"] == "2026-12-01T16:30"
    assert by[2]["change"]["reason"] == "later bus"
    assert by[2]["planned_start"] == "2026-12-01T09:00"
    assert (by[4]["status"], by[4]["change"]["reason"]) == ("missed", "flu")
    assert [by[n]["status"] for n in (1, 3, 5, 6, 7)] == ["booked"] * 5
    assert (by[3]["start"], by[3]["chair_until"]) == ("2026-12-02T09:00", "2026-12-02T15:00")
    assert all("dose_mg" in s for s in cal["sessions"])
    assert cal["patient"] == "Doe, Jane" and cal["status"] == "planned"


def test_front_desk_calendar_has_no_doses(db, staff, course):
    """The front desk reads the calendar without any dose; an admin may not read it."""
    book_booster(db, staff["physician"], course.id, scheduled_date=_day(30), reason="relapse")
    cal = _calendar(db, staff["front_desk"], course.id)
    assert not any("dose" in key for s in cal["sessions"] for key in s)
    (booster,) = cal["boosters"]
    assert booster["change"] == {"id": booster["change"]["id"]}
    assert (booster["start"], booster["end"]) == ("2026-12-30T09:00", "2026-12-30T13:00")
    with pytest.raises(AccessDeniedError):
        _calendar(db, staff["admin"], course.id)


def test_a_given_session_can_be_neither_missed_nor_moved(db, staff, course):
    """Once a bag is hung for a session it is given: missing or moving it is a conflict."""
    hang_infusion(db, staff["nurse"], course.id, session_number=1, bag_mg=250, bag_ml=250, lot="L")
    with pytest.raises(ConflictError) as err:
        mark_missed(db, staff["front_desk"], course.id, session_number=1, reason="no show")
    assert err.value.field == "session_number"
    with pytest.raises(ConflictError):
        move_session(
            db, staff["front_desk"], course.id, session_number=1, new_date=_day(2), reason="x"
        )
    assert _calendar(db, staff["nurse"], course.id)["sessions"][0]["status"] == "given"


def test_a_missed_session_is_rebooked_by_a_move(db, staff, course):
    """A missed session can be moved (rebooked); twice missed is refused."""
    desk = staff["front_desk"]
    mark_missed(db, desk, course.id, session_number=3, reason="sick")
    with pytest.raises(ConflictError):
        mark_missed(db, desk, course.id, session_number=3, reason="sick again")
    out = move_session(db, desk, course.id, session_number=3, new_date=_day(9), reason="rebook")
    assert (out["session"]["status"], out["session"]["start"]) == ("moved", "2026-12-09T09:00")
    assert "dose_mg" not in out["session"]


def test_bad_requests_name_their_field(db, staff, course):
    """An empty reason, a session outside the plan, a closed course, a role without booking."""
    desk = staff["front_desk"]
    with pytest.raises(InvalidValueError) as err:
        mark_missed(db, desk, course.id, session_number=2, reason="  ")
    assert err.value.field == "reason"
    for number in (0, 8):
        with pytest.raises(InvalidValueError) as err:
            move_session(db, desk, course.id, session_number=number, new_date=MONDAY, reason="x")
        assert err.value.field == "session_number"
    with pytest.raises(AccessDeniedError):
        mark_missed(db, staff["admin"], course.id, session_number=2, reason="x")
    change_status(db, staff["physician"], course.id, status="cancelled", reason="declined")
    with pytest.raises(ConflictError) as err:
        mark_missed(db, desk, course.id, session_number=2, reason="x")
    assert err.value.field == "status"
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(SessionChange)) == 0


@pytest.mark.parametrize(("k", "weekend"), [(4, False), (5, True), (6, True), (7, False)])
def test_a_move_onto_a_weekend_warns_but_is_booked(db, staff, course, k, weekend):
    """A series session moved to Saturday or Sunday is booked with a warning (the phase
    skips weekends); Friday and Monday give none."""
    out = move_session(
        db, staff["front_desk"], course.id, session_number=7, new_date=_day(k), reason="asked"
    )
    assert out["session"]["date"] == _day(k).isoformat()
    assert any("skips weekends" in w for w in out["warnings"]) is weekend


def test_sessions_out_of_order_and_outside_hours_are_warned(db, staff, course):
    """Session 2 moved after session 3 warns of the order; a 17:00 start runs past closing."""
    out = move_session(
        db,
        staff["front_desk"],
        course.id,
        session_number=2,
        new_date=_day(2),
        new_start=time(17),
        reason="evening",
    )
    assert any("out of order" in w for w in out["warnings"])
    assert any("opening hours 08:00-18:00" in w for w in out["warnings"])


# --- the desk's schedule ------------------------------------------------------------


def test_schedule_shows_the_calendar_in_force(db, staff, course):
    """Moved sessions on their new day; missed ones marked with detail and left out
    without; chair times and booster times with detail; never a dose."""
    desk = staff["front_desk"]
    move_session(db, desk, course.id, session_number=2, new_date=_day(3), reason="clash")
    mark_missed(db, desk, course.id, session_number=3, reason="flu")
    with db.session() as s:
        plain = schedule(s, desk, from_date=MONDAY, to_date=_day(3))
        full = schedule(s, desk, from_date=MONDAY, to_date=_day(3), detail=True)
    assert [(r["date"], r["number"]) for r in plain] == [
        ("2026-11-30", 1),
        ("2026-12-03", 2),
        ("2026-12-03", 4),
    ]
    by = {r["number"]: r for r in full}
    assert (by[2]["status"], by[2]["planned_date"], by[2]["reason"]) == (
        "moved",
        "2026-12-01",
        "clash",
    )
    assert (by[3]["status"], by[3]["reason"]) == ("missed", "flu")
    assert by[1]["chair_until"] == "2026-11-30T13:00"
    assert not any("dose" in k or "steps" in k for r in full for k in r)


def test_schedule_lists_a_booster_of_a_completed_course(db, staff, course):
    """A booster after the series is booked on a completed course: the desk still sees it."""
    doc = staff["physician"]
    change_status(db, doc, course.id, status="in_progress", reason="started")
    change_status(db, doc, course.id, status="completed", reason="series done")
    book_booster(db, doc, course.id, scheduled_date=_day(40), reason="pain back")
    with db.session() as s:
        rows = schedule(s, staff["front_desk"], from_date=MONDAY, to_date=_day(40), detail=True)
    assert [(r["kind"], r["date"], r["start"], r["reason"]) for r in rows] == [
        ("booster", "2027-01-09", "2027-01-09T09:00", None)
    ]


# --- capacity -----------------------------------------------------------------------


def test_capacity_counts_the_recovery_time(db, staff, course, second):
    """Session 1 (09:00-11:00) holds its chair through the 120 min of observation: the
    12:45 slot is taken, the 13:00 slot is free."""
    move_session(
        db, staff["front_desk"], second.id, session_number=1, new_date=MONDAY, reason="earlier"
    )
    cap = _capacity(db, staff["front_desk"], MONDAY)
    assert (cap["capacity"], cap["limited_by"], cap["slot_min"]) == (4, "chairs", 15)
    assert (cap["slots"][0]["start"], cap["slots"][-1]["end"]) == ("08:00", "18:00")
    assert _slot(cap, "08:45")["chairs_used"] == 0
    assert (_slot(cap, "09:00")["chairs_used"], _slot(cap, "09:00")["chairs_free"]) == (2, 2)
    assert _slot(cap, "12:45")["chairs_used"] == 2
    assert _slot(cap, "12:45")["patients_per_nurse"] == 1.0
    assert _slot(cap, "13:00")["chairs_used"] == 0
    assert cap["conflicts"] == []
    assert {b["patient"] for b in cap["bookings"]} == {"Doe, Jane", "Able, Test"}
    assert {b["chair_until"] for b in cap["bookings"]} == {"2026-11-30T13:00"}


def test_capacity_lists_the_slots_over_capacity_with_who(db, staff, course, second):
    """With one chair, two patients in the same slots are conflicts naming both."""
    move_session(
        db,
        staff["front_desk"],
        second.id,
        session_number=1,
        new_date=MONDAY,
        reason="earlier",
        allow_overbook=True,
        settings=ONE_CHAIR,
    )
    cap = _capacity(db, staff["nurse"], MONDAY, ONE_CHAIR)
    assert [c["start"] for c in cap["conflicts"]] == [
        f"{h:02d}:{m:02d}" for h in range(9, 13) for m in (0, 15, 30, 45)
    ]
    first = cap["conflicts"][0]
    assert (first["chairs_used"], first["capacity"], first["chairs_free"]) == (2, 1, 0)
    assert {b["patient"] for b in first["booked"]} == {"Doe, Jane", "Able, Test"}


def test_a_move_into_a_full_slot_is_refused_until_recovery_ends(db, staff, course, second):
    """One chair, taken until 13:00: a move to 12:45 is refused naming the slot and the
    capacity; 13:00 fits."""
    desk = staff["front_desk"]
    with pytest.raises(ConflictError) as err:
        move_session(
            db,
            desk,
            second.id,
            session_number=1,
            new_date=MONDAY,
            new_start=time(12, 45),
            reason="asked",
            settings=ONE_CHAIR,
        )
    assert err.value.field == "new_date"
    assert "2026-11-30 12:45" in str(err.value) and "capacity 1" in str(err.value)
    out = move_session(
        db,
        desk,
        second.id,
        session_number=1,
        new_date=MONDAY,
        new_start=time(13),
        reason="asked",
        settings=ONE_CHAIR,
    )
    assert out["overbooked"] == []


def test_the_nurses_can_be_what_limits(db, staff, course, second):
    """Four chairs but one nurse of one patient: the second patient is refused, naming
    the nurses as the limit."""
    nurses = Settings(chairs=4, nurses_on_duty=1, patients_per_nurse=1)
    with pytest.raises(ConflictError, match="limited by nurses"):
        move_session(
            db,
            staff["front_desk"],
            second.id,
            session_number=1,
            new_date=MONDAY,
            reason="asked",
            settings=nurses,
        )
    assert _capacity(db, staff["front_desk"], MONDAY, nurses)["limited_by"] == "nurses"


def test_overbooking_with_a_reason_is_booked_and_audited(db, staff, course, second):
    """The desk may overbook knowingly: the move is written, the slots named, and an
    'overbook' audit entry carries the reason."""
    out = move_session(
        db,
        staff["front_desk"],
        second.id,
        session_number=1,
        new_date=MONDAY,
        reason="urgent, extra nurse called in",
        allow_overbook=True,
        settings=ONE_CHAIR,
    )
    assert out["overbooked"][0].startswith("2026-11-30 09:00 (2 patients, capacity 1")
    with db.session() as s:
        (entry,) = s.scalars(select(AuditEntry).where(AuditEntry.action == "overbook")).all()
    assert entry.entity_id == out["change"]["id"]
    assert "urgent, extra nurse called in" in (entry.detail or "")
    assert entry.actor_role == "front_desk"


def test_a_booster_holds_a_chair_at_the_booster_phase_times(db, staff, course):
    """A booster (a date) holds a chair 09:00-13:00 plus the observation, to 15:00."""
    book_booster(db, staff["physician"], course.id, scheduled_date=_day(30), reason="relapse")
    cap = _capacity(db, staff["front_desk"], _day(30))
    (booked,) = cap["bookings"]
    assert (booked["kind"], booked["start"], booked["chair_until"]) == (
        "booster",
        "2026-12-30T09:00",
        "2026-12-30T15:00",
    )
    assert _slot(cap, "14:45")["chairs_used"] == 1 and _slot(cap, "15:00")["chairs_used"] == 0


def test_a_missed_session_frees_its_chair(db, staff, course):
    """A missed session holds no chair."""
    mark_missed(db, staff["front_desk"], course.id, session_number=1, reason="no show")
    assert _slot(_capacity(db, staff["front_desk"], MONDAY), "09:00")["chairs_used"] == 0


# --- rebooking suggestion -----------------------------------------------------------


def _rebook(db, actor, course_id, number, today, settings=None) -> dict[str, Any]:
    with db.session() as s:
        return rebook_missed(
            s, actor, course_id, session_number=number, today=today, settings=settings
        )


def test_rebook_suggests_the_next_free_weekday_after_the_phase(db, staff, course):
    """Session 2 missed: the next weekday after session 1 with no session of the course is
    Wednesday a week later (sessions 3-7 fill the days); nothing is written."""
    desk = staff["front_desk"]
    mark_missed(db, desk, course.id, session_number=2, reason="car broke down")
    out = _rebook(db, desk, course.id, 2, today=_day(2))
    assert out["suggested"]["date"] == "2026-12-09"
    assert out["suggested"]["start"] == "2026-12-09T09:00"
    assert "2026-11-30" in out["reason"]
    assert any("3, 4, 5, 6, 7" in w for w in out["warnings"])
    assert _rebook(db, desk, course.id, 2, today=MONDAY)["suggested"]["date"] == "2026-12-01"
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(SessionChange)) == 1


def test_rebook_skips_a_full_day_and_refuses_a_session_not_missed(db, staff, course):
    """With one chair, a day whose chair is taken is skipped; only a missed session is
    rebooked."""
    desk = staff["front_desk"]
    _course(db, staff, _other(db, staff, "T-0003", "Baker"), _day(9))
    mark_missed(db, desk, course.id, session_number=2, reason="car broke down")
    out = _rebook(db, desk, course.id, 2, today=_day(2), settings=ONE_CHAIR)
    # Baker's seven sessions take the one chair on the weekdays from the 9th to the 17th.
    assert out["suggested"]["date"] == "2026-12-18"
    with pytest.raises(ConflictError):
        _rebook(db, desk, course.id, 3, today=_day(2))


# --- the capacity settings ----------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"KETAPAIN_CHAIRS": "0"}, "KETAPAIN_CHAIRS"),
        ({"KETAPAIN_CHAIRS": "101"}, "KETAPAIN_CHAIRS"),
        ({"KETAPAIN_NURSES_ON_DUTY": "two"}, "KETAPAIN_NURSES_ON_DUTY"),
        ({"KETAPAIN_PATIENTS_PER_NURSE": "0"}, "KETAPAIN_PATIENTS_PER_NURSE"),
        ({"KETAPAIN_CLINIC_OPENS_H": "24"}, "KETAPAIN_CLINIC_OPENS_H"),
        ({"KETAPAIN_CLINIC_CLOSES_H": "8"}, "KETAPAIN_CLINIC_CLOSES_H"),
    ],
)
def test_capacity_settings_refuse_bad_values_naming_the_variable(env, field):
    """A bad capacity variable is refused, naming it and the allowed range."""
    with pytest.raises(InvalidValueError) as err:
        Settings.from_env(env)
    assert err.value.field == field


def test_capacity_settings_from_the_environment_and_in_code():
    """Defaults 4 chairs, 2 nurses of 2, 08-18; the environment sets them; a value built
    in code is checked too."""
    default = Settings.from_env({})
    assert (default.chairs, default.nurses_on_duty, default.patients_per_nurse) == (4, 2, 2)
    env = {
        "KETAPAIN_CHAIRS": "100",
        "KETAPAIN_NURSES_ON_DUTY": "3",
        "KETAPAIN_PATIENTS_PER_NURSE": "1",
        "KETAPAIN_CLINIC_OPENS_H": "0",
        "KETAPAIN_CLINIC_CLOSES_H": "24",
    }
    s = Settings.from_env(env)
    assert (s.chairs, s.nurses_on_duty, s.patients_per_nurse) == (100, 3, 1)
    assert (s.clinic_opens_h, s.clinic_closes_h) == (0, 24)
    for bad in ({"chairs": True}, {"patients_per_nurse": 11}, {"clinic_closes_h": 8}):
        with pytest.raises(InvalidValueError) as err:
            Settings(**bad)
        assert err.value.field == next(iter(bad))
