"""Export patients' records as a FHIR R4 Bundle (``Patient/$everything``).

Only current entries are exported (a corrected entry as its correction, with status
``corrected``; a retracted one not at all). Every resource is checked against the R4
models and schema before it leaves (:mod:`ketapain.fhir.validation`): a resource that
fails is a bug, and the export stops rather than send it. Each export is audited.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from ketapain.clinic.accounts import User
from ketapain.clinic.audit import Actor, reading, record_event
from ketapain.clinic.charting import CHARTING_INTERVAL
from ketapain.clinic.courses import (
    Course,
    CoursePlan,
    OralPrescription,
    course_status,
)
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.infusions import Infusion, InfusionEvent, PumpState, pump_state
from ketapain.clinic.observations import (
    DischargeCheck,
    RescueMedication,
    Score,
    SideEffect,
    VitalSigns,
)
from ketapain.clinic.patients import (
    Allergy,
    BodyMeasurement,
    Diagnosis,
    HistoryItem,
    LabResult,
    Medication,
    Patient,
)
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.records import current, get_or_raise
from ketapain.clinic.registry import demographics_of
from ketapain.errors import KetapainError, RecordNotFoundError
from ketapain.fhir import observations as obs
from ketapain.fhir import patient_resources as pr
from ketapain.fhir import plan_resources as requests
from ketapain.fhir import treatment_resources as tr
from ketapain.fhir.validation import check

__all__ = ["FhirExportError", "export_bundle", "find_patient", "patient_resources"]


class FhirExportError(KetapainError):
    """A resource ketapain built is not valid FHIR R4 (a bug: nothing is sent)."""


def find_patient(session: Session, key: str) -> Patient:
    """The patient with id ``key`` (a UUID) or medical record number ``key``."""
    try:
        return get_or_raise(session, Patient, uuid.UUID(key), "patient")
    except ValueError:
        pass
    patient = session.scalars(select(Patient).where(Patient.mrn == key.strip())).first()
    if patient is None:
        raise RecordNotFoundError("patient", key)
    return patient


# Entries at the same time are ordered by what they are, so that two databases holding
# the same record export it in the same order (ids are random).
_TIEBREAK: Final = {
    "diagnoses": ("key",),
    "history_items": ("key",),
    "allergies": ("substance",),
    "medications": ("name",),
    "lab_results": ("test",),
    "scores": ("instrument", "value"),
    "side_effects": ("effect", "severity"),
    "rescue_medications": ("drug", "dose_mg"),
    "vital_signs": ("sbp_mmhg", "dbp_mmhg", "hr_per_min", "rr_per_min", "spo2_pct", "temp_c"),
    "body_measurements": ("weight_kg", "height_cm"),
    "discharge_checks": ("escort_confirmed",),
}


def _rows(session: Session, model: Any, order: Any, **where: Any) -> list[Any]:
    query = current(model)
    for column, value in where.items():
        query = query.where(getattr(model, column) == value)
    tiebreak = [getattr(model, c) for c in _TIEBREAK.get(model.__tablename__, ())]
    return list(session.scalars(query.order_by(order, *tiebreak, model.id)))


class _Names:
    """Users' full names by id, read once per export."""

    def __init__(self, session: Session) -> None:
        self._names = {
            row.id: row.full_name for row in session.execute(select(User.id, User.full_name))
        }

    def __call__(self, user_id: uuid.UUID | None) -> str | None:
        return None if user_id is None else self._names.get(user_id)


def _by(rows: list[Any], key: str) -> dict[Any, list[Any]]:
    out: dict[Any, list[Any]] = defaultdict(list)
    for row in rows:
        out[getattr(row, key)].append(row)
    return out


