"""FHIR intake safety: what a referral Bundle may and may not do to the record.

The tests build intake Bundles as plain JSON dicts (the builders are small copies of those
of ``tests/fhir/test_intake.py``: pytest imports test files in importlib mode, so they
cannot be shared) and import them with :func:`ketapain.fhir.intake.import_bundle`. They
show that another hospital's number never names a patient here, that an MRN with other
demographics is refused, that an element left out erases nothing, how doses are read,
how references are resolved, and that malformed input is refused, never a crash.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from ketapain.clinic.accounts import User
from ketapain.clinic.audit import Actor, AuditEntry
from ketapain.clinic.db import Database
from ketapain.clinic.observations import Score, VitalSigns
from ketapain.clinic.patients import (
    Allergy,
    BodyMeasurement,
    Demographics,
    Diagnosis,
    HistoryItem,
    LabResult,
    Medication,
    Patient,
)
from ketapain.clinic.registry import patient_record
from ketapain.fhir.intake import FhirImportError, ImportResult, import_bundle

MRN_SYSTEM = "https://ketapain.org/fhir/sid/mrn"
OTHER_SYSTEM = "https://other.example/mrn"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
LOINC = "http://loinc.org"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"

PATIENT_URL = "urn:uuid:5f0c2b8e-8f59-4c1e-9d0a-6c1d2f3e4a5b"
T_VITALS = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
T_LAB = datetime(2025, 2, 27, 7, 15, tzinfo=UTC)
# The fixture patient (tests/conftest.py) as a Bundle would send her.
JANE = {"family": "Doe", "given": ("Jane",), "birth": "1980-05-01", "gender": "female"}


# --- builders (copied in small from tests/fhir/test_intake.py) ----------------------------


def patient_resource(
    mrn: str = "KP-1001",
    *,
    family: str = "Okafor",
    given: tuple[str, ...] = ("Mary", "Ann"),
    birth: str = "1975-03-14",
    gender: str = "female",
    system: str = MRN_SYSTEM,
) -> dict[str, Any]:
    """A Patient with one identifier (the clinic's MRN unless ``system`` says otherwise)."""
    return {
        "resourceType": "Patient",
        "identifier": [{"system": system, "value": mrn}],
        "name": [{"use": "official", "family": family, "given": list(given)}],
        "gender": gender,
        "birthDate": birth,
    }


def jane(mrn: str = "T-0001", **changes: Any) -> dict[str, Any]:
    """The fixture patient Jane Doe under ``mrn``, with ``changes`` to her demographics."""
    return patient_resource(mrn, **(JANE | changes))


def _concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def condition(
    code: str,
    *,
    clinical: str | None = "active",
    verification: str | None = None,
    subject: str = PATIENT_URL,
) -> dict[str, Any]:
    """A Condition coded in ICD-10-CM with its clinical and verification status."""
    out: dict[str, Any] = {
        "resourceType": "Condition",
        "code": _concept(ICD10CM, code),
        "subject": {"reference": subject},
    }
    if clinical:
        out["clinicalStatus"] = _concept(CLINICAL, clinical)
    if verification:
        out["verificationStatus"] = _concept(VERIFICATION, verification)
    return out


def allergy(
    substance: str = "penicillin", *reactions: tuple[str, str | None], **extra: Any
) -> dict[str, Any]:
    """An AllergyIntolerance: substance as text, ``reactions`` as (manifestation, severity)."""
    out: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "code": {"text": substance},
        "patient": {"reference": PATIENT_URL},
        **extra,
    }
    if reactions:
        out["reaction"] = [
            {"manifestation": [{"text": m}]} | ({"severity": s} if s else {}) for m, s in reactions
        ]
    return out


def _quantity(value: float, code: str) -> dict[str, Any]:
    return {"value": value, "unit": code, "system": UCUM, "code": code}


def medication_statement(
    name: str = "oxycodone", rxcui: str | None = "7804", *dosages: dict[str, Any]
) -> dict[str, Any]:
    """An active MedicationStatement with ``dosages`` as given (none: no dosage element)."""
    concept: dict[str, Any] = {"text": name}
    if rxcui:
        concept["coding"] = [{"system": RXNORM, "code": rxcui}]
    out: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "status": "active",
        "medicationCodeableConcept": concept,
        "subject": {"reference": PATIENT_URL},
    }
    if dosages:
        out["dosage"] = list(dosages)
    return out


def rate(value: float, code: str) -> dict[str, Any]:
    """A dosage given as a rate (mg/d, mg/h, ug/h...)."""
    return {"doseAndRate": [{"rateQuantity": _quantity(value, code)}]}


def dose(value: float, code: str = "mg", *, timing: dict[str, Any] | None) -> dict[str, Any]:
    """A dosage given as a dose with its timing (None: no timing element)."""
    out: dict[str, Any] = {"doseAndRate": [{"doseQuantity": _quantity(value, code)}]}
    if timing is not None:
        out["timing"] = timing
    return out


def daily(times: int = 1) -> dict[str, Any]:
    """timing.repeat: ``times`` a day."""
    return {"repeat": {"frequency": times, "period": 1, "periodUnit": "d"}}


def timing_code(code: str) -> dict[str, Any]:
    """timing.code of the HL7 v3 GTSAbbreviation code system (BID, TID...)."""
    return {"code": _concept(GTS, code)}


