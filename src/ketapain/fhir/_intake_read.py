"""Read one FHIR resource of an intake Bundle into the values of a ketapain row.

Each reader returns an :class:`Item` (what to write) or raises :class:`Unreadable`
naming the element at fault; :class:`Unsupported` marks a valid resource ketapain does
not take at intake (an Encounter, ketamine orders, observations made during an infusion).
Units are converted here, once, to the units ketapain stores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, Final

from ketapain.clinic.db import utc_now
from ketapain.clinic.instruments import INSTRUMENTS
from ketapain.clinic.patients import LAB_UNITS, LabTest
from ketapain.errors import InvalidValueError
from ketapain.fhir.codes import (
    ICD10CM,
    IDENTIFIER_TYPE,
    LOCAL,
    LOCAL_OXYGEN,
    LOINC,
    LOINC_LABS,
    LOINC_SCORES,
    LOINC_VITALS,
    RXNORM,
    SNOMED,
    SNOMED_NEGATIVE,
    SNOMED_POSITIVE,
    drug_of_rxnorm,
    rxnorm_of,
)
from ketapain.protocols.vocabulary import resolve_diagnosis, resolve_history
from ketapain.sources import Source

__all__ = [
    "READERS",
    "YOUNG_1987",
    "Item",
    "Unreadable",
    "Unsupported",
    "not_taken",
    "read_resource",
]

YOUNG_1987: Final = Source(
    authors="Young DS",
    year=1987,
    journal="Ann Intern Med 106(1):114-129",
    title="Implementation of SI units for clinical laboratory data: style specifications "
    "and conversion tables",
    locator="bilirubin 1 mg/dL = 17.10 umol/L; creatinine 1 mg/dL = 88.40 umol/L",
)


class Unreadable(Exception):  # noqa: N818 - a reader's verdict, turned into a problem
    """The resource is valid FHIR but its content cannot be charted as given."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class Unsupported(Unreadable):
    """A valid resource that ketapain does not take at intake."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """What one entry asks to write: the kind of row, its values, the patient it is for.

    ``part`` names the vital sign (or body measure) an Observation carries, so that
    the signs charted together at one time can be joined into one row.
    """

    kind: str
    values: dict[str, Any]
    patient: str | None = None
    part: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


# UCUM unit -> factor (or function) to ketapain's unit, per quantity.
_POUND_KG: Final = 0.45359237  # the international avoirdupois pound, exactly
_INCH_CM: Final = 2.54  # the international inch, exactly
_UNITS: Final[dict[str, dict[str, Callable[[float], float]]]] = {
    "kg": {"kg": lambda x: x, "g": lambda x: x / 1000.0, "[lb_av]": lambda x: x * _POUND_KG},
    "cm": {"cm": lambda x: x, "m": lambda x: x * 100.0, "[in_i]": lambda x: x * _INCH_CM},
    "mm[Hg]": {"mm[Hg]": lambda x: x},
    "/min": {"/min": lambda x: x, "{beats}/min": lambda x: x, "{breaths}/min": lambda x: x},
    "%": {"%": lambda x: x},
    "Cel": {"Cel": lambda x: x, "[degF]": lambda x: (x - 32.0) * 5.0 / 9.0},
    "U/L": {"U/L": lambda x: x, "[IU]/L": lambda x: x},
    # Molar to mass concentration: Young 1987 (bilirubin 17.10, creatinine 88.40).
    "mg/dL": {"mg/dL": lambda x: x},
    "{score}": {"{score}": lambda x: x, "1": lambda x: x, "{#}": lambda x: x},
}
_MOLAR: Final = {LabTest.BILIRUBIN: 17.10, LabTest.CREATININE: 88.40}
_VITAL_CODES: Final = {
    LOINC_VITALS[k].code: k
    for k in ("hr_per_min", "rr_per_min", "temp_c", "weight_kg", "height_cm")
}
_SPO2_CODES: Final = {LOINC_VITALS["spo2_pct"].code, LOINC_VITALS["spo2_arterial"].code}
_LAB_CODES: Final = {code.code: test for test, code in LOINC_LABS.items()}
_SCORE_CODES: Final = {
    code.code: name for name, code in LOINC_SCORES.items() if name in INSTRUMENTS
}
_ITEM_CODES: Final = {code.code: name for name, code in LOINC_SCORES.items() if "." in name}
_FINAL: Final = ("final", "amended", "corrected")


def _codings(concept: Any) -> list[Mapping[str, Any]]:
    if not isinstance(concept, Mapping):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, Mapping)]


def _codes(concept: Any, system: str) -> list[str]:
    return [
        str(c["code"]) for c in _codings(concept) if c.get("system") == system and c.get("code")
    ]


def _text(concept: Any) -> str | None:
    if not isinstance(concept, Mapping):
        return None
    if concept.get("text"):
        return str(concept["text"])
    return next((str(c["display"]) for c in _codings(concept) if c.get("display")), None)


def _subject(resource: Mapping[str, Any], key: str = "subject") -> str:
    reference = (resource.get(key) or {}).get("reference")
    if not reference:
        raise Unreadable(key, "a reference to the Patient of this Bundle")
    return str(reference)


def when(value: Any, path: str, *, now: datetime | None = None) -> datetime:
    """A FHIR date or dateTime as an aware UTC time; a date alone reads as midnight UTC."""
    if not isinstance(value, str):
        raise Unreadable(path, "a date or a date and time with its time zone")
    if len(value) == 10:
        t = datetime.combine(date.fromisoformat(value), time(0), tzinfo=UTC)
    else:
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise Unreadable(path, f"a date and time, got {value!r}") from None
        if t.tzinfo is None:
            raise Unreadable(path, f"a time with its time zone, got {value!r}")
    t = t.astimezone(UTC)
    if t > (now or utc_now()):
        raise Unreadable(path, f"a time not in the future, got {value}")
    return t


def _effective(resource: Mapping[str, Any]) -> datetime:
    if "effectiveDateTime" in resource:
        return when(resource["effectiveDateTime"], "effectiveDateTime")
    if "effectiveInstant" in resource:
        return when(resource["effectiveInstant"], "effectiveInstant")
    period = resource.get("effectivePeriod") or {}
    if period.get("start"):
        return when(period["start"], "effectivePeriod.start")
    raise Unreadable("effective[x]", "when it was measured (effectiveDateTime)")


def convert(quantity: Any, unit: str, path: str) -> float:
    """A Quantity's value in ``unit`` (ketapain's unit), from any UCUM unit listed for it."""
    if not isinstance(quantity, Mapping) or quantity.get("value") is None:
        raise Unreadable(path, f"a value in {unit}")
    code = quantity.get("code") or quantity.get("unit") or ""
    known = _UNITS[unit]
    if code not in known:
        raise Unreadable(f"{path}.code", f"a UCUM unit among {', '.join(known)}, got {code!r}")
    return float(known[code](float(quantity["value"])))


def _lab_value(test: LabTest, quantity: Any, path: str) -> float:
    unit = LAB_UNITS[test][0]
    code = quantity.get("code") if isinstance(quantity, Mapping) else None
    if test in _MOLAR and code == "umol/L":
        return float(quantity["value"]) / _MOLAR[test]
    return convert(quantity, unit, path)


def read_patient(resource: Mapping[str, Any], mrn_system: str) -> Item:
    """MRN (the clinic's identifier system, else one typed MR), name, birth date, sex."""
    identifiers = [i for i in resource.get("identifier") or [] if i.get("value")]
    mrn = next((i["value"] for i in identifiers if i.get("system") == mrn_system), None)
    if mrn is None:
        typed = [i["value"] for i in identifiers if "MR" in _codes(i.get("type"), IDENTIFIER_TYPE)]
        mrn = typed[0] if len(typed) == 1 else None
    if mrn is None:
        raise Unreadable(
            "identifier", f"the medical record number: system {mrn_system} or one typed MR"
        )
    names = resource.get("name") or []
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else None)
    if not name or not name.get("family") or not name.get("given"):
        raise Unreadable("name", "a family name and a given name")
    if not resource.get("birthDate") or len(str(resource["birthDate"])) != 10:
        raise Unreadable("birthDate", "the full birth date YYYY-MM-DD")
    gender = resource.get("gender")
    if gender not in ("female", "male"):
        raise Unreadable(
            "gender", f"female or male (the sex the dosing covariates use), got {gender!r}"
        )
    values = {
        "mrn": str(mrn).strip(),
        "family_name": str(name["family"]).strip(),
        "given_name": " ".join(str(g) for g in name["given"]).strip(),
        "birth_date": date.fromisoformat(str(resource["birthDate"])),
        "sex": gender,
    }
    return Item(kind="patient", values=values)


