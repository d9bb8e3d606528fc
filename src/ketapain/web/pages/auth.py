"""Sign in and out, and the home page of each role."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ketapain.clinic.accounts import TokenKind, authenticate, issue_token, revoke_token
from ketapain.clinic.audit import reading
from ketapain.clinic.charting import open_alarms
from ketapain.clinic.db import utc_now
from ketapain.clinic.demo import DEMO_PASSWORD, DEMO_USERS
from ketapain.clinic.follow_up import OVERDUE_LISTED_DAYS, PRO_SIGNALS, due_reminders
from ketapain.clinic.schedule import schedule
from ketapain.clinic.worklists import due_labs, pending_decisions, todays_chairs
from ketapain.errors import AccessDeniedError, AuthenticationError, KetapainError
from ketapain.web.deps import SESSION_COOKIE, DbDep, SettingsDep, set_session_cookie
from ketapain.web.pages._render import (
    PageUserDep,
    csrf_token,
    field_errors,
    read_form,
    render,
)

__all__ = ["HOME_REMINDERS", "router"]

router = APIRouter()

# The questionnaires due that the home page lists (the most overdue); /questionnaires
# lists them all. A page-length choice, not a clinical figure.
HOME_REMINDERS: Final = 10

# A random value in a cookie before sign-in; the login form carries its HMAC (login CSRF).
_LOGIN_COOKIE: Final = "ketapain_login"


def _safe_next(url: str | None) -> str:
    """Only a path on this site (never ``//host`` or a scheme) may follow sign-in."""
    if url and url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return url
    return "/home"


def _login_page(
    request: Request, *, status: int = 200, values: Any = None, errors: Any = None
) -> Response:
    nonce = request.cookies.get(_LOGIN_COOKIE) or secrets.token_urlsafe(24)
    demo = bool(getattr(request.app.state, "demo", False))
    response = render(
        request,
        "login.html",
        page_user=None,
        status=status,
        csrf=csrf_token(nonce),
        next_url=_safe_next(request.query_params.get("next")),
        demo_users=DEMO_USERS if demo else (),
        demo_password=DEMO_PASSWORD,
        values=values,
        errors=errors or {},
    )
    response.set_cookie(_LOGIN_COOKIE, nonce, httponly=True, samesite="strict", path="/login")
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    """The sign-in page."""
    return _login_page(request)


@router.post("/login")
async def login(request: Request, db: DbDep, settings: SettingsDep) -> Response:
    """Check the password, open a session (HttpOnly, SameSite=Strict) and go on."""
    try:
        nonce = request.cookies.get(_LOGIN_COOKIE)
        if not nonce:  # a post from another site carries no login cookie (SameSite=Strict)
            raise AccessDeniedError("session", "sign in", "open the sign-in page first")
        form = await read_form(request, nonce)
    except KetapainError as err:
        return _login_page(request, status=403, errors=field_errors(err))
    username = str(form.get("username") or "").strip()
    try:
        user = authenticate(db, settings, username=username, password=str(form.get("password")))
    except AuthenticationError as err:
        return _login_page(request, status=401, values=form, errors={"password": str(err)})
    secret = issue_token(db, settings, user, kind=TokenKind.SESSION)
    response = RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    set_session_cookie(response, secret, settings)
    response.delete_cookie(_LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, db: DbDep, me: PageUserDep) -> Response:
    """Close the session."""
    await read_form(request, me.secret)
    revoke_token(db, me.user, me.secret)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
def root() -> Response:
    """The home page (or the sign-in page)."""
    return RedirectResponse("/home", status_code=303)


@router.get("/home")
def home(request: Request, db: DbDep, me: PageUserDep) -> Response:
    """What this role needs today: chairs, decisions, alarms, labs, the schedule, and
    the follow-up: alerts from questionnaires and the questionnaires due or overdue."""
    today = utc_now().astimezone(me.tz).date()
    context: dict[str, Any] = {"today": today}
    with reading(db, me.user.actor()) as session:
        actor = me.user.actor()
        if me.may("read_clinical"):
            context["chairs"] = todays_chairs(session, actor, day=today)
            alarms = open_alarms(session, actor)
            context["alarms"] = [a for a in alarms if a["signal"] not in PRO_SIGNALS]
            context["pro_alerts"] = [a for a in alarms if a["signal"] in PRO_SIGNALS]
            reminders = due_reminders(session, actor, today=today, tz=me.tz)
            context["reminders"] = reminders[:HOME_REMINDERS]
            context["reminders_total"] = len(reminders)
        if me.may("decide"):
            context["decisions"] = pending_decisions(session, actor)
            context["labs"] = due_labs(session, actor, today=today)
        if me.may("read_schedule") and not me.may("read_clinical"):
            context["booked"] = schedule(
                session, actor, from_date=today, to_date=today + timedelta(days=6)
            )
    return render(request, "home.html", page_user=me, **context)


@router.get("/questionnaires")
def questionnaires(request: Request, db: DbDep, me: PageUserDep) -> Response:
    """Every questionnaire due today or overdue, one row per course and questionnaire."""
    today = utc_now().astimezone(me.tz).date()
    with reading(db, me.user.actor()) as session:
        reminders = due_reminders(session, me.user.actor(), today=today, tz=me.tz)
    return render(
        request, "questionnaires.html", page_user=me, reminders=reminders, today=today,
        overdue_days=OVERDUE_LISTED_DAYS,
    )  # fmt: skip


@router.get("/schedule")
def week(request: Request, db: DbDep, me: PageUserDep) -> Response:
    """The sessions and boosters of the next two weeks as in force: moved ones on their
    new day, missed ones marked, each with its chair time."""
    today = utc_now().astimezone(me.tz).date()
    with reading(db, me.user.actor()) as session:
        booked = schedule(
            session, me.user.actor(), from_date=today, to_date=today + timedelta(13), detail=True
        )
    return render(request, "schedule.html", page_user=me, booked=booked, today=today)
