"""Read one FHIR resource of an intake Bundle into the values of a ketapain row.

Each reader returns an :class:`Item` (what to write) or raises :class:`Unreadable`
naming the element at fault; :class:`Unsupported` marks a valid resource ketapain does
not take at intake (an Encounter, ketamine orders, observations made during an infusion).
Observations are read in :mod:`ketapain.fhir._intake_observations`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, Final

from ketapain.errors import InvalidValueError
from ketapain.fhir._intake_base import (
    Context,
    Item,
    Unreadable,
    Unsupported,
    codes,
    codings,
    number,
    subject,
    text_of,
)
from ketapain.fhir._intake_observations import read_observation
from ketapain.fhir.codes import ICD10CM, LOCAL, RXNORM, SNOMED, drug_of_rxnorm, rxnorm_of
from ketapain.protocols.interactions import lookup
from ketapain.protocols.vocabulary import resolve_diagnosis, resolve_history

__all__ = ["READERS", "not_taken", "read_resource"]


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
    codes = [c.get("code") for c in codings(resource.get(key))]
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
    return Item(kind=kind, values={"code": code, "key": key}, patient=subject(resource))


def _vocabulary_key(concept: Any) -> tuple[str, str, str]:
    """(kind, code, key) of the first coding, in order, that the vocabulary knows."""
    # The first coding, in order, that ketapain's vocabulary knows; its code is kept.
    for c in codings(concept):
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
        f"got {text_of(concept) or 'no code'}",
    )


def read_allergy(resource: Mapping[str, Any]) -> Item:
    """An allergy: the substance, the reaction, its severity."""
    clinical = _status_of(resource, "clinicalStatus")
    if clinical not in (None, "active"):
        raise Unsupported("clinicalStatus", f"an active allergy (this one is {clinical})")
    verification = _status_of(resource, "verificationStatus")
    if verification in ("refuted", "entered-in-error"):
        raise Unsupported("verificationStatus", f"an allergy not {verification}")
    substance = text_of(resource.get("code"))
    if not substance:
        raise Unreadable("code", "the substance (text or a coding with a display)")
    # Every reaction's manifestations, and the worst severity of them; high criticality
    # is kept in the words. Only what the resource says is written (nothing erased).
    reactions = resource.get("reaction") or []
    manifest = [text_of(m) for r in reactions for m in r.get("manifestation") or []]
    words = [m for m in dict.fromkeys(manifest) if m and m != "not recorded"]
    if resource.get("criticality") == "high":
        words.append("criticality high")
    severities = [r["severity"] for r in reactions if r.get("severity")]
    values: dict[str, Any] = {"substance": substance}
    if words:
        values["reaction"] = "; ".join(words)
    if severities:
        values["severity"] = max(severities, key=("mild", "moderate", "severe").index)
    return Item(kind="allergy", values=values, patient=subject(resource, "patient"))


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
    codes = [c.get("code") for c in codings(timing.get("code"))]
    return next((_TIMES_A_DAY[c] for c in codes if c in _TIMES_A_DAY), None)


def _daily_dose(dosage: Mapping[str, Any], path: str, patch: bool) -> dict[str, float]:
    """One dosage's daily amount: mg a day, or ug/h for a fentanyl patch."""
    out: dict[str, float] = {}
    for k, dr in enumerate(dosage.get("doseAndRate") or []):
        where = f"{path}.doseAndRate[{k}]"
        if "rateQuantity" in dr:
            value, code = number(dr["rateQuantity"], f"{where}.rateQuantity", "mg/d")
            if code in ("ug/h", "mcg/h") and patch:
                out["dose_mcg_per_h"] = out.get("dose_mcg_per_h", 0.0) + value
                continue
            per_day = {"mg/d": 1.0, "mg/day": 1.0, "mg/h": 24.0, "ug/h": 0.024, "mcg/h": 0.024}
            if code not in per_day:
                raise Unreadable(f"{where}.rateQuantity.code", f"mg/d, mg/h or ug/h, got {code!r}")
            out["dose_mg_per_day"] = out.get("dose_mg_per_day", 0.0) + value * per_day[code]
        elif "doseQuantity" in dr:
            value, code = number(dr["doseQuantity"], f"{where}.doseQuantity", "mg")
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
    text = text_of(concept)
    ingredient = next((n for n in map(drug_of_rxnorm, codes(concept, RXNORM)) if n), None)
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
    return Item(kind="medication", values=values, patient=subject(resource))


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
