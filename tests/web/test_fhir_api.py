"""The FHIR R4 endpoint: ``Patient/$everything``, the transaction ``POST /fhir``, the
CapabilityStatement and the local CodeSystem; the role rules; errors as OperationOutcomes."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ketapain.clinic.db import Database
from ketapain.clinic.patients import Diagnosis, Medication, Patient
from ketapain.config import Settings
from ketapain.fhir.codes import LOCAL
from ketapain.fhir.validation import check
from ketapain.web.app import create_app

API = "/api/v1"
FHIR = "/fhir"
FHIR_JSON = "application/fhir+json"
MRN_SYSTEM = "https://ketapain.org/fhir/sid/mrn"
Headers = dict[str, dict[str, str]]
AuditLog = Callable[..., list[dict[str, Any]]]
PATIENT_URL = "urn:uuid:5d1c2a3e-8f4b-4c6d-9e7f-0a1b2c3d4e5f"
# An hour ago, to the second: every reading of the intake Bundle is charted then.
WHEN = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()


def _entry(resource: dict[str, Any], full_url: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def _bundle(
    mrn: str = "FH-0001",
    family: str = "Smith",
    given: str = "Anna",
    birth_date: str = "1970-01-02",
    pain: int = 7,
) -> dict[str, Any]:
    """An intake transaction: the Patient, fibromyalgia (ICD-10-CM M79.7), 70 kg, pain NRS
    ``pain`` and oxycodone 40 mg/d (RxNorm 7804)."""
    subject = {"reference": PATIENT_URL}
    loinc = "http://loinc.org"
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            _entry(
                {
                    "resourceType": "Patient",
                    "identifier": [{"system": MRN_SYSTEM, "value": mrn}],
                    "name": [{"use": "official", "family": family, "given": [given]}],
                    "birthDate": birth_date,
                    "gender": "female",
                },
                PATIENT_URL,
            ),
            _entry(
                {
                    "resourceType": "Condition",
                    "subject": subject,
                    "code": {
                        "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M79.7"}]
                    },
                }
            ),
            _entry(
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "subject": subject,
                    "effectiveDateTime": WHEN,
                    "code": {"coding": [{"system": loinc, "code": "29463-7"}]},
                    "valueQuantity": {
                        "value": 70,
                        "unit": "kg",
                        "system": "http://unitsofmeasure.org",
                        "code": "kg",
                    },
                }
            ),
            _entry(
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "subject": subject,
                    "effectiveDateTime": WHEN,
                    "code": {"coding": [{"system": loinc, "code": "72514-3"}]},
                    "valueInteger": pain,
                }
            ),
            _entry(
                {
                    "resourceType": "MedicationStatement",
                    "status": "active",
                    "subject": subject,
                    "medicationCodeableConcept": {
                        "coding": [
                            {
                                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                "code": "7804",
                            }
                        ]
                    },
                    "dosage": [
                        {
                            "doseAndRate": [
                                {
                                    "rateQuantity": {
                                        "value": 40,
                                        "unit": "mg/d",
                                        "system": "http://unitsofmeasure.org",
                                        "code": "mg/d",
                                    }
                                }
                            ]
                        }
                    ],
                }
            ),
        ],
    }


def _count(db: Database, model: Any) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _outcome(resp: Any, status: int, code: str) -> list[dict[str, Any]]:
    """The response is an OperationOutcome with ``status``, every issue an error ``code``."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(FHIR_JSON)
    body = resp.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"], body
    for issue in body["issue"]:
        assert issue["severity"] == "error"
        assert issue["code"] == code
        assert issue["diagnostics"]
    assert check(body) == []
    issues: list[dict[str, Any]] = body["issue"]
    return issues