def observation(
    loinc: str, when: datetime | str, *, subject: str = PATIENT_URL, **value: Any
) -> dict[str, Any]:
    """A final Observation coded in LOINC at ``when``; ``value`` holds value[x] and the rest."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": _concept(LOINC, loinc),
        "subject": {"reference": subject},
        "effectiveDateTime": when if isinstance(when, str) else when.isoformat(),
        **value,
    }


def heart_rate(value: float = 76.0, when: datetime | str = T_VITALS, **kw: Any) -> dict[str, Any]:
    """A heart rate 8867-4 in /min."""
    return observation("8867-4", when, valueQuantity=_quantity(value, "/min"), **kw)


def peg(items: tuple[int, int, int], total: float | None) -> dict[str, Any]:
    """A PEG 91148-7 with its three items as components and ``total`` as valueQuantity."""
    codes = ("75893-8", "91145-3", "91146-1")
    extra = {} if total is None else {"valueQuantity": _quantity(total, "{score}")}
    return observation(
        "91148-7",
        T_VITALS,
        component=[
            {"code": _concept(LOINC, code), "valueInteger": value}
            for code, value in zip(codes, items, strict=True)
        ],
        **extra,
    )


def entry(resource: Any, full_url: str | None = None) -> dict[str, Any]:
    """A transaction entry: POST of the resource; no fullUrl when ``full_url`` is None."""
    out: dict[str, Any] = {} if full_url is None else {"fullUrl": full_url}
    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    return out | {"resource": resource, "request": {"method": "POST", "url": str(kind)}}


def make_bundle(*resources: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    """A Bundle of ``resources``: the first Patient at PATIENT_URL, the rest at urn:uuids."""
    entries = []
    for r in resources:
        first_patient = r["resourceType"] == "Patient" and not any(
            e["fullUrl"] == PATIENT_URL for e in entries
        )
        entries.append(entry(r, PATIENT_URL if first_patient else f"urn:uuid:{uuid.uuid4()}"))
    return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": kind, "entry": entries}


# --- helpers -----------------------------------------------------------------------------


def _import(db: Database, actor: Actor, bundle: Any, **kw: Any) -> ImportResult:
    return import_bundle(db, actor, bundle, mrn_system=MRN_SYSTEM, **kw)


def _rejected(db: Database, actor: Actor, bundle: Any, **kw: Any) -> FhirImportError:
    with pytest.raises(FhirImportError) as err:
        _import(db, actor, bundle, **kw)
    return err.value


TABLES = (
    Patient,
    Demographics,
    Diagnosis,
    HistoryItem,
    Allergy,
    Medication,
    LabResult,
    BodyMeasurement,
    VitalSigns,
    Score,
    AuditEntry,
)


def _counts(db: Database) -> dict[str, int]:
    """Rows per table (the clinical tables and the audit trail)."""
    with db.session() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) or 0 for m in TABLES}


def _record(db: Database, actor: Actor, patient_id: uuid.UUID | str) -> dict[str, Any]:
    with db.session() as session:
        return patient_record(session, actor, uuid.UUID(str(patient_id)))


def _import_or_refusal(db: Database, actor: Actor, bundle: Any) -> ImportResult | FhirImportError:
    """What the import gives: its result, or the FhirImportError that refused the Bundle
    (any other exception propagates: that is a crash)."""
    try:
        return _import(db, actor, bundle)
    except FhirImportError as err:
        return err


def _assert_imported_or_refused(outcome: ImportResult | FhirImportError) -> None:
    if isinstance(outcome, FhirImportError):
        assert outcome.problems
    else:
        assert outcome.patients


def _outcomes(result: ImportResult) -> list[tuple[str, str]]:
    return [(o.resource_type, o.outcome) for o in sorted(result.outcomes, key=lambda o: o.entry)]


def _patient_id(result: ImportResult, mrn: str | None = None) -> str:
    (p,) = [p for p in result.patients if mrn is None or p["mrn"] == mrn]
    return str(p["id"])


def _where(err: FhirImportError) -> list[tuple[int, str]]:
    return [(p.entry, p.path) for p in err.problems]


@pytest.fixture
def lite(_sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    """A fresh SQLite database, for the tests of how entries are read (the first pass,
    before any database access: the same code whatever the dialect)."""
    path = tmp_path / "lite.db"
    shutil.copyfile(_sqlite_template, path)
    database = Database.connect(f"sqlite:///{path}")
    yield database
    database.dispose()


@pytest.fixture
def nurse(lite: Database) -> Actor:
    """The template's nurse in ``lite``."""
    with lite.session() as s:
        user = s.scalars(select(User).where(User.role == "nurse")).one()
        return user.actor()


@pytest.fixture
def sqlite_db(db: Database) -> Database:
    """``db`` on SQLite only (the property tests: the reading code is the same on both)."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("the property tests run on SQLite only")
    return db


# --- 1. another hospital's number never names a patient here -------------------------------


def _other_hospital(resource: dict[str, Any], *, typed_mr: bool) -> dict[str, Any]:
    """``resource`` with its identifier moved to another hospital's system (typed MR)."""
    (ident,) = resource["identifier"]
    ident["system"] = OTHER_SYSTEM
    if typed_mr:
        ident["type"] = {"coding": [{"system": V2_0203, "code": "MR"}]}
    return resource


