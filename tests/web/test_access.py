"""Access control of the whole application, as sweeps over its routes rather than examples.

1. Anonymous use: every route of ``create_app`` (API, pages, FHIR; every method) is called
   without credentials and with refused ones (garbage, another scheme, expired, revoked,
   a deactivated user's); the API answers 401 JSON, a page a 303 to the sign-in page,
   FHIR a 401 OperationOutcome. Only the short allow-list :data:`PUBLIC` answers anyone
   (the patient portal among them: its link is its key); a new route that answers
   anonymously without being listed there fails the sweep.
2. Role rules at the HTTP level: every API, FHIR and page route and every form post, for
   each of the four roles, against the table of :mod:`ketapain.clinic.permissions` written
   out here by hand (:data:`API_CASES`, :data:`PAGE_CASES`, :data:`FORMS`); a refusal is a
   403 (or, for a form, the form again) audited as ``denied``, and the roles that may not
   read clinical records never see a clinical value (nor, in an API answer, a dose).
3. Session expiry: a web session dies after ``session_idle_min`` idle and stays alive while
   used (sliding); an API token dies after ``token_ttl_h`` however much it is used. Time
   passes by moving the token's times back in the database.
4. CSRF: every form post of the pages is refused (403, nothing written) without the
   session's token, with a wrong one and with another session's; the sign-in form has its
   own (login CSRF); the API takes no body a foreign form could send; cookie flags.
5. Lock-out through the sign-in form: locked after ``lockout_attempts`` failures, open again
   after ``lockout_min``, the count reset by a success, failures audited, and whether the
   answers tell which usernames exist.
6. No patient data in logs: the real ``ketapain serve`` in a subprocess, and in-process
   with every logger captured; the access log names route templates.
7. Security headers on every kind of answer, HSTS only behind TLS, and the pages working
   under their Content-Security-Policy in headless Chromium.

Known bugs are kept as strict xfails, each with its reason. The sweeps that only read run
on SQLite; so do the role and CSRF sweeps, whose rules do not depend on the database
(tests/web/test_api_roles.py runs refusals on PostgreSQL too).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ketapain.clinic._service import add_row
from ketapain.clinic.accounts import (
    AuthToken,
    TokenKind,
    User,
    create_user,
    issue_token,
    revoke_token,
)
from ketapain.clinic.audit import SYSTEM, Actor, AuditEntry, list_entries, unit_of_work
from ketapain.clinic.db import Base, Database, utc_now
from ketapain.clinic.instruments import INSTRUMENTS
from ketapain.clinic.patients import Allergy, BodyMeasurement, Diagnosis, Patient
from ketapain.clinic.permissions import ROLE_ACTIONS, Action
from ketapain.clinic.registry import register_patient
from ketapain.config import Settings
from ketapain.protocols.vocabulary import HISTORY
from ketapain.web.app import create_app
from ketapain.web.pages._render import csrf_token

try:  # FastAPI 0.16x includes routers lazily: app.routes holds the included routers
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover - older FastAPI: app.routes is already flat
    iter_route_contexts = None

A = Action
API = "/api/v1"
PASSWORD = "test-password-1"  # the template users' password (tests/conftest.py)
ROLES = ("physician", "nurse", "front_desk", "admin")
USERNAMES = {"physician": "doc", "nurse": "nurse", "front_desk": "desk", "admin": "admin"}
SESSION_COOKIE = "ketapain_session"
MRN_SYSTEM = "https://ketapain.org/fhir/sid/mrn"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# The patient of this module: strings found nowhere else, so that an answer or a log line
# holding one of them holds patient data.
MRN = "MRN-QX7731"
FAMILY = "Quixlebottom"
GIVEN = "Zephyrine"
BIRTH = date(1961, 8, 23)
IDENTITY = (MRN, FAMILY, GIVEN, BIRTH.isoformat(), "23 Aug 1961", "23/08/1961", "08/23/1961")
# A clinical value charted for the patient (an allergy): never shown to a role without
# read_clinical.
ALLERGEN = "Vexmoril"
REACTION = "Quillon rash"
CLINICAL = (ALLERGEN, REACTION)
# A key of an API answer that holds a dose or a rate (``dose_mg``, ``bag_mg``,
# ``rate_mg_per_h``): never in an answer to a role without read_clinical (the front desk
# books sessions from the calendar, without their doses).
_DOSE_KEY = re.compile(r"(^|_)(dose|bag|rate)(_|$)|_mg(_|$)")


def _register_patient(db: Database, staff: dict[str, Actor]) -> Patient:
    """Register this module's patient (distinctive name, MRN, birth date and allergy;
    68 kg, 165 cm, CRPS type I) as the front desk, charted by the nurse and physician."""
    p = register_patient(
        db,
        staff["front_desk"],
        mrn=MRN,
        family_name=FAMILY,
        given_name=GIVEN,
        birth_date=BIRTH,
        sex="female",
    )
    nurse = staff["nurse"]
    add_row(db, nurse, A.CHART, BodyMeasurement(patient_id=p.id, weight_kg=68.0, height_cm=165.0))
    add_row(db, nurse, A.CHART, Allergy(patient_id=p.id, substance=ALLERGEN, reaction=REACTION))
    add_row(db, staff["physician"], A.CHART, Diagnosis(patient_id=p.id, code="G90.511"))
    return p


@pytest.fixture
def patient(db: Database, staff: dict[str, Actor]) -> Patient:
    """This module's patient, in place of tests/conftest.py's (which the API tests'
    fixtures, ``course`` and ``infusion``, build on)."""
    return _register_patient(db, staff)


# The vial lot of the controlled-substance log's sweeps: received and drawn into the bag.
LOT = "LOT-S"
# A urinary symptom screen with no symptom (item -> 1 yes, 0 no).
_URINARY = dict.fromkeys(INSTRUMENTS["urinary_screen"].items, 0)


@dataclass(frozen=True)
class World:
    """Real ids: the patient, a planned course, a bag hung (checklist complete), a vitals
    row that raised an open alarm, a patient link, a receipt into the vial lot
    :data:`LOT` (which the bag was drawn from), and a positive urinary screen whose hold a
    physician has released."""

    patient_id: str
    course_id: str
    infusion_id: str
    vitals_id: str
    alarm_id: str
    program_rate_mg_per_h: float
    link_id: str
    entry_id: str
    screen_id: str


@pytest.fixture
def world(
    api: TestClient,
    headers: dict[str, dict[str, str]],
    patient_id: str,
    course: dict[str, Any],
    infusion: dict[str, Any],
) -> World:
    """The ids the sweeps fill path parameters with (made through the API)."""
    vitals = {"infusion_id": infusion["id"], "sbp_mmhg": 200, "dbp_mmhg": 95}
    resp = api.post(f"{API}/patients/{patient_id}/vitals", json=vitals, headers=headers["nurse"])
    assert resp.status_code == 201, resp.text
    assert resp.json()["alarms"], "SBP 200 raises no alarm"
    link = api.post(
        f"{API}/patients/{patient_id}/links", json={"valid_days": 14}, headers=headers["nurse"]
    )
    assert link.status_code == 201, link.text
    vials = {"lot": LOT, "vial_mg_per_ml": 50, "vial_ml": 10, "vials": 2}
    receipt = api.post(f"{API}/stock/receipts", json=vials, headers=headers["nurse"])
    assert receipt.status_code == 201, receipt.text
    drawn = {"lot": LOT, "amount_mg": 250, "infusion_id": infusion["id"]}
    assert api.post(f"{API}/stock/draws", json=drawn, headers=headers["nurse"]).status_code == 201
    screen = api.post(
        f"{API}/patients/{patient_id}/scores",
        json={"instrument": "urinary_screen", "items": _URINARY | {"frequency": 1}},
        headers=headers["nurse"],
    )
    assert screen.status_code == 201, screen.text
    review = {"score_id": screen.json()["id"], "outcome": "resume", "reason": "reviewed"}
    released = api.post(
        f"{API}/patients/{patient_id}/safety-reviews", json=review, headers=headers["physician"]
    )
    assert released.status_code == 201, released.text
    return World(
        patient_id=patient_id,
        course_id=course["id"],
        infusion_id=infusion["id"],
        vitals_id=resp.json()["id"],
        alarm_id=resp.json()["alarms"][0]["id"],
        program_rate_mg_per_h=float(infusion["program"][0]["rate_mg_per_h"]),
        link_id=link.json()["id"],
        entry_id=receipt.json()["id"],
        screen_id=screen.json()["id"],
    )


# --- the routes ---------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Endpoint:
    """One method of one route, by its template."""

    method: str
    template: str

    @property
    def kind(self) -> str:
        """``fhir``, ``api`` (JSON errors: /api/ and /docs), ``static`` or ``page``."""
        if self.template == "/fhir" or self.template.startswith("/fhir/"):
            return "fhir"
        if self.template.startswith(("/api/", "/docs")):
            return "api"
        if self.template.startswith("/static/"):
            return "static"
        return "page"


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every method of every route of ``app``, the static mount as ``/static/{path}``."""
    routes: Any = iter_route_contexts(app.routes) if iter_route_contexts else app.routes
    found: set[Endpoint] = set()
    for route in routes:
        if route.methods is None:  # a mount (StaticFiles answers GET and HEAD)
            found.update(Endpoint(m, f"{route.path}/{{path}}") for m in ("GET", "HEAD"))
        else:
            found.update(Endpoint(m, route.path) for m in route.methods)
    return sorted(found)


# The routes anyone may call, and why. Everything else must refuse anonymous use.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/login"): "the sign-in form",
    ("POST", "/login"): "the sign-in post: guarded by the login CSRF cookie and the password",
    ("GET", "/"): "a bare redirect to /home, which needs a session",
    ("POST", f"{API}/auth/token"): "exchanges a username and password for an API token",
    ("POST", f"{API}/auth/login"): "exchanges a username and password for a web session",
    ("GET", f"{API}/health"): "liveness for a load balancer: status and version, no data",
    ("GET", f"{API}/openapi.json"): "the API's description (paths and schemas), no data",
    ("HEAD", f"{API}/openapi.json"): "the same, headers only",
    ("GET", "/docs"): "Swagger UI: a page that loads the OpenAPI document, no data",
    ("HEAD", "/docs"): "the same, headers only",
    ("GET", "/docs/oauth2-redirect"): "Swagger UI's static OAuth2 helper page",
    ("HEAD", "/docs/oauth2-redirect"): "the same, headers only",
    ("GET", "/static/{path}"): "the pages' stylesheet and script (the sign-in page needs them)",
    ("HEAD", "/static/{path}"): "the same, headers only",
    # FHIR R4 (http.html#capabilities) and SMART App Launch: a client reads the
    # CapabilityStatement before it authenticates, to learn what the server supports.
    ("GET", "/fhir/metadata"): "the CapabilityStatement: what the server supports, no data",
    # A terminology resource: what ketapain's own codes mean, so that the receiver of an
    # exported Bundle can resolve them.
    ("GET", "/fhir/CodeSystem/ketapain"): "the local CodeSystem: code meanings, no data",
    # The patient portal: a patient has no account; the secret of an expiring, revocable
    # patient link in the path is the credential, and an unknown, expired or withdrawn one
    # answers 404 alike (tests/web/test_portal_page.py, test_api_follow_up.py).
    ("GET", "/p/{secret}"): "the patient's questionnaires due today, through a patient link",
    ("POST", "/p/{secret}"): "sends one questionnaire: the link, and the portal's own CSRF "
    "cookie (as the sign-in form's)",
    ("POST", f"{API}/portal/{{secret}}/scores"): "sends one questionnaire through a patient "
    "link (the link is the key; the body is read only after it is found)",
}


