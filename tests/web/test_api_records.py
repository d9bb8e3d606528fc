"""The clinical records through the API: a whole clinic day, corrections, errors, atomic
requests and the audit trail of every write."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ketapain.clinic.audit import AuditEntry
from ketapain.clinic.db import Base, Database
from ketapain.config import Settings
from ketapain.web.app import create_app

API = "/api/v1"
PASSWORD = "test-password-1"  # the template users' password (tests/conftest.py)
Headers = dict[str, dict[str, str]]
COURSE = {"protocol": "seed-outpatient", "start_date": "2026-11-09", "bag_mg": 250, "bag_ml": 250}
BAG = {"bag_mg": 250, "bag_ml": 250, "lot": "LOT-2611"}
ALDRETE = {"activity": 2, "respiration": 2, "circulation": 2, "consciousness": 2, "spo2": 2}
PADSS = {"vital_signs": 2, "activity": 2, "nausea_vomiting": 2, "pain": 1, "bleeding": 2}
# Audit actions that a refused request writes on purpose, in a transaction of its own.
REFUSAL_ACTIONS = ("denied", "login_failed")


def _ok(resp: Any, status: int = 201) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


def _delivered_mg(events: list[dict[str, Any]]) -> float:
    """The integral of the charted rates over the time the pump ran (start to stop)."""
    mg, rate, running, last = 0.0, 0.0, False, None
    for ev in events:
        t = datetime.fromisoformat(ev["time_utc"])
        if running and last is not None:
            mg += rate * (t - last).total_seconds() / 3600.0
        if ev["rate_mg_per_h"] is not None:
            rate = ev["rate_mg_per_h"]
        if ev["kind"] in ("start", "resume"):
            running = True
        elif ev["kind"] in ("pause", "stop"):
            running = False
        last = t
    return mg


def _register(api: TestClient, headers: Headers, mrn: str, sex: str = "female") -> str:
    body = {
        "mrn": mrn,
        "family_name": "Nguyen",
        "given_name": "Lan",
        "birth_date": "1983-04-20",
        "sex": sex,
    }
    return str(_ok(api.post(f"{API}/patients", json=body, headers=headers["front_desk"]))["id"])


def clinic_day(api: TestClient, headers: Headers) -> dict[str, Any]:
    """Register, chart, screen, plan, infuse, observe, discharge, decide, prescribe.

    Every step goes through the API as the role that does it in the clinic; returns the ids.
    """
    desk, nurse, doc = headers["front_desk"], headers["nurse"], headers["physician"]
    # A web login of the nurse, so that a session token is written too.
    login = {"username": "nurse", "password": PASSWORD}  # the template's nurse
    assert api.post(f"{API}/auth/login", json=login).status_code == 200
    api.cookies.clear()

    pid = _register(api, headers, "DAY-0001")
    base = f"{API}/patients/{pid}"
    ids: dict[str, Any] = {"patient": pid}
    ids["measurement"] = _ok(
        api.post(f"{base}/measurements", json={"weight_kg": 68, "height_cm": 165}, headers=nurse)
    )["id"]
    ids["diagnosis"] = _ok(api.post(f"{base}/diagnoses", json={"code": "G90.511"}, headers=doc))[
        "id"
    ]
    _ok(api.post(f"{base}/history", json={"code": "hypertension"}, headers=doc))
    _ok(
        api.post(
            f"{base}/allergies", json={"substance": "latex", "severity": "mild"}, headers=nurse
        )
    )
    ids["medication"] = _ok(
        api.post(
            f"{base}/medications", json={"name": "oxycodone", "dose_mg_per_day": 30}, headers=nurse
        )
    )["id"]
    for lab in (
        {"test": "alt", "value": 24, "ref_low": 7, "ref_high": 56},
        {"test": "ast", "value": 21, "ref_low": 10, "ref_high": 40},
        {"test": "pregnancy_test", "positive": False},
    ):
        _ok(api.post(f"{base}/labs", json=lab, headers=nurse))
    baseline = {"sbp_mmhg": 128, "dbp_mmhg": 80, "hr_per_min": 74, "rr_per_min": 14, "spo2_pct": 98}
    _ok(api.post(f"{base}/vitals", json=baseline, headers=nurse))

    record = _ok(api.get(base, headers=nurse), 200)
    assert [m["mme_per_day"] for m in record["medications"]] == [45.0]
    assert record["mme_per_day_total"] == 45.0
    assert [lab["test"] for lab in record["labs"]] == ["alt", "ast", "pregnancy_test"]
    assert [d["key"] for d in record["diagnoses"]] == ["crps_1"]

    screening = _ok(
        api.post(f"{base}/screenings", json={"protocol": "seed-outpatient"}, headers=nurse)
    )
    assert screening["eligible"] is True
    assert all(f["severity"] != "hard_stop" for f in screening["findings"])
    latest = _ok(api.get(f"{base}/screenings/latest", headers=doc), 200)
    assert latest["id"] == screening["id"]

    course = _ok(api.post(f"{base}/courses", json=COURSE, headers=doc))
    ids["course"] = course["id"]
    assert course["status"] == "planned"
    assert course["start_date"] == COURSE["start_date"]
    assert [s["date"] for s in course["plan"]["sessions"]][:2] == ["2026-11-09", "2026-11-10"]

    hung = _ok(
        api.post(
            f"{API}/courses/{course['id']}/infusions",
            json={"session_number": 1, **BAG},
            headers=nurse,
        )
    )
    inf = ids["infusion"] = hung["id"]
    program_rate = hung["program"][0]["rate_mg_per_h"]
    assert program_rate == pytest.approx(0.2 * 68)
    assert _ok(api.get(f"{API}/courses/{course['id']}", headers=doc), 200)["status"] == (
        "in_progress"
    )

    t0 = (datetime.now(UTC) - timedelta(hours=6)).replace(microsecond=0)

    def at(hours: float) -> str:
        return (t0 + timedelta(hours=hours)).isoformat()

    # The pump does not start before the checklist is complete.
    early = {"kind": "start", "rate_mg_per_h": program_rate, "time_utc": at(0)}
    refused = api.post(f"{API}/infusions/{inf}/events", json=early, headers=nurse)
    assert refused.status_code == 409 and refused.json()["field"] == "checklist"
    confirmations = {
        "consent_confirmed": True,
        "escort_confirmed": True,
        "escort_name": "J. Doe",
        "fasting_confirmed": True,
        "medications_reviewed": True,
        "premedication_given": ["midazolam", "ondansetron"],
    }
    check = _ok(api.post(f"{API}/infusions/{inf}/checklist", json=confirmations, headers=nurse))
    assert check["complete"] is False
    assert len(check["missing"]) == 2  # baseline vitals and NRS
    before = {"infusion_id": inf, "measured_utc": at(-0.1)}
    _ok(
        api.post(
            f"{base}/vitals", json={**before, "sbp_mmhg": 122, "hr_per_min": 70}, headers=nurse
        )
    )
    _ok(
        api.post(
            f"{base}/scores", json={**before, "instrument": "pain_nrs", "value": 7}, headers=nurse
        )
    )
    ready = _ok(api.get(f"{API}/infusions/{inf}/checklist", headers=nurse), 200)
    assert ready["complete"] is True and ready["missing"] == []

    for event in (
        {"kind": "start", "rate_mg_per_h": program_rate, "time_utc": at(0)},
        {"kind": "rate_change", "rate_mg_per_h": 18.0, "reason": "tolerated", "time_utc": at(1)},
        {"kind": "pause", "reason": "nausea", "time_utc": at(1.5)},
        {"kind": "resume", "time_utc": at(1.75)},
        {"kind": "stop", "reason": "session complete", "time_utc": at(2.25)},
    ):
        _ok(api.post(f"{API}/infusions/{inf}/events", json=event, headers=nurse))

    during = {"infusion_id": inf, "measured_utc": at(0.5), "sbp_mmhg": 134, "spo2_pct": 91}
    alarmed = _ok(api.post(f"{base}/vitals", json=during, headers=nurse))
    assert [a["signal"] for a in alarmed["alarms"]] == ["spo2_pct"]
    alarm_id = alarmed["alarms"][0]["id"]
    assert [a["id"] for a in _ok(api.get(f"{API}/alarms", headers=nurse), 200)] == [alarm_id]
    _ok(
        api.post(
            f"{API}/alarms/{alarm_id}/acknowledgements",
            json={"note": "chin lift, 2 L O2"},
            headers=nurse,
        )
    )
    assert _ok(api.get(f"{API}/alarms", headers=nurse), 200) == []
    _ok(
        api.post(
            f"{base}/side-effects",
            json={"effect": "nausea", "severity": "mild", "infusion_id": inf},
            headers=nurse,
        )
    )
    _ok(
        api.post(
            f"{base}/rescue-medications",
            json={"drug": "ondansetron", "dose_mg": 4, "reason": "nausea", "infusion_id": inf},
            headers=nurse,
        )
    )
    for instrument, items in (("aldrete", ALDRETE), ("padss", PADSS)):
        score = _ok(
            api.post(
                f"{base}/scores",
                json={"instrument": instrument, "items": items, "infusion_id": inf},
                headers=nurse,
            )
        )
        assert score["value"] == sum(items.values())
        assert score["passes"] is True
    _ok(
        api.post(
            f"{base}/scores",
            json={"instrument": "pain_nrs", "value": 3, "infusion_id": inf},
            headers=nurse,
        )
    )
    discharge = _ok(
        api.post(
            f"{API}/infusions/{inf}/discharge-checks",
            json={"escort_confirmed": True, "escort_name": "Minh Nguyen"},
            headers=nurse,
        )
    )
    assert discharge["ready"] is True, discharge["reasons"]
    assert discharge["reasons"] == []

    view = _ok(api.get(f"{API}/infusions/{inf}", headers=nurse), 200)
    assert view["state"] == "stopped"
    assert [e["kind"] for e in view["events"]] == [
        "start",
        "rate_change",
        "pause",
        "resume",
        "stop",
    ]
    assert view["delivered_mg"] == pytest.approx(_delivered_mg(view["events"]))
    assert view["delivered_mg"] == pytest.approx(program_rate * 1 + 18.0 * 0.5 + 18.0 * 0.5)
    assert view["bag_remaining_mg"] == pytest.approx(250 - view["delivered_mg"])
    assert view["running_h"] == pytest.approx(2.0)
    assert {s["instrument"] for s in view["scores"]} == {"aldrete", "padss", "pain_nrs"}
    assert [v["spo2_pct"] for v in view["vitals"]] == [None, 91.0]  # baseline, then 91

    cid = course["id"]
    decision = {"after_session": 1, "decision": "continue", "reason": "tolerated, pain 7 to 3"}
    ids["decision"] = _ok(api.post(f"{API}/courses/{cid}/decisions", json=decision, headers=doc))[
        "id"
    ]
    booster = {"scheduled_date": "2026-12-14", "reason": "relapse expected"}
    _ok(api.post(f"{API}/courses/{cid}/boosters", json=booster, headers=doc))
    oral = {
        "dose_mg": 34,
        "doses_per_day": 3,
        "start_date": "2026-11-18",
        "end_date": "2026-12-01",
        "instructions": "0.5 mg/kg three times daily",
    }
    prescribed = _ok(api.post(f"{API}/courses/{cid}/oral-prescriptions", json=oral, headers=doc))
    assert prescribed["daily_mg"] == 102
    shown = _ok(api.get(f"{API}/courses/{cid}", headers=doc), 200)
    assert shown["status"] == "in_progress"
    assert [d["decision"] for d in shown["decisions"]] == ["continue"]
    assert [b["scheduled_date"] for b in shown["boosters"]] == ["2026-12-14"]
    assert [o["daily_mg"] for o in shown["oral_prescriptions"]] == [102]

    # A second course of the same patient, stopped after its first infusion.
    other = _ok(
        api.post(f"{base}/courses", json={**COURSE, "start_date": "2026-11-16"}, headers=doc)
    )
    ids["stopped_course"] = other["id"]
    _ok(
        api.post(
            f"{API}/courses/{other['id']}/infusions",
            json={"session_number": 1, **BAG},
            headers=nurse,
        )
    )
    assert _ok(api.get(f"{API}/courses/{other['id']}", headers=doc), 200)["status"] == (
        "in_progress"
    )
    stop = {"after_session": 1, "decision": "stop", "reason": "no relief"}
    _ok(api.post(f"{API}/courses/{other['id']}/decisions", json=stop, headers=doc))
    stopped = _ok(api.get(f"{API}/courses/{other['id']}", headers=doc), 200)
    assert stopped["status"] == "stopped_early"
    assert [s["status"] for s in stopped["status_history"]] == [
        "planned",
        "in_progress",
        "stopped_early",
    ]
    assert _ok(api.get(f"{API}/courses/{cid}", headers=doc), 200)["status"] == "in_progress"
    booked = _ok(
        api.get(f"{API}/schedule", params={"from": "2026-11-01", "to": "2026-12-31"}, headers=desk),
        200,
    )
    assert {b["course_id"] for b in booked} == {cid}
    assert [b["date"] for b in booked if b["kind"] == "booster"] == ["2026-12-14"]
    return ids


def _counts(db: Database) -> dict[str, int]:
    """Rows in every table; audit entries less those a refusal writes on purpose."""
    with db.session() as session:
        counts = {
            t.name: int(session.scalar(select(func.count()).select_from(t)) or 0)
            for t in Base.metadata.sorted_tables
        }
        counts["audit_entries"] = int(
            session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action.not_in(REFUSAL_ACTIONS))
            )
            or 0
        )
    return counts


def _rows(db: Database) -> dict[str, list[str]]:
    """The primary key, as the audit trail writes it, of every row of every table but the
    audit trail and its chain's head."""
    out: dict[str, list[str]] = {}
    with db.session() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in ("audit_entries", "audit_chain_head"):
                continue
            keys = list(table.primary_key.columns)
            out[table.name] = [
                ",".join(str(v) for v in row) for row in session.execute(select(*keys)).all()
            ]
    return out