def _status_of(resource: Mapping[str, Any], key: str) -> str | None:
    codes = [c.get("code") for c in _codings(resource.get(key))]
    return str(codes[0]) if codes else None


def read_condition(resource: Mapping[str, Any]) -> Item:
    """A Condition coded in ketapain's vocabulary: a diagnosis or a history item."""
    clinical = _status_of(resource, "clinicalStatus")
    if clinical not in (None, "active", "recurrence", "relapse"):
        raise Unsupported("clinicalStatus", f"an active condition (this one is {clinical})")
    verification = _status_of(resource, "verificationStatus")
    if verification in ("refuted", "entered-in-error"):
        raise Unsupported("verificationStatus", f"a condition not {verification}")
    concept = resource.get("code")
    # The first coding, in order, that ketapain's vocabulary knows; its code is kept.
    for c in _codings(concept):
        if c.get("system") not in (LOCAL, ICD10CM, SNOMED) or not c.get("code"):
            continue
        code = str(c["code"])
        for kind, resolve in (("diagnosis", resolve_diagnosis), ("history", resolve_history)):
            try:
                key = resolve(code, "code")
            except InvalidValueError:
                continue
            return Item(kind=kind, values={"code": code, "key": key}, patient=_subject(resource))
    raise Unreadable(
        "code",
        f"a SNOMED CT, ICD-10-CM or ketapain code of ketapain's vocabulary; "
        f"got {_text(concept) or 'no code'}",
    )


