"""Safety over a course through the API and the chair view: the course's safety view, the
holds of a patient, a physician's review, and the 409 at pump start while a hold stands
or a repeated patient's urinary screen is missing."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.web.conftest import API
from tests.web.test_pages import sign_in

from ketapain.clinic.db import utc_now

Headers = dict[str, dict[str, str]]
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
NEGATIVE = {"frequency": 0, "urgency": 0, "dysuria": 0, "haematuria": 0, "suprapubic_pain": 0}


def _ok(resp: Any, status: int = 201) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


def _alt(api: TestClient, headers: Headers, patient_id: str, value: float) -> dict[str, Any]:
    body = {"test": "alt", "value": value, "ref_low": 0, "ref_high": 40}
    return _ok(api.post(f"{API}/patients/{patient_id}/labs", json=body, headers=headers["nurse"]))


def _start(api: TestClient, headers: Headers, infusion_id: str) -> Any:
    body = {"kind": "start", "rate_mg_per_h": 13.6}
    return api.post(f"{API}/infusions/{infusion_id}/events", json=body, headers=headers["nurse"])


def test_course_safety_view_and_who_may_read_it(
    api: TestClient, headers: Headers, course: dict[str, Any]
) -> None:
    """GET /courses/{id}/safety answers the bundle for a given day; the front desk is
    refused; ``today`` must be a date."""
    url = f"{API}/courses/{course['id']}/safety"
    view = _ok(api.get(url, params={"today": "2026-11-01"}, headers=headers["nurse"]), 200)
    assert view["today"] == "2026-11-01" and view["on_hold"] is False
    assert set(view) >= {"holds", "labs_due", "cumulative_dose", "bp_trend", "interactions"}
    assert {d["what"] for d in view["labs_due"]} == {"baseline", "post_series"}
    assert api.get(url, headers=headers["front_desk"]).status_code == 403
    bad = api.get(url, params={"today": "yesterday"}, headers=headers["nurse"])
    assert bad.status_code == 422 and bad.json()["field"] == "query.today"


def test_hold_blocks_the_pump_until_a_physician_reviews(
    api: TestClient,
    headers: Headers,
    patient_id: str,
    infusion: dict[str, Any],
    audit_log: Any,
) -> None:
    """An ALT above 3 x ULN: the holds list it, the pump start answers 409 with its reason
    and source, a nurse may not review it; the physician's resume (201, audited) lets the
    pump start."""
    lab = _alt(api, headers, patient_id, 200.0)
    (hold,) = _ok(api.get(f"{API}/patients/{patient_id}/holds", headers=headers["nurse"]), 200)
    assert hold["lab_result"]["id"] == lab["id"] and hold["state"] == "awaiting_review"
    refused = _start(api, headers, infusion["id"])
    assert refused.status_code == 409
    err = refused.json()
    assert (err["error"], err["field"]) == ("conflict", "hold")
    assert hold["reason"] in err["message"] and "Noppers" in err["message"]
    review = {"lab_result_id": lab["id"], "outcome": "resume", "reason": "repeat ALT normal"}
    url = f"{API}/patients/{patient_id}/safety-reviews"
    assert api.post(url, json=review, headers=headers["nurse"]).status_code == 403
    done = _ok(api.post(url, json=review, headers=headers["physician"]))
    assert (done["outcome"], done["lab_result_id"]) == ("resume", lab["id"])
    assert audit_log(entity="safety_reviews", action="create")[0]["entity_id"] == done["id"]
    assert _ok(api.get(f"{API}/patients/{patient_id}/holds", headers=headers["nurse"]), 200) == []
    assert _start(api, headers, infusion["id"]).status_code == 201


def test_urinary_screen_hold_and_review_by_score(
    api: TestClient, headers: Headers, patient_id: str
) -> None:
    """A positive urinary screen holds; its review names the score; keep_holding keeps it."""
    body = {"instrument": "urinary_screen", "items": {**NEGATIVE, "haematuria": 1}}
    url = f"{API}/patients/{patient_id}/scores"
    score = _ok(api.post(url, json=body, headers=headers["nurse"]))
    review = {"score_id": score["id"], "outcome": "keep_holding", "reason": "refer urology"}
    reviews = f"{API}/patients/{patient_id}/safety-reviews"
    _ok(api.post(reviews, json=review, headers=headers["physician"]))
    (hold,) = _ok(api.get(f"{API}/patients/{patient_id}/holds", headers=headers["nurse"]), 200)
    assert (hold["kind"], hold["state"], hold["review"]["reason"]) == (
        "urinary",
        "keep_holding",
        "refer urology",
    )


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"outcome": "resume", "reason": "r"}, 422, "lab_result_id"),
        ({"lab_result_id": "LAB", "score_id": "LAB", "outcome": "resume", "reason": "r"}, 422,
         "lab_result_id"),
        ({"lab_result_id": "LAB", "outcome": "release", "reason": "r"}, 422, "outcome"),
        ({"lab_result_id": "LAB", "outcome": "resume", "reason": ""}, 422, "reason"),
        ({"lab_result_id": "LAB", "outcome": "resume", "reason": "r", "note": "x"}, 422, "note"),
        ({"lab_result_id": str(uuid.UUID(int=7)), "outcome": "resume", "reason": "r"}, 404, "id"),
    ],
)  # fmt: skip
def test_review_refuses_bad_bodies_naming_the_field(
    api: TestClient,
    headers: Headers,
    patient_id: str,
    body: dict[str, Any],
    status: int,
    field: str,
) -> None:
    """A review body with no result, two, an unknown outcome, no reason or an unknown key
    is refused naming the field; an unknown result is 404."""
    lab = _alt(api, headers, patient_id, 500.0)
    sent = {k: lab["id"] if v == "LAB" else v for k, v in body.items()}
    resp = api.post(
        f"{API}/patients/{patient_id}/safety-reviews", json=sent, headers=headers["physician"]
    )
    assert resp.status_code == status, resp.text
    assert resp.json()["field"] == field


def test_repeat_session_needs_the_urinary_screen_at_pump_start(
    api: TestClient,
    headers: Headers,
    patient_id: str,
    course: dict[str, Any],
    infusion: dict[str, Any],
    make_ready: Any,
) -> None:
    """Session 1, given two days ago, needs no screen; session 2 today answers 409 until the
    nurse charts the screen."""
    two_days = (utc_now() - timedelta(days=2)).isoformat()
    start = {"kind": "start", "rate_mg_per_h": 13.6, "time_utc": two_days}
    events = f"{API}/infusions/{infusion['id']}/events"
    _ok(api.post(events, json=start, headers=headers["nurse"]))
    stop = {"kind": "stop", "time_utc": (utc_now() - timedelta(days=2, hours=-4)).isoformat()}
    _ok(api.post(events, json=stop, headers=headers["nurse"]))
    bag = {"session_number": 2, "bag_mg": 250, "bag_ml": 250, "lot": "LOT-2"}
    second = _ok(
        api.post(f"{API}/courses/{course['id']}/infusions", json=bag, headers=headers["nurse"])
    )
    make_ready(uuid.UUID(second["id"]), uuid.UUID(patient_id))
    refused = _start(api, headers, second["id"])
    assert refused.status_code == 409 and refused.json()["field"] == "urinary_screen"
    body = {"instrument": "urinary_screen", "items": NEGATIVE, "infusion_id": second["id"]}
    _ok(api.post(f"{API}/patients/{patient_id}/scores", json=body, headers=headers["nurse"]))
    assert _start(api, headers, second["id"]).status_code == 201


# --- the chair view -----------------------------------------------------------------------


@pytest.fixture
def nurse_page(api: TestClient) -> Iterator[TestClient]:
    """A browser signed in as the nurse (redirects not followed)."""
    with TestClient(api.app, follow_redirects=False) as client:
        assert sign_in(client, "nurse").status_code == 303
        yield client


def _post(
    client: TestClient, infusion_id: str, action: str, form: str | None = None, **fields: Any
) -> Any:
    """Post the chair form ``form`` (default: named as its action) to ``action``."""
    page = client.get(f"/infusions/{infusion_id}")
    token = _TOKEN.search(page.text)
    assert token is not None
    return client.post(
        f"/infusions/{infusion_id}/{action}",
        data={"csrf_token": token.group(1), "_form": form or action, **fields},
    )


def test_chair_shows_the_hold_where_the_pump_starts(
    api: TestClient,
    headers: Headers,
    patient_id: str,
    infusion: dict[str, Any],
    nurse_page: TestClient,
) -> None:
    """The chair view shows the hold's reason and source in the pump card, without a review
    form for the nurse; a start from the page is refused with the reason (409)."""
    _alt(api, headers, patient_id, 200.0)
    page = nurse_page.get(f"/infusions/{infusion['id']}").text
    assert "On hold: the pump may not start." in page
    assert "above 3 x ULN" in page and "Noppers" in page
    assert "Sign the review" not in page
    resp = _post(nurse_page, infusion["id"], "event", kind="start", rate="13.6", rate_unit="mg/h")
    assert resp.status_code == 409 and "Infusions are on hold" in resp.text


def test_chair_urinary_screen_form_charts_the_screen(
    api: TestClient,
    headers: Headers,
    patient_id: str,
    infusion: dict[str, Any],
    nurse_page: TestClient,
) -> None:
    """The urinary screen form asks each item yes or no; a positive answer is charted and
    holds; an unanswered item is refused next to its field."""
    page = nurse_page.get(f"/infusions/{infusion['id']}").text
    assert "Urinary symptom screen" in page and "first session" in page
    partial = dict.fromkeys((k for k in NEGATIVE if k != "dysuria"), "0")
    missing = _post(nurse_page, infusion["id"], "urinary-screen", **partial)
    assert missing.status_code == 422 and "Required: yes or no." in missing.text
    answers = {**dict.fromkeys(NEGATIVE, "0"), "urgency": "1"}
    assert _post(nurse_page, infusion["id"], "urinary-screen", **answers).status_code == 303
    (hold,) = _ok(api.get(f"{API}/patients/{patient_id}/holds", headers=headers["nurse"]), 200)
    assert hold["score"]["items"]["urgency"] == 1


def test_physician_reviews_the_hold_on_the_chair_view(
    api: TestClient, headers: Headers, patient_id: str, infusion: dict[str, Any]
) -> None:
    """The physician sees the review form with the hold and signs resume with a reason;
    the hold is released; a review without a reason is refused next to its field."""
    lab = _alt(api, headers, patient_id, 200.0)
    with TestClient(api.app, follow_redirects=False) as doc:
        assert sign_in(doc, "doc").status_code == 303
        assert "Sign the review" in doc.get(f"/infusions/{infusion['id']}").text
        held = {"form": "review-1", "lab_result_id": lab["id"], "outcome": "resume"}
        unsigned = _post(doc, infusion["id"], "safety-review", **held)
        assert unsigned.status_code == 422 and "Required: why." in unsigned.text
        signed = _post(doc, infusion["id"], "safety-review", **held, reason="ALT from statin")
        assert signed.status_code == 303
    assert _ok(api.get(f"{API}/patients/{patient_id}/holds", headers=headers["nurse"]), 200) == []
