"""The code systems and codes ketapain's FHIR resources use, each with its source.

Standard codes come first: LOINC for observations, UCUM for units, RxNorm for drugs,
SNOMED CT and ICD-10-CM for conditions and routes. What has no standard code (the
vocabulary keys, the sedation and discharge scores, the infusion session) uses ketapain's
own CodeSystem, :data:`LOCAL`, served as a resource by :func:`local_code_system`.

>>> LOINC_VITALS["hr_per_min"].code, LOINC_VITALS["hr_per_min"].ucum
('8867-4', '/min')
>>> rxnorm_of("Oxycodone")
'7804'
>>> rxnorm_of("vitamin d") is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ketapain.clinic.instruments import INSTRUMENTS
from ketapain.clinic.patients import LabTest
from ketapain.protocols.interactions import lookup
from ketapain.protocols.vocabulary import DIAGNOSES, HISTORY
from ketapain.sources import Source

__all__ = [
    "CATEGORY",
    "CONDITION_CATEGORY",
    "CPT",
    "ICD10CM",
    "LOCAL",
    "LOINC",
    "LOINC_LABS",
    "LOINC_SCORES",
    "LOINC_VITALS",
    "RXNORM",
    "RXNORM_KETAMINE",
    "SNOMED",
    "SNOMED_ROUTES",
    "UCUM",
    "US_CORE",
    "Code",
    "coding",
    "local_code_system",
    "rxnorm_of",
]

LOINC: Final = "http://loinc.org"
SNOMED: Final = "http://snomed.info/sct"
ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM: Final = "http://unitsofmeasure.org"
CPT: Final = "http://www.ama-assn.org/go/cpt"
# ketapain's own CodeSystem (canonical URL): codes with no standard equivalent.
LOCAL: Final = "https://ketapain.org/fhir/CodeSystem/ketapain"

_TERMINOLOGY: Final = "http://terminology.hl7.org/CodeSystem/"
CATEGORY: Final = _TERMINOLOGY + "observation-category"
CONDITION_CATEGORY: Final = _TERMINOLOGY + "condition-category"
CONDITION_CLINICAL: Final = _TERMINOLOGY + "condition-clinical"
CONDITION_VERIFICATION: Final = _TERMINOLOGY + "condition-ver-status"
ALLERGY_CLINICAL: Final = _TERMINOLOGY + "allergyintolerance-clinical"
ACT_CODE: Final = _TERMINOLOGY + "v3-ActCode"
IDENTIFIER_TYPE: Final = _TERMINOLOGY + "v2-0203"
INTERPRETATION: Final = _TERMINOLOGY + "v3-ObservationInterpretation"
DOSE_RATE_TYPE: Final = _TERMINOLOGY + "dose-rate-type"
AE_SEVERITY: Final = _TERMINOLOGY + "adverse-event-severity"
DISCHARGE_DISPOSITION: Final = _TERMINOLOGY + "discharge-disposition"
MEDREQ_CATEGORY: Final = _TERMINOLOGY + "medicationrequest-category"
US_CORE_PROFILE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/"

US_CORE: Final = Source(
    authors="HL7 International",
    year=2023,
    journal="US Core Implementation Guide 6.1.0 (FHIR R4)",
    title="US Core vital signs, laboratory result and survey observation profiles",
    locator="each vital sign: status, category vital-signs, LOINC code, subject, effective "
    "time, value with UCUM unit; blood pressure as 85354-9 with 8480-6 and 8462-4 "
    "components; pulse oximetry coded 59408-5 and 2708-6",
)
LOINC_SOURCE: Final = Source(
    authors="Regenstrief Institute",
    year=2024,
    journal="LOINC 2.78",
    title="Logical Observation Identifiers Names and Codes",
    locator="codes as listed in the clinical reference, section 5.1",
)
RXNORM_SOURCE: Final = Source(
    authors="US National Library of Medicine",
    year=2024,
    journal="RxNorm",
    title="RxNorm ingredient concepts (RXCUI)",
    locator="ingredients as listed in the clinical reference, section 5.2, and the opioid "
    "ingredients of the CDC opioid-prescribing CQL (cqframework opioid-cds)",
)
FHIR_ROUTES: Final = Source(
    authors="HL7 International",
    year=2019,
    journal="FHIR R4 4.0.1, value set SNOMED CT Route Codes",
    title="Route of administration codes",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Code:
    """A code in a system, with its display and (for a quantity) its UCUM unit."""

    system: str
    code: str
    display: str
    ucum: str | None = None
    profile: str | None = None

    def coding(self) -> dict[str, str]:
        """The FHIR Coding."""
        return coding(self.system, self.code, self.display)


def coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    """A FHIR Coding (display left out when None)."""
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _loinc(code: str, display: str, ucum: str | None = None, profile: str | None = None) -> Code:
    return Code(
        system=LOINC,
        code=code,
        display=display,
        ucum=ucum,
        profile=None if profile is None else US_CORE_PROFILE + profile,
    )


# Vital signs (US Core 6.1 profiles; LOINC and UCUM of the clinical reference, section 5.1).
LOINC_VITALS: Final = {
    "bp": _loinc(
        "85354-9", "Blood pressure panel with all children optional", None, "us-core-blood-pressure"
    ),
    "sbp_mmhg": _loinc("8480-6", "Systolic blood pressure", "mm[Hg]"),
    "dbp_mmhg": _loinc("8462-4", "Diastolic blood pressure", "mm[Hg]"),
    "hr_per_min": _loinc("8867-4", "Heart rate", "/min", "us-core-heart-rate"),
    "rr_per_min": _loinc("9279-1", "Respiratory rate", "/min", "us-core-respiratory-rate"),
    "spo2_pct": _loinc(
        "59408-5",
        "Oxygen saturation in Arterial blood by Pulse oximetry",
        "%",
        "us-core-pulse-oximetry",
    ),
    "spo2_arterial": _loinc("2708-6", "Oxygen saturation in Arterial blood", "%"),
    "temp_c": _loinc("8310-5", "Body temperature", "Cel", "us-core-body-temperature"),
    "weight_kg": _loinc("29463-7", "Body weight", "kg", "us-core-body-weight"),
    "height_cm": _loinc("8302-2", "Body height", "cm", "us-core-body-height"),
}
# Laboratory results (clinical reference, section 5.1): the unit is the one ketapain stores.
LOINC_LABS: Final = {
    LabTest.ALT: _loinc(
        "1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L"
    ),
    LabTest.AST: _loinc(
        "1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L"
    ),
    LabTest.ALP: _loinc(
        "6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma", "U/L"
    ),
    LabTest.BILIRUBIN: _loinc(
        "1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL"
    ),
    LabTest.CREATININE: _loinc("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL"),
    LabTest.PREGNANCY_TEST: _loinc(
        "2106-3", "Choriogonadotropin (pregnancy test) [Presence] in Urine"
    ),
}
# Patient-reported scores with a LOINC code (clinical reference, section 5.1 [S44][S45]);
# the others are coded in the local CodeSystem by the instrument's name.
LOINC_SCORES: Final = {
    "pain_nrs": _loinc(
        "72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported", "{score}"
    ),
    "peg": _loinc("91148-7", "Pain intensity and interference [PEG]", "{score}"),
    "peg.pain": _loinc("75893-8", "Pain intensity average past week [PEG]"),
    "peg.enjoyment": _loinc("91145-3", "Pain interference with enjoyment of life past week [PEG]"),
    "peg.activity": _loinc("91146-1", "Pain interference with general activity past week [PEG]"),
}
# Qualitative results (SNOMED CT qualifier values, as US Core's laboratory examples use).
SNOMED_POSITIVE: Final = Code(system=SNOMED, code="10828004", display="Positive")
SNOMED_NEGATIVE: Final = Code(system=SNOMED, code="260385009", display="Negative")
# Routes (FHIR R4 SNOMED CT Route Codes; IV 47625008 as in the clinical reference, 5.4).
SNOMED_ROUTES: Final = {
    "iv": Code(system=SNOMED, code="47625008", display="Intravenous route"),
    "po": Code(system=SNOMED, code="26643006", display="Oral route"),
    "im": Code(system=SNOMED, code="78421000", display="Intramuscular route"),
    "sc": Code(system=SNOMED, code="34206005", display="Subcutaneous route"),
    "sl": Code(system=SNOMED, code="37839007", display="Sublingual route"),
    "in": Code(system=SNOMED, code="46713006", display="Nasal route"),
}
# RxNorm ingredients (RXCUI): clinical reference section 5.2 (ketamine 6130; opioids of the
# MME table from the cqframework opioid-cds CQL [S39]; rescue drugs).
RXNORM_INGREDIENTS: Final = {
    "ketamine": "6130",
    "codeine": "2670",
    "fentanyl": "4337",
    "hydromorphone": "3423",
    "hydrocodone": "5489",
    "methadone": "6813",
    "morphine": "7052",
    "oxycodone": "7804",
    "oxymorphone": "7814",
    "tramadol": "10689",
    "tapentadol": "787390",
    "buprenorphine": "1819",
    "midazolam": "6960",
    "ondansetron": "26225",
    "clonidine": "2599",
}
RXNORM_KETAMINE: Final = Code(system=RXNORM, code="6130", display="ketamine")
# An infusion session: CPT 96365, IV infusion for therapy, initial hour (clinical
# reference, section 5.3 billing context), beside the local code.
CPT_IV_INFUSION: Final = Code(
    system=CPT, code="96365", display="Intravenous infusion, for therapy, initial, up to 1 hour"
)


def rxnorm_of(name: str) -> str | None:
    """The RxNorm ingredient code of a drug named as ketapain names it (None if unknown)."""
    key = name.strip().lower()
    if key in RXNORM_INGREDIENTS:
        return RXNORM_INGREDIENTS[key]
    item = lookup(name)
    return None if item is None else RXNORM_INGREDIENTS.get(item.name)


def drug_of_rxnorm(code: str) -> str | None:
    """The drug name ketapain uses for an RxNorm ingredient code (None if not listed)."""
    return next((name for name, rxcui in RXNORM_INGREDIENTS.items() if rxcui == code), None)


# The local CodeSystem's concepts: code -> (display, definition).
LOCAL_SESSION: Final = "infusion-session"
LOCAL_OXYGEN: Final = "supplemental-oxygen"


def _local_concepts() -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {
        LOCAL_SESSION: (
            "Ketamine infusion session",
            "One session of a ketamine infusion course: the encounter and the procedure.",
        ),
        LOCAL_OXYGEN: (
            "On supplemental oxygen",
            "Whether the patient breathed supplemental oxygen when the saturation was read.",
        ),
    }
    for term in DIAGNOSES.values():
        out[term.key] = (term.label, "A diagnosis of ketapain's vocabulary.")
    for term in HISTORY.values():
        out[term.key] = (term.label, "A history item of ketapain's vocabulary (screening).")
    for inst in INSTRUMENTS.values():
        if inst.name in LOINC_SCORES:
            continue
        out[inst.name] = (inst.title, f"{inst.low} to {inst.high}; {inst.source.cite()}")
        for item in inst.items:
            out[f"{inst.name}.{item}"] = (
                f"{inst.title}: {item.replace('_', ' ')}",
                f"An item of the {inst.title}, 0 to {inst.item_max}.",
            )
    return out


LOCAL_CONCEPTS: Final = _local_concepts()


def local(code: str) -> dict[str, str]:
    """A Coding in the local CodeSystem (the code must be one of its concepts)."""
    display, _ = LOCAL_CONCEPTS[code]
    return coding(LOCAL, code, display)


def local_code_system() -> dict[str, Any]:
    """ketapain's CodeSystem as a FHIR R4 resource (complete content)."""
    return {
        "resourceType": "CodeSystem",
        "id": "ketapain",
        "url": LOCAL,
        "name": "KetapainLocalCodes",
        "title": "ketapain local codes",
        "status": "active",
        "experimental": False,
        "description": "Codes ketapain uses where no standard code exists: the vocabulary of "
        "diagnoses and history (keys), sedation, dissociation, nausea and discharge scores "
        "and their items, the infusion session, supplemental oxygen.",
        "caseSensitive": True,
        "content": "complete",
        "count": len(LOCAL_CONCEPTS),
        "concept": [
            {"code": code, "display": display, "definition": definition}
            for code, (display, definition) in LOCAL_CONCEPTS.items()
        ],
    }
