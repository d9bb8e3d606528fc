"""The role rules, through the API: what each role may do, what it may not, and that
every refusal answers the same 403 JSON and is audited with the user who asked."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

API = "/api/v1"
Headers = dict[str, dict[str, str]]
AuditLog = Callable[..., list[dict[str, Any]]]
NEW_PATIENT = {
    "mrn": "FD-0001",
    "family_name": "Roe",
    "given_name": "Richard",
    "birth_date": "1975-02-03",
    "sex": "male",
}
DEMOGRAPHICS = {"id", "mrn", "family_name", "given_name", "birth_date", "age_y", "sex"}
VITALS = {"sbp_mmhg": 122, "dbp_mmhg": 76, "hr_per_min": 70, "spo2_pct": 98}
COURSE = {"protocol": "seed-outpatient", "start_date": "2026-11-09", "bag_mg": 250, "bag_ml": 250}
# Well above every drug-library hard maximum of ketamine (1 mg/kg/h outpatient, 2 inpatient).
OVER_HARD_MAX_MG_PER_KG_H = 2.5


def _when(hours_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat()


def _assert_forbidden(resp: Any, action: str) -> None:
    """A 403 with exactly the error body of a refusal, naming the action refused."""
    assert resp.status_code == 403, resp.text
    body = resp.json()
    assert set(body) == {"error", "message", "field", "action"}
    assert body["error"] == "forbidden"
    assert body["field"] is None
    assert body["action"] == action
    assert isinstance(body["message"], str) and body["message"]


def _assert_denials_audited(audit_log: AuditLog, username: str, actions: list[str]) -> None:
    """The audit trail holds one ``denied`` entry per refusal of ``username``, by action."""
    entries = audit_log(action="denied", actor_username=username)
    assert sorted(e["entity"] for e in entries) == sorted(actions)
    for entry in entries:
        assert entry["actor"]["username"] == username
        assert entry["detail"].startswith("a ")


def _start(api: TestClient, headers: Headers, infusion: dict[str, Any], role: str) -> None:
    rate = infusion["program"][0]["rate_mg_per_h"]
    resp = api.post(
        f"{API}/infusions/{infusion['id']}/events",
        json={"kind": "start", "rate_mg_per_h": rate, "time_utc": _when(1)},
        headers=headers[role],
    )
    assert resp.status_code == 201, resp.text


def _rate(api: TestClient, headers: Headers, infusion_id: str, role: str, **values: Any) -> Any:
    body = {"kind": "rate_change", "reason": "titrated to response", **values}
    return api.post(f"{API}/infusions/{infusion_id}/events", json=body, headers=headers[role])


# Front desk


def test_front_desk_registers_and_reads_the_schedule(
    api: TestClient, headers: Headers, patient_id: str, course: dict[str, Any]
) -> None:
    """The front desk registers a patient, reads the schedule and only the demographics."""
    desk = headers["front_desk"]
    resp = api.post(f"{API}/patients", json=NEW_PATIENT, headers=desk)
    assert resp.status_code == 201
    assert resp.json()["mrn"] == NEW_PATIENT["mrn"]
    listed = api.get(f"{API}/patients", headers=desk).json()
    assert {p["mrn"] for p in listed} == {"T-0001", NEW_PATIENT["mrn"]}
    booked = api.get(
        f"{API}/schedule", params={"from": "2026-11-09", "to": "2026-11-20"}, headers=desk
    )
    assert booked.status_code == 200
    sessions = booked.json()
    assert [s["number"] for s in sessions] == list(range(1, 8))
    assert {s["course_id"] for s in sessions} == {course["id"]}
    for s in sessions:
        assert set(s) == {
            "patient_id",
            "patient",
            "course_id",
            "protocol",
            "kind",
            "number",
            "date",
            "start",
            "end",
        }
    record = api.get(f"{API}/patients/{patient_id}", headers=desk)
    assert record.status_code == 200
    assert set(record.json()) == DEMOGRAPHICS
    for clinical in ("medications", "labs", "vitals", "measurements", "diagnoses"):
        assert clinical not in record.json()


def test_front_desk_refused_clinical_work(
    api: TestClient,
    headers: Headers,
    usernames: dict[str, str],
    audit_log: AuditLog,
    patient_id: str,
    infusion: dict[str, Any],
) -> None:
    """Vitals, screenings, infusions and alarms are refused to the front desk, and audited."""
    desk = headers["front_desk"]
    base = f"{API}/patients/{patient_id}"
    refused = [
        (api.post(f"{base}/vitals", json=VITALS, headers=desk), "chart"),
        (
            api.post(f"{base}/screenings", json={"protocol": "seed-outpatient"}, headers=desk),
            "screen",
        ),
        (api.get(f"{API}/infusions/{infusion['id']}", headers=desk), "read_clinical"),
        (api.get(f"{API}/alarms", headers=desk), "read_clinical"),
    ]
    for resp, action in refused:
        _assert_forbidden(resp, action)
    _assert_denials_audited(audit_log, usernames["front_desk"], [a for _, a in refused])
    record = api.get(f"{base}", headers=headers["nurse"]).json()
    assert record["vitals"] == []


# Nurse


def test_nurse_charts_vitals_scores_and_medications(
    api: TestClient, headers: Headers, patient_id: str
) -> None:
    """A nurse charts vital signs, scores and medications; they show in the record."""
    nurse = headers["nurse"]
    base = f"{API}/patients/{patient_id}"
    assert api.post(f"{base}/vitals", json=VITALS, headers=nurse).status_code == 201
    score = api.post(f"{base}/scores", json={"instrument": "pain_nrs", "value": 6}, headers=nurse)
    assert score.status_code == 201
    assert score.json()["value"] == 6
    med = api.post(
        f"{base}/medications", json={"name": "gabapentin", "dose_mg_per_day": 900}, headers=nurse
    )
    assert med.status_code == 201
    record = api.get(base, headers=nurse).json()
    assert [v["sbp_mmhg"] for v in record["vitals"]] == [VITALS["sbp_mmhg"]]
    assert [m["name"] for m in record["medications"]] == ["gabapentin"]


def test_nurse_starts_infusion_and_changes_rate_within_plan(
    api: TestClient, headers: Headers, infusion: dict[str, Any]
) -> None:
    """A nurse hangs, starts and titrates up to the plan's maximum rate for the session."""
    top = infusion["plan_max_rate_mg_per_h"]
    # seed-outpatient test phase: titration ceiling 0.3 mg/kg/h of 68 kg.
    assert top == 0.3 * 68
    _start(api, headers, infusion, "nurse")
    resp = _rate(api, headers, infusion["id"], "nurse", rate_mg_per_h=top, time_utc=_when(0.5))
    assert resp.status_code == 201, resp.text
    assert resp.json()["event"]["rate_mg_per_h"] == top
    view = api.get(f"{API}/infusions/{infusion['id']}", headers=headers["nurse"]).json()
    assert view["state"] == "running"
    assert view["rate_mg_per_h"] == top


