"""The synthetic registry: seeded, refused where it does not belong, dated up to today,
valid row by row, read correctly by the services, with the shares it claims."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from ketapain.cli.main import app
from ketapain.clinic import migrate, synthetic
from ketapain.clinic._synthetic_rows import ORDER
from ketapain.clinic.accounts import User
from ketapain.clinic.alarms import DEFAULT_RULES, Alarm, evaluate
from ketapain.clinic.audit import AuditEntry
from ketapain.clinic.courses import TRANSITIONS, Course, CoursePlan, CourseStatus, CourseStatusEvent
from ketapain.clinic.db import Database
from ketapain.clinic.infusions import Infusion, InfusionEvent, PumpState, pump_state
from ketapain.clinic.observations import VITAL_RANGES, Score, SideEffect, VitalSigns
from ketapain.clinic.patients import LabResult, Medication, Patient
from ketapain.clinic.progress import course_progress, response
from ketapain.clinic.records import Record
from ketapain.clinic.screenings import screening_patient
from ketapain.clinic.synthetic import (
    OPIOID_REDUCER_SHARE,
    RESPONDER_SHARE,
    SIGNIFICANT_SIDE_EFFECT_SHARE,
    SYNTHETIC_USERNAME,
    fill_synthetic,
)
from ketapain.errors import ConflictError, InvalidValueError
from ketapain.protocols import patient as pp
from ketapain.protocols.library import get_protocol
from ketapain.protocols.planning import Bag, build_plan

TODAY = date(2026, 6, 30)
END_OF_TODAY = datetime.combine(TODAY, time.max, UTC)


def _fresh(path: Path) -> Database:
    db = Database.connect(f"sqlite:///{path}")
    migrate.upgrade(db)
    return db


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory):
    """2,000 synthetic patients (seed 7) in a SQLite file, shared by the read-only tests."""
    db = _fresh(tmp_path_factory.mktemp("synthetic") / "registry.db")
    counts = fill_synthetic(db, patients=2000, today=TODAY, seed=7)
    yield db, counts
    db.dispose()


def _first_patient(db: Database) -> dict[str, object]:
    with db.session() as s:
        pid = s.scalar(select(Patient.id).where(Patient.mrn == "SYN-0000001"))
        course = s.scalars(select(Course).where(Course.patient_id == pid)).one()
        plan = s.scalars(select(CoursePlan).where(CoursePlan.course_id == course.id)).one()
        scores = s.scalars(select(Score).where(Score.patient_id == pid).order_by(Score.id)).all()
        return {
            "id": pid,
            "protocol": course.protocol,
            "plan": plan.plan,
            "scores": [(sc.measured_utc, sc.value, sc.infusion_id) for sc in scores],
        }


def test_same_seed_same_registry(db: Database, tmp_path: Path) -> None:
    """The same seed gives the same counts and the same first patient, ids included;
    another seed gives another registry."""
    first = fill_synthetic(db, patients=60, today=TODAY, seed=3)
    again_db = _fresh(tmp_path / "again.db")
    again = fill_synthetic(again_db, patients=60, today=TODAY, seed=3)
    other_db = _fresh(tmp_path / "other.db")
    fill_synthetic(other_db, patients=60, today=TODAY, seed=4)
    assert first == again
    assert _first_patient(db) == _first_patient(again_db)
    assert _first_patient(db)["scores"] != _first_patient(other_db)["scores"]
    again_db.dispose()
    other_db.dispose()


def test_counts_user_and_audit(db: Database) -> None:
    """The counts are the rows written; one inactive user records them; one audit entry."""
    counts = fill_synthetic(db, patients=40, today=TODAY)
    with db.session() as s:
        for model in ORDER:
            n = s.scalar(select(func.count()).select_from(model))
            if model is User:
                n -= 4  # the fixture's staff
            assert n == counts.get(model.__tablename__, 0), model.__tablename__
        user = s.scalars(select(User).where(User.username == SYNTHETIC_USERNAME)).one()
        assert not user.active and user.role == "physician"
        assert not user.password_hash.startswith("$argon2")
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "synthetic_fill")).all()
        assert len(entries) == 1 and "not clinical data" in (entries[0].detail or "")
        assert f"patients {counts['patients']}" in (entries[0].detail or "")
        for model in (Patient, Score, InfusionEvent, CoursePlan):
            by = set(s.scalars(select(model.recorded_by_id).distinct()))
            assert by == {user.id}, model.__tablename__


def test_refuses_a_database_with_patients(db: Database) -> None:
    """A database that holds patients is refused, as the demo refuses it."""
    fill_synthetic(db, patients=2, today=TODAY)
    with pytest.raises(ConflictError, match="database"):
        fill_synthetic(db, patients=2, today=TODAY)


@pytest.mark.parametrize("patients", [0, -1, 1_000_001, True, 2.0])
def test_refuses_a_bad_number_of_patients(tmp_path: Path, patients: int) -> None:
    """The number of patients must be a whole number from 1 to 1,000,000; the error
    names the field."""
    db = _fresh(tmp_path / "k.db")
    with pytest.raises(InvalidValueError, match="patients"):
        fill_synthetic(db, patients=patients, today=TODAY)
    db.dispose()


def test_refuses_a_day_in_the_future(tmp_path: Path) -> None:
    """``today`` may not be after the real date: the records refuse the future."""
    db = _fresh(tmp_path / "k.db")
    with pytest.raises(InvalidValueError, match="today"):
        fill_synthetic(db, patients=1, today=date.today() + timedelta(days=2))
    db.dispose()


def test_the_fast_sqlite_path_writes_what_sqlalchemy_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values converted a column at a time are stored as insert(table) stores them: the
    same values in the same storage classes, table by table."""
    fast = _fresh(tmp_path / "fast.db")
    fill_synthetic(fast, patients=30, today=TODAY, seed=5)
    monkeypatch.setattr(synthetic, "_FAST_SQLITE", False)
    plain = _fresh(tmp_path / "plain.db")
    fill_synthetic(plain, patients=30, today=TODAY, seed=5)
    assert _dump(fast) == _dump(plain)
    fast.dispose()
    plain.dispose()


