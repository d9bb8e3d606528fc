"""The request threads of a server process (``KETAPAIN_SERVER_THREADS``, ``serve --threads``)."""

from __future__ import annotations

import gc

import anyio
import anyio.to_thread
import pytest

from ketapain.clinic.db import Database
from ketapain.config import Settings
from ketapain.errors import InvalidValueError
from ketapain.web.app import SERVING_GC_THRESHOLDS, create_app


@pytest.mark.parametrize("value", ["0", "33", "four"])
def test_server_threads_refuse_bad_values_naming_the_variable(value: str) -> None:
    """A thread count outside 1-32, or not a number, is refused naming the variable."""
    with pytest.raises(InvalidValueError) as err:
        Settings.from_env({"KETAPAIN_SERVER_THREADS": value})
    assert err.value.field == "KETAPAIN_SERVER_THREADS"


def test_server_threads_default_and_set() -> None:
    """Four threads unless set; a set value is kept."""
    assert Settings.from_env({}).server_threads == 4
    assert Settings.from_env({"KETAPAIN_SERVER_THREADS": "2"}).server_threads == 2


def test_the_app_runs_its_routes_on_that_many_threads() -> None:
    """The application's start-up sizes the thread pool of the routes to the setting."""
    settings = Settings(database_url="sqlite://", server_threads=3)
    db = Database.connect(settings.database_url)
    app = create_app(settings, db=db)

    async def started() -> float:
        async with app.router.lifespan_context(app):
            return anyio.to_thread.current_default_thread_limiter().total_tokens

    try:
        assert anyio.run(started) == 3
    finally:
        db.dispose()


def test_a_serving_process_freezes_its_start_up_objects_and_thaws_them_after() -> None:
    """While the application serves, what its start-up left alive is out of the
    collector's walks and the first generation is larger; at shutdown both are undone."""
    settings = Settings(database_url="sqlite://")
    db = Database.connect(settings.database_url)
    app = create_app(settings, db=db)
    before = gc.get_threshold()

    async def serving() -> tuple[int, tuple[int, int, int]]:
        async with app.router.lifespan_context(app):
            return gc.get_freeze_count(), gc.get_threshold()

    try:
        frozen, thresholds = anyio.run(serving)
    finally:
        db.dispose()
    assert frozen > 1000
    assert thresholds == SERVING_GC_THRESHOLDS
    assert (gc.get_freeze_count(), gc.get_threshold()) == (0, before)
