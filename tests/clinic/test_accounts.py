"""Accounts: user creation, passwords, lock-out and tokens, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from ketapain.clinic.accounts import (
    AuthToken,
    TokenKind,
    User,
    authenticate,
    create_user,
    issue_token,
    resolve_token,
    revoke_token,
)
from ketapain.clinic.audit import SYSTEM, Actor, AuditEntry, list_entries, unit_of_work
from ketapain.clinic.db import Database, utc_now
from ketapain.config import Settings
from ketapain.errors import (
    AccessDeniedError,
    AuthenticationError,
    ConflictError,
    InvalidValueError,
)

PASSWORD = "test-password-1"  # the staff password of tests/conftest.py


def refused(settings: Settings | None = None) -> str:
    """The one answer to every refused login (unknown user, wrong password, locked)."""
    settings = settings or Settings()
    return (
        f"wrong username or password, or the account is locked ({settings.lockout_attempts} "
        f"failed attempts in a row lock it for {settings.lockout_min} min)"
    )


WRONG = re.escape(refused())
# Time allowed between computing an expected time and the code computing its own.
SLACK = timedelta(seconds=30)


def _users(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(User)) or 0)


def _user(db: Database, username: str) -> User:
    with db.session() as session:
        user = session.scalar(select(User).where(User.username == username))
        assert user is not None
        return user


def _token(db: Database, secret: str) -> AuthToken:
    with db.session() as session:
        digest = hashlib.sha256(secret.encode()).hexdigest()
        token = session.scalar(select(AuthToken).where(AuthToken.token_sha256 == digest))
        assert token is not None
        return token


def _set_user(db: Database, admin: Actor, username: str, **values: object) -> None:
    """Change a user's columns as the admin (users are not append-only)."""
    with unit_of_work(db, admin) as session:
        user = session.scalar(select(User).where(User.username == username))
        assert user is not None
        for key, value in values.items():
            setattr(user, key, value)


# --- create_user ----------------------------------------------------------------------


def test_create_user_stores_argon2id_hash(db: Database, staff: dict[str, Actor]) -> None:
    """An admin creates a user; the password is kept only as an Argon2id hash."""
    secret = "a-long-Secret-42"
    user = create_user(
        db, staff["admin"], username=" new.nurse ", full_name=" New Nurse ", role="nurse",
        password=secret,
    )  # fmt: skip
    stored = _user(db, "new.nurse")
    assert stored.id == user.id
    assert stored.full_name == "New Nurse"
    assert str(stored.role) == "nurse"
    assert stored.active
    assert stored.failed_logins == 0
    assert stored.password_hash.startswith("$argon2id$")
    assert secret not in stored.password_hash
    with db.session() as session:
        entries = list_entries(session, entity="users", action="create", limit=1000)
    entry = next(e for e in entries if e.after is not None and e.after["id"] == str(user.id))
    assert entry.actor_username == "admin"
    assert entry.actor_role == "admin"
    assert entry.after["password_hash"] == "[redacted]"
    everything = json.dumps([e.as_dict() for e in entries])
    assert secret not in everything
    assert stored.password_hash not in everything


BAD_USERNAMES = ("x", "", "   ", "has space", "semi;colon", "quote'd", "slash/name", "a" * 81)


def test_create_user_validates_username_role_and_name(
    db: Database, staff: dict[str, Actor]
) -> None:
    """Bad usernames, unknown roles and blank names are refused, naming the field."""
    before = _users(db)
    with db.session() as session:
        audited = len(list_entries(session, limit=10_000))
    for username in BAD_USERNAMES:
        with pytest.raises(InvalidValueError, match=r"^username must be 2 to 80") as info:
            create_user(
                db, staff["admin"], username=username, full_name="N", role="nurse",
                password=PASSWORD,
            )  # fmt: skip
        assert info.value.field == "username"
    for role in ("", "doctor", "Nurse", "system", "front desk"):
        with pytest.raises(InvalidValueError, match=r"^role must be one of ") as info:
            create_user(
                db, staff["admin"], username="newbie", full_name="N", role=role, password=PASSWORD
            )
        assert info.value.field == "role"
    with pytest.raises(InvalidValueError, match=r"^full_name must be") as info:
        create_user(
            db, staff["admin"], username="newbie", full_name="  ", role="nurse", password=PASSWORD
        )
    assert info.value.field == "full_name"
    assert _users(db) == before
    with db.session() as session:
        assert len(list_entries(session, limit=10_000)) == audited
    # The edges of the rule are accepted.
    for username in ("ab", "j.doe_2-x@clinic.example" + "a" * 56):
        create_user(
            db, staff["admin"], username=username, full_name="N", role="nurse", password=PASSWORD
        )
        assert _user(db, username).username == username
    assert _users(db) == before + 2


