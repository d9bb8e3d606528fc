"""The booking API: the series calendar, missed and moved sessions, the chair capacity,
early completion and the booster suggestion, by role; and the schedule page."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any, Final

import pytest
from fastapi.testclient import TestClient

from ketapain.clinic._service import add_row
from ketapain.clinic.audit import Actor
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.patients import BodyMeasurement, Diagnosis
from ketapain.clinic.permissions import Action
from ketapain.clinic.registry import register_patient
from ketapain.config import Settings
from ketapain.web.app import create_app

API: Final = "/api/v1"
DAY: Final = "2026-11-09"  # COURSE_START of the API fixtures, a Monday
PASSWORD: Final = "test-password-1"  # the template users' password (tests/conftest.py)
Headers = dict[str, dict[str, str]]


def _keys(value: Any) -> set[str]:
    """Every key in a JSON value, however deep."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def _ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


@pytest.fixture
def one_chair(db: Database) -> Iterator[TestClient]:
    """The application on the test database with a clinic of one chair."""
    with TestClient(create_app(Settings(chairs=1), db=db)) as client:
        yield client


@pytest.fixture
def second(
    api: TestClient, headers: Headers, db: Database, staff: dict[str, Actor]
) -> dict[str, Any]:
    """A second patient's seed-outpatient course, starting the day after DAY."""
    p = register_patient(
        db,
        staff["front_desk"],
        mrn="T-0002",
        family_name="Able",
        given_name="Test",
        birth_date=date(1970, 1, 1),
        sex="male",
    )
    add_row(db, staff["nurse"], Action.CHART, BodyMeasurement(patient_id=p.id, weight_kg=80.0))
    add_row(db, staff["physician"], Action.CHART, Diagnosis(patient_id=p.id, code="M79.7"))
    body = {"protocol": "seed-outpatient", "start_date": "2026-11-10", "bag_mg": 250, "bag_ml": 250}
    return _ok(
        api.post(f"{API}/patients/{p.id}/courses", json=body, headers=headers["physician"]), 201
    )


def test_calendar_by_role(api: TestClient, headers: Headers, course: dict[str, Any]) -> None:
    """The desk reads the calendar without doses, the physician with them; an admin is
    refused."""
    url = f"{API}/courses/{course['id']}/calendar"
    desk = _ok(api.get(url, headers=headers["front_desk"]))
    assert [s["date"] for s in desk["sessions"]][:3] == [DAY, "2026-11-10", "2026-11-11"]
    assert not any("dose" in k for k in _keys(desk))
    doc = _ok(api.get(url, headers=headers["physician"]))
    assert all(s["dose_mg"] > 0 for s in doc["sessions"])
    assert api.get(url, headers=headers["admin"]).status_code == 403
    assert (
        api.get(f"{API}/courses/{uuid.uuid4()}/calendar", headers=headers["nurse"]).status_code
        == 404
    )


def test_missed_then_moved(api: TestClient, headers: Headers, course: dict[str, Any]) -> None:
    """The desk marks session 2 missed, gets a day to rebook it, and moves it there."""
    desk = headers["front_desk"]
    base = f"{API}/courses/{course['id']}/sessions/2"
    missed = _ok(api.post(f"{base}/missed", json={"reason": "flat tyre"}, headers=desk), 201)
    assert (missed["session"]["status"], missed["change"]["reason"]) == ("missed", "flat tyre")
    again = api.post(f"{base}/missed", json={"reason": "again"}, headers=desk)
    assert again.status_code == 409
    hint = _ok(api.get(f"{base}/rebook-suggestion", params={"today": "2026-11-11"}, headers=desk))
    day = hint["suggested"]["date"]
    assert day == "2026-11-18"  # the first weekday from the 11th without a session 3-7
    moved = _ok(
        api.post(f"{base}/move", json={"new_date": day, "reason": "rebooked"}, headers=desk), 201
    )
    assert (moved["session"]["status"], moved["session"]["start"]) == ("moved", f"{day}T09:00")
    assert moved["overbooked"] == [] and "dose_mg" not in moved["session"]
    cal = _ok(api.get(f"{API}/courses/{course['id']}/calendar", headers=desk))
    assert cal["sessions"][1]["date"] == day
    assert (
        api.get(
            f"{API}/courses/{course['id']}/sessions/3/rebook-suggestion", headers=desk
        ).status_code
        == 409
    )


def test_booking_request_errors(api: TestClient, headers: Headers, course: dict[str, Any]) -> None:
    """Bad bodies and numbers answer 422 naming the field; an admin may not book."""
    base = f"{API}/courses/{course['id']}/sessions"
    desk = headers["front_desk"]
    cases = [
        (f"{base}/2/missed", {}, "reason"),
        (f"{base}/2/missed", {"reason": " "}, "reason"),
        (f"{base}/9/missed", {"reason": "x"}, "session_number"),
        (
            f"{base}/2/move",
            {"new_date": "2026-11-20", "reason": "x", "allow_overbook": "yes"},
            "allow_overbook",
        ),
        (f"{base}/2/move", {"new_date": "2026-11-20", "reason": "x", "when": "now"}, "when"),
        (f"{base}/2/move", {"new_date": "20 Nov", "reason": "x"}, "new_date"),
    ]
    for url, body, field in cases:
        resp = api.post(url, json=body, headers=desk)
        assert resp.status_code == 422, (url, body, resp.text)
        assert resp.json()["field"] == field
    refused = api.post(f"{base}/2/missed", json={"reason": "x"}, headers=headers["admin"])
    assert refused.status_code == 403


