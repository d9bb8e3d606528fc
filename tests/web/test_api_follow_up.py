"""The follow-up API: the course's questionnaire schedule, reminders, patient links, and
the anonymous portal route that takes a patient's questionnaire through a link."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ketapain.clinic.audit import SYSTEM, unit_of_work
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.portal import PORTAL_USERNAME, PatientLink

from .conftest import API, COURSE_START

PHQ9 = {f"item{i}": 0 for i in range(1, 9)}


def _link(api: TestClient, headers: dict[str, dict[str, str]], patient_id: str, **body: Any):
    resp = api.post(f"{API}/patients/{patient_id}/links", json=body, headers=headers["nurse"])
    assert resp.status_code == 201, resp.text
    return resp.json()


def _send(api: TestClient, secret: str, **body: Any):
    return api.post(f"{API}/portal/{secret}/scores", json=body)


def test_pro_schedule_of_a_course(
    api: TestClient, headers: dict[str, dict[str, str]], course: dict[str, Any]
) -> None:
    """The schedule names each item's instrument, dates, window, status, reason and
    source; the front desk is refused."""
    today = date.fromisoformat(COURSE_START) + timedelta(days=1)
    resp = api.get(
        f"{API}/courses/{course['id']}/pro-schedule",
        params={"today": today.isoformat()},
        headers=headers["nurse"],
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["first_infusion_date"] == COURSE_START
    item = body["items"][0]
    assert set(item) == {
        "instrument", "title", "timepoint", "due_date", "window_start", "window_end",
        "reason", "source", "status",
    }  # fmt: skip
    statuses = {(i["instrument"], i["due_date"]): i["status"] for i in body["items"]}
    assert statuses[("pain_nrs", COURSE_START)] == "overdue"
    assert statuses[("pain_nrs", today.isoformat())] == "due"
    bpi = api.get(
        f"{API}/courses/{course['id']}/pro-schedule",
        params={"weekly": "bpi", "diary_weeks": 0},
        headers=headers["physician"],
    ).json()
    assert "bpi_severity" in {i["instrument"] for i in bpi["items"]}
    refused = api.get(f"{API}/courses/{course['id']}/pro-schedule", headers=headers["front_desk"])
    assert refused.status_code == 403


def test_reminders_list_patients_with_questionnaires_due(
    api: TestClient, headers: dict[str, dict[str, str]], course: dict[str, Any]
) -> None:
    """On the course's second day the diary is overdue since the first; each row names
    the patient, what, since when and why."""
    today = date.fromisoformat(COURSE_START) + timedelta(days=1)
    resp = api.get(
        f"{API}/reminders", params={"today": today.isoformat()}, headers=headers["nurse"]
    )
    assert resp.status_code == 200, resp.text
    diary = next(r for r in resp.json() if r["instrument"] == "pain_nrs")
    assert (diary["status"], diary["since"], diary["patient_id"]) == (
        "overdue", COURSE_START, course["patient_id"],
    )  # fmt: skip
    assert api.get(f"{API}/reminders", headers=headers["admin"]).status_code == 403
    bad = api.get(f"{API}/reminders", params={"overdue_days": -1}, headers=headers["nurse"])
    assert bad.status_code == 422


def test_issue_list_and_revoke_a_link(
    api: TestClient, headers: dict[str, dict[str, str]], patient_id: str
) -> None:
    """Issuing answers 201 with the path, the secret and the expiry; the list never shows
    a secret; a revoked link answers the portal 404."""
    link = _link(api, headers, patient_id, valid_days=7)
    assert set(link) == {"id", "url_path", "secret", "expires_utc"}
    assert link["url_path"] == f"/p/{link['secret']}"
    listed = api.get(f"{API}/patients/{patient_id}/links", headers=headers["physician"])
    assert listed.status_code == 200 and link["secret"] not in listed.text
    resp = api.post(
        f"{API}/patients/{patient_id}/links/{link['id']}/revoke", headers=headers["physician"]
    )
    assert resp.status_code == 200 and resp.json()["revoked_utc"]
    assert _send(api, link["secret"], instrument="pain_nrs", value=3).status_code == 404


@pytest.mark.parametrize(("body", "field"), [({"valid_days": 0}, "valid_days"),
                                             ({"valid_days": 91}, "valid_days"),
                                             ({"valid_days": "14"}, "valid_days"),
                                             ({"days": 14}, "days")])  # fmt: skip
def test_link_validity_is_checked(
    api: TestClient, headers: dict[str, dict[str, str]], patient_id: str,
    body: dict[str, Any], field: str,
) -> None:  # fmt: skip
    """Validity outside 1-90 days, given as text, or an unknown key: 422 naming it."""
    resp = api.post(f"{API}/patients/{patient_id}/links", json=body, headers=headers["nurse"])
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == field


def test_the_front_desk_may_not_issue_links(
    api: TestClient, headers: dict[str, dict[str, str]], patient_id: str
) -> None:
    """Issuing a link is charting: the front desk gets 403."""
    resp = api.post(f"{API}/patients/{patient_id}/links", json={}, headers=headers["front_desk"])
    assert resp.status_code == 403


def test_the_portal_takes_a_score_without_credentials(
    api: TestClient, headers: dict[str, dict[str, str]], patient_id: str, audit_log: Any
) -> None:
    """No Authorization header: the link is the key. A PHQ-9 with item 9 answered comes
    back with its stop alert (not the staff's message); the audit names patient-portal."""
    link = _link(api, headers, patient_id)
    resp = _send(api, link["secret"], instrument="phq9", items=PHQ9 | {"item9": 2})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["score"]["value"] == 2.0
    assert body["alerts"] == [{"signal": "phq9_item9", "level": "stop"}]
    entries = audit_log(actor_username=PORTAL_USERNAME, action="submit_pro")
    assert len(entries) == 1 and link["id"] in entries[0]["detail"]
    assert entries[0]["role"] == "patient"
    alarms = api.get(
        f"{API}/alarms", params={"patient_id": patient_id}, headers=headers["physician"]
    )
    assert [a["signal"] for a in alarms.json()] == ["phq9_item9"]


def test_unknown_expired_and_revoked_links_answer_the_same_404(
    api: TestClient, db: Database, headers: dict[str, dict[str, str]], patient_id: str
) -> None:
    """Unknown, expired and revoked links get the same 404 body, even with a body that
    is not JSON: the answer tells nothing about which links exist."""
    expired = _link(api, headers, patient_id)
    revoked = _link(api, headers, patient_id)
    with unit_of_work(db, SYSTEM) as s:
        s.get(PatientLink, uuid.UUID(expired["id"])).expires_utc = utc_now()
    api.post(f"{API}/patients/{patient_id}/links/{revoked['id']}/revoke", headers=headers["nurse"])
    answers = []
    for secret in ("x" * 43, expired["secret"], revoked["secret"]):
        for resp in (
            _send(api, secret, instrument="pain_nrs", value=3),
            api.post(f"{API}/portal/{secret}/scores", content=b"{not json"),
        ):
            assert resp.status_code == 404
            answers.append(resp.json())
    assert all(a == answers[0] for a in answers)
    assert answers[0]["error"] == "not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"instrument": "moaas", "value": 5}, "instrument"),
        ({"instrument": "pain_nrs", "value": 12}, "pain_nrs value"),
        ({"instrument": "pain_nrs", "value": "3"}, "value"),
        ({"instrument": "pain_nrs", "value": 3, "note": "x"}, "note"),
        ({"instrument": "pain_nrs", "value": 3, "measured_utc": "2999-01-01T00:00:00Z"},
         "measured_utc"),
    ],
)  # fmt: skip
def test_the_portal_refuses_bad_answers_naming_the_field(
    api: TestClient, headers: dict[str, dict[str, str]], patient_id: str,
    body: dict[str, Any], field: str,
) -> None:  # fmt: skip
    """A clinician's instrument, an impossible value, text for a number, an unknown key or
    a future time: 422 naming the field (not 401, though anonymous)."""
    link = _link(api, headers, patient_id)
    resp = _send(api, link["secret"], **body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == field


def test_the_portal_refuses_a_body_that_is_not_json(
    api: TestClient, headers: dict[str, dict[str, str]], patient_id: str
) -> None:
    """A valid link with a body that is not JSON: 422 naming the body."""
    link = _link(api, headers, patient_id)
    resp = api.post(f"{API}/portal/{link['secret']}/scores", content=b"\xff{")
    assert resp.status_code == 422 and resp.json()["field"] == "body"
