"""Courses: planning with hard stops and overrides, replanning, status, decisions,
boosters, oral prescriptions, the course view and the front desk's schedule."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from tests.conftest import statements_sent

from ketapain.clinic._service import add_row
from ketapain.clinic.courses import (
    Booster,
    Course,
    CoursePlan,
    CourseStatusEvent,
    Decision,
    OralPrescription,
    course_view,
    current_plans,
)
from ketapain.clinic.patients import BodyMeasurement, Diagnosis, HistoryItem, LabResult
from ketapain.clinic.permissions import Action
from ketapain.clinic.registry import register_patient
from ketapain.clinic.schedule import schedule
from ketapain.clinic.screenings import OverrideRecord
from ketapain.clinic.treatment import (
    book_booster,
    change_status,
    create_course,
    decide,
    prescribe_oral,
    replan,
)
from ketapain.errors import AccessDeniedError, ConflictError, HardStopError, InvalidValueError

MONDAY = date(2026, 11, 23)
VIEW_KEYS = {
    "id",
    "patient_id",
    "protocol",
    "status",
    "status_history",
    "plan_version",
    "plan_reason",
    "start_date",
    "plan",
    "decisions",
    "boosters",
    "oral_prescriptions",
}
SCHEDULE_KEYS = {
    "patient_id",
    "patient",
    "course_id",
    "protocol",
    "kind",
    "number",
    "date",
    "start",
    "end",
}


def _course(db, actor, patient_id, **kw):
    kw.setdefault("start_date", MONDAY)
    return create_course(
        db,
        actor,
        patient_id=patient_id,
        protocol="seed-outpatient",
        bag_mg=kw.pop("bag_mg", 250),
        bag_ml=kw.pop("bag_ml", 250),
        **kw,
    )


def _count(db, model):
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def _view(db, staff, course_id):
    with db.session() as s:
        return course_view(s, staff["physician"], course_id)


def _status(db, staff, course_id):
    return _view(db, staff, course_id)["status"]


@pytest.fixture
def course(db, staff, patient):
    """A seed-outpatient course for the fixture patient, starting on a Monday."""
    return _course(db, staff["physician"], patient.id)


# --- planning -----------------------------------------------------------------------


def test_create_course_stores_plan_version_1_planned(db, staff, patient, course):
    """A physician's course holds plan version 1 from the chart and starts as planned."""
    view = _view(db, staff, course.id)
    assert set(view) == VIEW_KEYS
    assert (view["id"], view["patient_id"]) == (str(course.id), str(patient.id))
    assert (view["protocol"], view["status"]) == ("seed-outpatient", "planned")
    assert [e["status"] for e in view["status_history"]] == ["planned"]
    assert (view["plan_version"], view["plan_reason"]) == (1, None)
    assert view["start_date"] == MONDAY.isoformat()
    plan = view["plan"]
    assert plan["protocol"]["name"] == "seed-outpatient"
    assert plan["dosing_weight"]["dosing_kg"] == pytest.approx(68.0)
    assert [s["number"] for s in plan["sessions"]] == list(range(1, 8))
    assert plan["sessions"][0]["date"] == MONDAY.isoformat()
    assert (view["decisions"], view["boosters"], view["oral_prescriptions"]) == ([], [], [])
    with db.session() as s:
        stored = s.scalars(select(CoursePlan)).one()
    assert stored.inputs["chart"]["weight_kg"] == 68.0
    assert (stored.inputs["bag_mg"], stored.inputs["weight_policy"]) == (250, "actual")


def test_only_a_physician_plans(db, staff, patient):
    """Nurses, the front desk and admins cannot create a course; nothing is written."""
    for role in ("nurse", "front_desk", "admin"):
        with pytest.raises(AccessDeniedError, match=f"{role.replace('_', ' ')} may not plan"):
            _course(db, staff[role], patient.id)
    assert _count(db, Course) == 0


def test_create_course_input_checks(db, staff, patient):
    """An unknown weight policy or an override matching no hard stop writes nothing."""
    with pytest.raises(InvalidValueError) as err:
        _course(db, staff["physician"], patient.id, weight_policy="heaviest")
    assert err.value.field == "weight_policy"
    with pytest.raises(InvalidValueError) as err:
        _course(db, staff["physician"], patient.id, overrides=[("pregnancy", "just in case")])
    assert err.value.field == "overrides"
    assert err.value.value == ["pregnancy"]
    for model in (Course, CoursePlan, OverrideRecord):
        assert _count(db, model) == 0