def test_create_user_refuses_short_password(db: Database, staff: dict[str, Actor]) -> None:
    """A password under 8 characters is refused, naming the field, never echoing it."""
    short = "Sh0rt!x"
    with pytest.raises(InvalidValueError, match=r"^password must be at least 8 ") as info:
        create_user(
            db, staff["admin"], username="newbie", full_name="N", role="nurse", password=short
        )
    assert info.value.field == "password"
    assert short not in str(info.value)
    assert short not in repr(info.value.value)
    with db.session() as session:
        assert not [
            e for e in list_entries(session, limit=1000) if short in json.dumps(e.as_dict())
        ]
    # Exactly 8 characters is enough.
    create_user(
        db, staff["admin"], username="newbie", full_name="N", role="nurse", password="8chars!!"
    )
    assert _user(db, "newbie").password_hash.startswith("$argon2id$")


def test_create_user_refuses_duplicate(db: Database, staff: dict[str, Actor]) -> None:
    """A second user with an existing username (after trimming) is a conflict."""
    before = _users(db)
    for username in ("doc", " doc "):
        with pytest.raises(ConflictError, match=r"a user named 'doc' exists already") as info:
            create_user(
                db, staff["admin"], username=username, full_name="Dup", role="nurse",
                password=PASSWORD,
            )  # fmt: skip
        assert info.value.field == "username"
    assert _users(db) == before


def test_create_user_needs_admin(db: Database, staff: dict[str, Actor]) -> None:
    """Only an admin or the system creates users; each refusal is audited once as denied."""
    before = _users(db)
    roles = ("physician", "nurse", "front_desk")
    for role in roles:
        words = role.replace("_", " ")
        with pytest.raises(AccessDeniedError, match=f"^a {words} may not manage users$"):
            create_user(
                db, staff[role], username="intruder", full_name="I", role="admin",
                password=PASSWORD,
            )  # fmt: skip
    assert _users(db) == before
    with db.session() as session:
        denied = list_entries(session, action="denied")
    assert [e.actor_username for e in denied] == [staff[r].username for r in roles]
    assert [e.actor_role for e in denied] == list(roles)
    assert {e.entity for e in denied} == {"manage_users"}
    assert denied[0].detail == "a physician may not manage users"
    user = create_user(db, SYSTEM, username="setup", full_name="S", role="admin", password=PASSWORD)
    with db.session() as session:
        entries = list_entries(session, entity="users", actor_username="system", limit=1000)
    assert str(user.id) in {e.after["id"] for e in entries if e.after}


# --- authenticate ---------------------------------------------------------------------


def test_authenticate(db: Database, staff: dict[str, Actor]) -> None:
    """Right password returns the user; unknown user, wrong password get one audited message."""
    user = authenticate(db, Settings(), username=" doc ", password=PASSWORD)
    assert user.id == staff["physician"].user_id
    assert user.username == "doc"
    assert user.actor() == staff["physician"]
    with pytest.raises(AuthenticationError) as unknown:
        authenticate(db, Settings(), username="nobody", password=PASSWORD)
    with pytest.raises(AuthenticationError) as wrong:
        authenticate(db, Settings(), username="doc", password="not-the-password")
    assert str(unknown.value) == refused()
    assert str(wrong.value) == refused()
    with db.session() as session:
        failed = list_entries(session, action="login_failed")
    assert len(failed) == 2
    assert {e.actor_username for e in failed} == {"system"}
    assert {e.entity for e in failed} == {"users"}
    assert "nobody" in (failed[0].detail or "")
    assert failed[1].detail == "wrong password"
    assert PASSWORD not in json.dumps([e.as_dict() for e in failed])


