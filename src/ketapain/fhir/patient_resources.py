"""The patient's own resources: Patient, Condition (diagnoses and history),
AllergyIntolerance and MedicationStatement (the medications taken at home, opioids
with their RxNorm code)."""

from __future__ import annotations

from typing import Any, Final

from ketapain.clinic.patients import (
    Allergy,
    Demographics,
    Diagnosis,
    HistoryItem,
    Medication,
    Patient,
)
from ketapain.fhir._common import quantity, ref
from ketapain.fhir.codes import (
    ALLERGY_CLINICAL,
    CONDITION_CATEGORY,
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
    ICD10CM,
    IDENTIFIER_TYPE,
    RXNORM,
    SNOMED,
    coding,
    local,
    rxnorm_of,
)
from ketapain.protocols.vocabulary import DIAGNOSES, HISTORY

__all__ = [
    "allergy_intolerance",
    "condition",
    "medication_statement",
    "patient_resource",
]

_ALLERGY_SEVERITIES: Final = ("mild", "moderate", "severe")


def patient_resource(patient: Patient, demo: Demographics, mrn_system: str) -> dict[str, Any]:
    """The Patient: MRN (identifier type MR), name, sex, birth date."""
    return {
        "resourceType": "Patient",
        "id": str(patient.id),
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [coding(IDENTIFIER_TYPE, "MR", "Medical record number")],
                    "text": "MRN",
                },
                "system": mrn_system,
                "value": patient.mrn,
            }
        ],
        "active": True,
        "name": [{"use": "official", "family": demo.family_name, "given": [demo.given_name]}],
        "gender": str(demo.sex),
        "birthDate": demo.birth_date.isoformat(),
    }


def _codings(row: Diagnosis | HistoryItem) -> list[dict[str, str]]:
    """The code as entered (when a standard code), the vocabulary's others, the key."""
    term = (DIAGNOSES if isinstance(row, Diagnosis) else HISTORY)[row.key]
    entered = row.code.strip()
    out = []
    if entered.isdigit():
        out.append(coding(SNOMED, entered))
    elif entered.upper() != row.key.upper() and any(
        entered.upper().startswith(p) for p in term.icd10cm
    ):
        out.append(coding(ICD10CM, entered.upper()))
    if term.snomed and not any(c["system"] == SNOMED for c in out):
        out.append(coding(SNOMED, term.snomed[0]))
    if term.icd10cm and not any(c["system"] == ICD10CM for c in out):
        out.append(coding(ICD10CM, term.icd10cm[0]))
    out.append(local(row.key))
    return out


def condition(row: Diagnosis | HistoryItem) -> dict[str, Any]:
    """A diagnosis or history item as an active, confirmed problem-list Condition."""
    term = (DIAGNOSES if isinstance(row, Diagnosis) else HISTORY)[row.key]
    return {
        "resourceType": "Condition",
        "id": str(row.id),
        "clinicalStatus": {"coding": [coding(CONDITION_CLINICAL, "active", "Active")]},
        "verificationStatus": {
            "coding": [coding(CONDITION_VERIFICATION, "confirmed", "Confirmed")]
        },
        "category": [
            {"coding": [coding(CONDITION_CATEGORY, "problem-list-item", "Problem List Item")]}
        ],
        "code": {"coding": _codings(row), "text": term.label},
        "subject": ref("Patient", row.patient_id),
    }


def allergy_intolerance(row: Allergy) -> dict[str, Any]:
    """An allergy: the substance as text, the reaction and its severity when known."""
    out: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "id": str(row.id),
        "clinicalStatus": {"coding": [coding(ALLERGY_CLINICAL, "active", "Active")]},
        "code": {"text": row.substance},
        "patient": ref("Patient", row.patient_id),
    }
    reaction: dict[str, Any] = {"manifestation": [{"text": row.reaction or "not recorded"}]}
    if row.severity in _ALLERGY_SEVERITIES:
        reaction["severity"] = row.severity
    if row.reaction or "severity" in reaction:
        out["reaction"] = [reaction]
    return out


def medication_concept(name: str) -> dict[str, Any]:
    """The drug as RxNorm ingredient (when listed) and the name as charted."""
    concept: dict[str, Any] = {"text": name}
    rxcui = rxnorm_of(name)
    if rxcui is not None:
        concept["coding"] = [coding(RXNORM, rxcui)]
    return concept


def medication_statement(row: Medication) -> dict[str, Any]:
    """A medication taken at home: the daily dose (or the patch's rate) as a rate."""
    out: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": str(row.id),
        "status": "active" if row.active else "stopped",
        "medicationCodeableConcept": medication_concept(row.name),
        "subject": ref("Patient", row.patient_id),
    }
    if row.dose_mcg_per_h is not None:
        rate = quantity(row.dose_mcg_per_h, "ug/h", "mcg/h")
        out["dosage"] = [
            {"text": f"{row.dose_mcg_per_h:g} mcg/h", "doseAndRate": [{"rateQuantity": rate}]}
        ]
    elif row.dose_mg_per_day is not None:
        rate = quantity(row.dose_mg_per_day, "mg/d", "mg/day")
        out["dosage"] = [
            {"text": f"{row.dose_mg_per_day:g} mg a day", "doseAndRate": [{"rateQuantity": rate}]}
        ]
    return out