def _audit(db: Database) -> list[AuditEntry]:
    with db.session() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_a_clinic_day(api: TestClient, headers: Headers) -> None:
    """A whole clinic day through the API, each step by its role, reads back as written."""
    ids = clinic_day(api, headers)
    record = _ok(api.get(f"{API}/patients/{ids['patient']}", headers=headers["physician"]), 200)
    assert [m["weight_kg"] for m in record["measurements"]] == [68.0]
    assert [a["substance"] for a in record["allergies"]] == ["latex"]
    assert [h["key"] for h in record["history"]] == ["hypertension"]
    # The baseline vitals only: those charted during the infusion belong to the infusion.
    assert [v["sbp_mmhg"] for v in record["vitals"]] == [128.0]


def test_correction_and_retraction(api: TestClient, headers: Headers, patient_id: str) -> None:
    """A correction replaces the measurement; a retraction removes the medication."""
    nurse = headers["nurse"]
    base = f"{API}/patients/{patient_id}"
    (old,) = _ok(api.get(base, headers=nurse), 200)["measurements"]
    fixed = _ok(
        api.post(
            f"{API}/records/measurements/{old['id']}/corrections",
            json={"reason": "scale not zeroed", "changes": {"weight_kg": 70}},
            headers=nurse,
        )
    )
    assert fixed["corrects_id"] == old["id"]
    assert fixed["entered_in_error"] is False
    (now,) = _ok(api.get(base, headers=nurse), 200)["measurements"]
    assert now["id"] == fixed["id"]
    assert now["weight_kg"] == 70.0
    assert now["height_cm"] == old["height_cm"]
    assert now["measured_utc"] == old["measured_utc"]

    med = _ok(
        api.post(
            f"{base}/medications", json={"name": "morphine", "dose_mg_per_day": 60}, headers=nurse
        )
    )
    assert _ok(api.get(base, headers=nurse), 200)["mme_per_day_total"] == 60.0
    retracted = _ok(
        api.post(
            f"{API}/records/medications/{med['id']}/corrections",
            json={"reason": "charted on the wrong patient", "entered_in_error": True},
            headers=nurse,
        )
    )
    assert retracted["entered_in_error"] is True
    record = _ok(api.get(base, headers=nurse), 200)
    assert record["medications"] == []
    assert record["mme_per_day_total"] == 0