def test_nurse_refused_rate_above_plan_max(
    api: TestClient,
    headers: Headers,
    usernames: dict[str, str],
    audit_log: AuditLog,
    infusion: dict[str, Any],
) -> None:
    """A rate above the plan's maximum is the physician's: 403 for a nurse, audited."""
    _start(api, headers, infusion, "nurse")
    above = infusion["plan_max_rate_mg_per_h"] + 1.0
    resp = _rate(api, headers, infusion["id"], "nurse", rate_mg_per_h=above)
    _assert_forbidden(resp, "change_rate")
    assert "plan" in resp.json()["message"]
    _assert_denials_audited(audit_log, usernames["nurse"], ["change_rate"])
    view = api.get(f"{API}/infusions/{infusion['id']}", headers=headers["nurse"]).json()
    assert [e["kind"] for e in view["events"]] == ["start"]


def test_nurse_refused_physician_work(
    api: TestClient,
    headers: Headers,
    usernames: dict[str, str],
    audit_log: AuditLog,
    patient_id: str,
    course: dict[str, Any],
    infusion: dict[str, Any],
) -> None:
    """Planning, signing a decision, overriding and reading the audit trail: 403, audited."""
    nurse = headers["nurse"]
    override = [{"code": "pregnancy", "reason": "I think it is fine"}]
    start = {"kind": "start", "rate_mg_per_h": 13.6, "overrides": override}
    decision = {"after_session": 2, "decision": "continue", "reason": "relief"}
    refused = [
        (api.post(f"{API}/patients/{patient_id}/courses", json=COURSE, headers=nurse), "plan"),
        (
            api.post(f"{API}/courses/{course['id']}/decisions", json=decision, headers=nurse),
            "decide",
        ),
        (
            api.post(
                f"{API}/patients/{patient_id}/screenings",
                json={"protocol": "seed-outpatient", "overrides": override},
                headers=nurse,
            ),
            "override",
        ),
        (
            api.post(f"{API}/infusions/{infusion['id']}/events", json=start, headers=nurse),
            "override",
        ),
        (api.get(f"{API}/audit", headers=nurse), "read_audit"),
    ]
    for resp, action in refused:
        _assert_forbidden(resp, action)
    _assert_denials_audited(audit_log, usernames["nurse"], [a for _, a in refused])
    view = api.get(f"{API}/courses/{course['id']}", headers=nurse).json()
    assert view["decisions"] == []


