"""The first pass of an intake import: every entry checked (R4, then whether ketapain
can chart it), tied to its Patient by FHIR's rules for references in a Bundle, and the
vital signs of one time grouped into one row. Nothing is written here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

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
from ketapain.errors import InvalidValueError
from ketapain.fhir._intake_base import Context, Item, Unreadable, Unsupported
from ketapain.fhir._intake_read import READERS, not_taken, read_resource
from ketapain.fhir._intake_result import EntryOutcome, EntryProblem
from ketapain.fhir.codes import LOCAL, LOCAL_SESSION
from ketapain.fhir.validation import Problem, check, nesting_problem

__all__ = ["BUNDLE_TYPES", "Checker", "Entry", "Group", "group"]

# Bundles read at intake: a transaction (POST /fhir), or a collection or search result
# (a referral document, another system's $everything).
BUNDLE_TYPES: Final = ("transaction", "collection", "searchset")


@dataclass(slots=True)
class Entry:
    index: int
    resource_type: str | None
    full_url: str | None
    resource: Mapping[str, Any] | None
    item: Item | None = None
    patient: int | None = None  # index of the Patient entry it is for


class Checker:
    """The first pass: every problem of every entry, nothing written."""

    def __init__(self, ctx: Context, skip_unsupported: bool) -> None:
        self.ctx = ctx
        self.skip_unsupported = skip_unsupported
        self.problems: list[EntryProblem] = []
        self.skipped: list[EntryOutcome] = []

    def problem(
        self, e: Entry | None, path: str, message: str, *, in_resource: bool = True
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

    def entries(self, bundle: Any) -> list[Entry]:
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
            entry = Entry(
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

    def read(self, entries: list[Entry]) -> None:
        ctx = replace(self.ctx, session_encounters=frozenset(session_encounters(entries)))
        for e in entries:
            assert e.resource is not None
            if e.resource_type not in READERS:
                # Not read, so not validated: an Encounter of another system is not ours to check.
                self._unsupported(e, Unsupported("resourceType", not_taken(e.resource_type)))
                continue
            too_deep = nesting_problem(e.resource)
            if too_deep is not None:
                # Refused before anything else reads it: what follows recurses.
                self.problem(e, too_deep.path, too_deep.message)
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

    def _unsupported(self, e: Entry, err: Unsupported) -> None:
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

    def _precheck(self, e: Entry, kind: str, values: Mapping[str, Any]) -> None:
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

    def link(self, entries: list[Entry]) -> None:
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


def _addresses(e: Entry) -> list[str]:
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


def session_encounters(entries: list[Entry]) -> set[str]:
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
class Group:
    """Observations charted together (one time) that become one ketapain row."""

    kind: str
    patient: int
    time: datetime
    values: dict[str, Any] = field(default_factory=dict)
    parts: list[tuple[Entry, str]] = field(default_factory=list)
    corrected: str | None = None


def group(checker: Checker, entries: list[Entry]) -> dict[tuple[str, int, datetime], Group]:
    groups: dict[tuple[str, int, datetime], Group] = {}
    for e in entries:
        item = e.item
        if item is None or e.patient is None or item.kind not in ("vitals", "body"):
            continue
        key = (item.kind, e.patient, item.meta["time"])
        g = groups.setdefault(key, Group(kind=item.kind, patient=e.patient, time=key[2]))
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
