"""Import a FHIR R4 Bundle at intake: create or update patients, all or nothing.

A referral Bundle carries the Patient and what intake needs: Conditions, allergies,
medications (MedicationStatement or MedicationRequest, opioids by RxNorm) and
Observations (laboratory results, weight and height, vital signs, pain scores).

The import runs in two passes. The first checks every entry (R4 models and schema, then
whether ketapain can chart it) and collects every problem; if there is one, nothing is
written and :class:`FhirImportError` lists them all, by entry. The second writes in one
transaction: a problem found there (a conflict with the record) rolls everything back.

Duplicates are detected, never written twice:

* a patient is matched by the clinic's MRN only (another hospital's number may equal
  one here by chance) and must have the same name, birth date and sex, or the Bundle is
  refused; a new MRN whose name and birth date match another patient's is refused as a
  likely duplicate;
* a condition already on the problem list, an allergy or a medication already charted
  with the same values, a result or measurement at the same time with the same value,
  are reported as duplicates; a medication or allergy with new values is corrected
  (only the elements the resource carries: one left out erases nothing); a result at
  the same time with a different value is a conflict, never overwritten.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ketapain.clinic._service import user_id
from ketapain.clinic.audit import Actor, AuditEntry, reading, unit_of_work
from ketapain.clinic.db import Database
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
from ketapain.clinic.permissions import Action, require
from ketapain.clinic.records import Correctable, correct, current
from ketapain.errors import InvalidValueError, KetapainError
from ketapain.fhir._common import child_id
from ketapain.fhir._intake_read import (
    READERS,
    Context,
    Item,
    Unreadable,
    Unsupported,
    not_taken,
    read_resource,
)
from ketapain.fhir.codes import LOCAL, LOCAL_SESSION
from ketapain.fhir.validation import Problem, check

__all__ = [
    "BUNDLE_TYPES",
    "EntryOutcome",
    "EntryProblem",
    "FhirImportError",
    "ImportResult",
    "import_bundle",
]

# Bundles read at intake: a transaction (POST /fhir), or a collection or search result
# (a referral document, another system's $everything).
BUNDLE_TYPES: Final = ("transaction", "collection", "searchset")
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


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryProblem:
    """Why one entry (``entry`` is its index; -1 for the Bundle itself) cannot be imported."""

    entry: int
    resource_type: str | None
    full_url: str | None
    path: str
    message: str
    # Where ``path`` starts: in the entry's resource, or in the entry itself (request).
    in_resource: bool = True

    def expression(self) -> str:
        """The FHIRPath of the element at fault, from the Bundle."""
        if self.entry < 0:
            base = "Bundle"
        elif self.in_resource:
            base = f"Bundle.entry[{self.entry}].resource"
        else:
            base = f"Bundle.entry[{self.entry}]"
        return f"{base}.{self.path}" if self.path else base

    def __str__(self) -> str:
        where = "Bundle" if self.entry < 0 else f"entry[{self.entry}]"
        what = f" {self.resource_type}" if self.resource_type else ""
        path = f" {self.path}:" if self.path else ""
        return f"{where}{what}{path} {self.message}"

    def as_dict(self) -> dict[str, Any]:
        """The problem as JSON."""
        return {
            "entry": self.entry,
            "resource_type": self.resource_type,
            "full_url": self.full_url,
            "path": self.path,
            "expression": self.expression(),
            "message": self.message,
        }


class FhirImportError(KetapainError):
    """The Bundle was not imported (nothing was written); ``problems`` says why, by entry.

    ``conflict`` is true when the entries are valid but clash with the record.
    """

    def __init__(self, problems: Sequence[EntryProblem], *, conflict: bool = False) -> None:
        self.problems = list(problems)
        self.conflict = conflict
        n = len(self.problems)
        lines = "; ".join(str(p) for p in self.problems[:20])
        more = f"; and {n - 20} more" if n > 20 else ""
        super().__init__(
            f"the Bundle was not imported, nothing was written: {n} "
            f"{'problem' if n == 1 else 'problems'}: {lines}{more}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryOutcome:
    """What became of one entry: created, updated, duplicate (not written) or skipped."""

    entry: int
    resource_type: str
    outcome: str
    location: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The outcome as JSON."""
        return {
            "entry": self.entry,
            "resource_type": self.resource_type,
            "outcome": self.outcome,
            "location": self.location,
            "message": self.message,
        }


