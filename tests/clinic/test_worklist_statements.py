"""The work lists and the schedule read all courses in a fixed number of statements.

A clinic of 3 active courses and the same clinic grown to 12 (SQLite files): the SQL
statements each of ``todays_chairs``, ``pending_decisions``, ``due_labs`` and
``schedule`` runs are counted, and must not grow with the number of courses; the lists
themselves must name every course booked, with its patient and its pump state.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

import pytest
from sqlalchemy.orm import Session
from tests.conftest import statements_sent

from ketapain.clinic import migrate
from ketapain.clinic._service import add_row
from ketapain.clinic.accounts import create_user
from ketapain.clinic.audit import SYSTEM, Actor
from ketapain.clinic.charting import record_score, record_vitals
from ketapain.clinic.checklist import record_checklist
from ketapain.clinic.courses import current_plan
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.patients import BodyMeasurement, Diagnosis, LabResult
from ketapain.clinic.permissions import Action
from ketapain.clinic.pump import hang_infusion, pump_event
from ketapain.clinic.registry import register_patient
from ketapain.clinic.schedule import schedule
from ketapain.clinic.treatment import book_booster, change_status, create_course, decide
from ketapain.clinic.worklists import due_labs, pending_decisions, todays_chairs

# A past Monday: every course of these tests starts here (seed-outpatient: sessions
# 1 and 2 on Monday and Tuesday, the decision after session 2).
MONDAY: Final = date(2026, 11, 9)
WEEK_END: Final = MONDAY + timedelta(days=6)
BOOSTER_IN_WINDOW: Final = MONDAY + timedelta(days=3)
BOOSTER_LATER: Final = MONDAY + timedelta(days=40)
SMALL: Final = 3
LARGE: Final = 12
STAFF: Final = (
    ("doc", "physician"),
    ("nurse", "nurse"),
    ("desk", "front_desk"),
)


@dataclass(repr=False)
class Clinic:
    """A clinic database and what was charted in it."""

    db: Database
    actors: dict[str, Actor]
    # Active course id -> patient's "Family, Given".
    patients: dict[str, str] = field(default_factory=dict)
    # Active course id -> the state its session 1 shows in today's chairs.
    chair_state: dict[str, str] = field(default_factory=dict)
    patient_ids: dict[str, uuid.UUID] = field(default_factory=dict)
    stopped: str = ""
    running: str = ""
    deciding: str = ""
    boosted: str = ""


def _ready(db: Database, nurse: Actor, infusion_id: uuid.UUID, patient_id: uuid.UUID) -> None:
    """The pre-infusion checklist, baseline vitals and NRS, charted 12 h ago."""
    record_checklist(
        db,
        nurse,
        infusion_id,
        consent_confirmed=True,
        escort_confirmed=True,
        escort_name="A. Escort",
        fasting_confirmed=True,
        medications_reviewed=True,
        premedication_note="premedication given as planned",
    )
    when = {
        "patient_id": patient_id,
        "infusion_id": infusion_id,
        "measured_utc": utc_now() - timedelta(hours=12),
    }
    record_vitals(db, nurse, (), **when, sbp_mmhg=120.0, dbp_mmhg=75.0, hr_per_min=72.0)
    record_score(db, nurse, (), instrument="pain_nrs", value=7.0, **when)


def _add_course(clinic: Clinic, index: int) -> tuple[str, uuid.UUID, dict[str, Any]]:
    """A registered, weighed, diagnosed patient with a seed-outpatient course."""
    db, a = clinic.db, clinic.actors
    family, given = f"Family{index:02d}", f"Given{index:02d}"
    p = register_patient(
        db,
        a["front_desk"],
        mrn=f"W-{index:03d}",
        family_name=family,
        given_name=given,
        birth_date=date(1980, 5, 1),
        sex="female",
    )
    add_row(
        db, a["nurse"], Action.CHART, BodyMeasurement(patient_id=p.id, weight_kg=68, height_cm=165)
    )
    add_row(db, a["physician"], Action.CHART, Diagnosis(patient_id=p.id, code="G90.511"))
    course = create_course(
        db,
        a["physician"],
        patient_id=p.id,
        protocol="seed-outpatient",
        start_date=MONDAY,
        bag_mg=250,
        bag_ml=250,
    )
    with db.read() as s:
        plan = current_plan(s, course.id).plan
    cid = str(course.id)
    clinic.patients[cid] = f"{family}, {given}"
    clinic.patient_ids[cid] = p.id
    clinic.chair_state[cid] = "not hung"
    return cid, p.id, plan


def _hang(clinic: Clinic, course_id: str, number: int) -> uuid.UUID:
    inf = hang_infusion(
        clinic.db,
        clinic.actors["nurse"],
        uuid.UUID(course_id),
        session_number=number,
        bag_mg=250,
        bag_ml=250,
        lot=f"LOT-{number}",
    )
    return inf.id


def _start(clinic: Clinic, course_id: str, infusion_id: uuid.UUID, plan: dict[str, Any]) -> None:
    nurse = clinic.actors["nurse"]
    _ready(clinic.db, nurse, infusion_id, clinic.patient_ids[course_id])
    rate = plan["sessions"][0]["steps"][0]["rate_mg_per_h"]
    pump_event(clinic.db, nurse, infusion_id, kind="start", rate_mg_per_h=rate)


def _first_courses(clinic: Clinic) -> None:
    """Three active courses (running, deciding, booked) and one stopped early."""
    doc = clinic.actors["physician"]
    # Session 1 running.
    cid, _, plan = _add_course(clinic, 0)
    _start(clinic, cid, _hang(clinic, cid, 1), plan)
    clinic.running, clinic.chair_state[cid] = cid, "running"
    book_booster(clinic.db, doc, uuid.UUID(cid), scheduled_date=BOOSTER_LATER, reason="later")
    # Session 1 hung, not started; session 2 given and stopped: a decision is due.
    cid, _, plan = _add_course(clinic, 1)
    _hang(clinic, cid, 1)
    clinic.chair_state[cid] = "not_started"
    second = _hang(clinic, cid, 2)
    _start(clinic, cid, second, plan)
    pump_event(clinic.db, clinic.actors["nurse"], second, kind="stop")
    clinic.deciding = cid
    # Nothing hung; a booster booked within the week.
    cid, _, _ = _add_course(clinic, 2)
    book_booster(clinic.db, doc, uuid.UUID(cid), scheduled_date=BOOSTER_IN_WINDOW, reason="booster")
    clinic.boosted = cid
    # Stopped early: on no list, though booked on the same days, with session 2 stopped
    # and no decision signed.
    cid, _, plan = _add_course(clinic, 3)
    second = _hang(clinic, cid, 2)
    _start(clinic, cid, second, plan)
    pump_event(clinic.db, clinic.actors["nurse"], second, kind="stop")
    change_status(clinic.db, doc, uuid.UUID(cid), status="stopped_early", reason="moved away")
    del clinic.patients[cid], clinic.chair_state[cid], clinic.patient_ids[cid]
    clinic.stopped = cid


def _more_courses(clinic: Clinic, upto: int) -> None:
    """Active courses up to ``upto``: every other one with its session-1 bag hung."""
    index = 4
    while len(clinic.patients) < upto:
        cid, _, _ = _add_course(clinic, index)
        if index % 2:
            _hang(clinic, cid, 1)
            clinic.chair_state[cid] = "not_started"
        index += 1


def _copy(db: Database, path: Path) -> None:
    """A consistent copy of the database file (SQLite's online backup)."""
    source = sqlite3.connect(db.engine.url.database or "")
    target = sqlite3.connect(path)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


@pytest.fixture(scope="module")
def clinics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, Clinic]]:
    """The clinic with 3 active courses, and a copy of it grown to 12 (and one stopped early)."""
    folder = tmp_path_factory.mktemp("worklists")
    db = Database.connect(f"sqlite:///{folder / 'large.db'}")
    migrate.upgrade(db)
    actors: dict[str, Actor] = {}
    for username, role in STAFF:
        user = create_user(
            db, SYSTEM, username=username, full_name=username, role=role, password="pw-long-1234"
        )
        actors[role] = user.actor()
    large = Clinic(db=db, actors=actors)
    _first_courses(large)
    assert len(large.patients) == SMALL
    _copy(db, folder / "small.db")
    small = Clinic(
        db=Database.connect(f"sqlite:///{folder / 'small.db'}"),
        actors=actors,
        patients=dict(large.patients),
        chair_state=dict(large.chair_state),
        patient_ids=dict(large.patient_ids),
        stopped=large.stopped,
        running=large.running,
        deciding=large.deciding,
        boosted=large.boosted,
    )
    _more_courses(large, LARGE)
    yield {SMALL: small, LARGE: large}
    small.db.dispose()
    large.db.dispose()