def test_lockout_and_its_end(db: Database, staff: dict[str, Actor]) -> None:
    """lockout_attempts failures in a row lock the account, even against the right password."""
    settings = Settings(lockout_attempts=3, lockout_min=20)
    message = f"^{re.escape(refused(settings))}$"
    for _ in range(2):
        with pytest.raises(AuthenticationError, match=message):
            authenticate(db, settings, username="nurse", password="bad-password")
    assert _user(db, "nurse").failed_logins == 2
    expected = utc_now() + timedelta(minutes=20)
    with pytest.raises(AuthenticationError, match=message):
        authenticate(db, settings, username="nurse", password="bad-password")
    locked = _user(db, "nurse")
    assert locked.locked_until_utc is not None
    assert locked.locked_until_utc.utcoffset() == timedelta(0)
    assert abs(locked.locked_until_utc - expected) < SLACK
    with pytest.raises(AuthenticationError, match=message):
        authenticate(db, settings, username="nurse", password=PASSWORD)
    with pytest.raises(AuthenticationError, match=message):
        authenticate(db, settings, username="nurse", password="bad-password")
    with db.session() as session:
        details = [e.detail or "" for e in list_entries(session, action="login_failed")]
    assert len(details) == 5
    assert details[2] == "wrong password; account locked for 20 min after 3 failed attempts"
    assert all(re.match(r"account locked until \d{4}-\d\d-\d\d ", d) for d in details[3:])
    # Once locked_until_utc has passed, the right password works and clears the lock.
    _set_user(db, staff["admin"], "nurse", locked_until_utc=utc_now() - timedelta(seconds=1))
    assert authenticate(db, settings, username="nurse", password=PASSWORD).username == "nurse"
    after = _user(db, "nurse")
    assert after.locked_until_utc is None
    assert after.failed_logins == 0


def test_success_resets_failed_count(db: Database) -> None:
    """A successful login resets the count, so only failures in a row lock the account."""
    settings = Settings(lockout_attempts=3)
    WRONG = re.escape(refused(settings))
    for _ in range(2):
        with pytest.raises(AuthenticationError, match=f"^{WRONG}$"):
            authenticate(db, settings, username="desk", password="bad-password")
    authenticate(db, settings, username="desk", password=PASSWORD)
    assert _user(db, "desk").failed_logins == 0
    for _ in range(2):
        with pytest.raises(AuthenticationError, match=f"^{WRONG}$"):
            authenticate(db, settings, username="desk", password="bad-password")
    desk = _user(db, "desk")
    assert desk.failed_logins == 2
    assert desk.locked_until_utc is None
    # Another account's failures do not count against this one.
    assert _user(db, "nurse").failed_logins == 0


# --- tokens ---------------------------------------------------------------------------


def test_token_resolves_to_its_user(db: Database, staff_users: dict[str, User]) -> None:
    """An issued token or session id resolves to its user; only its SHA-256 is stored."""
    user = staff_users["nurse"]
    for kind in (TokenKind.API, TokenKind.SESSION):
        secret = issue_token(db, Settings(), user, kind=kind)
        assert len(secret) >= 43  # 32 random bytes, URL-safe base64
        assert resolve_token(db, Settings(), secret).id == user.id
        token = _token(db, secret)
        assert token.token_sha256 == hashlib.sha256(secret.encode()).hexdigest()
        assert token.token_sha256 != secret
        assert token.kind == kind
        assert token.user_id == user.id
        assert token.revoked_utc is None
        with db.session() as session:
            stored = session.scalars(select(AuthToken.token_sha256)).all()
            audit = json.dumps([e.as_dict() for e in session.scalars(select(AuditEntry))])
        assert secret not in stored
        assert secret not in audit
        assert token.token_sha256 not in audit


