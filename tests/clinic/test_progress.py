"""Course progress (pain per session, response at a decision point) and the work lists of
the home pages, on the demo clinic."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from ketapain.clinic import migrate
from ketapain.clinic.accounts import User
from ketapain.clinic.courses import Course, decisions
from ketapain.clinic.db import Database
from ketapain.clinic.demo import fill_demo
from ketapain.clinic.progress import course_progress, response
from ketapain.clinic.worklists import courses_of, due_labs, pending_decisions, todays_chairs
from ketapain.errors import AccessDeniedError

SATURDAY = date(2026, 11, 21)


@pytest.fixture(scope="module")
def clinic():
    """The demo clinic of Saturday 21 November 2026 (in-memory SQLite)."""
    db = Database.connect("sqlite://")
    migrate.upgrade(db)
    fill_demo(db, today=SATURDAY)
    with db.session() as s:
        actors = {str(u.role): u.actor() for u in s.scalars(select(User))}
    yield db, actors
    db.dispose()


@given(
    baseline=st.floats(min_value=0.5, max_value=10),
    best=st.floats(min_value=0, max_value=10),
)
def test_response_is_30_percent_or_2_points(baseline: float, best: float) -> None:
    """Responded exactly when the fall is at least 30% or at least 2 NRS points."""
    r = response(baseline_nrs=baseline, best_nrs=best)
    drop = baseline - best
    assert r.responded == (drop / baseline >= 0.3 or drop >= 2)
    assert r.as_dict()["drop_pct"] == pytest.approx(100 * drop / baseline)


def test_no_score_no_verdict() -> None:
    """Without a post-infusion NRS there is no response figure, not a zero."""
    r = response(baseline_nrs=7.0, best_nrs=None)
    assert (r.responded, r.drop_points, r.as_dict()["drop_pct"]) == (None, None, None)


def _progress(db, actor):
    with db.session() as s:
        return [course_progress(s, actor, c.id) for c in s.scalars(select(Course))]


def test_demo_responder_and_non_responder(clinic) -> None:
    """The stopped non-responder (NRS 7 to 7) does not meet the criterion; responders do."""
    db, actors = clinic
    verdicts = []
    for p in _progress(db, actors["physician"]):
        given_ = [s for s in p["sessions"] if s["infusion_id"]]
        if not given_ or not p["decision_points"]:
            continue
        verdicts.append(p["decision_points"][0]["responded"])
        for s in given_:
            assert s["nrs_before"] == 7.0 and s["nrs_after"] in (4.0, 7.0)
            assert s["delivered_mg"] == pytest.approx(s["dose_mg"], rel=0.02)
    assert verdicts.count(False) == 1
    assert verdicts.count(True) >= 3


def test_pending_decision_is_the_course_with_test_infusions_given(clinic) -> None:
    """Decisions waiting: test infusions given and stopped, no decision signed."""
    db, actors = clinic
    with db.session() as s:
        waiting = pending_decisions(s, actors["physician"])
        assert len(waiting) == 1
        course_id = waiting[0]["course_id"]
        assert waiting[0]["after_session"] == 2
        signed = decisions(s, uuid.UUID(course_id))
        assert [d for d in signed if d.after_session == 2] == []


def test_due_labs_name_their_reason_and_source(clinic) -> None:
    """Labs due carry the plan finding's reason and source, and the latest date on file."""
    db, actors = clinic
    with db.session() as s:
        due = due_labs(s, actors["physician"], today=SATURDAY + timedelta(days=60))
    assert due, "a finished series has its after-series liver tests due"
    for row in due:
        assert row["due"] in ("before the series", "after the series")
        assert row["reason"] and row["source"]


def test_todays_chairs_and_courses_of(clinic) -> None:
    """Chairs of a booked day list each session with its infusion state; a patient's
    courses list status and start."""
    db, actors = clinic
    nurse = actors["nurse"]
    with db.session() as s:
        days = [SATURDAY - timedelta(days=k) for k in range(1, 8)]
        rows = [r for d in days for r in todays_chairs(s, nurse, day=d)]
        assert rows and {r["state"] for r in rows} <= {
            "not hung",
            "stopped",
            "running",
            "not_started",
        }
        course = s.scalars(select(Course)).first()
        listed = courses_of(s, nurse, course.patient_id)
        assert listed[0]["id"] == str(course.id) and listed[0]["status"]


def test_front_desk_sees_no_work_lists(clinic) -> None:
    """Work lists are clinical: the front desk is refused."""
    db, actors = clinic
    with db.session() as s, pytest.raises(AccessDeniedError):
        pending_decisions(s, actors["front_desk"])