def _dump(db: Database) -> dict[str, list[object]]:
    out = {}
    with db.engine.connect() as conn:
        for model in ORDER:
            columns = [c.name for c in model.__table__.columns if c.name != "password_hash"]
            # Storage class and value of every column (1 and 1.0 differ in storage class).
            select_list = ", ".join(f'typeof("{c}"), "{c}"' for c in columns)
            query = text(f"SELECT {select_list} FROM {model.__tablename__} ORDER BY id")
            out[model.__tablename__] = list(conn.execute(query))
    return out


def test_worker_processes_make_the_same_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches made by worker processes (a large registry) are the ones made in process."""
    here = _fresh(tmp_path / "here.db")
    fill_synthetic(here, patients=45, today=TODAY, seed=9)
    monkeypatch.setattr(synthetic, "BATCH_PATIENTS", 10)
    monkeypatch.setattr(synthetic, "POOL_FROM_BATCHES", 2)
    monkeypatch.setattr(synthetic, "WORKERS", 2)
    pooled = _fresh(tmp_path / "pooled.db")
    done = []
    fill_synthetic(pooled, patients=45, today=TODAY, seed=9, progress=lambda n, t: done.append(n))
    assert done == [10, 20, 30, 40, 45]
    assert _dump(here) == _dump(pooled)
    here.dispose()
    pooled.dispose()


def _times(db: Database) -> list[tuple[str, str, datetime | date | None]]:
    out = []
    with db.session() as s:
        for model in ORDER:
            for column in model.__table__.columns:
                if column.type.python_type in (datetime, date):
                    out.append((model.__tablename__, column.name, s.scalar(func.max(column))))
    return out


def test_nothing_after_today(registry) -> None:
    """No time or date in any table is after the end of ``today``."""
    db, _ = registry
    for table, column, latest in _times(db):
        if latest is None or table == "users":
            continue
        if isinstance(latest, datetime):
            assert latest <= END_OF_TODAY, (table, column, latest)
        else:
            assert latest <= TODAY, (table, column, latest)


def test_every_row_passes_its_check(registry) -> None:
    """Rows of every clinical table pass their model's check() (what the services call)."""
    db, _ = registry
    with db.session() as s:
        for model in ORDER:
            if issubclass(model, Record):
                for row in s.scalars(select(model).limit(1500)):
                    row.check()
        assert s.scalar(select(func.count()).where(Score.value.not_in(range(11)))) == 0


def test_events_statuses_and_sequences(registry) -> None:
    """Pump events follow the pump's state machine to a stop, numbered 1..n in time order;
    course statuses follow the course transitions, numbered 1..n."""
    db, counts = registry
    with db.session() as s:
        events = defaultdict(list)
        ev = InfusionEvent
        for row in s.execute(select(ev.infusion_id, ev.sequence, ev.kind, ev.time_utc)):
            events[row.infusion_id].append(row)
        assert len(events) == counts["infusions"]
        for evs in events.values():
            evs.sort(key=lambda e: e.sequence)
            assert [e.sequence for e in evs] == list(range(1, len(evs) + 1))
            assert pump_state(e.kind for e in evs) is PumpState.STOPPED
            assert [e.time_utc for e in evs] == sorted(e.time_utc for e in evs)
        statuses = defaultdict(list)
        st = CourseStatusEvent
        for row in s.execute(select(st.course_id, st.sequence, st.status)):
            statuses[row.course_id].append(row)
        assert len(statuses) == counts["courses"]
        for evs in statuses.values():
            evs.sort(key=lambda e: e.sequence)
            assert [e.sequence for e in evs] == list(range(1, len(evs) + 1))
            assert evs[0].status == CourseStatus.PLANNED
            for a, b in pairwise(evs):
                assert CourseStatus(b.status) in TRANSITIONS[CourseStatus(a.status)]


