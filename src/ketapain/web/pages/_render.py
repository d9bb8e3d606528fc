"""What every page shares: templates, the signed-in user, CSRF tokens, form reading,
errors next to their fields, and flash messages.

Forms post ``application/x-www-form-urlencoded``. Every form carries a CSRF token bound
to the session (an HMAC of the session secret), so a page of another site cannot post
for a signed-in user even where a browser ignores ``SameSite``. A form that fails
validation is rendered again with what was typed and each error next to its field.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData, ImmutableMultiDict

from ketapain import __version__
from ketapain.clinic.accounts import User, resolve_token
from ketapain.clinic.audit import Actor
from ketapain.clinic.permissions import Action, allowed
from ketapain.errors import (
    AccessDeniedError,
    AuthenticationError,
    ConflictError,
    InvalidValueError,
    KetapainError,
    UnknownNameError,
)
from ketapain.web.deps import SESSION_COOKIE, DbDep, SettingsDep

__all__ = [
    "FLASH_COOKIE",
    "FormInvalidError",
    "FormReader",
    "PageUser",
    "PageUserDep",
    "SignInRequiredError",
    "csrf_token",
    "field_errors",
    "overrides_in",
    "read_form",
    "redirect",
    "refused_on_page",
    "render",
]

TEMPLATES: Final = Path(__file__).resolve().parent.parent / "templates"
FLASH_COOKIE: Final = "ketapain_flash"
_CSRF_CONTEXT: Final = b"ketapain-csrf-v1"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html", "svg"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


class SignInRequiredError(Exception):
    """The page needs a signed-in user; the handler sends the browser to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class FormInvalidError(KetapainError):
    """A form with one or more fields at fault: ``errors`` maps each field to its message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


class PageUser:
    """The signed-in user of a page, with the session secret its tokens are bound to."""

    def __init__(self, user: User, secret: str, tz: ZoneInfo) -> None:
        self.user = user
        self.secret = secret
        self.tz = tz

    def may(self, action: str) -> bool:
        """True when the user's role allows ``action`` (a :class:`Action` value)."""
        return allowed(self.user.actor(), Action(action))


def _page_user(request: Request, db: DbDep, settings: SettingsDep) -> PageUser:
    secret = request.cookies.get(SESSION_COOKIE)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not secret:
        raise SignInRequiredError(target)
    try:
        user = resolve_token(db, settings, secret)
    except AuthenticationError:
        raise SignInRequiredError(target) from None
    return PageUser(user, secret, ZoneInfo(settings.timezone))


PageUserDep = Annotated[PageUser, Depends(_page_user)]