def read_allergy(resource: Mapping[str, Any]) -> Item:
    """An allergy: the substance, the reaction, its severity."""
    clinical = _status_of(resource, "clinicalStatus")
    if clinical not in (None, "active"):
        raise Unsupported("clinicalStatus", f"an active allergy (this one is {clinical})")
    verification = _status_of(resource, "verificationStatus")
    if verification in ("refuted", "entered-in-error"):
        raise Unsupported("verificationStatus", f"an allergy not {verification}")
    substance = _text(resource.get("code"))
    if not substance:
        raise Unreadable("code", "the substance (text or a coding with a display)")
    reactions = resource.get("reaction") or []
    reaction = reactions[0] if reactions else {}
    manifest = [_text(m) for m in reaction.get("manifestation") or []]
    text = "; ".join(m for m in manifest if m and m != "not recorded") or None
    values = {
        "substance": substance,
        "reaction": text,
        "severity": reaction.get("severity") or "unknown",
    }
    return Item(kind="allergy", values=values, patient=_subject(resource, "patient"))


_PER_DAY: Final = {"d": 1.0, "h": 24.0, "min": 1440.0, "wk": 1.0 / 7.0}


def _daily_dose(dosage: Mapping[str, Any]) -> dict[str, float]:
    for k, dr in enumerate(dosage.get("doseAndRate") or []):
        rate = dr.get("rateQuantity")
        if rate:
            code = rate.get("code") or rate.get("unit")
            if code in ("mg/d", "mg/day"):
                return {"dose_mg_per_day": float(rate["value"])}
            if code in ("ug/h", "mcg/h"):
                return {"dose_mcg_per_h": float(rate["value"])}
            if code == "mg/h":
                return {"dose_mg_per_day": float(rate["value"]) * 24.0}
            raise Unreadable(
                f"dosage.doseAndRate[{k}].rateQuantity.code", f"mg/d, mg/h or ug/h, got {code!r}"
            )
        dose = dr.get("doseQuantity")
        repeat = (dosage.get("timing") or {}).get("repeat") or {}
        if dose and repeat.get("frequency") and repeat.get("periodUnit") in _PER_DAY:
            code = dose.get("code") or dose.get("unit")
            if code != "mg":
                raise Unreadable(f"dosage.doseAndRate[{k}].doseQuantity.code", f"mg, got {code!r}")
            per_period = float(dose["value"]) * float(repeat["frequency"])
            per_day = per_period / float(repeat.get("period") or 1) * _PER_DAY[repeat["periodUnit"]]
            return {"dose_mg_per_day": per_day}
    return {}


