"""The figures of the course safety view, read from the records: the rules applied to one
result, the urinary screen before a session, the lab schedule with what is done,
cumulative ketamine, blood pressure across sessions, oral interactions.

The rules are :mod:`ketapain.protocols.course_safety`'s; the services that serve these
figures, with the holds, are :mod:`ketapain.clinic.course_safety`'s.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ketapain.clinic.courses import Course, CourseStatus, OralPrescription
from ketapain.clinic.db import column_rows, utc_now
from ketapain.clinic.infusions import EventKind, Infusion, InfusionEvent, delivery
from ketapain.clinic.instruments import INSTRUMENTS
from ketapain.clinic.observations import Score, VitalSigns
from ketapain.clinic.patients import LabResult, LabTest
from ketapain.clinic.records import current, current_of
from ketapain.clinic.screenings import latest_screening, screening_patient
from ketapain.protocols import course_safety as rules
from ketapain.protocols.findings import Finding, Severity
from ketapain.protocols.guardrails import LimitSet, load_drug_library
from ketapain.protocols.library import get_protocol
from ketapain.protocols.screening import medication_findings

__all__ = [
    "AFTER_SERIES_WITHIN_DAYS",
    "LIVER_TESTS",
    "SCREEN_WINDOW",
    "Given",
    "UrinaryScreenStatus",
    "blood_pressure",
    "doses",
    "given",
    "lab_schedule",
    "liver_finding",
    "oral_interactions",
    "urinary_finding",
    "urinary_screen_status",
]

# A clinic setting, not a published number: a start more than 12 h after the patient's
# previous start is another session (a repeat), and a urinary screen counts for a session
# when charted in the 12 h before its start (same-day charting across time zones).
SCREEN_WINDOW: Final = timedelta(hours=12)
_CLOCK_SKEW: Final = timedelta(minutes=1)  # the pump's allowance for device clocks
LIVER_TESTS: Final = (LabTest.ALT, LabTest.AST, LabTest.BILIRUBIN)
# Post-infusion liver tests within 24 h of the last infusion (Lee 2025, Pain Physician:
# 52 CRPS patients, loading and boosters, no liver dysfunction at 24 h).
AFTER_SERIES_WITHIN_DAYS: Final = 1
# Screening findings and history that mean liver risk (ketapain.protocols.screening:
# hepatic disease, chronic hepatitis, alcohol misuse, liver tests above the limit).
_RISK_FINDINGS: Final = frozenset(
    {
        "severe_hepatic_disease",
        "moderate_hepatic_disease",
        "alcohol_misuse",
        "lft_above_uln",
        "lft_above_3x_uln",
        "bilirubin_above_2x_uln",
    }
)
_RISK_HISTORY: Final = frozenset(
    {"severe_hepatic_disease", "moderate_hepatic_disease", "chronic_hepatitis", "alcohol_misuse"}
)
_YEAR_DAYS: Final = 365


@dataclass(frozen=True, slots=True, kw_only=True)
class Given:
    """One infusion given: when it started and the dose delivered (computed)."""

    infusion: Infusion
    start_utc: datetime
    delivered_mg: float


def given(session: Session, patient_id: uuid.UUID) -> list[Given]:
    """The patient's infusions that started (any course), in start order."""
    infusions = {
        i.id: i for i in session.scalars(select(Infusion).where(Infusion.patient_id == patient_id))
    }
    events: dict[uuid.UUID, list[InfusionEvent]] = {i: [] for i in infusions}
    if infusions:
        for ev in session.scalars(
            select(InfusionEvent)
            .where(InfusionEvent.infusion_id.in_(list(infusions)))
            .order_by(InfusionEvent.infusion_id, InfusionEvent.sequence)
        ):
            events[ev.infusion_id].append(ev)
    now = utc_now()
    out = []
    for infusion_id, evs in events.items():
        start = next((e.time_utc for e in evs if e.kind == EventKind.START), None)
        if start is not None:
            d = delivery([e.pump_event() for e in evs], until=now)
            out.append(
                Given(infusion=infusions[infusion_id], start_utc=start, delivered_mg=d.delivered_mg)
            )
    return sorted(out, key=lambda g: g.start_utc)