def test_alarms_are_those_the_default_rules_raise(registry) -> None:
    """Every vital-sign set raises exactly the alarms stored for it (default rules, the
    session's first blood pressure as the baseline)."""
    db, _ = registry
    with db.session() as s:
        alarm = select(Alarm.vital_signs_id, Alarm.signal, Alarm.level, Alarm.value, Alarm.message)
        stored = Counter(tuple(row) for row in s.execute(alarm))
        first_sbp: dict[object, float] = {}
        expected: Counter[tuple[object, ...]] = Counter()
        columns = [getattr(VitalSigns, k) for k in VITAL_RANGES]
        query = select(VitalSigns.id, VitalSigns.infusion_id, *columns).order_by(
            VitalSigns.measured_utc
        )
        for vid, infusion_id, *measured in s.execute(query):
            baseline = first_sbp.get(infusion_id) if infusion_id else None
            values = dict(zip(VITAL_RANGES, measured, strict=True))
            for rule, value in evaluate(DEFAULT_RULES, values, {"sbp_mmhg": baseline}):
                expected[(vid, rule.signal, rule.level, value, rule.describe(value))] += 1
            if infusion_id is not None:
                first_sbp.setdefault(infusion_id, values["sbp_mmhg"])
    assert stored == expected
    assert {level for _, _, level, _, _ in stored} == {"warn", "stop"}


def _chart_when_planned(s, patient_id, plan_row):
    """The chart as screening read it when the course was planned: the liver tests and
    the medications of the intake (later ones and later corrections are the chart of
    today), and the baseline pain the plan was made for."""
    chart = screening_patient(s, patient_id, on=plan_row.start_date)
    first = {}
    for lab in s.scalars(
        select(LabResult)
        .where(LabResult.patient_id == patient_id)
        .order_by(LabResult.collected_utc)
    ):
        first.setdefault(lab.test, lab)
    meds = s.scalars(
        select(Medication).where(
            Medication.patient_id == patient_id, Medication.corrects_id.is_(None)
        )
    ).all()
    return dataclasses.replace(
        chart,
        pain_nrs=plan_row.plan["baseline_nrs"],
        labs=pp.Labs(
            alt_u_per_l=first["alt"].value,
            ast_u_per_l=first["ast"].value,
            alt_uln_u_per_l=first["alt"].ref_high,
            ast_uln_u_per_l=first["ast"].ref_high,
        ),
        medications=tuple(
            pp.Medication(name=m.name, dose_mg_per_day=m.dose_mg_per_day) for m in meds
        ),
    )


def test_plans_are_those_build_plan_makes(registry) -> None:
    """A course's plan is the planner's for the charted patient (the pain forecast aside:
    it is the reference patient's, scaled to the baseline)."""
    db, _ = registry
    with db.session() as s:
        plans = s.scalars(select(CoursePlan).order_by(CoursePlan.id).limit(40)).all()
        for row in plans:
            course = s.get(Course, row.course_id)
            assert course is not None
            chart = _chart_when_planned(s, course.patient_id, row)
            expected = build_plan(
                chart,
                get_protocol(course.protocol),
                start_date=row.start_date,
                bag=Bag(drug_mg=250.0, volume_ml=250.0),
                predict_outcome=False,
            ).as_dict()
            forecast = expected.pop("pain_forecast")
            got = dict(row.plan)
            scaled = got.pop("pain_forecast")
            assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)
            assert scaled.keys() == forecast.keys()
            assert scaled["baseline_nrs"] == forecast["baseline_nrs"]
            assert row.inputs == {"protocol": course.protocol, "synthetic": True}


def test_course_progress_reads_the_registry(db: Database, staff) -> None:
    """course_progress shows the doses given (the plan's, except early stops) and the
    pain before and after each session given."""
    fill_synthetic(db, patients=25, today=TODAY, seed=11)
    seen = 0
    with db.session() as s:
        for course_id in s.scalars(select(Course.id).order_by(Course.id).limit(8)):
            progress = course_progress(s, staff["physician"], course_id)
            for row in progress["sessions"]:
                if row["infusion_id"] is None:
                    continue
                seen += 1
                assert row["state"] == "stopped"
                assert row["nrs_before"] is not None and row["nrs_after"] is not None
                stop = s.scalars(
                    select(InfusionEvent).where(
                        InfusionEvent.infusion_id == uuid.UUID(row["infusion_id"]),
                        InfusionEvent.kind == "stop",
                    )
                ).one()
                if stop.reason is None:
                    assert row["delivered_mg"] == pytest.approx(row["dose_mg"])
                else:
                    assert row["delivered_mg"] < row["dose_mg"]
    assert seen > 20


