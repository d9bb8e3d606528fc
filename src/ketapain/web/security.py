"""Security headers and an access log that never holds patient data.

Every response carries the headers of the OWASP Secure Headers Project (OWASP Foundation,
"OWASP Secure Headers Project", 2023) and OWASP ASVS 4.0.3 section 14.4:

==============================  ==========================================================
header                          why
==============================  ==========================================================
Content-Security-Policy         only this origin's scripts, styles and forms; no framing
X-Content-Type-Options          nosniff: a file is what its type says
X-Frame-Options                 DENY, for browsers without ``frame-ancestors``
Referrer-Policy                 no-referrer: page addresses hold record ids
Cache-Control                   no-store on everything but the static files: records are
                                not kept in browser or proxy caches (ASVS 8.2.1)
Permissions-Policy              no camera, microphone or location
Cross-Origin-Opener-Policy      same-origin
Strict-Transport-Security       one year, only when the deployment runs behind TLS
                                (``KETAPAIN_SECURE_COOKIES=1``)
==============================  ==========================================================

Behind TLS every cookie set (the session, the sign-in form's, the flash messages') also
gets the ``Secure`` attribute here, whichever part of the application set it.

The API docs page (``/docs``) loads Swagger UI from its CDN and runs an inline script, so
its policy allows that CDN and inline code; it holds no patient data.

The access log (logger ``ketapain.access``) writes the method, the route's *template*
(``/api/v1/patients/{patient_id}``, never the address as sent), the status and the time
taken. Query strings, bodies, headers and path values are never logged: a search for a
name or an MRN travels in them. Unhandled errors are logged by type, route and a reference
number shown to the user, with the traceback's frames but not the exception's message,
which may quote the values of the request.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from ketapain.config import Settings

__all__ = ["ACCESS_LOG", "ERROR_LOG", "SecurityMiddleware", "log_unhandled", "route_of"]

ACCESS_LOG: Final = logging.getLogger("ketapain.access")
ERROR_LOG: Final = logging.getLogger("ketapain.error")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI as FastAPI serves it: its bundle and stylesheet from jsDelivr, an inline
# bootstrap script and the FastAPI favicon.
_DOCS_CSP: Final = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://fastapi.tiangolo.com; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_COMMON: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
# OWASP HSTS Cheat Sheet: max-age of one year (31,536,000 s).
_HSTS: Final = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


def route_of(scope: Scope, fixed: frozenset[str] = frozenset()) -> str:
    """The template of the route that answered (``/api/v1/patients/{patient_id}``), a
    route without parameters from ``fixed`` (the docs), or a placeholder; never a path
    with values in it as sent."""
    # FastAPI keeps the template with the router's prefix here; scope["route"] is the
    # route as its router declares it (without the prefix).
    context = scope.get("fastapi", {}).get("effective_route_context")
    path = getattr(context, "path_format", None) or getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    sent = scope.get("path", "")
    if sent in fixed:
        return str(sent)
    if sent.startswith("/static/"):
        return "/static/{file}"
    return "(no route)"


class SecurityMiddleware:
    """Adds the security headers to every response and writes the access log."""

    def __init__(
        self, app: ASGIApp, *, settings: Settings, fixed_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.hsts = settings.secure_cookies
        # Paths of routes without parameters that FastAPI adds itself (the docs).
        self.fixed = fixed_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope.get("path", "")
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                if self.hsts:  # behind TLS every cookie is sent over HTTPS only
                    headers = [_secure_cookie(name, value) for name, value in headers]
                present = {name.lower() for name, _ in headers}
                headers += [h for h in self._headers(path) if h[0] not in present]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            # Caught here, not re-raised: the server's own log would print the message.
            reference = log_unhandled(scope, exc, self.fixed)
            if status == 0:
                await _internal_error(path, reference, send_with_headers)
        finally:
            ACCESS_LOG.info(
                "%s %s %d %.1f ms",
                scope.get("method", "?"),
                route_of(scope, self.fixed),
                status,
                (time.perf_counter() - started) * 1000,
            )

    def _headers(self, path: str) -> list[tuple[bytes, bytes]]:
        docs = path == "/docs" or path.startswith("/docs/")
        headers = [
            (b"content-security-policy", (_DOCS_CSP if docs else _CSP).encode()),
            *_COMMON,
        ]
        if not path.startswith("/static/"):
            headers.append((b"cache-control", b"no-store"))
        if self.hsts:
            headers.append(_HSTS)
        return headers


def _secure_cookie(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    if name.lower() == b"set-cookie" and b"; secure" not in value.lower():
        return name, value + b"; Secure"
    return name, value


async def _internal_error(path: str, reference: str, send: Send) -> None:
    message = f"the request failed unexpectedly (reference {reference}); ask the administrator"
    if path.startswith("/fhir"):
        issue = {"severity": "fatal", "code": "exception", "diagnostics": message}
        body = json.dumps({"resourceType": "OperationOutcome", "issue": [issue]})
        content_type = b"application/fhir+json"
    elif path.startswith("/api/"):
        body = json.dumps({"error": "internal_error", "message": message, "field": None})
        content_type = b"application/json"
    else:
        body = f"<!doctype html><title>Error</title><h1>Something is wrong</h1><p>{message}</p>"
        content_type = b"text/html; charset=utf-8"
    await _send(send, 500, content_type, body.encode())


async def _send(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def log_unhandled(scope: Scope, exc: BaseException, fixed: frozenset[str] = frozenset()) -> str:
    """Log an unhandled error without its message; return the reference shown to the user."""
    reference = uuid.uuid4().hex[:12]
    frames = "".join(traceback.format_tb(exc.__traceback__))
    ERROR_LOG.error(
        "unhandled %s on %s %s (reference %s)\n%s",
        type(exc).__name__,
        scope.get("method", "?"),
        route_of(scope, fixed),
        reference,
        frames,
    )
    return reference
