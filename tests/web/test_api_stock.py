"""The controlled-substance log through the API: receipts, draws, witnessed waste,
returns, corrections, balances, the ledger, bag accounts and discrepancies."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ketapain.clinic.db import utc_now

API = "/api/v1"
LOT = "LOT-1"  # the lot of the bag hung by tests/web/conftest.py
RECEIPT = {"lot": LOT, "vial_mg_per_ml": 50.0, "vial_ml": 10.0, "vials": 2}  # 1000 mg
Headers = dict[str, dict[str, str]]


def _iso(t: datetime) -> str:
    return t.isoformat()


def _post(api: TestClient, headers: Headers, path: str, body: dict[str, Any], role="nurse"):
    return api.post(f"{API}/stock/{path}", json=body, headers=headers[role])


def _get(api: TestClient, headers: Headers, path: str, role="nurse", **params: Any) -> Any:
    resp = api.get(f"{API}/stock/{path}", params=params, headers=headers[role])
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture
def stocked(api: TestClient, headers: Headers) -> dict[str, Any]:
    """1000 mg of LOT-1 received by the nurse through the API (the entry)."""
    resp = _post(api, headers, "receipts", RECEIPT | {"note": "invoice 12"})
    assert resp.status_code == 201, resp.text
    entry: dict[str, Any] = resp.json()
    return entry


def _run_pump(api: TestClient, headers: Headers, infusion_id: str) -> None:
    """20 mg/h for 2 h, stopped half an hour ago: 40 mg given."""
    start = utc_now() - timedelta(minutes=150)
    for body in (
        {"kind": "start", "rate_mg_per_h": 20.0, "time_utc": _iso(start)},
        {"kind": "stop", "time_utc": _iso(start + timedelta(hours=2))},
    ):
        resp = api.post(
            f"{API}/infusions/{infusion_id}/events", json=body, headers=headers["nurse"]
        )
        assert resp.status_code == 201, resp.text


def test_receipt_answers_the_entry(api, headers, stocked):
    """A receipt answers 201 with the entry: the amount is vials x mL x mg/mL."""
    assert stocked["kind"] == "receipt" and stocked["amount_mg"] == 1000.0
    assert {"id", "lot", "occurred_utc", "recorded_by", "witness_id", "note"} <= set(stocked)
    (lot,) = _get(api, headers, "lots")
    assert lot["lot"] == LOT and lot["on_hand_mg"] == 1000.0 and lot["on_hand_ml"] == 20.0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (RECEIPT | {"vials": "2"}, "vials"),  # text is not a number
        (RECEIPT | {"amount_mg": 1000.0}, "amount_mg"),  # computed, never typed
        (RECEIPT | {"vial_mg_per_ml": 250.0}, "vial_mg_per_ml"),
        (RECEIPT | {"occurred_utc": "2026-11-01T09:00:00"}, "occurred_utc"),  # no offset
    ],
)
def test_receipt_refusals(api, headers, body, field):
    """A bad receipt answers 422 naming the field."""
    resp = _post(api, headers, "receipts", body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == field


def test_draw_and_its_refusal_over_the_balance(api, headers, stocked, infusion):
    """A draw answers 201; more than the lot holds answers 409 naming the lot and its
    balance; an unknown infusion answers 404."""
    over = {"lot": LOT, "amount_mg": 1000.5, "infusion_id": infusion["id"]}
    resp = _post(api, headers, "draws", over)
    assert resp.status_code == 409
    assert (
        resp.json()["field"] == "amount_mg" and "lot LOT-1 holds 1000 mg" in resp.json()["message"]
    )
    resp = _post(api, headers, "draws", over | {"infusion_id": stocked["id"]})
    assert resp.status_code == 404
    resp = _post(api, headers, "draws", over | {"amount_mg": 250.0})
    assert resp.status_code == 201, resp.text
    assert resp.json()["infusion_id"] == infusion["id"]
    assert _get(api, headers, "lots")[0]["on_hand_mg"] == 750.0


@pytest.mark.parametrize(
    ("witness", "status"),
    [(None, 422), ("nurse", 422), ("front_desk", 422), ("physician", 201)],
)
def test_waste_needs_a_witness(api, headers, usernames, stocked, witness, status):
    """The nurse's waste with no witness, herself or the front desk as witness answers 422
    (the missing key, or the field ``witness``); the physician as witness is logged."""
    body: dict[str, Any] = {"lot": LOT, "amount_mg": 10.0, "reason": "vial dropped"}
    if witness is not None:
        body["witness_username"] = usernames[witness]
    resp = _post(api, headers, "waste", body)
    assert resp.status_code == status, resp.text
    if witness is None:
        assert resp.json()["field"] == "witness_username"
    elif status == 422:
        assert resp.json()["field"] == "witness"
    else:
        assert resp.json()["witness_id"] is not None and resp.json()["note"] == "vial dropped"


def test_bag_account_and_discrepancies(api, headers, stocked, infusion):
    """The hung bag is flagged until drawn; after 40 mg given and 200 mg wasted, 10 mg are
    unaccounted (flagged); a tolerance of 10 mg clears it."""
    (flag,) = _get(api, headers, "discrepancies")
    assert flag["kind"] == "bag_not_drawn" and flag["infusion_id"] == infusion["id"]
    draw = {"lot": LOT, "amount_mg": 250.0, "infusion_id": infusion["id"]}
    assert _post(api, headers, "draws", draw).status_code == 201
    _run_pump(api, headers, infusion["id"])
    waste = draw | {"amount_mg": 200.0, "witness_username": "doc", "reason": "left in the bag"}
    assert _post(api, headers, "waste", waste).status_code == 201
    (bag,) = _get(api, headers, "bags", lot=LOT)
    assert bag["administered_mg"] == pytest.approx(40.0)
    assert bag["unaccounted_mg"] == pytest.approx(10.0)
    assert bag["patient_mrn"] == "T-0001" and bag["state"] == "stopped"
    assert [f["kind"] for f in _get(api, headers, "discrepancies")] == ["bag_unaccounted"]
    assert _get(api, headers, "discrepancies", tolerance_mg=10.0) == []
    assert _get(api, headers, "bags", lot="NONE") == []


def test_ledger_return_and_correction(api, headers, stocked, infusion):
    """A return and a retracted draw show in the ledger in time order with balances;
    an unknown lot answers 404."""
    draw = {"lot": LOT, "amount_mg": 250.0, "infusion_id": infusion["id"]}
    drawn = _post(api, headers, "draws", draw).json()
    resp = _post(api, headers, "returns", {"lot": LOT, "amount_mg": 100.0, "note": "expired"})
    assert resp.status_code == 201 and resp.json()["kind"] == "return"
    assert [r["balance_mg"] for r in _get(api, headers, f"lots/{LOT}")] == [1000.0, 750.0, 650.0]
    resp = api.post(
        f"{API}/stock/entries/{drawn['id']}/corrections",
        json={"reason": "wrong bag", "entered_in_error": True},
        headers=headers["physician"],
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["corrects_id"] == drawn["id"] and resp.json()["entered_in_error"]
    rows = _get(api, headers, f"lots/{LOT}")
    assert [(r["kind"], r["balance_mg"]) for r in rows] == [("receipt", 1000.0), ("return", 900.0)]
    assert rows[0]["recorded_by_username"] == "nurse"
    resp = api.get(f"{API}/stock/lots/NOPE", headers=headers["nurse"])
    assert resp.status_code == 404


@pytest.mark.parametrize("role", ["front_desk", "admin"])
def test_front_desk_and_admin_are_refused(api, headers, stocked, role):
    """Reading or writing the log answers 403 to the front desk and the admin."""
    for path in ("lots", f"lots/{LOT}", "bags", "discrepancies"):
        resp = api.get(f"{API}/stock/{path}", headers=headers[role])
        assert resp.status_code == 403, path
        assert resp.json()["action"] == "controlled_log"
    assert _post(api, headers, "receipts", RECEIPT, role=role).status_code == 403
    assert _get(api, headers, "lots", role="physician")[0]["on_hand_mg"] == 1000.0


def test_anonymous_is_refused(api):
    """Without a token the log answers 401."""
    assert api.get(f"{API}/stock/lots").status_code == 401
    assert api.post(f"{API}/stock/receipts", json=RECEIPT).status_code == 401