def test_a_given_session_cannot_move(
    api: TestClient, headers: Headers, course: dict[str, Any], infusion: dict[str, Any]
) -> None:
    """Session 1 has its bag hung: moving it is a conflict."""
    url = f"{API}/courses/{course['id']}/sessions/1/move"
    resp = api.post(
        url, json={"new_date": "2026-11-20", "reason": "x"}, headers=headers["front_desk"]
    )
    assert resp.status_code == 409
    assert resp.json()["field"] == "session_number"


def test_full_slot_is_refused_then_overbooked(
    one_chair: TestClient, headers: Headers, course: dict[str, Any], second: dict[str, Any]
) -> None:
    """One chair: moving the second patient onto the first one's morning answers 409
    naming the slot and the capacity; overbooking with a reason is booked, and the
    capacity of the day lists the conflict with both patients."""
    desk = headers["front_desk"]
    url = f"{API}/courses/{second['id']}/sessions/1/move"
    body = {"new_date": DAY, "reason": "only day the patient can come"}
    full = one_chair.post(url, json=body, headers=desk)
    assert full.status_code == 409
    assert "2026-11-09 09:00" in full.json()["message"] and "capacity 1" in full.json()["message"]
    over = _ok(one_chair.post(url, json={**body, "allow_overbook": True}, headers=desk), 201)
    assert over["overbooked"]
    cap = _ok(one_chair.get(f"{API}/capacity", params={"day": DAY}, headers=desk))
    assert cap["capacity"] == 1 and cap["conflicts"]
    assert {b["patient"] for b in cap["conflicts"][0]["booked"]} == {"Doe, Jane", "Able, Test"}


def test_capacity_route(api: TestClient, headers: Headers, course: dict[str, Any]) -> None:
    """The desk reads the day's chairs (recovery included, no doses); the default day is
    today; a malformed day answers 422; an admin is refused."""
    desk = headers["front_desk"]
    cap = _ok(api.get(f"{API}/capacity", params={"day": DAY}, headers=desk))
    (booked,) = cap["bookings"]
    assert (booked["number"], booked["chair_until"]) == (1, f"{DAY}T13:00")
    assert cap["slots"][0]["start"] == "08:00" and len(cap["slots"]) == 40
    assert not any("dose" in k for k in _keys(cap))
    today = _ok(api.get(f"{API}/capacity", headers=headers["nurse"]))
    assert today["day"] == utc_now().date().isoformat()
    bad = api.get(f"{API}/capacity", params={"day": "tomorrow"}, headers=desk)
    assert bad.status_code == 422
    assert api.get(f"{API}/capacity", headers=headers["admin"]).status_code == 403


def test_clinical_routes_refuse_the_front_desk(
    api: TestClient, headers: Headers, course: dict[str, Any]
) -> None:
    """Early completion and the booster suggestion are clinical: the physician and the
    nurse read them, the front desk and the admin are refused."""
    base = f"{API}/courses/{course['id']}"
    early = _ok(api.get(f"{base}/early-completion", headers=headers["physician"]))
    assert (early["goal_reached"], early["suggest_complete"]) == (False, False)
    assert early["sessions_left"] == [1, 2, 3, 4, 5, 6, 7]
    boost = _ok(
        api.get(
            f"{base}/booster-suggestion", params={"today": "2026-12-01"}, headers=headers["nurse"]
        )
    )
    assert (boost["suggest_booster"], boost["as_of"]) == (False, "2026-12-01")
    assert boost["booster_phase"]["sessions"] == 2
    assert _ok(api.get(f"{base}/booster-suggestion", headers=headers["physician"]))["as_of"]
    for route in ("early-completion", "booster-suggestion"):
        for role in ("front_desk", "admin"):
            assert api.get(f"{base}/{route}", headers=headers[role]).status_code == 403


# --- the schedule page --------------------------------------------------------------


def _sign_in(client: TestClient, username: str) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, "no csrf_token on the sign-in page"
    resp = client.post(
        "/login",
        data={
            "csrf_token": token.group(1),
            "_form": "login",
            "username": username,
            "password": PASSWORD,
        },
    )
    assert resp.status_code == 200, resp.text


def test_schedule_page_shows_moves_misses_and_chair_time(
    api: TestClient, headers: Headers, patient_id: str, usernames: dict[str, str]
) -> None:
    """The desk's schedule page shows a moved session on its new day with where it came
    from, a missed one marked with the reason, and the chair time of each."""
    today = utc_now().date()
    monday = today + timedelta(days=7 - today.weekday())
    body = {
        "protocol": "seed-outpatient",
        "start_date": monday.isoformat(),
        "bag_mg": 250,
        "bag_ml": 250,
    }
    course = _ok(
        api.post(f"{API}/patients/{patient_id}/courses", json=body, headers=headers["physician"]),
        201,
    )
    base = f"{API}/courses/{course['id']}/sessions"
    desk = headers["front_desk"]
    new_day = (monday + timedelta(days=3)).isoformat()
    _ok(
        api.post(f"{base}/2/move", json={"new_date": new_day, "reason": "holiday"}, headers=desk),
        201,
    )
    _ok(api.post(f"{base}/3/missed", json={"reason": "hospital visit"}, headers=desk), 201)
    _sign_in(api, usernames["front_desk"])
    page = api.get("/schedule")
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", page.text)
    assert f"Moved</span> from {(monday + timedelta(days=1)).isoformat()}: holiday" in text
    assert "Missed</strong>: hospital visit" in text
    assert f"<td>{new_day}</td> <td>09:00–11:00</td> <td>13:00</td>" in text