@dataclass(slots=True)
class ImportResult:
    """The patients created or updated and the outcome of every entry, in order."""

    patients: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[EntryOutcome] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """How many entries were created, updated, duplicates or skipped."""
        out = {"created": 0, "updated": 0, "duplicate": 0, "skipped": 0}
        for o in self.outcomes:
            out[o.outcome] += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON: patients, counts and every entry's outcome."""
        return {
            "patients": self.patients,
            "counts": self.counts(),
            "entries": [o.as_dict() for o in sorted(self.outcomes, key=lambda o: o.entry)],
        }

    def response_bundle(self) -> dict[str, Any]:
        """The transaction-response Bundle: one response per entry, in the request's order."""
        status = {
            "created": "201 Created",
            "updated": "200 OK",
            "duplicate": "200 OK",
            "skipped": "200 OK",
        }
        entries = []
        for o in sorted(self.outcomes, key=lambda o: o.entry):
            response: dict[str, Any] = {"status": status[o.outcome]}
            if o.location:
                response["location"] = o.location
            response["outcome"] = {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "information",
                        "code": "informational",
                        "diagnostics": f"{o.outcome}: {o.message}",
                    }
                ],
            }
            entries.append({"response": response})
        return {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "type": "transaction-response",
            "entry": entries,
        }


@dataclass(slots=True)
class _Entry:
    index: int
    resource_type: str | None
    full_url: str | None
    resource: Mapping[str, Any] | None
    item: Item | None = None
    patient: int | None = None  # index of the Patient entry it is for