@pytest.mark.parametrize("typed_mr", [False, True], ids=["plain", "typed-MR"])
def test_another_hospitals_number_equal_to_an_mrn_here_is_refused(db, staff, patient, typed_mr):
    """A Patient whose only identifier is another hospital's "T-0001" (even typed MR in
    v2-0203) is not T-0001 here: the Bundle is refused at identifier, naming --mrn;
    nothing is written and T-0001's demographics are unchanged."""
    before = _counts(db)
    other = _other_hospital(
        patient_resource("T-0001", family="Smith", given=("Anna",), birth="1990-01-01"),
        typed_mr=typed_mr,
    )
    err = _rejected(db, staff["nurse"], make_bundle(other, condition("I10")))
    assert err.conflict is False
    # The Condition's Patient entry is unreadable, so its subject is named too.
    assert _where(err) in ([(0, "identifier")], [(0, "identifier"), (1, "subject")])
    assert "--mrn" in err.problems[0].message
    assert MRN_SYSTEM in err.problems[0].message
    assert f"{OTHER_SYSTEM} T-0001" in err.problems[0].message
    assert _counts(db) == before
    rec = _record(db, staff["nurse"], patient.id)
    assert (rec["family_name"], rec["given_name"], rec["birth_date"], rec["sex"]) == (
        "Doe",
        "Jane",
        "1980-05-01",
        "female",
    )
    assert rec["history"] == []


def test_assign_mrn_registers_the_referred_patient(db, staff, patient):
    """With assign_mrn="KP-9" the same Bundle registers a new patient KP-9 and charts its
    entries on KP-9; T-0001 is untouched."""
    other = _other_hospital(
        patient_resource("T-0001", family="Smith", given=("Anna",), birth="1990-01-01"),
        typed_mr=True,
    )
    result = _import(db, staff["nurse"], make_bundle(other, condition("I10")), assign_mrn="KP-9")
    assert [(p["mrn"], p["outcome"]) for p in result.patients] == [("KP-9", "created")]
    new = _record(db, staff["nurse"], _patient_id(result))
    assert (new["mrn"], new["family_name"], new["given_name"]) == ("KP-9", "Smith", "Anna")
    assert [h["key"] for h in new["history"]] == ["hypertension"]
    old = _record(db, staff["nurse"], patient.id)
    assert (old["mrn"], old["family_name"], old["history"]) == ("T-0001", "Doe", [])


def test_assign_mrn_is_not_used_when_the_clinics_mrn_is_there(lite, nurse):
    """A Patient with the clinic's MRN keeps it: assign_mrn is only for a patient without."""
    result = _import(lite, nurse, make_bundle(patient_resource("KP-77")), assign_mrn="KP-9")
    assert [p["mrn"] for p in result.patients] == ["KP-77"]


def test_assign_mrn_for_two_patients_without_the_clinics_mrn_is_a_problem(lite, nurse):
    """One MRN to assign cannot go to two Patients that lack the clinic's MRN: a problem at
    identifier of the second, naming --mrn; nothing is written."""
    before = _counts(lite)
    first = patient_resource("A-1", system=OTHER_SYSTEM)
    second = patient_resource(
        "A-2", family="Adeyemi", given=("Tunde",), gender="male", system=OTHER_SYSTEM
    )
    err = _rejected(lite, nurse, make_bundle(first, second), assign_mrn="KP-9")
    assert (1, "identifier") in _where(err)
    assert {p.entry for p in err.problems} == {1}
    assert any("--mrn" in p.message for p in err.problems)
    assert _counts(lite) == before


# --- 2. the clinic's MRN with other demographics is refused -------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"birth": "1980-05-02"}, "birth_date"),
        ({"gender": "male"}, "sex"),
        ({"family": "Roe"}, "family_name"),
        ({"given": ("Janet",)}, "given_name"),
    ],
    ids=["birth-date", "sex", "family", "given"],
)
def test_the_clinics_mrn_with_other_demographics_is_a_conflict(db, staff, patient, changes, field):
    """T-0001 with another birth date, sex or name is another person (or a wrong number):
    refused as a conflict at identifier naming the differing field; nothing written, the
    record's demographics unchanged (never corrected from outside)."""
    before = _counts(db)
    err = _rejected(db, staff["nurse"], make_bundle(jane(**changes), condition("I10")))
    assert err.conflict is True
    assert _where(err) == [(0, "identifier")]
    message = err.problems[0].message
    assert field in message
    others = {"birth_date", "sex", "family_name", "given_name"} - {field}
    assert not [f for f in others if f"{f} " in message]
    assert "T-0001" in message
    assert _counts(db) == before
    rec = _record(db, staff["nurse"], patient.id)
    assert (rec["family_name"], rec["given_name"], rec["birth_date"], rec["sex"]) == (
        "Doe",
        "Jane",
        "1980-05-01",
        "female",
    )


def test_the_clinics_mrn_with_the_same_demographics_in_any_case_is_a_duplicate(db, staff, patient):
    """T-0001 as DOE, jane (names compared without case), same birth date and sex: the
    patient is a duplicate, no demographics row is written, the new entry is charted."""
    result = _import(
        db, staff["nurse"], make_bundle(jane(family="DOE", given=("jane",)), condition("I10"))
    )
    assert result.patients == [{"id": str(patient.id), "mrn": "T-0001", "outcome": "duplicate"}]
    assert _outcomes(result) == [("Patient", "duplicate"), ("Condition", "created")]
    assert _counts(db)["demographics"] == 1
    rec = _record(db, staff["nurse"], patient.id)
    assert (rec["family_name"], rec["given_name"]) == ("Doe", "Jane")


