"""The patient portal page: questionnaires through an expiring link, no account.

``GET /p/{secret}`` shows the patient's given name and the questionnaires due today, in
plain words with large answers to tap; ``POST /p/{secret}`` sends one. An unknown,
expired or withdrawn link shows one and the same page (404). A form from another site
cannot post: the page sets a random value in a cookie (``SameSite=Strict``, path
``/p/``) and each form carries its HMAC, as the sign-in form does (login CSRF). After a
PHQ-9 whose item 9 is answered, the page tells the patient that the clinic will call and
what to do in danger; the clinic's staff get an alarm in the same transaction.

The wording is that of the published questionnaires: PHQ-9 (Kroenke 2001), GAD-7
(Spitzer 2006), PEG (Krebs 2009), BPI short form (Cleeland 1994), PGIC (Guy 1976),
EQ VAS (Herdman 2011), PDQ-5 (Sullivan 1990).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from ketapain.clinic.instruments import INSTRUMENTS
from ketapain.clinic.portal import LinkUnavailableError, portal_view, resolve_link, submit
from ketapain.errors import AccessDeniedError, InvalidValueError
from ketapain.web.deps import DbDep, SettingsDep
from ketapain.web.pages._render import FormInvalidError, csrf_token, read_form, render

__all__ = ["QUESTIONNAIRES", "router"]

router = APIRouter()

# A random value in a cookie; the portal's forms carry its HMAC (as the sign-in form).
_PORTAL_COOKIE: Final = "ketapain_portal"


@dataclass(frozen=True, slots=True, kw_only=True)
class Questionnaire:
    """A questionnaire as the patient sees it: questions (item keys, or ``value`` for a
    single score) and the answers to choose from (none: a number to type)."""

    instrument: str
    heading: str
    intro: str
    questions: tuple[tuple[str, str], ...]
    answers: tuple[tuple[int, str], ...] = ()
    low: int = 0
    high: int = 0


def _scale(low_label: str, high_label: str) -> tuple[tuple[int, str], ...]:
    """0 to 10, the two ends named."""
    return tuple(
        (n, f"{n} – {low_label}" if n == 0 else f"{n} – {high_label}" if n == 10 else str(n))
        for n in range(11)
    )


_OFTEN: Final = ((0, "Not at all"), (1, "Several days"), (2, "More than half the days"),
                 (3, "Nearly every day"))  # fmt: skip
_PAIN: Final = _scale("no pain", "pain as bad as you can imagine")
_INTERFERES: Final = _scale("does not interfere", "completely interferes")
QUESTIONNAIRES: Final = {q.instrument: q for q in (
    Questionnaire(
        instrument="pain_nrs", heading="Your pain today",
        intro="Choose the one number that best describes your pain today.",
        questions=(("value", "How much pain do you have today?"),), answers=_PAIN,
    ),
    Questionnaire(
        instrument="peg", heading="Pain in the past week",
        intro="Choose the one number that best describes each.",
        questions=(
            ("pain", "What number best describes your pain on average in the past week?"),
            ("enjoyment", "What number best describes how, during the past week, pain has "
                          "interfered with your enjoyment of life?"),
            ("activity", "What number best describes how, during the past week, pain has "
                         "interfered with your general activity?"),
        ),
        answers=_scale("none", "as bad as you can imagine / completely interferes"),
    ),
    Questionnaire(
        instrument="bpi_severity", heading="Your pain in the last 24 hours",
        intro="Choose the one number that best describes your pain.",
        questions=(("worst", "Your pain at its worst in the last 24 hours"),
                   ("least", "Your pain at its least in the last 24 hours"),
                   ("average", "Your pain on the average"), ("now", "Your pain right now")),
        answers=_PAIN,
    ),
    Questionnaire(
        instrument="bpi_interference", heading="How pain got in the way (last 24 hours)",
        intro="Choose the one number that describes how, during the past 24 hours, pain has "
              "interfered with your:",
        questions=(("general_activity", "General activity"), ("mood", "Mood"),
                   ("walking", "Walking ability"),
                   ("normal_work", "Normal work (both work outside the home and housework)"),
                   ("relations", "Relations with other people"), ("sleep", "Sleep"),
                   ("enjoyment", "Enjoyment of life")),
        answers=_INTERFERES,
    ),
    Questionnaire(
        instrument="pgic", heading="Change since your treatment started",
        intro="Since your treatment started, how would you describe the change in your "
              "pain condition overall?",
        questions=(("value", "Overall, my condition is:"),),
        answers=((1, "Very much improved"), (2, "Much improved"), (3, "Minimally improved"),
                 (4, "No change"), (5, "Minimally worse"), (6, "Much worse"),
                 (7, "Very much worse")),
    ),
    Questionnaire(
        instrument="phq9", heading="How you have been feeling",
        intro="Over the last 2 weeks, how often have you been bothered by any of the "
              "following problems?",
        questions=(
            ("item1", "Little interest or pleasure in doing things"),
            ("item2", "Feeling down, depressed, or hopeless"),
            ("item3", "Trouble falling or staying asleep, or sleeping too much"),
            ("item4", "Feeling tired or having little energy"),
            ("item5", "Poor appetite or overeating"),
            ("item6", "Feeling bad about yourself, or that you are a failure or have let "
                      "yourself or your family down"),
            ("item7", "Trouble concentrating on things, such as reading the newspaper or "
                      "watching television"),
            ("item8", "Moving or speaking so slowly that other people could have noticed; "
                      "or the opposite, being so fidgety or restless that you have been "
                      "moving around a lot more than usual"),
            ("item9", "Thoughts that you would be better off dead or of hurting yourself "
                      "in some way"),
        ),
        answers=_OFTEN,
    ),
    Questionnaire(
        instrument="gad7", heading="Worry and anxiety",
        intro="Over the last 2 weeks, how often have you been bothered by the following "
              "problems?",
        questions=(
            ("item1", "Feeling nervous, anxious or on edge"),
            ("item2", "Not being able to stop or control worrying"),
            ("item3", "Worrying too much about different things"),
            ("item4", "Trouble relaxing"),
            ("item5", "Being so restless that it is hard to sit still"),
            ("item6", "Becoming easily annoyed or irritable"),
            ("item7", "Feeling afraid as if something awful might happen"),
        ),
        answers=_OFTEN,
    ),
    Questionnaire(
        instrument="eq_vas", heading="Your health today",
        intro="How good or bad is your health today? 100 means the best health you can "
              "imagine, 0 the worst health you can imagine.",
        questions=(("value", "Your health today, from 0 to 100"),), low=0, high=100,
    ),
    Questionnaire(
        instrument="pdq5", heading="Memory and concentration",
        intro="During the past 7 days, how often did you:",
        questions=(
            ("organising", "have trouble getting things organised?"),
            ("concentrating", "have trouble concentrating on things like watching a "
                              "television programme or reading a book?"),
            ("forgetting_date", "forget the date unless you looked it up?"),
            ("remembering", "forget what you talked about after a telephone conversation?"),
            ("blank_mind", "feel like your mind went totally blank?"),
        ),
        answers=((0, "Never"), (1, "Rarely"), (2, "Sometimes"), (3, "Often"),
                 (4, "Almost always")),
    ),
)}  # fmt: skip


def _page(
    request: Request,
    db: DbDep,
    tz: ZoneInfo,
    secret: str,
    *,
    status: int = 200,
    values: FormData | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    """The portal page for the link ``secret`` (or the page of a link not in force)."""
    nonce = request.cookies.get(_PORTAL_COOKIE) or secrets.token_urlsafe(24)
    try:
        view = portal_view(db, secret, tz=tz)
    except LinkUnavailableError:
        view, status = None, 404
    response = render(
        request,
        "portal.html",
        page_user=None,
        status=status,
        csrf=csrf_token(nonce),
        view=view,
        forms=[QUESTIONNAIRES[d["instrument"]] for d in view["due"]] if view else [],
        sent=request.query_params.get("sent") if values is None else None,
        support=request.query_params.get("support") == "1" and values is None,
        action=request.url.path,
        values=values,
        errors=errors or {},
    )
    response.set_cookie(_PORTAL_COOKIE, nonce, httponly=True, samesite="strict", path="/p/")
    return response


@router.get("/p/{secret}")
def portal(secret: str, request: Request, db: DbDep, settings: SettingsDep) -> Response:
    """The patient's questionnaires due today (no account: the link is the key)."""
    return _page(request, db, ZoneInfo(settings.timezone), secret)


