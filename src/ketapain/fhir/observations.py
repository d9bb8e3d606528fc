"""Observations: vital signs (US Core profiles), body weight and height, laboratory
results and scores (surveys), each built from one charted row.

A set of vital signs charted together becomes one Observation per sign, as US Core
asks; their ids derive from the row's id, so that an export is the same every time.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from ketapain.clinic.instruments import INSTRUMENTS
from ketapain.clinic.observations import Score, VitalSigns
from ketapain.clinic.patients import LAB_UNITS, BodyMeasurement, LabResult, LabTest
from ketapain.fhir._common import child_id, instant, quantity, record_status, ref
from ketapain.fhir.codes import (
    CATEGORY,
    INTERPRETATION,
    LOCAL_OXYGEN,
    LOINC_LABS,
    LOINC_SCORES,
    LOINC_VITALS,
    SNOMED_NEGATIVE,
    SNOMED_POSITIVE,
    Code,
    coding,
    local,
)

__all__ = [
    "DATA_ABSENT",
    "body_observations",
    "lab_observation",
    "score_observation",
    "vital_observations",
]

DATA_ABSENT: Final = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
_CATEGORY_DISPLAY: Final = {
    "vital-signs": "Vital Signs",
    "laboratory": "Laboratory",
    "survey": "Survey",
}
# The vital signs charted as single values (blood pressure and SpO2 are built apart).
_SINGLE: Final = ("hr_per_min", "rr_per_min", "temp_c")


def _observation(
    obs_id: str,
    row: Any,
    category: str,
    code: dict[str, Any],
    *,
    patient_id: uuid.UUID,
    when: str,
    encounter_id: uuid.UUID | None = None,
    profile: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Observation", "id": obs_id}
    if profile:
        out["meta"] = {"profile": [profile]}
    out.update(
        {
            "status": record_status(row),
            "category": [{"coding": [coding(CATEGORY, category, _CATEGORY_DISPLAY[category])]}],
            "code": code,
            "subject": ref("Patient", patient_id),
        }
    )
    if encounter_id is not None:
        out["encounter"] = ref("Encounter", encounter_id)
    out["effectiveDateTime"] = when
    return out


def _concept(code: Code, text: str | None = None) -> dict[str, Any]:
    return {"coding": [code.coding()], "text": text or code.display}


def _component(code: Code, value: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {"code": _concept(code)}
    if value is None:
        out["dataAbsentReason"] = {
            "coding": [coding(DATA_ABSENT, "not-performed", "Not Performed")]
        }
    else:
        out["valueQuantity"] = quantity(value, code.ucum or "1")
    return out


def vital_observations(row: VitalSigns) -> list[dict[str, Any]]:
    """One US Core vital-sign Observation per sign measured in the set ``row``."""

    def vital(part: str, code: Code, concept: dict[str, Any]) -> dict[str, Any]:
        return _observation(
            child_id(row.id, part),
            row,
            "vital-signs",
            concept,
            patient_id=row.patient_id,
            when=instant(row.measured_utc),
            encounter_id=row.infusion_id,
            profile=code.profile,
        )

    out = []
    if row.sbp_mmhg is not None or row.dbp_mmhg is not None:
        bp = LOINC_VITALS["bp"]
        obs = vital("bp", bp, _concept(bp, "Blood pressure"))
        obs["component"] = [
            _component(LOINC_VITALS["sbp_mmhg"], row.sbp_mmhg),
            _component(LOINC_VITALS["dbp_mmhg"], row.dbp_mmhg),
        ]
        out.append(obs)
    for key in _SINGLE:
        value = getattr(row, key)
        if value is None:
            continue
        code = LOINC_VITALS[key]
        obs = vital(key, code, _concept(code))
        obs["valueQuantity"] = quantity(value, code.ucum or "1")
        out.append(obs)
    if row.spo2_pct is not None:
        pulse_ox, arterial = LOINC_VITALS["spo2_pct"], LOINC_VITALS["spo2_arterial"]
        concept = {"coding": [pulse_ox.coding(), arterial.coding()], "text": "SpO2"}
        obs = vital("spo2_pct", pulse_ox, concept)
        obs["valueQuantity"] = quantity(row.spo2_pct, "%")
        obs["component"] = [
            {"code": {"coding": [local(LOCAL_OXYGEN)]}, "valueBoolean": bool(row.on_oxygen)}
        ]
        out.append(obs)
    return out


def body_observations(row: BodyMeasurement) -> list[dict[str, Any]]:
    """Body weight, and height when measured (US Core body weight and height)."""
    out = []
    for key, value in (("weight_kg", row.weight_kg), ("height_cm", row.height_cm)):
        if value is None:
            continue
        code = LOINC_VITALS[key]
        obs = _observation(
            child_id(row.id, key),
            row,
            "vital-signs",
            _concept(code),
            patient_id=row.patient_id,
            when=instant(row.measured_utc),
            profile=code.profile,
        )
        obs["valueQuantity"] = quantity(value, code.ucum or "1")
        out.append(obs)
    return out


def lab_observation(row: LabResult) -> dict[str, Any]:
    """A laboratory result with the reporting lab's range and the H/L flag."""
    test = LabTest(row.test)
    code = LOINC_LABS[test]
    obs = _observation(
        str(row.id),
        row,
        "laboratory",
        _concept(code),
        patient_id=row.patient_id,
        when=instant(row.collected_utc),
        profile="http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab",
    )
    if test == LabTest.PREGNANCY_TEST:
        answer = SNOMED_POSITIVE if row.positive else SNOMED_NEGATIVE
        obs["valueCodeableConcept"] = {"coding": [answer.coding()], "text": answer.display}
        flag = ("POS", "Positive") if row.positive else ("NEG", "Negative")
    else:
        unit = LAB_UNITS[test][0]
        assert row.value is not None  # a numeric test always has a value (LabResult.check)
        obs["valueQuantity"] = quantity(row.value, unit)
        band: dict[str, Any] = {}
        if row.ref_low is not None:
            band["low"] = quantity(row.ref_low, unit)
        if row.ref_high is not None:
            band["high"] = quantity(row.ref_high, unit)
        if band:
            obs["referenceRange"] = [band]
        flag = {"H": ("H", "High"), "L": ("L", "Low")}.get(row.flag or "", ("N", "Normal"))
    obs["interpretation"] = [{"coding": [coding(INTERPRETATION, *flag)]}]
    return obs


def _score_code(name: str, text: str | None = None) -> dict[str, Any]:
    """The code of an instrument (its title as text) or of an item (``"peg.pain"``)."""
    if name in LOINC_SCORES:
        return _concept(LOINC_SCORES[name], text)
    concept: dict[str, Any] = {"coding": [local(name)]}
    if text:
        concept["text"] = text
    return concept


def score_observation(row: Score) -> dict[str, Any]:
    """A score as a survey Observation; an itemised score carries its items as components."""
    inst = INSTRUMENTS[row.instrument]
    obs = _observation(
        str(row.id),
        row,
        "survey",
        _score_code(row.instrument, inst.title),
        patient_id=row.patient_id,
        when=instant(row.measured_utc),
        encounter_id=row.infusion_id,
    )
    if inst.mean_of_items:
        obs["valueQuantity"] = quantity(row.value, "{score}", "score")
    else:
        obs["valueInteger"] = int(row.value)
    if inst.items and row.items:
        obs["component"] = [
            {
                "code": _score_code(f"{row.instrument}.{item}"),
                "valueInteger": int(row.items[item]),
            }
            for item in inst.items
        ]
    return obs