# A valid ``{action}`` of the pages that post to one, by the route's first part.
_PAGE_ACTIONS = {"/infusions/": "vitals", "/stock/": "receipts", "/courses/": "decisions"}


def _path(template: str, world: World | None) -> str:
    """``template`` with its parameters filled: the world's real ids and vial lot, a valid
    section, action, kind or session number, a random UUID for anything else."""
    ids = {}
    if world is not None:
        ids = {
            "patient_id": world.patient_id,
            "course_id": world.course_id,
            "infusion_id": world.infusion_id,
            "alarm_id": world.alarm_id,
            "record_id": world.vitals_id,
            "link_id": world.link_id,
            "entry_id": world.entry_id,
            "lot": LOT,
        }
    named = {
        "section": "medications",
        "action": next(
            (a for prefix, a in _PAGE_ACTIONS.items() if template.startswith(prefix)), "decisions"
        ),
        "kind": "csv" if template.startswith("/reports/") else "vitals",
        "path": "ketapain.css",
        # A session the world has not hung (1 is, and a case hangs 2): it may be moved.
        "number": "3",
    }

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return ids.get(name) or named.get(name) or str(uuid.uuid4())

    return re.sub(r"\{(\w+)(?::\w+)?\}", value, template)


def _call(
    client: TestClient, ep: Endpoint, path: str, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    """Call ``path`` with ``ep``'s method; a POST carries an empty but well-formed body
    (JSON for the API and FHIR, a form without CSRF token for a page)."""
    kwargs: dict[str, Any] = {"headers": dict(headers or {})}
    if ep.method in ("POST", "PUT", "PATCH") and ep.kind == "page":
        kwargs["data"] = {"_form": "sweep"}
    elif ep.method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {}
    return client.request(ep.method, path, **kwargs)


def _patient_data_in(text: str, strings: tuple[str, ...] = IDENTITY + CLINICAL) -> list[str]:
    return [s for s in strings if s in text]


def _cookie(secret: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={secret}"}


def _audit_mark(db: Database) -> int:
    """The id of the newest audit entry (0 when none)."""
    with db.session() as session:
        return int(session.scalar(select(func.max(AuditEntry.id))) or 0)


def _denials_since(db: Database, mark: int) -> list[tuple[str, str]]:
    """(username, action refused) of the ``denied`` audit entries after ``mark``."""
    with db.session() as session:
        entries = list_entries(session, action="denied", after_id=mark, limit=1000)
        return [(e.actor_username, e.entity) for e in entries]


def _counts(db: Database) -> dict[str, int]:
    """Rows per table, in one query."""
    tables = Base.metadata.sorted_tables
    query = select(
        *(select(func.count()).select_from(t).scalar_subquery().label(t.name) for t in tables)
    )
    with db.session() as session:
        row = session.execute(query).one()
    return dict(zip((t.name for t in tables), (int(n) for n in row), strict=True))


# --- security headers (checked by several sweeps) -------------------------------------------


def _header_problems(resp: httpx.Response, path: str, *, hsts: bool = False) -> list[str]:
    """What is missing or wrong in the security headers of one answer."""
    h = resp.headers
    where = f"{resp.request.method} {path} ({resp.status_code})"
    problems = []
    csp = h.get("content-security-policy", "")
    directives = {d.split()[0]: d.strip() for d in csp.split(";") if d.strip()}
    if directives.get("default-src") != "default-src 'self'":
        problems.append(f"{where}: CSP default-src is not 'self': {csp!r}")
    if "frame-ancestors 'none'" not in csp or "object-src 'none'" not in csp:
        problems.append(f"{where}: CSP lacks frame-ancestors/object-src 'none': {csp!r}")
    docs = path == "/docs" or path.startswith("/docs/")
    if ("'unsafe-inline'" in csp and not docs) or "'unsafe-eval'" in csp:
        problems.append(f"{where}: CSP allows unsafe code: {csp!r}")
    expected = {
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
        "cross-origin-opener-policy": "same-origin",
    }
    problems += [
        f"{where}: {name} is {h.get(name)!r}, not {value!r}"
        for name, value in expected.items()
        if h.get(name) != value
    ]
    policy = h.get("permissions-policy", "")
    if not all(f"{f}=()" in policy for f in ("camera", "microphone", "geolocation")):
        problems.append(f"{where}: permissions-policy is {policy!r}")
    cache = h.get("cache-control", "")
    if path.startswith("/static/") == ("no-store" in cache):
        problems.append(f"{where}: cache-control is {cache!r}")
    sts = h.get("strict-transport-security")
    age = re.search(r"max-age=(\d+)", sts or "")
    if hsts and (age is None or int(age.group(1)) < 31_536_000):
        problems.append(f"{where}: no strict-transport-security of a year behind TLS: {sts!r}")
    if not hsts and sts is not None:
        problems.append(f"{where}: strict-transport-security without TLS: {sts!r}")
    return problems


# --- credentials ----------------------------------------------------------------------------


def _change_token(db: Database, secret: str, change: Callable[[AuthToken], None]) -> None:
    """Apply ``change`` to the stored token or session ``secret`` (as the system)."""
    digest = hashlib.sha256(secret.encode()).hexdigest()
    with unit_of_work(db, SYSTEM) as session:
        token = session.scalar(select(AuthToken).where(AuthToken.token_sha256 == digest))
        assert token is not None
        change(token)


def _pass_time(db: Database, secret: str, delta: timedelta) -> None:
    """Let ``delta`` pass for the token ``secret``: its created, last-used and expiry times
    move back by ``delta``, as if the clock had moved on."""

    def back(token: AuthToken) -> None:
        token.created_utc -= delta
        token.last_used_utc -= delta
        token.expires_utc -= delta

    _change_token(db, secret, back)


@pytest.fixture
def refused_credentials(db: Database, staff_users: dict[str, User]) -> dict[str, dict[str, str]]:
    """Name -> request headers of a credential the application must refuse."""
    user, settings = staff_users["physician"], Settings()
    made = {
        (kind, state): issue_token(db, settings, user, kind=kind)
        for kind in (TokenKind.API, TokenKind.SESSION)
        for state in ("expired", "revoked")
    }
    for (_, state), secret in made.items():
        if state == "revoked":
            revoke_token(db, user, secret)
        else:
            _change_token(db, secret, lambda t: setattr(t, "expires_utc", utc_now()))
    leaver = create_user(
        db, SYSTEM, username="leaver", full_name="Left", role="physician", password=PASSWORD
    )
    gone = {kind: issue_token(db, settings, leaver, kind=kind) for kind in TokenKind}
    with unit_of_work(db, SYSTEM) as session:
        row = session.get(User, leaver.id)
        assert row is not None
        row.active = False

    def bearer(s: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {s}"}

    return {
        "none": {},
        "garbage bearer token": bearer("not-a-token"),
        "another scheme": {"Authorization": "Basic ZG9jOnRlc3QtcGFzc3dvcmQtMQ=="},
        "garbage session cookie": _cookie("forged-session-id"),
        "expired API token": bearer(made[TokenKind.API, "expired"]),
        "revoked API token": bearer(made[TokenKind.API, "revoked"]),
        "expired session cookie": _cookie(made[TokenKind.SESSION, "expired"]),
        "revoked session cookie": _cookie(made[TokenKind.SESSION, "revoked"]),
        "deactivated user's API token": bearer(gone[TokenKind.API]),
        "deactivated user's session cookie": _cookie(gone[TokenKind.SESSION]),
    }


# --- 1. anonymous use -----------------------------------------------------------------------


def _refusal_problem(ep: Endpoint, path: str, resp: httpx.Response) -> str | None:
    """Why ``resp`` is not the refusal of an anonymous call for this kind of route."""
    where = f"{ep.method} {ep.template} as {path}: {resp.status_code}"
    if ep.kind == "page":
        location = resp.headers.get("location", "")
        if resp.status_code != 303 or not location.startswith("/login?next=/"):
            return f"{where}, location {location!r}: not a redirect to the sign-in page"
        return None
    if resp.status_code != 401:
        return f"{where}: not 401 ({resp.text[:120]!r})"
    body = resp.json()
    if ep.kind == "fhir":
        fhir = resp.headers.get("content-type", "").startswith("application/fhir+json")
        if not fhir or body.get("resourceType") != "OperationOutcome":
            return f"{where}: not an OperationOutcome ({resp.text[:120]!r})"
        return None if body["issue"][0]["code"] == "login" else f"{where}: issue not 'login'"
    if body.get("error") != "not_authenticated" or not body.get("message"):
        return f"{where}: not the not_authenticated JSON ({resp.text[:120]!r})"
    if resp.headers.get("www-authenticate") != "Bearer":
        return f"{where}: no WWW-Authenticate: Bearer"
    return None


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_every_route_refuses_anonymous_and_refused_credentials(
    db: Database, world: World, refused_credentials: dict[str, dict[str, str]]
) -> None:
    """Every method of every route not in :data:`PUBLIC`, with real ids in its path, with
    no credentials and with each refused credential: API 401 JSON ``not_authenticated``,
    page 303 to the sign-in page, FHIR 401 OperationOutcome; no answer holds patient data,
    every answer carries the security headers, nothing is written."""
    app = create_app(Settings(), db=db)
    before = _counts(db)
    problems: list[str] = []
    guarded = [ep for ep in endpoints(app) if (ep.method, ep.template) not in PUBLIC]
    with TestClient(app, follow_redirects=False) as client:
        for ep in guarded:
            path = _path(ep.template, world)
            for name, sent in refused_credentials.items():
                resp = _call(client, ep, path, sent)
                if problem := _refusal_problem(ep, path, resp):
                    problems.append(f"[{name}] {problem}")
                if leaked := _patient_data_in(resp.text):
                    problems.append(f"[{name}] {ep.method} {path}: patient data {leaked}")
                problems += [f"[{name}] {p}" for p in _header_problems(resp, path)]
    assert not problems, "\n".join(problems)
    assert _counts(db) == before
    # The sweep saw every kind of route (a broken route listing would pass vacuously).
    assert {ep.kind for ep in guarded} == {"api", "page", "fhir"}
    assert len(guarded) >= 50


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_public_routes_are_the_allow_list_and_hold_no_patient_data(
    db: Database, patient_id: str
) -> None:
    """Each route of :data:`PUBLIC` exists (the list has no stale entry) and answers
    without credentials (neither 401 nor a redirect to the sign-in page), with the
    security headers and no patient data."""
    app = create_app(Settings(), db=db)
    listed = set(endpoints(app))
    stale = [key for key in PUBLIC if Endpoint(*key) not in listed]
    assert not stale, f"PUBLIC names routes that do not exist: {stale}"
    problems: list[str] = []
    with TestClient(app, follow_redirects=False) as client:
        for method, template in PUBLIC:
            path = _path(template, None)
            resp = _call(client, Endpoint(method, template), path)
            if resp.status_code == 401 or resp.headers.get("location", "").startswith("/login"):
                problems.append(f"{method} {path}: refused ({resp.status_code})")
            if leaked := _patient_data_in(resp.text):
                problems.append(f"{method} {path}: patient data {leaked}")
            problems += _header_problems(resp, path)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_anonymous_post_with_a_malformed_body_is_401(db: Database) -> None:
    """A POST to a guarded API or FHIR route with a body that is not JSON and no
    credentials is refused as unauthenticated (401), like any other anonymous call."""
    app = create_app(Settings(), db=db)
    wrong: list[str] = []
    with TestClient(app) as client:
        for ep in endpoints(app):
            if ep.method != "POST" or ep.kind == "page" or (ep.method, ep.template) in PUBLIC:
                continue
            resp = client.post(
                _path(ep.template, None),
                content=b"{not json",
                headers={"content-type": "application/json"},
            )
            if resp.status_code != 401:
                wrong.append(f"POST {ep.template}: {resp.status_code}")
    assert not wrong, "\n".join(wrong)


# --- 2. role rules --------------------------------------------------------------------------

Body = dict[str, Any] | Callable[[World, str], dict[str, Any]] | None


@dataclass(frozen=True)
class Case:
    """A call of one route: the actions its answer needs, in the order the code checks
    them (none: any signed-in user), a valid body (or a function of the world and the
    role) and path values of its own."""

    method: str
    template: str
    needs: tuple[Action, ...]
    body: Body = None
    values: dict[str, str] = field(default_factory=dict)

    def path(self, world: World) -> str:
        """The path with this case's values and the world's ids."""
        filled = self.template
        for name, value in self.values.items():
            filled = filled.replace(f"{{{name}}}", value)
        return _path(filled, world)

    def json(self, world: World, role: str) -> dict[str, Any] | None:
        """The body for ``role``."""
        return self.body(world, role) if callable(self.body) else self.body


def _first_refused(role: str, needs: tuple[Action, ...]) -> Action | None:
    """The action ``role`` is refused first, or None when it may do all of ``needs``."""
    return next((a for a in needs if a not in ROLE_ACTIONS[role]), None)


def _bundle(mrn: str, family: str, given: str, birth: str) -> dict[str, Any]:
    """A FHIR intake transaction holding one Patient."""
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": MRN_SYSTEM, "value": mrn}],
        "name": [{"use": "official", "family": family, "given": [given]}],
        "birthDate": birth,
        "gender": "female",
    }
    entry = {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": patient,
        "request": {"method": "POST", "url": "Patient"},
    }
    return {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}


def _new_patient(_w: World | None, role: str) -> dict[str, Any]:
    return {
        "mrn": f"ROLE-{role}",
        "family_name": "Role",
        "given_name": role,
        "birth_date": "1970-01-01",
        "sex": "male",
    }


_OVERRIDE = [{"code": "pregnancy", "reason": "reviewed"}]
_COURSE = {"protocol": "seed-outpatient", "start_date": "2026-11-09", "bag_mg": 250, "bag_ml": 250}
_CHECKLIST = dict.fromkeys(
    ("consent_confirmed", "escort_confirmed", "fasting_confirmed", "medications_reviewed"), True
) | {"escort_name": "A. Escort", "premedication_note": "given as planned"}
_P, _C, _I = (
    f"{API}/patients/{{patient_id}}",
    f"{API}/courses/{{course_id}}",
    f"{API}/infusions/{{infusion_id}}",
)
# Who may correct each kind of record (the corrections route's ``{kind}``), by hand.
CORRECTIONS: dict[str, Action] = {
    "demographics": A.REGISTER_PATIENT,
    "measurements": A.CHART,
    "diagnoses": A.CHART,
    "history": A.CHART,
    "allergies": A.CHART,
    "medications": A.CHART,
    "labs": A.CHART,
    "vitals": A.CHART,
    "scores": A.CHART,
    "side-effects": A.CHART,
    "rescue-medications": A.CHART,
    "discharge-checks": A.CHART,
    "decisions": A.DECIDE,
    "boosters": A.PRESCRIBE,
    "oral-prescriptions": A.PRESCRIBE,
}
API_CASES: list[Case] = [
    Case("GET", f"{API}/auth/me", ()),
    Case("GET", f"{API}/users", (A.MANAGE_USERS,)),
    Case(
        "POST",
        f"{API}/users",
        (A.MANAGE_USERS,),
        lambda w, r: {
            "username": f"new.{r}",
            "full_name": "N",
            "role": "nurse",
            "password": "long-password-9",
        },
    ),
    Case("GET", f"{API}/patients", (A.READ_SCHEDULE,)),
    Case("POST", f"{API}/patients", (A.REGISTER_PATIENT,), _new_patient),
    Case("GET", _P, (A.READ_SCHEDULE,)),
    Case("POST", f"{_P}/measurements", (A.CHART,), {"weight_kg": 68.5}),
    Case("POST", f"{_P}/diagnoses", (A.CHART,), {"code": "M79.7"}),
    Case("POST", f"{_P}/history", (A.CHART,), {"code": next(iter(HISTORY))}),
    Case("POST", f"{_P}/allergies", (A.CHART,), {"substance": "latex"}),
    Case("POST", f"{_P}/medications", (A.CHART,), {"name": "gabapentin", "dose_mg_per_day": 300}),
    Case(
        "POST", f"{_P}/labs", (A.CHART,), {"test": "alt", "value": 30, "ref_low": 7, "ref_high": 56}
    ),
    Case("POST", f"{_P}/screenings", (A.SCREEN,), {"protocol": "seed-outpatient"}),
    Case(
        "POST",
        f"{_P}/screenings",
        (A.SCREEN, A.OVERRIDE),
        {"protocol": "seed-outpatient", "overrides": _OVERRIDE},
    ),
    Case("GET", f"{_P}/screenings/latest", (A.READ_CLINICAL,)),
    Case("POST", f"{_P}/vitals", (A.CHART,), {"sbp_mmhg": 121, "dbp_mmhg": 77}),
    Case("POST", f"{_P}/scores", (A.CHART,), {"instrument": "pain_nrs", "value": 5}),
    Case("POST", f"{_P}/side-effects", (A.CHART,), {"effect": "nausea", "severity": "mild"}),
    Case(
        "POST",
        f"{_P}/rescue-medications",
        (A.CHART,),
        {"drug": "ondansetron", "dose_mg": 4, "reason": "nausea"},
    ),
    Case("POST", f"{_P}/courses", (A.PLAN,), _COURSE),
    Case("POST", f"{_P}/courses", (A.PLAN, A.OVERRIDE), {**_COURSE, "overrides": _OVERRIDE}),
    Case("GET", _C, (A.READ_CLINICAL,)),
    Case("POST", f"{_C}/plans", (A.PLAN,), {"reason": "bigger bag", "bag_mg": 500}),
    Case(
        "POST",
        f"{_C}/decisions",
        (A.DECIDE,),
        {"after_session": 2, "decision": "continue", "reason": "relief"},
    ),
    Case(
        "POST",
        f"{_C}/boosters",
        (A.PRESCRIBE,),
        {"scheduled_date": "2027-01-11", "reason": "relapse"},
    ),
    Case(
        "POST",
        f"{_C}/oral-prescriptions",
        (A.PRESCRIBE,),
        {"dose_mg": 35, "doses_per_day": 3, "start_date": "2026-12-01", "end_date": "2026-12-14"},
    ),
    Case("GET", f"{API}/schedule", (A.READ_SCHEDULE,)),
    Case(
        "POST",
        f"{_C}/infusions",
        (A.CHART,),
        lambda w, r: {"session_number": 2, "bag_mg": 250, "bag_ml": 250, "lot": f"LOT-{r}"},
    ),
    Case("GET", _I, (A.READ_CLINICAL,)),
    Case("POST", f"{_I}/checklist", (A.CHART,), _CHECKLIST),
    Case("GET", f"{_I}/checklist", (A.READ_CLINICAL,)),
    Case("POST", f"{_I}/events", (A.CHART,), {"kind": "pause"}),
    Case(
        "POST",
        f"{_I}/events",
        (A.CHANGE_RATE,),
        {"kind": "rate_change", "rate_mg_per_h": 10, "reason": "titration"},
    ),
    Case(
        "POST",
        f"{_I}/events",
        (A.CHART, A.OVERRIDE),
        lambda w, r: {
            "kind": "start",
            "rate_mg_per_h": w.program_rate_mg_per_h,
            "overrides": _OVERRIDE,
        },
    ),
    Case(
        "POST", f"{_I}/discharge-checks", (A.CHART,), {"escort_confirmed": True, "escort_name": "A"}
    ),
    Case("GET", f"{API}/alarms", (A.READ_CLINICAL,)),
    Case(
        "POST",
        f"{API}/alarms/{{alarm_id}}/acknowledgements",
        (A.ACKNOWLEDGE_ALARM,),
        {"note": "rechecked"},
    ),
    Case("GET", f"{API}/audit", (A.READ_AUDIT,)),
    Case("GET", "/fhir/Patient/{patient_id}/$everything", (A.READ_CLINICAL,)),
    Case(
        "POST",
        "/fhir",
        (A.REGISTER_PATIENT, A.CHART),
        lambda w, r: _bundle(f"FH-{r}", "Bundle", r, "1970-01-02"),
    ),
    # The vitals row is real; the other kinds name no record, looked for after the rule.
    *(
        Case(
            "POST",
            f"{API}/records/{{kind}}/{{record_id}}/corrections",
            (action,),
            {"reason": "typed in the wrong field", "changes": {"sbp_mmhg": 122}},
            {"kind": kind} | ({} if kind == "vitals" else {"record_id": str(uuid.uuid4())}),
        )
        for kind, action in CORRECTIONS.items()
    ),
    # Advice on the course, read only.
    Case("GET", f"{_C}/continuation", (A.READ_CLINICAL,)),
    Case("GET", f"{_C}/titration", (A.READ_CLINICAL,)),
    Case("GET", f"{_C}/oral-proposal", (A.READ_CLINICAL,)),
    # Booking, on session 3 ({number}: 1 and 2 are hung, and a hung session cannot move).
    # The first role allowed marks it missed; the next ones meet it missed (409).
    Case("GET", f"{_C}/calendar", (A.READ_SCHEDULE,)),
    Case("POST", f"{_C}/sessions/{{number}}/missed", (A.BOOK,), {"reason": "no show"}),
    Case("GET", f"{_C}/sessions/{{number}}/rebook-suggestion", (A.READ_SCHEDULE,)),
    Case(
        "POST",
        f"{_C}/sessions/{{number}}/move",
        (A.BOOK,),
        lambda w, r: {
            "new_date": (date.today() + timedelta(days=28)).isoformat(),
            "reason": "asked",
        },
    ),
    Case("GET", f"{API}/capacity", (A.READ_SCHEDULE,)),
    Case("GET", f"{_C}/early-completion", (A.READ_CLINICAL,)),
    Case("GET", f"{_C}/booster-suggestion", (A.READ_CLINICAL,)),
    # Follow-up: questionnaires due, reminders, patient links (the world's link revoked).
    Case("GET", f"{_C}/pro-schedule", (A.READ_CLINICAL,)),
    Case("GET", f"{API}/reminders", (A.READ_CLINICAL,)),
    Case("GET", f"{_P}/links", (A.READ_CLINICAL,)),
    Case("POST", f"{_P}/links", (A.CHART,), {"valid_days": 14}),
    Case("POST", f"{_P}/links/{{link_id}}/revoke", (A.CHART,)),
    # The controlled-substance log, on the world's lot (1000 mg received, 250 mg drawn).
    Case(
        "POST",
        f"{API}/stock/receipts",
        (A.CONTROLLED_LOG,),
        {"lot": LOT, "vial_mg_per_ml": 50, "vial_ml": 10, "vials": 1},
    ),
    Case(
        "POST",
        f"{API}/stock/draws",
        (A.CONTROLLED_LOG,),
        lambda w, r: {"lot": LOT, "amount_mg": 1, "infusion_id": w.infusion_id},
    ),
    # The witness is another physician or nurse than the one who logs the waste.
    Case(
        "POST",
        f"{API}/stock/waste",
        (A.CONTROLLED_LOG,),
        lambda w, r: {
            "lot": LOT,
            "amount_mg": 1,
            "witness_username": USERNAMES["nurse" if r == "physician" else "physician"],
            "reason": "vial dropped",
        },
    ),
    Case(
        "POST",
        f"{API}/stock/returns",
        (A.CONTROLLED_LOG,),
        {"lot": LOT, "amount_mg": 1, "note": "to the supplier, form 41"},
    ),
    Case("GET", f"{API}/stock/lots", (A.CONTROLLED_LOG,)),
    Case("GET", f"{API}/stock/lots/{{lot:path}}", (A.CONTROLLED_LOG,)),
    Case("GET", f"{API}/stock/bags", (A.CONTROLLED_LOG,)),
    Case("GET", f"{API}/stock/discrepancies", (A.CONTROLLED_LOG,)),
    # Safety over the course: the world's urinary screen reviewed again (resume: no hold
    # stands for the cases after).
    Case("GET", f"{_C}/safety", (A.READ_CLINICAL,)),
    Case("GET", f"{_P}/holds", (A.READ_CLINICAL,)),
    Case(
        "POST",
        f"{_P}/safety-reviews",
        (A.REVIEW_SAFETY,),
        lambda w, r: {"score_id": w.screen_id, "outcome": "resume", "reason": "reviewed again"},
    ),
    # The receipt retracted: the next role allowed meets it retracted.
    Case(
        "POST",
        f"{API}/stock/entries/{{entry_id}}/corrections",
        (A.CONTROLLED_LOG,),
        {"reason": "typed twice", "entered_in_error": True},
    ),
    # Last: a physician's change of status may end the course the cases above use.
    Case("POST", f"{_C}/status", (A.CHANGE_COURSE,), {"status": "in_progress", "reason": "hung"}),
]
# Signed-in only, not called by the sweep: log-out revokes the token the sweep uses
# (tests/web/test_api_auth.py covers it).
NOT_SWEPT = {("POST", f"{API}/auth/logout")}

PAGE_CASES: list[Case] = [
    Case("GET", "/home", ()),
    # The intake form is shown only to those who may register a patient.
    Case("GET", "/patients/new", (A.REGISTER_PATIENT,)),
    Case("GET", "/schedule", (A.READ_SCHEDULE,)),
    Case("GET", "/questionnaires", (A.READ_CLINICAL,)),
    Case("GET", "/patients", (A.READ_SCHEDULE,)),
    Case("GET", "/patients/{patient_id}", (A.READ_SCHEDULE,)),
    Case("GET", "/patients/{patient_id}/plan", (A.PLAN,)),
    Case("GET", "/courses/{course_id}", (A.READ_CLINICAL,)),
    Case("GET", "/infusions/{infusion_id}", (A.READ_CLINICAL,)),
    Case("GET", "/infusions/{infusion_id}/live", (A.READ_CLINICAL,)),
    Case("GET", "/admin/audit", (A.READ_AUDIT,)),
    Case("GET", "/reports/cohort", (A.READ_OUTCOMES,)),
    Case("GET", "/reports/cohort.{kind}", (A.READ_OUTCOMES,), values={"kind": "csv"}),
    Case("GET", "/stock", (A.CONTROLLED_LOG,)),
    Case("GET", "/stock/{lot:path}", (A.CONTROLLED_LOG,)),
]
# Where a role without read_clinical reads clinical values all the same, by design: the
# audit trail keeps each row's values before and after a change.
AUDIT_TRAIL = {f"{API}/audit", "/admin/audit"}
# Refused but not audited (none: the report pages audit their refusals too).
UNAUDITED: set[str] = set()


def _role_problems(
    db: Database, role: str, case: Case, path: str, resp: httpx.Response, mark: int
) -> list[str]:
    """What is wrong with ``role``'s answer to ``case``: its refusal or not, its audit
    entries (those after ``mark``), clinical values shown."""
    where = f"{role} {case.method} {case.template} ({path}): {resp.status_code}"
    refused = _first_refused(role, case.needs)
    denials = _denials_since(db, mark)
    problems = []
    if refused is None:
        if resp.status_code in (401, 403) or resp.status_code >= 500:
            problems.append(f"{where}: allowed but refused or failed: {resp.text[:160]!r}")
        if denials:
            problems.append(f"{where}: allowed but audited as denied {denials}")
    else:
        if resp.status_code != 403:
            problems.append(f"{where}: expected 403 ({refused.value}): {resp.text[:160]!r}")
        elif case.template.startswith(API) and resp.json().get("action") != refused.value:
            problems.append(f"{where}: the refusal names {resp.json().get('action')!r}")
        elif (
            case.template.startswith("/fhir") and resp.json()["resourceType"] != "OperationOutcome"
        ):
            problems.append(f"{where}: the refusal is not an OperationOutcome")
        elif (
            not case.template.startswith(("/fhir", API)) and "<h1>Not allowed</h1>" not in resp.text
        ):
            problems.append(f"{where}: the refusal is not the 'Not allowed' page")
        expected = [(USERNAMES[role], refused.value)]
        if denials != expected and not (case.template in UNAUDITED and not denials):
            problems.append(f"{where}: audited as {denials}, expected {expected}")
    blind = A.READ_CLINICAL not in ROLE_ACTIONS[role] and case.template not in AUDIT_TRAIL
    if blind and (leaked := _patient_data_in(resp.text, CLINICAL)):
        problems.append(f"{where}: clinical values {leaked} shown to {role}")
    if blind and "json" in resp.headers.get("content-type", "") and (doses := _keys(resp.json())):
        problems.append(f"{where}: doses {sorted(doses)} shown to {role}")
    return problems


def _keys(answer: Any) -> set[str]:
    """The keys of a JSON answer, at any depth, that name a dose or a rate."""
    if isinstance(answer, dict):
        found = {k for k in answer if _DOSE_KEY.search(k)}
        return found.union(*(_keys(v) for v in answer.values()))
    if isinstance(answer, list):
        return set().union(*(_keys(v) for v in answer))
    return set()


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_role_rules_hold_on_every_api_and_fhir_route(
    db: Database, world: World, headers: dict[str, dict[str, str]]
) -> None:
    """Every guarded API and FHIR route, for each of the four roles, with a valid body:
    a role the permission table allows is not refused; any other role gets a 403 naming
    the first action it may not do, audited exactly once as ``denied``; no role without
    ``read_clinical`` sees a clinical value or a dose (the audit trail aside). The cases
    cover every route and every correctable kind of record."""
    from ketapain.web.api.patients import CORRECTABLE

    app = create_app(Settings(), db=db)
    guarded = {
        (ep.method, ep.template)
        for ep in endpoints(app)
        if ep.kind in ("api", "fhir") and (ep.method, ep.template) not in PUBLIC
    }
    covered = {(c.method, c.template) for c in API_CASES} | NOT_SWEPT
    assert guarded == covered, f"routes without a case: {guarded - covered}"
    assert set(CORRECTIONS) == set(CORRECTABLE)
    problems: list[str] = []
    with TestClient(app, follow_redirects=False) as client:
        for case in API_CASES:
            path = case.path(world)
            for role in ("admin", "front_desk", "nurse", "physician"):
                mark = _audit_mark(db)
                body = case.json(world, role)
                resp = client.request(case.method, path, json=body, headers=headers[role])
                problems += _role_problems(db, role, case, path, resp, mark)
    assert not problems, "\n".join(problems)


@pytest.fixture
def sessions(db: Database, staff_users: dict[str, User]) -> dict[str, str]:
    """Role -> the secret of a fresh web session of that role's user."""
    return {
        role: issue_token(db, Settings(), user, kind=TokenKind.SESSION)
        for role, user in staff_users.items()
    }


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_role_rules_hold_on_every_page(
    db: Database, world: World, sessions: dict[str, str]
) -> None:
    """Every page (GET) for each role: allowed roles get the page, the others a 403 'Not
    allowed' page audited once as ``denied``; the front desk and the admin never see a
    clinical value on a page (the audit trail aside). The cases cover every GET page."""
    app = create_app(Settings(), db=db)
    pages = {
        (ep.method, ep.template)
        for ep in endpoints(app)
        if ep.kind == "page" and ep.method == "GET" and (ep.method, ep.template) not in PUBLIC
    }
    assert pages == {(c.method, c.template) for c in PAGE_CASES}
    problems: list[str] = []
    with TestClient(app, follow_redirects=False) as client:
        for case in PAGE_CASES:
            path = case.path(world)
            for role in ROLES:
                mark = _audit_mark(db)
                resp = client.get(path, headers=_cookie(sessions[role]))
                problems += _role_problems(db, role, case, path, resp, mark)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_refused_reports_are_audited(db: Database, sessions: dict[str, str]) -> None:
    """The outcome report page and its downloads, refused to a nurse and the front desk,
    are audited as ``denied`` (read_outcomes), as every other refusal."""
    app = create_app(Settings(), db=db)
    with TestClient(app) as client:
        for role in ("nurse", "front_desk"):
            for path in ("/reports/cohort", "/reports/cohort.csv"):
                mark = _audit_mark(db)
                assert client.get(path, headers=_cookie(sessions[role])).status_code == 403
                assert _denials_since(db, mark) == [(USERNAMES[role], "read_outcomes")], path


@dataclass(frozen=True)
class Form:
    """A form post of the pages: its action, its ``_form`` name, the actions it needs and
    values that would write something if the post were accepted."""

    template: str
    name: str
    needs: tuple[Action, ...]
    fields: dict[str, str] | Callable[[World], dict[str, str]]

    def data(self, world: World) -> dict[str, str]:
        """The form's fields for this world."""
        values = self.fields(world) if callable(self.fields) else self.fields
        return {"_form": self.name, **values}


_RP, _RC, _RI = "/patients/{patient_id}", "/courses/{course_id}", "/infusions/{infusion_id}"
FORMS: list[Form] = [
    Form(
        "/patients/new",
        "intake",
        (A.REGISTER_PATIENT,),
        lambda w: {
            "mrn": f"FORM-{uuid.uuid4().hex[:8]}",
            "family_name": "Form",
            "given_name": "Filled",
            "birth_date": "1970-03-04",
            "sex": "male",
        },
    ),
    Form(f"{_RP}/plan", "plan", (A.PLAN,), {k: str(v) for k, v in _COURSE.items()}),
    Form(f"{_RP}/measurements", "measurements", (A.CHART,), {"weight_kg": "69"}),
    Form(f"{_RP}/diagnoses", "diagnoses", (A.CHART,), {"code": "M79.7"}),
    Form(f"{_RP}/history", "history", (A.CHART,), {"code": next(iter(HISTORY))}),
    Form(f"{_RP}/allergies", "allergies", (A.CHART,), {"substance": "latex", "severity": "mild"}),
    Form(f"{_RP}/medications", "medications", (A.CHART,), {"name": "gabapentin"}),
    Form(
        f"{_RP}/labs",
        "labs",
        (A.CHART,),
        {"test": "alt", "value": "30", "ref_low": "7", "ref_high": "56"},
    ),
    Form(f"{_RP}/screenings", "screen", (A.SCREEN,), {"protocol": "seed-outpatient"}),
    Form(
        f"{_RP}/screenings",
        "screen",
        (A.SCREEN, A.OVERRIDE),
        {
            "protocol": "seed-outpatient",
            "override_code": "pregnancy",
            "override_reason_pregnancy": "reviewed",
        },
    ),
    Form(
        f"{_RC}/infusions",
        "hang",
        (A.CHART,),
        {"session_number": "2", "bag_mg": "250", "bag_ml": "250", "lot": "LOT-F"},
    ),
    Form(
        f"{_RC}/decisions",
        "decide",
        (A.DECIDE,),
        {"after_session": "2", "decision": "continue", "reason": "relief"},
    ),
    Form(
        f"{_RC}/boosters",
        "booster",
        (A.PRESCRIBE,),
        {"scheduled_date": "2027-01-11", "reason": "relapse"},
    ),
    Form(
        f"{_RC}/oral",
        "oral",
        (A.PRESCRIBE,),
        {
            "dose_mg": "35",
            "doses_per_day": "3",
            "start_date": "2026-12-01",
            "end_date": "2026-12-14",
        },
    ),
    Form(
        f"{_RC}/status", "status", (A.CHANGE_COURSE,), {"status": "in_progress", "reason": "hung"}
    ),
    Form(
        f"{_RI}/checklist",
        "checklist",
        (A.CHART,),
        {k: "on" if v is True else v for k, v in _CHECKLIST.items()},
    ),
    Form(
        f"{_RI}/event",
        "event",
        (A.CHART,),
        lambda w: {"kind": "start", "rate": str(w.program_rate_mg_per_h), "rate_unit": "mg/h"},
    ),
    Form(
        f"{_RI}/event",
        "event",
        (A.CHART, A.OVERRIDE),
        lambda w: {
            "kind": "start",
            "rate": str(w.program_rate_mg_per_h),
            "rate_unit": "mg/h",
            "override_code": "pregnancy",
            "override_reason_pregnancy": "reviewed",
        },
    ),
    Form(f"{_RI}/vitals", "vitals", (A.CHART,), {"sbp_mmhg": "121", "dbp_mmhg": "77"}),
    Form(f"{_RI}/score", "score", (A.CHART,), {"instrument": "pain_nrs", "value": "5"}),
    Form(f"{_RI}/side-effect", "side-effect", (A.CHART,), {"effect": "nausea", "severity": "mild"}),
    Form(
        f"{_RI}/rescue",
        "rescue",
        (A.CHART,),
        {"drug": "ondansetron", "dose_mg": "4", "reason": "nausea"},
    ),
    Form(
        f"{_RI}/ack",
        "ack",
        (A.ACKNOWLEDGE_ALARM,),
        lambda w: {"alarm_id": w.alarm_id, "note": "rechecked"},
    ),
    Form(
        f"{_RI}/discharge", "discharge", (A.CHART,), {"escort_confirmed": "on", "escort_name": "A"}
    ),
    Form(f"{_RI}/urinary-screen", "urinary-screen", (A.CHART,), dict.fromkeys(_URINARY, "0")),
    # The review of a hold (the chair shows its form while the hold stands): the world's
    # urinary screen again, resumed, so that no hold stands for the posts after.
    Form(
        f"{_RI}/safety-review",
        "review-1",
        (A.REVIEW_SAFETY,),
        lambda w: {"score_id": w.screen_id, "outcome": "resume", "reason": "reviewed again"},
    ),
    # The controlled-substance log, on the world's lot; the physician posts these in the
    # CSRF sweep, so the witness is the nurse.
    Form(
        "/stock/receipts",
        "receive",
        (A.CONTROLLED_LOG,),
        {"lot": LOT, "vial_mg_per_ml": "50", "vial_ml": "10", "vials": "1"},
    ),
    Form(
        "/stock/draws",
        "draw",
        (A.CONTROLLED_LOG,),
        lambda w: {"lot": LOT, "amount_mg": "1", "infusion_id": w.infusion_id},
    ),
    Form(
        "/stock/waste",
        "waste",
        (A.CONTROLLED_LOG,),
        {"lot": LOT, "amount_mg": "1", "witness": USERNAMES["nurse"], "reason": "vial dropped"},
    ),
    Form(
        "/stock/returns",
        "return",
        (A.CONTROLLED_LOG,),
        {"lot": LOT, "amount_mg": "1", "note": "to the supplier, form 41"},
    ),
    # Last: signing out ends the session the other posts use.
    Form("/logout", "logout", (), {}),
]


def _post_form(
    client: TestClient, form: Form, world: World, secret: str, token: str | None
) -> httpx.Response:
    """Post ``form`` in the session ``secret`` with the CSRF ``token`` (None: without)."""
    data = form.data(world) | ({} if token is None else {"csrf_token": token})
    return client.post(_path(form.template, world), data=data, headers=_cookie(secret))


def test_the_form_table_covers_every_form_post() -> None:
    """:data:`FORMS` covers every POST page route but the sign-in form and the patient
    portal's (each with its own cookie-bound token, tested on its own) and every section
    of the record and action of the course, chair and stock views."""
    from ketapain.web.pages import chair, courses, patients, stock

    db = Database.connect("sqlite://")
    try:
        posts = {
            e.template
            for e in endpoints(create_app(Settings(), db=db))
            if e.kind == "page" and e.method == "POST"
        }
    finally:
        db.dispose()
    reached = set()
    for form in FORMS:
        t = re.sub(r"^(/patients/\{patient_id\})/(?!plan$)[\w-]+$", r"\1/{section}", form.template)
        t = re.sub(r"^/stock/[\w-]+$", "/stock/{action}", t)
        reached.add(re.sub(r"^(/(?:courses|infusions)/\{\w+\})/[\w-]+$", r"\1/{action}", t))
    # The sign-in form: tests below; the portal: tests/web/test_portal_page.py.
    assert posts - {"/login", "/p/{secret}"} == reached

    def last_parts(prefix: str) -> set[str]:
        return {f.template.rsplit("/", 1)[1] for f in FORMS if f.template.startswith(prefix)}

    assert last_parts(f"{_RP}/") == {*patients._SECTIONS, "screenings", "plan"}
    assert last_parts("/courses/") == set(courses._ACTIONS)
    assert last_parts("/infusions/") == set(chair._ACTIONS)
    assert last_parts("/stock/") == set(stock._ACTIONS)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_refused_form_posts_write_nothing_and_are_audited(
    db: Database, world: World, sessions: dict[str, str]
) -> None:
    """Each form post, by each role that may not do it, with the session's right CSRF
    token: refused (a 403 page, or the form again, 422), nothing written but the refusal's
    audit entry, whose first ``denied`` entry names the action refused. (That it is the
    only one is the strict xfail test_each_refused_form_post_is_audited_once.)"""
    app = create_app(Settings(), db=db)
    problems: list[str] = []
    with TestClient(app, follow_redirects=False) as client:
        for form in FORMS:
            for role in ROLES:
                refused = _first_refused(role, form.needs)
                if refused is None:
                    continue
                counts, mark = _counts(db), _audit_mark(db)
                secret = sessions[role]
                resp = _post_form(client, form, world, secret, csrf_token(secret))
                where = f"{role} {form.template} [{form.name}]: {resp.status_code}"
                denials = _denials_since(db, mark)
                if resp.status_code not in (403, 422):
                    problems.append(f"{where}: not refused")
                if denials[:1] != [(USERNAMES[role], refused.value)]:
                    problems.append(f"{where}: audited {denials}, expected {refused.value}")
                after = _counts(db)
                changed = {t for t in after if after[t] != counts[t]}
                written = after["audit_entries"] - counts["audit_entries"]
                if changed - {"audit_entries", "audit_chain_head"} or written != len(denials):
                    problems.append(f"{where}: wrote rows ({sorted(changed)})")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_each_refused_form_post_is_audited_once(
    db: Database, world: World, sessions: dict[str, str]
) -> None:
    """One refused form post, one ``denied`` audit entry, naming the action refused."""
    app = create_app(Settings(), db=db)
    by_name = {(f.template.rsplit("/", 1)[1], f.needs): f for f in FORMS}
    cases = [
        ("front_desk", by_name["infusions", (A.CHART,)]),
        ("front_desk", by_name["vitals", (A.CHART,)]),
        ("nurse", by_name["plan", (A.PLAN,)]),
        ("admin", by_name["medications", (A.CHART,)]),
    ]
    audited = {}
    with TestClient(app, follow_redirects=False) as client:
        for role, form in cases:
            mark, secret = _audit_mark(db), sessions[role]
            _post_form(client, form, world, secret, csrf_token(secret))
            audited[role, form.template] = _denials_since(db, mark)
    expected = {
        (role, form.template): [(USERNAMES[role], form.needs[0].value)] for role, form in cases
    }
    assert audited == expected


# --- 3. session expiry ----------------------------------------------------------------------


def _sign_in(client: TestClient, username: str, password: str = PASSWORD) -> httpx.Response:
    """Post the sign-in form as a browser does (GET it first for the login cookie)."""
    page = client.get("/login")
    found = _TOKEN.search(page.text)
    assert page.status_code == 200 and found
    form = {"csrf_token": found.group(1), "_form": "login", "username": username}
    return client.post("/login?next=/home", data=form | {"password": password})


def _session_of(resp: httpx.Response) -> str:
    assert resp.status_code == 303, resp.text
    secret = resp.cookies.get(SESSION_COOKIE)
    assert secret
    return str(secret)


def _alive(app: FastAPI, secret: str) -> bool:
    """Whether the session opens a page and the API (both or neither, else it fails)."""
    with TestClient(app, follow_redirects=False) as fresh:
        page = fresh.get("/home", headers=_cookie(secret))
        me = fresh.get(f"{API}/auth/me", headers=_cookie(secret))
    if page.status_code == 200:
        assert me.status_code == 200, me.text
        return True
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/home"
    assert me.status_code == 401
    assert me.json()["error"] == "not_authenticated"
    return False


def test_web_session_expires_after_the_idle_time(db: Database) -> None:
    """A session from the sign-in form left idle, with an idle time of 5 minutes and with
    the default: alive a minute before ``session_idle_min``, refused a second after (the
    page sends the browser to the sign-in page, the API answers 401)."""
    for idle_min in (5, Settings().session_idle_min):
        app = create_app(Settings(session_idle_min=idle_min), db=db)
        with TestClient(app, follow_redirects=False) as browser:
            secret = _session_of(_sign_in(browser, "nurse"))
        _pass_time(db, secret, timedelta(minutes=idle_min - 1))
        assert _alive(app, secret), idle_min
        # That use restarted the idle time: a whole idle period more ends the session.
        _pass_time(db, secret, timedelta(minutes=idle_min, seconds=1))
        assert not _alive(app, secret), idle_min


def test_a_used_session_stays_alive(db: Database) -> None:
    """Used every 20 minutes (idle time 30), the session outlives 30 minutes from sign-in
    many times over; left idle for 31 minutes, it is refused."""
    settings = Settings()
    app = create_app(settings, db=db)
    with TestClient(app, follow_redirects=False) as browser:
        secret = _session_of(_sign_in(browser, "doc"))
    for _ in range(4):  # 80 minutes after sign-in
        _pass_time(db, secret, timedelta(minutes=settings.session_idle_min - 10))
        assert _alive(app, secret)
    _pass_time(db, secret, timedelta(minutes=settings.session_idle_min + 1))
    assert not _alive(app, secret)


def test_api_token_expires_after_its_lifetime_however_used(
    db: Database, staff_users: dict[str, User]
) -> None:
    """An API token answers until ``token_ttl_h`` after it was issued, used or not, and is
    refused (401) from then on: use does not extend it; nor does a page take it."""
    settings = Settings(token_ttl_h=2)
    app = create_app(settings, db=db)
    secret = issue_token(db, settings, staff_users["nurse"], kind=TokenKind.API)
    bearer = {"Authorization": f"Bearer {secret}"}
    with TestClient(app, follow_redirects=False) as client:
        for _ in range(3):  # used at 0, 30 and 60 minutes
            assert client.get(f"{API}/auth/me", headers=bearer).status_code == 200
            _pass_time(db, secret, timedelta(minutes=30))
        _pass_time(db, secret, timedelta(minutes=29))  # 1 h 59 min after issue
        assert client.get(f"{API}/patients", headers=bearer).status_code == 200
        _pass_time(db, secret, timedelta(minutes=1, seconds=1))
        resp = client.get(f"{API}/patients", headers=bearer)
        assert resp.status_code == 401
        assert resp.json()["error"] == "not_authenticated"
        assert "expired" in resp.json()["message"]
        assert client.get("/home", headers=bearer).status_code == 303


# --- 4. CSRF --------------------------------------------------------------------------------


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_every_form_post_needs_its_sessions_csrf_token(
    db: Database, world: World, staff_users: dict[str, User]
) -> None:
    """Each form post of the pages (a physician's, valid values) without the CSRF token,
    with an empty, a wrong one, another user's session's, the same user's other session's
    and the session id itself: a 403 page each, nothing written (no audit entry either);
    then the same post with the right token is not refused, so the token was the reason."""
    app = create_app(Settings(), db=db)

    def session(role: str) -> str:
        return issue_token(db, Settings(), staff_users[role], kind=TokenKind.SESSION)

    mine = session("physician")
    tokens: dict[str, str | None] = {
        "no token": None,
        "empty token": "",
        "wrong token": "0" * 64,
        "another user's session's token": csrf_token(session("nurse")),
        "the same user's other session's token": csrf_token(session("physician")),
        "the session id itself": mine,
    }
    problems: list[str] = []
    with TestClient(app, follow_redirects=False) as client:
        for form in FORMS:
            where = f"{form.template} [{form.name}]"
            counts = _counts(db)
            for name, token in tokens.items():
                resp = _post_form(client, form, world, mine, token)
                if resp.status_code != 403 or "came from another site" not in resp.text:
                    problems.append(f"{where} with {name}: {resp.status_code}")
            if _counts(db) != counts:
                problems.append(f"{where}: a refused post wrote rows")
            control = _post_form(client, form, world, mine, csrf_token(mine))
            if control.status_code == 403 or control.status_code >= 500:
                problems.append(f"{where} with the right token: {control.status_code}")
    assert not problems, "\n".join(problems)
    # The last form signed out: the right token did its work.
    with TestClient(app, follow_redirects=False) as client:
        assert client.get("/home", headers=_cookie(mine)).status_code == 303


def test_sign_in_form_has_login_csrf(db: Database) -> None:
    """The sign-in post needs the token bound to the login cookie the form was served
    with: none, an empty or wrong one, or another browser's is refused (403) before the
    password is checked (no session, no failed login counted); the right one signs in."""
    app = create_app(Settings(), db=db)
    with TestClient(app, follow_redirects=False) as other:
        theirs = _TOKEN.search(other.get("/login").text)
        assert theirs
    with TestClient(app, follow_redirects=False) as browser:
        page = browser.get("/login")
        assert page.cookies.get("ketapain_login")
        mine = _TOKEN.search(page.text)
        assert mine
        counts = _counts(db)
        form = {"_form": "login", "username": "nurse", "password": PASSWORD}
        for token in (None, "", "0" * 64, theirs.group(1)):
            resp = browser.post(
                "/login?next=/home", data=form | ({} if token is None else {"csrf_token": token})
            )
            assert resp.status_code == 403, token
            assert SESSION_COOKIE not in resp.cookies
        assert _counts(db) == counts  # no session, no login_failed entry
        assert _user_row(db, "nurse").failed_logins == 0
        ok = browser.post("/login?next=/home", data=form | {"csrf_token": mine.group(1)})
        assert ok.status_code == 303


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_api_refuses_a_cookie_post_a_foreign_form_could_send(
    db: Database, sessions: dict[str, str]
) -> None:
    """The API takes the session cookie, but a page of another site can only post a form
    (urlencoded, multipart or text/plain): the API refuses such bodies and writes nothing;
    it reads only JSON, which a browser sends cross-site only after a CORS preflight."""
    app = create_app(Settings(), db=db)
    body = json.dumps(_new_patient(None, "csrf"))
    counts = _counts(db)
    with TestClient(app) as client:
        for content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain",
        ):
            sent = _cookie(sessions["front_desk"]) | {"content-type": content_type}
            resp = client.post(f"{API}/patients", content=body, headers=sent)
            assert resp.status_code in (415, 422), (content_type, resp.status_code)
    assert _counts(db) == counts


def _cookie_attributes(header: str) -> set[str]:
    return {part.strip().lower() for part in header.split(";")[1:]}


@pytest.mark.parametrize("secure", [False, True])
@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_session_cookie_flags(db: Database, secure: bool) -> None:
    """The session cookie of the sign-in form and of the API's login is HttpOnly,
    SameSite=Strict, Path=/, and Secure exactly when ``secure_cookies`` is set."""
    app = create_app(Settings(secure_cookies=secure), db=db)
    with TestClient(app, follow_redirects=False, base_url="https://testserver") as browser:
        form = _sign_in(browser, "desk")
        api = browser.post(f"{API}/auth/login", json={"username": "desk", "password": PASSWORD})
    for resp in (form, api):
        cookies = [c for c in resp.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)]
        assert len(cookies) == 1
        attributes = _cookie_attributes(cookies[0])
        assert {"httponly", "samesite=strict", "path=/"} <= attributes
        assert ("secure" in attributes) is secure


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_every_cookie_is_secure_behind_tls(db: Database) -> None:
    """With ``secure_cookies``, every cookie the pages set (the session, the login nonce,
    the flash message) is Secure, HttpOnly and SameSite=Strict."""
    app = create_app(Settings(secure_cookies=True), db=db)
    set_cookies: list[str] = []
    with TestClient(app, follow_redirects=False, base_url="https://testserver") as browser:
        set_cookies += browser.get("/login").headers.get_list("set-cookie")
        set_cookies += _sign_in(browser, "desk").headers.get_list("set-cookie")
        token = _TOKEN.search(browser.get("/patients/new").text)
        assert token
        data = _new_patient(None, "tls") | {"csrf_token": token.group(1), "_form": "intake"}
        intake = browser.post("/patients/new", data=data)
        assert intake.status_code == 303
        set_cookies += intake.headers.get_list("set-cookie")
    assert {c.split("=", 1)[0] for c in set_cookies} >= {
        SESSION_COOKIE,
        "ketapain_login",
        "ketapain_flash",
    }
    for cookie in set_cookies:
        if "max-age=0" not in cookie.lower():  # not a deletion
            assert {"secure", "httponly", "samesite=strict"} <= _cookie_attributes(cookie), cookie