# --- The rules on one result, and the urinary screen before a session ----------------


def liver_finding(lab: LabResult) -> Finding | None:
    """The liver-hold rule's hard stop for one result (None: within its limit)."""
    if lab.value is None or lab.ref_high is None or lab.test not in LIVER_TESTS:
        return None
    if lab.test == LabTest.BILIRUBIN:
        # The rule judges a panel that has an aminotransferase; 0 U/L judges the
        # bilirubin alone.
        panel = rules.LiverPanel(
            alt_u_per_l=0.0,
            alt_uln_u_per_l=1.0,
            bilirubin_mg_per_dl=lab.value,
            bilirubin_uln_mg_per_dl=lab.ref_high,
        )
    else:
        panel = rules.LiverPanel(
            **{f"{lab.test}_u_per_l": lab.value, f"{lab.test}_uln_u_per_l": lab.ref_high}
        )
    return next((f for f in rules.liver_hold(panel) if f.severity is Severity.HARD_STOP), None)


def urinary_finding(score: Score) -> Finding | None:
    """The urinary-screen rule's hard stop for one screen (None: no symptom)."""
    items = {k: bool(v) for k, v in (score.items or {}).items()}
    return next(iter(rules.urinary_screen(items)), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class UrinaryScreenStatus:
    """Whether a session needs the urinary screen first, and the screen charted for it."""

    required: bool
    previous_start_utc: datetime | None
    screen: Score | None

    def as_dict(self) -> dict[str, Any]:
        """Required, why, and the screen charted (if any)."""
        hours = SCREEN_WINDOW.total_seconds() / 3600
        return {
            "required": self.required,
            "previous_start_utc": None
            if self.previous_start_utc is None
            else self.previous_start_utc.isoformat(),
            "screen": None if self.screen is None else self.screen.as_dict(),
            "rule": f"Before each session after the patient's first: the urinary symptom "
            f"screen charted in the {hours:g} h before the start (clinic setting).",
            "items": list(INSTRUMENTS["urinary_screen"].items),
            "source": rules.CHAN_2022.cite(),
        }


# Read on every view of a chair and every pump start: built once.
_START_BEFORE: Final = (
    select(InfusionEvent.time_utc)
    .join(Infusion, Infusion.id == InfusionEvent.infusion_id)
    .where(
        Infusion.patient_id == bindparam("patient_id"),
        InfusionEvent.kind == EventKind.START,
        InfusionEvent.time_utc < bindparam("before"),
    )
    .order_by(InfusionEvent.time_utc.desc())
    .limit(1)
)
_SCREEN_BETWEEN: Final = (
    current_of(Score, "patient_id", "-measured_utc")
    .where(
        Score.instrument == "urinary_screen",
        Score.measured_utc >= bindparam("since"),
        Score.measured_utc <= bindparam("until"),
    )
    .limit(1)
)


def urinary_screen_status(
    session: Session, patient_id: uuid.UUID, *, at: datetime
) -> UrinaryScreenStatus:
    """Whether a start at ``at`` needs the urinary screen, and the screen charted for it."""
    since = at - SCREEN_WINDOW
    previous = column_rows(
        session, _START_BEFORE, {"patient_id": patient_id, "before": since}
    ).scalar()
    screen = session.scalars(
        _SCREEN_BETWEEN,
        {"patient_id": patient_id, "since": since, "until": at + _CLOCK_SKEW},
    ).first()
    return UrinaryScreenStatus(
        required=previous is not None, previous_start_utc=previous, screen=screen
    )


# --- Labs ---------------------------------------------------------------------------


def liver_risk(session: Session, patient_id: uuid.UUID) -> bool:
    """True when the latest screening found liver risk (a finding or a history item)."""
    screening = latest_screening(session, patient_id)
    if screening is None:
        return False
    codes = {f["code"] for f in screening.result.get("findings", [])}
    history = set(screening.inputs.get("history", []))
    return bool(codes & _RISK_FINDINGS or history & _RISK_HISTORY)


def _done(
    labs: Sequence[LabResult], tests: Sequence[str], after: datetime | None, by: datetime | None
) -> dict[str, LabResult | None]:
    """The newest result of each test collected in (``after``, ``by``]."""
    out: dict[str, LabResult | None] = {}
    for test in tests:
        out[test] = next(
            (
                lab
                for lab in reversed(labs)
                if lab.test == test
                and (after is None or lab.collected_utc >= after)
                and (by is None or lab.collected_utc <= by)
            ),
            None,
        )
    return out


def lab_schedule(
    session: Session,
    course: Course,
    plan: dict[str, Any],
    status: CourseStatus,
    *,
    hold_since: date | None,
    today: date,
) -> list[dict[str, Any]]:
    """The tests the course needs (the rule's), each done, due, overdue or upcoming."""
    infusions = [g for g in given(session, course.patient_id) if g.infusion.course_id == course.id]
    days = [date.fromisoformat(s["date"]) for s in plan["sessions"]] or [
        date.fromisoformat(plan["start_date"])
    ]
    finished = status in (CourseStatus.COMPLETED, CourseStatus.STOPPED_EARLY) or days[-1] < today
    last = infusions[-1].start_utc.date() if finished and infusions else days[-1]
    labs = session.scalars(
        current(LabResult)
        .where(LabResult.patient_id == course.patient_id)
        .order_by(LabResult.collected_utc)
    ).all()
    last_tested = max(
        (lab.collected_utc.date() for lab in labs if lab.test in ("alt", "ast", "bilirubin")),
        default=None,
    )
    need = rules.liver_tests_due(
        protocol=get_protocol(course.protocol),
        liver_risk=liver_risk(session, course.patient_id),
        first_session=days[0],
        last_session=max(last, days[0]),
        post_series_within_days=AFTER_SERIES_WITHIN_DAYS,
        hold_since=hold_since,
        last_tested_on=last_tested,
    )
    first_start = infusions[0].start_utc if infusions else None
    out = []
    for item in need.due:
        if item.what == "weekly_recheck":
            results = dict.fromkeys(item.tests)  # due again a week after each test
        elif status is CourseStatus.CANCELLED or (
            item.what == "post_series" and finished and not infusions
        ):
            continue  # no series was given
        elif item.what == "baseline":
            by = first_start or datetime.combine(today, time.max, tzinfo=UTC)
            results = _done(labs, item.tests, None, by)
        else:  # after the series: a result collected after the last infusion started
            after = infusions[-1].start_utc if finished else None
            results = _done(labs, item.tests, after, None) if after else dict.fromkeys(item.tests)
        missing = [t for t, lab in results.items() if lab is None]
        if not missing:
            state = "done"
        elif item.due_by < today:
            state = "overdue"
        elif item.what == "post_series" and not finished:
            state = "upcoming"
        else:
            state = "due"
        out.append(
            {
                **item.as_dict(),
                "status": state,
                "missing": missing,
                "results": {
                    t: None if lab is None else lab.as_dict() for t, lab in results.items()
                },
            }
        )
    return out


# --- Dose ---------------------------------------------------------------------------


def _oral_mg(rx: OralPrescription, start: date | None = None, end: date | None = None) -> float:
    """The planned oral mg of ``rx`` on the days from ``start`` to ``end`` (inclusive)."""
    a = rx.start_date if start is None else max(start, rx.start_date)
    b = rx.end_date if end is None else min(end, rx.end_date)
    return max(0, (b - a).days + 1) * rx.dose_mg * rx.doses_per_day


def doses(
    session: Session, course: Course, *, today: date, limits: LimitSet | None
) -> dict[str, Any]:
    """IV ketamine delivered per course, calendar year and 365 days; oral planned apart."""
    if limits is None:
        protocol = get_protocol(course.protocol)
        limits = load_drug_library().limits_for(protocol.setting.value) + protocol.limits
    infusions = [g for g in given(session, course.patient_id) if g.start_utc.date() <= today]
    mine = [g for g in infusions if g.infusion.course_id == course.id]
    this = rules.cumulative_dose(
        [(g.start_utc.date(), g.delivered_mg) for g in mine], as_of=today, limits=limits
    )
    patient = rules.cumulative_dose(
        [(g.start_utc.date(), g.delivered_mg) for g in infusions], as_of=today
    )
    orals = session.scalars(
        current(OralPrescription)
        .join(Course, Course.id == OralPrescription.course_id)
        .where(Course.patient_id == course.patient_id)
    ).all()
    jan1 = date(today.year, 1, 1)
    since = today - timedelta(days=_YEAR_DAYS - 1)
    return {
        "as_of": today.isoformat(),
        "course": {
            "iv_delivered_mg": this.total_mg,
            "infusions": len(mine),
            "oral_planned_mg": sum(_oral_mg(rx) for rx in orals if rx.course_id == course.id),
        },
        "calendar_year": {
            "year": today.year,
            "iv_delivered_mg": dict(patient.per_year_mg).get(today.year, 0.0),
            "oral_planned_mg": sum(_oral_mg(rx, jan1, date(today.year, 12, 31)) for rx in orals),
        },
        "rolling_365_days": {
            "from": since.isoformat(),
            "iv_delivered_mg": patient.rolling_365_mg,
            "oral_planned_mg": sum(_oral_mg(rx, since, today) for rx in orals),
        },
        "infusions": [
            {
                "infusion_id": str(g.infusion.id),
                "course_id": str(g.infusion.course_id),
                "session_number": g.infusion.session_number,
                "started_utc": g.start_utc.isoformat(),
                "delivered_mg": g.delivered_mg,
            }
            for g in infusions
        ],
        "findings": [f.as_dict() for f in this.findings],
    }


# --- Blood pressure -----------------------------------------------------------------


def blood_pressure(
    session: Session, course: Course, *, warn_slope_mmhg_per_session: float | None
) -> dict[str, Any]:
    """Per session the first (pre-infusion) and the highest blood pressure, the trend."""
    infusions = [g for g in given(session, course.patient_id) if g.infusion.course_id == course.id]
    ids = [g.infusion.id for g in infusions]
    bp: dict[uuid.UUID | None, list[tuple[float, float]]] = {i: [] for i in ids}
    if ids:
        rows = session.execute(
            current(VitalSigns)
            .with_only_columns(VitalSigns.infusion_id, VitalSigns.sbp_mmhg, VitalSigns.dbp_mmhg)
            .where(VitalSigns.infusion_id.in_(ids))
            .order_by(VitalSigns.measured_utc)
        )
        for infusion_id, sbp, dbp in rows:
            if sbp is not None and dbp is not None:
                bp[infusion_id].append((sbp, dbp))
    sessions, numbers = [], []
    for g in infusions:
        pairs = bp[g.infusion.id]
        if pairs:
            sessions.append(
                rules.SessionBP(
                    day=g.start_utc.date(),
                    pre_sbp_mmhg=pairs[0][0],
                    pre_dbp_mmhg=pairs[0][1],
                    peak_sbp_mmhg=max(s for s, _ in pairs),
                    peak_dbp_mmhg=max(d for _, d in pairs),
                )
            )
            numbers.append(g.infusion.session_number)
    trend = rules.bp_trend(sessions, warn_slope_mmhg_per_session=warn_slope_mmhg_per_session)
    return {**trend.as_dict(), "session_numbers": numbers}


# --- Oral interactions --------------------------------------------------------------


def oral_interactions(session: Session, course: Course, *, today: date) -> dict[str, Any]:
    """The medication check for the oral follow-on, when oral ketamine is prescribed."""
    prescribed = session.scalar(
        current(OralPrescription).where(OralPrescription.course_id == course.id).limit(1)
    )
    if prescribed is None:
        return {"oral_prescribed": False, "findings": []}
    chart = screening_patient(session, course.patient_id, on=today)
    found = medication_findings(chart, protocol=get_protocol("oral-follow-on"))
    return {"oral_prescribed": True, "findings": [f.as_dict() for f in found]}
