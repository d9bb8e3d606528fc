"""The outcome report page ``/reports/cohort`` and its downloads, on the demo clinic.

Pages are driven through the test client as a browser would (sign in through the form,
follow redirects by hand); one test drives the page in real headless Chromium (Debian
``chromium`` through Playwright; skipped without it unless ``KETAPAIN_REQUIRE_BROWSER=1``).
The demo clinic is one SQLite file per module: the outcome query itself is tested on
both databases in ``tests/clinic/test_outcomes.py``.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import uvicorn
from fastapi.testclient import TestClient

from ketapain.analytics.cohort import COLUMNS
from ketapain.clinic import migrate
from ketapain.clinic.audit import list_entries
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.demo import DEMO_PASSWORD, fill_demo
from ketapain.config import Settings
from ketapain.web.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_SCOPE = re.compile(r'<p class="muted" id="report-scope">(.*?)</p>', re.S)
DEIDENTIFIED = ["start_year" if c.name == "start_date" else c.name for c in COLUMNS]
# The demo clinic's MRNs and names (ketapain.clinic.demo): none may leave in an export.
DEMO_IDENTIFIERS = ("KP-10", "Lindqvist", "Okoro", "Moreau", "Tanaka", "Byrne", "Silva", "Maja")
USERS = {
    "physician": "dr.demo",
    "nurse": "nurse.demo",
    "front_desk": "desk.demo",
    "admin": "admin.demo",
}
Browser = Callable[[str], TestClient]


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, str]]:
    """The demo clinic arranged around today, in an SQLite file: (database, URL)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('reports') / 'clinic.db'}"
    db = Database.connect(url)
    migrate.upgrade(db)
    fill_demo(db, today=utc_now().date())
    yield db, url
    db.dispose()


@pytest.fixture(scope="module")
def app(clinic: tuple[Database, str]) -> Any:
    """The application on the demo clinic."""
    db, url = clinic
    return create_app(Settings(database_url=url), db=db)


def _sign_in(client: TestClient, username: str) -> None:
    page = client.get("/login")
    token = _TOKEN.search(page.text)
    assert token, "no csrf_token on the sign-in page"
    resp = client.post(
        "/login",
        params={"next": "/home"},
        data={
            "csrf_token": token.group(1),
            "_form": "login",
            "username": username,
            "password": DEMO_PASSWORD,
        },
    )
    assert resp.status_code == 303, resp.text


@pytest.fixture
def browser(app: Any) -> Iterator[Browser]:
    """``browser(role)``: a client signed in as that role's demo user (no redirects followed)."""
    clients: list[TestClient] = []

    def open_as(role: str) -> TestClient:
        client = TestClient(app, follow_redirects=False)
        clients.append(client)
        _sign_in(client, USERS[role])
        return client

    yield open_as
    for client in clients:
        client.close()


def _scope(page: str) -> str:
    found = _SCOPE.search(page)
    assert found, "no report scope in the page"
    return " ".join(html.unescape(found.group(1)).split())


@pytest.mark.parametrize("role", ["physician", "admin"])
def test_physicians_and_admins_see_the_report(browser: Browser, role: str) -> None:
    """The page holds the filter form with labelled fields, the literature and responder
    tables, inline SVG figures and the download links; the read is audited."""
    resp = browser(role).get("/reports/cohort")
    assert resp.status_code == 200, resp.text
    page = resp.text
    assert "<h1>Outcome report</h1>" in page
    assert 'id="literature"' in page and 'id="responders"' in page
    assert page.count("<svg") >= 2
    for field in ("from", "to", "protocol", "diagnosis"):
        assert f'<label for="r-{field}">' in page and f'id="r-{field}" name="{field}"' in page
    for kind in ("csv", "parquet", "pdf", "json"):
        assert f'href="/reports/cohort.{kind}?' in page
    assert _scope(page).startswith("all courses; generated")
    assert "6 courses of 6 patients" in _scope(page)


def test_the_page_read_is_audited(browser: Browser, clinic: tuple[Database, str]) -> None:
    """Every report request is one audited read naming its purpose and the course count."""
    db, _ = clinic
    with db.read() as s:
        before = len(list_entries(s, action="read_outcomes", limit=1000))
    assert browser("admin").get("/reports/cohort.json").status_code == 200
    with db.read() as s:
        entries = list_entries(s, action="read_outcomes", limit=1000)
    assert len(entries) == before + 1
    assert (entries[-1].actor_username, entries[-1].detail) == (
        "admin.demo",
        "json download: 6 courses, de-identified",
    )


@pytest.mark.parametrize("role", ["nurse", "front_desk"])
@pytest.mark.parametrize("path", ["/reports/cohort", "/reports/cohort.csv"])
def test_nurses_and_front_desk_are_refused(browser: Browser, role: str, path: str) -> None:
    """The report and its downloads are for physicians and admins: 403 for the others."""
    resp = browser(role).get(path)
    assert resp.status_code == 403
    assert "physicians and admins" in resp.text
    assert "<svg" not in resp.text


def test_anonymous_is_sent_to_sign_in(app: Any) -> None:
    """Not signed in: a redirect to the sign-in page that comes back to the report."""
    with TestClient(app, follow_redirects=False) as client:
        for path in ("/reports/cohort", "/reports/cohort.csv"):
            resp = client.get(path)
            assert resp.status_code == 303
            assert resp.headers["location"] == f"/login?next={path}"