# --- 5. lock-out ----------------------------------------------------------------------------


def _failed_logins(db: Database) -> int:
    with db.session() as session:
        return len(list_entries(session, action="login_failed", limit=1000))


def _user_row(db: Database, username: str) -> User:
    with db.session() as session:
        user = session.scalar(select(User).where(User.username == username))
        assert user is not None
        return user


def _error(page: str) -> str:
    found = re.search(r'<p id="login-password-error" class="error">([^<]*)</p>', page)
    assert found, "no error by the password field"
    return found.group(1)


def test_sign_in_form_locks_the_account_and_opens_it_after_the_period(db: Database) -> None:
    """Through the sign-in form: ``lockout_attempts`` wrong passwords lock the account for
    ``lockout_min``; then the right password is refused too, with the same message and no
    session; every failure is audited; other accounts stay open; once the period has
    passed, the right password opens a session and clears the lock."""
    settings = Settings(lockout_attempts=3, lockout_min=20)
    app = create_app(settings, db=db)
    with TestClient(app, follow_redirects=False) as browser:
        messages = set()
        for _ in range(settings.lockout_attempts):
            resp = _sign_in(browser, "nurse", "wrong-password-1")
            assert resp.status_code == 401
            messages.add(_error(resp.text))
        locked_until = _user_row(db, "nurse").locked_until_utc
        assert locked_until is not None
        assert timedelta(minutes=19) < locked_until - utc_now() <= timedelta(minutes=20)
        right = _sign_in(browser, "nurse")
        assert right.status_code == 401
        messages.add(_error(right.text))
        assert len(messages) == 1  # one answer: it does not tell that the account exists
        assert "locked" in messages.pop()
        assert SESSION_COOKIE not in right.cookies
        assert _failed_logins(db) == settings.lockout_attempts + 1
        assert _sign_in(browser, "doc").status_code == 303
        # lockout_min later (the lock's end moved into the past):
        with unit_of_work(db, SYSTEM) as session:
            nurse = session.scalar(select(User).where(User.username == "nurse"))
            assert nurse is not None
            nurse.locked_until_utc = utc_now() - timedelta(seconds=1)
        opened = _sign_in(browser, "nurse")
        assert _alive(app, _session_of(opened))
    row = _user_row(db, "nurse")
    assert row.locked_until_utc is None and row.failed_logins == 0


