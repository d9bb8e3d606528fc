"""Screening results and clinicians' overrides, kept with the patient's record.

Screening reads the chart as it stands (:func:`screening_patient`): the latest current
weight and height, age on the day, diagnoses, history, active medications, the latest
liver tests with the lab's upper limits, a positive pregnancy test, and the latest
vital signs charted outside an infusion.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import date
from typing import Any

from sqlalchemy import ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ketapain.clinic._service import user_id
from ketapain.clinic.audit import Actor, unit_of_work
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.observations import Score, VitalSigns
from ketapain.clinic.patients import (
    BodyMeasurement,
    Demographics,
    Diagnosis,
    HistoryItem,
    LabResult,
    LabTest,
    Medication,
    Patient,
)
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.records import Record, current, get_or_raise
from ketapain.errors import ConflictError, InvalidValueError
from ketapain.protocols import patient as pp
from ketapain.protocols.findings import Override, unused_overrides
from ketapain.protocols.guardrails import load_drug_library
from ketapain.protocols.library import get_protocol
from ketapain.protocols.screening import Screening, screen

__all__ = [
    "OverrideRecord",
    "ScreeningRecord",
    "overrides_of",
    "run_screening",
    "screening_patient",
]


class ScreeningRecord(Record):
    """One screening: protocol, eligibility, the findings and the chart values it read."""

    __tablename__ = "screenings"

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    protocol: Mapped[str | None] = mapped_column(String(200), default=None)
    eligible: Mapped[bool]
    result: Mapped[dict[str, Any]]
    inputs: Mapped[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """The screening contract (``eligible``, ``findings``, ``overrides``) and context."""
        return {
            "id": str(self.id),
            "patient_id": str(self.patient_id),
            "recorded_utc": self.recorded_utc.isoformat(),
            "protocol": self.protocol,
            **self.result,
            "inputs": self.inputs,
        }


class OverrideRecord(Record):
    """A physician's override of a hard stop, with the reason."""

    __tablename__ = "overrides"

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    code: Mapped[str] = mapped_column(String(80))
    clinician: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    # What was overridden: a screening, a course plan or an infusion rate.
    context: Mapped[str] = mapped_column(String(20))
    context_id: Mapped[uuid.UUID | None] = mapped_column(default=None)

    def check(self) -> None:
        for name in ("code", "clinician", "reason"):
            if not str(getattr(self, name) or "").strip():
                raise InvalidValueError(f"override {name}", "a non-empty text", "")

    def as_override(self) -> Override:
        """The protocols-layer override."""
        return Override(
            code=self.code, clinician=self.clinician, reason=self.reason, time_utc=self.recorded_utc
        )


def _latest(session: Session, model: Any, patient_id: uuid.UUID, order: Any) -> Any:
    return session.scalars(
        current(model).where(model.patient_id == patient_id).order_by(order.desc()).limit(1)
    ).first()


def screening_patient(
    session: Session, patient_id: uuid.UUID, *, on: date | None = None
) -> pp.Patient:
    """The chart as the screening and planning rules read it."""
    patient = get_or_raise(session, Patient, patient_id, "patient")
    on = on or utc_now().date()
    demo = _latest(session, Demographics, patient_id, Demographics.recorded_utc)
    if demo is None:
        raise ConflictError("demographics", "the patient has no demographics recorded")
    body = _latest(session, BodyMeasurement, patient_id, BodyMeasurement.measured_utc)
    if body is None:
        raise ConflictError("weight_kg", "the patient has no weight recorded")
    heights = session.scalars(
        current(BodyMeasurement)
        .where(BodyMeasurement.patient_id == patient_id, BodyMeasurement.height_cm.is_not(None))
        .order_by(BodyMeasurement.measured_utc.desc())
        .limit(1)
    ).first()

    def rows(model: Any) -> Sequence[Any]:
        return session.scalars(current(model).where(model.patient_id == patient_id)).all()

    labs: dict[str, float | None] = {}
    pregnant = False
    for test in LabTest:
        lab = session.scalars(
            current(LabResult)
            .where(LabResult.patient_id == patient_id, LabResult.test == test)
            .order_by(LabResult.collected_utc.desc())
            .limit(1)
        ).first()
        if lab is None:
            continue
        if test == LabTest.PREGNANCY_TEST:
            pregnant = bool(lab.positive)
        elif test in (LabTest.ALT, LabTest.AST, LabTest.BILIRUBIN):
            unit = "mg_per_dl" if test == LabTest.BILIRUBIN else "u_per_l"
            labs[f"{test}_{unit}"] = lab.value
            labs[f"{test}_uln_{unit}"] = lab.ref_high
    vitals = session.scalars(
        current(VitalSigns)
        .where(VitalSigns.patient_id == patient_id, VitalSigns.infusion_id.is_(None))
        .order_by(VitalSigns.measured_utc.desc())
        .limit(1)
    ).first()
    # The planning baseline: the latest pain NRS charted outside an infusion (intake, clinic).
    pain = session.scalars(
        current(Score)
        .where(
            Score.patient_id == patient_id,
            Score.instrument == "pain_nrs",
            Score.infusion_id.is_(None),
        )
        .order_by(Score.measured_utc.desc())
        .limit(1)
    ).first()
    return pp.Patient(
        patient_id=patient.mrn,
        pain_nrs=None if pain is None else pain.value,
        age_y=demo.age_y(on),
        sex=str(demo.sex),
        weight_kg=body.weight_kg,
        height_cm=None if heights is None else heights.height_cm,
        pregnant=pregnant,
        diagnoses=tuple(sorted({d.key for d in rows(Diagnosis)})),
        history=tuple(sorted({h.key for h in rows(HistoryItem)})),
        medications=tuple(
            pp.Medication(
                name=m.name, dose_mg_per_day=m.dose_mg_per_day, dose_mcg_per_h=m.dose_mcg_per_h
            )
            for m in rows(Medication)
            if m.active
        ),
        labs=pp.Labs(**labs),
        vitals=pp.Vitals()
        if vitals is None
        else pp.Vitals(
            sbp_mmhg=vitals.sbp_mmhg,
            dbp_mmhg=vitals.dbp_mmhg,
            hr_per_min=vitals.hr_per_min,
            spo2_pct=vitals.spo2_pct,
            rr_per_min=vitals.rr_per_min,
        ),
    )


