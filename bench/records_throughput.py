"""Cost of the safety of the records: audited, checked, append-only charting writes.

Charts vital signs the way a nurse does (one transaction per set: the row, its check, its
alarms and its audit entries) and compares with a baseline in the same process: the same
rows inserted by plain SQLAlchemy Core, one transaction each, no audit, no check, no
alarms. Prints writes per second and the ratio, on SQLite (a file, WAL, synchronous=FULL)
and on PostgreSQL when ``KETAPAIN_BENCH_POSTGRESQL_URL`` names a server.

    uv run python bench/records_throughput.py [--writes 300]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

from rich.console import Console
from sqlalchemy import insert, text

from _common import show
from ketapain.clinic import migrate
from ketapain.clinic.accounts import create_user
from ketapain.clinic.alarms import DEFAULT_RULES
from ketapain.clinic.audit import SYSTEM
from ketapain.clinic.charting import record_vitals
from ketapain.clinic.db import Database, utc_now
from ketapain.clinic.observations import VitalSigns
from ketapain.clinic.registry import register_patient


def _setup(url: str) -> tuple[Database, object, uuid.UUID]:
    db = Database.connect(url)
    migrate.upgrade(db)
    nurse = create_user(
        db,
        SYSTEM,
        username=f"n{uuid.uuid4().hex[:6]}",
        full_name="N",
        role="nurse",
        password="bench-password",
    ).actor()
    p = register_patient(
        db,
        nurse,
        mrn=uuid.uuid4().hex[:10],
        family_name="B",
        given_name="B",
        birth_date=date(1980, 1, 1),
        sex="female",
    )
    return db, nurse, p.id


def _run(url: str, writes: int) -> tuple[float, float]:
    db, nurse, pid = _setup(url)
    values = {"sbp_mmhg": 124.0, "dbp_mmhg": 78.0, "hr_per_min": 72.0, "spo2_pct": 98.0}
    t0 = time.perf_counter()
    for _ in range(writes):
        with db.engine.begin() as conn:
            conn.execute(
                insert(VitalSigns),
                [
                    {
                        "id": uuid.uuid4(),
                        "patient_id": pid,
                        "recorded_by_id": nurse.user_id,  # type: ignore[attr-defined]
                        "recorded_utc": utc_now(),
                        "measured_utc": utc_now(),
                        "on_oxygen": False,
                        "entered_in_error": False,
                        **values,
                    }
                ],
            )
    baseline = writes / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(writes):
        record_vitals(db, nurse, DEFAULT_RULES, patient_id=pid, **values)  # type: ignore[arg-type]
    audited = writes / (time.perf_counter() - t0)
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM vital_signs")).scalar() == 2 * writes
    db.dispose()
    return baseline, audited


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=300)
    args = parser.parse_args()
    console = Console()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("SQLite (file, WAL, FULL)", f"sqlite:///{Path(tmp) / 'bench.db'}")]
        pg = os.environ.get("KETAPAIN_BENCH_POSTGRESQL_URL")
        if pg:
            targets.append(("PostgreSQL", pg))
        for name, url in targets:
            base, audited = _run(url, args.writes)
            rows.append([name, f"{base:,.0f}", f"{audited:,.0f}", f"{base / audited:.2f}x"])
    show(
        console,
        f"charting writes per second ({args.writes} each)",
        "database|plain insert (baseline)|audited vitals|cost",
        rows,
        1,
    )


if __name__ == "__main__":
    main()