def test_sign_in_form_success_resets_the_count(db: Database) -> None:
    """Only failures in a row lock: ``lockout_attempts - 1`` failures, a success, and as
    many failures again leave the account open (twice over)."""
    settings = Settings(lockout_attempts=3)
    app = create_app(settings, db=db)
    with TestClient(app, follow_redirects=False) as browser:
        for _ in range(2):
            for _ in range(settings.lockout_attempts - 1):
                resp = _sign_in(browser, "desk", "wrong-password-1")
                assert resp.status_code == 401
            assert _user_row(db, "desk").failed_logins == settings.lockout_attempts - 1
            assert _sign_in(browser, "desk").status_code == 303
            assert _user_row(db, "desk").failed_logins == 0
    assert _user_row(db, "desk").locked_until_utc is None
    assert _failed_logins(db) == 2 * (settings.lockout_attempts - 1)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_unknown_username_answers_as_a_wrong_password(db: Database) -> None:
    """On the sign-in form, an unknown username and a wrong password get the same status,
    the same message and no session; both are audited as failed logins."""
    app = create_app(Settings(), db=db)
    with TestClient(app, follow_redirects=False) as browser:
        unknown = _sign_in(browser, "no.such.user", PASSWORD)
        wrong = _sign_in(browser, "nurse", "wrong-password-1")
    assert unknown.status_code == wrong.status_code == 401
    assert _error(unknown.text) == _error(wrong.text)
    assert _error(wrong.text).startswith("wrong username or password")
    assert SESSION_COOKIE not in unknown.cookies and SESSION_COOKIE not in wrong.cookies
    assert _failed_logins(db) == 2


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_lockout_does_not_tell_which_usernames_exist(db: Database) -> None:
    """After ``lockout_attempts`` wrong passwords, the next answer for an existing
    username is the same (status and message) as for one that does not exist."""
    settings = Settings(lockout_attempts=2)
    app = create_app(settings, db=db)
    answers = {}
    with TestClient(app) as client:
        for name in ("nurse", "no.such.user"):
            for _ in range(settings.lockout_attempts + 1):
                sent = {"username": name, "password": "wrong-password-1"}
                resp = client.post(f"{API}/auth/token", json=sent)
            answers[name] = (resp.status_code, resp.json()["message"])
    assert answers["nurse"] == answers["no.such.user"]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_unknown_username_takes_as_long_as_a_wrong_password(db: Database) -> None:
    """The median time of a refused sign-in for an unknown username is at least a
    quarter of that for an existing one with a wrong password (5 tries each, interleaved;
    the margin leaves room for a loaded machine)."""
    app = create_app(Settings(lockout_attempts=100), db=db)
    times: dict[str, list[float]] = {"nurse": [], "no.such.user": []}
    with TestClient(app) as client:
        for _ in range(5):
            for name, took in times.items():
                start = time.perf_counter()
                sent = {"username": name, "password": "wrong-password-1"}
                assert client.post(f"{API}/auth/token", json=sent).status_code == 401
                took.append(time.perf_counter() - start)
    unknown, known = (sorted(t)[2] for t in (times["no.such.user"], times["nurse"]))
    assert unknown >= known / 4, f"unknown {unknown * 1000:.0f} ms, known {known * 1000:.0f} ms"


