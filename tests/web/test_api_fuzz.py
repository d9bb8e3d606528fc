"""Fuzzing the whole API from its OpenAPI schema (schemathesis), ``POST /fhir`` with
mutated transaction Bundles and the patient portal's scores with generated bodies
(hypothesis).

Every operation of ``/api/v1/openapi.json`` (the ``/fhir`` endpoints included) is one
test of 25 generated requests, against the application on a fresh SQLite database. Each
request is sent as the physician (half of them), the nurse, or nobody (no token); in
about half of them the path's ids are replaced by those of real records, made when a
request first needs them (the patient, its planned seed-outpatient course, the bag hung
with its checklist done, an open alarm, a diagnosis and a weight to correct, a patient
link and its secret, a receipt into a vial lot; a session number of the plan), so that
the bodies reach the services instead of stopping at "not found". Schemathesis mixes valid
requests and invalid ones (wrong types, missing fields, bodies that are not JSON).

What is checked on every answer:

* **no 5xx** (schemathesis' ``not_a_server_error``, and the status itself);
* **error bodies**: every 4xx of ``/api`` is JSON ``{"error", "message", "field"}`` with a
  non-empty message, and a 422 names the field at fault (``field``, or each of
  ``errors[*].field``); under ``/fhir`` every 4xx is an OperationOutcome whose issues have
  diagnostics, and for a 422 the FHIRPath (``expression``) of the element at fault;
* **no token, no answer**: a request without a token is refused with 401, except on
  the public operations (health, FHIR metadata and CodeSystem, sign-in, the patient
  portal, whose link is its key);
* the schema checks of schemathesis that are meaningful here (see ``CHECKS``).

Records persist across the examples of one operation (a course planned by one example is
there for the next), which is intended: later requests meet a fuller record.

The faults the fuzzing found (B5, B7, B8, B9, B11, B12, B13, B14, B15) are fixed; each
keeps a test at the end of this file that reproduces it. B13 (a NUL character on
PostgreSQL) runs on PostgreSQL only, skipped without a server; the fuzzing itself runs on
SQLite.
"""

from __future__ import annotations

import copy
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, Final
from urllib.parse import unquote

import pytest
import schemathesis
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
)
from sqlalchemy import select

from ketapain.clinic.db import Database
from ketapain.clinic.instruments import INSTRUMENTS, PATIENT_REPORTED
from ketapain.clinic.patients import BodyMeasurement, Diagnosis
from ketapain.config import Settings
from ketapain.web.api import (
    auth,
    booking,
    courses,
    fhir,
    follow_up,
    infusions,
    patients,
    safety,
    stock,
)
from ketapain.web.app import create_app

API: Final = "/api/v1"
# HYPOTHESIS_PROFILE=thorough (the suite's long-run profile) multiplies the budget by 5.
SCALE: Final = 5 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else 1
EXAMPLES_PER_OPERATION: Final = 25 * SCALE
FUZZ: Final = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    # One database per operation (function-scoped fixtures), reused by its examples.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)

# The schema is read from an application on a throwaway in-memory database: the OpenAPI
# document does not depend on the data. The requests go to the test database's app.
_SCHEMA_APP: Final = create_app(Settings(), db=Database.connect("sqlite://"))
schema = schemathesis.openapi.from_asgi(f"{API}/openapi.json", _SCHEMA_APP)

