"""Demo data: a fresh database with staff and patients at different points of a course.

Fictional people; the numbers follow the built-in protocols and the alarm defaults. Every
row is written through the same services as real use, so it is audited like real use.
Demo logins (password ``ketapain-demo``): ``dr.demo`` (physician), ``nurse.demo``,
``desk.demo`` (front desk), ``admin.demo``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any, Final

from sqlalchemy import func, select

from ketapain.clinic import (
    accounts,
    charting,
    checklist,
    controlled,
    pump,
    registry,
    screenings,
    treatment,
)
from ketapain.clinic._service import add_row
from ketapain.clinic.alarms import DEFAULT_RULES
from ketapain.clinic.audit import SYSTEM, Actor
from ketapain.clinic.courses import Course, current_plan
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.patients import (
    BodyMeasurement,
    Diagnosis,
    HistoryItem,
    LabResult,
    Medication,
    Patient,
)
from ketapain.clinic.permissions import Action

__all__ = ["DEMO_PASSWORD", "DEMO_USERS", "fill_demo"]

DEMO_PASSWORD: Final = "ketapain-demo"
DEMO_LOT: Final = "KET-2611-A"
DEMO_USERS: Final = (
    ("dr.demo", "Dr Amelia Hart", "physician"),
    ("nurse.demo", "Noah Reyes RN", "nurse"),
    ("desk.demo", "Priya Shah", "front_desk"),
    ("admin.demo", "Sam Okafor", "admin"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Person:
    mrn: str
    family: str
    given: str
    born: date
    sex: str
    weight_kg: float
    height_cm: float
    diagnosis: str
    history: tuple[str, ...] = ()
    meds: tuple[tuple[str, float], ...] = ()
    sbp: float = 124.0
    pregnant: bool = False


_PEOPLE: Final = (
    _Person(
        mrn="KP-1001",
        family="Lindqvist",
        given="Maja",
        born=date(1984, 3, 12),
        sex="female",
        weight_kg=64,
        height_cm=168,
        diagnosis="G90.511",
        meds=(("gabapentin", 1800.0),),
    ),
    _Person(
        mrn="KP-1002",
        family="Okoro",
        given="Daniel",
        born=date(1971, 9, 30),
        sex="male",
        weight_kg=88,
        height_cm=181,
        diagnosis="G90.521",
        meds=(("oxycodone", 30.0),),
    ),
    _Person(
        mrn="KP-1003",
        family="Moreau",
        given="Claire",
        born=date(1979, 6, 4),
        sex="female",
        weight_kg=71,
        height_cm=163,
        diagnosis="M79.7",
        meds=(("pregabalin", 300.0),),
    ),
    _Person(
        mrn="KP-1004",
        family="Tanaka",
        given="Hiro",
        born=date(1966, 1, 22),
        sex="male",
        weight_kg=79,
        height_cm=172,
        diagnosis="M79.2",
        meds=(("tramadol", 200.0),),
    ),
    _Person(
        mrn="KP-1005",
        family="Byrne",
        given="Siobhan",
        born=date(1990, 11, 8),
        sex="female",
        weight_kg=58,
        height_cm=160,
        diagnosis="G90.512",
    ),
    _Person(
        mrn="KP-1006",
        family="Haddad",
        given="Omar",
        born=date(1958, 4, 17),
        sex="male",
        weight_kg=95,
        height_cm=176,
        diagnosis="M79.2",
        history=("uncontrolled_hypertension",),
        sbp=186.0,
    ),
    _Person(
        mrn="KP-1007",
        family="Novak",
        given="Eva",
        born=date(1993, 7, 2),
        sex="female",
        weight_kg=62,
        height_cm=170,
        diagnosis="G90.511",
        pregnant=True,
    ),
    _Person(
        mrn="KP-1008",
        family="Silva",
        given="Rafael",
        born=date(1975, 12, 19),
        sex="male",
        weight_kg=83,
        height_cm=178,
        diagnosis="G90.519",
        meds=(("morphine", 60.0),),
    ),
)


def _at(day: date, hour: float) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC) + timedelta(hours=hour)


def _monday(on: date) -> date:
    return on - timedelta(days=on.weekday())


def _register(db: Database, desk: Actor, nurse: Actor, doc: Actor, p: _Person, on: date) -> Patient:
    patient = registry.register_patient(
        db, desk, mrn=p.mrn, family_name=p.family, given_name=p.given, birth_date=p.born, sex=p.sex
    )
    when = _at(on, 8.0)
    add_row(
        db,
        nurse,
        Action.CHART,
        BodyMeasurement(
            patient_id=patient.id, weight_kg=p.weight_kg, height_cm=p.height_cm, measured_utc=when
        ),
    )
    add_row(db, doc, Action.CHART, Diagnosis(patient_id=patient.id, code=p.diagnosis))
    for h in p.history:
        add_row(db, doc, Action.CHART, HistoryItem(patient_id=patient.id, code=h))
    for name, mg in p.meds:
        add_row(
            db,
            nurse,
            Action.CHART,
            Medication(patient_id=patient.id, name=name, dose_mg_per_day=mg),
        )
    for test, value in (("alt", 24.0), ("ast", 21.0)):
        add_row(
            db,
            nurse,
            Action.CHART,
            LabResult(
                patient_id=patient.id,
                test=test,
                value=value,
                ref_low=0.0,
                ref_high=40.0,
                collected_utc=when,
            ),
        )
    if p.sex == "female":
        add_row(
            db,
            nurse,
            Action.CHART,
            LabResult(
                patient_id=patient.id,
                test="pregnancy_test",
                positive=p.pregnant,
                collected_utc=when,
            ),
        )
    charting.record_vitals(
        db,
        nurse,
        DEFAULT_RULES,
        patient_id=patient.id,
        measured_utc=when,
        sbp_mmhg=p.sbp,
        dbp_mmhg=78.0,
        hr_per_min=72.0,
        rr_per_min=14.0,
        spo2_pct=98.0,
        temp_c=36.7,
    )
    return patient


_ALDRETE_10: Final = {
    "activity": 2,
    "respiration": 2,
    "circulation": 2,
    "consciousness": 2,
    "spo2": 2,
}
_PADSS_9: Final = {"vital_signs": 2, "activity": 2, "nausea_vomiting": 2, "pain": 1, "bleeding": 2}


_NO_URINARY: Final = dict.fromkeys(
    ("frequency", "urgency", "dysuria", "haematuria", "suprapubic_pain"), 0
)
_CADSS6_MILD: Final = {"item1": 1, "item2": 1, "item6": 0, "item7": 1, "item15": 0, "item22": 0}


def _chart_session(
    db: Database,
    nurse: Actor,
    course_id: uuid.UUID,
    patient_id: uuid.UUID,
    plan: dict[str, Any],
    number: int,
    *,
    sbp_peak: float = 138.0,
    nrs_after: float = 4.0,
) -> None:
    s = plan["sessions"][number - 1]
    inf = pump.hang_infusion(
        db, nurse, course_id, session_number=number, bag_mg=250, bag_ml=250, lot=DEMO_LOT
    )
    vitals = partial(
        charting.record_vitals, db, nurse, DEFAULT_RULES, patient_id=patient_id, infusion_id=inf.id
    )
    score = partial(
        charting.record_score, db, nurse, DEFAULT_RULES, patient_id=patient_id, infusion_id=inf.id
    )
    start = datetime.fromisoformat(s["start"]).replace(tzinfo=UTC)
    end = datetime.fromisoformat(s["end"]).replace(tzinfo=UTC)
    half_hour = start + timedelta(minutes=30)
    # The controlled-substance log: the bag filled from the lot, what is left wasted after.
    controlled.draw(
        db, nurse, lot=DEMO_LOT, amount_mg=250, infusion_id=inf.id,
        occurred_utc=start - timedelta(minutes=20),
    )  # fmt: skip
    vitals(measured_utc=start - timedelta(minutes=5), sbp_mmhg=124, dbp_mmhg=78, hr_per_min=72,
           rr_per_min=14, spo2_pct=98)  # fmt: skip
    score(instrument="pain_nrs", value=7, measured_utc=start - timedelta(minutes=5))
    # Before each session of a repeated course: the urinary symptom screen, negative here.
    score(instrument="urinary_screen", items=_NO_URINARY, measured_utc=start - timedelta(minutes=5))
    score(instrument="cadss6", items=_CADSS6_MILD, measured_utc=half_hour)
    checklist.record_checklist(
        db, nurse, inf.id, consent_confirmed=True, escort_confirmed=True,
        escort_name="family member", fasting_confirmed=True, medications_reviewed=True,
        premedication_given=[p["drug"] for p in plan["premedication"] if not p["prn"]],
    )  # fmt: skip
    pump.pump_event(
        db,
        nurse,
        inf.id,
        kind="start",
        time_utc=start,
        rate_mg_per_h=s["steps"][0]["rate_mg_per_h"],
    )
    vitals(measured_utc=half_hour, sbp_mmhg=sbp_peak, dbp_mmhg=84, hr_per_min=80, rr_per_min=15,
           spo2_pct=97)  # fmt: skip
    score(instrument="moaas", value=4, measured_utc=half_hour)
    pump.pump_event(db, nurse, inf.id, kind="stop", time_utc=end)
    controlled.waste(
        db, nurse, lot=DEMO_LOT, amount_mg=250 - float(s["dose_mg"]), witness_username="dr.demo",
        infusion_id=inf.id, reason="left in the bag after the infusion", occurred_utc=end,
    )  # fmt: skip
    score(instrument="pain_nrs", value=nrs_after, measured_utc=end)
    score(instrument="aldrete", items=_ALDRETE_10, measured_utc=end + timedelta(hours=2))
    score(instrument="padss", items=_PADSS_9, measured_utc=end + timedelta(hours=2))
    charting.discharge_check(
        db, nurse, inf.id, escort_confirmed=True, escort_name="family member",
        checked_utc=min(end + timedelta(hours=2, minutes=5), utc_now()),
    )  # fmt: skip


def fill_demo(db: Database, *, today: date) -> dict[str, int]:
    """Fill an empty, migrated database; refuse one that holds patients already.

    ``today`` may not be later than the real date: the demo charts infusions up to
    ``today`` and the records refuse pump events in the future.
    """
    registry.require_fresh(db, today=today, what="demo data")
    users = {
        role: accounts.create_user(
            db, SYSTEM, username=u, full_name=name, role=role, password=DEMO_PASSWORD
        ).actor()
        for u, name, role in DEMO_USERS
    }
    doc, nurse, desk = users["physician"], users["nurse"], users["front_desk"]
    week = _monday(today)
    last_week, two_weeks_ago, next_week = (
        week - timedelta(7),
        week - timedelta(14),
        week + timedelta(7),
    )
    # 20 vials of 500 mg/10 mL (50 mg/mL), received before the first infusion.
    controlled.receive(
        db, nurse, lot=DEMO_LOT, vial_mg_per_ml=50, vial_ml=10, vials=20,
        occurred_utc=_at(two_weeks_ago - timedelta(3), 9), note="from the wholesaler",
    )  # fmt: skip
    pts = [_register(db, desk, nurse, doc, p, two_weeks_ago) for p in _PEOPLE]
    for p in pts:
        screenings.run_screening(db, doc, patient_id=p.id, protocol="seed-outpatient")

    def course(i: int, start: date) -> tuple[uuid.UUID, dict[str, Any]]:
        c = treatment.create_course(
            db,
            doc,
            patient_id=pts[i].id,
            protocol="seed-outpatient",
            start_date=start,
            bag_mg=250,
            bag_ml=250,
        )
        with db.read() as s:
            plan = current_plan(s, c.id).plan
        return c.id, plan

    # 1: planned for next week, nothing given yet.
    course(0, next_week)
    # 2: test infusions given this week, decision pending.
    cid, plan = course(1, week)
    for n in (1, 2):
        if date.fromisoformat(plan["sessions"][n - 1]["date"]) < today:
            _chart_session(db, nurse, cid, pts[1].id, plan, n)
    # 3: responded to the test infusions, series under way.
    cid, plan = course(2, last_week)
    for n in (1, 2, 3):
        _chart_session(db, nurse, cid, pts[2].id, plan, n)
    treatment.decide(
        db,
        doc,
        cid,
        after_session=2,
        decision="continue",
        reason="Pain NRS 7 to 4 (43%) after the test infusions; tolerated.",
    )
    # 4: no response: stopped after the test infusions.
    cid, plan = course(3, last_week)
    for n in (1, 2):
        _chart_session(db, nurse, cid, pts[3].id, plan, n, nrs_after=7.0)
    treatment.decide(
        db,
        doc,
        cid,
        after_session=2,
        decision="stop",
        reason="Pain NRS 7 to 7: no response to the test infusions.",
    )
    # 5: course completed two weeks ago, booster booked, oral follow-on.
    cid, plan = course(4, two_weeks_ago)
    for n in range(1, len(plan["sessions"]) + 1):
        _chart_session(db, nurse, cid, pts[4].id, plan, n)
    treatment.decide(
        db,
        doc,
        cid,
        after_session=2,
        decision="continue",
        reason="Pain NRS 8 to 4 after the test infusions.",
    )
    treatment.change_status(db, doc, cid, status="completed", reason="series completed")
    # Follow-up: relief a few days after the series, then pain coming back (a relapse).
    last_day = date.fromisoformat(plan["sessions"][-1]["date"])
    for days, nrs in ((2, 3.0), (6, 6.0)):
        when = min(_at(last_day + timedelta(days), 18), utc_now() - timedelta(hours=1))
        charting.record_score(
            db, nurse, DEFAULT_RULES, patient_id=pts[4].id, instrument="pain_nrs", value=nrs,
            measured_utc=when,
        )  # fmt: skip
    treatment.book_booster(
        db,
        doc,
        cid,
        scheduled_date=week + timedelta(42),
        reason="booster 6 weeks after the series (seed protocols)",
    )
    treatment.prescribe_oral(
        db,
        doc,
        cid,
        dose_mg=30,
        doses_per_day=3,
        start_date=today,
        end_date=today + timedelta(28),
        instructions="with food; no driving",
    )
    # 8: started last week; blood pressure rose in the first session, alarm still open.
    cid, plan = course(7, last_week)
    _chart_session(db, nurse, cid, pts[7].id, plan, 1, sbp_peak=186.0)
    with db.read() as s:
        return {
            "users": len(DEMO_USERS),
            "patients": len(pts),
            "courses": int(s.scalar(select(func.count()).select_from(Course)) or 0),
        }