@router.post("/p/{secret}")
async def send(secret: str, request: Request, db: DbDep, settings: SettingsDep) -> Response:
    """Send one questionnaire; back to the page, with the crisis message when needed."""
    tz = ZoneInfo(settings.timezone)
    try:
        await run_in_threadpool(resolve_link, db, secret)
    except LinkUnavailableError:
        return await run_in_threadpool(_page, request, db, tz, secret)
    nonce = request.cookies.get(_PORTAL_COOKIE)
    try:
        if not nonce:  # a post from another site carries no cookie (SameSite=Strict)
            raise AccessDeniedError("patient", "send this form", "open the link again")
        form = await read_form(request, nonce)
    except AccessDeniedError:
        errors = {"_form": "This form has expired. Please open your link again and answer."}
        return await run_in_threadpool(_page, request, db, tz, secret, status=403, errors=errors)
    instrument = str(form.get("_form") or "")
    try:
        values, items = _answers(form, instrument)
        done = await run_in_threadpool(
            lambda: submit(db, secret, instrument=instrument, value=values, items=items)
        )
    except FormInvalidError as err:
        return await run_in_threadpool(
            _page, request, db, tz, secret, status=422, values=form, errors=err.errors
        )
    except InvalidValueError as err:
        errors = {"_form": f"This answer could not be sent ({err.allowed})."}
        return await run_in_threadpool(
            _page, request, db, tz, secret, status=422, values=form, errors=errors
        )
    query = {"sent": instrument}
    if any(a.signal == "phq9_item9" for a in done.alarms):
        query["support"] = "1"
    return RedirectResponse(f"{request.url.path}?{urlencode(query)}", status_code=303)


def _answers(form: FormData, instrument: str) -> tuple[float | None, dict[str, int] | None]:
    """The value or the items of the questionnaire ``instrument`` from the form; every
    unanswered or impossible answer is an error next to its question."""
    q = QUESTIONNAIRES.get(instrument)
    if q is None:
        raise InvalidValueError("instrument", f"one of {', '.join(QUESTIONNAIRES)}", instrument)
    allowed = {v for v, _ in q.answers} or set(range(q.low, q.high + 1))
    answers: dict[str, int] = {}
    errors: dict[str, str] = {}
    for key, _text in q.questions:
        raw = str(form.get(key) or "").strip()
        try:
            number = int(raw)
        except ValueError:
            number = -1
        if number not in allowed:
            low, high = min(allowed), max(allowed)
            errors[key] = f"Please answer this question ({low} to {high})."
        else:
            answers[key] = number
    if errors:
        raise FormInvalidError(errors)
    if INSTRUMENTS[instrument].items:
        return None, answers
    return float(answers["value"]), None