# The schema checks of schemathesis that hold for this API, and why the others are left out:
#
# * not_a_server_error: the point of the exercise.
# * response_schema_conformance: the bodies match the response models; FastAPI's 422
#   model (HTTPValidationError) has no required property, so ketapain's own 422 body
#   conforms too.
# * negative_data_rejection: a request schemathesis made invalid (a wrong type, a missing
#   field, a malformed body) must not succeed; in the path and the body only (see
#   negative_body_rejection).
# * response_headers_conformance: no operation documents headers; kept so that one added
#   to the schema is checked.
# * content_type_conformance: holds under /api/v1 only. The /fhir answers are
#   application/fhir+json, as FHIR requires, while FastAPI documents application/json.
#
# Left out: status_code_conformance, because FastAPI documents only 200/201 and 422 while
# the API answers 400 (unparsable body), 401, 403, 404 and 409 by design (these are listed
# in ketapain.web.errors, not in the OpenAPI document); positive_data_acceptance, because
# a schema-valid request may still be refused on its meaning (an unknown protocol, a rate
# above a limit, a record of another patient); the stateful checks (use_after_free,
# ensure_resource_availability, ignored_auth), because nothing is deleted through the API
# and no security scheme is declared (the token is checked below instead).


def negative_body_rejection(ctx: CheckContext, response: Any, case: Any) -> bool | None:
    """schemathesis' negative_data_rejection, for requests made invalid in their path or
    body only. A query string made invalid is left out: Starlette reads the last of
    repeated parameters (``from=x&from=2026-01-01`` is a valid date) and pydantic's lax
    mode reads a number as a date (a Unix time), both on purpose."""
    meta = case.meta
    if meta is None:
        return None
    if any(
        info.mode.is_negative
        and location is not ParameterLocation.BODY
        and location is not ParameterLocation.PATH
        for location, info in meta.components.items()
    ):
        return None
    if _lax_only(case, response):
        return None
    result: bool | None = negative_data_rejection(ctx, response, case)
    return result


def _body_adapters() -> dict[str, TypeAdapter[Any]]:
    """Operation -> a validator of its JSON body (the route's own body model)."""
    out: dict[str, TypeAdapter[Any]] = {}
    for module in (auth, booking, courses, fhir, follow_up, infusions, patients, safety, stock):
        prefix = "" if module is fhir else API
        for route in module.router.routes:
            if isinstance(route, APIRoute) and route.dependant.body_params:
                annotation = route.dependant.body_params[0].field_info.annotation
                for method in route.methods:
                    out[f"{method} {prefix}{route.path}"] = TypeAdapter(annotation)
    return out


BODY_ADAPTERS: Final = _body_adapters()


def _lax_only(case: Any, response: Any) -> bool:
    """The body passed only because pydantic's lax mode converted a value that ketapain
    takes as it means the same (a whole-number float such as ``5.0`` for an integer):
    the body model refuses it in strict mode and takes it in lax. The conversions that
    change meaning (``true`` for a number, ``1`` for a yes/no, ``"70"`` for 70) are
    refused (test_boolean_for_a_number_is_refused)."""
    adapter = BODY_ADAPTERS.get(f"{case.operation.method.upper()} {case.operation.path}")
    raw = getattr(response.request, "body", None)
    if adapter is None or not raw:
        return False
    try:
        adapter.validate_json(raw, strict=True)
    except ValidationError:
        try:
            adapter.validate_json(raw)
        except ValidationError:
            return False
        return True
    return False


CHECKS: Final = (
    not_a_server_error,
    response_schema_conformance,
    negative_body_rejection,
    response_headers_conformance,
)
# Operations that answer without a token.
PUBLIC: Final = frozenset(
    {
        f"GET {API}/health",
        f"POST {API}/auth/token",
        f"POST {API}/auth/login",
        "GET /fhir/metadata",
        "GET /fhir/CodeSystem/ketapain",
        # The patient portal: the secret of a patient link in the path is the credential
        # (an unknown one is a 404, whatever the body).
        f"POST {API}/portal/{{secret}}/scores",
    }
)