def test_token_lifetimes(db: Database, staff_users: dict[str, User]) -> None:
    """An API token lives token_ttl_h hours; a session expires session_idle_min after last use."""
    settings = Settings(token_ttl_h=1, session_idle_min=7)
    user = staff_users["physician"]
    api = _token(db, issue_token(db, settings, user, kind=TokenKind.API))
    assert abs(api.expires_utc - (utc_now() + timedelta(hours=1))) < SLACK
    secret = issue_token(db, settings, user, kind=TokenKind.SESSION)
    assert abs(_token(db, secret).expires_utc - (utc_now() + timedelta(minutes=7))) < SLACK
    resolve_token(db, settings, secret)
    refreshed = _token(db, secret)
    assert abs(refreshed.expires_utc - (utc_now() + timedelta(minutes=7))) < SLACK
    assert refreshed.last_used_utc.utcoffset() == timedelta(0)


def test_session_refresh_is_written_at_most_once_a_minute(
    db: Database, staff_users: dict[str, User]
) -> None:
    """Requests within a minute of the last refresh write nothing (a busy chair does not
    write per request); a request a minute or more later moves the idle expiry on."""
    settings = Settings(session_idle_min=7)
    user = staff_users["nurse"]
    secret = issue_token(db, settings, user, kind=TokenKind.SESSION)
    first = _token(db, secret)
    with db.session() as session:
        entries = session.scalar(select(func.count()).select_from(AuditEntry))
    for _ in range(3):
        assert resolve_token(db, settings, secret).id == user.id
    again = _token(db, secret)
    assert (again.expires_utc, again.last_used_utc) == (first.expires_utc, first.last_used_utc)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == entries
    with unit_of_work(db, SYSTEM) as session:  # the last refresh two minutes ago
        row = session.get(AuthToken, first.id)
        assert row is not None
        row.last_used_utc -= timedelta(minutes=2)
        row.expires_utc -= timedelta(minutes=2)
    resolve_token(db, settings, secret)
    moved = _token(db, secret)
    assert abs(moved.expires_utc - (utc_now() + timedelta(minutes=7))) < SLACK
    assert abs(moved.last_used_utc - utc_now()) < SLACK


def test_revoked_token_refused(db: Database, staff_users: dict[str, User]) -> None:
    """After revoke_token (log-out) the secret no longer resolves; other tokens still do."""
    user = staff_users["front_desk"]
    other = issue_token(db, Settings(), user, kind=TokenKind.API)
    for kind in (TokenKind.API, TokenKind.SESSION):
        secret = issue_token(db, Settings(), user, kind=kind)
        revoke_token(db, user, secret)
        assert _token(db, secret).revoked_utc is not None
        with pytest.raises(AuthenticationError, match="unknown, expired or revoked"):
            resolve_token(db, Settings(), secret)
    assert resolve_token(db, Settings(), other).id == user.id


def test_expired_or_unknown_token_refused(db: Database, staff_users: dict[str, User]) -> None:
    """A token past its expiry, a secret never issued, and a stored hash are refused."""
    user = staff_users["nurse"]
    secret = "a-known-secret-for-an-expired-token"
    with unit_of_work(db, user.actor()) as session:
        session.add(
            AuthToken(
                user_id=user.id,
                kind=TokenKind.API,
                token_sha256=hashlib.sha256(secret.encode()).hexdigest(),
                expires_utc=utc_now() - timedelta(seconds=1),
            )
        )
    with pytest.raises(AuthenticationError, match="unknown, expired or revoked"):
        resolve_token(db, Settings(), secret)
    # A secret never issued, or the stored hash of a live token, is refused as well.
    secret = issue_token(db, Settings(), staff_users["nurse"], kind=TokenKind.API)
    with pytest.raises(AuthenticationError, match="unknown, expired or revoked"):
        resolve_token(db, Settings(), "never-issued")
    with pytest.raises(AuthenticationError, match="unknown, expired or revoked"):
        resolve_token(db, Settings(), _token(db, secret).token_sha256)


def test_deactivated_user_refused(
    db: Database, staff: dict[str, Actor], staff_users: dict[str, User]
) -> None:
    """A deactivated user cannot log in (same message as unknown) and their tokens stop."""
    secret = issue_token(db, Settings(), staff_users["nurse"], kind=TokenKind.API)
    _set_user(db, staff["admin"], "nurse", active=False)
    with pytest.raises(AuthenticationError, match=f"^{WRONG}$"):
        authenticate(db, Settings(), username="nurse", password=PASSWORD)
    with pytest.raises(AuthenticationError, match="no longer active"):
        resolve_token(db, Settings(), secret)
