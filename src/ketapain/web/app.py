"""The application factory: ``create_app(settings)`` builds the API and the pages for one
database."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import anyio.to_thread
from fastapi import Depends, FastAPI

from ketapain import __version__
from ketapain.clinic.alarms import load_rules
from ketapain.clinic.db import Database
from ketapain.config import Settings
from ketapain.web import errors, pages
from ketapain.web.api import (
    auth,
    booking,
    courses,
    fhir,
    follow_up,
    infusions,
    patients,
    safety,
    stock,
)
from ketapain.web.api._schemas import ERROR_RESPONSES
from ketapain.web.deps import refuse_nul
from ketapain.web.security import SecurityMiddleware

__all__ = ["API_PREFIX", "DEMO_LOGINS_ENV", "SERVING_GC_THRESHOLDS", "app_from_env", "create_app"]

API_PREFIX = "/api/v1"
# The collector's thresholds while serving: a first generation of 20,000 objects instead of
# 700 (a request allocates thousands: its rows, its page), older ones 50 and 100 times
# rarer (CPython's default: 10). With the objects of the imports and the application
# frozen out of every collection (gc.freeze), the mix of bench/clinic_load.py cost 4.9%
# less CPU per request, alternated in one process on both databases (README, "A busy
# clinic day").
SERVING_GC_THRESHOLDS: Final = (20_000, 50, 100)
# Set to "1" by `ketapain serve --demo --workers N` for its worker processes.
DEMO_LOGINS_ENV: Final = "KETAPAIN_SHOW_DEMO_LOGINS"


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The routes run in a thread pool of settings.server_threads (anyio's default is 40).
    # The work is CPU bound and holds the GIL: a writer that holds the database's write
    # gate competes for the GIL with every other thread of its process, so few threads per
    # process and more processes (`ketapain serve --workers`) serve more. Measured with
    # bench/clinic_load.py (README, "A busy clinic day"). At most POOL_SIZE (a setting's
    # range): every thread finds a connection.
    threads = app.state.settings.server_threads
    anyio.to_thread.current_default_thread_limiter().total_tokens = threads
    # What is alive once the application is built lives as long as the process: the
    # collector no longer walks it on every full collection.
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


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
        lifespan=_lifespan,
        dependencies=[Depends(refuse_nul)],
    )
    app.state.settings = settings
    app.state.db = db or Database.connect(settings.database_url)
    app.state.rules = load_rules(settings.alarm_thresholds_file)
    app.state.demo = demo
    errors.install(app)
    # A request is matched against the routes one by one, in the order they were added
    # (they do not overlap): the chair's, busiest all day (charting, polling), come first.
    app.include_router(infusions.router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
    app.include_router(pages.chair_router, include_in_schema=False)
    app.include_router(patients.router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
    pages.install(app)
    docs = {app.docs_url, app.openapi_url, app.swagger_ui_oauth2_redirect_url}
    app.add_middleware(
        SecurityMiddleware,
        settings=settings,
        fixed_paths=frozenset(p for p in docs if p),
    )
    for router in (
        auth.router,
        courses.router,
        booking.router,
        follow_up.router,
        safety.router,
        stock.router,
    ):
        app.include_router(router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
    app.include_router(fhir.router)

    @app.get(f"{API_PREFIX}/health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness: the service answers and reaches its database."""
        with app.state.db.read_engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return {"status": "ok", "version": __version__}

    return app


def app_from_env() -> FastAPI:
    """The application of each worker process of ``ketapain serve --workers N``: the
    settings from the ``KETAPAIN_*`` environment, as the serving command set it."""
    return create_app(demo=os.environ.get(DEMO_LOGINS_ENV) == "1")