# Requests sent, by operation, and the statuses answered (printed at the end).
SENT: Counter[str] = Counter()
STATUSES: Counter[tuple[str, int]] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_requests(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print how many requests each operation got (shown with ``-n 0 -s``: the
    workers of pytest-xdist do not show their output)."""
    yield
    if not SENT:
        return
    lines = ["", "API fuzzing: requests sent per operation (statuses)"]
    for label, n in sorted(SENT.items()):
        statuses = ", ".join(f"{s}: {c}" for (op, s), c in sorted(STATUSES.items()) if op == label)
        lines.append(f"  {label:<55} {n:>4}  ({statuses})")
    lines.append(f"  {'total':<55} {sum(SENT.values()):>4}")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n".join(lines))


def error_bodies(ctx: CheckContext, response: Any, case: Any) -> None:
    """A 4xx says what went wrong: ``{"error", "message", "field"}`` under /api with the
    field named for a 422; an OperationOutcome under /fhir with the element named."""
    status = response.status_code
    if not 400 <= status < 500:
        return
    content_type = (response.headers.get("content-type") or [""])[0]
    body = response.json()
    if case.operation.path.startswith("/fhir"):
        assert content_type.startswith("application/fhir+json"), content_type
        assert body.get("resourceType") == "OperationOutcome", body
        issues = body.get("issue")
        assert isinstance(issues, list) and issues, body
        for issue in issues:
            assert str(issue.get("diagnostics") or "").strip(), (
                f"an issue without diagnostics: {body}"
            )
            if status == 422:
                where = issue.get("expression")
                assert isinstance(where, list) and where and all(where), f"no expression: {body}"
        return
    assert content_type.startswith("application/json"), content_type
    assert isinstance(body, dict) and isinstance(body.get("error"), str), body
    assert isinstance(body.get("message"), str) and body["message"].strip(), body
    if status == 422:
        for error in body.get("errors") or [body]:
            field = error.get("field")
            assert isinstance(field, str) and field.strip(), f"a 422 naming no field: {body}"


# B14 (fixed): a date at the ends of the calendar (0001-01-01, 9999-12-31) overflowed the
# day arithmetic of these operations: a 500 instead of a 422 naming the date.
B14: Final = {
    f"POST {API}/courses/{{course_id}}/sessions/{{number}}/move": ("body", "new_date"),
    f"GET {API}/courses/{{course_id}}/sessions/{{number}}/rebook-suggestion": ("query", "today"),
    f"GET {API}/capacity": ("query", "day"),
    f"GET {API}/reminders": ("query", "today"),
    f"GET {API}/courses/{{course_id}}/safety": ("query", "today"),
}


# The API's one path parameter that takes a path, ``{lot:path}`` (src/ketapain/web/api/stock.py).
_PATH_PARAMS: Final = {f"{API}/stock/lots/{{lot}}": "lot"}


def _unroutable(case: Any) -> bool:
    """Whether the ``{lot:path}`` of ``/stock/lots`` holds a line break once decoded:
    Starlette's ``.*`` matches none, so the request reaches no route and the router
    answers 404, to anyone, as for any unknown path. Any other parameter (``[^/]+``)
    takes a line break, and its route answers."""
    name = _PATH_PARAMS.get(case.operation.path)
    value = (case.path_parameters or {}).get(name) if name else None
    return isinstance(value, str) and "\n" in unquote(value)


@pytest.fixture
def alarm_id(
    api: TestClient, headers: dict[str, dict[str, str]], patient_id: str, infusion: dict[str, Any]
) -> str:
    """An open alarm: SBP 200 mmHg charted by the nurse during the infusion."""
    vitals = {"infusion_id": infusion["id"], "sbp_mmhg": 200.0, "dbp_mmhg": 95.0}
    resp = api.post(f"{API}/patients/{patient_id}/vitals", json=vitals, headers=headers["nurse"])
    assert resp.status_code == 201, resp.text
    alarm: str = resp.json()["alarms"][0]["id"]
    return alarm


@pytest.fixture
def correctable(db: Database, patient_id: str) -> dict[str, str]:
    """Ids of rows of the patient that can be corrected, by kind (as the API names kinds)."""
    pid = uuid.UUID(patient_id)
    with db.session() as session:
        diagnosis = session.scalars(select(Diagnosis.id).where(Diagnosis.patient_id == pid)).one()
        body = session.scalars(
            select(BodyMeasurement.id).where(BodyMeasurement.patient_id == pid)
        ).one()
    return {"diagnoses": str(diagnosis), "measurements": str(body)}


@pytest.fixture
def link(api: TestClient, headers: dict[str, dict[str, str]], patient_id: str) -> dict[str, str]:
    """A patient link issued by the nurse: ``id`` and ``secret``."""
    resp = api.post(f"{API}/patients/{patient_id}/links", json={}, headers=headers["nurse"])
    assert resp.status_code == 201, resp.text
    issued: dict[str, str] = resp.json()
    return issued


@pytest.fixture
def stock_entry(api: TestClient, headers: dict[str, dict[str, str]]) -> dict[str, Any]:
    """500 mg of ketamine received into lot ``LOT-F`` by the nurse: the log's entry."""
    vials = {"lot": "LOT-F", "vial_mg_per_ml": 50, "vial_ml": 10, "vials": 1}
    resp = api.post(f"{API}/stock/receipts", json=vials, headers=headers["nurse"])
    assert resp.status_code == 201, resp.text
    entry: dict[str, Any] = resp.json()
    return entry


# The sessions of the seed-outpatient course (2 test infusions, then 5).
SESSIONS: Final = 7


def _use_real_ids(case: Any, request: pytest.FixtureRequest, pick: int) -> None:
    """Point the request's path at real records, made (once per operation) when first needed:
    the patient, its course, the infusion (bag hung, checklist done), an alarm, a patient
    link (id and secret), a stock entry and its lot, a row; and at a session of the plan."""
    params = case.path_parameters or {}
    real: dict[str, Callable[[], str | int]] = {
        "patient_id": lambda: str(request.getfixturevalue("patient_id")),
        "course_id": lambda: str(request.getfixturevalue("course")["id"]),
        "infusion_id": lambda: str(request.getfixturevalue("infusion")["id"]),
        "alarm_id": lambda: str(request.getfixturevalue("alarm_id")),
        "link_id": lambda: str(request.getfixturevalue("link")["id"]),
        "secret": lambda: str(request.getfixturevalue("link")["secret"]),
        "entry_id": lambda: str(request.getfixturevalue("stock_entry")["id"]),
        "lot": lambda: str(request.getfixturevalue("stock_entry")["lot"]),
        "number": lambda: 1 + pick % SESSIONS,
    }
    for name in params:
        if name in real:
            params[name] = real[name]()
    if "record_id" in params:
        rows: dict[str, str] = request.getfixturevalue("correctable")
        kind = sorted(rows)[pick % len(rows)]
        params["kind"], params["record_id"] = kind, rows[kind]


@schema.parametrize()
@schema.given(
    who=st.sampled_from(["physician", "physician", "nurse", "anonymous"]),
    real_ids=st.booleans(),
    pick=st.integers(0, 10),
)
@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@FUZZ
def test_api(
    case: Any,
    who: str,
    real_ids: bool,
    pick: int,
    api: TestClient,
    headers: dict[str, dict[str, str]],
    request: pytest.FixtureRequest,
) -> None:
    """Any request to any operation, as a physician, a nurse or without a token: no 5xx,
    errors that name their field, 401 without a token, the schema checks in CHECKS."""
    if real_ids:
        _use_real_ids(case, request, pick)
    label = f"{case.operation.method.upper()} {case.operation.path}"
    response = case.call(app=api.app, headers=headers.get(who, {}))
    SENT[label] += 1
    STATUSES[(label, response.status_code)] += 1
    assert response.status_code < 500, response.text
    checks: list[Callable[..., Any]] = [*CHECKS, error_bodies]
    if not case.operation.path.startswith("/fhir"):
        checks.append(content_type_conformance)
    case.validate_response(response, checks=checks)
    if who == "anonymous" and label not in PUBLIC:
        if _unroutable(case):
            assert response.status_code == 404, (label, response.status_code, response.text)
            return
        # The token is checked before the body is read: even a body that is not JSON or
        # not UTF-8.
        assert response.status_code == 401, (label, response.status_code, response.text)


# --- POST /fhir: transaction Bundles, valid and mutated ---------------------------------

MRN_SYSTEM: Final = Settings().fhir_mrn_system
PATIENT_URL: Final = "urn:uuid:5f0c2b8e-8f59-4c1e-9d0a-6c1d2f3e4a5b"
LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"


def _observation(loinc: str, value: dict[str, Any], when: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": {"reference": PATIENT_URL},
        "effectiveDateTime": when,
        **value,
    }


def _quantity(value: float, code: str) -> dict[str, Any]:
    return {"valueQuantity": {"value": value, "unit": code, "system": UCUM, "code": code}}


def bundle(mrn: str = "KP-API-1") -> dict[str, Any]:
    """A valid transaction Bundle: a patient with a diagnosis, an opioid, a lab result,
    weight and height, blood pressure and a pain score (as tests/fhir/test_intake.py)."""
    t = "2025-03-03T09:00:00Z"
    subject = {"subject": {"reference": PATIENT_URL}}
    resources: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "identifier": [{"system": MRN_SYSTEM, "value": mrn}],
            "name": [{"use": "official", "family": "Okafor", "given": ["Mary"]}],
            "gender": "female",
            "birthDate": "1975-03-14",
        },
        {
            "resourceType": "Condition",
            "code": {
                "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "G90.511"}]
            },
            **subject,
        },
        {
            "resourceType": "MedicationStatement",
            "status": "active",
            "medicationCodeableConcept": {"text": "oxycodone"},
            **subject,
            "dosage": [
                {
                    "doseAndRate": [
                        {
                            "rateQuantity": {
                                "value": 40,
                                "unit": "mg/d",
                                "system": UCUM,
                                "code": "mg/d",
                            }
                        }
                    ]
                }
            ],
        },
        _observation(
            "1742-6",
            {
                **_quantity(52.0, "U/L"),
                "referenceRange": [
                    {"high": {"value": 40.0, "unit": "U/L", "system": UCUM, "code": "U/L"}}
                ],
            },
            "2025-02-27T07:15:00Z",
        ),
        _observation("29463-7", _quantity(68.0, "kg"), t),
        _observation("8302-2", _quantity(165.0, "cm"), t),
        _observation("72514-3", {"valueInteger": 7}, t),
        _observation(
            "85354-9",
            {
                "component": [
                    {
                        "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                        **_quantity(132.0, "mm[Hg]"),
                    },
                    {
                        "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                        **_quantity(84.0, "mm[Hg]"),
                    },
                ]
            },
            t,
        ),
    ]
    entries = [
        {
            "fullUrl": PATIENT_URL if k == 0 else f"urn:uuid:{uuid.UUID(int=k)}",
            "resource": r,
            "request": {"method": "POST", "url": r["resourceType"]},
        }
        for k, r in enumerate(resources)
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


SCALARS: Final = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),  # standard JSON: no NaN, no Infinity
    st.text(max_size=10),
    st.sampled_from(
        [
            "",
            "2025-03-03",
            "2099-01-01T00:00:00Z",
            "2025-03-03T09:00:00",
            "kg",
            "[lb_av]",
            "mg/h",
            "ug/h",
            "final",
            "entered-in-error",
            "active",
            "Patient/1",
            PATIENT_URL,
            MRN_SYSTEM,
            "8480-6",
            "29463-7",
        ]
    ),
)
VALUES: Final = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    )
    for key, value in items:
        yield from _paths(value, (*path, key))