def _uncontrolled_hypertension(db, staff, patient):
    add_row(db, staff["physician"], Action.CHART, HistoryItem(patient_id=patient.id, code="I16"))


def _positive_pregnancy_test(db, staff, patient):
    add_row(
        db,
        staff["nurse"],
        Action.CHART,
        LabResult(patient_id=patient.id, test="pregnancy_test", positive=True),
    )


@pytest.mark.parametrize(
    ("chart", "code"),
    [
        (_uncontrolled_hypertension, "uncontrolled_hypertension"),
        (_positive_pregnancy_test, "pregnancy"),
    ],
)
def test_hard_stop_blocks_the_plan_until_overridden(db, staff, patient, chart, code):
    """A hard stop refuses the course with its findings and writes nothing; an override lifts it."""
    chart(db, staff, patient)
    with pytest.raises(HardStopError, match=code) as err:
        _course(db, staff["physician"], patient.id)
    assert err.value.field == "overrides"
    assert [f.code for f in err.value.findings] == [code]
    for model in (Course, CoursePlan, CourseStatusEvent, OverrideRecord):
        assert _count(db, model) == 0
    course = _course(db, staff["physician"], patient.id, overrides=[(code, "benefit outweighs")])
    view = _view(db, staff, course.id)
    assert view["status"] == "planned"
    assert [o["code"] for o in view["plan"]["overrides"]] == [code]
    with db.session() as s:
        ov = s.scalars(select(OverrideRecord)).one()
    assert (ov.code, ov.context, ov.context_id) == (code, "plan", course.id)
    assert ov.reason == "benefit outweighs"


# --- replanning ---------------------------------------------------------------------


def test_replan_appends_version_2_and_keeps_version_1(db, staff, course):
    """A new plan version carries the reason and the new inputs; version 1 stays as it was."""
    new = replan(db, staff["physician"], course.id, reason="2 mg/mL bag", bag_mg=500)
    assert (new.version, new.reason) == (2, "2 mg/mL bag")
    view = _view(db, staff, course.id)
    assert (view["plan_version"], view["plan_reason"]) == (2, "2 mg/mL bag")
    assert view["plan"]["bag"]["conc_mg_per_ml"] == pytest.approx(2.0)
    with db.session() as s:
        plans = s.scalars(select(CoursePlan).order_by(CoursePlan.version)).all()
    assert [p.version for p in plans] == [1, 2]
    assert plans[0].plan["bag"]["conc_mg_per_ml"] == pytest.approx(1.0)
    assert plans[0].reason is None
    assert plans[1].inputs["bag_ml"] == 250  # kept from version 1


def test_lists_read_each_plan_row_once_and_see_a_new_version(db, staff, course):
    """The lists' plans (current_plans) are decoded once per plan row: a second read sends
    only the statement of the rows' ids; a replan is a new row, read at once."""
    sent = []

    def plans():
        with statements_sent(db.read_engine) as statements, db.session() as s:
            plan = current_plans(s, [course.id])[course.id]
        sent.extend(st for st in statements if "course_plans" in st)
        return plan

    first = plans()
    sent.clear()
    assert plans() is first
    assert len(sent) == 1
    assert "course_plans.plan" not in sent[0]
    replan(db, staff["physician"], course.id, reason="2 mg/mL bag", bag_mg=500)
    sent.clear()
    latest = plans()
    assert len(sent) == 2
    assert (first["bag"]["conc_mg_per_ml"], latest["bag"]["conc_mg_per_ml"]) == (
        pytest.approx(1.0),
        pytest.approx(2.0),
    )


def test_replan_moves_the_start_date_and_keeps_the_bag(db, staff, course):
    """Replanning with a new start date moves the sessions; unchanged inputs carry over."""
    later = MONDAY + timedelta(days=7)
    replan(db, staff["physician"], course.id, reason="patient away", start_date=later)
    view = _view(db, staff, course.id)
    assert view["start_date"] == later.isoformat()
    assert view["plan"]["sessions"][0]["date"] == later.isoformat()
    assert view["plan"]["bag"]["conc_mg_per_ml"] == pytest.approx(1.0)


