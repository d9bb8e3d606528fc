"""Read one FHIR resource of an intake Bundle into the values of a ketapain row.

Each reader returns an :class:`Item` (what to write) or raises :class:`Unreadable`
naming the element at fault; :class:`Unsupported` marks a valid resource ketapain does
not take at intake (an Encounter, ketamine orders, observations made during an infusion).
Units are converted here, once, to the units ketapain stores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any, Final

from ketapain.clinic.db import utc_now
from ketapain.clinic.instruments import INSTRUMENTS
from ketapain.clinic.patients import LAB_UNITS, LabTest
from ketapain.errors import InvalidValueError
from ketapain.fhir.codes import (
    ICD10CM,
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
from ketapain.protocols.interactions import lookup
from ketapain.protocols.vocabulary import resolve_diagnosis, resolve_history
from ketapain.sources import Source

__all__ = [
    "READERS",
    "YOUNG_1987",
    "Context",
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What reading an entry needs beyond the entry: the clinic's MRN system, the MRN to
    give a referred patient who has none of the clinic's, the Bundle's infusion sessions,
    and the clinic's time zone (a date without a time is midnight there)."""

    mrn_system: str
    assign_mrn: str | None = None
    session_encounters: frozenset[str] = frozenset()
    tz: tzinfo = UTC


def when(value: Any, path: str, *, tz: tzinfo = UTC, now: datetime | None = None) -> datetime:
    """A FHIR date or dateTime as an aware UTC time; a date alone reads as midnight in
    the clinic's time zone ``tz``."""
    if not isinstance(value, str):
        raise Unreadable(path, "a date or a date and time with its time zone")
    if len(value) == 10:
        t = datetime.combine(date.fromisoformat(value), time(0), tzinfo=tz)
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


def _effective(resource: Mapping[str, Any], tz: tzinfo) -> datetime:
    if "effectiveDateTime" in resource:
        return when(resource["effectiveDateTime"], "effectiveDateTime", tz=tz)
    if "effectiveInstant" in resource:
        return when(resource["effectiveInstant"], "effectiveInstant", tz=tz)
    period = resource.get("effectivePeriod") or {}
    if period.get("start"):
        return when(period["start"], "effectivePeriod.start", tz=tz)
    raise Unreadable("effective[x]", "when it was measured (effectiveDateTime)")


def _number(quantity: Any, path: str, unit: str) -> tuple[float, str]:
    """A Quantity's value and unit code (a Quantity may lack a value in FHIR: not here)."""
    if not isinstance(quantity, Mapping) or quantity.get("value") is None:
        raise Unreadable(path, f"a value in {unit}")
    try:
        value = float(quantity["value"])
    except (OverflowError, TypeError, ValueError):
        value = math.inf
    if not math.isfinite(value):
        raise Unreadable(f"{path}.value", f"a finite number in {unit}")
    return value, str(quantity.get("code") or quantity.get("unit") or "")


def convert(quantity: Any, unit: str, path: str) -> float:
    """A Quantity's value in ``unit`` (ketapain's unit), from any UCUM unit listed for it."""
    value, code = _number(quantity, path, unit)
    known = _UNITS[unit]
    if code not in known:
        raise Unreadable(f"{path}.code", f"a UCUM unit among {', '.join(known)}, got {code!r}")
    return float(known[code](value))


def _lab_value(test: LabTest, quantity: Any, path: str) -> float:
    unit = LAB_UNITS[test][0]
    value, code = _number(quantity, path, unit)
    if test in _MOLAR and code == "umol/L":
        return value / _MOLAR[test]
    return convert(quantity, unit, path)


