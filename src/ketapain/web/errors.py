"""Errors as JSON: ``{"error", "message", "field"}`` with the right HTTP status.

======================  ======  =======================================================
exception               status  ``error``
======================  ======  =======================================================
InvalidValueError       422     ``invalid_value`` (+ ``allowed``)
request validation      422     ``invalid_value`` (+ ``errors``: every field at fault)
UnknownNameError        422     ``unknown_name``
AuthenticationError     401     ``not_authenticated``
AccessDeniedError       403     ``forbidden``
RecordNotFoundError     404     ``not_found``
HardStopError           409     ``hard_stop`` (+ ``findings``)
ConflictError           409     ``conflict``
AppendOnlyError         409     ``append_only``
no database connection  503     ``busy`` (the server is overloaded; ``Retry-After: 1``)
======================  ======  =======================================================

Under ``/fhir`` the same errors are FHIR OperationOutcomes (``application/fhir+json``);
a Bundle that cannot be imported lists one issue per entry at fault.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ketapain.clinic.accounts import resolve_token
from ketapain.errors import (
    AccessDeniedError,
    AppendOnlyError,
    AuthenticationError,
    ConflictError,
    HardStopError,
    InvalidValueError,
    RecordNotFoundError,
    UnknownNameError,
    field_path,
)
from ketapain.fhir.intake import FhirImportError
from ketapain.fhir.outcome import ISSUE_CODE, issue, operation_outcome
from ketapain.protocols.findings import Finding
from ketapain.web.deps import secret_of
from ketapain.web.pages._render import render, sign_in_url

__all__ = ["API_PATHS", "install"]

# Paths answered in JSON; everything else is a page.
API_PATHS: Final = ("/api/", "/docs")
FHIR_PATHS: Final = ("/fhir",)


def _body(error: str, message: str, field: str | None, **extra: Any) -> dict[str, Any]:
    return {"error": error, "message": message, "field": field, **extra}


def _answer(
    request: Request,
    content: dict[str, Any],
    status_code: int,
    headers: dict[str, str] | None = None,
) -> Response:
    """JSON for the API; an error page for a page (its message, never a stack trace)."""
    if request.url.path.startswith(FHIR_PATHS):
        return _outcome(content, status_code, headers)
    if request.url.path.startswith(API_PATHS):
        return JSONResponse(content, status_code=status_code, headers=headers)
    if status_code == 401:
        return RedirectResponse(sign_in_url(request.url.path), status_code=303)
    titles = {403: "Not allowed", 404: "Not found", 409: "Not possible", 503: "Busy"}
    page = render(
        request,
        "error.html",
        page_user=None,
        status=status_code,
        title=titles.get(status_code, "Something is wrong"),
        message=content["message"],
    )
    page.headers.update(headers or {})
    return page


def _outcome(content: dict[str, Any], status_code: int, headers: dict[str, str] | None) -> Response:
    """An error as a FHIR OperationOutcome."""
    code = ISSUE_CODE.get(status_code, "exception")
    issues = [
        issue("error", code, e["message"], e.get("expression") or e.get("field"))
        for e in content.get("issues") or content.get("errors") or []
    ] or [issue("error", code, content["message"], content.get("field"))]
    return JSONResponse(
        operation_outcome(issues), status_code=status_code, headers=headers,
        media_type="application/fhir+json",
    )  # fmt: skip


# The API's routes that take a body without credentials (they are how one signs in).
_SIGN_IN_PATHS: Final = ("/api/v1/auth/token", "/api/v1/auth/login")


def _anonymous(request: Request) -> AuthenticationError | None:
    """Why an API or FHIR request is refused for its credentials, if it is."""
    path = request.url.path
    if not path.startswith(("/api/", *FHIR_PATHS)) or path in _SIGN_IN_PATHS:
        return None
    try:
        resolve_token(request.app.state.db, request.app.state.settings, secret_of(request))
    except AuthenticationError as err:
        return err
    return None


def _loc(loc: tuple[Any, ...]) -> str:
    parts = loc[1:] if loc[:1] == ("body",) else loc
    return field_path(*(p if isinstance(p, int) else str(p) for p in parts)) or "body"


def install(app: FastAPI) -> None:
    """Register the handlers that turn ketapain's errors into JSON answers."""

    @app.exception_handler(InvalidValueError)
    async def _invalid(_r: Request, err: InvalidValueError) -> Response:
        return _answer(
            _r, _body("invalid_value", str(err), err.field, allowed=err.allowed), status_code=422
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_r: Request, err: RequestValidationError) -> Response:
        # FastAPI reads the body before the dependencies that check the credentials: a
        # request that is both anonymous and malformed is answered 401, not 422.
        anonymous = _anonymous(_r)
        if anonymous is not None:
            return await _auth(_r, anonymous)
        errors = [
            # A body that is not JSON at all: its location is a character offset.
            {"field": "body" if e["type"] == "json_invalid" else _loc(tuple(e["loc"])),
             "message": e["msg"]}
            for e in err.errors()
        ]  # fmt: skip
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        return _answer(
            _r,
            _body(
                "invalid_value",
                f"{first['field']}: {first['message']}",
                first["field"],
                errors=errors,
            ),
            status_code=422,
        )

    @app.exception_handler(UnknownNameError)
    async def _unknown(_r: Request, err: UnknownNameError) -> Response:
        return _answer(_r, _body("unknown_name", str(err), err.kind), status_code=422)

    @app.exception_handler(AuthenticationError)
    async def _auth(_r: Request, err: AuthenticationError) -> Response:
        return _answer(
            _r,
            _body("not_authenticated", str(err), None),
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.exception_handler(AccessDeniedError)
    async def _denied(_r: Request, err: AccessDeniedError) -> Response:
        return _answer(_r, _body("forbidden", str(err), None, action=err.action), status_code=403)

    @app.exception_handler(RecordNotFoundError)
    async def _missing(_r: Request, err: RecordNotFoundError) -> Response:
        return _answer(_r, _body("not_found", str(err), "id"), status_code=404)

    @app.exception_handler(HardStopError)
    async def _stop(_r: Request, err: HardStopError) -> Response:
        findings = [f.as_dict() for f in err.findings if isinstance(f, Finding)]
        return _answer(
            _r, _body("hard_stop", str(err), err.field, findings=findings), status_code=409
        )

    @app.exception_handler(ConflictError)
    async def _conflict(_r: Request, err: ConflictError) -> Response:
        return _answer(_r, _body("conflict", str(err), err.field), status_code=409)

    @app.exception_handler(AppendOnlyError)
    async def _append(_r: Request, err: AppendOnlyError) -> Response:
        return _answer(_r, _body("append_only", str(err), None), status_code=409)

    @app.exception_handler(PoolTimeoutError)
    async def _busy(_r: Request, _err: PoolTimeoutError) -> Response:
        message = "the server is too busy to reach its database: try again in a moment"
        return _answer(
            _r, _body("busy", message, None), status_code=503, headers={"Retry-After": "1"}
        )

    @app.exception_handler(FhirImportError)
    async def _bundle(_r: Request, err: FhirImportError) -> Response:
        issues = [{"message": str(p), "expression": p.expression()} for p in err.problems]
        body = _body(
            "conflict" if err.conflict else "invalid_bundle", str(err), None, issues=issues,
            problems=[p.as_dict() for p in err.problems],
        )  # fmt: skip
        return _answer(_r, body, status_code=409 if err.conflict else 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, err: StarletteHTTPException) -> Response:
        # A body FastAPI cannot read (400) is refused before the credentials are checked.
        anonymous = _anonymous(_r) if err.status_code == 400 else None
        if anonymous is not None:
            return await _auth(_r, anonymous)
        return _answer(
            _r,
            _body("not_found" if err.status_code == 404 else "http_error", str(err.detail), None),
            status_code=err.status_code,
        )