def test_downloads_have_their_media_types(browser: Browser) -> None:
    """PDF, CSV (de-identified: start year, no MRN or name), Parquet and JSON downloads."""
    client = browser("physician")
    pdf = client.get("/reports/cohort.pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    got = client.get("/reports/cohort.csv")
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/csv")
    assert re.fullmatch(
        r'attachment; filename="ketapain-cohort-\d{8}\.csv"', got.headers["content-disposition"]
    )
    assert got.text.splitlines()[0].split(",") == DEIDENTIFIED
    assert len(got.text.splitlines()) == 1 + 6
    assert [x for x in DEMO_IDENTIFIERS if x in got.text] == []
    parquet = client.get("/reports/cohort.parquet")
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    table = pl.read_parquet(io.BytesIO(parquet.content))
    assert (table.columns, table.height) == (DEIDENTIFIED, 6)
    data = client.get("/reports/cohort.json", params={"protocol": "single-day"})
    assert data.headers["content-type"] == "application/json"
    assert (json.loads(data.text)["courses"], json.loads(data.text)["filter"]) == (
        0,
        "protocol single-day",
    )


def test_filters_in_the_query_change_the_scope(browser: Browser) -> None:
    """``?protocol=...&from=...`` narrows the report; the form shows what was chosen and
    the download links carry the same query."""
    resp = browser("physician").get(
        "/reports/cohort", params={"protocol": "seed-outpatient", "from": "2020-01-01"}
    )
    assert resp.status_code == 200, resp.text
    page = resp.text
    scope = _scope(page)
    assert scope.startswith("courses starting 2020-01-01 to today; protocol seed-outpatient;")
    assert '<option value="seed-outpatient" selected>' in page
    assert '<option value="single-day">' in page
    assert 'id="r-from" name="from" type="date" value="2020-01-01"' in page
    assert 'href="/reports/cohort.csv?protocol=seed-outpatient&amp;from=2020-01-01"' in page


@pytest.mark.parametrize(("field", "value"), [("from", "yesterday"), ("to", "2026-13-01")])
def test_a_bad_date_gives_an_error_page_naming_the_field(
    browser: Browser, field: str, value: str
) -> None:
    """A date that is not YYYY-MM-DD: an error page (4xx) naming the field, no report."""
    resp = browser("physician").get("/reports/cohort", params={field: value})
    assert 400 <= resp.status_code < 500
    text = html.unescape(resp.text)
    assert f"{field} must be a date YYYY-MM-DD" in text and value in text
    assert 'id="literature"' not in text


def test_from_after_to_gives_an_error_page(browser: Browser) -> None:
    """A start range that ends before it begins: an error page naming ``start_to``."""
    resp = browser("physician").get(
        "/reports/cohort", params={"from": "2026-12-01", "to": "2026-01-01"}
    )
    assert 400 <= resp.status_code < 500
    assert "start_to" in resp.text


def test_an_unknown_download_format_is_refused(browser: Browser) -> None:
    """Only pdf, csv, parquet and json download."""
    resp = browser("physician").get("/reports/cohort.xlsx")
    assert resp.status_code == 422
    assert "pdf, csv, parquet or json" in html.unescape(resp.text)


@pytest.mark.parametrize(
    ("role", "shown"),
    [("physician", True), ("admin", True), ("nurse", False), ("front_desk", False)],
)
def test_the_outcomes_link_is_for_physicians_and_admins(
    browser: Browser, role: str, shown: bool
) -> None:
    """The main navigation offers Outcomes to the roles that may read them."""
    page = browser(role).get("/home")
    assert page.status_code == 200
    assert ('<a href="/reports/cohort">Outcomes</a>' in page.text) is shown


# --- in real Chromium -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(app: Any) -> Iterator[str]:
    """The demo clinic's application served by uvicorn on loopback: its base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless Debian Chromium (no sandbox: the tests run as root in CI)."""
    if not CHROMIUM.exists():
        if os.environ.get("KETAPAIN_REQUIRE_BROWSER") == "1":
            pytest.fail("KETAPAIN_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing")
        pytest.skip("Debian chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


@pytest.mark.slow
def test_browser_opens_outcomes_and_filters_by_protocol(chromium: Any, served: str) -> None:
    """dr.demo signs in, opens Outcomes from the navigation, picks a protocol in the filter
    form and sees the narrowed report with its figures."""
    context = chromium.new_context(viewport={"width": 1024, "height": 1024})
    page = context.new_page()
    page.goto(served + "/home")
    assert "/login" in page.url
    page.get_by_label("Username").fill("dr.demo")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/home$"))
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Outcomes").click()
    page.wait_for_url(re.compile(r"/reports/cohort$"))
    page.get_by_label("Protocol").select_option("seed-outpatient")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"/reports/cohort\?.*protocol=seed-outpatient"))
    assert page.get_by_role("heading", name="Outcome report", level=1).is_visible()
    assert "protocol seed-outpatient" in page.locator("#report-scope").inner_text()
    assert page.locator(".report figure svg").count() >= 1
    assert page.locator(".report figure svg").first.is_visible()
    context.close()