# --- 3. an element left out erases nothing -------------------------------------------------


def test_missing_elements_erase_nothing(db, staff):
    """A penicillin allergy (anaphylaxis, severe) and oxycodone 60 mg/d, then the same
    allergy without reaction or severity and oxycodone without dosage: both duplicates,
    not corrections; the record still shows the reaction, the severity and 60 mg/d."""
    first = make_bundle(
        patient_resource(),
        allergy("penicillin", ("anaphylaxis", "severe")),
        medication_statement("oxycodone", "7804", rate(60.0, "mg/d")),
    )
    pid = _patient_id(_import(db, staff["nurse"], first))
    before = _counts(db)
    second = make_bundle(
        patient_resource(), allergy("penicillin"), medication_statement("oxycodone", "7804")
    )
    result = _import(db, staff["nurse"], second)
    assert _outcomes(result) == [
        ("Patient", "duplicate"),
        ("AllergyIntolerance", "duplicate"),
        ("MedicationStatement", "duplicate"),
    ]
    after = _counts(db)
    assert after.pop("audit_entries") == before.pop("audit_entries") + 1
    assert after == before
    rec = _record(db, staff["nurse"], pid)
    assert [(a["substance"], a["reaction"], a["severity"]) for a in rec["allergies"]] == [
        ("penicillin", "anaphylaxis", "severe")
    ]
    (oxy,) = rec["medications"]
    assert oxy["dose_mg_per_day"] == pytest.approx(60.0)
    assert oxy["mme_per_day"] == pytest.approx(90.0)
    assert oxy["active"] is True


def test_a_dosage_of_words_only_erases_no_dose(lite, nurse):
    """Oxycodone 60 mg/d, then oxycodone with a dosage of words only: a duplicate, the dose
    is still 60 mg/d."""
    first = make_bundle(
        patient_resource(), medication_statement("oxycodone", "7804", rate(60, "mg/d"))
    )
    pid = _patient_id(_import(lite, nurse, first))
    again = make_bundle(
        patient_resource(), medication_statement("oxycodone", "7804", {"text": "as before"})
    )
    assert _outcomes(_import(lite, nurse, again))[1] == ("MedicationStatement", "duplicate")
    (oxy,) = _record(lite, nurse, pid)["medications"]
    assert oxy["dose_mg_per_day"] == pytest.approx(60.0)


# --- 4. medication doses -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rxcui", "dosages", "mg_per_day", "mcg_per_h", "mme"),
    [
        ("oxycodone", "7804", [dose(20, timing=daily()), dose(20, timing=daily())], 40, None, 60),
        ("oxycodone", "7804", [dose(30, timing=timing_code("BID"))], 60, None, 90),
        ("oxycodone", "7804", [dose(30, timing=timing_code("TID"))], 90, None, 135),
        ("oxycodone", "7804", [dose(10, timing=daily(4))], 40, None, 60),
        ("morphine", "7052", [rate(1, "mg/h")], 24, None, 24),
        ("morphine", "7052", [rate(500, "ug/h")], 12, None, 12),
        ("fentanyl", "4337", [rate(25, "ug/h")], None, 25, 60),
        ("oxycodone", "7804", [{"text": "one tablet when needed"}], None, None, None),
    ],
    ids=[
        "two-dosages-20mg-daily",
        "30mg-BID",
        "30mg-TID",
        "10mg-4-a-day",
        "morphine-1mg-h",
        "morphine-500ug-h",
        "fentanyl-patch-25ug-h",
        "text-only",
    ],
)
def test_medication_doses_are_read_per_day(
    lite, nurse, name, rxcui, dosages, mg_per_day, mcg_per_h, mme
):
    """Every dosage adds to the day; a dose is multiplied by its timing (repeat or code);
    a rate in mg/h or ug/h is a daily dose, except fentanyl's ug/h (a patch); a dosage of
    words only is imported without a dose. The MME follows (CDC factors)."""
    bundle = make_bundle(patient_resource(), medication_statement(name, rxcui, *dosages))
    pid = _patient_id(_import(lite, nurse, bundle))
    (med,) = _record(lite, nurse, pid)["medications"]
    assert med["name"] == name
    if mg_per_day is None:
        assert med["dose_mg_per_day"] is None
    else:
        assert med["dose_mg_per_day"] == pytest.approx(mg_per_day)
    if mcg_per_h is None:
        assert med["dose_mcg_per_h"] is None
    else:
        assert med["dose_mcg_per_h"] == pytest.approx(mcg_per_h)
    if mme is None:
        assert med["mme_per_day"] is None
    else:
        assert med["mme_per_day"] == pytest.approx(mme)


@pytest.mark.parametrize(
    ("dosage", "path", "words"),
    [
        (dose(30, timing=None), "dosage[0].timing", "how often"),
        (dose(30, timing={"repeat": {"count": 3}}), "dosage[0].timing", "how often"),
        (rate(5, "mL/h"), "dosage[0].doseAndRate[0].rateQuantity.code", "'mL/h'"),
        (dose(30, "g", timing=daily()), "dosage[0].doseAndRate[0].doseQuantity.code", "'g'"),
        (
            {"doseAndRate": [{"rateQuantity": {"unit": "mg/h", "code": "mg/h"}}]},
            "dosage[0].doseAndRate[0].rateQuantity",
            "a value",
        ),
    ],
    ids=["no-timing", "timing-without-frequency", "mL-per-h", "grams", "rate-without-value"],
)
def test_a_dose_that_cannot_be_read_is_a_problem(lite, nurse, dosage, path, words):
    """A dose without its timing, a rate in mL/h, a dose in g, a rate without value: each is
    a problem naming the element; nothing is written."""
    before = _counts(lite)
    bundle = make_bundle(patient_resource(), medication_statement("oxycodone", "7804", dosage))
    err = _rejected(lite, nurse, bundle)
    assert _where(err) == [(1, path)]
    assert words in err.problems[0].message
    assert _counts(lite) == before