def test_correction_errors(api: TestClient, headers: Headers, patient_id: str) -> None:
    """A second correction of one entry is a conflict; unknown kinds and fields are 422."""
    nurse = headers["nurse"]
    (old,) = _ok(api.get(f"{API}/patients/{patient_id}", headers=nurse), 200)["measurements"]
    url = f"{API}/records/measurements/{old['id']}/corrections"
    _ok(api.post(url, json={"reason": "typo", "changes": {"weight_kg": 69}}, headers=nurse))
    again = api.post(
        url, json={"reason": "typo again", "changes": {"weight_kg": 70}}, headers=nurse
    )
    assert again.status_code == 409
    assert again.json()["error"] == "conflict"
    assert again.json()["field"] == "corrects_id"

    unknown_kind = api.post(
        f"{API}/records/weights/{old['id']}/corrections", json={"reason": "x"}, headers=nurse
    )
    assert unknown_kind.status_code == 422
    assert unknown_kind.json()["error"] == "invalid_value"
    assert unknown_kind.json()["field"] == "kind"
    assert "measurements" in unknown_kind.json()["allowed"]

    (current,) = _ok(api.get(f"{API}/patients/{patient_id}", headers=nurse), 200)["measurements"]
    bad_field = api.post(
        f"{API}/records/measurements/{current['id']}/corrections",
        json={"reason": "x", "changes": {"mass_kg": 70}},
        headers=nurse,
    )
    assert bad_field.status_code == 422
    assert bad_field.json()["field"] == "mass_kg"
    missing = api.post(
        f"{API}/records/measurements/{uuid.uuid4()}/corrections",
        json={"reason": "x", "changes": {"weight_kg": 70}},
        headers=nurse,
    )
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    no_reason = api.post(url, json={"reason": "", "changes": {"weight_kg": 70}}, headers=nurse)
    assert no_reason.status_code == 422
    assert no_reason.json()["field"] == "reason"


def test_request_errors(
    api: TestClient, headers: Headers, patient_id: str, infusion: dict[str, Any]
) -> None:
    """Bad requests answer the JSON error shape naming the field at fault."""
    nurse, doc = headers["nurse"], headers["physician"]
    base = f"{API}/patients/{patient_id}"

    extra = api.post(f"{base}/measurements", json={"weight_kg": 70, "wieght_kg": 70}, headers=nurse)
    assert extra.status_code == 422
    assert extra.json()["error"] == "invalid_value"
    assert extra.json()["field"] == "wieght_kg"
    assert [e["field"] for e in extra.json()["errors"]] == ["wieght_kg"]

    heavy = api.post(f"{base}/measurements", json={"weight_kg": 4000}, headers=nurse)
    assert heavy.status_code == 422
    assert heavy.json()["error"] == "invalid_value"
    assert heavy.json()["field"] == "weight_kg"
    assert "400" in heavy.json()["allowed"]

    naive = {"kind": "start", "rate_mg_per_h": 13.6, "time_utc": "2026-11-09T09:00:00"}
    resp = api.post(f"{API}/infusions/{infusion['id']}/events", json=naive, headers=nurse)
    assert resp.status_code == 422
    assert resp.json()["field"] == "time_utc"
    resp = api.post(
        f"{base}/measurements",
        json={"weight_kg": 70, "measured_utc": "2026-11-09T09:00:00"},
        headers=nurse,
    )
    assert resp.status_code == 422
    assert resp.json()["field"] == "measured_utc"

    missing = api.get(f"{API}/patients/{uuid.uuid4()}", headers=nurse)
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    assert api.get(f"{API}/courses/{uuid.uuid4()}", headers=nurse).status_code == 404
    assert api.get(f"{API}/infusions/{uuid.uuid4()}", headers=nurse).status_code == 404
    assert api.get(f"{API}/patients/not-a-uuid", headers=nurse).json()["field"] == (
        "path.patient_id"
    )

    unknown = api.post(f"{base}/courses", json={**COURSE, "protocol": "no-such-plan"}, headers=doc)
    assert unknown.status_code == 422
    assert unknown.json()["error"] == "unknown_name"
    assert "seed-outpatient" in unknown.json()["message"]

    not_started = api.post(
        f"{API}/infusions/{infusion['id']}/events", json={"kind": "resume"}, headers=nurse
    )
    assert not_started.status_code == 409
    assert not_started.json()["field"] == "kind"
    record = _ok(api.get(base, headers=nurse), 200)
    assert [m["weight_kg"] for m in record["measurements"]] == [68.0]