@dataclass(slots=True)
class _Chart:
    """One patient's rows, read with one query per table and grouped (by infusion, course)."""

    vitals: dict[Any, list[VitalSigns]]
    scores: dict[Any, list[Score]]
    effects: dict[Any, list[SideEffect]]
    rescues: dict[Any, list[RescueMedication]]
    discharges: dict[Any, list[DischargeCheck]]
    events: dict[Any, list[InfusionEvent]]
    infusions: dict[Any, list[Infusion]]
    plans: dict[Any, list[CoursePlan]]
    orals: dict[Any, list[OralPrescription]]

    @classmethod
    def read(cls, session: Session, pid: uuid.UUID) -> _Chart:
        infusions = list(
            session.scalars(
                select(Infusion)
                .where(Infusion.patient_id == pid)
                .order_by(Infusion.session_number, Infusion.recorded_utc, Infusion.id)
            )
        )
        courses = select(Course.id).where(Course.patient_id == pid)
        events = session.scalars(
            select(InfusionEvent)
            .join(Infusion, Infusion.id == InfusionEvent.infusion_id)
            .where(Infusion.patient_id == pid)
            .order_by(InfusionEvent.infusion_id, InfusionEvent.sequence)
        )
        plans = session.scalars(
            select(CoursePlan).where(CoursePlan.course_id.in_(courses)).order_by(CoursePlan.version)
        )
        orals = session.scalars(
            current(OralPrescription)
            .where(OralPrescription.course_id.in_(courses))
            .order_by(OralPrescription.start_date, OralPrescription.dose_mg, OralPrescription.id)
        )
        by_infusion = {
            name: _by(_rows(session, model, order, patient_id=pid), "infusion_id")
            for name, model, order in (
                ("vitals", VitalSigns, VitalSigns.measured_utc),
                ("scores", Score, Score.measured_utc),
                ("effects", SideEffect, SideEffect.observed_utc),
                ("rescues", RescueMedication, RescueMedication.given_utc),
                ("discharges", DischargeCheck, DischargeCheck.checked_utc),
            )
        }
        return cls(
            **by_infusion,
            events=_by(list(events), "infusion_id"),
            infusions=_by(infusions, "course_id"),
            plans=_by(list(plans), "course_id"),
            orals=_by(list(orals), "course_id"),
        )