# --- 5. references -------------------------------------------------------------------------


def _two_patients(
    urls: tuple[str | None, str | None], obs: dict[str, Any], obs_url: str | None
) -> dict[str, Any]:
    a = patient_resource("KP-A") | {"id": "1"}
    b = patient_resource("KP-B", family="Adeyemi", given=("Tunde",), gender="male") | {"id": "1"}
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [entry(a, urls[0]), entry(b, urls[1]), entry(obs, obs_url)],
    }


def test_a_relative_reference_resolves_against_the_entrys_own_server(lite, nurse):
    """Two Patients with id 1 on two servers (a.example, b.example): an Observation at
    http://a.example/fhir/Observation/9 whose subject is Patient/1 is patient A's (FHIR's
    rule: a relative reference is on the referring entry's server), not B's."""
    bundle = _two_patients(
        ("http://a.example/fhir/Patient/1", "http://b.example/fhir/Patient/1"),
        heart_rate(81.0, subject="Patient/1"),
        "http://a.example/fhir/Observation/9",
    )
    result = _import(lite, nurse, bundle)
    a, b = (_record(lite, nurse, _patient_id(result, mrn)) for mrn in ("KP-A", "KP-B"))
    assert [v["hr_per_min"] for v in a["vitals"]] == [81.0]
    assert b["vitals"] == []


def test_a_relative_reference_against_the_other_server_goes_to_b(lite, nurse):
    """The same Observation at http://b.example/fhir/Observation/9 is patient B's."""
    bundle = _two_patients(
        ("http://a.example/fhir/Patient/1", "http://b.example/fhir/Patient/1"),
        heart_rate(82.0, subject="Patient/1"),
        "http://b.example/fhir/Observation/9",
    )
    result = _import(lite, nurse, bundle)
    a, b = (_record(lite, nurse, _patient_id(result, mrn)) for mrn in ("KP-A", "KP-B"))
    assert a["vitals"] == []
    assert [v["hr_per_min"] for v in b["vitals"]] == [82.0]


@pytest.mark.parametrize("obs_url", [None, "urn:uuid:0b7c6d1e-3f1a-4b8e-9c2d-1a2b3c4d5e6f"])
def test_a_relative_reference_without_a_server_is_unresolvable(lite, nurse, obs_url):
    """Both Patients have absolute fullUrls; an Observation without a server address of its
    own (no fullUrl, or a urn:) cannot resolve Patient/1: a problem at subject."""
    before = _counts(lite)
    bundle = _two_patients(
        ("http://a.example/fhir/Patient/1", "http://b.example/fhir/Patient/1"),
        heart_rate(subject="Patient/1"),
        obs_url,
    )
    err = _rejected(lite, nurse, bundle)
    assert _where(err) == [(2, "subject")]
    assert "'Patient/1'" in err.problems[0].message
    assert _counts(lite) == before


def test_two_patients_with_one_id_and_no_fullurl_make_the_reference_ambiguous(lite, nurse):
    """Two Patient entries without fullUrl, both with id 1: Patient/1 could be either; a
    problem at subject saying so; nothing written."""
    before = _counts(lite)
    bundle = _two_patients((None, None), heart_rate(subject="Patient/1"), None)
    err = _rejected(lite, nurse, bundle)
    assert _where(err) == [(2, "subject")]
    assert "two Patient entries" in err.problems[0].message
    assert _counts(lite) == before


# --- 6. allergy reactions --------------------------------------------------------------------


def test_every_reaction_and_high_criticality_are_kept(lite, nurse):
    """Two reactions (rash mild, anaphylaxis severe) and criticality high: the reaction
    charted names both manifestations and 'criticality high'; the severity is the worst."""
    resource = allergy("penicillin", ("rash", "mild"), ("anaphylaxis", "severe"))
    resource["criticality"] = "high"
    pid = _patient_id(_import(lite, nurse, make_bundle(patient_resource(), resource)))
    (a,) = _record(lite, nurse, pid)["allergies"]
    assert a["severity"] == "severe"
    for words in ("rash", "anaphylaxis", "criticality high"):
        assert words in a["reaction"]


def test_the_worst_severity_wins_in_any_order(lite, nurse):
    """A severe reaction listed first and a mild one after: the severity is still severe."""
    resource = allergy("latex", ("anaphylaxis", "severe"), ("itch", "mild"))
    pid = _patient_id(_import(lite, nurse, make_bundle(patient_resource(), resource)))
    (a,) = _record(lite, nurse, pid)["allergies"]
    assert (a["severity"], a["reaction"]) == ("severe", "anaphylaxis; itch")


# --- 7. malformed input: refused, never a crash ----------------------------------------------


def _encounter(types: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": types,
        "subject": {"reference": PATIENT_URL},
    }


