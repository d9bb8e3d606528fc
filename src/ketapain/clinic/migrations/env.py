"""Alembic environment: migrates the database the caller's connection points at."""

from __future__ import annotations

from alembic import context

import ketapain.clinic  # noqa: F401 - registers every table
from ketapain.clinic.db import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - ketapain.clinic.migrate always passes one
    raise RuntimeError("run migrations through ketapain.clinic.migrate")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