def _course_resources(
    session: Session,
    course: Course,
    chart: _Chart,
    *,
    conditions: list[uuid.UUID],
    names: _Names,
    tz: ZoneInfo,
    today: Any,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    status, _ = course_status(session, course.id)
    plans = chart.plans.get(course.id, [])
    plan_ids = {p.version: p.id for p in plans}
    prior = None
    for p in plans:
        out.append(
            requests.plan_request(
                p,
                patient_id=course.patient_id,
                status=requests.plan_status(status, p is plans[-1]),
                prior_id=prior,
                requester=names(p.recorded_by_id),
                condition_ids=conditions,
                tz=tz,
            )
        )
        prior = p.id
    for oral in chart.orals.get(course.id, []):
        out.append(
            requests.oral_request(
                oral,
                patient_id=course.patient_id,
                requester=names(oral.recorded_by_id),
                today=today,
            )
        )
    for inf in chart.infusions.get(course.id, []):
        out += _session_resources(
            inf, chart, conditions=conditions, names=names, plan_id=plan_ids.get(inf.plan_version)
        )
    return out


def _session_resources(
    inf: Infusion,
    chart: _Chart,
    *,
    conditions: list[uuid.UUID],
    names: _Names,
    plan_id: uuid.UUID | None,
) -> list[dict[str, Any]]:
    events = chart.events.get(inf.id, [])
    state = pump_state(e.kind for e in events)
    starts = [e.time_utc for e in events if e.kind == "start"]
    stops = [e for e in events if e.kind == "stop"]
    started = starts[0] if starts else None
    stopped = stops[0].time_utc if stops else None
    discharge = chart.discharges.get(inf.id, [])
    vitals = chart.vitals.get(inf.id, [])
    scores = chart.scores.get(inf.id, [])
    # The visit spans everything charted for it: the first score before the start to the
    # discharge check (or the last entry).
    times = [
        *(e.time_utc for e in events),
        *(v.measured_utc for v in vitals),
        *(s.measured_utc for s in scores),
        *(d.checked_utc for d in discharge),
    ]
    visit = (min(times), max(times)) if times else (inf.recorded_utc, None)
    segments = tr.rate_segments([e.pump_event() for e in events], [e.reason for e in events])
    # Stopped at least one charting interval before the programmed end (as the outcome
    # report counts early stops): the Procedure was stopped, not completed.
    programmed_h = sum(float(step["duration_min"]) for step in inf.program) / 60.0
    running_h = sum(((g.end or g.start) - g.start).total_seconds() for g in segments) / 3600.0
    early = (
        state is PumpState.STOPPED
        and started is not None
        and running_h < programmed_h - CHARTING_INTERVAL.total_seconds() / 3600.0 + 1e-9
    )
    nurse = names(events[0].recorded_by_id) if events else None
    proc = tr.procedure_id(inf)
    out = [
        tr.encounter(
            inf,
            state=state,
            started=started is not None,
            visit=visit,
            discharge=discharge[-1] if discharge else None,
            condition_ids=conditions,
        ),
        tr.procedure(
            inf,
            state=state,
            started=started,
            stopped=stopped,
            stop_reason=stops[0].reason if stops else None,
            stopped_early=early,
            condition_ids=conditions,
        ),
        *tr.segment_administrations(inf, segments, plan_request_id=plan_id, performer=nurse),
    ]
    out += [tr.rescue_administration(r, proc) for r in chart.rescues.get(inf.id, [])]
    for vital in vitals:
        out += obs.vital_observations(vital)
    out += [obs.score_observation(score) for score in scores]
    out += [tr.adverse_event(effect, proc) for effect in chart.effects.get(inf.id, [])]
    return out


def patient_resources(
    session: Session,
    patient: Patient,
    *,
    mrn_system: str,
    timezone: str = "UTC",
    names: _Names | None = None,
) -> list[dict[str, Any]]:
    """Every current resource of one patient, the Patient first (not yet validated).

    ``names`` (users' names, read once for an export of many patients) is read if None.
    """
    tz = ZoneInfo(timezone)
    pid = patient.id
    names = names or _Names(session)
    chart = _Chart.read(session, pid)
    out = [pr.patient_resource(patient, demographics_of(session, pid), mrn_system)]
    diagnoses = _rows(session, Diagnosis, Diagnosis.recorded_utc, patient_id=pid)
    out += [pr.condition(d) for d in diagnoses]
    history = _rows(session, HistoryItem, HistoryItem.recorded_utc, patient_id=pid)
    out += [pr.condition(h) for h in history]
    allergies = _rows(session, Allergy, Allergy.recorded_utc, patient_id=pid)
    out += [pr.allergy_intolerance(a) for a in allergies]
    medications = _rows(session, Medication, Medication.recorded_utc, patient_id=pid)
    out += [pr.medication_statement(m) for m in medications]
    for body in _rows(session, BodyMeasurement, BodyMeasurement.measured_utc, patient_id=pid):
        out += obs.body_observations(body)
    labs = _rows(session, LabResult, LabResult.collected_utc, patient_id=pid)
    out += [obs.lab_observation(lab) for lab in labs]
    # What was charted outside an infusion (intake, clinic visits, follow-up).
    for vital in chart.vitals.get(None, []):
        out += obs.vital_observations(vital)
    out += [obs.score_observation(score) for score in chart.scores.get(None, [])]
    out += [tr.adverse_event(effect, None) for effect in chart.effects.get(None, [])]
    out += [tr.rescue_administration(r, None) for r in chart.rescues.get(None, [])]
    conditions = [d.id for d in diagnoses]
    today = utc_now().astimezone(tz).date()
    courses = session.scalars(
        select(Course).where(Course.patient_id == pid).order_by(Course.recorded_utc, Course.id)
    )
    for course in courses:
        out += _course_resources(
            session, course, chart, conditions=conditions, names=names, tz=tz, today=today
        )
    return out


def _validated(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for resource in resources:
        problems = check(resource)
        if problems:
            where = f"{resource['resourceType']}/{resource.get('id')}"
            raise FhirExportError(
                f"{where} is not valid FHIR R4: " + "; ".join(str(p) for p in problems)
            )
    return resources


def bundle(resources: Sequence[dict[str, Any]], *, matches: int, now: datetime) -> dict[str, Any]:
    """A searchset Bundle: the Patients as matches, everything else included."""
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": now.isoformat()},
        "type": "searchset",
        "timestamp": now.isoformat(),
        "total": matches,
        "entry": [
            {
                "fullUrl": f"urn:uuid:{r['id']}",
                "resource": r,
                "search": {"mode": "match" if r["resourceType"] == "Patient" else "include"},
            }
            for r in resources
        ],
    }


def export_bundle(
    db: Database,
    actor: Actor,
    patient_keys: Sequence[str] | None,
    *,
    mrn_system: str,
    timezone: str = "UTC",
) -> dict[str, Any]:
    """The Bundle of the patients named (ids or MRNs), or of every patient if None.

    Needs ``read_clinical``; the export is audited (``export_fhir``, one entry per call).
    """
    now = utc_now()
    with reading(db, actor) as session:
        require(actor, Action.READ_CLINICAL, "a FHIR export holds the clinical record")
        if patient_keys is None:
            patients = list(session.scalars(select(Patient).order_by(Patient.mrn)))
        else:
            # A patient named twice (by id and by MRN) is exported once.
            found = [find_patient(session, key) for key in patient_keys]
            patients = list({p.id: p for p in found}.values())
        names = _Names(session)
        resources: list[dict[str, Any]] = []
        for patient in patients:
            resources += patient_resources(
                session, patient, mrn_system=mrn_system, timezone=timezone, names=names
            )
    _validated(resources)
    record_event(
        db,
        actor,
        action="export_fhir",
        entity="patients",
        entity_id=str(patients[0].id) if len(patients) == 1 else None,
        detail=f"FHIR R4 Bundle: {len(patients)} patients, {len(resources)} resources",
    )
    return bundle(resources, matches=len(patients), now=now)
