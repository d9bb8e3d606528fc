"""The patient's page: questionnaires through a link, CSRF for a form without an account,
the same page for every link not in force, the crisis message after PHQ-9 item 9, and the
staff's home page with the alerts and reminders; one run in headless Chromium."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ketapain.clinic import migrate
from ketapain.clinic._service import add_row
from ketapain.clinic.accounts import create_user
from ketapain.clinic.alarms import Alarm
from ketapain.clinic.audit import SYSTEM, unit_of_work
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.observations import Score
from ketapain.clinic.patients import BodyMeasurement, Diagnosis
from ketapain.clinic.permissions import Action
from ketapain.clinic.portal import PatientLink, issue_link, revoke_link
from ketapain.clinic.registry import register_patient
from ketapain.clinic.treatment import create_course
from ketapain.config import Settings
from ketapain.web.app import create_app
from ketapain.web.pages import auth as auth_pages
from ketapain.web.pages._render import csrf_token
from ketapain.web.pages.auth import HOME_REMINDERS

from .test_pages import sign_in

CHROMIUM = Path("/usr/bin/chromium")
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
PHQ9_ITEM9 = {f"item{i}": "0" for i in range(1, 9)} | {"item9": "1"}


def _start_ending_recently(today: date) -> date:
    """A start date whose seventh weekday (seed-outpatient's last session) is today or
    the last weekday before: the end-of-series questionnaires and the diary are due."""
    end = today
    while end.weekday() >= 5:
        end -= timedelta(days=1)
    start, weekdays = end, 1
    while weekdays < 7:
        start -= timedelta(days=1)
        weekdays += start.weekday() < 5
    return start


@pytest.fixture
def course(db, staff, patient):
    """A seed-outpatient course of the fixture patient whose series ended in the last days."""
    return create_course(
        db, staff["physician"], patient_id=patient.id, protocol="seed-outpatient",
        start_date=_start_ending_recently(utc_now().date()), bag_mg=250, bag_ml=250,
    )  # fmt: skip


@pytest.fixture
def link(db, staff, patient, course):
    """A link the nurse issued for the patient."""
    return issue_link(db, staff["nurse"], patient.id)


@pytest.fixture
def client(db: Database) -> Iterator[TestClient]:
    """A browser without an account (redirects not followed)."""
    with TestClient(create_app(Settings(), db=db), follow_redirects=False) as c:
        yield c


def _count(db, model, *where):
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def _post(client, path, form, **fields):
    token = _TOKEN.search(client.get(path).text).group(1)
    return client.post(path, data={"csrf_token": token, "_form": form, **fields})


def test_the_page_shows_the_questionnaires_due(client, link):
    """The page greets the patient by given name only and shows the due questionnaires
    with their wording and answer labels, as large radio choices; a number for EQ VAS."""
    resp = client.get(link.url_path)
    assert resp.status_code == 200, resp.text
    page = resp.text
    assert "Hello Jane" in page
    assert "Doe" not in page and "T-0001" not in page and "1980" not in page
    for form in ("pain_nrs", "peg", "pgic", "phq9", "gad7", "eq_vas", "pdq5"):
        assert f'name="_form" value="{form}"' in page, form
    assert "Thoughts that you would be better off dead or of hurting yourself" in page
    for label in ("Not at all", "Several days", "More than half the days", "Nearly every day",
                  "Very much improved", "Very much worse", "Almost always"):  # fmt: skip
        assert label in page, label
    assert page.count('type="radio" name="item9"') == 4
    assert 'type="number" min="0" max="100"' in page
    cookie = resp.headers["set-cookie"].lower()
    assert "path=/p/" in cookie and "samesite=strict" in cookie and "httponly" in cookie
    assert "/home" not in page  # no staff navigation


def test_sending_a_pain_score(db, client, link):
    """A pain score sent: 303 back to the page, recorded, thanked; no longer asked."""
    resp = _post(client, link.url_path, "pain_nrs", value="4")
    assert resp.status_code == 303, resp.text
    assert resp.headers["location"] == f"{link.url_path}?sent=pain_nrs"
    assert _count(db, Score, Score.instrument == "pain_nrs", Score.value == 4.0) == 1
    page = client.get(resp.headers["location"]).text
    assert "your answers have been sent" in page
    assert 'value="pain_nrs"' not in page


@pytest.mark.parametrize(("item9", "crisis"), [("0", False), ("1", True)])
def test_phq9_item9_shows_the_crisis_message(db, client, link, item9, crisis):
    """Item 9 answered: the page says the clinic will make contact and to call the local
    emergency number if in danger, and a stop alarm is open; at 0 neither."""
    resp = _post(client, link.url_path, "phq9", **(PHQ9_ITEM9 | {"item9": item9}))
    assert resp.status_code == 303, resp.text
    assert ("support=1" in resp.headers["location"]) is crisis
    page = client.get(resp.headers["location"]).text
    assert ("call your local emergency number" in page) is crisis
    assert ("will contact you" in page) is crisis
    assert _count(db, Alarm, Alarm.signal == "phq9_item9", Alarm.level == "stop") == int(crisis)


def test_a_post_from_another_site_is_refused(db, client, link):
    """Without the page's cookie (a cross-site post), with a wrong token, or with the
    token of another cookie: 403 and nothing written."""
    path = link.url_path
    fields = {"_form": "pain_nrs", "value": "4"}
    stranger = csrf_token("a-nonce-of-another-browser")
    assert client.post(path, data=fields | {"csrf_token": stranger}).status_code == 403
    client.get(path)  # now the browser holds the page's cookie
    assert client.post(path, data=fields | {"csrf_token": "0" * 64}).status_code == 403
    assert client.post(path, data=fields | {"csrf_token": stranger}).status_code == 403
    assert client.post(path, data=fields).status_code == 403
    assert _count(db, Score) == 0


def test_missing_answers_are_marked_and_kept(db, client, link):
    """A PHQ-9 with item 5 unanswered is not sent: 422, the question marked, the other
    answers kept."""
    answers = dict(PHQ9_ITEM9)
    del answers["item5"]
    resp = _post(client, link.url_path, "phq9", **answers)
    assert resp.status_code == 422
    assert 'id="phq9-item5-error" class="error">Please answer this question' in resp.text
    assert re.search(r'name="item9" value="1" required\s*checked', resp.text)
    assert _count(db, Score) == 0


def test_links_not_in_force_show_one_page(db, staff, patient, client, link):
    """An unknown, an expired and a revoked link get the same 404 page, on GET and POST."""
    expired = issue_link(db, staff["nurse"], patient.id)
    with unit_of_work(db, SYSTEM) as s:
        s.get(PatientLink, expired.link_id).expires_utc = utc_now()
    revoke_link(db, staff["nurse"], patient.id, link.link_id)
    pages = []
    for secret in ("Z" * 43, expired.secret, link.secret):
        sent = {"_form": "pain_nrs", "value": "3"}
        for resp in (client.get(f"/p/{secret}"), client.post(f"/p/{secret}", data=sent)):
            assert resp.status_code == 404
            pages.append(resp.text)
    assert len(set(pages)) == 1
    assert "This link cannot be used" in pages[0] and "Jane" not in pages[0]
    assert _count(db, Score) == 0


def test_the_home_page_lists_alerts_and_questionnaires_due(db, app_client_factory):
    """After a patient's PHQ-9 with item 9, the physician's home page shows the alert (not
    among the infusion alarms) and the questionnaires due; the front desk sees neither."""
    doc, desk, link = app_client_factory
    resp = _post(doc["anon"], link.url_path, "phq9", **PHQ9_ITEM9)
    assert resp.status_code == 303
    home = doc["staff"].get("/home").text
    section = home.split('id="pro-alerts-h"')[1].split("</section>")[0]
    assert "contact the patient today" in section and "ACT TODAY" in section
    assert "Questionnaires due" in home and "Doe, Jane" in home
    assert "Pain, numeric rating scale" in home
    front = desk.get("/home").text
    assert "Questionnaire alerts" not in front and "Questionnaires due" not in front


def _reminder_rows(html: str) -> list[str]:
    return re.findall(r"<tr>\s*<td>(.*?)</tr>", html, re.S)


def test_home_lists_the_most_overdue_questionnaires_and_a_page_lists_them_all(
    app_client_factory, monkeypatch
):
    """The home page lists the first HOME_REMINDERS of the questionnaires due (overdue
    first) with their total and a link to /questionnaires, which lists them all; the front
    desk may not see that page."""
    doc, desk, _ = app_client_factory
    full = doc["staff"].get("/questionnaires")
    assert full.status_code == 200
    rows = _reminder_rows(full.text.split("<tbody>")[1])
    assert len(rows) >= 2 and all("Doe, Jane" in r for r in rows)
    home = doc["staff"].get("/home").text.split('id="pro-due-h"')[1].split("</section>")[0]
    assert _reminder_rows(home) == rows[:HOME_REMINDERS]
    monkeypatch.setattr(auth_pages, "HOME_REMINDERS", 1)
    home = doc["staff"].get("/home").text.split('id="pro-due-h"')[1].split("</section>")[0]
    assert _reminder_rows(home) == rows[:1]
    assert f"The 1 most overdue of {len(rows)}" in home and 'href="/questionnaires"' in home
    assert desk.get("/questionnaires").status_code == 403


@pytest.fixture
def app_client_factory(db, link):
    """Clients of one app: the physician signed in, an anonymous browser, the front desk."""
    app = create_app(Settings(), db=db)
    with (
        TestClient(app, follow_redirects=False) as staff_client,
        TestClient(app, follow_redirects=False) as anon,
        TestClient(app, follow_redirects=False) as desk,
    ):
        assert sign_in(staff_client, "doc").status_code == 303
        assert sign_in(desk, "desk").status_code == 303
        yield {"staff": staff_client, "anon": anon}, desk, link


# --- in Chromium ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The app served by uvicorn on loopback over an SQLite file: a patient with a course
    whose series ended in the last days, and a link for her."""
    db = Database.connect(f"sqlite:///{tmp_path / 'portal.db'}")
    migrate.upgrade(db)
    nurse = create_user(db, SYSTEM, username="nurse", full_name="N", role="nurse",
                        password="portal-test-1").actor()  # fmt: skip
    doc = create_user(db, SYSTEM, username="doc", full_name="D", role="physician",
                      password="portal-test-1").actor()  # fmt: skip
    patient = register_patient(db, nurse, mrn="P-1", family_name="Quinn", given_name="Ada",
                               birth_date=date(1980, 3, 4), sex="female")  # fmt: skip
    add_row(db, nurse, Action.CHART, BodyMeasurement(patient_id=patient.id, weight_kg=70.0,
                                                     height_cm=168.0))  # fmt: skip
    add_row(db, nurse, Action.CHART, Diagnosis(patient_id=patient.id, code="crps_1"))
    create_course(db, doc, patient_id=patient.id, protocol="seed-outpatient",
                  start_date=_start_ending_recently(utc_now().date()), bag_mg=250,
                  bag_ml=250)  # fmt: skip
    link = issue_link(db, nurse, patient.id)
    port = _free_port()
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'portal.db'}"), db=db)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield {"url": f"http://127.0.0.1:{port}{link.url_path}", "db": db}
    server.should_exit = True
    thread.join(timeout=10)
    db.dispose()


