"""The clinic's web pages: server-rendered (Jinja2), one module per area, small scripts
for the live parts. The pages call the same clinic services as the API.

``install(app)`` adds the pages, the static files and the error pages to an app, all but
the chair's pages (``chair_router``), which the app adds among its busiest routes.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ketapain.web.pages._render import SignInRequiredError, sign_in_url
from ketapain.web.pages.admin import router as admin_router
from ketapain.web.pages.auth import router as auth_router
from ketapain.web.pages.chair import router as chair_router
from ketapain.web.pages.courses import router as courses_router
from ketapain.web.pages.patients import router as patients_router
from ketapain.web.pages.planning import router as planning_router
from ketapain.web.pages.portal import router as portal_router
from ketapain.web.pages.reports import router as reports_router
from ketapain.web.pages.stock import router as stock_router

__all__ = ["chair_router", "install"]

STATIC = Path(__file__).resolve().parent.parent / "static"


def install(app: FastAPI) -> None:
    """Add the pages (but the chair's), ``/static`` and the sign-in redirect to ``app``."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in (
        auth_router,
        planning_router,  # before the record's /patients/{id}/{section} forms
        patients_router,
        courses_router,
        admin_router,
        reports_router,
        portal_router,
        stock_router,
    ):
        app.include_router(router, include_in_schema=False)

    @app.exception_handler(SignInRequiredError)
    async def _sign_in(_r: Request, err: SignInRequiredError) -> Response:
        return RedirectResponse(sign_in_url(err.next_url), status_code=303)
