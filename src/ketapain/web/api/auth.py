"""Log in (API token or web session), log out, who am I; users (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import Field

from ketapain.clinic.accounts import (
    TokenKind,
    authenticate,
    create_user,
    issue_token,
    list_users,
    revoke_token,
)
from ketapain.clinic.permissions import Action, require
from ketapain.web.api._schemas import Body
from ketapain.web.deps import (
    SESSION_COOKIE,
    ActorDep,
    DbDep,
    ReadDep,
    SettingsDep,
    UserDep,
    secret_of,
    set_session_cookie,
)

router = APIRouter(tags=["accounts"])


class Credentials(Body):
    """Username and password."""

    username: str = Field(min_length=1)
    password: str = Field(min_length=1)


class UserIn(Body):
    """A new user."""

    username: str
    full_name: str
    role: str
    password: str


@router.post("/auth/token")
def token(body: Credentials, db: DbDep, settings: SettingsDep) -> dict[str, Any]:
    """Exchange a username and password for an API bearer token."""
    user = authenticate(db, settings, username=body.username, password=body.password)
    secret = issue_token(db, settings, user, kind=TokenKind.API)
    return {
        "access_token": secret,
        "token_type": "bearer",
        "expires_in_h": settings.token_ttl_h,
        "user": user.as_dict(),
    }


@router.post("/auth/login")
def login(
    body: Credentials, response: Response, db: DbDep, settings: SettingsDep
) -> dict[str, Any]:
    """Open a web session: an HttpOnly, SameSite=Strict cookie."""
    user = authenticate(db, settings, username=body.username, password=body.password)
    secret = issue_token(db, settings, user, kind=TokenKind.SESSION)
    set_session_cookie(response, secret, settings)
    return {"user": user.as_dict(), "idle_timeout_min": settings.session_idle_min}


@router.post("/auth/logout")
def logout(request: Request, response: Response, db: DbDep, user: UserDep) -> dict[str, bool]:
    """Revoke the token or session used for this request."""
    revoke_token(db, user, secret_of(request))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"logged_out": True}


@router.get("/auth/me")
def me(user: UserDep) -> dict[str, Any]:
    """The user logged in."""
    return user.as_dict()


@router.get("/users")
def users(session: ReadDep, actor: ActorDep) -> list[dict[str, Any]]:
    """Every user (admin)."""
    require(actor, Action.MANAGE_USERS)
    return [u.as_dict() for u in list_users(session)]


@router.post("/users", status_code=201)
def add_user(body: UserIn, db: DbDep, actor: ActorDep) -> dict[str, Any]:
    """Add a user (admin)."""
    user = create_user(
        db,
        actor,
        username=body.username,
        full_name=body.full_name,
        role=body.role,
        password=body.password,
    )
    return user.as_dict()
