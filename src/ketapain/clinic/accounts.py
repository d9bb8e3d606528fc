"""Users, roles, passwords, tokens and lock-out.

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second recommended
set). API tokens and web session ids are random 256-bit strings; only their SHA-256 is
stored, so a copy of the database does not let anyone in. After
``Settings.lockout_attempts`` failed logins in a row an account locks for
``Settings.lockout_min`` minutes; a successful login resets the count.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any, ClassVar, Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ForeignKey, String, bindparam, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ketapain.clinic.audit import SYSTEM, Actor, record_event, unit_of_work
from ketapain.clinic.db import Base, Database, utc_now
from ketapain.config import Settings
from ketapain.errors import AuthenticationError, ConflictError, InvalidValueError

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "AuthToken",
    "Role",
    "TokenKind",
    "User",
    "authenticate",
    "create_user",
    "issue_token",
    "list_users",
    "resolve_token",
    "revoke_token",
]

# NIST SP 800-63B (Grassi 2017) section 5.1.1.1: memorized secrets of at least 8 characters.
MIN_PASSWORD_LENGTH: Final = 8
_HASHER: Final = PasswordHasher()
# A web session's idle expiry moves on at most this often: an idle limit of N minutes
# closes it between N - 1 and N minutes after the last request (never later).
_REFRESH_EVERY: Final = timedelta(minutes=1)


class Role(StrEnum):
    """What a user does in the clinic; :mod:`ketapain.clinic.permissions` says what each may."""

    PHYSICIAN = "physician"
    NURSE = "nurse"
    FRONT_DESK = "front_desk"
    ADMIN = "admin"


class TokenKind(StrEnum):
    """A bearer token for the API, or the session id of a web login (cookie)."""

    API = "api"
    SESSION = "session"


class User(Base):
    """A person who logs in. Changes are audited; users are deactivated, never deleted."""

    __tablename__ = "users"
    __audit_redact__: ClassVar[tuple[str, ...]] = ("password_hash",)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until_utc: Mapped[datetime | None] = mapped_column(default=None)
    created_utc: Mapped[datetime] = mapped_column(default=utc_now)

    def actor(self) -> Actor:
        """This user as the actor of a unit of work."""
        return Actor(user_id=self.id, username=self.username, role=str(self.role))

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (never the hash)."""
        return {
            "id": str(self.id),
            "username": self.username,
            "full_name": self.full_name,
            "role": str(self.role),
            "active": self.active,
            "locked_until_utc": None
            if self.locked_until_utc is None
            else self.locked_until_utc.isoformat(),
        }


class AuthToken(Base):
    """An API token or web session; only the SHA-256 of the secret is kept."""

    __tablename__ = "auth_tokens"
    __audit_redact__: ClassVar[tuple[str, ...]] = ("token_sha256",)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[TokenKind] = mapped_column(String(10))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_utc: Mapped[datetime] = mapped_column(default=utc_now)
    expires_utc: Mapped[datetime]
    last_used_utc: Mapped[datetime] = mapped_column(default=utc_now)
    revoked_utc: Mapped[datetime | None] = mapped_column(default=None)


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_username(username: str) -> str:
    name = username.strip()
    if not 2 <= len(name) <= 80 or not all(c.isalnum() or c in "._-@" for c in name):
        raise InvalidValueError("username", "2 to 80 letters, digits or . _ - @", username)
    return name


def create_user(
    db: Database,
    actor: Actor,
    *,
    username: str,
    full_name: str,
    role: str,
    password: str,
) -> User:
    """Add a user; ``actor`` must be allowed to manage users (or be the system, at set-up)."""
    from ketapain.clinic.permissions import Action, require

    with unit_of_work(db, actor) as session:
        if actor != SYSTEM:
            require(actor, Action.MANAGE_USERS)
        name = _check_username(username)
        if role not in set(Role):
            raise InvalidValueError("role", f"one of {', '.join(Role)}", role)
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidValueError(
                "password", f"at least {MIN_PASSWORD_LENGTH} characters", "(hidden)"
            )
        if not full_name.strip():
            raise InvalidValueError("full_name", "a non-empty name", full_name)
        if session.scalar(select(User.id).where(User.username == name)) is not None:
            raise ConflictError("username", f"a user named {name!r} exists already")
        user = User(
            username=name,
            full_name=full_name.strip(),
            role=Role(role),
            password_hash=_HASHER.hash(password),
        )
        session.add(user)
    return user


