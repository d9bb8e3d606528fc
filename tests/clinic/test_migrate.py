"""Migrations: the database is at the newest revision and matches the models exactly."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text

import ketapain.clinic  # registers every table on Base.metadata
from ketapain.clinic import migrate
from ketapain.clinic.accounts import User
from ketapain.clinic.db import Base, Database


def _downgrade(db: Database, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrate.MIGRATIONS_DIR))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _diff(db: Database) -> list[object]:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def _append_only_tables() -> set[str]:
    return {
        m.class_.__tablename__
        for m in Base.registry.mappers
        if getattr(m.class_, "__append_only__", False)
    }


def _tables_with_triggers(db: Database) -> dict[str, int]:
    """Table name -> number of UPDATE/DELETE guards the database has on it."""
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "sqlite":
            rows = conn.execute(
                text(
                    "SELECT tbl_name, count(*) FROM sqlite_master WHERE type = 'trigger' GROUP BY 1"
                )
            )
        else:
            rows = conn.execute(
                text(
                    "SELECT event_object_table, count(*) FROM information_schema.triggers "
                    "WHERE event_manipulation IN ('UPDATE', 'DELETE') GROUP BY 1"
                )
            )
        return {name: int(n) for name, n in rows}


def test_package_registers_tables() -> None:
    """Importing ketapain.clinic registers the users table and the clinical tables."""
    assert ketapain.clinic.Base is Base
    assert {"users", "audit_entries", "patients"} <= set(Base.metadata.tables)


def test_database_is_at_head(db: Database) -> None:
    """A migrated database is at the newest shipped revision, 0004."""
    assert migrate.head() == "0004"
    assert migrate.current(db) == migrate.head()


def test_models_match_migrations(db: Database) -> None:
    """Alembic's autogenerate comparison finds no difference between models and database."""
    assert _diff(db) == []


def test_every_append_only_table_has_guards(db: Database) -> None:
    """Exactly the append-only models' tables carry the UPDATE/DELETE refusing triggers."""
    triggers = _tables_with_triggers(db)
    assert set(triggers) == _append_only_tables()
    assert set(triggers.values()) == {2}
    assert "users" not in triggers
    assert "auth_tokens" not in triggers


def test_upgrade_is_idempotent(db: Database) -> None:
    """Upgrading a database at head changes nothing and keeps the data."""
    with db.session() as session:
        users = session.scalar(select(func.count()).select_from(User))
    assert migrate.upgrade(db) == "0004"
    assert migrate.upgrade(db) == "0004"
    assert migrate.current(db) == "0004"
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(User)) == users
    assert _diff(db) == []


def test_fresh_sqlite_upgrade(tmp_path: Path) -> None:
    """An empty SQLite file has no revision before upgrade and 0004 after."""
    db = Database.connect(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        assert migrate.current(db) is None
        assert migrate.upgrade(db) == "0004"
        assert migrate.current(db) == "0004"
        assert _diff(db) == []
    finally:
        db.dispose()


def test_sqlite_downgrade_then_upgrade(tmp_path: Path) -> None:
    """Downgrading an SQLite database to base drops everything; upgrading rebuilds it."""
    db = Database.connect(f"sqlite:///{tmp_path / 'roundtrip.db'}")
    try:
        migrate.upgrade(db)
        _downgrade(db, "base")
        assert migrate.current(db) is None
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        assert _tables_with_triggers(db) == {}
        assert migrate.upgrade(db) == "0004"
        assert _diff(db) == []
        assert set(_tables_with_triggers(db)) == _append_only_tables()
    finally:
        db.dispose()


def test_downgrade_then_upgrade_on_both_engines(db: Database) -> None:
    """The migration's downgrade and upgrade run again cleanly on SQLite and PostgreSQL."""
    _downgrade(db, "base")
    assert migrate.current(db) is None
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    assert migrate.upgrade(db) == "0004"
    assert _diff(db) == []
    assert set(_tables_with_triggers(db)) == _append_only_tables()


def test_downgrade_to_0003_keeps_the_decisions_guards(db: Database) -> None:
    """Dropping 0004's decision column keeps the decisions table append-only."""
    _downgrade(db, "0003")
    assert "recommendation" not in {c["name"] for c in inspect(db.engine).get_columns("decisions")}
    triggers = _tables_with_triggers(db)
    assert triggers["decisions"] == 2
    assert "stock_entries" not in triggers
    assert migrate.upgrade(db) == "0004"
    assert _diff(db) == []