def read_patient(resource: Mapping[str, Any], ctx: Context) -> Item:
    """The clinic's MRN, name, birth date, sex.

    Only an identifier in the clinic's own MRN system names a patient of this clinic:
    another hospital's record number (even one typed MR) may equal an MRN here by chance.
    A referred patient without one gets the MRN the intake gives (``assign_mrn``).
    """
    identifiers = [i for i in resource.get("identifier") or [] if i.get("value")]
    mrn = next((i["value"] for i in identifiers if i.get("system") == ctx.mrn_system), None)
    assigned = mrn is None and ctx.assign_mrn is not None
    if assigned:
        mrn = ctx.assign_mrn
    if mrn is None:
        others = [f"{i.get('system') or 'no system'} {i['value']}" for i in identifiers]
        raise Unreadable(
            "identifier",
            f"the clinic's medical record number (an identifier with system "
            f"{ctx.mrn_system}); for a patient referred from elsewhere, give the MRN to "
            f"assign (--mrn){'; found ' + ', '.join(others) if others else ''}",
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
    return Item(kind="patient", values=values, meta={"assigned_mrn": assigned})


def _status_of(resource: Mapping[str, Any], key: str) -> str | None:
    codes = [c.get("code") for c in _codings(resource.get(key))]
    return str(codes[0]) if codes else None


# History in remission that the vocabulary names as such (screening reads these).
_IN_REMISSION: Final = {
    "active_substance_misuse": "substance_misuse_history",
    "alcohol_misuse": "substance_misuse_history",
    "schizophrenia": "schizophrenia",
}
_ACTIVE: Final = (None, "active", "recurrence", "relapse")


def read_condition(resource: Mapping[str, Any]) -> Item:
    """A Condition coded in ketapain's vocabulary: a diagnosis or a history item.

    A diagnosis must be active and confirmed (or without a verification status). A
    history item is taken when active, even unconfirmed (screening errs on the side of
    a contraindication); in remission only where the vocabulary has a word for it
    (substance misuse in remission, schizophrenia not acutely psychotic).
    """
    clinical = _status_of(resource, "clinicalStatus")
    verification = _status_of(resource, "verificationStatus")
    if verification in ("refuted", "entered-in-error"):
        raise Unsupported("verificationStatus", f"a condition not {verification}")
    kind, code, key = _vocabulary_key(resource.get("code"))
    if kind == "diagnosis":
        if clinical not in _ACTIVE:
            raise Unsupported("clinicalStatus", f"an active diagnosis (this one is {clinical})")
        if verification not in (None, "confirmed"):
            raise Unsupported(
                "verificationStatus", f"a confirmed diagnosis (this one is {verification})"
            )
    elif clinical not in _ACTIVE:
        if clinical != "remission" or key not in _IN_REMISSION:
            raise Unsupported(
                "clinicalStatus",
                f"an active history item (this one is {clinical}; in remission only "
                f"{', '.join(sorted(_IN_REMISSION))})",
            )
        key = _IN_REMISSION[key]
        code = key
    return Item(kind=kind, values={"code": code, "key": key}, patient=_subject(resource))


def _vocabulary_key(concept: Any) -> tuple[str, str, str]:
    """(kind, code, key) of the first coding, in order, that the vocabulary knows."""
    # The first coding, in order, that ketapain's vocabulary knows; its code is kept.
    for c in _codings(concept):
        if c.get("system") not in (LOCAL, ICD10CM, SNOMED) or not c.get("code"):
            continue
        code = str(c["code"])
        for kind, resolve in (("diagnosis", resolve_diagnosis), ("history", resolve_history)):
            try:
                return kind, code, resolve(code, "code")
            except InvalidValueError:
                continue
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
    # Every reaction's manifestations, and the worst severity of them; high criticality
    # is kept in the words. Only what the resource says is written (nothing erased).
    reactions = resource.get("reaction") or []
    manifest = [_text(m) for r in reactions for m in r.get("manifestation") or []]
    words = [m for m in dict.fromkeys(manifest) if m and m != "not recorded"]
    if resource.get("criticality") == "high":
        words.append("criticality high")
    severities = [r["severity"] for r in reactions if r.get("severity")]
    values: dict[str, Any] = {"substance": substance}
    if words:
        values["reaction"] = "; ".join(words)
    if severities:
        values["severity"] = max(severities, key=("mild", "moderate", "severe").index)
    return Item(kind="allergy", values=values, patient=_subject(resource, "patient"))


_PER_DAY: Final = {"d": 1.0, "h": 24.0, "min": 1440.0, "wk": 1.0 / 7.0}
# Times a day of the common timing abbreviations (HL7 v3 GTSAbbreviation code system).
_TIMES_A_DAY: Final = {
    "QD": 1.0, "AM": 1.0, "PM": 1.0, "BID": 2.0, "TID": 3.0, "QID": 4.0,
    "Q4H": 6.0, "Q6H": 4.0, "Q8H": 3.0, "Q12H": 2.0,
}  # fmt: skip
_HOW: Final = (
    "a rateQuantity in mg/d, mg/h or ug/h, or a doseQuantity in mg with timing.repeat "
    "(frequency, period in min, h, d or wk) or timing.code (QD, BID, TID, QID, Q4H-Q12H)"
)


def _times_a_day(timing: Mapping[str, Any]) -> float | None:
    repeat = timing.get("repeat") or {}
    if repeat.get("frequency") and repeat.get("periodUnit") in _PER_DAY:
        per_period = float(repeat["frequency"]) / float(repeat.get("period") or 1)
        return per_period * _PER_DAY[repeat["periodUnit"]]
    codes = [c.get("code") for c in _codings(timing.get("code"))]
    return next((_TIMES_A_DAY[c] for c in codes if c in _TIMES_A_DAY), None)


def _daily_dose(dosage: Mapping[str, Any], path: str, patch: bool) -> dict[str, float]:
    """One dosage's daily amount: mg a day, or ug/h for a fentanyl patch."""
    out: dict[str, float] = {}
    for k, dr in enumerate(dosage.get("doseAndRate") or []):
        where = f"{path}.doseAndRate[{k}]"
        if "rateQuantity" in dr:
            value, code = _number(dr["rateQuantity"], f"{where}.rateQuantity", "mg/d")
            if code in ("ug/h", "mcg/h") and patch:
                out["dose_mcg_per_h"] = out.get("dose_mcg_per_h", 0.0) + value
                continue
            per_day = {"mg/d": 1.0, "mg/day": 1.0, "mg/h": 24.0, "ug/h": 0.024, "mcg/h": 0.024}
            if code not in per_day:
                raise Unreadable(f"{where}.rateQuantity.code", f"mg/d, mg/h or ug/h, got {code!r}")
            out["dose_mg_per_day"] = out.get("dose_mg_per_day", 0.0) + value * per_day[code]
        elif "doseQuantity" in dr:
            value, code = _number(dr["doseQuantity"], f"{where}.doseQuantity", "mg")
            if code != "mg":
                raise Unreadable(f"{where}.doseQuantity.code", f"mg, got {code!r}")
            times = _times_a_day(dosage.get("timing") or {})
            if times is None:
                raise Unreadable(f"{path}.timing", f"how often the dose is taken: {_HOW}")
            out["dose_mg_per_day"] = out.get("dose_mg_per_day", 0.0) + value * times
        else:
            raise Unreadable(where, _HOW)
    return out


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
    field = "dosage" if resource["resourceType"] == "MedicationStatement" else "dosageInstruction"
    # Every dosage adds to the day (a morning and an evening dose); a dosage with words only
    # says nothing of the amount, and no amount is written then (nothing erased).
    known = lookup(name)
    patch = "fentanyl" in (name.lower(), known.name if known else "")
    values: dict[str, Any] = {"name": name}
    for k, dosage in enumerate(resource.get(field) or []):
        for key, amount in _daily_dose(dosage, f"{field}[{k}]", patch).items():
            values[key] = values.get(key, 0.0) + amount
    values["active"] = status in ("active", "intended", "on-hold", "draft", "unknown", None)
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


def _read_vital(
    resource: Mapping[str, Any], loinc: list[str], patient: str, tz: tzinfo
) -> Item | None:
    t = _effective(resource, tz)
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
    values: dict[str, Any] = {"test": test, "collected_utc": _effective(resource, tz)}
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


def _read_score(resource: Mapping[str, Any], name: str, patient: str, tz: tzinfo) -> Item:
    inst = INSTRUMENTS[name]
    values: dict[str, Any] = {
        "instrument": name,
        "measured_utc": _effective(resource, tz),
        "items": None,
    }
    total = None
    if "valueInteger" in resource:
        total = _number({"value": resource["valueInteger"]}, "valueInteger", "points")[0]
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
    patient = _subject(resource)
    concept = resource.get("code")
    loinc = _codes(concept, LOINC)
    for code in loinc:
        if code in _LAB_CODES:
            return _read_lab(resource, _LAB_CODES[code], patient, tz)
        if code in _SCORE_CODES:
            return _read_score(resource, _SCORE_CODES[code], patient, tz)
    vital = _read_vital(resource, loinc, patient, tz)
    if vital is not None:
        return vital
    for code in _codes(concept, LOCAL):
        if code in INSTRUMENTS:
            return _read_score(resource, code, patient, tz)
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


def read_resource(resource: Mapping[str, Any], ctx: Context) -> Item:
    """The item one resource asks to write (:class:`Unreadable` / :class:`Unsupported`)."""
    kind = resource["resourceType"]
    if kind == "Patient":
        return read_patient(resource, ctx)
    if kind == "Condition":
        return read_condition(resource)
    if kind == "AllergyIntolerance":
        return read_allergy(resource)
    if kind in ("MedicationStatement", "MedicationRequest"):
        return read_medication(resource)
    if kind == "Observation":
        return read_observation(resource, ctx)
    raise Unsupported("resourceType", not_taken(kind))


def not_taken(kind: object) -> str:
    """Why a resource of type ``kind`` is not imported."""
    return f"one of {', '.join(READERS)}: ketapain takes these at intake, not {kind} resources"