@st.composite
def mutated_bundles(draw: st.DrawFn) -> dict[str, Any]:
    """The valid Bundle with one to three elements replaced, deleted or added."""
    doc = copy.deepcopy(bundle(draw(st.sampled_from(["KP-API-1", "KP-API-2"]))))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from([p for p in _paths(doc) if p]))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        op = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "add" and isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(st.text(max_size=6))] = draw(VALUES)
        else:
            parent[path[-1]] = draw(VALUES)
    return doc


def _post_bundle(client: TestClient, token: dict[str, str], body: Any) -> Any:
    response = client.post("/fhir", json=body, headers=token)
    SENT["POST /fhir (Bundle)"] += 1
    STATUSES[("POST /fhir (Bundle)", response.status_code)] += 1
    return response


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@settings(FUZZ, max_examples=40 * SCALE)
@given(body=mutated_bundles())
def test_fhir_transaction_mutated(
    api: TestClient, headers: dict[str, dict[str, str]], body: dict[str, Any]
) -> None:
    """A mutated transaction Bundle: imported (200, a transaction-response Bundle), or
    refused with an OperationOutcome whose every issue names the element (FHIRPath)."""
    response = _post_bundle(api, headers["physician"], body)
    assert response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    answer = response.json()
    if response.status_code == 200:
        assert answer["resourceType"] == "Bundle" and answer["type"] == "transaction-response"
        assert len(answer["entry"]) == len(body["entry"])
        return
    assert response.status_code in (409, 422), response.text
    assert answer["resourceType"] == "OperationOutcome"
    for issue in answer["issue"]:
        assert issue["diagnostics"].strip(), answer
        assert issue.get("expression") and issue["expression"][0].strip(), answer


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_fhir_seed_bundle_imports(api: TestClient, headers: dict[str, dict[str, str]]) -> None:
    """The unmutated Bundle imports (so a refused mutant is refused for its mutation)."""
    response = _post_bundle(api, headers["physician"], bundle("KP-API-SEED"))
    assert response.status_code == 200, response.text


