"""The FHIR R4 endpoint: ``GET /fhir/Patient/{id}/$everything`` and ``POST /fhir``.

Answers are ``application/fhir+json``; errors are OperationOutcomes (:mod:`ketapain.web.errors`).
The same bearer token and role rules as the rest of the API apply.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from ketapain import __version__
from ketapain.clinic.db import utc_now
from ketapain.errors import InvalidValueError
from ketapain.fhir.codes import local_code_system
from ketapain.fhir.export import export_bundle
from ketapain.fhir.intake import import_bundle
from ketapain.fhir.outcome import capability_statement
from ketapain.web.deps import ActorDep, DbDep, SettingsDep

__all__ = ["FHIR_JSON", "FHIR_PREFIX", "router"]

FHIR_PREFIX: Final = "/fhir"
FHIR_JSON: Final = "application/fhir+json"

router = APIRouter(prefix=FHIR_PREFIX, tags=["fhir"])


def _fhir(content: dict[str, Any], status_code: int = 200) -> JSONResponse:
    return JSONResponse(content, status_code=status_code, media_type=FHIR_JSON)


@router.get("/metadata")
def metadata() -> JSONResponse:
    """The CapabilityStatement: FHIR 4.0.1, Patient/$everything, transactions."""
    return _fhir(capability_statement(__version__, utc_now().date().isoformat()))


@router.get("/CodeSystem/ketapain")
def code_system() -> JSONResponse:
    """ketapain's local CodeSystem: the codes used where no standard code exists."""
    return _fhir(local_code_system())


@router.get("/Patient/{patient_id}/$everything")
def everything(patient_id: str, db: DbDep, actor: ActorDep, settings: SettingsDep) -> JSONResponse:
    """The patient's whole record as a searchset Bundle (``read_clinical``; audited)."""
    bundle = export_bundle(
        db, actor, [patient_id], mrn_system=settings.fhir_mrn_system, timezone=settings.timezone
    )
    return _fhir(bundle)


@router.post("")
def transaction(
    bundle: Annotated[dict[str, Any], Body()],
    db: DbDep,
    actor: ActorDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Import a transaction Bundle at intake, all or nothing (``register_patient`` and
    ``chart``); answers the transaction-response Bundle, one response per entry."""
    if bundle.get("type") != "transaction":
        raise InvalidValueError("type", "transaction (POST /fhir takes a transaction Bundle)",
                                bundle.get("type"))  # fmt: skip
    result = import_bundle(
        db, actor, bundle, mrn_system=settings.fhir_mrn_system, timezone=settings.timezone
    )
    return _fhir(result.response_bundle())
