"""The oral follow-on: two weeks of low-dose oral ketamine after the series.

The proposal starts the day after the last infusion given (seed 003: "after treatment
... very low dose oral ketamine for two weeks"), at the Blonk 2010 starting dose of
0.5 mg/kg racemic three times daily (the plan's ``oral_follow_on``, or the
``oral-follow-on`` protocol when the course's protocol has no oral phase). Oral ketamine
meets first-pass metabolism, so the drug interactions found at screening are checked
again for the oral route: CYP3A4 and CYP2B6 inhibitors and inducers change oral exposure
far more than intravenous (Peltoniemi 2012), and they become warnings.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ketapain.clinic.audit import Actor
from ketapain.clinic.courses import Course, current_plan
from ketapain.clinic.infusions import Infusion, InfusionEvent
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.records import get_or_raise
from ketapain.clinic.screenings import screening_patient
from ketapain.protocols.findings import Finding, Severity
from ketapain.protocols.library import get_protocol
from ketapain.protocols.screening import medication_findings
from ketapain.sources import BLONK_2010

__all__ = [
    "ORAL_DAYS",
    "ORAL_START_MG_PER_KG",
    "oral_findings",
    "oral_proposal",
    "prescription_findings",
]

# Seed 003: "patients are prescribed very low dose oral ketamine for two weeks".
ORAL_DAYS: Final = 14
# Blonk 2010 (Eur J Pain 14:466): start 0.5 mg/kg racemic, 3-4 times daily.
ORAL_START_MG_PER_KG: Final = 0.5
_ORAL_PROTOCOL: Final = "oral-follow-on"


def oral_findings(session: Session, patient_id: uuid.UUID, *, on: date) -> list[Finding]:
    """The screening's medication check rerun for oral ketamine, most serious first."""
    chart = screening_patient(session, patient_id, on=on)
    return medication_findings(chart, protocol=get_protocol(_ORAL_PROTOCOL))


def _dosing_kg(plan: dict[str, Any]) -> float:
    return float(plan["dosing_weight"]["dosing_kg"])


def prescription_findings(
    session: Session, course_id: uuid.UUID, *, dose_mg: float, on: date
) -> list[Finding]:
    """What to know about an oral prescription: the dose against the Blonk 2010 starting
    dose, and the interactions for the oral route."""
    course = get_or_raise(session, Course, course_id, "course")
    per_kg = dose_mg / _dosing_kg(current_plan(session, course_id).plan)
    out = []
    if per_kg > ORAL_START_MG_PER_KG * (1 + 1e-9):
        out.append(
            Finding(
                severity=Severity.WARNING,
                code="oral_above_starting_dose",
                reason=f"{dose_mg:g} mg is {per_kg:.2f} mg/kg, above the starting dose of "
                f"{ORAL_START_MG_PER_KG:g} mg/kg: start there and raise in the same steps.",
                source=BLONK_2010,
            )
        )
    return out + oral_findings(session, course.patient_id, on=on)


def _last_infusion_day(session: Session, course_id: uuid.UUID) -> date | None:
    last = session.scalar(
        select(func.max(InfusionEvent.time_utc))
        .join(Infusion, Infusion.id == InfusionEvent.infusion_id)
        .where(Infusion.course_id == course_id)
    )
    return None if last is None else last.date()


def oral_proposal(
    session: Session, actor: Actor, course_id: uuid.UUID, *, on: date
) -> dict[str, Any]:
    """The oral prescription ketapain proposes for the course, with the interaction check
    for the oral route; the physician prescribes (:func:`ketapain.clinic.treatment.
    prescribe_oral`)."""
    require(actor, Action.READ_CLINICAL)
    course = get_or_raise(session, Course, course_id, "course")
    plan = current_plan(session, course_id).plan
    oral = plan.get("oral_follow_on")
    if oral is not None:
        dose_mg, per_day = float(oral["dose_mg"]), len(oral["times"])
        planned_start = date.fromisoformat(oral["start_date"])
    else:
        weight_kg = _dosing_kg(plan)
        doses = get_protocol(_ORAL_PROTOCOL).phases[0].session.oral_doses
        dose_mg, per_day = float(doses[0].dose_mg_per_kg or 0.0) * weight_kg, len(doses)
        planned_start = None
    last = _last_infusion_day(session, course_id)
    start = last + timedelta(days=1) if last is not None else planned_start
    findings = oral_findings(session, course.patient_id, on=on)
    return {
        "course_id": str(course_id),
        "dose_mg": dose_mg,
        "doses_per_day": per_day,
        "daily_mg": dose_mg * per_day,
        "start_date": None if start is None else start.isoformat(),
        "end_date": None if start is None else (start + timedelta(days=ORAL_DAYS - 1)).isoformat(),
        "reason": "the day after the last infusion, for two weeks (seed 003), at the "
        "starting dose of 0.5 mg/kg racemic three times daily (Blonk 2010)",
        "source": BLONK_2010.cite(),
        "findings": [f.as_dict() for f in findings],
    }