def test_shares_are_near_their_sources(registry) -> None:
    """Responders, opioid reducers, significant side effects, enzyme elevations and
    sessions per course come out near the constants (2,000 patients, seed 7)."""
    db, counts = registry
    with db.session() as s:
        ended = set(
            s.scalars(
                select(CourseStatusEvent.course_id).where(
                    CourseStatusEvent.status.in_(("completed", "stopped_early"))
                )
            )
        )
        patient_of = {
            row.id: row.patient_id for row in s.execute(select(Course.id, Course.patient_id))
        }
        baseline = {
            course_id: plan["baseline_nrs"]
            for course_id, plan in s.execute(select(CoursePlan.course_id, CoursePlan.plan))
        }
        charted = defaultdict(list)
        last_day: dict[object, date] = {}
        query = select(Infusion.course_id, Score.measured_utc, Score.value).join(
            Score, Score.infusion_id == Infusion.id
        )
        for course_id, measured, value in s.execute(query):
            if course_id in ended:
                charted[course_id].append((measured, value))
                pid = patient_of[course_id]
                last_day[pid] = max(measured.date(), last_day.get(pid, measured.date()))
        # Before and after each session, in time order: the odd ones are after.
        responded = [
            response(
                baseline_nrs=baseline[c], best_nrs=min(v for _, v in sorted(vals)[1::2])
            ).responded
            for c, vals in charted.items()
        ]
        assert sum(responded) / len(responded) == pytest.approx(RESPONDER_SHARE, abs=0.04)

        patients_ended = {patient_of[c] for c in ended}
        significant = set(
            s.scalars(select(SideEffect.patient_id).where(SideEffect.severity != "mild"))
        )
        share = len(significant & patients_ended) / len(patients_ended)
        assert share == pytest.approx(SIGNIFICANT_SIDE_EFFECT_SHARE, abs=0.05)
        effects = counts["side_effects"] / counts["infusions"]
        assert effects == pytest.approx(0.15, abs=0.03)

        meds = s.scalars(select(Medication).order_by(Medication.recorded_utc)).all()
        first = {m.id: m for m in meds if m.corrects_id is None}
        latest = {m.corrects_id: m for m in meds if m.corrects_id is not None}
        settled = TODAY - timedelta(weeks=9)
        opioid_users = [
            m
            for m in first.values()
            if m.name in {n for n, _, _ in synthetic.OPIOIDS}
            and last_day.get(m.patient_id, TODAY) <= settled
        ]
        reduced = [
            m
            for m in opioid_users
            if m.id in latest
            and (latest[m.id].dose_mg_per_day or 0.0) <= 0.8 * (m.dose_mg_per_day or 0.0)
        ]
        assert len(reduced) / len(opioid_users) == pytest.approx(OPIOID_REDUCER_SHARE, abs=0.07)
        reasons = {latest[m.id].correction_reason for m in reduced}
        assert reasons == {"dose reduced after the ketamine series"}

        labs = s.scalars(select(LabResult).where(LabResult.test == "alt")).all()
        post = [
            lab for lab in labs if last_day.get(lab.patient_id, TODAY) < lab.collected_utc.date()
        ]
        high = [lab for lab in post if (lab.value or 0) > 40]
        assert len(high) / len(post) == pytest.approx(synthetic.ENZYME_ELEVATION_SHARE, abs=0.03)
        assert any((lab.value or 0) > 120 for lab in high)
    sessions = counts["infusions"] / counts["courses"]
    assert 8.5 < sessions < 9.3
    early = counts["infusion_events"] - 2 * counts["infusions"]
    assert early == 0  # one step per session in these protocols: start and stop only


def test_db_synth_command(tmp_path: Path) -> None:
    """``db synth`` migrates, fills, prints rows per table, and refuses a second fill
    (exit 1)."""
    runner = CliRunner()
    url = f"sqlite:///{tmp_path / 'k.db'}"
    args = ["db", "synth", "--patients", "20", "--seed", "2", "--database-url", url]
    result = runner.invoke(app, [*args, "--today", TODAY.isoformat()])
    assert result.exit_code == 0, result.output
    assert re.search(r"patients\s+│\s+20", result.output)
    assert "not clinical data" in result.output
    again = runner.invoke(app, args)
    assert again.exit_code == 1
    assert "holds patients already" in again.output
    bad = runner.invoke(app, ["db", "synth", "--patients", "0", "--database-url", url])
    assert bad.exit_code == 2
    assert "patients" in bad.output
