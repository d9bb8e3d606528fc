"""What the resource builders share: ids, references, times, quantities, statuses."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from ketapain.fhir.codes import RXNORM_KETAMINE, SNOMED_ROUTES, UCUM

__all__ = [
    "child_id",
    "instant",
    "ketamine",
    "quantity",
    "record_status",
    "ref",
    "rounded",
    "route",
]


def child_id(parent: uuid.UUID, part: str) -> str:
    """A stable id for one of several resources made from one row (a vital sign of a set)."""
    return str(uuid.uuid5(parent, part))


def ref(resource_type: str, resource_id: object, display: str | None = None) -> dict[str, str]:
    """A reference to a resource of the same Bundle (whose fullUrl is ``urn:uuid:<id>``)."""
    out = {"reference": f"urn:uuid:{resource_id}", "type": resource_type}
    if display:
        out["display"] = display
    return out


def instant(t: datetime | date) -> str:
    """A FHIR dateTime (UTC times keep their offset)."""
    return t.isoformat()


def rounded(x: float) -> float:
    """A computed amount to the precision a pump reports (no 17.599999)."""
    return round(float(x), 4)


def quantity(value: float, ucum: str, unit: str | None = None) -> dict[str, Any]:
    """A Quantity in UCUM."""
    return {"value": rounded(value), "unit": unit or ucum, "system": UCUM, "code": ucum}


def record_status(row: Any) -> str:
    """``final``, or ``corrected`` for a row that corrects an earlier entry, or that came
    from another system corrected there (a first row with a correction reason)."""
    corrected = getattr(row, "corrects_id", None) is not None or getattr(
        row, "correction_reason", None
    )
    return "corrected" if corrected else "final"


def route(key: str) -> dict[str, Any]:
    """A route of administration (``iv``, ``po``...) as SNOMED CT."""
    code = SNOMED_ROUTES[key]
    return {"coding": [code.coding()], "text": code.display}


def ketamine(text: str) -> dict[str, Any]:
    """Ketamine (RxNorm 6130), with the words of the form given."""
    return {"coding": [RXNORM_KETAMINE.coding()], "text": text}
