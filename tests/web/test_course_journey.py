"""A whole course driven through the API, as a clinic runs it: two test infusions, the
continue/stop recommendation and the signed decision, the titrated series, follow-up
scores, relapse and a booster, the oral follow-on and the questionnaires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.web.conftest import API
from tests.web.test_pages import sign_in

Headers = dict[str, dict[str, str]]
CHECKLIST = {
    "consent_confirmed": True,
    "escort_confirmed": True,
    "escort_name": "A. Escort",
    "fasting_confirmed": True,
    "medications_reviewed": True,
    "premedication_note": "premedication given as planned",
}


def _post(api: TestClient, path: str, body: dict[str, Any], who: dict[str, str]) -> Any:
    resp = api.post(f"{API}{path}", json=body, headers=who)
    assert resp.status_code == 201, (path, resp.text)
    return resp.json()


def _get(api: TestClient, path: str, who: dict[str, str], **params: Any) -> Any:
    resp = api.get(f"{API}{path}", params=params, headers=who)
    assert resp.status_code == 200, (path, resp.text)
    return resp.json()


def _iso(t: datetime) -> str:
    return t.isoformat()


def _session(
    api: TestClient,
    headers: Headers,
    course: dict[str, Any],
    *,
    number: int,
    day: datetime,
    nrs_after: float,
    cadss6: dict[str, int] | None = None,
    rate_mg_per_kg_h: float | None = None,
) -> dict[str, Any]:
    """Hang the bag of session ``number``, chart before, run 2 h, chart after, discharge."""
    nurse = headers["nurse"]
    pid = course["patient_id"]
    bag = _post(
        api,
        f"/courses/{course['id']}/infusions",
        {"session_number": number, "bag_mg": 250, "bag_ml": 250, "lot": "LOT-J"},
        nurse,
    )
    iid = bag["id"]
    _post(api, f"/infusions/{iid}/checklist", CHECKLIST, nurse)
    before = {"infusion_id": iid, "measured_utc": _iso(day)}
    _post(
        api,
        f"/patients/{pid}/vitals",
        {**before, "sbp_mmhg": 122, "dbp_mmhg": 76, "hr_per_min": 70, "spo2_pct": 98},
        nurse,
    )
    _post(api, f"/patients/{pid}/scores", {**before, "instrument": "pain_nrs", "value": 7}, nurse)
    screen = dict.fromkeys(("frequency", "urgency", "dysuria", "haematuria", "suprapubic_pain"), 0)
    _post(
        api,
        f"/patients/{pid}/scores",
        {**before, "instrument": "urinary_screen", "items": screen},
        nurse,
    )
    start = day + timedelta(minutes=15)
    rate = (
        {"rate_mg_per_kg_h": rate_mg_per_kg_h}
        if rate_mg_per_kg_h
        else {"rate_mg_per_h": bag["program"][0]["rate_mg_per_h"]}
    )
    _post(
        api, f"/infusions/{iid}/events", {"kind": "start", "time_utc": _iso(start), **rate}, nurse
    )
    during = {"infusion_id": iid, "measured_utc": _iso(start + timedelta(hours=1))}
    if cadss6 is not None:
        _post(
            api,
            f"/patients/{pid}/scores",
            {**during, "instrument": "cadss6", "items": cadss6},
            nurse,
        )
    _post(api, f"/patients/{pid}/scores", {**during, "instrument": "moaas", "value": 5}, nurse)
    stop = start + timedelta(hours=2)
    _post(api, f"/infusions/{iid}/events", {"kind": "stop", "time_utc": _iso(stop)}, nurse)
    after = {"infusion_id": iid, "measured_utc": _iso(stop + timedelta(minutes=30))}
    _post(
        api,
        f"/patients/{pid}/scores",
        {**after, "instrument": "pain_nrs", "value": nrs_after},
        nurse,
    )
    return bag


CADSS_LOW = {"item1": 1, "item2": 0, "item6": 0, "item7": 1, "item15": 0, "item22": 0}


@pytest.mark.slow
def test_a_whole_course_through_the_api(
    api: TestClient, headers: Headers, course: dict[str, Any]
) -> None:
    """Test infusions, recommendation kept with the decision, titration within limits,
    relapse, booster and oral follow-on, all through the API."""
    cid, doc = course["id"], headers["physician"]
    monday = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0) - timedelta(
        days=21
    )

    # Before any infusion: no score, so no recommendation either way.
    rec = _get(api, f"/courses/{cid}/continuation", doc)
    assert rec["recommend"] == "insufficient_data"

    # The two test infusions: pain 7 -> 4 after the second (43%), mild dissociation.
    _session(api, headers, course, number=1, day=monday, nrs_after=5, cadss6=CADSS_LOW)
    _session(
        api,
        headers,
        course,
        number=2,
        day=monday + timedelta(days=1),
        nrs_after=4,
        cadss6=CADSS_LOW,
    )
    rec = _get(api, f"/courses/{cid}/continuation", doc)
    assert rec["recommend"] == "continue"
    assert rec["after_session"] == 2
    assert rec["responded"] is True and rec["responded_2_points"] is True
    assert rec["threshold_pct"] == pytest.approx(30.0)
    assert rec["inputs"]["session_nrs"] == [5.0, 4.0]

    # The physician signs; the recommendation and its inputs are kept with the decision.
    signed = _post(
        api,
        f"/courses/{cid}/decisions",
        {"after_session": 2, "decision": "continue", "reason": "responded, tolerated"},
        doc,
    )
    assert signed["recommendation"]["recommend"] == "continue"
    assert signed["recommendation"]["inputs"]["session_nrs"] == [5.0, 4.0]
    view = _get(api, f"/courses/{cid}", doc)
    assert view["decisions"][0]["recommendation"]["drop_pct"] == pytest.approx(100 * 3 / 7)

    # Session 3 opens the series: the planned rate; the model's suggestion stays within
    # every hard limit.
    nxt = _get(api, f"/courses/{cid}/titration", doc)
    assert nxt["session_number"] == 3
    assert nxt["rule"]["action"] == "as_planned"
    assert nxt["rule"]["rate_mg_per_kg_h"] == pytest.approx(0.35)
    model = nxt["model"]
    assert model["relief"]["n_observations"] == 2
    assert 0 < model["suggestion"]["rate_mg_per_kg_h"] <= model["highest_rate_mg_per_kg_h"]
    assert model["highest_rate_mg_per_kg_h"] <= 0.5 + 1e-9  # the series' titration maximum

    # Session 3 at 0.35 mg/kg/h with relief short of the target (pain 6 of 7): one step up.
    _session(
        api,
        headers,
        course,
        number=3,
        day=monday + timedelta(days=7),
        nrs_after=6,
        rate_mg_per_kg_h=0.35,
    )
    nxt = _get(api, f"/courses/{cid}/titration", doc)
    assert nxt["session_number"] == 4
    assert nxt["rule"]["action"] == "increase"
    assert nxt["rule"]["rate_next"] == pytest.approx(0.40)
    assert nxt["model"]["relief"]["n_observations"] == 3

    # The physician's course page shows the same advice, with its reasons.
    sign_in(api, "doc", next_url=f"/courses/{cid}")
    page = api.get(f"/courses/{cid}")
    assert page.status_code == 200
    assert 'id="recommendation"' in page.text and "ketapain recommends: continue" in page.text
    assert "Protocol rule: increase" in page.text and "Bayesian MAP" in page.text

    # Sessions 4 and 5 at 0.40 mg/kg/h: pain 3 of 7 (57%) twice, so the goal is reached
    # (a fall of 50% or more on two sessions) and the course may end early (seed 003).
    for number, day in ((4, 8), (5, 9)):
        _session(
            api, headers, course, number=number, day=monday + timedelta(days=day), nrs_after=3,
            rate_mg_per_kg_h=0.40,
        )  # fmt: skip
    early = _get(api, f"/courses/{cid}/early-completion", doc)
    assert early["goal_reached"] is True and early["suggest_complete"] is True
    _post(api, f"/courses/{cid}/status", {"status": "completed", "reason": early["reason"]}, doc)

    # The oral follow-on: proposed the day after the last infusion, Blonk 2010 dose.
    oral = _get(api, f"/courses/{cid}/oral-proposal", doc)
    assert oral["doses_per_day"] == 3
    assert oral["dose_mg"] == pytest.approx(0.5 * 68)
    written = _post(
        api,
        f"/courses/{cid}/oral-prescriptions",
        {
            "dose_mg": oral["dose_mg"],
            "doses_per_day": 3,
            "start_date": oral["start_date"],
            "end_date": oral["end_date"],
        },
        doc,
    )
    assert written["findings"] == oral["findings"]
    assert oral["start_date"] == (monday + timedelta(days=10)).date().isoformat()

    # Follow-up: relief holds a few days, then pain comes back above 70% of the baseline.
    pid = course["patient_id"]
    for day, nrs in ((12, 3), (16, 6)):
        when = _iso(monday + timedelta(days=day, hours=10))
        _post(
            api,
            f"/patients/{pid}/scores",
            {"instrument": "pain_nrs", "value": nrs, "measured_utc": when},
            headers["nurse"],
        )
    today = datetime.now(UTC).date().isoformat()
    relapse = _get(api, f"/courses/{cid}/booster-suggestion", doc, today=today)
    assert relapse["relapsed"] is True and relapse["suggest_booster"] is True
    _post(
        api,
        f"/courses/{cid}/boosters",
        {"scheduled_date": today, "reason": relapse["reason"]},
        doc,
    )
    after = _get(api, f"/courses/{cid}/booster-suggestion", doc, today=today)
    assert len(after["history"]) == 1 and after["suggest_booster"] is False

    # Questionnaires through the patient's link: a PHQ-9 with item 9 alerts the physician.
    link = _post(api, f"/patients/{pid}/links", {"valid_days": 14}, headers["nurse"])
    phq9 = {f"item{i}": 1 for i in range(1, 10)}
    answered = api.post(
        f"{API}/portal/{link['secret']}/scores", json={"instrument": "phq9", "items": phq9}
    )
    assert answered.status_code == 201, answered.text
    assert "phq9_item9" in {a["signal"] for a in answered.json()["alerts"]}
    alarms = _get(api, "/alarms", doc, patient_id=pid)
    assert any(a["signal"] == "phq9_item9" and a["level"] == "stop" for a in alarms)
    schedule = _get(api, f"/courses/{cid}/pro-schedule", doc, today=today)
    assert {i["instrument"] for i in schedule["items"]} >= {"pain_nrs", "pgic", "phq9", "gad7"}

    # The desk sees the calendar without doses; safety and the stock log add up.
    calendar = _get(api, f"/courses/{cid}/calendar", headers["front_desk"])
    assert all("dose_mg" not in row for row in calendar["sessions"])
    safety = _get(api, f"/courses/{cid}/safety", doc, today=today)
    assert safety["on_hold"] is False
    assert safety["cumulative_dose"]["course"]["infusions"] == 5
    assert safety["cumulative_dose"]["course"]["iv_delivered_mg"] > 0

    # The finished course's page keeps the decision with its recommendation and shows
    # the oral follow-on and the safety figures.
    page = api.get(f"/courses/{cid}")
    assert page.status_code == 200
    assert "(ketapain recommended continue)" in page.text
    assert 'id="oral-proposal"' in page.text
    assert 'id="safety"' in page.text and "Ketamine delivered: this course" in page.text