# --- 6. no patient data in logs --------------------------------------------------------------

# More patients of the log tests: registered through the API, imported as FHIR, typed into
# the intake form.
PATIENT_2 = ("MRN-WV5520", "Brumblethorpe", "Ottoline", "1957-02-14")
PATIENT_3 = ("MRN-FH9043", "Castellwynd", "Isembard", "1948-12-03")
PATIENT_4 = ("MRN-PG3187", "Drovermoor", "Perpetua", "1969-06-30")
LOGGED_NEVER = IDENTITY + CLINICAL + PATIENT_2 + PATIENT_3 + PATIENT_4 + (PASSWORD,)


def _as_fields(p: tuple[str, str, str, str]) -> dict[str, str]:
    return dict(zip(("mrn", "family_name", "given_name", "birth_date"), p, strict=True))


def _requests_with_patient_data(
    client: Any, patient_id: str, token: str
) -> list[tuple[str, httpx.Response]]:
    """Requests that carry patient data in the path, the query string and the body, and
    get 200, 201, 303, 401, 404, 409 and 422: (the access log line expected, answer)."""
    bearer = {"Authorization": f"Bearer {token}"}
    made: list[tuple[str, httpx.Response]] = []

    def call(route: str, status: int, method: str, url: str, **kwargs: Any) -> httpx.Response:
        resp = client.request(method, url, **kwargs)
        assert resp.status_code == status, (method, url, resp.status_code, resp.text[:200])
        made.append((f"{method} {route} {status}", resp))
        return resp

    pat, one = f"{API}/patients", f"{API}/patients/{{patient_id}}"
    for term in (FAMILY, MRN, GIVEN):
        call(pat, 200, "GET", pat, params={"search": term}, headers=bearer)
    call(pat, 401, "GET", pat, params={"search": FAMILY})
    call(one, 200, "GET", f"{pat}/{patient_id}", headers=bearer)
    call(one, 404, "GET", f"{pat}/{uuid.uuid4()}", params={"name": FAMILY}, headers=bearer)
    second = _as_fields(PATIENT_2) | {"sex": "male"}
    call(pat, 201, "POST", pat, json=second, headers=bearer)
    call(pat, 409, "POST", pat, json=second, headers=bearer)
    typo = second | {"mrn": f"{MRN}-X", "birth_date": f"{BIRTH:%d/%m/%Y} ({FAMILY})"}
    call(pat, 422, "POST", pat, json=typo, headers=bearer)
    extra = {"substance": ALLERGEN, "reaction": REACTION, "note": FAMILY}
    call(
        f"{one}/allergies", 422, "POST", f"{pat}/{patient_id}/allergies", json=extra, headers=bearer
    )
    call("/fhir", 200, "POST", "/fhir", json=_bundle(*PATIENT_3), headers=bearer)
    clash = _bundle(PATIENT_3[0], FAMILY, GIVEN, PATIENT_3[3])  # same MRN, another person
    call("/fhir", 409, "POST", "/fhir", json=clash, headers=bearer)
    everything = "/fhir/Patient/{patient_id}/$everything"
    call(everything, 200, "GET", everything.replace("{patient_id}", patient_id), headers=bearer)
    # The pages, signed in through the form.
    login = call("/login", 200, "GET", "/login")
    found = _TOKEN.search(login.text)
    assert found
    form = {"csrf_token": found.group(1), "_form": "login", "username": "nurse"}
    call("/login", 303, "POST", "/login?next=/home", data=form | {"password": PASSWORD})
    call("/patients", 200, "GET", "/patients", params={"q": FAMILY})
    call("/patients/{patient_id}", 200, "GET", f"/patients/{patient_id}")
    intake = _TOKEN.search(call("/patients/new", 200, "GET", "/patients/new").text)
    assert intake
    fourth = _as_fields(PATIENT_4) | {
        "csrf_token": intake.group(1),
        "_form": "intake",
        "sex": "female",
    }
    typed = fourth | {"birth_date": PATIENT_4[3].replace("-", "/")}
    call("/patients/new", 422, "POST", "/patients/new", data=typed)
    call("/patients/new", 303, "POST", "/patients/new", data=fourth)
    allergy = {
        "csrf_token": intake.group(1),
        "_form": "allergies",
        "reaction": f"{FAMILY} {REACTION}",
    }
    call(
        "/patients/{patient_id}/{section}",
        422,
        "POST",
        f"/patients/{patient_id}/allergies",
        data=allergy,
    )
    return made


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVED_TEST = "test_served_app_logs_no_patient_data"


