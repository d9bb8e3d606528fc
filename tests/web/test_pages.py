"""The server-rendered clinic pages: sign-in, CSRF, forms that keep what was typed, roles,
the chair view with its alarms and rate guardrails, planning and the audit trail.

Each test drives the pages as a browser would: GET a page, read its CSRF token, post the
form (``application/x-www-form-urlencoded``) and follow the 303 by hand.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ketapain.clinic.alarms import Alarm
from ketapain.clinic.courses import Course
from ketapain.clinic.db import Database
from ketapain.clinic.infusions import InfusionEvent
from ketapain.clinic.patients import Medication, Patient
from ketapain.config import Settings
from ketapain.web.app import create_app
from ketapain.web.pages._render import csrf_token

PASSWORD = "test-password-1"  # the template users' password (tests/conftest.py)
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_ALARM_ID = re.compile(r'name="alarm_id" value="([^"]+)"')
_OVERRIDE = re.compile(r'name="override_code" value="([^"]+)"')
PLAN_QUERY = {
    "protocol": "seed-outpatient",
    "start_date": "2026-12-07",
    "bag_mg": "250",
    "bag_ml": "250",
}
Browser = Callable[[str], TestClient]


def _token(page: str) -> str:
    found = _TOKEN.search(page)
    assert found, "no csrf_token in the page"
    return found.group(1)


def csrf(client: TestClient, path: str = "/home") -> str:
    """GET ``path`` (a signed-in page) and return the CSRF token of its forms."""
    resp = client.get(path)
    assert resp.status_code == 200, resp.text
    return _token(resp.text)


def sign_in(client: TestClient, username: str, next_url: str = "/home") -> Any:
    """Sign in through the login form; returns the answer to the POST."""
    page = client.get("/login")
    assert page.status_code == 200
    return client.post(
        "/login",
        params={"next": next_url},
        data={
            "csrf_token": _token(page.text),
            "_form": "login",
            "username": username,
            "password": PASSWORD,
        },
    )


def _count(db: Database, model: Any, *where: Any) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _field_value(page: str, form: str, name: str) -> str | None:
    """The ``value`` of the input ``{form}-{name}``, unescaped."""
    found = re.search(rf'id="{form}-{name}" name="{name}" type="[^"]*" value="([^"]*)"', page)
    return None if found is None else html.unescape(found.group(1))


def _error_of(page: str, form: str, name: str) -> str | None:
    """The error shown next to the field ``{form}-{name}``."""
    found = re.search(rf'<p id="{form}-{name}-error" class="error">([^<]*)</p>', page)
    return None if found is None else html.unescape(found.group(1))


@pytest.fixture
def app(db: Database) -> Any:
    """The application on the test database, default settings."""
    return create_app(Settings(), db=db)


@pytest.fixture
def browser(app: Any) -> Iterator[Browser]:
    """``browser(username)``: a client signed in as that user (redirects not followed)."""
    clients: list[TestClient] = []

    def open_as(username: str) -> TestClient:
        client = TestClient(app, follow_redirects=False)
        clients.append(client)
        resp = sign_in(client, username)
        assert resp.status_code == 303, resp.text
        return client

    yield open_as
    for client in clients:
        client.close()


@pytest.fixture
def anon(app: Any) -> Iterator[TestClient]:
    """A client not signed in (redirects not followed)."""
    with TestClient(app, follow_redirects=False) as client:
        yield client


# --- sign-in, sign-out, CSRF -------------------------------------------------------------


def test_sign_in_sets_httponly_session_and_goes_to_next(anon: TestClient) -> None:
    """A right password opens an HttpOnly session cookie and goes to ``next``."""
    login = anon.get("/login")
    assert "ketapain_login" in login.cookies
    assert 'name="_form" value="login"' in login.text
    resp = sign_in(anon, "nurse", next_url="/patients")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/patients"
    cookie = next(
        h for h in resp.headers.get_list("set-cookie") if h.startswith("ketapain_session=")
    )
    assert "httponly" in cookie.lower()
    assert "samesite=strict" in cookie.lower()
    home = anon.get("/home")
    assert home.status_code == 200
    assert "Test Nurse RN" in home.text


def test_wrong_password_is_401_and_keeps_the_username(anon: TestClient) -> None:
    """A wrong password answers 401 with the error and the username still typed."""
    page = anon.get("/login")
    resp = anon.post(
        "/login?next=/home",
        data={
            "csrf_token": _token(page.text),
            "_form": "login",
            "username": "nurse",
            "password": "not-the-password",
        },
    )
    assert resp.status_code == 401
    assert "text/html" in resp.headers["content-type"]
    assert _field_value(resp.text, "login", "username") == "nurse"
    assert _error_of(resp.text, "login", "password")
    assert "ketapain_session" not in resp.cookies
    assert "not-the-password" not in resp.text


@pytest.mark.parametrize("target", ["//evil.example", "https://evil.example/x", "/\\evil"])
def test_next_after_sign_in_stays_on_the_site(anon: TestClient, target: str) -> None:
    """A ``next`` pointing off the site (``//host``, a scheme) goes to /home instead."""
    resp = sign_in(anon, "doc", next_url=target)
    assert resp.status_code == 303
    assert resp.headers["location"] == "/home"


def test_login_without_the_login_cookie_is_refused(anon: TestClient) -> None:
    """A sign-in post without the login cookie (a form on another site) is refused."""
    anon.cookies.clear()
    resp = anon.post(
        "/login?next=/home",
        data={
            "csrf_token": csrf_token(""),  # what the server expects when the cookie is absent
            "_form": "login",
            "username": "nurse",
            "password": PASSWORD,
        },
    )
    assert resp.status_code == 403
    assert "ketapain_session" not in resp.cookies


def test_sign_in_comes_back_to_the_page_asked_for(anon: TestClient, patient: Patient) -> None:
    """From the redirect of a page to the sign-in form and back, query string included."""
    asked = f"/patients/{patient.id}/plan?protocol=seed-outpatient"
    resp = anon.get(asked)
    assert resp.status_code == 303
    login = anon.get(resp.headers["location"])
    assert login.status_code == 200
    action = re.search(r'<form method="post" action="([^"]+)"', login.text)
    assert action
    resp = anon.post(
        html.unescape(action.group(1)),
        data={
            "csrf_token": _token(login.text),
            "_form": "login",
            "username": "doc",
            "password": PASSWORD,
        },
    )
    assert resp.status_code == 303
    assert resp.headers["location"] == asked


def test_pages_need_a_session(anon: TestClient, patient: Patient) -> None:
    """Without a session a page redirects to the sign-in page, coming back after."""
    resp = anon.get(f"/patients/{patient.id}", params={"x": "1"})
    assert resp.status_code == 303
    assert resp.headers["location"] == f"/login?next=/patients/{patient.id}%3Fx%3D1"
    assert anon.get("/home").headers["location"] == "/login?next=/home"
    # The API answers JSON, never a redirect.
    api = anon.get(f"/api/v1/patients/{patient.id}")
    assert api.status_code == 401
    assert api.json()["error"] == "not_authenticated"


def test_logout_revokes_the_session(browser: Browser, app: Any) -> None:
    """After signing out, the old session cookie no longer opens a page."""
    client = browser("nurse")
    secret = client.cookies["ketapain_session"]
    resp = client.post("/logout", data={"csrf_token": csrf(client)})
    assert resp.status_code == 303
    assert resp.headers["location"] == "/login"
    assert client.get("/home").headers["location"].startswith("/login")
    # The same secret replayed (e.g. a copied cookie) is refused too: revoked, not just deleted.
    with TestClient(app, follow_redirects=False, cookies={"ketapain_session": secret}) as replay:
        again = replay.get("/home")
    assert again.status_code == 303
    assert again.headers["location"] == "/login?next=/home"


@pytest.mark.parametrize("token", [None, "0" * 64], ids=["no-token", "wrong-token"])
def test_form_without_the_right_csrf_token_is_refused(
    browser: Browser, db: Database, token: str | None
) -> None:
    """A post without the session's CSRF token is a 403 page and writes nothing."""
    client = browser("desk")
    before = _count(db, Patient)
    data = {
        "_form": "intake",
        "mrn": "CSRF-1",
        "family_name": "Forged",
        "given_name": "Form",
        "birth_date": "1990-01-01",
        "sex": "male",
    }
    if token is not None:
        data["csrf_token"] = token
    resp = client.post("/patients/new", data=data)
    assert resp.status_code == 403
    assert "text/html" in resp.headers["content-type"]
    assert "stale or came from another site" in resp.text
    assert _count(db, Patient) == before


# --- intake and the record ---------------------------------------------------------------


def test_intake_error_keeps_every_value_then_registers(browser: Browser, db: Database) -> None:
    """A bad date and weight come back with every typed value and their errors; then 303."""
    client = browser("nurse")
    typed = {
        "mrn": "NEW-0042",
        "family_name": "O'Brien & Søn",
        "given_name": "Máire",
        "birth_date": "31-02-2020",
        "sex": "female",
        "weight_kg": "abc",
        "height_cm": "171",
    }
    token = csrf(client, "/patients/new")
    resp = client.post("/patients/new", data={"csrf_token": token, "_form": "intake", **typed})
    assert resp.status_code == 422
    page = resp.text
    for name in ("mrn", "family_name", "given_name", "birth_date", "weight_kg", "height_cm"):
        assert _field_value(page, "intake", name) == typed[name], name
    assert '<option value="female" selected>' in page
    assert "YYYY-MM-DD" in (_error_of(page, "intake", "birth_date") or "")
    assert "number" in (_error_of(page, "intake", "weight_kg") or "")
    assert 'class="error-summary"' in page
    assert _count(db, Patient, Patient.mrn == "NEW-0042") == 0

    fixed = {**typed, "birth_date": "1988-02-29", "weight_kg": "72.5"}
    resp = client.post("/patients/new", data={"csrf_token": token, "_form": "intake", **fixed})
    assert resp.status_code == 303, resp.text
    location = resp.headers["location"]
    assert re.fullmatch(r"/patients/[0-9a-f-]{36}", location)
    record = client.get(location)
    assert record.status_code == 200
    assert "Patient registered." in record.text
    assert "NEW-0042" in record.text  # on the record itself, not in the flash cookie
    assert "O'Brien & Søn, Máire" in html.unescape(record.text)
    assert "72.5 kg" in record.text


def test_refused_intake_writes_no_patient(browser: Browser, db: Database) -> None:
    """An intake the page answers with 'Not saved' leaves no patient behind."""
    client = browser("desk")
    typed = {
        "mrn": "DESK-0007",
        "family_name": "Weighed",
        "given_name": "Wendy",
        "birth_date": "1975-06-30",
        "sex": "female",
        "weight_kg": "64",
    }
    token = csrf(client, "/patients/new")
    resp = client.post("/patients/new", data={"csrf_token": token, "_form": "intake", **typed})
    written = _count(db, Patient, Patient.mrn == "DESK-0007")
    if resp.status_code == 303:  # the weight accepted with the patient: one patient
        assert written == 1
    else:  # refused: the typed values come back and nothing is written
        assert resp.status_code == 422
        assert "Not saved." in resp.text
        assert _field_value(resp.text, "intake", "family_name") == "Weighed"
        assert written == 0


def test_record_form_error_keeps_the_input(
    browser: Browser, db: Database, patient: Patient
) -> None:
    """A medication with dose "lots" comes back as typed (escaped), the error by the dose."""
    client = browser("nurse")
    token = csrf(client, f"/patients/{patient.id}")
    resp = client.post(
        f"/patients/{patient.id}/medications",
        data={
            "csrf_token": token,
            "_form": "medications",
            "name": "oxycodone <script>x()</script>",
            "dose_mg_per_day": "lots",
        },
    )
    assert resp.status_code == 422
    assert _field_value(resp.text, "medications", "name") == "oxycodone <script>x()</script>"
    assert "<script>x()" not in resp.text  # kept, but escaped
    assert _field_value(resp.text, "medications", "dose_mg_per_day") == "lots"
    assert "Must be a number (got lots)" in (
        _error_of(resp.text, "medications", "dose_mg_per_day") or ""
    )
    # Other forms on the page are not filled with this form's values.
    assert _field_value(resp.text, "allergies", "substance") == ""
    assert _count(db, Medication, Medication.patient_id == patient.id) == 0


def test_diagnosis_by_icd_code_appears_on_the_record(browser: Browser, patient: Patient) -> None:
    """A diagnosis added by ICD-10-CM code shows on the record with its label."""
    client = browser("doc")
    token = csrf(client, f"/patients/{patient.id}")
    resp = client.post(
        f"/patients/{patient.id}/diagnoses",
        data={"csrf_token": token, "_form": "diagnoses", "code": "M79.7"},
    )
    assert resp.status_code == 303
    assert resp.headers["location"] == f"/patients/{patient.id}#diagnoses"
    page = client.get(f"/patients/{patient.id}").text
    assert "Saved to the record." in page
    assert "<li>fibromyalgia <small" in page
    # An unknown code is an error next to the field, not a silent drop.
    bad = client.post(
        f"/patients/{patient.id}/diagnoses",
        data={"csrf_token": token, "_form": "diagnoses", "code": "Z99.999"},
    )
    assert bad.status_code == 422
    assert _field_value(bad.text, "diagnoses", "code") == "Z99.999"
    assert _error_of(bad.text, "diagnoses", "code")


def test_front_desk_sees_no_clinical_sections_nor_the_chair(
    browser: Browser, patient: Patient, infusion: dict[str, Any]
) -> None:
    """The front desk sees demographics only, and the chair view is a 403 page."""
    client = browser("desk")
    page = client.get(f"/patients/{patient.id}")
    assert page.status_code == 200
    assert "Doe, Jane" in page.text
    for form in ("screen", "diagnoses", "medications", "labs", "allergies", "measurements"):
        assert f'id="form-{form}"' not in page.text, form
    assert "complex regional pain syndrome" not in page.text
    chair = client.get(f"/infusions/{infusion['id']}")
    assert chair.status_code == 403
    assert "text/html" in chair.headers["content-type"]
    assert "<h1>Not allowed</h1>" in chair.text
    assert client.get(f"/infusions/{infusion['id']}/live").status_code == 403


def test_the_record_links_its_fhir_bundle_for_clinicians(
    browser: Browser, patient: Patient
) -> None:
    """A nurse's patient page links the record as a FHIR R4 Bundle, which the signed-in
    page session downloads (a searchset whose first entry is this patient); the front
    desk sees no link and the Bundle is refused to it (403 OperationOutcome)."""
    nurse = browser("nurse")
    page = nurse.get(f"/patients/{patient.id}")
    link = f"/fhir/Patient/{patient.id}/$everything"
    assert f'href="{link}"' in page.text
    bundle = nurse.get(link)
    assert bundle.status_code == 200
    assert bundle.headers["content-type"].startswith("application/fhir+json")
    assert bundle.json()["type"] == "searchset"
    assert bundle.json()["entry"][0]["resource"]["identifier"][0]["value"] == "T-0001"
    desk = browser("desk")
    assert link not in desk.get(f"/patients/{patient.id}").text
    refused = desk.get(link)
    assert refused.status_code == 403
    assert refused.json()["resourceType"] == "OperationOutcome"


# --- the chair view ----------------------------------------------------------------------


def _post(client: TestClient, infusion_id: str, action: str, **fields: Any) -> Any:
    token = csrf(client, f"/infusions/{infusion_id}")
    return client.post(
        f"/infusions/{infusion_id}/{action}",
        data={"csrf_token": token, "_form": action, **fields},
    )


def _start(client: TestClient, infusion: dict[str, Any]) -> None:
    rate = infusion["program"][0]["rate_mg_per_h"]
    resp = _post(client, infusion["id"], "event", kind="start", rate=str(rate), rate_unit="mg/h")
    assert resp.status_code == 303, resp.text


def _rate_changes(db: Database, infusion_id: str) -> list[float]:
    with db.session() as session:
        rows = session.scalars(
            select(InfusionEvent.rate_mg_per_h)
            .where(
                InfusionEvent.infusion_id == uuid.UUID(infusion_id),
                InfusionEvent.kind == "rate_change",
            )
            .order_by(InfusionEvent.sequence)
        )
        return [float(r) for r in rows if r is not None]


def test_high_sbp_raises_an_alarm_shown_until_acknowledged(
    browser: Browser, db: Database, infusion: dict[str, Any]
) -> None:
    """SBP 200 charted on the chair raises alarms on the chair and /home; ack clears them."""
    nurse = browser("nurse")
    iid = infusion["id"]
    _start(nurse, infusion)
    resp = _post(
        nurse,
        iid,
        "vitals",
        sbp_mmhg="200",
        dbp_mmhg="95",
        hr_per_min="88",
        rr_per_min="14",
        spo2_pct="97",
    )
    assert resp.status_code == 303
    chair = nurse.get(f"/infusions/{iid}").text
    assert "ALARM (stop)" in chair  # the flash after the post
    assert "Alarms to acknowledge" in chair
    assert "<td>200/95</td>" in chair
    alarm_ids = _ALARM_ID.findall(chair)
    assert alarm_ids
    assert len(alarm_ids) == _count(db, Alarm, Alarm.infusion_id == uuid.UUID(iid))
    home = nurse.get("/home").text
    assert "Open alarms" in home
    assert f'href="/infusions/{iid}"' in home

    # A note is required to acknowledge.
    no_note = _post(nurse, iid, "ack", alarm_id=alarm_ids[0], note="")
    assert no_note.status_code == 422
    for alarm_id in alarm_ids:
        ack = _post(nurse, iid, "ack", alarm_id=alarm_id, note="BP rechecked, pump paused")
        assert ack.status_code == 303, ack.text
    assert "Alarms to acknowledge" not in nurse.get(f"/infusions/{iid}").text
    assert "Open alarms" not in nurse.get("/home").text


def test_rate_change_needs_a_reason(
    browser: Browser, db: Database, infusion: dict[str, Any]
) -> None:
    """A rate change without a reason is a 422 with the error by the reason field."""
    nurse = browser("nurse")
    _start(nurse, infusion)
    resp = _post(nurse, infusion["id"], "event", kind="rate_change", rate="15", rate_unit="mg/h")
    assert resp.status_code == 422
    assert "why the rate changes" in (_error_of(resp.text, "event", "reason") or "")
    assert _field_value(resp.text, "event", "rate") == "15"
    assert _rate_changes(db, infusion["id"]) == []


def test_a_pump_form_read_before_another_change_is_a_conflict(
    browser: Browser, db: Database, infusion: dict[str, Any]
) -> None:
    """The pump form carries the version it was drawn on; when the physician changed the
    rate after the nurse opened the page, the nurse's change is refused (409) with the
    physician's change named, and the page drawn again carries the new version."""
    nurse, doctor = browser("nurse"), browser("doc")
    _start(nurse, infusion)
    iid = infusion["id"]
    page = nurse.get(f"/infusions/{iid}").text
    assert 'name="expected_version" value="1"' in page
    stale = _token(page)
    resp = _post(doctor, iid, "event", kind="rate_change", rate="14", rate_unit="mg/h",
                 reason="pain 8/10", expected_version="1")  # fmt: skip
    assert resp.status_code == 303, resp.text
    resp = nurse.post(
        f"/infusions/{iid}/event",
        data={"csrf_token": stale, "_form": "event", "kind": "rate_change", "rate": "10",
              "rate_unit": "mg/h", "reason": "drowsy", "expected_version": "1"},
    )  # fmt: skip
    assert resp.status_code == 409, resp.text
    assert "The pump changed since you read it" in resp.text
    assert "rate change to 14 mg/h by doc" in resp.text
    assert 'name="expected_version" value="2"' in resp.text
    assert _rate_changes(db, iid) == [14.0]


def test_nurse_cannot_exceed_the_plan_max(
    browser: Browser, db: Database, infusion: dict[str, Any]
) -> None:
    """A nurse's rate above the plan's maximum is refused (403, a role rule) with the
    reason on the pump form; nothing charted."""
    nurse = browser("nurse")
    _start(nurse, infusion)
    plan_max = infusion["plan_max_rate_mg_per_h"]
    assert plan_max < 500
    resp = _post(
        nurse,
        infusion["id"],
        "event",
        kind="rate_change",
        rate="500",
        rate_unit="mg/h",
        reason="pain not controlled",
    )
    assert resp.status_code == 403
    assert "text/html" in resp.headers["content-type"]
    summary = re.search(
        r'<div class="error-summary"[^>]*id="errors-event">(.*?)</div>', resp.text, re.S
    )
    assert summary, "no error summary on the pump form"
    text = html.unescape(summary.group(1))
    assert "a nurse may not change rate" in text
    assert f"500 mg/h is above the plan's maximum of {plan_max:.1f} mg/h" in text
    assert _field_value(resp.text, "event", "rate") == "500"
    assert _rate_changes(db, infusion["id"]) == []
    # Within the plan the nurse may titrate.
    ok = _post(
        nurse,
        infusion["id"],
        "event",
        kind="rate_change",
        rate=str(plan_max),
        rate_unit="mg/h",
        reason="titration step",
    )
    assert ok.status_code == 303, ok.text
    assert _rate_changes(db, infusion["id"]) == [pytest.approx(plan_max)]


def test_physician_exceeds_the_plan_max_but_a_hard_stop_needs_an_override(
    browser: Browser, db: Database, infusion: dict[str, Any]
) -> None:
    """A physician may go above the plan; above the drug library's hard maximum only with
    an override code and reason."""
    doc = browser("doc")
    iid = infusion["id"]
    _start(doc, infusion)
    plan_max = infusion["plan_max_rate_mg_per_h"]
    above_plan = 30.0  # > plan max (0.3 mg/kg/h x 68 kg), < 60 mg/h and < 1 mg/kg/h
    assert plan_max < above_plan
    resp = _post(
        doc,
        iid,
        "event",
        kind="rate_change",
        rate=str(above_plan),
        rate_unit="mg/h",
        reason="poor response",
    )
    assert resp.status_code == 303, resp.text
    assert _rate_changes(db, iid) == [pytest.approx(above_plan)]

    # 65 mg/h: above the outpatient hard maximum of 60 mg/h (drug library).
    stop = _post(
        doc, iid, "event", kind="rate_change", rate="65", rate_unit="mg/h", reason="escalate"
    )
    assert stop.status_code == 409
    assert "Hard stop." in stop.text
    codes = _OVERRIDE.findall(stop.text)
    assert codes
    assert _rate_changes(db, iid) == [pytest.approx(above_plan)]
    # A code without a reason is no override: still refused.
    still = _post(
        doc,
        iid,
        "event",
        kind="rate_change",
        rate="65",
        rate_unit="mg/h",
        reason="escalate",
        override_code=codes,
    )
    assert still.status_code == 409
    overridden = _post(
        doc,
        iid,
        "event",
        kind="rate_change",
        rate="65",
        rate_unit="mg/h",
        reason="escalate",
        override_code=codes,
        **{f"override_reason_{c}": "monitored bed, anaesthetist present" for c in codes},
    )
    assert overridden.status_code == 303, overridden.text
    assert _rate_changes(db, iid) == [pytest.approx(above_plan), pytest.approx(65.0)]


def test_live_fragment(browser: Browser, infusion: dict[str, Any]) -> None:
    """/infusions/{id}/live is a bare fragment with the pump state, not cached."""
    nurse = browser("nurse")
    before = nurse.get(f"/infusions/{infusion['id']}/live")
    assert before.status_code == 200
    assert "Pump not started" in before.text
    _start(nurse, infusion)
    resp = nurse.get(f"/infusions/{infusion['id']}/live")
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "no-store"
    assert "text/html" in resp.headers["content-type"]
    assert "<html" not in resp.text
    assert 'class="live-status"' in resp.text
    assert "Pump running" in resp.text
    assert "Next vital signs due at" in resp.text
    assert "<svg" in resp.text


# --- planning ----------------------------------------------------------------------------


def test_plan_preview_and_approval(browser: Browser, db: Database, patient: Patient) -> None:
    """The preview writes nothing and shows the prediction; the physician's approval
    writes the course; a nurse's is refused."""
    doc = browser("doc")
    base = f"/patients/{patient.id}/plan"
    preview = doc.get(base, params=PLAN_QUERY)
    assert preview.status_code == 200, preview.text
    assert "Predicted" in preview.text
    assert "<svg" in preview.text
    assert "Approve and plan the course" in preview.text
    assert _count(db, Course) == 0

    nurse = browser("nurse")
    refused = nurse.post(base, data={"csrf_token": csrf(nurse), "_form": "plan", **PLAN_QUERY})
    assert refused.status_code == 403
    assert "text/html" in refused.headers["content-type"]
    assert "physician" in refused.text
    assert _count(db, Course) == 0

    resp = doc.post(base, data={"csrf_token": _token(preview.text), "_form": "plan", **PLAN_QUERY})
    assert resp.status_code == 303, resp.text
    location = resp.headers["location"]
    assert re.fullmatch(r"/courses/[0-9a-f-]{36}", location)
    assert _count(db, Course, Course.patient_id == patient.id) == 1
    course = doc.get(location)
    assert course.status_code == 200
    assert "Course approved and planned." in course.text


def test_plan_preview_error_keeps_the_form(browser: Browser, patient: Patient) -> None:
    """A preview with a bad start date is a 422 showing the error and what was typed."""
    doc = browser("doc")
    resp = doc.get(
        f"/patients/{patient.id}/plan", params={**PLAN_QUERY, "start_date": "2026-13-40"}
    )
    assert resp.status_code == 422
    assert _field_value(resp.text, "plan", "start_date") == "2026-13-40"
    assert _error_of(resp.text, "plan", "start_date")
    assert 'id="errors-plan"' in resp.text


# --- home and the audit trail ------------------------------------------------------------


def test_home_per_role(browser: Browser) -> None:
    """Each role's home shows its own sections."""
    doc = browser("doc").get("/home").text
    assert "Decisions waiting" in doc and "Today's chairs" in doc
    nurse = browser("nurse").get("/home").text
    assert "Today's chairs" in nurse and "Decisions waiting" not in nurse
    desk = browser("desk").get("/home").text
    assert "Booked this week" in desk and "Today's chairs" not in desk
    admin = browser("admin").get("/home").text
    assert "Administration" in admin and "Today's chairs" not in admin


def test_audit_page(browser: Browser, patient: Patient) -> None:
    """The admin reads the audit trail (entries listed, filterable); a nurse gets a 403 page."""
    admin = browser("admin")
    page = admin.get("/admin/audit")
    assert page.status_code == 200
    assert "No entries." not in page.text
    assert "<td>create</td><td>patients</td>" in page.text
    filtered = admin.get("/admin/audit", params={"actor_username": "desk"})
    assert filtered.status_code == 200
    rows = re.findall(r"<td>(\w+) <small>(\w+)</small></td>", filtered.text)
    assert rows
    assert {user for user, _ in rows} == {"desk"}
    assert browser("doc").get("/admin/audit").status_code == 200
    nurse = browser("nurse").get("/admin/audit")
    assert nurse.status_code == 403
    assert "text/html" in nurse.headers["content-type"]
    assert "<h1>Not allowed</h1>" in nurse.text