class _Checker:
    """The first pass: every problem of every entry, nothing written."""

    def __init__(self, ctx: Context, skip_unsupported: bool) -> None:
        self.ctx = ctx
        self.skip_unsupported = skip_unsupported
        self.problems: list[EntryProblem] = []
        self.skipped: list[EntryOutcome] = []

    def problem(
        self, e: _Entry | None, path: str, message: str, *, in_resource: bool = True
    ) -> None:
        self.problems.append(
            EntryProblem(
                entry=-1 if e is None else e.index,
                resource_type=None if e is None else e.resource_type,
                full_url=None if e is None else e.full_url,
                path=path,
                message=message,
                in_resource=in_resource,
            )
        )

    def entries(self, bundle: Any) -> list[_Entry]:
        if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
            self.problem(None, "resourceType", "a FHIR Bundle (a JSON object, resourceType Bundle)")
            return []
        if bundle.get("type") not in BUNDLE_TYPES:
            self.problem(
                None, "type", f"one of {', '.join(BUNDLE_TYPES)}, got {bundle.get('type')!r}"
            )
        raw = bundle.get("entry")
        if not isinstance(raw, list) or not raw:
            self.problem(None, "entry", "at least one entry")
            return []
        out = []
        for k, e in enumerate(raw):
            e = e if isinstance(e, Mapping) else {}
            resource = e.get("resource")
            url = e.get("fullUrl")
            entry = _Entry(
                index=k,
                resource_type=resource.get("resourceType")
                if isinstance(resource, Mapping)
                else None,
                full_url=url if isinstance(url, str) else None,
                resource=resource if isinstance(resource, Mapping) else None,
            )
            if entry.resource is None:
                self.problem(entry, "resource", "a resource (a JSON object)", in_resource=False)
                continue
            if bundle.get("type") == "transaction":
                request = e.get("request")
                method = request.get("method") if isinstance(request, Mapping) else None
                if method not in ("POST", "PUT"):
                    self.problem(
                        entry, "request.method", f"POST or PUT, got {method!r}", in_resource=False
                    )
            out.append(entry)
        return out

    def read(self, entries: list[_Entry]) -> None:
        ctx = replace(self.ctx, session_encounters=frozenset(_session_encounters(entries)))
        for e in entries:
            assert e.resource is not None
            if e.resource_type not in READERS:
                # Not read, so not validated: an Encounter of another system is not ours to check.
                self._unsupported(e, Unsupported("resourceType", not_taken(e.resource_type)))
                continue
            problems = check(e.resource)
            for p in problems:
                self.problem(e, p.path, p.message)
            if "\\u0000" in json.dumps(e.resource):
                # Valid JSON, but no database text holds it (PostgreSQL refuses it).
                self.problem(e, "", "text without NUL characters (\\u0000)")
                problems.append(Problem("", "NUL"))
            if problems:
                continue
            try:
                e.item = read_resource(e.resource, ctx)
            except Unsupported as err:
                self._unsupported(e, err)
            except Unreadable as err:
                self.problem(e, err.path, err.message)
            else:
                self._precheck(e, e.item.kind, e.item.values)

    def _unsupported(self, e: _Entry, err: Unsupported) -> None:
        if not self.skip_unsupported:
            self.problem(e, err.path, f"not taken at intake: {err.message}")
            return
        self.skipped.append(
            EntryOutcome(
                entry=e.index,
                resource_type=e.resource_type or "",
                outcome="skipped",
                location=None,
                message=f"not imported: {err.path}: {err.message}",
            )
        )

    def _precheck(self, e: _Entry, kind: str, values: Mapping[str, Any]) -> None:
        """The checks the record applies to a new row (ranges, units), named for the entry."""
        models: dict[str, Any] = {
            "patient": Demographics,
            "diagnosis": Diagnosis,
            "history": HistoryItem,
            "allergy": Allergy,
            "medication": Medication,
            "lab": LabResult,
            "score": Score,
            "vitals": VitalSigns,
            "body": BodyMeasurement,
        }
        model = models[kind]
        columns = set(model.__table__.columns.keys())
        try:
            if kind == "patient":
                Patient(mrn=values["mrn"]).check()
            model(**{k: v for k, v in values.items() if k in columns}).check()
        except InvalidValueError as err:
            self.problem(e, err.field, str(err))

    def link(self, entries: list[_Entry]) -> None:
        """Tie each entry to its Patient entry (FHIR's rules for references in a Bundle);
        one entry per MRN; a reference that could mean two Patients is refused."""
        patients: dict[str, int] = {}
        mrns: dict[str, int] = {}
        assigned = 0
        refused = -2  # a Patient entry with problems of its own (reported there)
        for e in entries:
            if e.resource_type == "Patient" and e.item is None:
                for key in _addresses(e):
                    patients.setdefault(key, refused)
            if e.item is None or e.item.kind != "patient":
                continue
            mrn = e.item.values["mrn"]
            if mrn in mrns:
                self.problem(e, "identifier", f"MRN {mrn} is also entry[{mrns[mrn]}]'s")
            mrns[mrn] = e.index
            assigned += bool(e.item.meta.get("assigned_mrn"))
            if assigned > 1:
                self.problem(e, "identifier", "one MRN to assign (--mrn) for two patients")
            e.patient = e.index
            for key in _addresses(e):
                # Two Patients at one address: any reference to it is ambiguous (-1).
                patients[key] = e.index if patients.get(key, e.index) == e.index else -1
        if entries and not any(e.resource_type == "Patient" for e in entries):
            self.problem(None, "entry", "a Patient entry (the patient the Bundle is about)")
        for e in entries:
            if e.item is None or e.item.kind == "patient":
                continue
            field = "subject" if e.resource_type != "AllergyIntolerance" else "patient"
            target = next(
                (patients[k] for k in _targets(e.item.patient or "", e.full_url) if k in patients),
                None,
            )
            if target == refused:
                target = None
            elif target == -1:
                self.problem(e, field, f"{e.item.patient!r} could be either of two Patient entries")
                target = None
            elif target is None:
                self.problem(
                    e,
                    field,
                    "a reference to a Patient entry of this Bundle (its fullUrl, or Patient/id), "
                    f"got {e.item.patient!r}",
                )
            e.patient = target


