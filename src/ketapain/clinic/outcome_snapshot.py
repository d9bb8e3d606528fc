"""A snapshot of the raw outcome rows, kept up to date from the audit log.

Reading a registry of a million sessions takes the database most of a minute; a clinic
changes a few hundred courses a day. The snapshot (a Parquet file with a small JSON
sidecar) keeps the raw rows of every course and the id of the last audit entry it has
seen. Every clinical write is audited with its table and row id, so the entries after
that id name every row written since; :func:`refreshed_raw` maps them to their patients
and reads again only those patients' courses, and the courses with a pump still running
(their dose grows with time). Anything it cannot map (a bulk load, an unknown table), or
more than a quarter of the patients, makes it read everything again.

The snapshot holds record ids and birth dates, as the database does: keep it beside the
database, with the same protection. The de-identified table is made from it on each read.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Final

import polars as pl
from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from ketapain.clinic._outcome_raw import hex_id, raw_table
from ketapain.clinic.audit import AuditEntry
from ketapain.clinic.db import Base

__all__ = ["FULL_REBUILD_SHARE", "IGNORED_ENTITIES", "changed_patients", "refreshed_raw"]

# Above this share of the patients a full read is faster than a scoped one.
FULL_REBUILD_SHARE: Final = 0.25
# Audited tables that no outcome reads (accounts, acknowledgements, the outcome reads).
IGNORED_ENTITIES: Final = frozenset(
    {"users", "auth_tokens", "alarm_acknowledgements", "analysis_table", "audit_entries"}
)
_VERSION: Final = 1


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _patients_of(session: Session, table: Table, ids: list[uuid.UUID]) -> set[str] | None:
    """The patients the rows ``ids`` of ``table`` belong to; None if it cannot tell."""
    cols = table.c
    tables = Base.metadata.tables
    if table.name == "patients":
        query = select(cols.id)
    elif "patient_id" in cols:
        query = select(cols.patient_id)
    elif "course_id" in cols:
        courses = tables["courses"]
        query = select(courses.c.patient_id).join(table, cols.course_id == courses.c.id)
    elif "infusion_id" in cols:
        infusions = tables["infusions"]
        query = select(infusions.c.patient_id).join(table, cols.infusion_id == infusions.c.id)
    else:
        return None
    out: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        out |= {hex_id(v) for v in session.scalars(query.where(cols.id.in_(chunk)))}
    return out


def changed_patients(session: Session, after_id: int) -> tuple[set[str] | None, int]:
    """Patients whose records changed after audit entry ``after_id`` (None: cannot tell),
    and the last audit entry id."""
    top = int(session.scalar(select(func.max(AuditEntry.id))) or 0)
    by_entity: dict[str, list[uuid.UUID]] = {}
    rows = session.execute(
        select(AuditEntry.entity, AuditEntry.entity_id, AuditEntry.action).where(
            AuditEntry.id > after_id, AuditEntry.id <= top
        )
    )
    for entity, entity_id, action in rows:
        if entity in IGNORED_ENTITIES or action in ("denied", "login", "logout"):
            continue
        if entity not in Base.metadata.tables or entity_id is None:
            return None, top
        try:
            by_entity.setdefault(entity, []).append(uuid.UUID(entity_id))
        except ValueError:
            return None, top
    patients: set[str] = set()
    for entity, ids in by_entity.items():
        found = _patients_of(session, Base.metadata.tables[entity], ids)
        if found is None:
            return None, top
        patients |= found
    return patients, top


def _load(path: Path) -> tuple[pl.DataFrame, int] | None:
    meta_path = _meta_path(path)
    if not (path.exists() and meta_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("version") != _VERSION:
            return None
        return pl.read_parquet(path), int(meta["audit_id"])
    except (OSError, ValueError, KeyError, pl.exceptions.PolarsError):
        return None  # a damaged snapshot is read again from the records


def _save(path: Path, raw: pl.DataFrame, audit_id: int) -> None:
    """Write both files atomically (a reader sees the old or the new snapshot)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    raw.write_parquet(tmp)
    os.replace(tmp, path)
    meta_tmp = tmp.with_suffix(".json")
    meta_tmp.write_text(json.dumps({"version": _VERSION, "audit_id": audit_id}), "utf-8")
    os.replace(meta_tmp, _meta_path(path))


def refreshed_raw(session: Session, path: Path, *, as_of_t: float) -> pl.DataFrame:
    """The raw rows of every course, from the snapshot at ``path`` brought up to date
    (created on first use)."""
    loaded = _load(path)
    if loaded is None:
        top = int(session.scalar(select(func.max(AuditEntry.id))) or 0)
        raw = raw_table(session, as_of_t=as_of_t)
        _save(path, raw, top)
        return raw
    raw, seen = loaded
    patients, top = changed_patients(session, seen)
    if patients is not None:
        running = raw.filter(pl.col("open_sessions").fill_null(0) > 0)
        patients |= set(running.get_column("patient_id").to_list())
    everyone = raw.get_column("patient_id").n_unique()
    if patients is None or len(patients) > FULL_REBUILD_SHARE * max(everyone, 1):
        raw = raw_table(session, as_of_t=as_of_t)
    elif patients:
        part = raw_table(session, as_of_t=as_of_t, patients=patients)
        kept = raw.filter(~pl.col("patient_id").is_in(sorted(patients)))
        raw = pl.concat([kept, part.select(kept.columns)])
    if patients is None or patients or top != seen:
        _save(path, raw, top)
    return raw
