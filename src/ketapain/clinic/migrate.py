"""Database migrations (Alembic), run from Python or ``ketapain db upgrade``.

>>> from ketapain.clinic.db import Database
>>> db = Database.connect("sqlite://")
>>> upgrade(db) == head()
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ketapain.clinic.db import Database

__all__ = ["MIGRATIONS_DIR", "current", "head", "known", "upgrade"]

MIGRATIONS_DIR: Final = Path(__file__).with_name("migrations")


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head() -> str:
    """The newest revision shipped with this version of ketapain."""
    rev = ScriptDirectory.from_config(_config()).get_current_head()
    if rev is None:  # pragma: no cover - the package ships its migrations
        raise RuntimeError("no migrations found")
    return rev


def known(rev: str) -> bool:
    """Whether ``rev`` is a revision shipped with this version (not a newer one)."""
    script = ScriptDirectory.from_config(_config())
    return rev in {r.revision for r in script.walk_revisions()}


def current(db: Database) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> str:
    """Migrate the database to ``revision`` (the newest by default); return where it is."""
    cfg = _config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    rev = current(db)
    return rev or ""


def revision(db: Database, message: str) -> None:  # pragma: no cover - a developer's tool
    """Write a new migration from the difference between the models and ``db``."""
    cfg = _config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)