def _counted(db: Database, call: Callable[[Session], Any]) -> tuple[int, Any]:
    """The SQL statements ``call`` runs in a read session of its own, and its result, once
    the process has kept the plans it reads (courses.current_plans)."""
    with db.session() as s:
        call(s)
    with db.session() as s:
        s.connection()  # begin first: the counts are the function's statements only
        with statements_sent(db.read_engine) as statements:
            result = call(s)
    return len(statements), result


LISTS: Final[dict[str, Callable[[Session, dict[str, Actor]], Any]]] = {
    "todays_chairs": lambda s, a: todays_chairs(s, a["nurse"], day=MONDAY),
    "pending_decisions": lambda s, a: pending_decisions(s, a["physician"]),
    "due_labs": lambda s, a: due_labs(s, a["physician"], today=MONDAY),
    "schedule": lambda s, a: schedule(s, a["front_desk"], from_date=MONDAY, to_date=WEEK_END),
}


@pytest.mark.parametrize("name", sorted(LISTS))
def test_statements_do_not_grow_with_the_courses(clinics: dict[int, Clinic], name: str) -> None:
    """Each list runs as many statements for 12 active courses as for 3 (a few in all),
    and lists every active course in both."""
    counts = {}
    for size, clinic in clinics.items():
        n, rows = _counted(clinic.db, lambda s, c=clinic: LISTS[name](s, c.actors))
        counts[size] = n
        assert rows, f"{name} listed nothing for {size} courses"
        if name != "pending_decisions":
            assert {r["course_id"] for r in rows} == set(clinic.patients), name
    assert counts[LARGE] == counts[SMALL], f"{name}: {counts}"
    assert counts[SMALL] <= 8, f"{name}: {counts}"