def _addresses(e: _Entry) -> list[str]:
    """The references that reach entry ``e``: its fullUrl, and ``Type/id`` when it has no
    server address of its own (no fullUrl, or a ``urn:``)."""
    out = []
    if e.full_url:
        out.append(e.full_url)
    rid = e.resource.get("id") if e.resource else None
    if isinstance(rid, str) and (not e.full_url or e.full_url.startswith("urn:")):
        out.append(f"{e.resource_type}/{rid}")
    return out


def _targets(reference: str, full_url: str | None) -> list[str]:
    """Where a reference points: an absolute one as is; a relative one (``Patient/1``)
    against the base of the referring entry's own server address, if it has one."""
    if reference.startswith("urn:") or "://" in reference:
        return [reference]
    if full_url and full_url.startswith(("http://", "https://")):
        base = full_url.rstrip("/").rsplit("/", 2)[0]
        return [f"{base}/{reference}"]
    return [reference]


def _session_encounters(entries: list[_Entry]) -> set[str]:
    """The references of the Bundle's ketamine infusion sessions (ketapain's own export)."""
    out: set[str] = set()
    for e in entries:
        if e.resource_type != "Encounter" or e.resource is None:
            continue
        # Not validated (an Encounter is not imported): read with care.
        types = e.resource.get("type")
        concepts = [t for t in (types if isinstance(types, list) else []) if isinstance(t, Mapping)]
        codings = [t.get("coding") for t in concepts]
        codes = {
            c.get("code")
            for cs in codings
            if isinstance(cs, list)
            for c in cs
            if isinstance(c, Mapping) and c.get("system") == LOCAL
        }
        if LOCAL_SESSION in codes:
            out.update(_addresses(e))
    return out


@dataclass(slots=True)
class _Group:
    """Observations charted together (one time) that become one ketapain row."""

    kind: str
    patient: int
    time: datetime
    values: dict[str, Any] = field(default_factory=dict)
    parts: list[tuple[_Entry, str]] = field(default_factory=list)
    corrected: str | None = None


def _group(checker: _Checker, entries: list[_Entry]) -> dict[tuple[str, int, datetime], _Group]:
    groups: dict[tuple[str, int, datetime], _Group] = {}
    for e in entries:
        item = e.item
        if item is None or e.patient is None or item.kind not in ("vitals", "body"):
            continue
        key = (item.kind, e.patient, item.meta["time"])
        g = groups.setdefault(key, _Group(kind=item.kind, patient=e.patient, time=key[2]))
        for name, value in item.values.items():
            if name in g.values and g.values[name] != value:
                checker.problem(
                    e, "value[x]", f"{name} is also {g.values[name]:g} at this time in this Bundle"
                )
            g.values[name] = value
        g.parts.append((e, item.part or ""))
        g.corrected = g.corrected or item.meta.get("corrected")
    for g in groups.values():
        if g.kind == "body" and "weight_kg" not in g.values:
            checker.problem(
                g.parts[0][0], "code", "a height needs a body weight measured at the same time"
            )
    return groups