def _everything(api: TestClient, key: str, headers: dict[str, str]) -> dict[str, Any]:
    resp = api.get(f"{FHIR}/Patient/{key}/$everything", headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith(FHIR_JSON)
    bundle: dict[str, Any] = resp.json()
    return bundle


def _resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def _loinc(resource: dict[str, Any]) -> set[str]:
    return {c["code"] for c in resource["code"]["coding"] if c["system"] == "http://loinc.org"}


# Patient/$everything


@pytest.mark.parametrize("role", ["nurse", "physician"])
def test_everything_exports_the_record_as_a_valid_searchset(
    api: TestClient,
    headers: Headers,
    patient_id: str,
    course: dict[str, Any],
    audit_log: AuditLog,
    usernames: dict[str, str],
    role: str,
) -> None:
    """A nurse or a physician gets the patient's record as a searchset Bundle in
    ``application/fhir+json``: the Patient first (with its MRN identifier), its CRPS
    Condition, the planned course as a MedicationRequest; every resource is valid R4 and
    the export is audited as ``export_fhir`` of that patient by that user."""
    bundle = _everything(api, patient_id, headers[role])
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    assert bundle["total"] == 1
    first = bundle["entry"][0]
    assert first["search"]["mode"] == "match"
    patient = first["resource"]
    assert patient["resourceType"] == "Patient"
    assert patient["id"] == patient_id
    assert {"system": MRN_SYSTEM, "value": "T-0001"}.items() <= patient["identifier"][0].items()
    assert [e["search"]["mode"] for e in bundle["entry"][1:]] == ["include"] * (
        len(bundle["entry"]) - 1
    )
    conditions = _resources(bundle, "Condition")
    codes = {c["code"] for r in conditions for c in r["code"]["coding"]}
    assert "G90.511" in codes
    requests = _resources(bundle, "MedicationRequest")
    assert requests, "the planned course is exported as a MedicationRequest"
    assert {r["subject"]["reference"] for r in requests} == {first["fullUrl"]}
    weights = [r for r in _resources(bundle, "Observation") if "29463-7" in _loinc(r)]
    assert [w["valueQuantity"]["value"] for w in weights] == [68.0]
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"] == f"urn:uuid:{resource['id']}"
        assert check(resource) == [], resource
    exports = audit_log(action="export_fhir")
    assert len(exports) == 1
    assert exports[0]["actor"]["username"] == usernames[role]
    assert exports[0]["entity_id"] == patient_id


def test_everything_by_mrn_and_unknown_patient(
    api: TestClient, headers: Headers, patient_id: str
) -> None:
    """The route takes the MRN as well as the id (the same Patient comes back); an unknown
    MRN or id is a 404 OperationOutcome with the issue code not-found."""
    by_mrn = _everything(api, "T-0001", headers["nurse"])
    assert by_mrn["entry"][0]["resource"]["id"] == patient_id
    for key in ("NO-SUCH-MRN", "00000000-0000-4000-8000-000000000000"):
        resp = api.get(f"{FHIR}/Patient/{key}/$everything", headers=headers["nurse"])
        (issue,) = _outcome(resp, 404, "not-found")
        assert key in issue["diagnostics"]


# Access rules


def test_without_a_token_the_fhir_endpoint_answers_401_not_a_redirect(
    api: TestClient, patient_id: str, db: Database
) -> None:
    """Without a bearer token ``$everything`` and ``POST /fhir`` answer 401 with an
    OperationOutcome (issue code login) and ``WWW-Authenticate: Bearer``, never the 303
    redirect to the sign-in page that a page gets; nothing is imported."""
    before = _count(db, Patient)
    answers = [
        api.get(f"{FHIR}/Patient/{patient_id}/$everything", follow_redirects=False),
        api.post(FHIR, json=_bundle(), follow_redirects=False),
    ]
    for resp in answers:
        _outcome(resp, 401, "login")
        assert "location" not in resp.headers
        assert resp.headers["www-authenticate"] == "Bearer"
    assert _count(db, Patient) == before


@pytest.mark.parametrize("role", ["front_desk", "admin"])
def test_front_desk_and_admin_may_not_export_or_import(
    api: TestClient,
    headers: Headers,
    patient_id: str,
    db: Database,
    audit_log: AuditLog,
    usernames: dict[str, str],
    role: str,
) -> None:
    """The front desk and the admin may not read the clinical record: ``$everything`` is a
    403 OperationOutcome (forbidden). Nor may they import a clinical Bundle (the front desk
    registers patients but may not chart): 403 and nothing written. Both refusals are
    audited; no export is."""
    resp = api.get(f"{FHIR}/Patient/{patient_id}/$everything", headers=headers[role])
    _outcome(resp, 403, "forbidden")
    before = (_count(db, Patient), _count(db, Diagnosis), _count(db, Medication))
    resp = api.post(FHIR, json=_bundle(), headers=headers[role])
    _outcome(resp, 403, "forbidden")
    assert (_count(db, Patient), _count(db, Diagnosis), _count(db, Medication)) == before
    assert audit_log(action="export_fhir") == []
    assert audit_log(action="import_fhir") == []
    denied = audit_log(action="denied", actor_username=usernames[role])
    assert len(denied) == 2


# POST /fhir: the transaction


def test_transaction_imports_then_reports_duplicates(
    api: TestClient, headers: Headers, db: Database, audit_log: AuditLog
) -> None:
    """A nurse's transaction Bundle answers a transaction-response Bundle, one response
    per entry in the request's order, each ``201 Created`` with a location that names the
    resource the patient's ``$everything`` then holds (with the values sent). Posting it
    again writes nothing: every entry is ``200 OK`` at the same location."""
    before = _count(db, Patient)
    request = _bundle()
    resp = api.post(FHIR, json=request, headers=headers["nurse"])
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith(FHIR_JSON)
    body = resp.json()
    assert body["resourceType"] == "Bundle"
    assert body["type"] == "transaction-response"
    assert check(body) == []
    responses = [e["response"] for e in body["entry"]]
    assert len(responses) == len(request["entry"])
    assert [r["status"] for r in responses] == ["201 Created"] * 5
    kinds = [e["resource"]["resourceType"] for e in request["entry"]]
    locations = [r["location"] for r in responses]
    assert [loc.split("/")[0] for loc in locations] == kinds
    assert _count(db, Patient) == before + 1
    audit = audit_log(action="import_fhir")
    assert len(audit) == 1 and audit[0]["detail"].endswith(
        "5 created, 0 updated, 0 duplicate, 0 skipped"
    )

    listed = api.get(f"{API}/patients", params={"search": "FH-0001"}, headers=headers["nurse"])
    assert listed.status_code == 200
    (registered,) = listed.json()
    assert (registered["family_name"], registered["given_name"]) == ("Smith", "Anna")
    assert (registered["birth_date"], registered["sex"]) == ("1970-01-02", "female")
    assert locations[0] == f"Patient/{registered['id']}"

    record = _everything(api, "FH-0001", headers["physician"])
    exported = {f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"]
                for e in record["entry"]}  # fmt: skip
    assert set(locations) <= set(exported)
    condition = exported[locations[1]]
    assert any(c["code"] == "M79.7" for c in condition["code"]["coding"])
    assert exported[locations[2]]["valueQuantity"]["value"] == 70.0
    assert exported[locations[3]]["valueInteger"] == 7
    statement = exported[locations[4]]
    assert any(c["code"] == "7804" for c in statement["medicationCodeableConcept"]["coding"])
    rate = statement["dosage"][0]["doseAndRate"][0]["rateQuantity"]
    assert (rate["value"], rate["code"]) == (40.0, "mg/d")

    again = api.post(FHIR, json=request, headers=headers["nurse"])
    assert again.status_code == 200, again.text
    repeated = [e["response"] for e in again.json()["entry"]]
    assert [r["status"] for r in repeated] == ["200 OK"] * 5
    assert [r["location"] for r in repeated] == locations
    assert all("duplicate" in r["outcome"]["issue"][0]["diagnostics"] for r in repeated)
    assert _count(db, Patient) == before + 1


def test_transaction_accepts_the_fhir_json_media_type(
    api: TestClient, headers: Headers, db: Database
) -> None:
    """A Bundle sent as ``application/fhir+json`` (the FHIR media type, not plain JSON) is
    read and imported like one sent as ``application/json``."""
    resp = api.post(
        FHIR,
        content=json.dumps(_bundle(mrn="FH-0002")),
        headers={**headers["physician"], "Content-Type": FHIR_JSON},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["type"] == "transaction-response"
    assert resp.json()["entry"][0]["response"]["status"] == "201 Created"
    with db.session() as session:
        assert session.scalars(select(Patient).where(Patient.mrn == "FH-0002")).one()


def test_invalid_entries_are_all_listed_and_nothing_is_written(
    api: TestClient, headers: Headers, db: Database
) -> None:
    """A Bundle with three bad entries (a Condition outside the vocabulary, an
    Observation status that R4 does not allow, a dose rate in a unit ketapain cannot
    read) is refused with 422: one OperationOutcome issue per entry at fault, each with
    the FHIRPath of the element; the valid Patient is not registered either."""
    bundle = _bundle(mrn="FH-0003")
    bundle["entry"][1]["resource"]["code"] = {"text": "something unheard of"}
    bundle["entry"][2]["resource"]["status"] = "done"
    rate = bundle["entry"][4]["resource"]["dosage"][0]["doseAndRate"][0]["rateQuantity"]
    rate["unit"] = rate["code"] = "g/wk"
    before = (_count(db, Patient), _count(db, Diagnosis), _count(db, Medication))
    resp = api.post(FHIR, json=bundle, headers=headers["nurse"])
    issues = _outcome(resp, 422, "invalid")
    assert [i["expression"] for i in issues] == [
        ["Bundle.entry[1].resource.code"],
        ["Bundle.entry[2].resource.status"],
        ["Bundle.entry[4].resource.dosage[0].doseAndRate[0].rateQuantity.code"],
    ]
    assert "done" in issues[1]["diagnostics"]
    assert "g/wk" in issues[2]["diagnostics"]
    assert (_count(db, Patient), _count(db, Diagnosis), _count(db, Medication)) == before


def test_a_likely_duplicate_patient_is_a_409_conflict(
    api: TestClient, headers: Headers, db: Database, patient_id: str
) -> None:
    """A Bundle with a new MRN but the name and birth date of a registered patient (Jane
    Doe, 1980-05-01) is refused as a likely duplicate: 409 OperationOutcome, code
    conflict, naming the MRN already registered; nothing is written."""
    before = (_count(db, Patient), _count(db, Diagnosis), _count(db, Medication))
    bundle = _bundle(mrn="FH-0004", family="Doe", given="Jane", birth_date="1980-05-01")
    resp = api.post(FHIR, json=bundle, headers=headers["nurse"])
    (issue,) = _outcome(resp, 409, "conflict")
    assert "T-0001" in issue["diagnostics"]
    assert issue["expression"] == ["Bundle.entry[0].resource.identifier"]
    assert (_count(db, Patient), _count(db, Diagnosis), _count(db, Medication)) == before


def test_a_conflict_late_in_the_bundle_rolls_back_the_whole_import(
    api: TestClient, headers: Headers, db: Database
) -> None:
    """All or nothing in the writing pass too: a second Bundle for the same patient that
    adds a medication but a different pain score at the charted time is a 409 (a result
    is never overwritten), and the new medication is not kept."""
    assert api.post(FHIR, json=_bundle(mrn="FH-0005"), headers=headers["nurse"]).status_code == 200
    medications = _count(db, Medication)
    later = _bundle(mrn="FH-0005", pain=4)
    statement = later["entry"][4]["resource"]
    statement["medicationCodeableConcept"] = {"text": "gabapentin"}
    del statement["dosage"]
    resp = api.post(FHIR, json=later, headers=headers["nurse"])
    (issue,) = _outcome(resp, 409, "conflict")
    assert issue["expression"] == ["Bundle.entry[3].resource.value[x]"]
    assert _count(db, Medication) == medications


def test_non_transaction_bundles_and_malformed_bodies_are_422(
    api: TestClient, headers: Headers, db: Database
) -> None:
    """``POST /fhir`` takes a transaction only: a collection Bundle is a 422 naming
    ``type``; a body that is not JSON is a 422 OperationOutcome too; nothing is written."""
    before = _count(db, Patient)
    collection = {**_bundle(mrn="FH-0006"), "type": "collection"}
    resp = api.post(FHIR, json=collection, headers=headers["nurse"])
    (issue,) = _outcome(resp, 422, "invalid")
    assert issue["expression"] == ["type"]
    assert "transaction" in issue["diagnostics"]
    resp = api.post(
        FHIR,
        content=b'{"resourceType": "Bundle", "type": ',
        headers={**headers["nurse"], "Content-Type": FHIR_JSON},
    )
    _outcome(resp, 422, "invalid")
    assert _count(db, Patient) == before


def test_an_entry_request_that_is_not_an_object_is_422(db: Database, headers: Headers) -> None:
    """A transaction entry whose ``request`` is a string, not an object, is an invalid
    entry: 422 OperationOutcome naming ``Bundle.entry[0].request``, not a server error."""
    bundle = _bundle(mrn="FH-0007")
    bundle["entry"][0]["request"] = "POST"
    with TestClient(create_app(Settings(), db=db), raise_server_exceptions=False) as api:
        resp = api.post(FHIR, json=bundle, headers=headers["nurse"])
    _outcome(resp, 422, "invalid")


def test_expression_of_a_missing_request_method_names_the_entry(
    api: TestClient, headers: Headers
) -> None:
    """A transaction entry without ``request.method`` is refused with an issue whose
    FHIRPath is ``Bundle.entry[0].request.method`` (where the element is missing)."""
    bundle = _bundle(mrn="FH-0008")
    del bundle["entry"][0]["request"]
    resp = api.post(FHIR, json=bundle, headers=headers["nurse"])
    (issue,) = _outcome(resp, 422, "invalid")
    assert issue["expression"] == ["Bundle.entry[0].request.method"]


# metadata, CodeSystem, OpenAPI


def test_metadata_is_an_r4_capability_statement_without_auth(api: TestClient) -> None:
    """``GET /fhir/metadata`` needs no token and is a valid R4 CapabilityStatement for FHIR
    4.0.1 that offers ``Patient/$everything`` and transactions."""
    resp = api.get(f"{FHIR}/metadata")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith(FHIR_JSON)
    statement = resp.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["format"][0] == FHIR_JSON
    (rest,) = statement["rest"]
    assert {"code": "transaction"} in rest["interaction"]
    operations = [op["name"] for r in rest["resource"] for op in r.get("operation", [])]
    assert operations == ["everything"]


def test_metadata_passes_the_r4_check(api: TestClient) -> None:
    """The CapabilityStatement served at ``/fhir/metadata`` passes ketapain's own R4
    validation (``check``), as every resource ketapain sends should."""
    assert check(api.get(f"{FHIR}/metadata").json()) == []


def test_local_code_system(api: TestClient) -> None:
    """``GET /fhir/CodeSystem/ketapain`` is a valid complete CodeSystem at ketapain's
    system URL whose concepts include the diagnoses, scores, score items and the infusion
    session that exports use, each code once."""
    resp = api.get(f"{FHIR}/CodeSystem/ketapain")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith(FHIR_JSON)
    system = resp.json()
    assert system["resourceType"] == "CodeSystem"
    assert system["url"] == LOCAL
    assert check(system) == []
    codes = [c["code"] for c in system["concept"]]
    assert {"crps_1", "moaas", "aldrete.activity", "infusion-session"} <= set(codes)
    assert len(codes) == len(set(codes)) == system["count"]


def test_openapi_lists_the_fhir_paths(api: TestClient) -> None:
    """The API's OpenAPI document lists the four FHIR routes."""
    resp = api.get(f"{API}/openapi.json")
    assert resp.status_code == 200
    paths = resp.json()["paths"]
    assert {
        f"{FHIR}/metadata",
        f"{FHIR}/CodeSystem/ketapain",
        f"{FHIR}/Patient/{{patient_id}}/$everything",
        FHIR,
    } <= set(paths)
    assert "post" in paths[FHIR]
    assert "get" in paths[f"{FHIR}/Patient/{{patient_id}}/$everything"]


def test_export_then_import_round_trip(
    api: TestClient, headers: Headers, patient_id: str, db: Database
) -> None:
    """The intake part of an export can be posted back: ``$everything`` of the fixture
    patient, made a transaction, imports as all duplicates (the record already holds it)."""
    record = _everything(api, "T-0001", headers["nurse"])
    bundle = copy.deepcopy(record)
    bundle["type"] = "transaction"
    bundle.pop("total")
    for entry in bundle["entry"]:
        entry.pop("search")
        entry["request"] = {"method": "POST", "url": entry["resource"]["resourceType"]}
    resp = api.post(FHIR, json=bundle, headers=headers["nurse"])
    assert resp.status_code == 200, resp.text
    statuses = {e["response"]["status"] for e in resp.json()["entry"]}
    assert statuses == {"200 OK"}
    notes = [e["response"]["outcome"]["issue"][0]["diagnostics"] for e in resp.json()["entry"]]
    assert all(n.startswith("duplicate") for n in notes), notes
    assert _count(db, Patient) == 1