def test_failed_requests_leave_no_partial_write(
    db: Database,
    api: TestClient,
    headers: Headers,
    patient_id: str,
    course: dict[str, Any],
) -> None:
    """A request refused half-way leaves every table as it was, but for refusals' audit."""
    nurse, doc, desk = headers["nurse"], headers["physician"], headers["front_desk"]
    pregnant = _register(api, headers, "PREG-0001")
    for path, body in (
        ("measurements", {"weight_kg": 60}),
        ("diagnoses", {"code": "G90.511"}),
        ("labs", {"test": "pregnancy_test", "positive": True}),
    ):
        _ok(api.post(f"{API}/patients/{pregnant}/{path}", json=body, headers=nurse))
    patient = {
        "mrn": "T-0001",
        "family_name": "Doe",
        "given_name": "Jane",
        "birth_date": "1980-05-01",
        "sex": "female",
    }
    cid = course["id"]
    attempts: list[tuple[Callable[[], Any], int, str]] = [
        (
            lambda: api.post(f"{API}/patients/{pregnant}/courses", json=COURSE, headers=doc),
            409,
            "hard_stop",
        ),
        (lambda: api.post(f"{API}/patients", json=patient, headers=desk), 409, "conflict"),
        # The patient row is flushed before the demographics are found wrong.
        (
            lambda: api.post(
                f"{API}/patients", json={**patient, "mrn": "T-0002", "sex": "x"}, headers=desk
            ),
            422,
            "invalid_value",
        ),
        # The course's move to in progress is written with the bag, which is wrong.
        (
            lambda: api.post(
                f"{API}/courses/{cid}/infusions",
                json={"session_number": 1, "bag_mg": 0, "bag_ml": 250, "lot": "L"},
                headers=nurse,
            ),
            422,
            "invalid_value",
        ),
        (
            lambda: api.post(f"{API}/patients/{patient_id}/courses", json=COURSE, headers=nurse),
            403,
            "forbidden",
        ),
        (
            lambda: api.post(
                f"{API}/patients/{patient_id}/vitals",
                json={"sbp_mmhg": 80, "dbp_mmhg": 90},
                headers=nurse,
            ),
            422,
            "invalid_value",
        ),
        (
            lambda: api.post(
                f"{API}/courses/{cid}/decisions",
                json={"after_session": 1, "decision": "maybe", "reason": "x"},
                headers=doc,
            ),
            422,
            "invalid_value",
        ),
    ]
    for send, status, error in attempts:
        before = _counts(db)
        resp = send()
        assert resp.status_code == status, resp.text
        assert resp.json()["error"] == error
        assert _counts(db) == before, resp.text
    assert _ok(api.get(f"{API}/courses/{cid}", headers=doc), 200)["status"] == "planned"
    listed = _ok(api.get(f"{API}/patients", headers=desk), 200)
    assert sorted(p["mrn"] for p in listed) == ["PREG-0001", "T-0001"]