def csrf_token(secret: str) -> str:
    """The CSRF token of a session: an HMAC of its secret (nothing to store)."""
    return hmac.new(secret.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


async def read_form(request: Request, secret: str) -> FormData:
    """The posted form, after checking its CSRF token against ``secret``."""
    form = await request.form()
    sent = form.get("csrf_token")
    if not isinstance(sent, str) or not hmac.compare_digest(sent, csrf_token(secret)):
        raise AccessDeniedError(
            "session", "post this form", "the form is stale or came from another site; reload"
        )
    return form


def refused_on_page(err: AccessDeniedError, actor: Actor, page_needs: Action) -> dict[str, str]:
    """A role's refusal of a form post as the form's error, when the user may see the page
    the form is on (``page_needs``); otherwise ``err`` is raised again, for the 403 page
    that names it. Either way the refusal is audited once."""
    if not allowed(actor, page_needs):
        raise err
    return field_errors(err)


def field_errors(err: KetapainError) -> dict[str, str]:
    """An error as ``{field: message}``; ``_form`` holds errors of the form as a whole."""
    if isinstance(err, FormInvalidError):
        return err.errors
    if isinstance(err, InvalidValueError):
        got = "" if err.value in (None, "") else f" (got {err.value})"
        return {err.field: f"Must be {err.allowed}{got}."}
    if isinstance(err, ConflictError):
        return {err.field: str(err)[0].upper() + str(err)[1:]}
    if isinstance(err, UnknownNameError):
        return {err.kind: str(err)}
    return {"_form": str(err)}


class FormReader:
    """Typed values out of a posted form, collecting every field's error before raising.

    >>> from starlette.datastructures import FormData, ImmutableMultiDict
    >>> r = FormReader(FormData([("sbp_mmhg", "12o"), ("hr_per_min", "")]), ZoneInfo("UTC"))
    >>> r.number("sbp_mmhg"), r.number("hr_per_min")
    (None, None)
    >>> r.errors
    {'sbp_mmhg': 'Must be a number (got 12o).'}
    """

    def __init__(self, form: FormData, tz: ZoneInfo) -> None:
        self.form = form
        self.tz = tz
        self.errors: dict[str, str] = {}

    def _raw(self, name: str) -> str:
        value = self.form.get(name)
        if not isinstance(value, str):
            return ""
        if "\x00" in value:  # no record can hold one (PostgreSQL refuses it)
            raise InvalidValueError(name, "text without NUL characters", value)
        return value.strip()

    def _missing(self, name: str, required: bool, what: str) -> None:
        if required:
            self.errors[name] = f"Required: {what}."

    def text(self, name: str, *, required: bool = False, what: str = "a value") -> str | None:
        """A trimmed string, or None when empty."""
        raw = self._raw(name)
        if not raw:
            self._missing(name, required, what)
            return None
        return raw

    def number(self, name: str, *, required: bool = False, what: str = "a number") -> float | None:
        """A number; ranges are checked by the records, which name the allowed range."""
        raw = self._raw(name)
        if not raw:
            self._missing(name, required, what)
            return None
        try:
            return float(raw.replace(",", "."))
        except ValueError:
            self.errors[name] = f"Must be a number (got {raw})."
            return None

    def whole(
        self, name: str, *, required: bool = False, what: str = "a whole number"
    ) -> int | None:
        """A whole number."""
        value = self.number(name, required=required, what=what)
        if value is None:
            return None
        if not value.is_integer():
            self.errors[name] = f"Must be a whole number (got {value:g})."
            return None
        return int(value)

    def day(self, name: str, *, required: bool = False) -> date | None:
        """A date typed as YYYY-MM-DD (the browser's date input)."""
        raw = self._raw(name)
        if not raw:
            self._missing(name, required, "a date")
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            self.errors[name] = f"Must be a date as YYYY-MM-DD (got {raw})."
            return None

    def when(self, name: str) -> datetime | None:
        """A local date and time (``datetime-local``) in the clinic's zone, as aware UTC."""
        raw = self._raw(name)
        if not raw:
            return None
        try:
            local = datetime.fromisoformat(raw)
        except ValueError:
            self.errors[name] = f"Must be a date and time (got {raw})."
            return None
        if local.tzinfo is None:
            local = local.replace(tzinfo=self.tz)
        return local

    def flag(self, name: str) -> bool:
        """A checkbox: ticked or not."""
        return self._raw(name) in ("on", "true", "1", "yes")

    def choices(self, name: str) -> list[str]:
        """Every value of a multi-valued field (checkbox group)."""
        return [v for v in self.form.getlist(name) if isinstance(v, str) and v]

    def done(self) -> None:
        """Raise :class:`FormInvalidError` when any field was at fault."""
        if self.errors:
            raise FormInvalidError(self.errors)


def overrides_in(form: ImmutableMultiDict[str, Any]) -> list[tuple[str, str]]:
    """The physician's overrides in a form: each ``override_code`` with its
    ``override_reason_<code>``; a code left without a reason is no override."""
    out = []
    for code in form.getlist("override_code"):
        reason = str(form.get(f"override_reason_{code}") or "").strip()
        if isinstance(code, str) and reason:
            out.append((code, reason))
    return out


def _local(value: datetime | str | None, tz: ZoneInfo, fmt: str = "%d %b %Y %H:%M") -> str:
    if not isinstance(value, (str, datetime)) or value == "":
        return ""
    t = datetime.fromisoformat(value) if isinstance(value, str) else value
    if t.tzinfo is None:  # plan times are the clinic's wall clock already
        return t.strftime(fmt)
    return t.astimezone(tz).strftime(fmt)


def _num(value: float | None, spec: str = ".1f") -> str:
    return "" if value is None else format(value, spec)


def _form_state(values: FormData | None, errors: dict[str, str]) -> dict[str, Any]:
    """What the macros need to show a posted form again: its values and its errors."""
    posted: dict[str, list[str]] = {}
    if values is not None:
        for key, value in values.multi_items():
            if isinstance(value, str) and key != "csrf_token":
                posted.setdefault(key, []).append(value)
    form_name = posted["_form"][0] if "_form" in posted else None

    def v(form: str, name: str, default: object = "") -> object:
        if form == form_name and name in posted:
            return posted[name][0]
        return "" if default is None else default

    def vs(form: str, name: str, default: list[str] | None = None) -> list[str]:
        if form == form_name:
            return posted.get(name, [])
        return list(default or [])

    def err(form: str, name: str) -> str | None:
        return errors.get(name) if form == form_name else None

    return {
        "posted_form": form_name,
        "errors": errors,
        "form_errors": errors.get("_form"),
        "v": v,
        "vs": vs,
        "err": err,
    }


def _sign(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), b"flash" + payload, hashlib.sha256).hexdigest()[:32]


def _flash_of(request: Request, secret: str | None) -> list[dict[str, str]]:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw or not secret or "." not in raw:
        return []
    body, _, mac = raw.rpartition(".")
    try:
        payload = base64.urlsafe_b64decode(body.encode())
    except ValueError:
        return []
    if not hmac.compare_digest(mac, _sign(secret, payload)):
        return []
    messages: list[dict[str, str]] = json.loads(payload)
    return messages


def render(
    request: Request,
    template: str,
    *,
    page_user: PageUser | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render ``template`` with the user, the CSRF token, the flash messages and helpers."""
    tz = page_user.tz if page_user else ZoneInfo(request.app.state.settings.timezone)
    secret = page_user.secret if page_user else None
    flashes = _flash_of(request, secret)
    html = _env.get_template(template).render(
        request=request,
        me=page_user,
        user=None if page_user is None else page_user.user,
        csrf=csrf_token(secret) if secret else context.pop("csrf", ""),
        flashes=flashes,
        version=__version__,
        local=lambda v, fmt="%d %b %Y %H:%M": _local(v, tz, fmt),
        num=_num,
        tz_name=str(tz),
        **_form_state(context.pop("values", None), context.pop("errors", {})),
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    if flashes:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def redirect(
    url: str, *, page_user: PageUser | None = None, flash: Sequence[tuple[str, str]] = ()
) -> Response:
    """Answer a successful post: 303 to ``url`` with flash messages (level, text)."""
    response = RedirectResponse(url, status_code=303)
    if flash and page_user is not None:
        payload = json.dumps([{"level": lv, "text": tx} for lv, tx in flash]).encode()
        value = base64.urlsafe_b64encode(payload).decode() + "." + _sign(page_user.secret, payload)
        response.set_cookie(FLASH_COOKIE, value, httponly=True, samesite="strict", path="/")
    return response


def sign_in_url(next_url: str) -> str:
    """The sign-in page, coming back to ``next_url``."""
    return "/login?next=" + quote(next_url, safe="/")
