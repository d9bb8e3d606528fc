"""No database connection to be had: the request is answered 503 ``busy``, not hung.

The application runs on a SQLite file whose pool (16 connections and 16 in overflow) is
taken whole by the test; a request then waits the pool's timeout (5 s) and is answered
503 with ``Retry-After: 1``. Once the connections are back, the same request is served.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection

from ketapain.clinic import migrate
from ketapain.clinic.accounts import TokenKind, create_user, issue_token
from ketapain.clinic.audit import SYSTEM
from ketapain.clinic.db import POOL_SIZE, Database
from ketapain.config import Settings
from ketapain.web.app import create_app

API: Final = "/api/v1"
# The pool's timeout (seconds): the 503 comes after it, and not long after.
POOL_TIMEOUT_S: Final = 5.0
PATIENT: Final = {
    "mrn": "OV-1",
    "family_name": "Busy",
    "given_name": "Day",
    "birth_date": "1980-05-01",
    "sex": "female",
}


@pytest.fixture
def clinic(tmp_path: Path) -> Iterator[tuple[TestClient, Database, dict[str, dict[str, str]]]]:
    """The application on a migrated SQLite file, and API token headers by role."""
    db = Database.connect(f"sqlite:///{tmp_path / 'clinic.db'}")
    migrate.upgrade(db)
    headers = {}
    for role in ("front_desk", "physician"):
        user = create_user(
            db, SYSTEM, username=role, full_name=role, role=role, password="pw-long-1234"
        )
        token = issue_token(db, Settings(), user, kind=TokenKind.API)
        headers[role] = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(Settings(), db=db)) as client:
        yield client, db, headers
    db.dispose()


def _take_all(db: Database) -> list[Connection]:
    held = [db.engine.connect() for _ in range(2 * POOL_SIZE)]
    for conn in held:
        conn.exec_driver_sql("SELECT 1")
        conn.rollback()
    return held


def test_no_connection_is_503_busy_with_retry_after(
    clinic: tuple[TestClient, Database, dict[str, dict[str, str]]],
) -> None:
    """With all 32 connections taken, an authenticated API request is answered 503
    ``busy`` after the pool's timeout, with ``Retry-After: 1``; once they are back the same
    request is served, and a write goes through."""
    client, db, by_role = clinic
    headers = by_role["front_desk"]
    assert client.get(f"{API}/patients", headers=headers).json() == []
    held = _take_all(db)
    try:
        began = time.monotonic()
        resp = client.get(f"{API}/patients", headers=headers)
        waited = time.monotonic() - began
    finally:
        for conn in held:
            conn.close()
    assert resp.status_code == 503, resp.text
    assert resp.headers["retry-after"] == "1"
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error", "message", "field"}
    assert body["error"] == "busy"
    assert body["field"] is None
    assert "busy" in body["message"]
    assert POOL_TIMEOUT_S - 0.5 <= waited < POOL_TIMEOUT_S + 10
    resp = client.get(f"{API}/patients", headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.json() == []
    created = client.post(f"{API}/patients", json=PATIENT, headers=headers)
    assert created.status_code == 201, created.text
    listed = client.get(f"{API}/patients", headers=headers).json()
    assert [p["mrn"] for p in listed] == ["OV-1"]


def test_no_connection_is_503_transient_under_fhir(
    clinic: tuple[TestClient, Database, dict[str, dict[str, str]]],
) -> None:
    """Under ``/fhir`` the same refusal is an OperationOutcome (``transient``), 503 with
    ``Retry-After: 1``; once the connections are back the request reaches the database
    (an unknown patient: 404)."""
    client, db, by_role = clinic
    headers = by_role["physician"]
    path = f"/fhir/Patient/{uuid.uuid4()}/$everything"
    held = _take_all(db)
    try:
        resp = client.get(path, headers=headers)
    finally:
        for conn in held:
            conn.close()
    assert resp.status_code == 503, resp.text
    assert resp.headers["retry-after"] == "1"
    assert resp.headers["content-type"].startswith("application/fhir+json")
    outcome = resp.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert [i["code"] for i in outcome["issue"]] == ["transient"]
    again = client.get(path, headers=headers)
    assert again.status_code == 404, again.text
    assert [i["code"] for i in again.json()["issue"]] == ["not-found"]