@pytest.mark.parametrize(
    "types",
    [{"coding": []}, ["abc", "def"], [{"coding": "abc"}], [{"coding": ["abc"]}], 7, [None]],
    ids=["dict", "strings", "coding-text", "coding-of-strings", "number", "null"],
)
@pytest.mark.parametrize("skip", [False, True], ids=["refuse", "skip"])
def test_a_malformed_encounter_type_is_no_crash(lite, nurse, types, skip):
    """An Encounter (read only to find ketapain's infusion sessions) whose type is not a
    list of CodeableConcepts: refused, or skipped with skip_unsupported; never a crash."""
    bundle = make_bundle(patient_resource(), _encounter(types), condition("I10"))
    if skip:
        result = _import(lite, nurse, bundle, skip_unsupported=True)
        assert _outcomes(result) == [
            ("Patient", "created"),
            ("Encounter", "skipped"),
            ("Condition", "created"),
        ]
    else:
        err = _rejected(lite, nurse, bundle)
        assert [p.entry for p in err.problems] == [1]


@pytest.mark.parametrize(
    ("resource", "path"),
    [
        (
            medication_statement(
                "morphine", "7052", {"doseAndRate": [{"rateQuantity": {"code": "mg/h"}}]}
            ),
            "dosage[0].doseAndRate[0].rateQuantity",
        ),
        (
            medication_statement(
                "oxycodone",
                "7804",
                {"timing": daily(), "doseAndRate": [{"doseQuantity": {"code": "mg"}}]},
            ),
            "dosage[0].doseAndRate[0].doseQuantity",
        ),
        (
            observation("8867-4", T_VITALS, valueQuantity={"unit": "/min", "code": "/min"}),
            "valueQuantity",
        ),
        (
            observation(
                "1975-2",
                T_LAB,
                valueQuantity={"unit": "umol/L", "code": "umol/L", "system": UCUM},
                referenceRange=[{"high": _quantity(20.52, "umol/L")}],
            ),
            "valueQuantity",
        ),
        (
            observation(
                "1975-2",
                T_LAB,
                valueQuantity=_quantity(34.2, "umol/L"),
                referenceRange=[{"high": {"code": "umol/L", "system": UCUM}}],
            ),
            "referenceRange.high",
        ),
    ],
    ids=[
        "rate-without-value",
        "dose-without-value",
        "heart-rate-without-value",
        "bilirubin-umol-without-value",
        "range-without-value",
    ],
)
def test_a_quantity_without_value_is_a_problem(lite, nurse, resource, path):
    """A Quantity may lack its value in FHIR; ketapain needs one: a problem at the
    element (FhirImportError), never a crash."""
    err = _rejected(lite, nurse, make_bundle(patient_resource(), resource))
    assert _where(err) == [(1, path)]
    assert "a value" in err.problems[0].message


def test_an_entry_that_is_a_string_is_a_problem(lite, nurse):
    """An entry that is a JSON string, not an object: a problem of that entry."""
    bundle = make_bundle(patient_resource())
    bundle["entry"].append("Patient/1")
    err = _rejected(lite, nurse, bundle)
    assert _where(err) == [(1, "resource")]
    assert err.problems[0].expression() == "Bundle.entry[1].resource"


@pytest.mark.parametrize(
    "request_", ["POST", ["POST"], 7, None], ids=["text", "list", "int", "null"]
)
def test_a_request_that_is_not_an_object_is_a_problem(lite, nurse, request_):
    """In a transaction, an entry whose request is not an object: a problem at
    request.method (of the entry, not of its resource)."""
    bundle = make_bundle(patient_resource(), condition("I10"))
    bundle["entry"][1]["request"] = request_
    err = _rejected(lite, nurse, bundle)
    assert _where(err) == [(1, "request.method")]
    assert err.problems[0].expression() == "Bundle.entry[1].request.method"


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": ["Patient"]},
        {"resourceType": {"x": 1}},
        {"resourceType": 7},
        {"resourceType": None},
        {},
    ],
    ids=["list", "object", "number", "null", "none"],
)
def test_an_odd_resource_type_is_a_problem(lite, nurse, resource):
    """A resource whose resourceType is not a text: a problem of its entry, no crash."""
    bundle = make_bundle(patient_resource(), condition("I10"))
    bundle["entry"].append({"fullUrl": "urn:uuid:odd", "resource": resource})
    bundle["type"] = "collection"
    err = _rejected(lite, nurse, bundle)
    assert [p.entry for p in err.problems] == [2]


def test_a_huge_number_in_a_quantity_is_a_problem_not_a_crash(lite, nurse):
    """A heart rate of 10**400/min is JSON and passes the FHIR checks (a decimal has no
    bound); float() of it overflows. It must be refused as a problem (FhirImportError)."""
    huge = json.loads("1" + "0" * 400)
    resource = observation("8867-4", T_VITALS, valueQuantity={"value": huge, "code": "/min"})
    err = _rejected(lite, nurse, make_bundle(patient_resource(), resource))
    assert [p.entry for p in err.problems] == [1]


@pytest.mark.parametrize(
    "where", ["mrn", "family", "allergy"], ids=["in-the-mrn", "in-the-name", "in-an-allergy"]
)
def test_a_nul_character_is_a_problem_not_a_crash_on_postgresql(db, staff, where):
    """A NUL character (JSON \\u0000) passes the FHIR checks; PostgreSQL cannot store it
    in text. The import must refuse it as a problem (or import it), never crash. (SQLite
    stores it, so the test is PostgreSQL's.)"""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite stores a NUL character: the crash is PostgreSQL's")
    resource = patient_resource("KP-NUL\x00" if where == "mrn" else "KP-NUL")
    if where == "family":
        resource["name"][0]["family"] = "Okafor\x00"
    resources = [resource]
    if where == "allergy":
        resources.append(allergy("penicillin\x00", ("rash", "mild")))
    _assert_imported_or_refused(_import_or_refusal(db, staff["nurse"], make_bundle(*resources)))


