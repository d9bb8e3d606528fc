"""The second pass of an intake import: every row written in the caller's transaction,
duplicates found, conflicts with the record collected (the caller then rolls back)."""

from __future__ import annotations

import uuid
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ketapain.clinic._service import user_id
from ketapain.clinic.audit import Actor
from ketapain.clinic.observations import Score, VitalSigns
from ketapain.clinic.patients import (
    Allergy,
    BodyMeasurement,
    Demographics,
    Diagnosis,
    HistoryItem,
    LabResult,
    Medication,
    Patient,
)
from ketapain.clinic.records import Correctable, correct, current
from ketapain.fhir._common import child_id
from ketapain.fhir._intake_check import Entry, Group
from ketapain.fhir._intake_result import EntryOutcome, EntryProblem, ImportResult

__all__ = ["Writer"]

# What each kind of row is exported as (the location of an entry written).
_RESOURCE: Final = {
    "diagnosis": "Condition",
    "history": "Condition",
    "allergy": "AllergyIntolerance",
    "medication": "MedicationStatement",
    "lab": "Observation",
    "body": "Observation",
    "vitals": "Observation",
    "score": "Observation",
}


class Writer:
    """The second pass: one transaction; conflicts are collected, then roll it all back."""

    def __init__(self, session: Session, actor: Actor, bundle_id: str) -> None:
        self.session = session
        self.by = user_id(actor)
        self.reason = f"FHIR import (Bundle {bundle_id})"
        self.conflicts: list[EntryProblem] = []
        self.result = ImportResult()

    def outcome(self, e: Entry, outcome: str, location: str | None, message: str) -> None:
        self.result.outcomes.append(
            EntryOutcome(
                entry=e.index,
                resource_type=e.resource_type or "",
                outcome=outcome,
                location=location,
                message=message,
            )
        )

    def conflict(self, e: Entry, path: str, message: str) -> None:
        self.conflicts.append(
            EntryProblem(
                entry=e.index,
                resource_type=e.resource_type,
                full_url=e.full_url,
                path=path,
                message=message,
            )
        )

    def patient(self, e: Entry) -> uuid.UUID | None:
        assert e.item is not None
        v = e.item.values
        s = self.session
        patient = s.scalars(select(Patient).where(Patient.mrn == v["mrn"])).first()
        if patient is None:
            twin = s.execute(
                current(Demographics)
                .join(Patient, Patient.id == Demographics.patient_id)
                .where(
                    func.lower(Demographics.family_name) == v["family_name"].lower(),
                    func.lower(Demographics.given_name) == v["given_name"].lower(),
                    Demographics.birth_date == v["birth_date"],
                )
                .add_columns(Patient.mrn)
            ).first()
            if twin is not None:
                self.conflict(
                    e,
                    "identifier",
                    f"likely a duplicate: patient MRN {twin[1]} has the same name and birth "
                    f"date; import it under MRN {twin[1]} or correct the Bundle",
                )
                return None
            patient = Patient(mrn=v["mrn"], recorded_by_id=self.by)
            s.add(patient)
            s.flush()
            s.add(
                Demographics(
                    patient_id=patient.id,
                    **{k: v[k] for k in ("family_name", "given_name", "birth_date", "sex")},
                    recorded_by_id=self.by,
                )
            )
            self._done_patient(e, patient, "created", "registered")
            return patient.id
        demo = s.scalars(
            current(Demographics)
            .where(Demographics.patient_id == patient.id)
            .order_by(Demographics.recorded_utc.desc())
            .limit(1)
        ).first()
        # The same MRN with another name, birth date or sex is a wrong number or a wrong
        # patient far more often than news: refused, never corrected from outside.
        differ = [
            f"{k} {getattr(demo, k)} (the Bundle: {v[k]})"
            for k in ("family_name", "given_name", "birth_date", "sex")
            if demo is None or str(getattr(demo, k)).lower() != str(v[k]).lower()
        ]
        if differ:
            self.conflict(
                e,
                "identifier",
                f"MRN {patient.mrn} is another person in the record: {'; '.join(differ)}; "
                "check the MRN, or correct the record's demographics first",
            )
            return None
        self._done_patient(e, patient, "duplicate", "already registered with these demographics")
        return patient.id

    def _done_patient(self, e: Entry, patient: Patient, outcome: str, message: str) -> None:
        self.result.patients.append({"id": str(patient.id), "mrn": patient.mrn, "outcome": outcome})
        self.outcome(e, outcome, f"Patient/{patient.id}", message)

    def _correct(
        self, model: type[Correctable], row: Any, changes: dict[str, Any], kind: str
    ) -> Any:
        return correct(
            self.session,
            model,
            row.id,
            kind=kind,
            reason=self.reason,
            actor_id=self.by,
            changes=changes,
        )

    def _at_source(self, status: str | None) -> str | None:
        """The note of a result that its source reports as corrected (no earlier row here)."""
        return None if status is None else f"{status} at the source ({self.reason})"

    def _first(self, model: Any, patient_id: uuid.UUID, **where: Any) -> Any:
        query = current(model).where(model.patient_id == patient_id)
        for column, value in where.items():
            query = query.where(getattr(model, column) == value)
        return self.session.scalars(query.order_by(model.recorded_utc.desc())).first()

    def item(self, e: Entry, patient_id: uuid.UUID) -> None:
        item = e.item
        assert item is not None
        v = item.values
        kind = item.kind
        if kind in ("diagnosis", "history"):
            model = Diagnosis if kind == "diagnosis" else HistoryItem
            old = self._first(model, patient_id, key=v["key"])
            if old is not None:
                self.outcome(e, "duplicate", f"Condition/{old.id}", f"{v['key']} is on the list")
                return
            row = model(patient_id=patient_id, code=v["code"], key=v["key"], recorded_by_id=self.by)
            self._add(e, row, "Condition/{id}", f"{kind} {v['key']}")
        elif kind == "allergy":
            old = next(
                (
                    a
                    for a in self.session.scalars(
                        current(Allergy).where(Allergy.patient_id == patient_id)
                    )
                    if a.substance.strip().lower() == v["substance"].strip().lower()
                ),
                None,
            )
            self._upsert(e, Allergy, old, patient_id, v, ("reaction", "severity"), "allergy")
        elif kind == "medication":
            same = [
                m
                for m in self.session.scalars(
                    current(Medication).where(Medication.patient_id == patient_id)
                )
                if m.name.strip().lower() == v["name"].strip().lower()
            ]
            old = next((m for m in same if m.active), same[0] if same else None)
            self._upsert(
                e, Medication, old, patient_id, v,
                ("dose_mg_per_day", "dose_mcg_per_h", "active"), "medication",
            )  # fmt: skip
        elif kind == "lab":
            old = self._first(
                LabResult, patient_id, test=v["test"], collected_utc=v["collected_utc"]
            )
            self._timed(
                e, LabResult, old, patient_id, v, ("value", "positive", "ref_low", "ref_high"),
                f"{v['test']} result",
            )  # fmt: skip
        elif kind == "score":
            old = self._first(
                Score,
                patient_id,
                instrument=v["instrument"],
                measured_utc=v["measured_utc"],
                infusion_id=None,
            )
            compared = "value" if v["items"] is None else "items"
            self._timed(e, Score, old, patient_id, v, (compared,), f"{v['instrument']} score")

    def _add(self, e: Entry, row: Any, location: str, what: str) -> None:
        self.session.add(row)
        self.session.flush()
        self.outcome(e, "created", location.format(id=row.id), f"{what} charted")

    def _upsert(
        self,
        e: Entry,
        model: type[Correctable],
        old: Any,
        patient_id: uuid.UUID,
        v: dict[str, Any],
        fields: tuple[str, ...],
        kind: str,
    ) -> None:
        resource = _RESOURCE[kind]
        if old is None:
            row = model(patient_id=patient_id, **v, recorded_by_id=self.by)
            self._add(e, row, f"{resource}/{{id}}", kind)
            return
        # Only what the resource says is compared: an element left out erases nothing.
        changes = {f: v[f] for f in fields if f in v and getattr(old, f) != v[f]}
        if not changes:
            self.outcome(e, "duplicate", f"{resource}/{old.id}", f"{kind} already charted")
            return
        row = self._correct(model, old, changes, kind)
        self.session.flush()
        self.outcome(
            e, "updated", f"{resource}/{row.id}", f"{kind} corrected: {', '.join(changes)}"
        )

    def _timed(
        self,
        e: Entry,
        model: Any,
        old: Any,
        patient_id: uuid.UUID,
        v: dict[str, Any],
        fields: tuple[str, ...],
        what: str,
    ) -> None:
        if old is None:
            assert e.item is not None
            row = model(
                patient_id=patient_id, **v, recorded_by_id=self.by,
                correction_reason=self._at_source(e.item.meta.get("corrected")),
            )  # fmt: skip
            self._add(e, row, "Observation/{id}", what)
            return
        differ = [f for f in fields if v.get(f) is not None and getattr(old, f) != v[f]]
        if differ:
            self.conflict(
                e,
                "value[x]",
                f"a different {what} is charted for that time ({', '.join(differ)}); "
                "ketapain never overwrites a result: correct it in the record",
            )
            return
        self.outcome(e, "duplicate", f"Observation/{old.id}", f"{what} already charted")

    def group(self, g: Group, patient_id: uuid.UUID) -> None:
        model: Any = BodyMeasurement if g.kind == "body" else VitalSigns
        where: dict[str, Any] = {"measured_utc": g.time}
        if g.kind == "vitals":
            where["infusion_id"] = None
        old = self._first(model, patient_id, **where)
        what = "body measurement" if g.kind == "body" else "vital signs"
        if old is None:
            row = model(
                patient_id=patient_id, measured_utc=g.time, **g.values, recorded_by_id=self.by,
                correction_reason=self._at_source(g.corrected),
            )  # fmt: skip
            self.session.add(row)
            self.session.flush()
            for e, part in g.parts:
                self.outcome(
                    e, "created", f"Observation/{child_id(row.id, part)}", f"{what} charted"
                )
            return
        differ = [k for k, value in g.values.items() if getattr(old, k) != value]
        for e, part in g.parts:
            if differ:
                self.conflict(
                    e,
                    "value[x]",
                    f"other {what} are charted for that time ({', '.join(differ)}); "
                    "ketapain never overwrites them: correct them in the record",
                )
            else:
                location = f"Observation/{child_id(old.id, part)}"
                self.outcome(e, "duplicate", location, f"{what} already charted")
