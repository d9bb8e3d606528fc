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

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ketapain.clinic.audit import Actor, add_event, reading, unit_of_work
from ketapain.clinic.db import Database
from ketapain.clinic.permissions import Action, require
from ketapain.fhir._intake_base import Context
from ketapain.fhir._intake_check import BUNDLE_TYPES, Checker, group
from ketapain.fhir._intake_result import EntryOutcome, EntryProblem, FhirImportError, ImportResult
from ketapain.fhir._intake_write import Writer

__all__ = [
    "BUNDLE_TYPES",
    "EntryOutcome",
    "EntryProblem",
    "FhirImportError",
    "ImportResult",
    "import_bundle",
]


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
    checker = Checker(ctx, skip_unsupported)
    entries = checker.entries(bundle)
    checker.read(entries)
    checker.link(entries)
    groups = group(checker, entries)
    if checker.problems:
        raise FhirImportError(checker.problems)
    bundle_id = str(bundle.get("id") or "without id")
    with unit_of_work(db, actor) as session:
        require(actor, Action.REGISTER_PATIENT, "a FHIR import registers patients")
        require(actor, Action.CHART, "a FHIR import charts the history")
        writer = Writer(session, actor, bundle_id)
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
        add_event(
            session,
            actor,
            action="import_fhir",
            entity="patients",
            entity_id=result.patients[0]["id"] if len(result.patients) == 1 else None,
            detail=f"FHIR Bundle {bundle_id}: " + ", ".join(f"{n} {k}" for k, n in counts.items()),
        )
    return result
