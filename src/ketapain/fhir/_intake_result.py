"""What an intake import reports: a problem per entry at fault, the error that lists
them (nothing written), and the outcome of every entry written or not."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ketapain.errors import KetapainError

__all__ = ["EntryOutcome", "EntryProblem", "FhirImportError", "ImportResult"]


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