def test_replan_needs_a_reason_a_physician_and_an_open_course(db, staff, course):
    """A plan change without a reason, by a nurse, or of a closed course adds no version."""
    doc = staff["physician"]
    with pytest.raises(InvalidValueError) as err:
        replan(db, doc, course.id, reason="  ")
    assert err.value.field == "reason"
    with pytest.raises(AccessDeniedError):
        replan(db, staff["nurse"], course.id, reason="why")
    change_status(db, doc, course.id, status="cancelled", reason="moved away")
    with pytest.raises(ConflictError, match="cancelled course cannot be replanned"):
        replan(db, doc, course.id, reason="try again")
    assert _count(db, CoursePlan) == 1


# --- status -------------------------------------------------------------------------


def test_status_transitions(db, staff, course):
    """planned -> in_progress -> completed is allowed; skipping in_progress is a conflict."""
    doc = staff["physician"]
    with pytest.raises(ConflictError, match="planned course cannot become completed") as err:
        change_status(db, doc, course.id, status="completed", reason="done")
    assert err.value.field == "status"
    change_status(db, doc, course.id, status="in_progress", reason="first infusion")
    assert _status(db, staff, course.id) == "in_progress"
    with pytest.raises(ConflictError):
        change_status(db, doc, course.id, status="cancelled", reason="no")
    change_status(db, doc, course.id, status="completed", reason="series done")
    history = _view(db, staff, course.id)["status_history"]
    assert [(h["status"], h["reason"]) for h in history] == [
        ("planned", "course planned"),
        ("in_progress", "first infusion"),
        ("completed", "series done"),
    ]


def test_terminal_states_are_final(db, staff, patient, course):
    """Once completed, cancelled or stopped early, no status change is possible."""
    doc = staff["physician"]
    paths = [("in_progress", "completed"), ("cancelled",), ("in_progress", "stopped_early")]
    courses = [course] + [_course(db, doc, patient.id) for _ in paths[1:]]
    for c, path in zip(courses, paths, strict=True):
        for status in path:
            change_status(db, doc, c.id, status=status, reason="step")
        for status in ("planned", "in_progress", "completed", "cancelled", "stopped_early"):
            with pytest.raises(ConflictError, match="closed"):
                change_status(db, doc, c.id, status=status, reason="again")
        assert _status(db, staff, c.id) == path[-1]


def test_change_status_checks(db, staff, course):
    """An unknown status, an empty reason or a nurse's request is refused."""
    doc = staff["physician"]
    with pytest.raises(InvalidValueError) as err:
        change_status(db, doc, course.id, status="paused", reason="why")
    assert err.value.field == "status"
    with pytest.raises(InvalidValueError) as err:
        change_status(db, doc, course.id, status="in_progress", reason=" ")
    assert err.value.field == "reason"
    with pytest.raises(AccessDeniedError):
        change_status(db, staff["nurse"], course.id, status="in_progress", reason="why")
    assert _count(db, CourseStatusEvent) == 1


# --- decisions ----------------------------------------------------------------------


def test_stop_decision_ends_an_in_progress_course_early(db, staff, course):
    """A stop after the test sessions puts an in-progress course to stopped_early."""
    doc = staff["physician"]
    change_status(db, doc, course.id, status="in_progress", reason="started")
    d = decide(db, doc, course.id, after_session=2, decision="stop", reason="no response")
    view = _view(db, staff, course.id)
    assert view["status"] == "stopped_early"
    assert view["status_history"][-1]["reason"] == "decision: no response"
    # Nothing charted yet: the recommendation kept with the decision says so.
    assert d.recommendation is not None
    assert d.recommendation["recommend"] == "insufficient_data"
    assert view["decisions"] == [
        {
            "id": str(d.id),
            "after_session": 2,
            "decision": "stop",
            "reason": "no response",
            "recommendation": d.recommendation,
            "signed_by": str(doc.user_id),
            "signed_utc": d.recorded_utc.isoformat(),
        }
    ]


def test_stop_decision_cancels_a_planned_course(db, staff, course):
    """A stop before any infusion cancels the planned course."""
    decide(db, staff["physician"], course.id, after_session=1, decision="stop", reason="declined")
    assert _status(db, staff, course.id) == "cancelled"


