"""Two nurses changing the same infusion at once: a clear conflict, never a lost update.

The infusion view carries ``version`` (its number of pump events); an event sent with
``expected_version`` is refused with 409 when another event was charted since, naming
that event, who charted it and when. The race itself runs on real threads against the
database (SQLite queues its writers; PostgreSQL's write transactions take the advisory
lock): of two events decided on the same version exactly one is written.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ketapain.clinic.accounts import TokenKind, User, create_user, issue_token
from ketapain.clinic.audit import SYSTEM
from ketapain.clinic.db import Database
from ketapain.clinic.infusions import InfusionEvent
from ketapain.clinic.pump import pump_event
from ketapain.config import Settings
from ketapain.errors import ConflictError

from .conftest import API

Headers = dict[str, dict[str, str]]


def _when(hours_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat()


@pytest.fixture
def second_nurse(db: Database) -> User:
    """Another nurse at the same chair."""
    return create_user(
        db, SYSTEM, username="nurse.two", full_name="Second Nurse RN", role="nurse",
        password="test-password-2",
    )  # fmt: skip


@pytest.fixture
def running(api: TestClient, headers: Headers, infusion: dict[str, Any]) -> dict[str, Any]:
    """The fixture's infusion, started by the nurse an hour ago (version 1)."""
    rate = infusion["program"][0]["rate_mg_per_h"]
    resp = api.post(
        f"{API}/infusions/{infusion['id']}/events",
        json={"kind": "start", "rate_mg_per_h": rate, "time_utc": _when(1), "expected_version": 0},
        headers=headers["nurse"],
    )
    assert resp.status_code == 201, resp.text
    return infusion


def _view(api: TestClient, infusion_id: str, header: dict[str, str]) -> dict[str, Any]:
    resp = api.get(f"{API}/infusions/{infusion_id}", headers=header)
    assert resp.status_code == 200, resp.text
    view: dict[str, Any] = resp.json()
    return view


def test_the_second_change_on_a_stale_view_is_a_conflict(
    api: TestClient, db: Database, headers: Headers, running: dict[str, Any], second_nurse: User
) -> None:
    """Both nurses read version 1; the first rate change is written, the second answers
    409 on ``expected_version`` naming the first, and nothing of it is written; after
    reading again the second nurse's change goes through."""
    token = issue_token(db, Settings(), second_nurse, kind=TokenKind.API)
    other = {"Authorization": f"Bearer {token}"}
    iid = running["id"]
    seen_a = _view(api, iid, headers["nurse"])
    seen_b = _view(api, iid, other)
    assert seen_a["version"] == seen_b["version"] == 1
    first = {"kind": "rate_change", "rate_mg_per_h": 15.0, "reason": "pain 7/10"}
    resp = api.post(
        f"{API}/infusions/{iid}/events", json={**first, "expected_version": 1},
        headers=headers["nurse"],
    )  # fmt: skip
    assert resp.status_code == 201, resp.text
    second = {"kind": "rate_change", "rate_mg_per_h": 10.0, "reason": "drowsy"}
    resp = api.post(
        f"{API}/infusions/{iid}/events", json={**second, "expected_version": 1}, headers=other
    )
    assert resp.status_code == 409, resp.text
    body = resp.json()
    assert body["error"] == "conflict"
    assert body["field"] == "expected_version"
    assert "rate change to 15 mg/h by nurse" in body["message"]
    assert "version 1, now 2" in body["message"]
    after = _view(api, iid, other)
    assert after["version"] == 2
    assert after["rate_mg_per_h"] == 15.0
    assert [e["rate_mg_per_h"] for e in after["events"]][-1] == 15.0
    resp = api.post(
        f"{API}/infusions/{iid}/events", json={**second, "expected_version": 2}, headers=other
    )
    assert resp.status_code == 201, resp.text
    assert _view(api, iid, other)["rate_mg_per_h"] == 10.0


def test_an_event_without_a_version_follows_the_latest(
    api: TestClient, headers: Headers, running: dict[str, Any]
) -> None:
    """A client that sends no ``expected_version`` (an older integration) is charted on
    the latest state, as before; a version from the future is refused as invalid."""
    iid = running["id"]
    resp = api.post(
        f"{API}/infusions/{iid}/events", json={"kind": "pause", "reason": "bathroom"},
        headers=headers["nurse"],
    )  # fmt: skip
    assert resp.status_code == 201, resp.text
    resp = api.post(
        f"{API}/infusions/{iid}/events", json={"kind": "resume", "expected_version": 9},
        headers=headers["nurse"],
    )  # fmt: skip
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == "expected_version"
    resp = api.post(
        f"{API}/infusions/{iid}/events", json={"kind": "resume", "expected_version": -1},
        headers=headers["nurse"],
    )  # fmt: skip
    assert resp.status_code == 422, resp.text


def test_racing_nurses_exactly_one_wins(
    db: Database, running: dict[str, Any], staff: dict[str, Any], second_nurse: User
) -> None:
    """Rounds of two threads charting a rate change on the same version at the same
    moment: each round exactly one is written and the other gets the conflict; the
    events stay numbered 1..n with no gap and no duplicate."""
    iid = uuid.UUID(running["id"])
    actors = (staff["nurse"], second_nurse.actor())
    rounds = 8
    for version in range(1, rounds + 1):
        outcomes = _race(db, iid, actors, version)
        assert sorted(outcomes) == ["conflict", "written"], f"round {version}: {outcomes}"
    with db.session() as session:
        numbers = list(
            session.scalars(
                select(InfusionEvent.sequence)
                .where(InfusionEvent.infusion_id == iid)
                .order_by(InfusionEvent.sequence)
            )
        )
    assert numbers == list(range(1, rounds + 2))


def _race(db: Database, iid: uuid.UUID, actors: tuple[Any, Any], version: int) -> list[str]:
    """Two threads chart a rate change on ``version`` at once; what each one got."""
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    lock = threading.Lock()

    def chart(k: int) -> None:
        barrier.wait(timeout=30)
        try:
            pump_event(
                db, actors[k], iid, kind="rate_change", rate_mg_per_h=10.0 + k,
                reason=f"round {version}", expected_version=version,
            )  # fmt: skip
            result = "written"
        except ConflictError as err:
            result = "conflict" if err.field == "expected_version" else f"conflict on {err.field}"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=chart, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes
