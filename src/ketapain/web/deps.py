"""Dependencies of the routes: the database, the settings, the user acting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Final

from fastapi import Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from ketapain.clinic.accounts import User, resolve_token
from ketapain.clinic.alarms import Rule
from ketapain.clinic.audit import Actor, reading
from ketapain.clinic.db import Database
from ketapain.config import Settings
from ketapain.errors import AuthenticationError

__all__ = [
    "SESSION_COOKIE",
    "ActorDep",
    "DbDep",
    "ReadDep",
    "RulesDep",
    "SettingsDep",
    "UserDep",
    "refuse_nul",
    "set_session_cookie",
]

SESSION_COOKIE: Final = "ketapain_session"


# The dependencies that only read the app state are coroutines: FastAPI runs a plain
# function dependency in the thread pool, a hop that costs more than the read itself.
async def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _rules(request: Request) -> tuple[Rule, ...]:
    rules: tuple[Rule, ...] = request.app.state.rules
    return rules


DbDep = Annotated[Database, Depends(_db)]
SettingsDep = Annotated[Settings, Depends(_settings)]
RulesDep = Annotated[tuple[Rule, ...], Depends(_rules)]


def set_session_cookie(response: Response, secret: str, settings: Settings) -> None:
    """The web session cookie: HttpOnly, SameSite=Strict, Secure behind TLS."""
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
        path="/",
    )


def secret_of(request: Request) -> str:
    """The bearer token, or else the web session cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return cookie
    raise AuthenticationError("log in first: send 'Authorization: Bearer <token>' or a session")


def _user(request: Request, db: DbDep, settings: SettingsDep) -> User:
    return resolve_token(db, settings, secret_of(request))


UserDep = Annotated[User, Depends(_user)]


async def _actor(user: UserDep) -> Actor:
    return user.actor()


ActorDep = Annotated[Actor, Depends(_actor)]


async def _read(db: DbDep, actor: ActorDep) -> AsyncIterator[Session]:
    # A coroutine, to spare two hops to the thread pool on every read: opening a session
    # does no I/O (it connects on its first statement, in the route's thread), and closing
    # it returns the connection to the pool. A refusal raised by the route is audited (a
    # write) in the thread pool.
    ctx = reading(db, actor)
    session = ctx.__enter__()
    try:
        yield session
    except BaseException as err:
        await run_in_threadpool(ctx.__exit__, type(err), err, err.__traceback__)
        raise
    ctx.__exit__(None, None, None)


ReadDep = Annotated[Session, Depends(_read)]


async def refuse_nul(request: Request) -> None:
    """Refuse a query parameter or a path holding a NUL character: no record can hold one
    (PostgreSQL refuses it in text). A validation error, so that an anonymous request is
    still answered 401 first (:mod:`ketapain.web.errors`)."""
    where: tuple[str, ...] | None = None
    if "\x00" in request.url.path:
        where = ("path",)
    else:
        where = next((("query", k) for k, v in request.query_params.multi_items()
                      if "\x00" in k or "\x00" in v), None)  # fmt: skip
    if where is not None:
        raise RequestValidationError(
            [{"type": "value_error", "loc": where, "input": None,
              "msg": "text without NUL characters (\\u0000)"}]
        )  # fmt: skip
