"""Bulk inserts for the synthetic registry: SQLAlchemy Core, with a fast path on SQLite.

Rows come as dicts of every column, ids as 32 hex digits. :meth:`Writer.prepare` needs no
database (a worker process may run it); :meth:`Writer.write` inserts in the caller's
transaction. Elsewhere than SQLite it is ``session.execute(insert(table), rows)`` with the
ids turned into UUIDs. On SQLite the values SQLAlchemy's bind processors would write
(aware UTC time to SQLite's text, JSON to text) are made a column at a time and handed to
the driver's ``executemany``: SQLAlchemy converts each value of each row on its own,
which is most of the time of a bulk load. The test suite checks that both paths write the
same rows.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Double, Integer, String, Table, insert
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine, Uuid

from ketapain.clinic._synthetic_rows import ORDER, Tables
from ketapain.clinic.db import Base, UTCDateTime

__all__ = ["Prepared", "Writer"]

# Rows ready to insert, by table in insertion order: tuples (SQLite) or dicts.
Prepared = list[tuple[str, list[Any]]]
_Statement = tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]], list[tuple[int, Any]]]


def _utc_text(value: datetime | None) -> str | None:
    # UTCDateTime on SQLite: the naive UTC time as SQLite's DATETIME text, microseconds too.
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:-6]  # without "+00:00"


def _date_text(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _json_text(value: Any) -> str:
    # JSON columns keep None as JSON null, as the ORM writes it.
    return "null" if value is None else json.dumps(value)


def _uuid(value: str | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(hex=value)


def _sqlite_converter(column_type: TypeEngine[Any]) -> Callable[[Any], Any] | None:
    """What SQLAlchemy's bind processors do to a value for SQLite, in one step."""
    if isinstance(column_type, UTCDateTime):
        return _utc_text
    if isinstance(column_type, JSON):
        return _json_text
    if isinstance(column_type, Date):
        return _date_text
    # Ids are made as the hex text SQLite stores; sqlite3 stores the rest as they are.
    if isinstance(column_type, Uuid | String | Integer | Double | Boolean):
        return None
    raise TypeError(f"no SQLite fast path for {column_type!r}")


class Writer:
    """Prepares and inserts batches of synthetic rows (see the module docstring)."""

    def __init__(self, dialect: str, *, fast: bool = True) -> None:
        self.fast = fast and dialect == "sqlite"
        self._statements: dict[str, _Statement] = {}

    def _statement(self, table: Table) -> _Statement:
        """The SQLite INSERT, the values in its order, and the columns to convert."""
        statement = self._statements.get(table.name)
        if statement is None:
            compiled = insert(table).compile(dialect=sqlite.dialect())
            names = list(compiled.positiontup or ())
            converters = [(i, _sqlite_converter(table.c[n].type)) for i, n in enumerate(names)]
            statement = (str(compiled), itemgetter(*names), [(i, f) for i, f in converters if f])
            self._statements[table.name] = statement
        return statement

    def prepare(self, tables: Tables) -> Prepared:
        """The rows ready for :meth:`write`, parents first (tables without rows left out)."""
        out: Prepared = []
        for model in ORDER:
            batch = tables[model.__tablename__]
            if batch:
                table = Base.metadata.tables[model.__tablename__]
                out.append((table.name, self._prepare(table, batch)))
        return out

    def _prepare(self, table: Table, batch: list[dict[str, Any]]) -> list[Any]:
        if not self.fast:
            ids = [c.name for c in table.columns if isinstance(c.type, Uuid)]
            return [{**row, **{k: _uuid(row[k]) for k in ids}} for row in batch]
        _, values, converters = self._statement(table)
        tuples: list[tuple[Any, ...]] = list(map(values, batch))
        if not converters:
            return tuples
        columns: list[Any] = list(zip(*tuples, strict=True))
        # A time recorded is often the time measured too: convert each time once.
        times = [i for i, f in converters if f is _utc_text]
        text = {t: _utc_text(t) for t in set().union(*(columns[i] for i in times))}
        for i, convert in converters:
            if convert is _utc_text:
                columns[i] = list(map(text.__getitem__, columns[i]))
            else:
                columns[i] = list(map(convert, columns[i]))
        return list(zip(*columns, strict=True))

    def write(self, session: Session, prepared: Prepared) -> dict[str, int]:
        """Insert prepared rows in the session's transaction; rows written per table."""
        for name, rows in prepared:
            table = Base.metadata.tables[name]
            if self.fast:
                session.connection().exec_driver_sql(self._statement(table)[0], rows)
            else:
                session.execute(insert(table), rows)
        return {name: len(rows) for name, rows in prepared}
