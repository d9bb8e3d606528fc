"""What ketapain advises on a course: continue or stop after the test infusions (kept with
the signed decision), the next session's rate by rule and by model, the oral follow-on."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from ketapain.clinic._service import add_row
from ketapain.clinic.audit import Actor, reading
from ketapain.clinic.charting import record_score
from ketapain.clinic.continuation import continuation
from ketapain.clinic.courses import Course
from ketapain.clinic.db import Database
from ketapain.clinic.observations import SideEffect
from ketapain.clinic.oral_follow_on import oral_proposal, prescription_findings
from ketapain.clinic.patients import Medication, Patient
from ketapain.clinic.permissions import Action
from ketapain.clinic.pump import hang_infusion, pump_event
from ketapain.clinic.titration import titration
from ketapain.clinic.treatment import create_course, decide
from ketapain.errors import AccessDeniedError, ConflictError, InvalidValueError

Ready = Callable[..., None]
START = date(2026, 11, 9)  # a Monday
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def course(db: Database, staff: dict[str, Actor], patient: Patient) -> Course:
    """A seed-outpatient course of the shared patient (68 kg), planned by the physician."""
    return create_course(
        db,
        staff["physician"],
        patient_id=patient.id,
        protocol="seed-outpatient",
        start_date=START,
        bag_mg=250,
        bag_ml=250,
    )


def _give(
    db: Database,
    staff: dict[str, Actor],
    ready: Ready,
    course: Course,
    *,
    number: int,
    nrs_after: float | None,
    rate_mg_per_kg_h: float,
    extra: Callable[[uuid.UUID, datetime], None] | None = None,
) -> uuid.UUID:
    """Give session ``number`` for 2 h at ``rate_mg_per_kg_h``, days after T0; chart after."""
    nurse = staff["nurse"]
    inf = hang_infusion(
        db, nurse, course.id, session_number=number, bag_mg=250, bag_ml=250, lot="L"
    )
    start = T0 + timedelta(days=number)
    ready(inf.id, course.patient_id, start - timedelta(minutes=15))
    no = dict.fromkeys(("frequency", "urgency", "dysuria", "haematuria", "suprapubic_pain"), 0)
    record_score(
        db,
        nurse,
        (),
        patient_id=course.patient_id,
        instrument="urinary_screen",
        items=no,
        measured_utc=start - timedelta(minutes=20),
    )
    pump_event(db, nurse, inf.id, kind="start", rate_mg_per_kg_h=rate_mg_per_kg_h, time_utc=start)
    if extra is not None:
        extra(inf.id, start + timedelta(hours=1))
    stop = start + timedelta(hours=2)
    pump_event(db, nurse, inf.id, kind="stop", time_utc=stop)
    if nrs_after is not None:
        record_score(
            db,
            nurse,
            (),
            patient_id=course.patient_id,
            infusion_id=inf.id,
            instrument="pain_nrs",
            value=nrs_after,
            measured_utc=stop + timedelta(minutes=30),
        )
    return inf.id


def _advice(db: Database, actor: Actor, fn: Any, course: Course, **kw: Any) -> Any:
    with reading(db, actor) as session:
        return fn(session, actor, course.id, **kw)


def test_no_infusion_no_recommendation(
    db: Database, staff: dict[str, Actor], course: Course
) -> None:
    """Before any infusion the recommendation is 'insufficient data', after session 2."""
    rec = _advice(db, staff["physician"], continuation, course)
    assert rec["recommend"] == "insufficient_data"
    assert rec["after_session"] == 2 and rec["sessions_given"] == 0


def test_a_severe_side_effect_argues_for_stopping_despite_relief(
    db: Database, staff: dict[str, Actor], make_ready: Ready, course: Course
) -> None:
    """Relief of 43% with a severe hallucination: stop, and the reasons say why."""

    def severe(iid: uuid.UUID, at: datetime) -> None:
        row = SideEffect(
            patient_id=course.patient_id,
            infusion_id=iid,
            effect="hallucinations",
            severity="severe",
            observed_utc=at,
        )
        add_row(db, staff["nurse"], Action.CHART, row)

    _give(db, staff, make_ready, course, number=1, nrs_after=4, rate_mg_per_kg_h=0.2, extra=severe)
    rec = _advice(db, staff["physician"], continuation, course)
    assert rec["recommend"] == "stop"
    assert rec["responded"] is True
    assert any("hallucinations" in r for r in rec["reasons"])
    assert rec["inputs"]["side_effects"] == [["hallucinations", "severe"]] or rec["inputs"][
        "side_effects"
    ] == [("hallucinations", "severe")]


def test_stop_decision_keeps_the_recommendation(
    db: Database, staff: dict[str, Actor], make_ready: Ready, course: Course
) -> None:
    """No response after two sessions: the signed stop keeps 'stop' and the inputs."""
    for n in (1, 2):
        _give(db, staff, make_ready, course, number=n, nrs_after=7, rate_mg_per_kg_h=0.2)
    row = decide(
        db, staff["physician"], course.id, after_session=2, decision="stop", reason="no relief"
    )
    assert row.recommendation is not None
    assert row.recommendation["recommend"] == "stop"
    assert row.recommendation["inputs"]["session_nrs"] == [7.0, 7.0]
    assert row.recommendation["drop_pct"] == pytest.approx(0.0)


def test_after_session_outside_the_plan_is_refused(
    db: Database, staff: dict[str, Actor], course: Course
) -> None:
    """The recommendation names the field when asked after a session the plan lacks."""
    with pytest.raises(InvalidValueError, match="after_session"):
        _advice(db, staff["physician"], continuation, course, after_session=99)


def test_front_desk_reads_no_advice(db: Database, staff: dict[str, Actor], course: Course) -> None:
    """Recommendations and rates are clinical: the front desk is refused."""
    for fn in (continuation, titration):
        with pytest.raises(AccessDeniedError):
            _advice(db, staff["front_desk"], fn, course)


def test_titration_holds_at_the_target_and_steps_up_below_it(
    db: Database, staff: dict[str, Actor], make_ready: Ready, course: Course
) -> None:
    """In the series, 43% relief holds the rate; 14% relief steps it up by 0.05 mg/kg/h."""
    for n in (1, 2):
        _give(db, staff, make_ready, course, number=n, nrs_after=5, rate_mg_per_kg_h=0.2)
    _give(db, staff, make_ready, course, number=3, nrs_after=4, rate_mg_per_kg_h=0.35)
    held = _advice(db, staff["physician"], titration, course)
    assert held["session_number"] == 4
    assert held["rule"]["action"] == "hold"
    assert held["rule"]["rate_next"] == pytest.approx(0.35)
    _give(db, staff, make_ready, course, number=4, nrs_after=6, rate_mg_per_kg_h=0.35)
    up = _advice(db, staff["physician"], titration, course)
    assert up["rule"]["action"] == "increase"
    assert up["rule"]["rate_next"] == pytest.approx(0.40)


def test_titration_asks_for_the_nrs_first(
    db: Database, staff: dict[str, Actor], make_ready: Ready, course: Course
) -> None:
    """Without an NRS during or after the last session the rule keeps the planned rate."""
    _give(db, staff, make_ready, course, number=1, nrs_after=None, rate_mg_per_kg_h=0.2)
    advice = _advice(db, staff["physician"], titration, course)
    assert advice["session_number"] == 2
    assert advice["rule"]["action"] == "chart_first"
    assert advice["rule"]["rate_mg_per_kg_h"] == pytest.approx(0.3)


def test_model_suggestion_respects_the_side_effect_ceiling(
    db: Database, staff: dict[str, Actor], make_ready: Ready, course: Course
) -> None:
    """A clinic's dissociation ceiling lowers the model's rate and says it decided."""
    _give(db, staff, make_ready, course, number=1, nrs_after=6, rate_mg_per_kg_h=0.2)
    free = _advice(db, staff["physician"], titration, course)["model"]
    capped = _advice(db, staff["physician"], titration, course, side_effect_ceiling=0.01)["model"]
    assert capped["suggestion"]["decided_by"] == "side_effects"
    assert capped["suggestion"]["rate_mg_per_kg_h"] < free["suggestion"]["rate_mg_per_kg_h"]
    for m in (free, capped):
        assert m["suggestion"]["rate_mg_per_kg_h"] <= m["highest_rate_mg_per_kg_h"] + 1e-12


def test_model_learns_from_the_scores(
    db: Database, staff: dict[str, Actor], make_ready: Ready, course: Course
) -> None:
    """A patient relieved more than the population predicts gets a lower C50 estimate."""

    def relieved(iid: uuid.UUID, at: datetime) -> None:
        record_score(
            db,
            staff["nurse"],
            (),
            patient_id=course.patient_id,
            infusion_id=iid,
            instrument="pain_nrs",
            value=2,
            measured_utc=at,
        )

    prior = _advice(db, staff["physician"], titration, course)["model"]["relief"]
    _give(
        db, staff, make_ready, course, number=1, nrs_after=2, rate_mg_per_kg_h=0.2, extra=relieved
    )
    fitted = _advice(db, staff["physician"], titration, course)["model"]["relief"]
    assert prior["n_observations"] == 0 and fitted["n_observations"] == 2
    assert fitted["c50_ng_per_ml"] < prior["c50_ng_per_ml"]


def test_titration_after_the_last_session_is_a_conflict(
    db: Database, staff: dict[str, Actor], make_ready: Ready, course: Course
) -> None:
    """With every session given there is no next rate; a session number must be in the plan."""
    with pytest.raises(InvalidValueError, match="session_number"):
        _advice(db, staff["physician"], titration, course, session_number=0)
    for k in range(1, 8):
        _give(db, staff, make_ready, course, number=k, nrs_after=5, rate_mg_per_kg_h=0.2)
    with pytest.raises(ConflictError, match="every session"):
        _advice(db, staff["physician"], titration, course)


def test_oral_proposal_and_interactions(
    db: Database, staff: dict[str, Actor], make_ready: Ready, course: Course
) -> None:
    """The day after the last infusion, 0.5 mg/kg three times daily; clarithromycin warns
    for the oral route, and a dose above 0.5 mg/kg warns."""
    add_row(
        db,
        staff["physician"],
        Action.CHART,
        Medication(patient_id=course.patient_id, name="clarithromycin", dose_mg_per_day=1000),
    )
    _give(db, staff, make_ready, course, number=1, nrs_after=5, rate_mg_per_kg_h=0.2)
    oral = _advice(db, staff["physician"], oral_proposal, course, on=date(2026, 11, 20))
    assert oral["dose_mg"] == pytest.approx(34.0)
    assert oral["doses_per_day"] == 3
    assert oral["start_date"] == (T0 + timedelta(days=2)).date().isoformat()
    assert oral["end_date"] == (T0 + timedelta(days=15)).date().isoformat()
    codes = {f["code"]: f["severity"] for f in oral["findings"]}
    assert codes["interaction_clarithromycin"] == "warning"
    with reading(db, staff["physician"]) as session:
        high = prescription_findings(session, course.id, dose_mg=40.0, on=date(2026, 11, 20))
        start = prescription_findings(session, course.id, dose_mg=34.0, on=date(2026, 11, 20))
    assert "oral_above_starting_dose" in {f.code for f in high}
    assert "oral_above_starting_dose" not in {f.code for f in start}
