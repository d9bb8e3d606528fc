"""Demo data: a fresh database filled with staff, patients and courses at every stage."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from ketapain.clinic import migrate
from ketapain.clinic.accounts import User
from ketapain.clinic.audit import AuditEntry
from ketapain.clinic.charting import open_alarms
from ketapain.clinic.courses import Course, course_status, current_plan
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.demo import DEMO_USERS, fill_demo
from ketapain.clinic.patients import Patient
from ketapain.clinic.registry import list_patients
from ketapain.clinic.schedule import schedule
from ketapain.errors import ConflictError, KetapainError

SATURDAY = date(2026, 11, 21)
MONDAY = date(2026, 11, 16)


@pytest.fixture
def fresh():
    """An empty, migrated in-memory SQLite database (no users)."""
    db = Database.connect("sqlite://")
    migrate.upgrade(db)
    yield db
    db.dispose()


def _actors(db):
    with db.session() as s:
        return {str(u.role): u.actor() for u in s.scalars(select(User))}


def _statuses(db):
    with db.session() as s:
        return Counter(str(course_status(s, c.id)[0]) for c in s.scalars(select(Course)))


def _count(db, model):
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_fill_demo_on_a_saturday(fresh):
    """8 patients, 6 courses at every stage with JSON plans, open alarms, audited rows."""
    counts = fill_demo(fresh, today=SATURDAY)
    assert counts == {"users": 4, "patients": 8, "courses": 6}
    assert _count(fresh, Patient) == 8
    actors = _actors(fresh)
    assert set(actors) == {"physician", "nurse", "front_desk", "admin"}
    assert {a.username for a in actors.values()} == {u for u, _, _ in DEMO_USERS}
    assert _statuses(fresh) == Counter(
        {"in_progress": 3, "planned": 1, "stopped_early": 1, "completed": 1}
    )
    with fresh.session() as s:
        alarms = open_alarms(s, actors["nurse"])
        names = [r["family_name"] for r in list_patients(s, actors["front_desk"])]
    assert alarms
    assert "SBP 186 mmHg > 180 (stop)" in {a["message"] for a in alarms}
    assert {a["level"] for a in alarms} == {"stop", "warn"}
    assert len(names) == 8
    with fresh.session() as s:
        who = set(s.scalars(select(AuditEntry.actor_username).distinct()))
        plans = [current_plan(s, c.id).plan for c in s.scalars(select(Course))]
    assert who <= {"system"} | {u for u, _, _ in DEMO_USERS}
    assert len(plans) == 6
    for plan in plans:  # valid JSON, with dated sessions and their pump steps
        assert json.loads(json.dumps(plan)) == plan
        assert plan["protocol"]["name"] == "seed-outpatient"
        assert plan["sessions"]
        for session in plan["sessions"]:
            date.fromisoformat(session["date"])
            assert session["steps"]


def test_second_fill_is_refused(fresh):
    """A database that holds patients is not filled again, and nothing is added."""
    fill_demo(fresh, today=SATURDAY)
    with pytest.raises(ConflictError, match="holds patients already") as err:
        fill_demo(fresh, today=SATURDAY)
    assert err.value.field == "database"
    assert _count(fresh, Patient) == 8
    assert _count(fresh, User) == 4


def test_fill_demo_on_a_monday(fresh):
    """On a Monday nothing of this week's course is given yet, and the rest is as usual."""
    counts = fill_demo(fresh, today=MONDAY)
    assert counts == {"users": 4, "patients": 8, "courses": 6}
    assert _statuses(fresh) == Counter(
        {"in_progress": 2, "planned": 2, "stopped_early": 1, "completed": 1}
    )
    actors = _actors(fresh)
    with fresh.session() as s:
        assert open_alarms(s, actors["physician"])
        rows = schedule(
            s, actors["front_desk"], from_date=MONDAY, to_date=MONDAY + timedelta(days=13)
        )
    assert {r["date"] for r in rows} >= {MONDAY.isoformat()}
    assert all("dose_mg" not in r for r in rows)


def test_fill_demo_on_a_later_day_is_all_or_nothing(fresh):
    """A day after today either fills the database or leaves it as it was."""
    later = utc_now().date() + timedelta(days=14)
    try:
        fill_demo(fresh, today=later)
    except KetapainError:
        assert _count(fresh, Patient) == 0
        assert _count(fresh, User) == 0
