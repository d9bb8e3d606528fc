"""The sessions' resources: per session an Encounter, a Procedure, one
MedicationAdministration per rate segment, rescue medications and AdverseEvents (the
plan's MedicationRequests are in :mod:`ketapain.fhir.plan_resources`).

A rate segment is a stretch of time at one rate with the pump running: a start, a rate
change or a resume opens one; a rate change, a pause or the stop closes it. Its dose is
the rate times its length, the same arithmetic as :func:`ketapain.clinic.infusions.delivery`.

>>> from datetime import UTC, datetime, timedelta
>>> t0 = datetime(2026, 12, 7, 9, tzinfo=UTC)
>>> events = [PumpEvent(kind="start", time_utc=t0, rate_mg_per_h=20.0),
...           PumpEvent(kind="pause", time_utc=t0 + timedelta(minutes=30)),
...           PumpEvent(kind="resume", time_utc=t0 + timedelta(minutes=45)),
...           PumpEvent(kind="stop", time_utc=t0 + timedelta(hours=2))]
>>> [(s.rate_mg_per_h, s.dose_mg) for s in rate_segments(events)]
[(20.0, 10.0), (20.0, 25.0)]
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ketapain.clinic.infusions import (
    EventKind,
    Infusion,
    PumpEvent,
    PumpState,
    next_state,
)
from ketapain.clinic.observations import DischargeCheck, RescueMedication, SideEffect
from ketapain.fhir._common import child_id, instant, ketamine, quantity, ref, rounded, route
from ketapain.fhir.codes import (
    ACT_CODE,
    AE_SEVERITY,
    CPT_IV_INFUSION,
    DISCHARGE_DISPOSITION,
    LOCAL_SESSION,
    coding,
    local,
)
from ketapain.fhir.patient_resources import medication_concept

__all__ = [
    "Segment",
    "adverse_event",
    "encounter",
    "procedure",
    "procedure_id",
    "rate_segments",
    "rescue_administration",
    "segment_administrations",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    """A stretch at one rate with the pump running; ``end`` is None while it runs."""

    start: datetime
    end: datetime | None
    rate_mg_per_h: float
    opened_by: str
    closed_by: str | None

    @property
    def dose_mg(self) -> float | None:
        """Rate times length (None while running)."""
        if self.end is None:
            return None
        return rounded(self.rate_mg_per_h * (self.end - self.start).total_seconds() / 3600.0)


def _why(kind: str, reason: str | None) -> str:
    return f"{kind.replace('_', ' ')}: {reason}" if reason else kind.replace("_", " ")


def rate_segments(
    events: Sequence[PumpEvent], reasons: Sequence[str | None] | None = None
) -> list[Segment]:
    """The running stretches of an infusion's events, in order (empty ones left out)."""
    reasons = reasons or [None] * len(events)
    out: list[Segment] = []
    state = PumpState.NOT_STARTED
    rate: float | None = None
    start: datetime | None = None
    opened = ""

    def close(ev: PumpEvent, why: str) -> None:
        if start is not None and rate is not None and ev.time_utc > start:
            out.append(
                Segment(
                    start=start,
                    end=ev.time_utc,
                    rate_mg_per_h=rate,
                    opened_by=opened,
                    closed_by=why,
                )
            )

    for ev, reason in zip(events, reasons, strict=True):
        kind = EventKind(ev.kind)
        why = _why(kind, reason)
        if state is PumpState.RUNNING and kind in (
            EventKind.RATE_CHANGE,
            EventKind.PAUSE,
            EventKind.STOP,
        ):
            close(ev, why)
            start = None
        if ev.rate_mg_per_h is not None:
            rate = ev.rate_mg_per_h
        state = next_state(state, kind)
        if state is PumpState.RUNNING and start is None:
            start, opened = ev.time_utc, why
    if state is PumpState.RUNNING and start is not None and rate is not None:
        out.append(
            Segment(start=start, end=None, rate_mg_per_h=rate, opened_by=opened, closed_by=None)
        )
    return out


def _period(start: datetime | None, end: datetime | None) -> dict[str, str]:
    out = {}
    if start is not None:
        out["start"] = instant(start)
    if end is not None:
        out["end"] = instant(end)
    return out


def _session_status(state: PumpState, started: bool) -> tuple[str, str]:
    """(Encounter.status, Procedure.status) of a session whose pump is in ``state``."""
    if state is PumpState.STOPPED:
        return ("finished", "completed") if started else ("cancelled", "not-done")
    if state is PumpState.NOT_STARTED:
        return "arrived", "preparation"
    return "in-progress", "in-progress"


def procedure_id(infusion: Infusion) -> str:
    """The id of the session's Procedure."""
    return child_id(infusion.id, "procedure")


def encounter(
    inf: Infusion,
    *,
    state: PumpState,
    started: bool,
    visit: tuple[datetime, datetime | None],
    discharge: DischargeCheck | None,
    condition_ids: Sequence[uuid.UUID],
) -> dict[str, Any]:
    """The session's visit (ambulatory): ``visit`` spans what was charted for it."""
    status, _ = _session_status(state, started)
    start, end = visit
    if status in ("arrived", "in-progress"):
        end = None
    out: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": str(inf.id),
        "status": status,
        "class": coding(ACT_CODE, "AMB", "ambulatory"),
        "type": [
            {
                "coding": [local(LOCAL_SESSION)],
                "text": f"Ketamine infusion, session {inf.session_number}",
            }
        ],
        "subject": ref("Patient", inf.patient_id),
        "period": _period(start, end),
    }
    if condition_ids:
        out["reasonReference"] = [ref("Condition", c) for c in condition_ids]
    if discharge is not None and discharge.escort_confirmed:
        out["hospitalization"] = {
            "dischargeDisposition": {
                "coding": [coding(DISCHARGE_DISPOSITION, "home", "Home")],
                "text": "home, with an escort",
            }
        }
    return out