@pytest.mark.slow
@pytest.mark.skipif(
    not CHROMIUM.exists() and os.environ.get("KETAPAIN_REQUIRE_BROWSER") != "1",
    reason="Debian chromium is not installed",
)
def test_a_patient_sends_phq9_and_pain_in_chromium(served: dict[str, Any]) -> None:
    """On a phone-sized screen the patient answers the PHQ-9 by tapping the labels (item 9
    "Several days"), sees the crisis message, then sends today's pain score."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
        page.goto(served["url"])
        assert page.get_by_role("heading", name="Hello Ada").is_visible()
        phq9 = page.locator("#form-phq9")
        for i in range(1, 10):
            answer = "Several days" if i == 9 else "Not at all"
            phq9.locator(f"#phq9-item{i}").get_by_text(answer, exact=True).click()
        phq9.get_by_role("button").click()
        page.wait_for_url(re.compile(r"support=1"))
        assert page.get_by_role("alert").filter(has_text="local emergency number").is_visible()
        pain = page.locator("#form-pain_nrs")
        box = pain.locator("label.check").first.bounding_box()
        assert box is not None and box["height"] >= 44  # a touch target (WCAG 2.5.5)
        pain.get_by_text("3", exact=True).click()
        pain.get_by_role("button").click()
        page.wait_for_url(re.compile(r"sent=pain_nrs"))
        assert page.get_by_role("status").filter(has_text="sent to the clinic").is_visible()
        browser.close()
    with served["db"].session() as s:
        got = dict(s.execute(select(Score.instrument, Score.value)).all())
        alarms = s.scalars(select(Alarm.signal)).all()
    assert got == {"phq9": 1.0, "pain_nrs": 3.0}
    assert alarms == ["phq9_item9"]