# Values of random JSON, the element names and codes of the positions fuzzed among them
# (so that some of them pass the FHIR checks and reach ketapain's readers). Integers stay
# within 64 bits (a larger one has a test of its own above).
_WORDS = st.sampled_from(
    [
        "value", "unit", "code", "system", "comparator", "text", "timing", "repeat",
        "frequency", "period", "periodUnit", "coding", "doseAndRate", "doseQuantity",
        "rateQuantity", "manifestation", "severity", "display", "type", "use",
        "mg", "mg/d", "mg/h", "ug/h", "mL/h", "/min", "d", "h", "BID", "severe", "mild",
        "official", "MR", MRN_SYSTEM, UCUM, "",
    ]
)  # fmt: skip
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _WORDS
    | st.text(max_size=8)
)
JSON = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(_WORDS | st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)
# And values shaped like the element (its children, plausible codes), to reach past the
# FHIR checks into the readers more often than random JSON does.
_NUMBERS = st.integers(min_value=-(2**63), max_value=2**63) | st.floats(
    allow_nan=False, allow_infinity=False
)


def _shaped(**children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=children)


_QUANTITY = _shaped(value=_NUMBERS | JSON, unit=_WORDS, code=_WORDS, system=_WORDS)
_CONCEPT = _shaped(
    text=st.text(max_size=8), coding=st.lists(_shaped(system=_WORDS, code=_WORDS), max_size=2)
)
_TIMING = _shaped(
    repeat=_shaped(
        frequency=st.integers(-1, 2**31) | JSON,
        period=_NUMBERS,
        periodUnit=st.sampled_from(["d", "h", "min", "wk", "s", "mo", "a", "x"]),
    ),
    code=_shaped(
        coding=st.lists(
            _shaped(system=st.just(GTS), code=st.sampled_from(["BID", "TID", "Q4H", "XX"])),
            max_size=2,
        )
    ),
)
_SHAPED = {
    "valueQuantity": _QUANTITY,
    "dosage": st.lists(
        _shaped(
            text=st.text(max_size=8),
            timing=_TIMING,
            doseAndRate=st.lists(
                _shaped(doseQuantity=_QUANTITY, rateQuantity=_QUANTITY), max_size=2
            ),
        ),
        max_size=3,
    ),
    "reaction": st.lists(
        _shaped(
            manifestation=st.lists(_CONCEPT, max_size=2),
            severity=st.sampled_from(["mild", "moderate", "severe", "worst"]),
        ),
        max_size=3,
    ),
    "identifier": st.lists(
        _shaped(system=_WORDS, value=st.text(max_size=8), type=_CONCEPT, use=_WORDS), max_size=3
    ),
}
_FUZZED = tuple(_SHAPED)


def _fuzz_bundle(where: str, value: Any) -> dict[str, Any]:
    resources = [
        patient_resource("KP-FUZZ", family="Fuzz"),
        heart_rate(70.0),
        medication_statement("oxycodone", "7804", rate(40.0, "mg/d")),
        allergy("penicillin", ("rash", "mild")),
    ]
    target = {"identifier": 0, "valueQuantity": 1, "dosage": 2, "reaction": 3}[where]
    resources[target][where] = value
    return make_bundle(*resources)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), where=st.sampled_from(_FUZZED))
def test_property_random_json_in_an_element_is_refused_or_imported(sqlite_db, staff, data, where):
    """Random JSON (or a value shaped like the element) in Observation.valueQuantity,
    MedicationStatement.dosage, AllergyIntolerance.reaction or Patient.identifier: the
    import succeeds or raises FhirImportError, never another exception (AttributeError,
    KeyError, TypeError...)."""
    value = data.draw(JSON | _SHAPED[where], label=where)
    _assert_imported_or_refused(
        _import_or_refusal(sqlite_db, staff["nurse"], _fuzz_bundle(where, value))
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    where=st.sampled_from(["entry", "request", "resource", "subject", "effectiveDateTime"]),
    value=JSON,
)
def test_property_random_json_in_the_bundle_structure_is_refused(sqlite_db, staff, where, value):
    """Random JSON as an entry, an entry's request, a resource, a subject or a time: the
    import succeeds or raises FhirImportError, never another exception."""
    bundle = make_bundle(patient_resource("KP-FUZZ2", family="Fuzz"), heart_rate(70.0))
    second = bundle["entry"][1]
    if where == "entry":
        bundle["entry"][1] = value
    elif where in ("request", "resource"):
        second[where] = value
    else:
        second["resource"][where] = value
    _assert_imported_or_refused(_import_or_refusal(sqlite_db, staff["nurse"], bundle))


# --- 8. conditions: diagnoses confirmed, history erring on the side of caution --------------


