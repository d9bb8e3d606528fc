"""The plan as FHIR: each version of a course's plan is an IV ketamine MedicationRequest
(one dosage per pump step, rates in mg/kg/h and mg/h); oral follow-on is another."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from ketapain.clinic.courses import CoursePlan, CourseStatus, OralPrescription
from ketapain.fhir._common import instant, ketamine, quantity, ref, route
from ketapain.fhir.codes import DOSE_RATE_TYPE, MEDREQ_CATEGORY, coding

__all__ = ["COURSE_ID_SYSTEM", "oral_request", "plan_request", "plan_status"]

COURSE_ID_SYSTEM: Final = "https://ketapain.org/fhir/sid/course"
# Course status -> the plan's MedicationRequest.status (R4 medicationrequest-status).
_REQUEST_STATUS: Final = {
    CourseStatus.PLANNED: "active",
    CourseStatus.IN_PROGRESS: "active",
    CourseStatus.COMPLETED: "completed",
    CourseStatus.CANCELLED: "cancelled",
    CourseStatus.STOPPED_EARLY: "stopped",
}
_SETTING: Final = {"outpatient": "outpatient", "inpatient": "inpatient"}


def _local_time(text: str, tz: ZoneInfo) -> str:
    """A plan's clinic-local time (``2026-11-23T09:00``) as a FHIR dateTime with offset."""
    t = datetime.fromisoformat(text)
    return (t if t.tzinfo else t.replace(tzinfo=tz)).isoformat()


def _rate_type(code: str, display: str) -> dict[str, Any]:
    return {"coding": [coding(DOSE_RATE_TYPE, code, display)]}


def _plan_dosages(plan: dict[str, Any], tz: ZoneInfo) -> list[dict[str, Any]]:
    dosages: list[dict[str, Any]] = []
    for session in plan["sessions"]:
        n, phase = session["number"], session["phase"]
        for bolus in session.get("boluses_mg") or []:
            dosages.append(
                {
                    "sequence": len(dosages) + 1,
                    "text": f"Session {n} ({phase}): bolus {bolus:g} mg",
                    "timing": {"event": [_local_time(session["start"], tz)]},
                    "route": route("iv"),
                    "doseAndRate": [{"doseQuantity": quantity(bolus, "mg")}],
                }
            )
        for k, step in enumerate(session["steps"], start=1):
            per_kg, per_h = step["rate_mg_per_kg_h"], step["rate_mg_per_h"]
            dosages.append(
                {
                    "sequence": len(dosages) + 1,
                    "text": f"Session {n} ({phase}), step {k}: {per_kg:g} mg/kg/h = "
                    f"{per_h:g} mg/h for {step['duration_min']:g} min",
                    "timing": {
                        "event": [_local_time(step["start"], tz)],
                        "repeat": {"duration": step["duration_min"], "durationUnit": "min"},
                    },
                    "route": route("iv"),
                    "doseAndRate": [
                        {
                            "type": _rate_type("ordered", "Ordered"),
                            "rateQuantity": quantity(per_kg, "mg/kg/h"),
                        },
                        {
                            "type": _rate_type("calculated", "Calculated"),
                            "rateQuantity": quantity(per_h, "mg/h"),
                        },
                    ],
                }
            )
    return dosages


def plan_request(
    row: CoursePlan,
    *,
    patient_id: uuid.UUID,
    status: str,
    prior_id: uuid.UUID | None,
    requester: str | None,
    condition_ids: Sequence[uuid.UUID],
    tz: ZoneInfo,
) -> dict[str, Any]:
    """One version of a course's plan as an IV ketamine MedicationRequest."""
    plan = row.plan
    protocol = plan["protocol"]
    weight = plan["dosing_weight"]
    out: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": str(row.id),
        "identifier": [
            {"system": COURSE_ID_SYSTEM + "-plan", "value": f"{row.course_id}/v{row.version}"}
        ],
        "status": status,
        "intent": "order",
        "groupIdentifier": {"system": COURSE_ID_SYSTEM, "value": str(row.course_id)},
    }
    setting = _SETTING.get(str(protocol.get("setting")))
    if setting:
        out["category"] = [{"coding": [coding(MEDREQ_CATEGORY, setting, setting.title())]}]
    out.update(
        {
            "medicationCodeableConcept": ketamine(
                f"ketamine ({protocol.get('drug', 'racemic')}) intravenous infusion"
            ),
            "subject": ref("Patient", patient_id),
            "authoredOn": instant(row.recorded_utc),
        }
    )
    if requester:
        out["requester"] = {"display": requester}
    if condition_ids:
        out["reasonReference"] = [ref("Condition", c) for c in condition_ids]
    notes = [
        f"Protocol {protocol['name']}: {protocol.get('title', '')}; plan version {row.version}.",
        f"Dosing weight {weight['dosing_kg']:g} kg "
        f"({weight.get('explanation') or weight['policy']}).",
    ]
    if row.reason:
        notes.append(f"Changed: {row.reason}")
    out["note"] = [{"text": text} for text in notes]
    out["dosageInstruction"] = _plan_dosages(plan, tz)
    if prior_id is not None:
        out["priorPrescription"] = ref("MedicationRequest", prior_id)
    return out


def plan_status(course_status: CourseStatus, latest: bool) -> str:
    """The plan version's request status: the course's for the latest, else superseded."""
    return _REQUEST_STATUS[course_status] if latest else "stopped"


def oral_request(
    row: OralPrescription, *, patient_id: uuid.UUID, requester: str | None, today: date
) -> dict[str, Any]:
    """Oral ketamine follow-on as a MedicationRequest: dose, times a day, dates."""
    text = f"{row.dose_mg:g} mg by mouth {row.doses_per_day} times a day"
    if row.instructions:
        text += f"; {row.instructions}"
    out: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": str(row.id),
        "status": "active" if row.end_date >= today else "completed",
        "intent": "order",
        "groupIdentifier": {"system": COURSE_ID_SYSTEM, "value": str(row.course_id)},
        "medicationCodeableConcept": ketamine("ketamine oral"),
        "subject": ref("Patient", patient_id),
        "authoredOn": instant(row.recorded_utc),
    }
    if requester:
        out["requester"] = {"display": requester}
    out["dosageInstruction"] = [
        {
            "text": text,
            "timing": {
                "repeat": {
                    "boundsPeriod": {
                        "start": row.start_date.isoformat(),
                        "end": row.end_date.isoformat(),
                    },
                    "frequency": row.doses_per_day,
                    "period": 1,
                    "periodUnit": "d",
                }
            },
            "route": route("po"),
            "doseAndRate": [{"doseQuantity": quantity(row.dose_mg, "mg")}],
        }
    ]
    return out