# --- POST /api/v1/portal/{secret}/scores: what a patient's browser may send -------------
#
# The portal's route reads its body itself (after finding the link), so the OpenAPI
# document describes no body and schemathesis sends none: the bodies are made here.


@st.composite
def portal_bodies(draw: st.DrawFn) -> Any:
    """A valid questionnaire of a patient-reported instrument (its value, or its items)
    with none to three elements replaced, deleted or added; now and then any JSON."""
    if not draw(st.integers(0, 9)):
        return draw(VALUES)
    instrument = INSTRUMENTS[draw(st.sampled_from(sorted(PATIENT_REPORTED)))]
    body: dict[str, Any] = {"instrument": instrument.name}
    if instrument.items:
        top = st.integers(0, instrument.item_max)
        body["items"] = {k: draw(top) for k in instrument.items}
    else:
        body["value"] = draw(st.integers(int(instrument.low), int(instrument.high)))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(list(_paths(body))))  # () is the body itself
        parent: Any = None
        node: Any = body
        for part in path:
            parent, node = node, node[part]
        op = draw(st.sampled_from(["replace", "delete", "add"]))
        if op == "add" and isinstance(node, dict):
            key = draw(st.sampled_from(["value", "items", "measured_utc", "item9"]) | st.text())
            node[key] = draw(VALUES)
        elif op == "delete" and path:
            del parent[path[-1]]
        elif path:
            parent[path[-1]] = draw(VALUES | st.integers(-1, 101))
    return body


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@settings(FUZZ, max_examples=40 * SCALE)
@given(body=portal_bodies())
def test_portal_scores_fuzzed(api: TestClient, link: dict[str, str], body: Any) -> None:
    """A questionnaire, valid or mutated, or any JSON, through a real patient link without
    credentials: taken (201, the score) or refused with a 422 naming the field; never a
    5xx, never a 401."""
    label = f"POST {API}/portal/{{secret}}/scores (fuzzed body)"
    response = api.post(f"{API}/portal/{link['secret']}/scores", json=body)
    SENT[label] += 1
    STATUSES[(label, response.status_code)] += 1
    assert response.status_code in (201, 422), response.text
    answer = response.json()
    if response.status_code == 201:
        assert answer["score"]["instrument"] == body["instrument"], answer
        return
    assert isinstance(answer.get("field"), str) and answer["field"].strip(), answer
    assert answer["message"].strip(), answer


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("where", "key"),
    [("changes", ""), ("changes", " "), ("body", " ")],
    ids=["changes-empty", "changes-blank", "body-blank"],
)
def test_blank_unknown_key_is_named(
    api: TestClient,
    headers: dict[str, dict[str, str]],
    correctable: dict[str, str],
    patient_id: str,
    where: str,
    key: str,
) -> None:
    """B8 (fixed): an unknown key "" or " " is a 422 whose field names where it is."""
    if where == "changes":
        path = f"{API}/records/diagnoses/{correctable['diagnoses']}/corrections"
        body: dict[str, Any] = {"reason": "typing error", "changes": {key: 1}}
    else:
        path = f"{API}/patients/{patient_id}/measurements"
        body = {"weight_kg": 70.0, key: 1}
    response = api.post(path, json=body, headers=headers["physician"])
    assert response.status_code == 422, response.text
    errors = response.json().get("errors") or [response.json()]
    assert all(e["field"].strip() for e in errors), response.json()


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_anonymous_undecodable_body_is_401(patient_id: str, api: TestClient) -> None:
    """B11 (fixed): without a token, a body that is not UTF-8 is a 401 like any other."""
    response = api.post(
        f"{API}/patients/{patient_id}/measurements",
        content=b"\x80",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 401, response.text


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("record", "body"),
    [
        ("measurements", {"weight_kg": True}),
        ("scores", {"instrument": "pain_nrs", "value": True}),
        ("medications", {"name": "oxycodone", "dose_mg_per_day": False}),
        ("measurements", {"weight_kg": "70"}),
        ("scores", {"instrument": "pain_nrs", "value": 5, "items": {"x": True}}),
        ("vitals", {"sbp_mmhg": 120, "on_oxygen": 1}),
    ],
)
def test_boolean_for_a_number_is_refused(
    api: TestClient,
    headers: dict[str, dict[str, str]],
    patient_id: str,
    record: str,
    body: dict[str, Any],
) -> None:
    """B9 (fixed): ``true`` or ``false`` (or text) where a number belongs, or a number
    where a yes/no belongs, is a 422 naming the field."""
    response = api.post(
        f"{API}/patients/{patient_id}/{record}", json=body, headers=headers["nurse"]
    )
    assert response.status_code == 422, response.text
    field = response.json()["field"]
    assert field in body, response.json()


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path", [f"{API}/patients", "/fhir"])
def test_body_not_json_names_the_body(
    api: TestClient, headers: dict[str, dict[str, str]], path: str
) -> None:
    """B7 (fixed): a request body that is not JSON is a 422 naming the body, not a field ``0``."""
    response = api.post(
        path, content=b"{", headers={**headers["physician"], "content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    body = response.json()
    where = body.get("field") if path.startswith(API) else body["issue"][0]["expression"][0]
    assert where == "body", body


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_fhir_nested_extensions_are_not_a_500(
    api: TestClient, headers: dict[str, dict[str, str]]
) -> None:
    """B5 (fixed): a Patient with 200 nested extensions is imported or refused, never a 500."""
    body = bundle("KP-API-DEEP")
    ext: dict[str, Any] = {"url": "http://example.org/x", "valueString": "x"}
    for _ in range(200):
        ext = {"url": "http://example.org/x", "extension": [ext]}
    body["entry"][0]["resource"]["extension"] = [ext]
    response = api.post("/fhir", json=body, headers=headers["physician"])
    assert response.status_code < 500, response.text


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@pytest.mark.parametrize("after_id", [2**63, -(2**63) - 1])
def test_audit_after_id_beyond_64_bits_is_refused(
    api: TestClient, headers: dict[str, dict[str, str]], after_id: int
) -> None:
    """B12 (fixed): an ``after_id`` the database cannot hold is a 422 naming ``after_id``."""
    response = api.get(f"{API}/audit", params={"after_id": after_id}, headers=headers["admin"])
    assert response.status_code == 422, response.text
    assert "after_id" in response.json()["field"]


NUL_REQUESTS: Final = {
    "token": ("post", f"{API}/auth/token", {"username": "doc\x00", "password": "x"}, None),
    "patient": (
        "post",
        f"{API}/patients",
        {
            "mrn": "M\x00",
            "family_name": "A",
            "given_name": "B",
            "birth_date": "1980-01-01",
            "sex": "female",
        },
        "front_desk",
    ),
    "allergy": (
        "post",
        f"{API}/patients/{{patient_id}}/allergies",
        {"substance": "pen\x00icillin"},
        "nurse",
    ),
    "audit": ("get", f"{API}/audit?entity=a%00b", None, "admin"),
}


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
@pytest.mark.parametrize("request_name", sorted(NUL_REQUESTS))
def test_nul_character_is_refused_on_postgresql(
    api: TestClient, headers: dict[str, dict[str, str]], patient_id: str, request_name: str
) -> None:
    """B13 (fixed): a NUL character in a text field or filter is a 4xx, never a 500 (PostgreSQL)."""
    method, path, body, role = NUL_REQUESTS[request_name]
    response = api.request(
        method.upper(),
        path.format(patient_id=patient_id),
        json=body,
        headers=headers[role] if role else {},
    )
    assert response.status_code < 500, response.text


_MOVE, _REBOOK, _CAPACITY, _REMINDERS, _SAFETY = B14
B14_CASES: Final = [
    (_MOVE, "0001-01-01"),
    (_MOVE, "9999-12-31"),
    (_REBOOK, "9999-12-31"),
    (_CAPACITY, "0001-01-01"),
    (_CAPACITY, "9999-12-31"),
    (_REMINDERS, "0001-01-01"),
    (_SAFETY, "0001-01-01"),
]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("operation", "day"), B14_CASES)
def test_date_at_the_calendar_ends_is_refused(
    api: TestClient,
    headers: dict[str, dict[str, str]],
    course: dict[str, Any],
    operation: str,
    day: str,
) -> None:
    """B14: a date at either end of the calendar (a missed session's new day or a day to
    rebook it from, a capacity's day, the day of the reminders or of the course's safety
    view) is a 422 naming the date, not a 500."""
    missed = f"{API}/courses/{course['id']}/sessions/4/missed"
    assert api.post(missed, json={"reason": "x"}, headers=headers["nurse"]).status_code == 201
    method, template = operation.split(" ", 1)
    url = template.format(course_id=course["id"], number=4)
    where, name = B14[operation]
    body = {name: day, "reason": "asked"} if where == "body" else None
    query = {name: day} if where == "query" else None
    response = api.request(method, url, json=body, params=query, headers=headers["nurse"])
    assert response.status_code == 422, response.text
    assert response.json()["field"] == name, response.json()


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@pytest.mark.parametrize("new_start", ["09:00:00+02:00", "00:00:00Z"])
def test_move_to_a_time_with_an_offset_is_refused(
    api: TestClient, headers: dict[str, dict[str, str]], course: dict[str, Any], new_start: str
) -> None:
    """B15: a session moved to a time with a UTC offset is a 422 naming ``new_start``."""
    body = {"new_date": "2026-12-15", "new_start": new_start, "reason": "asked"}
    url = f"{API}/courses/{course['id']}/sessions/3/move"
    response = api.post(url, json=body, headers=headers["nurse"])
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "new_start", response.json()