@dataclass
class Served:
    """A ``ketapain serve`` subprocess on an SQLite file, and where its output goes."""

    process: subprocess.Popen[bytes]
    url: str
    base: str
    output: list[Path]

    def wait_until_up(self) -> None:
        """Poll /health until it answers (the CLI imports everything first)."""
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.base}{API}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, self.read()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)

    def stop(self) -> str:
        """Ctrl-C (SIGINT) and wait; everything it wrote, stdout then stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.process.kill()
                self.process.wait()
        return self.read()

    def read(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.output)


@pytest.fixture(scope="module")
def ketapain_serve(
    _sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """``ketapain serve`` on a copy of the migrated template with the staff users."""
    exe = Path(sys.executable).with_name("ketapain")
    assert exe.exists(), exe
    folder = tmp_path_factory.mktemp("served")
    shutil.copyfile(_sqlite_template, folder / "clinic.db")
    url = f"sqlite:///{folder / 'clinic.db'}"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KETAPAIN_")}
    output = [folder / "stdout.txt", folder / "stderr.txt"]
    with output[0].open("wb") as out, output[1].open("wb") as err:
        process = subprocess.Popen(
            [str(exe), "serve", "--database-url", url, "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=err,
            env=env | {"PYTHONUNBUFFERED": "1"},
            cwd=folder,
        )
    served = Served(process, url, f"http://127.0.0.1:{port}", output)
    yield served
    served.stop()


@pytest.fixture(scope="module", autouse=True)
def _start_the_server_early(request: pytest.FixtureRequest) -> None:
    """When the served test is to run, start its server with the module's first test:
    ``ketapain serve`` takes seconds to import, which then overlap the other tests.
    (Not under pytest-xdist, where every worker would start one.)"""
    wanted = any(item.name == SERVED_TEST for item in request.session.items)
    if wanted and "PYTEST_XDIST_WORKER" not in os.environ:
        request.getfixturevalue("ketapain_serve")


@pytest.mark.slow
def test_served_app_logs_no_patient_data(ketapain_serve: Served) -> None:
    """``ketapain serve`` asked for patients by name and MRN in query strings, sent them in
    bodies (201, 409, 422), a 404, a FHIR import and its clash, page views and form posts:
    once stopped, nothing it wrote names the patients, their dates of birth, a clinical
    value, a password, a token, the session id or the patient's id; its access log has a
    line per request, naming a route template (no query string, no id), the pages' in full."""
    ketapain_serve.wait_until_up()
    db = Database.connect(ketapain_serve.url)
    try:
        with db.session() as session:
            users = {str(u.role): u for u in session.scalars(select(User))}
        patient_id = str(_register_patient(db, {r: u.actor() for r, u in users.items()}).id)
        token = issue_token(db, Settings(), users["nurse"], kind=TokenKind.API)
    finally:
        db.dispose()
    with httpx.Client(base_url=ketapain_serve.base, follow_redirects=False, timeout=30) as client:
        made = _requests_with_patient_data(client, patient_id, token)
        session_id = client.cookies.get(SESSION_COOKIE) or "no session"
    logged = ketapain_serve.stop()
    leaked = [s for s in (*LOGGED_NEVER, token, session_id, patient_id) if s in logged]
    assert not leaked, f"the server's output holds {leaked}:\n{logged}"
    access = re.findall(r"\b(GET|POST|HEAD) (\S+) (\d{3}) [\d.]+ ms", logged)
    assert len(access) >= len(made) + 1  # and the health checks
    assert all("?" not in route and not _UUID.search(route) for _, route, _ in access), access
    pages = {line for line, _ in made if not line.split()[1].startswith((API, "/fhir"))}
    assert pages <= {" ".join(line) for line in access}