# Physician


def test_physician_does_the_nurses_and_the_physicians_work(
    api: TestClient,
    headers: Headers,
    usernames: dict[str, str],
    audit_log: AuditLog,
    patient_id: str,
    make_ready: Callable[[uuid.UUID, uuid.UUID], None],
) -> None:
    """A physician charts, plans, runs an infusion above the plan maximum, signs, reads audit."""
    doc = headers["physician"]
    base = f"{API}/patients/{patient_id}"
    assert api.post(f"{API}/patients", json=NEW_PATIENT, headers=doc).status_code == 201
    assert api.get(f"{API}/schedule", headers=doc).status_code == 200
    assert api.post(f"{base}/vitals", json=VITALS, headers=doc).status_code == 201
    assert (
        api.post(f"{base}/scores", json={"instrument": "pain_nrs", "value": 7}, headers=doc)
    ).status_code == 201
    assert (
        api.post(
            f"{base}/medications", json={"name": "pregabalin", "dose_mg_per_day": 150}, headers=doc
        )
    ).status_code == 201
    screening = api.post(f"{base}/screenings", json={"protocol": "seed-outpatient"}, headers=doc)
    assert screening.status_code == 201
    assert screening.json()["eligible"] is True
    course = api.post(f"{base}/courses", json=COURSE, headers=doc)
    assert course.status_code == 201
    course_id = course.json()["id"]
    hung = api.post(
        f"{API}/courses/{course_id}/infusions",
        json={"session_number": 1, "bag_mg": 250, "bag_ml": 250, "lot": "LOT-9"},
        headers=doc,
    )
    assert hung.status_code == 201
    infusion = hung.json()
    make_ready(uuid.UUID(infusion["id"]), uuid.UUID(patient_id))
    _start(api, headers, infusion, "physician")
    above = infusion["plan_max_rate_mg_per_h"] + 5.0
    resp = _rate(api, headers, infusion["id"], "physician", rate_mg_per_h=above)
    assert resp.status_code == 201, resp.text
    decision = api.post(
        f"{API}/courses/{course_id}/decisions",
        json={"after_session": 1, "decision": "continue", "reason": "tolerated, 40% relief"},
        headers=doc,
    )
    assert decision.status_code == 201
    assert decision.json()["decision"] == "continue"
    trail = api.get(f"{API}/audit", params={"entity": "decisions"}, headers=doc)
    assert trail.status_code == 200
    # The created row's values (its id among them) are in the entry's "after".
    assert [e["after"]["id"] for e in trail.json()] == [decision.json()["id"]]
    assert [e["actor"]["username"] for e in trail.json()] == [usernames["physician"]]
    assert audit_log(action="denied") == []