def test_continue_decision_keeps_the_status_and_a_second_is_a_conflict(db, staff, course):
    """A continue changes no status; a second decision after the same session is refused."""
    doc = staff["physician"]
    decide(db, doc, course.id, after_session=2, decision="continue", reason="NRS 7 to 4")
    assert _status(db, staff, course.id) == "planned"
    with pytest.raises(ConflictError) as err:
        decide(db, doc, course.id, after_session=2, decision="stop", reason="changed mind")
    assert err.value.field == "after_session"
    assert _status(db, staff, course.id) == "planned"
    decide(db, doc, course.id, after_session=3, decision="continue", reason="still better")
    assert [d.after_session for d in _decisions(db)] == [2, 3]


def _decisions(db):
    with db.session() as s:
        return s.scalars(select(Decision).order_by(Decision.after_session)).all()


def test_decision_checks(db, staff, course):
    """A physician's decision is continue or stop, with a reason, after a session of the plan."""
    for kw, field in (
        ({"after_session": 2, "decision": "maybe", "reason": "unsure"}, "decision"),
        ({"after_session": 2, "decision": "continue", "reason": " "}, "reason"),
        ({"after_session": 0, "decision": "continue", "reason": "why"}, "after_session"),
        ({"after_session": 8, "decision": "continue", "reason": "why"}, "after_session"),
    ):
        with pytest.raises(InvalidValueError) as err:
            decide(db, staff["physician"], course.id, **kw)
        assert err.value.field == field
    with pytest.raises(AccessDeniedError):
        decide(db, staff["nurse"], course.id, after_session=2, decision="stop", reason="why")
    assert _decisions(db) == []
    assert _status(db, staff, course.id) == "planned"


# --- boosters and oral prescriptions ------------------------------------------------


def test_book_booster(db, staff, course):
    """A booked booster shows in the course with its date and reason; a reason is needed."""
    doc = staff["physician"]
    day = MONDAY + timedelta(days=60)
    b = book_booster(db, doc, course.id, scheduled_date=day, reason="pain back to NRS 6")
    assert _view(db, staff, course.id)["boosters"] == [
        {"id": str(b.id), "scheduled_date": day.isoformat(), "reason": "pain back to NRS 6"}
    ]
    with pytest.raises(InvalidValueError) as err:
        book_booster(db, doc, course.id, scheduled_date=day, reason="")
    assert err.value.field == "reason"
    with pytest.raises(AccessDeniedError):
        book_booster(db, staff["nurse"], course.id, scheduled_date=day, reason="relapse")
    assert _count(db, Booster) == 1


def test_prescribe_oral(db, staff, course):
    """An oral prescription is stored with its daily dose and dates."""
    start = MONDAY + timedelta(days=10)
    rx = prescribe_oral(
        db,
        staff["physician"],
        course.id,
        dose_mg=30,
        doses_per_day=3,
        start_date=start,
        end_date=start + timedelta(days=13),
        instructions="with food",
    )
    (out,) = _view(db, staff, course.id)["oral_prescriptions"]
    assert out["id"] == str(rx.id)
    assert out["daily_mg"] == pytest.approx(90.0)
    assert (out["start_date"], out["end_date"]) == (
        start.isoformat(),
        (start + timedelta(days=13)).isoformat(),
    )
    assert out["instructions"] == "with food"


def test_oral_prescription_checks(db, staff, course):
    """End before start, 0 or more than 6 doses a day, and unit-slip doses are refused."""
    for kw, field in (
        ({"end_date": MONDAY - timedelta(days=1)}, "end_date"),
        ({"doses_per_day": 0}, "doses_per_day"),
        ({"doses_per_day": 7}, "doses_per_day"),
        ({"dose_mg": 600.0}, "dose_mg"),
        ({"dose_mg": 0.0}, "dose_mg"),
    ):
        values = {"dose_mg": 30.0, "doses_per_day": 3, "start_date": MONDAY, "end_date": MONDAY}
        values.update(kw)
        with pytest.raises(InvalidValueError) as err:
            prescribe_oral(db, staff["physician"], course.id, **values)
        assert err.value.field == field
    assert _count(db, OralPrescription) == 0