def procedure(
    inf: Infusion,
    *,
    state: PumpState,
    started: datetime | None,
    stopped: datetime | None,
    stop_reason: str | None,
    condition_ids: Sequence[uuid.UUID],
    stopped_early: bool = False,
) -> dict[str, Any]:
    """The infusion as a Procedure: when it ran, the bag and the dosing weight; one
    stopped before its programmed end is ``stopped``, with the reason charted."""
    _, status = _session_status(state, started is not None)
    if status == "completed" and stopped_early:
        status = "stopped"
    out: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": procedure_id(inf),
        "status": status,
        "code": {
            "coding": [local(LOCAL_SESSION), CPT_IV_INFUSION.coding()],
            "text": f"Ketamine infusion, session {inf.session_number}",
        },
        "subject": ref("Patient", inf.patient_id),
        "encounter": ref("Encounter", inf.id),
    }
    if started is not None:
        out["performedPeriod"] = _period(started, stopped)
    if status == "stopped":
        out["statusReason"] = {"text": stop_reason or "stopped before the programmed end"}
    elif status == "not-done":
        out["statusReason"] = {"text": stop_reason or "stopped before it was started"}
    if condition_ids:
        out["reasonReference"] = [ref("Condition", c) for c in condition_ids]
    out["note"] = [
        {
            "text": f"Bag {inf.bag_mg:g} mg in {inf.bag_ml:g} mL ({inf.conc_mg_per_ml:g} mg/mL), "
            f"lot {inf.lot}; dosing weight {inf.dosing_weight_kg:g} kg; plan version "
            f"{inf.plan_version}."
        }
    ]
    return out


def segment_administrations(
    inf: Infusion,
    segments: Sequence[Segment],
    *,
    plan_request_id: uuid.UUID | None,
    performer: str | None,
) -> list[dict[str, Any]]:
    """One MedicationAdministration per rate segment, part of the session's Procedure."""
    out = []
    for k, seg in enumerate(segments, start=1):
        per_kg = seg.rate_mg_per_h / inf.dosing_weight_kg
        dosage: dict[str, Any] = {
            "text": f"{seg.rate_mg_per_h:g} mg/h = {per_kg:.3g} mg/kg/h at "
            f"{inf.dosing_weight_kg:g} kg",
            "route": route("iv"),
        }
        if seg.dose_mg is not None:
            dosage["dose"] = quantity(seg.dose_mg, "mg")
        dosage["rateQuantity"] = quantity(seg.rate_mg_per_h, "mg/h")
        admin: dict[str, Any] = {
            "resourceType": "MedicationAdministration",
            "id": child_id(inf.id, f"segment-{k}"),
            "partOf": [ref("Procedure", procedure_id(inf))],
            "status": "completed" if seg.end is not None else "in-progress",
            "medicationCodeableConcept": ketamine("ketamine intravenous infusion"),
            "subject": ref("Patient", inf.patient_id),
            "context": ref("Encounter", inf.id),
            "effectivePeriod": _period(seg.start, seg.end),
        }
        if performer:
            admin["performer"] = [{"actor": {"display": performer}}]
        if plan_request_id is not None:
            admin["request"] = ref("MedicationRequest", plan_request_id)
        notes = [f"Segment {k}, opened by {seg.opened_by}"]
        if seg.closed_by:
            notes.append(f"closed by {seg.closed_by}")
        admin["note"] = [{"text": "; ".join(notes) + "."}]
        admin["dosage"] = dosage
        out.append(admin)
    return out


def rescue_administration(row: RescueMedication, procedure_ref: str | None) -> dict[str, Any]:
    """A rescue medication given (midazolam, ondansetron, clonidine or another drug)."""
    name = row.drug_name if row.drug == "other" and row.drug_name else row.drug
    out: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": str(row.id),
        "status": "completed",
        "medicationCodeableConcept": medication_concept(name),
        "subject": ref("Patient", row.patient_id),
    }
    if procedure_ref is not None:
        out["partOf"] = [ref("Procedure", procedure_ref)]
    if row.infusion_id is not None:
        out["context"] = ref("Encounter", row.infusion_id)
    out["effectiveDateTime"] = instant(row.given_utc)
    out["reasonCode"] = [{"text": row.reason}]
    out["dosage"] = {
        "text": f"{row.dose_mg:g} mg {row.route}",
        "route": route(row.route),
        "dose": quantity(row.dose_mg, "mg"),
    }
    return out


def adverse_event(row: SideEffect, procedure_ref: str | None) -> dict[str, Any]:
    """A side effect as an actual AdverseEvent, suspected of the session's infusion."""
    text = row.effect if not row.note else f"{row.effect}: {row.note}"
    out: dict[str, Any] = {
        "resourceType": "AdverseEvent",
        "id": str(row.id),
        "actuality": "actual",
        "event": {"text": text},
        "subject": ref("Patient", row.patient_id),
    }
    if row.infusion_id is not None:
        out["encounter"] = ref("Encounter", row.infusion_id)
    out["date"] = instant(row.observed_utc)
    out["recordedDate"] = instant(row.recorded_utc)
    out["severity"] = {"coding": [coding(AE_SEVERITY, row.severity, row.severity.title())]}
    if procedure_ref is not None:
        out["suspectEntity"] = [{"instance": ref("Procedure", procedure_ref)}]
    return out
