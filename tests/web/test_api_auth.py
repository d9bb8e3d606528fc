"""Logging in and out of the API: tokens, web sessions, lock-out; docs and health."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from ketapain.clinic.db import Database
from ketapain.config import Settings
from ketapain.web.app import create_app

API = "/api/v1"
PASSWORD = "test-password-1"  # the template users' password (tests/conftest.py)


def _token(api: TestClient, username: str, password: str) -> Any:
    return api.post(f"{API}/auth/token", json={"username": username, "password": password})


def _assert_401(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 401
    body: dict[str, Any] = resp.json()
    assert body["error"] == "not_authenticated"
    assert body["message"]
    assert body["field"] is None
    assert resp.headers["www-authenticate"] == "Bearer"
    return body


def test_token_with_the_right_password(api: TestClient, usernames: dict[str, str]) -> None:
    """The right password gives a bearer token that authenticates the user."""
    resp = _token(api, usernames["nurse"], PASSWORD)
    assert resp.status_code == 200
    body = resp.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in_h"] == Settings().token_ttl_h
    assert body["user"]["username"] == usernames["nurse"]
    assert body["user"]["role"] == "nurse"
    assert "password_hash" not in body["user"]
    me = api.get(
        f"{API}/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    ).json()
    assert me["username"] == usernames["nurse"] and me["role"] == "nurse"


def test_token_refused(api: TestClient, usernames: dict[str, str]) -> None:
    """A wrong password and an unknown user get the same 401 JSON answer, and no token."""
    for name, password in ((usernames["nurse"], "wrong-password-1"), ("nobody", PASSWORD)):
        body = _assert_401(_token(api, name, password))
        assert body["message"].startswith("wrong username or password, or the account is locked")
        assert "access_token" not in body


def test_lockout_after_five_failures(
    api: TestClient, usernames: dict[str, str], headers: dict[str, Any], audit_log: Any
) -> None:
    """The fifth wrong password locks the account; then even the right one gets the same
    401 (one message for every refusal, so that it does not tell which usernames exist)."""
    name = usernames["physician"]
    messages = [
        _assert_401(_token(api, name, "wrong-password-1"))["message"]
        for _ in range(Settings().lockout_attempts)
    ]
    messages.append(_assert_401(_token(api, name, PASSWORD))["message"])
    assert len(set(messages)) == 1
    assert "locked" in messages[0]
    failed = audit_log(action="login_failed")
    assert len(failed) == Settings().lockout_attempts + 1
    users = {u["username"]: u for u in api.get(f"{API}/users", headers=headers["admin"]).json()}
    assert users[name]["locked_until_utc"] is not None
    assert users[usernames["nurse"]]["locked_until_utc"] is None


def test_session_cookie_alone_authenticates(api: TestClient, usernames: dict[str, str]) -> None:
    """``/auth/login`` sets an HttpOnly SameSite=Strict session cookie that alone logs in."""
    resp = api.post(
        f"{API}/auth/login", json={"username": usernames["front_desk"], "password": PASSWORD}
    )
    assert resp.status_code == 200
    assert resp.json()["user"]["role"] == "front_desk"
    assert resp.json()["idle_timeout_min"] == Settings().session_idle_min
    cookie = resp.headers["set-cookie"]
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert cookie.startswith("ketapain_session=")
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/" in attributes
    secret = resp.cookies["ketapain_session"]
    assert secret
    fresh = TestClient(api.app)
    with fresh:
        me = fresh.get(f"{API}/auth/me", headers={"Cookie": f"ketapain_session={secret}"})
        assert me.status_code == 200
        assert me.json()["username"] == usernames["front_desk"]
        _assert_401(fresh.get(f"{API}/auth/me"))


def test_logout_revokes_the_session(api: TestClient, usernames: dict[str, str]) -> None:
    """After ``/auth/logout`` the session id no longer authenticates."""
    resp = api.post(
        f"{API}/auth/login", json={"username": usernames["nurse"], "password": PASSWORD}
    )
    cookie = {"Cookie": f"ketapain_session={resp.cookies['ketapain_session']}"}
    assert api.get(f"{API}/auth/me").status_code == 200
    out = api.post(f"{API}/auth/logout")
    assert out.status_code == 200
    assert out.json() == {"logged_out": True}
    api.cookies.clear()
    _assert_401(api.get(f"{API}/auth/me", headers=cookie))


def test_logout_revokes_the_token(api: TestClient, usernames: dict[str, str]) -> None:
    """After ``/auth/logout`` with a bearer token, the token gets 401."""
    secret = _token(api, usernames["admin"], PASSWORD).json()["access_token"]
    bearer = {"Authorization": f"Bearer {secret}"}
    assert api.get(f"{API}/auth/me", headers=bearer).status_code == 200
    assert api.post(f"{API}/auth/logout", headers=bearer).status_code == 200
    body = _assert_401(api.get(f"{API}/auth/me", headers=bearer))
    assert "revoked" in body["message"]
    _assert_401(api.post(f"{API}/auth/logout", headers=bearer))


def test_missing_or_garbage_credentials(api: TestClient) -> None:
    """No bearer token, another scheme, or a token never issued: 401 JSON everywhere."""
    for authorization in (None, "Bearer not-a-token", "Bearer ", "Basic dXNlcjpwYXNz", "junk"):
        sent = {} if authorization is None else {"Authorization": authorization}
        _assert_401(api.get(f"{API}/auth/me", headers=sent))
        _assert_401(api.get(f"{API}/patients", headers=sent))
    _assert_401(api.get(f"{API}/auth/me", headers={"Cookie": "ketapain_session=forged"}))


def test_docs_and_openapi() -> None:
    """``/docs`` is an HTML page; the OpenAPI document lists every router under /api/v1."""
    # The documents need no database: an empty in-memory one will do.
    db = Database.connect("sqlite://")
    try:
        with TestClient(create_app(Settings(), db=db)) as api:
            _docs_and_openapi(api)
    finally:
        db.dispose()


def _docs_and_openapi(api: TestClient) -> None:
    docs = api.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert f"{API}/openapi.json" in docs.text
    spec = api.get(f"{API}/openapi.json")
    assert spec.status_code == 200
    paths = set(spec.json()["paths"])
    # The JSON API under /api/v1; the FHIR endpoint at /fhir, as FHIR clients expect.
    assert all(p.startswith((f"{API}/", "/fhir")) for p in paths)
    assert "/fhir/Patient/{patient_id}/$everything" in paths
    for expected in (
        "/patients",
        "/patients/{patient_id}",
        "/courses/{course_id}",
        "/infusions/{infusion_id}",
        "/alarms",
        "/audit",
        "/schedule",
        "/auth/token",
        "/users",
        "/health",
    ):
        assert f"{API}{expected}" in paths


def test_health_and_unknown_route(api: TestClient) -> None:
    """``/health`` answers ok without logging in; an unknown path answers JSON 404."""
    resp = api.get(f"{API}/health")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"
    resp = api.get(f"{API}/no-such-thing")
    assert resp.status_code == 404
    assert resp.json()["error"] == "not_found"