def patient_inputs(p: pp.Patient) -> dict[str, Any]:
    """The chart values a screening or plan read, as JSON (kept with the result)."""
    return {
        "age_y": p.age_y,
        "sex": p.sex,
        "weight_kg": p.weight_kg,
        "height_cm": p.height_cm,
        "pregnant": p.pregnant,
        "diagnoses": list(p.diagnoses),
        "history": list(p.history),
        "medications": [
            {
                "name": m.name,
                "dose_mg_per_day": m.dose_mg_per_day,
                "dose_mcg_per_h": m.dose_mcg_per_h,
            }
            for m in p.medications
        ],
        "pain_nrs": p.pain_nrs,
        "labs": {k: v for k, v in asdict(p.labs).items() if v is not None},
        "vitals": {k: v for k, v in asdict(p.vitals).items() if v is not None},
    }


def overrides_of(actor: Actor, overrides: Iterable[tuple[str, str]]) -> tuple[Override, ...]:
    """Overrides ``(code, reason)`` by ``actor``; only a physician may override."""
    items = tuple(overrides)
    if items:
        require(actor, Action.OVERRIDE, "only a physician overrides a hard stop")
    return tuple(Override(code=c, clinician=actor.username, reason=r) for c, r in items)


def record_overrides(
    session: Session,
    actor: Actor,
    *,
    patient_id: uuid.UUID,
    overrides: Iterable[Override],
    context: str,
    context_id: uuid.UUID | None,
) -> None:
    """Keep the overrides used with the record they lifted."""
    for o in overrides:
        session.add(
            OverrideRecord(
                patient_id=patient_id,
                code=o.code,
                clinician=o.clinician,
                reason=o.reason,
                context=context,
                context_id=context_id,
                recorded_by_id=user_id(actor),
            )
        )


def run_screening(
    db: Database,
    actor: Actor,
    *,
    patient_id: uuid.UUID,
    protocol: str | None = None,
    overrides: Iterable[tuple[str, str]] = (),
) -> ScreeningRecord:
    """Screen the patient's chart (for ``protocol``), record the result and overrides."""
    with unit_of_work(db, actor) as session:
        require(actor, Action.SCREEN)
        ov = overrides_of(actor, overrides)
        chart = screening_patient(session, patient_id)
        proto = None if protocol is None else get_protocol(protocol)
        limits = None
        if proto is not None:
            limits = load_drug_library().limits_for(proto.setting.value) + proto.limits
        result: Screening = screen(chart, protocol=proto, limits=limits, overrides=ov)
        unused = unused_overrides(result.findings, ov)
        if unused:
            raise InvalidValueError("overrides", "codes of hard stops in this screening", unused)
        row = ScreeningRecord(
            patient_id=patient_id,
            protocol=None if proto is None else proto.name,
            eligible=result.eligible,
            result=result.as_dict(),
            inputs=patient_inputs(chart),
            recorded_by_id=user_id(actor),
        )
        session.add(row)
        session.flush()
        record_overrides(
            session,
            actor,
            patient_id=patient_id,
            overrides=ov,
            context="screening",
            context_id=row.id,
        )
    return row


def latest_screening(session: Session, patient_id: uuid.UUID) -> ScreeningRecord | None:
    """The patient's latest screening."""
    return session.scalars(
        select(ScreeningRecord)
        .where(ScreeningRecord.patient_id == patient_id)
        .order_by(ScreeningRecord.recorded_utc.desc())
        .limit(1)
    ).first()