def test_every_row_has_its_audit_entry(db: Database, api: TestClient, headers: Headers) -> None:
    """After a clinic day every row of every table has the audit entry that created it."""
    clinic_day(api, headers)
    created: set[tuple[str, str]] = set()
    for entry in _audit(db):
        if entry.action in ("create", "correct") and entry.after is not None:
            created.add((entry.entity, str(entry.after["id"])))
    rows = _rows(db)
    assert rows["auth_tokens"] and rows["alarm_acknowledgements"] and rows["discharge_checks"]
    for table, keys in rows.items():
        for key in keys:
            assert (table, key) in created, f"{table} row {key} has no audit entry"


def test_every_row_has_an_audit_entry_with_its_entity_id(
    db: Database, api: TestClient, headers: Headers
) -> None:
    """After a clinic day every row has an audit entry with its table and its id."""
    clinic_day(api, headers)
    audited = {(e.entity, e.entity_id) for e in _audit(db)}
    missing = [
        (table, key)
        for table, keys in _rows(db).items()
        for key in keys
        if (table, key) not in audited
    ]
    assert missing == []


def test_charting_for_an_unknown_patient_is_404(db: Database, headers: Headers) -> None:
    """Charting a measurement for a patient id that does not exist answers 404 not_found."""
    with TestClient(create_app(Settings(), db=db), raise_server_exceptions=False) as api:
        resp = api.post(
            f"{API}/patients/{uuid.uuid4()}/measurements",
            json={"weight_kg": 70},
            headers=headers["nurse"],
        )
        assert resp.status_code == 404
        assert resp.json()["error"] == "not_found"