def read_medication(resource: Mapping[str, Any]) -> Item:
    """A medication taken at home (MedicationStatement or MedicationRequest)."""
    status = resource.get("status")
    if status == "entered-in-error":
        raise Unsupported("status", "a medication not entered in error")
    concept = resource.get("medicationCodeableConcept")
    if concept is None:
        raise Unreadable("medicationCodeableConcept", "the drug as a code or text")
    # The name as charted, unless only its RxNorm code says which drug it is.
    text = _text(concept)
    ingredient = next((n for n in map(drug_of_rxnorm, _codes(concept, RXNORM)) if n), None)
    name = ingredient if ingredient and (not text or rxnorm_of(text) is None) else text
    if not name:
        raise Unreadable("medicationCodeableConcept", "an RxNorm ingredient or the drug's name")
    if name.strip().lower() == "ketamine" or "ketamine" in name.lower():
        raise Unsupported(
            "medicationCodeableConcept", "a drug other than ketamine (ketamine is planned here)"
        )
    dosages = (
        resource.get("dosage")
        if resource["resourceType"] == "MedicationStatement"
        else resource.get("dosageInstruction")
    ) or []
    doses = _daily_dose(dosages[0]) if dosages else {}
    active = status in ("active", "intended", "on-hold", "draft", "unknown", None)
    values: dict[str, Any] = {
        "name": name,
        "dose_mg_per_day": None,
        "dose_mcg_per_h": None,
        "active": active,
    }
    values.update(doses)
    return Item(kind="medication", values=values, patient=_subject(resource))


def _observation_status(resource: Mapping[str, Any]) -> None:
    if resource.get("status") not in _FINAL:
        raise Unsupported(
            "status", f"a final result (final, amended, corrected), got {resource.get('status')}"
        )


def _components(
    resource: Mapping[str, Any],
) -> list[tuple[list[str], list[str], Mapping[str, Any]]]:
    return [
        (_codes(c.get("code"), LOINC), _codes(c.get("code"), LOCAL), c)
        for c in resource.get("component") or []
    ]


def _read_vital(resource: Mapping[str, Any], loinc: list[str], patient: str) -> Item | None:
    t = _effective(resource)
    if LOINC_VITALS["bp"].code in loinc:
        values: dict[str, Any] = {}
        for codes, _, comp in _components(resource):
            for key in ("sbp_mmhg", "dbp_mmhg"):
                if LOINC_VITALS[key].code in codes and "valueQuantity" in comp:
                    values[key] = convert(comp["valueQuantity"], "mm[Hg]", f"component.{key}")
        if not values:
            raise Unreadable("component", "a systolic (8480-6) or diastolic (8462-4) value")
        return Item(kind="vitals", values=values, patient=patient, part="bp", meta={"time": t})
    if _SPO2_CODES & set(loinc):
        values = {"spo2_pct": convert(resource.get("valueQuantity"), "%", "valueQuantity")}
        for _, local_codes, comp in _components(resource):
            if LOCAL_OXYGEN in local_codes:
                values["on_oxygen"] = bool(comp.get("valueBoolean"))
        return Item(
            kind="vitals", values=values, patient=patient, part="spo2_pct", meta={"time": t}
        )
    for code in loinc:
        sign = _VITAL_CODES.get(code)
        if sign is None:
            continue
        unit = LOINC_VITALS[sign].ucum or ""
        value = convert(resource.get("valueQuantity"), unit, "valueQuantity")
        kind = "body" if sign in ("weight_kg", "height_cm") else "vitals"
        return Item(kind=kind, values={sign: value}, patient=patient, part=sign, meta={"time": t})
    return None