@pytest.mark.parametrize("verification", ["provisional", "differential", "unconfirmed"])
def test_an_unconfirmed_diagnosis_is_refused_or_skipped(lite, nurse, verification):
    """CRPS (G90.511) that is provisional, differential or unconfirmed is not charted as a
    diagnosis: a problem at verificationStatus; skipped with skip_unsupported."""
    bundle = make_bundle(patient_resource(), condition("G90.511", verification=verification))
    err = _rejected(lite, nurse, bundle)
    assert _where(err) == [(1, "verificationStatus")]
    assert verification in err.problems[0].message
    result = _import(lite, nurse, bundle, skip_unsupported=True)
    assert _outcomes(result) == [("Patient", "created"), ("Condition", "skipped")]
    assert _record(lite, nurse, _patient_id(result))["diagnoses"] == []


def test_a_confirmed_diagnosis_is_charted(lite, nurse):
    """The same CRPS confirmed is charted (the control of the test above)."""
    bundle = make_bundle(patient_resource(), condition("G90.511", verification="confirmed"))
    pid = _patient_id(_import(lite, nurse, bundle))
    assert [d["key"] for d in _record(lite, nurse, pid)["diagnoses"]] == ["crps_1"]


@pytest.mark.parametrize(
    ("code", "clinical", "verification", "key"),
    [
        ("I10", "active", "unconfirmed", "hypertension"),
        ("I10", "active", "provisional", "hypertension"),
        ("F11.20", "remission", None, "substance_misuse_history"),
        ("F10.20", "remission", None, "substance_misuse_history"),
        ("F20.9", "remission", None, "schizophrenia"),
        ("F11.20", "active", None, "active_substance_misuse"),
    ],
    ids=[
        "hypertension-unconfirmed",
        "hypertension-provisional",
        "opioid-use-in-remission",
        "alcohol-use-in-remission",
        "schizophrenia-in-remission",
        "opioid-use-active",
    ],
)
def test_history_items_are_taken_with_caution(lite, nurse, code, clinical, verification, key):
    """A history item is charted even unconfirmed (screening errs on the side of a
    contraindication); in remission as the vocabulary names it: substance misuse history,
    schizophrenia (not acutely psychotic)."""
    bundle = make_bundle(
        patient_resource(), condition(code, clinical=clinical, verification=verification)
    )
    result = _import(lite, nurse, bundle)
    assert _outcomes(result) == [("Patient", "created"), ("Condition", "created")]
    assert [h["key"] for h in _record(lite, nurse, _patient_id(result))["history"]] == [key]


@pytest.mark.parametrize(
    ("code", "clinical"),
    [("Z33.1", "resolved"), ("Z33.1", "remission"), ("I10", "resolved"), ("G90.511", "remission")],
    ids=["pregnancy-resolved", "pregnancy-remission", "hypertension-resolved", "crps-remission"],
)
def test_conditions_no_longer_active_are_refused(lite, nurse, code, clinical):
    """A resolved pregnancy, a resolved hypertension, CRPS in remission: a problem at
    clinicalStatus (the vocabulary has no word for them), nothing written."""
    before = _counts(lite)
    bundle = make_bundle(patient_resource(), condition(code, clinical=clinical))
    err = _rejected(lite, nurse, bundle)
    assert _where(err) == [(1, "clinicalStatus")]
    assert _counts(lite) == before


# --- 9. a date without a time is midnight in the clinic ----------------------------------------


@pytest.mark.parametrize(
    ("day", "tz", "utc"),
    [
        ("2026-03-02", "America/New_York", "2026-03-02T05:00:00+00:00"),
        ("2025-07-01", "America/New_York", "2025-07-01T04:00:00+00:00"),
        ("2026-03-02", "Europe/Amsterdam", "2026-03-01T23:00:00+00:00"),
        ("2026-03-02", "UTC", "2026-03-02T00:00:00+00:00"),
    ],
    ids=["new-york-winter", "new-york-summer", "amsterdam", "utc"],
)
def test_a_date_alone_is_midnight_in_the_clinics_time_zone(lite, nurse, day, tz, utc):
    """effectiveDateTime 2026-03-02 with the clinic in New York is 05:00 UTC (midnight
    EST; 04:00 in summer, EDT); in Amsterdam 23:00 UTC the day before."""
    bundle = make_bundle(patient_resource(), heart_rate(70.0, day))
    pid = _patient_id(_import(lite, nurse, bundle, timezone=tz))
    (vitals,) = _record(lite, nurse, pid)["vitals"]
    assert vitals["measured_utc"] == utc


# --- 10. an itemised score's total must be its items' ------------------------------------------


def test_a_peg_total_that_is_not_the_mean_of_its_items_is_a_problem(lite, nurse):
    """PEG items 7, 6, 6 sent with a total of 9: a problem at value[x] naming the mean."""
    err = _rejected(lite, nurse, make_bundle(patient_resource(), peg((7, 6, 6), 9)))
    assert _where(err) == [(1, "value[x]")]
    assert "6.33333" in err.problems[0].message
    assert "9" in err.problems[0].message


@pytest.mark.parametrize("total", [6.3333, 19 / 3, None], ids=["4-decimals", "exact", "none"])
def test_a_peg_with_the_mean_of_its_items_is_imported(lite, nurse, total):
    """The same PEG with the mean to 4 decimals (or exact, or no total) is imported; the
    score charted is the mean of the items."""
    result = _import(lite, nurse, make_bundle(patient_resource(), peg((7, 6, 6), total)))
    assert _outcomes(result)[1] == ("Observation", "created")
    with lite.session() as s:
        (score,) = s.scalars(select(Score)).all()
    assert score.items == {"pain": 7, "enjoyment": 6, "activity": 6}
    assert score.value == pytest.approx(19 / 3)
