"""The controlled-drugs page: balances per lot, discrepancies highlighted, the forms to
receive, draw, waste and return, and a lot's ledger, driven as a browser would (GET the
page, read its CSRF token, post the form, follow the 303 by hand)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ketapain.clinic.controlled import receive
from ketapain.clinic.db import Database
from ketapain.config import Settings
from ketapain.web.app import create_app

PASSWORD = "test-password-1"  # the template users' password (tests/conftest.py)
LOT = "LOT-1"  # the lot of the bag hung by tests/web/conftest.py
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
Browser = Callable[[str], TestClient]


def _token(page: str) -> str:
    found = _TOKEN.search(page)
    assert found, "no csrf_token in the page"
    return found.group(1)


def _error_of(page: str, form: str, name: str) -> str | None:
    """The error shown next to the field ``{form}-{name}``."""
    found = re.search(rf'<p id="{form}-{name}-error" class="error">([^<]*)</p>', page)
    return None if found is None else html.unescape(found.group(1))


@pytest.fixture
def browser(db: Database) -> Iterator[Browser]:
    """``browser(username)``: a client of the pages signed in as that user."""
    app = create_app(Settings(), db=db)
    clients: list[TestClient] = []

    def open_as(username: str) -> TestClient:
        client = TestClient(app, follow_redirects=False)
        clients.append(client)
        page = client.get("/login")
        resp = client.post(
            "/login",
            data={"csrf_token": _token(page.text), "_form": "login", "username": username,
                  "password": PASSWORD},
        )  # fmt: skip
        assert resp.status_code == 303, resp.text
        return client

    yield open_as
    for client in clients:
        client.close()


@pytest.fixture
def stocked(db: Database, staff: dict[str, Any]) -> None:
    """500 mg of LOT-1 in stock: 1 vial of 10 mL at 50 mg/mL."""
    receive(db, staff["nurse"], lot=LOT, vial_mg_per_ml=50.0, vial_ml=10.0, vials=1)


def _post(client: TestClient, action: str, form: str, data: dict[str, str]) -> Any:
    token = _token(client.get("/stock").text)
    return client.post(f"/stock/{action}", data={"csrf_token": token, "_form": form} | data)


def test_page_shows_balances_and_flags_a_bag_with_no_draw(browser, stocked, infusion):
    """The nurse sees the lot's balance and, highlighted, the hung bag with no draw; the
    navigation links to the page."""
    page = browser("nurse").get("/stock")
    assert page.status_code == 200
    text = page.text
    assert 'href="/stock">Controlled drugs</a>' in text
    assert re.search(r'<a href="/stock/LOT-1">LOT-1</a>.*?<strong>500</strong>', text, re.S)
    assert 'class="card alarm-panel" id="discrepancies"' in text
    assert "bag not drawn" in text and "hung with no draw logged" in text


def test_receive_and_draw_through_the_forms_then_the_ledger(browser, infusion):
    """Receiving 1 vial of 10 mL at 50 mg/mL and drawing 250 mg into the bag: the page
    no longer flags the bag, and the ledger shows 500 then 250 mg with the patient."""
    nurse = browser("nurse")
    data = {"lot": LOT, "vial_mg_per_ml": "50", "vial_ml": "10", "vials": "1"}
    resp = _post(nurse, "receipts", "receive", data)
    assert resp.status_code == 303 and resp.headers["location"] == "/stock#lots"
    data = {"lot": LOT, "amount_mg": "250", "infusion_id": infusion["id"]}
    assert _post(nurse, "draws", "draw", data).status_code == 303
    page = nurse.get("/stock").text
    assert "None: every lot and every bag adds up." in page and "alarm-panel" not in page
    ledger = nurse.get(f"/stock/{LOT}")
    assert ledger.status_code == 200
    cells = re.findall(
        r"<td>(?:<span[^>]*>)?(-?\d+)(?:</span>)?</td>\s*<td>nurse</td>", ledger.text
    )
    assert cells == ["500", "250"]
    assert ">T-0001</a>" in ledger.text
    assert nurse.get("/stock/NO-SUCH-LOT").status_code == 404


def test_form_errors_show_next_to_their_fields(browser, stocked, infusion):
    """A draw over the balance and a waste witnessed by the recorder are not saved: the
    page comes back with each error next to its field and what was typed."""
    nurse = browser("nurse")
    data = {"lot": LOT, "amount_mg": "600", "infusion_id": infusion["id"]}
    resp = _post(nurse, "draws", "draw", data)
    assert resp.status_code == 422
    assert "Lot LOT-1 holds 500 mg" in (_error_of(resp.text, "draw", "amount_mg") or "")
    assert 'id="draw-amount_mg" name="amount_mg" type="number" value="600"' in resp.text
    data = {"lot": LOT, "amount_mg": "5", "witness": "nurse", "reason": "dropped"}
    resp = _post(nurse, "waste", "waste", data)
    assert resp.status_code == 422
    assert "someone other than the recorder" in (_error_of(resp.text, "waste", "witness") or "")
    resp = _post(nurse, "waste", "waste", data | {"witness": "doc"})
    assert resp.status_code == 303


@pytest.mark.parametrize("username", ["desk", "admin"])
def test_front_desk_and_admin_may_not_see_the_page(browser, stocked, username):
    """The front desk and the admin get the 'Not allowed' page and no link to it."""
    client = browser(username)
    resp = client.get("/stock")
    assert resp.status_code == 403 and "<h1>Not allowed</h1>" in resp.text
    assert client.get(f"/stock/{LOT}").status_code == 403
    assert 'href="/stock"' not in client.get("/home").text


def test_posts_need_the_csrf_token_and_a_known_action(browser, stocked):
    """A post without the session's token is refused; an unknown action is a 404."""
    nurse = browser("nurse")
    resp = nurse.post("/stock/receipts", data={"_form": "receive", "lot": "X"})
    assert resp.status_code == 403
    assert _post(nurse, "transfers", "x", {}).status_code == 404