@pytest.mark.parametrize("size", [SMALL, LARGE])
def test_todays_chairs_name_each_patient_and_state(clinics: dict[int, Clinic], size: int) -> None:
    """Every course booked today is one chair, with its patient's name and the state of
    the bag of that session: not hung, not started or running; a course stopped early has none."""
    clinic = clinics[size]
    with clinic.db.session() as s:
        rows = todays_chairs(s, clinic.actors["nurse"], day=MONDAY)
    assert len(rows) == size
    by_course = {r["course_id"]: r for r in rows}
    assert clinic.stopped not in by_course
    for cid, row in by_course.items():
        assert row["patient"] == clinic.patients[cid]
        assert row["patient_id"] == str(clinic.patient_ids[cid])
        assert (row["kind"], row["number"], row["date"]) == ("session", 1, MONDAY.isoformat())
        assert row["state"] == clinic.chair_state[cid], row
        assert (row["infusion_id"] is None) == (row["state"] == "not hung")
    states = {r["state"] for r in rows}
    assert {"not hung", "not_started", "running"} <= states


@pytest.mark.parametrize("size", [SMALL, LARGE])
def test_schedule_has_the_booster_booked_in_the_window(
    clinics: dict[int, Clinic], size: int
) -> None:
    """A booster booked within the dates is on the schedule, one booked later is not; the
    sessions of the week are there for every active course and none for one stopped early."""
    clinic = clinics[size]
    with clinic.db.session() as s:
        rows = schedule(s, clinic.actors["front_desk"], from_date=MONDAY, to_date=WEEK_END)
    boosters = [r for r in rows if r["kind"] == "booster"]
    assert boosters == [
        {
            "patient_id": str(clinic.patient_ids[clinic.boosted]),
            "patient": clinic.patients[clinic.boosted],
            "course_id": clinic.boosted,
            "protocol": "seed-outpatient",
            "kind": "booster",
            "number": None,
            "date": BOOSTER_IN_WINDOW.isoformat(),
            "start": None,
            "end": None,
        }
    ]
    sessions = [r for r in rows if r["kind"] == "session"]
    # Sessions 1 to 5 of seed-outpatient fall on Monday to Friday.
    assert len(sessions) == 5 * size
    assert {r["course_id"] for r in sessions} == set(clinic.patients)
    assert all(MONDAY.isoformat() <= r["date"] <= WEEK_END.isoformat() for r in rows)
    assert [r["date"] for r in rows] == sorted(r["date"] for r in rows)
    with clinic.db.session() as s:
        later = schedule(
            s, clinic.actors["front_desk"], from_date=BOOSTER_LATER, to_date=BOOSTER_LATER
        )
    assert [(r["kind"], r["course_id"]) for r in later] == [("booster", clinic.running)]