def _app_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The records of the server side: the test client's own loggers (httpx, httpx2,
    httpcore log each URL they request, query string included) are left out."""
    client = ("httpx", "httpx2", "httpcore", "hpack")
    return [r for r in caplog.records if r.name.split(".")[0] not in client]


def _logged_text(records: list[logging.LogRecord]) -> str:
    parts = []
    for r in records:
        parts.append(r.getMessage())
        if r.exc_info and r.exc_info[1] is not None:
            parts.append(logging.Formatter().formatException(r.exc_info))
        if r.stack_info:
            parts.append(r.stack_info)
    return "\n".join(parts)


def test_app_logs_no_patient_data(
    db: Database, patient_id: str, staff_users: dict[str, User], caplog: pytest.LogCaptureFixture
) -> None:
    """In-process, every logger at DEBUG (SQLAlchemy's at INFO: every statement, but not
    the result rows, the strict xfail below): the requests of the served test log no
    patient data, clinical value, password, token, session id or patient id; the access
    log has one line per request."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="sqlalchemy")
    token = issue_token(db, Settings(), staff_users["nurse"], kind=TokenKind.API)
    app = create_app(Settings(), db=db)
    with TestClient(app, follow_redirects=False) as client:
        caplog.clear()
        made = _requests_with_patient_data(client, patient_id, token)
        session = client.cookies.get(SESSION_COOKIE) or "no session"
    records = _app_records(caplog)
    text = _logged_text(records)
    leaked = [s for s in (*LOGGED_NEVER, token, session, patient_id) if s in text]
    assert not leaked, f"logged: {leaked}"
    assert len([r for r in records if r.name == "ketapain.access"]) == len(made)
    assert any(r.name.startswith("sqlalchemy.engine") for r in records)  # it did log


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_debug_logging_of_sqlalchemy_logs_no_patient_data(
    db: Database, patient_id: str, sessions: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Every logger at DEBUG, SQLAlchemy's included: reading a record logs no patient data."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    with TestClient(create_app(Settings(), db=db)) as client:
        resp = client.get(f"/patients/{patient_id}", headers=_cookie(sessions["nurse"]))
        assert resp.status_code == 200
    assert not _patient_data_in(_logged_text(_app_records(caplog)), LOGGED_NEVER)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_access_log_names_the_full_route_template(
    db: Database,
    patient_id: str,
    headers: dict[str, dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each access log line names the template of the route that answered, prefix
    included."""
    caplog.set_level(logging.INFO, logger="ketapain.access")
    expected = {
        f"{API}/patients/{patient_id}": f"{API}/patients/{{patient_id}}",
        f"/fhir/Patient/{patient_id}/$everything": "/fhir/Patient/{patient_id}/$everything",
        f"/patients/{patient_id}": "/patients/{patient_id}",
        "/static/ketapain.css": "/static/{file}",
        "/docs": "/docs",
    }
    with TestClient(create_app(Settings(), db=db), follow_redirects=False) as client:
        for path in expected:
            client.get(path, headers=headers["nurse"])
    lines = [r.getMessage() for r in caplog.records if r.name == "ketapain.access"]
    assert [line.split()[1] for line in lines] == list(expected.values())


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_unhandled_error_is_logged_without_its_message(
    db: Database, patient_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An unhandled error whose message quotes patient data: the caller gets a 500 with a
    reference (JSON for the API, an OperationOutcome under /fhir, a page elsewhere) and
    the security headers; the error log names its type, the route template and the
    reference, not its message, the path's values or the query string."""
    caplog.set_level(logging.DEBUG)
    app = create_app(Settings(), db=db)

    def fail(patient_id: str) -> None:
        raise RuntimeError(f"cannot read {FAMILY}, {GIVEN} ({MRN}) of {patient_id}")

    kinds = {API: "application/json", "/fhir": "application/fhir+json", "": "text/html"}
    for prefix in kinds:
        app.add_api_route(f"{prefix}/test-failure/{{patient_id}}", fail, methods=["GET"])
    with TestClient(app) as client:
        for prefix, content_type in kinds.items():
            url = f"{prefix}/test-failure/{patient_id}"
            resp = client.get(url, params={"name": FAMILY})
            assert resp.status_code == 500
            assert resp.headers["content-type"].startswith(content_type)
            assert not _header_problems(resp, url)
            assert not _patient_data_in(resp.text, LOGGED_NEVER)
            reference = re.search(r"reference ([0-9a-f]{12})", resp.text)
            assert reference, resp.text
            error = [r for r in caplog.records if r.name == "ketapain.error"][-1].getMessage()
            assert reference.group(1) in error and "RuntimeError" in error
            assert f"GET {prefix}/test-failure/{{patient_id}}" in error
    leaked = [s for s in (*LOGGED_NEVER, patient_id) if s in _logged_text(_app_records(caplog))]
    assert not leaked


# --- 7. security headers ----------------------------------------------------------------------


@pytest.mark.parametrize("secure", [False, True])
@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_security_headers_on_every_kind_of_answer(
    db: Database, patient_id: str, staff_users: dict[str, User], secure: bool
) -> None:
    """A page, an API answer, FHIR (answer and error), 401, 403, 404, 405, 422, redirects,
    a static file and the docs: a CSP without 'unsafe-inline' (but on /docs), nosniff,
    DENY, no-referrer, no-store (but static files), a Permissions-Policy, COOP
    same-origin; HSTS exactly when ``secure_cookies`` says the deployment runs on TLS."""
    settings = Settings(secure_cookies=secure)
    nurse = staff_users["nurse"]
    cookie = _cookie(issue_token(db, settings, nurse, kind=TokenKind.SESSION))
    bearer = {"Authorization": f"Bearer {issue_token(db, settings, nurse, kind=TokenKind.API)}"}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/home", {"headers": cookie}),
        ("GET", f"/patients/{patient_id}", {"headers": cookie}),
        ("GET", "/login", {}),
        ("GET", f"{API}/patients/{patient_id}", {"headers": bearer}),
        ("GET", "/fhir/metadata", {}),
        ("GET", f"/fhir/Patient/{patient_id}/$everything", {"headers": bearer}),
        ("GET", f"/fhir/Patient/{patient_id}/$everything", {}),
        ("GET", f"{API}/patients", {}),
        ("GET", f"{API}/audit", {"headers": bearer}),  # 403: a nurse
        ("GET", "/admin/audit", {"headers": cookie}),  # 403 page
        ("GET", f"{API}/no-such-route", {}),
        ("GET", f"{API}/patients/{uuid.uuid4()}", {"headers": bearer}),
        ("GET", "/no-such-page", {}),
        ("GET", f"/patients/{uuid.uuid4()}", {"headers": cookie}),
        ("DELETE", f"{API}/patients", {"headers": bearer}),  # 405
        ("POST", f"{API}/patients", {"headers": bearer, "json": {"mrn": ""}}),  # 422
        ("GET", "/", {}),
        ("GET", "/home", {}),
        ("GET", "/static/ketapain.css", {}),
        ("GET", "/static/ketapain.js", {}),
        ("GET", "/docs", {}),
        ("GET", f"{API}/openapi.json", {}),
    ]
    with TestClient(create_app(settings, db=db), follow_redirects=False) as client:
        answers = [(path, client.request(m, path, **kw)) for m, path, kw in calls]
    assert {200, 303, 401, 403, 404, 405, 422} <= {resp.status_code for _, resp in answers}
    problems = [p for path, resp in answers for p in _header_problems(resp, path, hsts=secure)]
    assert not problems, "\n".join(problems)
    docs = next(resp for path, resp in answers if path == "/docs")
    assert "'unsafe-inline'" in docs.headers["content-security-policy"]  # Swagger UI's script


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def served(db: Database) -> Iterator[str]:
    """The app on the test database, served by uvicorn in a thread: its base URL."""
    import uvicorn

    app = create_app(Settings(), db=db)
    config = uvicorn.Config(app, host="127.0.0.1", port=_free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{config.port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_pages_work_under_their_csp_in_chromium(served: str, world: World) -> None:
    """In headless Chromium: the sign-in page, the home page after signing in, the
    record, the course and the chair view raise no CSP violation (console message or
    ``securitypolicyviolation`` event) and no script error; an inline script added to the
    page is blocked, so the policy is in force."""
    if not CHROMIUM.exists():
        if os.environ.get("KETAPAIN_REQUIRE_BROWSER") == "1":
            pytest.fail("KETAPAIN_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing")
        pytest.skip("Debian chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = browser.new_context()
            context.add_init_script(
                "window.__csp = []; document.addEventListener('securitypolicyviolation',"
                " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
            )
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            violations: list[tuple[str, Any]] = []

            def visit(path: str) -> None:
                resp = page.goto(served + path)
                assert resp is not None and resp.status == 200, path
                violations.append((path, page.evaluate("window.__csp")))

            visit("/login")
            page.get_by_label("Username").fill("nurse")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(served + "/home")
            for path in (
                "/home",
                f"/patients/{world.patient_id}",
                f"/courses/{world.course_id}",
                f"/infusions/{world.infusion_id}",
            ):
                visit(path)
            assert not [(p, v) for p, v in violations if v], violations
            assert not [m for m in console if "Content Security Policy" in m], console
            assert not [m for m in console if m.startswith("pageerror")], console
            # The policy is in force: an inline script added to the page does not run.
            page.evaluate(
                "() => { const s = document.createElement('script');"
                " s.textContent = 'window.__inline_ran = true;';"
                " document.body.appendChild(s); }"
            )
            assert page.evaluate("window.__inline_ran === undefined")
            assert page.evaluate("window.__csp.length") >= 1
        finally:
            browser.close()
