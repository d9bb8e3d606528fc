"""Fixtures of the API tests: the application on the test database, tokens by role, and a
patient with a planned course and a bag hung, all made through the API where it can."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ketapain.clinic.accounts import TokenKind, User, issue_token
from ketapain.clinic.db import Database
from ketapain.clinic.patients import Patient
from ketapain.config import Settings
from ketapain.web.app import create_app

API = "/api/v1"
# A past Monday: the seed-outpatient course of the tests starts here.
COURSE_START = "2026-11-09"
COURSE = {
    "protocol": "seed-outpatient",
    "start_date": COURSE_START,
    "bag_mg": 250,
    "bag_ml": 250,
}
BAG = {"session_number": 1, "bag_mg": 250, "bag_ml": 250, "lot": "LOT-1"}


@pytest.fixture
def api(db: Database) -> Iterator[TestClient]:
    """A test client of the application built on the test database (default settings)."""
    with TestClient(create_app(Settings(), db=db)) as client:
        yield client


@pytest.fixture
def headers(db: Database, staff_users: dict[str, User]) -> dict[str, dict[str, str]]:
    """Role -> ``Authorization: Bearer`` header of a fresh API token of that role's user."""
    return {
        role: {"Authorization": f"Bearer {issue_token(db, Settings(), user, kind=TokenKind.API)}"}
        for role, user in staff_users.items()
    }


@pytest.fixture
def usernames(staff_users: dict[str, User]) -> dict[str, str]:
    """Role -> username of the template's staff."""
    return {role: user.username for role, user in staff_users.items()}


@pytest.fixture
def audit_log(
    api: TestClient, headers: dict[str, dict[str, str]]
) -> Callable[..., list[dict[str, Any]]]:
    """A function giving the audit entries (read by the admin through the API) that match
    the query parameters given, e.g. ``audit_log(action="denied", actor_username="desk")``."""

    def read(**params: Any) -> list[dict[str, Any]]:
        resp = api.get(f"{API}/audit", params={"limit": 1000, **params}, headers=headers["admin"])
        assert resp.status_code == 200, resp.text
        entries: list[dict[str, Any]] = resp.json()
        return entries

    return read


@pytest.fixture
def patient_id(patient: Patient) -> str:
    """The id of the shared fixture's patient (45 y, 68 kg, CRPS I), as the API writes it."""
    return str(patient.id)


@pytest.fixture
def course(api: TestClient, headers: dict[str, dict[str, str]], patient_id: str) -> dict[str, Any]:
    """A seed-outpatient course planned by the physician through the API (the course view)."""
    resp = api.post(
        f"{API}/patients/{patient_id}/courses", json=COURSE, headers=headers["physician"]
    )
    assert resp.status_code == 201, resp.text
    view: dict[str, Any] = resp.json()
    return view


@pytest.fixture
def infusion(
    api: TestClient,
    headers: dict[str, dict[str, str]],
    course: dict[str, Any],
    make_ready: Callable[[uuid.UUID, uuid.UUID], None],
) -> dict[str, Any]:
    """The bag of session 1 hung by the nurse, checklist complete: ``id``, ``program``,
    ``plan_max_rate_mg_per_h``."""
    resp = api.post(f"{API}/courses/{course['id']}/infusions", json=BAG, headers=headers["nurse"])
    assert resp.status_code == 201, resp.text
    hung: dict[str, Any] = resp.json()
    make_ready(uuid.UUID(hung["id"]), uuid.UUID(course["patient_id"]))
    return hung