def test_physician_hard_stop_above_drug_library_max(
    api: TestClient, headers: Headers, infusion: dict[str, Any]
) -> None:
    """Above the drug library's hard maximum even a physician gets 409 with the findings."""
    _start(api, headers, infusion, "physician")
    resp = _rate(
        api, headers, infusion["id"], "physician", rate_mg_per_kg_h=OVER_HARD_MAX_MG_PER_KG_H
    )
    assert resp.status_code == 409
    body = resp.json()
    assert body["error"] == "hard_stop"
    assert body["field"] == "rate_mg_per_h"
    assert body["findings"]
    for finding in body["findings"]:
        assert set(finding) == {"severity", "code", "reason", "source"}
        assert finding["severity"] == "hard_stop"
        assert finding["reason"] and finding["source"]
    assert "rate_mg_per_kg_h.hard_max" in {f["code"] for f in body["findings"]}
    view = api.get(f"{API}/infusions/{infusion['id']}", headers=headers["physician"]).json()
    assert [e["kind"] for e in view["events"]] == ["start"]


def test_physician_override_lifts_the_hard_stop(
    api: TestClient, headers: Headers, audit_log: AuditLog, infusion: dict[str, Any]
) -> None:
    """With an override (code and reason) of each hard stop, the physician's rate is 201."""
    _start(api, headers, infusion, "physician")
    refused = _rate(
        api, headers, infusion["id"], "physician", rate_mg_per_kg_h=OVER_HARD_MAX_MG_PER_KG_H
    )
    codes = [f["code"] for f in refused.json()["findings"]]
    overrides = [{"code": c, "reason": "monitored bay, anaesthetist present"} for c in codes]
    resp = _rate(
        api,
        headers,
        infusion["id"],
        "physician",
        rate_mg_per_kg_h=OVER_HARD_MAX_MG_PER_KG_H,
        overrides=overrides,
    )
    assert resp.status_code == 201, resp.text
    event = resp.json()["event"]
    assert event["rate_mg_per_h"] == OVER_HARD_MAX_MG_PER_KG_H * 68
    kept = audit_log(entity="overrides")
    assert sorted(e["after"]["code"] for e in kept) == sorted(codes)
    assert {e["after"]["context"] for e in kept} == {"infusion"}


# Admin


def test_admin_manages_users_and_reads_audit(
    api: TestClient, headers: Headers, usernames: dict[str, str]
) -> None:
    """The admin lists and adds users and reads the audit trail."""
    admin = headers["admin"]
    listed = api.get(f"{API}/users", headers=admin)
    assert listed.status_code == 200
    assert {u["username"] for u in listed.json()} == set(usernames.values())
    new = {
        "username": "nurse2",
        "full_name": "Second Nurse",
        "role": "nurse",
        "password": "long-password-2",
    }
    added = api.post(f"{API}/users", json=new, headers=admin)
    assert added.status_code == 201
    assert added.json()["role"] == "nurse"
    assert "password" not in added.json() and "password_hash" not in added.json()
    trail = api.get(f"{API}/audit", params={"entity": "users"}, headers=admin)
    assert trail.status_code == 200
    created = [e for e in trail.json() if e["after"] and e["after"]["id"] == added.json()["id"]]
    assert [e["action"] for e in created] == ["create"]
    assert created[0]["actor"]["username"] == usernames["admin"]
    assert created[0]["after"]["password_hash"] == "[redacted]"
    login = api.post(
        f"{API}/auth/token", json={"username": "nurse2", "password": "long-password-2"}
    )
    assert login.status_code == 200


def test_admin_refused_patients_and_clinical_work(
    api: TestClient,
    headers: Headers,
    usernames: dict[str, str],
    audit_log: AuditLog,
    patient_id: str,
    course: dict[str, Any],
) -> None:
    """The admin reads no patient, chart, course or alarm: 403 each, audited."""
    admin = headers["admin"]
    base = f"{API}/patients/{patient_id}"
    refused = [
        (api.get(f"{API}/patients", headers=admin), "read_schedule"),
        (api.get(base, headers=admin), "read_schedule"),
        (api.post(f"{API}/patients", json=NEW_PATIENT, headers=admin), "register_patient"),
        (api.post(f"{base}/vitals", json=VITALS, headers=admin), "chart"),
        (api.get(f"{API}/courses/{course['id']}", headers=admin), "read_clinical"),
        (api.get(f"{API}/alarms", headers=admin), "read_clinical"),
    ]
    for resp, action in refused:
        _assert_forbidden(resp, action)
    _assert_denials_audited(audit_log, usernames["admin"], [a for _, a in refused])