def _read_lab(resource: Mapping[str, Any], test: LabTest, patient: str) -> Item:
    values: dict[str, Any] = {"test": test, "collected_utc": _effective(resource)}
    if test == LabTest.PREGNANCY_TEST:
        answer = _codes(resource.get("valueCodeableConcept"), SNOMED)
        if "valueBoolean" in resource:
            values["positive"] = bool(resource["valueBoolean"])
        elif SNOMED_POSITIVE.code in answer or SNOMED_NEGATIVE.code in answer:
            values["positive"] = SNOMED_POSITIVE.code in answer
        else:
            raise Unreadable("value[x]", "positive (SNOMED 10828004) or negative (260385009)")
        return Item(kind="lab", values=values, patient=patient)
    values["value"] = _lab_value(test, resource.get("valueQuantity"), "valueQuantity")
    ranges = resource.get("referenceRange") or []
    band = ranges[0] if ranges else {}
    if not band.get("high"):
        unit = LAB_UNITS[test][0]
        raise Unreadable("referenceRange.high", f"the lab's upper reference limit in {unit}")
    values["ref_high"] = _lab_value(test, band["high"], "referenceRange.high")
    values["ref_low"] = (
        _lab_value(test, band["low"], "referenceRange.low") if band.get("low") else None
    )
    return Item(kind="lab", values=values, patient=patient)


def _read_score(resource: Mapping[str, Any], name: str, patient: str) -> Item:
    inst = INSTRUMENTS[name]
    values: dict[str, Any] = {
        "instrument": name,
        "measured_utc": _effective(resource),
        "items": None,
    }
    if inst.items:
        items: dict[str, Any] = {}
        for loinc, local_codes, comp in _components(resource):
            keys = [_ITEM_CODES.get(c) for c in loinc] + list(local_codes)
            key = next((k for k in keys if k and k.startswith(f"{name}.")), None)
            if key is not None:
                items[key.split(".", 1)[1]] = comp.get("valueInteger")
        values["items"] = items
        values["value"] = None
    elif "valueInteger" in resource:
        values["value"] = float(resource["valueInteger"])
    elif "valueQuantity" in resource:
        values["value"] = convert(resource["valueQuantity"], "{score}", "valueQuantity")
    else:
        raise Unreadable("value[x]", f"the {inst.title} score (valueInteger)")
    return Item(kind="score", values=values, patient=patient)


def read_observation(resource: Mapping[str, Any], session_encounters: set[str]) -> Item:
    """A vital sign, body weight or height, laboratory result or score."""
    encounter = (resource.get("encounter") or {}).get("reference")
    if encounter in session_encounters:
        raise Unsupported("encounter", "an observation outside an infusion session")
    _observation_status(resource)
    item = _read_observation(resource)
    # A result corrected at its source says so in ketapain too (Item.meta["corrected"]).
    if resource.get("status") in ("amended", "corrected"):
        item.meta["corrected"] = resource["status"]
    return item


def _read_observation(resource: Mapping[str, Any]) -> Item:
    patient = _subject(resource)
    concept = resource.get("code")
    loinc = _codes(concept, LOINC)
    for code in loinc:
        if code in _LAB_CODES:
            return _read_lab(resource, _LAB_CODES[code], patient)
        if code in _SCORE_CODES:
            return _read_score(resource, _SCORE_CODES[code], patient)
    vital = _read_vital(resource, loinc, patient)
    if vital is not None:
        return vital
    for code in _codes(concept, LOCAL):
        if code in INSTRUMENTS:
            return _read_score(resource, code, patient)
    raise Unsupported(
        "code",
        "a vital sign, laboratory test or score ketapain charts; "
        f"got {_text(concept) or 'no code'}",
    )


READERS: Final = (
    "Patient",
    "Condition",
    "AllergyIntolerance",
    "MedicationStatement",
    "MedicationRequest",
    "Observation",
)


def read_resource(
    resource: Mapping[str, Any], *, mrn_system: str, session_encounters: set[str]
) -> Item:
    """The item one resource asks to write (:class:`Unreadable` / :class:`Unsupported`)."""
    kind = resource["resourceType"]
    if kind == "Patient":
        return read_patient(resource, mrn_system)
    if kind == "Condition":
        return read_condition(resource)
    if kind == "AllergyIntolerance":
        return read_allergy(resource)
    if kind in ("MedicationStatement", "MedicationRequest"):
        return read_medication(resource)
    if kind == "Observation":
        return read_observation(resource, session_encounters)
    raise Unsupported("resourceType", not_taken(kind))


def not_taken(kind: object) -> str:
    """Why a resource of type ``kind`` is not imported."""
    return f"one of {', '.join(READERS)}: ketapain takes these at intake, not {kind} resources"
