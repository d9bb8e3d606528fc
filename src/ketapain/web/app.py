"""The application factory: ``create_app(settings)`` builds the API and the pages for one
database."""

from __future__ import annotations

from fastapi import FastAPI

from ketapain import __version__
from ketapain.clinic.alarms import load_rules
from ketapain.clinic.db import Database
from ketapain.config import Settings
from ketapain.web import errors, pages
from ketapain.web.api import auth, courses, fhir, infusions, patients
from ketapain.web.security import SecurityMiddleware

__all__ = ["API_PREFIX", "create_app"]

API_PREFIX = "/api/v1"


def create_app(
    settings: Settings | None = None, *, db: Database | None = None, demo: bool = False
) -> FastAPI:
    """The ketapain web application: pages at ``/``, the API under ``/api/v1`` (OpenAPI
    docs at ``/docs``). ``demo`` shows the demo logins on the sign-in page."""
    settings = settings or Settings.from_env()
    app = FastAPI(
        title="ketapain",
        version=__version__,
        summary="Ketamine infusion therapy for chronic pain: clinical records API.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db or Database.connect(settings.database_url)
    app.state.rules = load_rules(settings.alarm_thresholds_file)
    app.state.demo = demo
    errors.install(app)
    pages.install(app)
    docs = {app.docs_url, app.openapi_url, app.swagger_ui_oauth2_redirect_url}
    app.add_middleware(
        SecurityMiddleware,
        settings=settings,
        fixed_paths=frozenset(p for p in docs if p),
    )
    for router in (auth.router, patients.router, courses.router, infusions.router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(fhir.router)

    @app.get(f"{API_PREFIX}/health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness: the service answers and reaches its database."""
        with app.state.db.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return {"status": "ok", "version": __version__}

    return app
