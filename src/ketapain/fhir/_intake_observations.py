"""Read an intake Observation: a vital sign, a body weight or height, a laboratory
result or a score, in the units ketapain stores."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from typing import Any, Final

from ketapain.clinic.instruments import INSTRUMENTS
from ketapain.clinic.patients import LAB_UNITS, LabTest
from ketapain.errors import InvalidValueError
from ketapain.fhir._intake_base import (
    FINAL,
    Context,
    Item,
    Unreadable,
    Unsupported,
    codes,
    convert,
    effective,
    lab_value,
    number,
    subject,
    text_of,
)
from ketapain.fhir.codes import (
    LOCAL,
    LOCAL_OXYGEN,
    LOINC,
    LOINC_LABS,
    LOINC_SCORES,
    LOINC_VITALS,
    SNOMED,
    SNOMED_NEGATIVE,
    SNOMED_POSITIVE,
)

__all__ = ["read_observation"]

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


def _observation_status(resource: Mapping[str, Any]) -> None:
    if resource.get("status") not in FINAL:
        raise Unsupported(
            "status", f"a final result (final, amended, corrected), got {resource.get('status')}"
        )


def _components(
    resource: Mapping[str, Any],
) -> list[tuple[list[str], list[str], Mapping[str, Any]]]:
    return [
        (codes(c.get("code"), LOINC), codes(c.get("code"), LOCAL), c)
        for c in resource.get("component") or []
    ]


def _read_vital(
    resource: Mapping[str, Any], loinc: list[str], patient: str, tz: tzinfo
) -> Item | None:
    t = effective(resource, tz)
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


def _read_lab(resource: Mapping[str, Any], test: LabTest, patient: str, tz: tzinfo) -> Item:
    values: dict[str, Any] = {"test": test, "collected_utc": effective(resource, tz)}
    if test == LabTest.PREGNANCY_TEST:
        answer = codes(resource.get("valueCodeableConcept"), SNOMED)
        if "valueBoolean" in resource:
            values["positive"] = bool(resource["valueBoolean"])
        elif SNOMED_POSITIVE.code in answer or SNOMED_NEGATIVE.code in answer:
            values["positive"] = SNOMED_POSITIVE.code in answer
        else:
            raise Unreadable("value[x]", "positive (SNOMED 10828004) or negative (260385009)")
        return Item(kind="lab", values=values, patient=patient)
    values["value"] = lab_value(test, resource.get("valueQuantity"), "valueQuantity")
    ranges = resource.get("referenceRange") or []
    band = ranges[0] if ranges else {}
    if not band.get("high"):
        unit = LAB_UNITS[test][0]
        raise Unreadable("referenceRange.high", f"the lab's upper reference limit in {unit}")
    values["ref_high"] = lab_value(test, band["high"], "referenceRange.high")
    values["ref_low"] = (
        lab_value(test, band["low"], "referenceRange.low") if band.get("low") else None
    )
    return Item(kind="lab", values=values, patient=patient)


def _read_score(resource: Mapping[str, Any], name: str, patient: str, tz: tzinfo) -> Item:
    inst = INSTRUMENTS[name]
    values: dict[str, Any] = {
        "instrument": name,
        "measured_utc": effective(resource, tz),
        "items": None,
    }
    total = None
    if "valueInteger" in resource:
        total = number({"value": resource["valueInteger"]}, "valueInteger", "points")[0]
    elif "valueQuantity" in resource:
        total = convert(resource["valueQuantity"], "{score}", "valueQuantity")
    if inst.items:
        items: dict[str, Any] = {}
        for loinc, local_codes, comp in _components(resource):
            keys = [_ITEM_CODES.get(c) for c in loinc] + list(local_codes)
            key = next((k for k in keys if k and k.startswith(f"{name}.")), None)
            if key is not None:
                item = key.split(".", 1)[1]
                if item in items and items[item] != comp.get("valueInteger"):
                    raise Unreadable("component", f"{item} once (it is sent twice, unequal)")
                items[item] = comp.get("valueInteger")
        values["items"] = items
        values["value"] = None
        # The sender's total must be the items' (to the 4 decimals a mean is sent with).
        try:
            computed = inst.total(items)
        except InvalidValueError:
            computed = None  # the items' problem is reported by the record's check
        if total is not None and computed is not None and abs(total - computed) > 5e-4:
            what = "mean" if inst.mean_of_items else "sum"
            raise Unreadable("value[x]", f"the {what} of the items ({computed:g}), got {total:g}")
    elif total is not None:
        values["value"] = total
    else:
        raise Unreadable("value[x]", f"the {inst.title} score (valueInteger)")
    return Item(kind="score", values=values, patient=patient)


def read_observation(resource: Mapping[str, Any], ctx: Context) -> Item:
    """A vital sign, body weight or height, laboratory result or score."""
    encounter = (resource.get("encounter") or {}).get("reference")
    if encounter in ctx.session_encounters:
        raise Unsupported("encounter", "an observation outside an infusion session")
    _observation_status(resource)
    item = _read_observation(resource, ctx.tz)
    # A result corrected at its source says so in ketapain too (Item.meta["corrected"]).
    if resource.get("status") in ("amended", "corrected"):
        item.meta["corrected"] = resource["status"]
    return item


def _read_observation(resource: Mapping[str, Any], tz: tzinfo) -> Item:
    patient = subject(resource)
    concept = resource.get("code")
    loinc = codes(concept, LOINC)
    for code in loinc:
        if code in _LAB_CODES:
            return _read_lab(resource, _LAB_CODES[code], patient, tz)
        if code in _SCORE_CODES:
            return _read_score(resource, _SCORE_CODES[code], patient, tz)
    vital = _read_vital(resource, loinc, patient, tz)
    if vital is not None:
        return vital
    for code in codes(concept, LOCAL):
        if code in INSTRUMENTS:
            return _read_score(resource, code, patient, tz)
    raise Unsupported(
        "code",
        "a vital sign, laboratory test or score ketapain charts; "
        f"got {text_of(concept) or 'no code'}",
    )