def list_users(session: Session) -> Sequence[User]:
    """Every user, by name."""
    return session.scalars(select(User).order_by(User.username)).all()


def authenticate(db: Database, settings: Settings, *, username: str, password: str) -> User:
    """The user if the password is right; counts failures and locks the account.

    Raises :class:`AuthenticationError` with one message for an unknown user, an inactive
    one, a wrong password and a locked account, and hashes the password in every case,
    so that neither the answer nor its time tells which usernames exist. The audit entry
    records the real reason.
    """
    now = utc_now()
    refused = (
        f"wrong username or password, or the account is locked ({settings.lockout_attempts} "
        f"failed attempts in a row lock it for {settings.lockout_min} min)"
    )
    with unit_of_work(db, SYSTEM) as session:
        user = session.scalar(select(User).where(User.username == username.strip()))
        if user is None or not user.active:
            _verify(_dummy_hash(), password)
            outcome = f"unknown or inactive user {username!r}"
        elif user.locked_until_utc is not None and user.locked_until_utc > now:
            _verify(user.password_hash, password)
            outcome = f"account locked until {user.locked_until_utc:%Y-%m-%d %H:%M} UTC"
        elif _verify(user.password_hash, password):
            session.info["actor"] = user.actor()
            if user.failed_logins or user.locked_until_utc is not None:
                user.failed_logins = 0
                user.locked_until_utc = None
            return user
        else:
            user.failed_logins += 1
            outcome = "wrong password"
            if user.failed_logins >= settings.lockout_attempts:
                user.locked_until_utc = now + timedelta(minutes=settings.lockout_min)
                user.failed_logins = 0
                outcome = (
                    f"wrong password; account locked for {settings.lockout_min} min after "
                    f"{settings.lockout_attempts} failed attempts"
                )
    record_event(db, SYSTEM, action="login_failed", entity="users", detail=outcome)
    raise AuthenticationError(refused)


@cache
def _dummy_hash() -> str:
    """A hash to verify against when there is no user, so that it takes as long."""
    return _HASHER.hash(secrets.token_urlsafe(16))


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def issue_token(db: Database, settings: Settings, user: User, *, kind: TokenKind) -> str:
    """A new secret for ``user``; it is shown once and only its hash is stored."""
    secret = secrets.token_urlsafe(32)
    ttl = (
        timedelta(hours=settings.token_ttl_h)
        if kind is TokenKind.API
        else timedelta(minutes=settings.session_idle_min)
    )
    with unit_of_work(db, user.actor()) as session:
        session.add(
            AuthToken(
                user_id=user.id,
                kind=kind,
                token_sha256=_sha256(secret),
                expires_utc=utc_now() + ttl,
            )
        )
    return secret


# Run by every request: built once.
_TOKEN_AND_USER: Final = (
    select(AuthToken, User)
    .join(User, User.id == AuthToken.user_id)
    .where(AuthToken.token_sha256 == bindparam("sha256"))
)


def resolve_token(db: Database, settings: Settings, secret: str) -> User:
    """The user a token or session id belongs to; a web session's idle time restarts."""
    now = utc_now()
    with db.read() as session:
        # One statement on every request: the token and its user together.
        found = session.execute(_TOKEN_AND_USER, {"sha256": _sha256(secret)}).first()
        if found is None:
            raise AuthenticationError("the token or session is unknown, expired or revoked")
        token, user = found
        if token.revoked_utc is not None or token.expires_utc <= now:
            raise AuthenticationError("the token or session is unknown, expired or revoked")
        if not user.active:
            raise AuthenticationError("the user of this token is no longer active")
        kind, token_id, last_used = token.kind, token.id, token.last_used_utc
    if kind == TokenKind.SESSION and now - last_used >= _REFRESH_EVERY:
        # Sliding idle timeout, written at most once a minute (not once per request).
        with db.write() as session, session.begin():
            session.info["actor"] = user.actor()
            fresh = session.get(AuthToken, token_id)
            if fresh is not None:
                fresh.expires_utc = now + timedelta(minutes=settings.session_idle_min)
                fresh.last_used_utc = now
    return user


def revoke_token(db: Database, user: User, secret: str) -> None:
    """Log out: the token or session can no longer be used."""
    with unit_of_work(db, user.actor()) as session:
        token = session.scalar(select(AuthToken).where(AuthToken.token_sha256 == _sha256(secret)))
        if token is not None and token.revoked_utc is None:
            token.revoked_utc = utc_now()
