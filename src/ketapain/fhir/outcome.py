"""OperationOutcome: how the FHIR endpoints say what went wrong (or what was done).

>>> operation_outcome([issue("error", "invalid", "status: not a code", "Observation.status")])[
...     "issue"][0]["expression"]
['Observation.status']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

__all__ = ["ISSUE_CODE", "capability_statement", "issue", "operation_outcome"]

# HTTP status -> the R4 IssueType code of the error.
ISSUE_CODE: Final = {
    401: "login",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    422: "invalid",
    503: "transient",
}


def issue(
    severity: str, code: str, diagnostics: str, expression: str | None = None
) -> dict[str, Any]:
    """One OperationOutcome issue (``expression``: the FHIRPath of the element at fault)."""
    out: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        out["expression"] = [expression]
    return out


def operation_outcome(issues: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """An OperationOutcome resource with ``issues``."""
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


def capability_statement(version: str, date: str) -> dict[str, Any]:
    """What ketapain's FHIR endpoint offers (``GET /fhir/metadata``)."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "kind": "instance",
        "software": {"name": "ketapain", "version": version},
        "implementation": {"description": "ketapain clinic records (FHIR R4 endpoint)"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Patient/$everything exports a patient's record; a "
                "transaction Bundle POSTed to the base imports patients at intake, all or "
                "nothing. Both need a ketapain bearer token.",
                "security": {
                    "description": "Bearer token from POST /api/v1/auth/token; the role "
                    "rules of the clinical records apply (read_clinical to export, "
                    "register_patient and chart to import)."
                },
                "resource": [
                    {
                        "type": "Patient",
                        "operation": [
                            {
                                "name": "everything",
                                "definition": "http://hl7.org/fhir/OperationDefinition/"
                                "Patient-everything",
                            }
                        ],
                    },
                    {"type": "CodeSystem", "interaction": [{"code": "read"}]},
                ],
                "interaction": [{"code": "transaction"}],
            }
        ],
    }