class _Writer:
    """The second pass: one transaction; conflicts are collected, then roll it all back."""

    def __init__(self, session: Session, actor: Actor, bundle_id: str) -> None:
        self.session = session
        self.by = user_id(actor)
        self.reason = f"FHIR import (Bundle {bundle_id})"
        self.conflicts: list[EntryProblem] = []
        self.result = ImportResult()

    def outcome(self, e: _Entry, outcome: str, location: str | None, message: str) -> None:
        self.result.outcomes.append(
            EntryOutcome(
                entry=e.index,
                resource_type=e.resource_type or "",
                outcome=outcome,
                location=location,
                message=message,
            )
        )

    def conflict(self, e: _Entry, path: str, message: str) -> None:
        self.conflicts.append(
            EntryProblem(
                entry=e.index,
                resource_type=e.resource_type,
                full_url=e.full_url,
                path=path,
                message=message,
            )
        )

    def patient(self, e: _Entry) -> uuid.UUID | None:
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

    def _done_patient(self, e: _Entry, patient: Patient, outcome: str, message: str) -> None:
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

    def item(self, e: _Entry, patient_id: uuid.UUID) -> None:
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

    def _add(self, e: _Entry, row: Any, location: str, what: str) -> None:
        self.session.add(row)
        self.session.flush()
        self.outcome(e, "created", location.format(id=row.id), f"{what} charted")

    def _upsert(
        self,
        e: _Entry,
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
        e: _Entry,
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

    def group(self, g: _Group, patient_id: uuid.UUID) -> None:
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


def import_bundle(
    db: Database,
    actor: Actor,
    bundle: Any,
    *,
    mrn_system: str,
    skip_unsupported: bool = False,
    assign_mrn: str | None = None,
    timezone: str = "UTC",
) -> ImportResult:
    """Import ``bundle`` (parsed JSON) all or nothing; :class:`FhirImportError` lists why not.

    Needs ``register_patient`` and ``chart`` (a physician or a nurse). With
    ``skip_unsupported``, valid entries ketapain does not take at intake (an Encounter, a
    ketamine order) are reported as skipped instead of refusing the Bundle.
    ``assign_mrn`` is the MRN for a referred patient who has none in ``mrn_system``;
    ``timezone`` is the clinic's (a date without a time is midnight there).
    """
    # Who may import is settled before the Bundle is read (a refusal is audited).
    with reading(db, actor):
        require(actor, Action.REGISTER_PATIENT, "a FHIR import registers patients")
        require(actor, Action.CHART, "a FHIR import charts the history")
    ctx = Context(
        mrn_system=mrn_system,
        assign_mrn=assign_mrn.strip() if assign_mrn else None,
        tz=ZoneInfo(timezone),
    )
    checker = _Checker(ctx, skip_unsupported)
    entries = checker.entries(bundle)
    checker.read(entries)
    checker.link(entries)
    groups = _group(checker, entries)
    if checker.problems:
        raise FhirImportError(checker.problems)
    bundle_id = str(bundle.get("id") or "without id")
    with unit_of_work(db, actor) as session:
        require(actor, Action.REGISTER_PATIENT, "a FHIR import registers patients")
        require(actor, Action.CHART, "a FHIR import charts the history")
        writer = _Writer(session, actor, bundle_id)
        patient_ids: dict[int, uuid.UUID | None] = {}
        for e in entries:
            if e.item is not None and e.item.kind == "patient":
                patient_ids[e.index] = writer.patient(e)
        done: set[tuple[str, int, datetime]] = set()
        for e in entries:
            item = e.item
            if item is None or item.kind == "patient" or e.patient is None:
                continue
            pid = patient_ids.get(e.patient)
            if pid is None:
                continue
            if item.kind in ("vitals", "body"):
                key = (item.kind, e.patient, item.meta["time"])
                if key not in done:
                    done.add(key)
                    writer.group(groups[key], pid)
                continue
            writer.item(e, pid)
        if writer.conflicts:
            raise FhirImportError(writer.conflicts, conflict=True)
        result = writer.result
        result.outcomes += checker.skipped
        counts = result.counts()
        session.add(
            AuditEntry(
                actor_id=actor.user_id,
                actor_username=actor.username,
                actor_role=actor.role,
                action="import_fhir",
                entity="patients",
                entity_id=result.patients[0]["id"] if len(result.patients) == 1 else None,
                detail=f"FHIR Bundle {bundle_id}: "
                + ", ".join(f"{n} {k}" for k, n in counts.items()),
            )
        )
    return result
