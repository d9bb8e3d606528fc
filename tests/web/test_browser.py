"""End-to-end tests of the pages in real headless Chromium (Debian ``chromium`` driven by
Playwright), against the app served by uvicorn on loopback over an SQLite file.

``.ci/run`` installs the browser from Debian packages; without ``/usr/bin/chromium`` the
tests skip (``KETAPAIN_REQUIRE_BROWSER=1`` makes that a failure, as in CI).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from ketapain.clinic import migrate
from ketapain.clinic._service import add_row
from ketapain.clinic.accounts import create_user
from ketapain.clinic.audit import SYSTEM
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.patients import BodyMeasurement, Diagnosis
from ketapain.clinic.permissions import Action
from ketapain.clinic.registry import register_patient
from ketapain.clinic.treatment import create_course
from ketapain.config import Settings
from ketapain.web.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "browser-test-1"
if not CHROMIUM.exists():
    if os.environ.get("KETAPAIN_REQUIRE_BROWSER") == "1":
        raise RuntimeError("KETAPAIN_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing")
    pytest.skip("Debian chromium is not installed", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A served clinic: staff, a patient (70 kg, CRPS I) with a planned course this week."""
    path = tmp_path_factory.mktemp("browser") / "clinic.db"
    db = Database.connect(f"sqlite:///{path}")
    migrate.upgrade(db)
    users = {
        role: create_user(
            db, SYSTEM, username=name, full_name=full, role=role, password=PASSWORD
        ).actor()
        for name, full, role in (
            ("doc", "Dr Browser", "physician"),
            ("nurse", "Nurse Browser", "nurse"),
            ("desk", "Desk Browser", "front_desk"),
        )
    }
    patient = register_patient(
        db, users["front_desk"], mrn="B-1", family_name="Quinn", given_name="Ada",
        birth_date=date(1980, 3, 4), sex="female",
    )  # fmt: skip
    add_row(
        db,
        users["nurse"],
        Action.CHART,
        BodyMeasurement(patient_id=patient.id, weight_kg=70.0, height_cm=168.0),
    )
    add_row(db, users["nurse"], Action.CHART, Diagnosis(patient_id=patient.id, code="crps_1"))
    today = utc_now().date()
    monday = today - timedelta(days=today.weekday())
    course = create_course(
        db, users["physician"], patient_id=patient.id, protocol="seed-outpatient",
        start_date=monday, bag_mg=250, bag_ml=250,
    )  # fmt: skip
    port = _free_port()
    app = create_app(Settings(database_url=f"sqlite:///{path}"), db=db)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield {
        "url": f"http://127.0.0.1:{port}",
        "patient_id": str(patient.id),
        "course_id": str(course.id),
    }
    server.should_exit = True
    thread.join(timeout=10)
    db.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium (no sandbox: the tests run as root in CI)."""
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


def _page(browser: Any, clinic: dict[str, Any], username: str) -> Any:
    """A tablet-sized page signed in as ``username``."""
    context = browser.new_context(viewport={"width": 768, "height": 1024})
    page = context.new_page()
    page.goto(clinic["url"] + "/home")
    assert "/login" in page.url
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/home$"))
    return page


def _local(minutes_ago: float) -> str:
    """A ``datetime-local`` value (the clinic's zone is UTC here)."""
    return (datetime.now() - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M")


def _hang(page: Any, clinic: dict[str, Any], number: int) -> None:
    page.goto(f"{clinic['url']}/courses/{clinic['course_id']}#session-{number}")
    row = page.locator(f"#session-{number}")
    row.get_by_text("Hang the bag").click()
    row.get_by_label("Lot number").fill(f"LOT-{number}")
    row.get_by_role("button", name="Hang and open the chair").click()
    page.wait_for_url(re.compile(r"/infusions/"))


def _vitals(page: Any, sbp: str, *, minutes_ago: float | None = None) -> None:
    form = page.locator("#form-vitals")
    form.get_by_label("Systolic BP").fill(sbp)
    form.get_by_label("Diastolic BP").fill("76")
    form.get_by_label("Heart rate").fill("74")
    form.get_by_label("Respiratory rate").fill("14")
    form.get_by_label("SpO2").fill("98")
    if minutes_ago is not None:
        form.get_by_label("Measured at").fill(_local(minutes_ago))
    form.get_by_role("button", name="Chart vital signs").click()
    page.wait_for_load_state()


def _score(page: Any, instrument: str, value: str, minutes_ago: float) -> None:
    form = page.locator("#form-score")
    form.get_by_label("Scale").select_option(instrument)
    form.get_by_label("Score").fill(value)
    form.get_by_label("Measured at").fill(_local(minutes_ago))
    form.get_by_role("button", name="Chart the score").click()
    page.wait_for_load_state()


def _event(
    page: Any,
    kind: str,
    *,
    rate: str = "",
    unit: str = "mg/h",
    reason: str = "",
    minutes_ago: float | None = None,
) -> None:
    form = page.locator("#form-event")
    form.get_by_label("Event").select_option(kind)
    if rate:
        form.get_by_label("Rate").fill(rate)
        form.get_by_label("Unit").select_option(unit)
    if reason:
        form.get_by_label("Reason").fill(reason)
    if minutes_ago is not None:
        form.get_by_label("Time").fill(_local(minutes_ago))
    form.get_by_role("button", name="Chart the pump event").click()
    page.wait_for_load_state()


def _checklist(page: Any) -> None:
    form = page.locator("#form-checklist")
    for label in ("written consent", "responsible adult", "fasted", "medication changes"):
        form.get_by_label(re.compile(label, re.I)).check()
    form.get_by_label("Escort's name").fill("Sam Quinn")
    for drug in ("midazolam", "ondansetron"):
        form.get_by_label(re.compile(f"^{drug}")).check()
    form.get_by_role("button", name="Save the checklist").click()
    page.wait_for_load_state()


def test_nurse_charts_a_full_session(browser: Any, clinic: dict[str, Any]) -> None:
    """Checklist, baselines, start, charting, rate change, side effect, rescue, stop,
    post-infusion NRS, Aldrete and PADSS, escort: ready for discharge."""
    page = _page(browser, clinic, "nurse")
    _hang(page, clinic, 1)
    # The pump does not start before the checklist.
    _event(page, "start", minutes_ago=185)
    assert page.locator(".error-summary").is_visible()
    assert "checklist" in page.locator(".error-summary").inner_text().lower()
    _checklist(page)
    missing = page.locator("ul.missing").inner_text()
    assert "Baseline vital signs" in missing and "Not confirmed" not in missing
    _vitals(page, "122", minutes_ago=190)
    _score(page, "pain_nrs", "7", 190)
    assert page.get_by_text("Complete: the pump may start.").is_visible()
    _event(page, "start", minutes_ago=185)
    assert page.locator(".pump").inner_text().startswith("Pump running")
    _vitals(page, "128", minutes_ago=170)
    _score(page, "moaas", "4", 170)
    _event(page, "rate_change", rate="16", reason="tolerated, pain 6", minutes_ago=160)
    side = page.locator("#form-side-effect")
    side.get_by_label("Effect").fill("dissociation")
    side.get_by_label("Severity").select_option("mild")
    side.get_by_role("button", name="Chart the side effect").click()
    rescue = page.locator("#form-rescue")
    rescue.get_by_label("Drug", exact=True).select_option("ondansetron")
    rescue.get_by_label("Dose").fill("4")
    rescue.get_by_label("Reason").fill("nausea")
    rescue.get_by_role("button", name="Chart the rescue medication").click()
    page.wait_for_load_state()
    assert page.get_by_text("dissociation (mild)").is_visible()
    _event(page, "stop", reason="session complete", minutes_ago=130)
    _score(page, "pain_nrs", "4", 125)
    for name, title in (("aldrete", "Modified Aldrete score"), ("padss", "Post-Anesthetic")):
        form = page.locator(f"#form-{name}")
        for select in form.locator("select").all():
            select.select_option("2")
        form.get_by_role("button", name=re.compile(title)).click()
        page.wait_for_load_state()
    discharge = page.locator("#form-discharge")
    discharge.get_by_label(re.compile("responsible adult is here")).check()
    discharge.get_by_label("Escort's name").fill("Sam Quinn")
    discharge.get_by_role("button", name="Check discharge").click()
    page.wait_for_load_state()
    assert page.get_by_text("Ready for discharge").first.is_visible()
    # The live chart shows the session.
    assert page.locator("#live-chart").count() == 1
    page.context.close()


def test_alarm_must_be_acknowledged(browser: Any, clinic: dict[str, Any]) -> None:
    """A blood pressure over the stop limit raises an alarm shown first; acknowledging it
    with a note clears it."""
    page = _page(browser, clinic, "nurse")
    _hang(page, clinic, 2)
    _vitals(page, "195")
    panel = page.locator("#ack")
    assert panel.is_visible()
    assert panel.get_attribute("role") == "alert"
    assert "STOP" in panel.inner_text()
    page.goto(clinic["url"] + "/home")
    assert page.locator(".alarm-panel").is_visible()
    page.go_back()
    while page.locator("#ack .alarm").count():  # each alarm is acknowledged on its own
        first = page.locator("#ack .alarm").first
        first.get_by_label("What was done").fill("rate held, physician informed, BP rechecked")
        first.get_by_role("button", name="Acknowledge").click()
        page.wait_for_load_state()
    assert page.locator("#ack").count() == 0
    page.context.close()


def test_nurse_cannot_override_a_hard_stop_and_a_physician_can(
    browser: Any, clinic: dict[str, Any]
) -> None:
    """Above the drug library's hard maximum (1 mg/kg/h) a nurse is refused without an
    override form; a physician overrides with a reason and the rate is charted."""
    nurse = _page(browser, clinic, "nurse")
    _hang(nurse, clinic, 3)
    infusion_url = nurse.url.split("#")[0]
    _checklist(nurse)
    _vitals(nurse, "120", minutes_ago=40)
    _score(nurse, "pain_nrs", "6", 40)
    _event(nurse, "start", rate="14", minutes_ago=30)
    _event(nurse, "rate_change", rate="1.2", unit="mg/kg/h", reason="no relief")
    assert "a nurse may not change rate" in nurse.locator("#event").inner_text()
    summary = nurse.locator(".error-summary").first
    assert summary.is_visible()
    assert nurse.locator("fieldset.override").count() == 0
    nurse.context.close()

    doc = _page(browser, clinic, "doc")
    doc.goto(infusion_url)
    _event(doc, "rate_change", rate="1.2", unit="mg/kg/h", reason="no relief at 0.3 mg/kg/h")
    assert "Hard stop" in doc.locator(".error-summary").first.inner_text()
    override = doc.locator("fieldset.override")
    assert override.count() >= 1
    for i in range(override.count()):
        override.nth(i).get_by_label(re.compile("Reason for the override")).fill(
            "refractory CRPS, monitored one-to-one"
        )
    form = doc.locator("#form-event")  # what was typed is kept
    assert form.get_by_label("Rate").input_value() == "1.2"
    assert form.get_by_label("Unit").input_value() == "mg/kg/h"
    doc.locator("#form-event").get_by_role("button", name="Chart the pump event").click()
    doc.wait_for_load_state()
    assert doc.get_by_text("Pump: rate change charted.").is_visible()
    assert "84.0 mg/h" in doc.locator(".pump").inner_text()
    doc.context.close()


def test_validation_error_keeps_the_input(browser: Any, clinic: dict[str, Any]) -> None:
    """An intake with an impossible weight comes back with every typed value and the
    error next to the weight, reachable by keyboard; corrected, it registers."""
    page = _page(browser, clinic, "nurse")
    page.goto(clinic["url"] + "/patients/new")
    page.get_by_label("Medical record number").fill("B-2")
    page.get_by_label("Family name").fill("Okafor")
    page.get_by_label("Given name").fill("Chidi")
    page.get_by_label("Date of birth").fill("1975-06-01")
    page.get_by_label("Sex").select_option("male")
    page.get_by_label("Weight").fill("700")
    page.get_by_role("button", name="Register").click()
    page.wait_for_load_state()
    assert page.get_by_label("Family name").input_value() == "Okafor"
    assert page.get_by_label("Given name").input_value() == "Chidi"
    assert page.get_by_label("Date of birth").input_value() == "1975-06-01"
    assert page.get_by_label("Sex").input_value() == "male"
    weight = page.get_by_label("Weight")
    assert weight.input_value() == "700"
    assert weight.get_attribute("aria-invalid") == "true"
    assert page.locator("#intake-weight_kg-error").is_visible()
    assert page.evaluate("document.activeElement.className") == "error-summary"
    weight.fill("70")
    page.get_by_role("button", name="Register").click()
    page.wait_for_url(re.compile(r"/patients/[0-9a-f-]{36}"))
    assert "Okafor, Chidi" in page.locator("h1").inner_text()
    page.context.close()