def test_score_without_a_value_is_422(db: Database, headers: Headers, patient_id: str) -> None:
    """A pain score charted without its value answers 422 naming the value."""
    with TestClient(create_app(Settings(), db=db), raise_server_exceptions=False) as api:
        resp = api.post(
            f"{API}/patients/{patient_id}/scores",
            json={"instrument": "pain_nrs"},
            headers=headers["nurse"],
        )
        assert resp.status_code == 422
        assert resp.json()["error"] == "invalid_value"
        assert "value" in resp.json()["field"]


def test_score_on_another_patients_infusion_is_refused(
    api: TestClient, headers: Headers, infusion: dict[str, Any]
) -> None:
    """A score charted for one patient against another patient's infusion answers 422."""
    other = _register(api, headers, "OTHER-0001")
    nurse = headers["nurse"]
    vitals = api.post(
        f"{API}/patients/{other}/vitals",
        json={"infusion_id": infusion["id"], "sbp_mmhg": 120},
        headers=nurse,
    )
    assert vitals.status_code == 422
    assert vitals.json()["field"] == "infusion_id"
    score = api.post(
        f"{API}/patients/{other}/scores",
        json={"infusion_id": infusion["id"], "instrument": "aldrete", "items": ALDRETE},
        headers=nurse,
    )
    assert score.status_code == 422
    assert score.json()["field"] == "infusion_id"