def test_nurse_may_not_prescribe_or_read_for_front_desk(db, staff, course):
    """A nurse cannot prescribe; the front desk cannot open the course view."""
    with pytest.raises(AccessDeniedError):
        prescribe_oral(
            db,
            staff["nurse"],
            course.id,
            dose_mg=30,
            doses_per_day=3,
            start_date=MONDAY,
            end_date=MONDAY,
        )
    with db.session() as s, pytest.raises(AccessDeniedError):
        course_view(s, staff["front_desk"], course.id)


# --- the schedule -------------------------------------------------------------------


def _other_patient(db, staff, mrn, family):
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
    return p


def test_schedule_for_the_front_desk(db, staff, patient, course):
    """The front desk sees who comes when, in the date range, with no doses at all."""
    doc = staff["physician"]
    booster_day = MONDAY + timedelta(days=3)
    book_booster(db, doc, course.id, scheduled_date=booster_day, reason="planned booster")
    other = _other_patient(db, staff, "T-0002", "Able")
    other_course = _course(db, doc, other.id, start_date=MONDAY + timedelta(days=1))
    with db.session() as s:
        rows = schedule(s, staff["front_desk"], from_date=MONDAY, to_date=MONDAY + timedelta(3))
    assert [(r["date"], r["patient"], r["kind"], r["number"]) for r in rows] == [
        ("2026-11-23", "Doe, Jane", "session", 1),
        ("2026-11-24", "Able, Test", "session", 1),
        ("2026-11-24", "Doe, Jane", "session", 2),
        ("2026-11-25", "Able, Test", "session", 2),
        ("2026-11-25", "Doe, Jane", "session", 3),
        ("2026-11-26", "Doe, Jane", "booster", None),
        ("2026-11-26", "Able, Test", "session", 3),
        ("2026-11-26", "Doe, Jane", "session", 4),
    ]
    first = rows[0]
    assert first["start"] == "2026-11-23T09:00"
    assert first["end"] == "2026-11-23T11:00"
    assert first["course_id"] == str(course.id)
    assert first["patient_id"] == str(patient.id)
    assert first["protocol"] == "seed-outpatient"
    assert rows[1]["course_id"] == str(other_course.id)
    for row in rows:
        assert set(row) == SCHEDULE_KEYS
        for key, value in row.items():
            assert not any(word in key for word in ("steps", "dose", "rate"))
            assert value is None or isinstance(value, str | int)
            assert not any(word in str(value) for word in ("steps", "dose_mg", "rate"))


def test_schedule_leaves_out_closed_courses(db, staff, patient, course):
    """Cancelled, completed and stopped courses have no sessions on the schedule."""
    doc = staff["physician"]
    a = _course(db, doc, _other_patient(db, staff, "T-0002", "Able").id)
    b = _course(db, doc, _other_patient(db, staff, "T-0003", "Baker").id)
    change_status(db, doc, course.id, status="cancelled", reason="declined")
    change_status(db, doc, a.id, status="in_progress", reason="started")
    change_status(db, doc, a.id, status="completed", reason="done")
    change_status(db, doc, b.id, status="in_progress", reason="started")
    with db.session() as s:
        rows = schedule(s, staff["nurse"], from_date=MONDAY, to_date=MONDAY + timedelta(30))
    assert {r["patient"] for r in rows} == {"Baker, Test"}
    assert len(rows) == 7
    decide(db, doc, b.id, after_session=2, decision="stop", reason="no response")
    with db.session() as s:
        assert schedule(s, staff["nurse"], from_date=MONDAY, to_date=MONDAY + timedelta(30)) == []


def test_schedule_range_checks_and_roles(db, staff, course):
    """A range ending before it starts is refused; an admin may not read the schedule."""
    with db.session() as s:
        with pytest.raises(InvalidValueError) as err:
            schedule(s, staff["front_desk"], from_date=MONDAY, to_date=MONDAY - timedelta(1))
        assert err.value.field == "to"
        with pytest.raises(AccessDeniedError):
            schedule(s, staff["admin"], from_date=MONDAY, to_date=MONDAY)
        one_day = schedule(s, staff["front_desk"], from_date=MONDAY, to_date=MONDAY)
    assert [r["number"] for r in one_day] == [1]