@pytest.mark.parametrize("size", [SMALL, LARGE])
def test_due_labs_for_every_course_without_a_liver_test(
    clinics: dict[int, Clinic], size: int
) -> None:
    """No patient has an ALT or AST on file: each active course has its liver tests due
    before the series, under its patient's name."""
    clinic = clinics[size]
    with clinic.db.session() as s:
        rows = due_labs(s, clinic.actors["physician"], today=MONDAY)
    assert {r["course_id"]: r["patient"] for r in rows} == clinic.patients
    assert {(r["due"], r["latest"]) for r in rows} == {("before the series", None)}


def test_pending_decision_until_a_decision_is_signed(
    clinics: dict[int, Clinic], tmp_path: Path
) -> None:
    """The course whose session 2 (the decision point) was given and stopped waits for a
    decision; a running session 1 or a course stopped early does not; once the physician
    signs the decision the list is empty. A liver test on file takes that patient off
    the labs due."""
    source = clinics[SMALL]
    _copy(source.db, tmp_path / "copy.db")
    db = Database.connect(f"sqlite:///{tmp_path / 'copy.db'}")
    doc = source.actors["physician"]
    try:
        with db.session() as s:
            waiting = pending_decisions(s, doc)
        assert [(w["course_id"], w["after_session"]) for w in waiting] == [(source.deciding, 2)]
        assert waiting[0]["patient"] == source.patients[source.deciding]
        assert waiting[0]["patient_id"] == str(source.patient_ids[source.deciding])
        decide(
            db,
            doc,
            uuid.UUID(source.deciding),
            after_session=2,
            decision="continue",
            reason="NRS 7 to 4 after the test infusions",
        )
        with db.session() as s:
            assert pending_decisions(s, doc) == []
        patient_id = source.patient_ids[source.running]
        add_row(
            db,
            source.actors["nurse"],
            Action.CHART,
            LabResult(
                patient_id=patient_id,
                test="alt",
                value=24.0,
                ref_low=0.0,
                ref_high=40.0,
                collected_utc=utc_now() - timedelta(days=30),
            ),
        )
        with db.session() as s:
            due = {r["course_id"] for r in due_labs(s, doc, today=MONDAY)}
        assert due == set(source.patients) - {source.running}
    finally:
        db.dispose()
