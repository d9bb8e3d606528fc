"""A real crash: a writer process is killed with SIGKILL in the middle of its writes.

What was committed before the kill must be there afterwards, each row with exactly one
audit entry (the row and its entry commit together or not at all), and an SQLite file
must pass its integrity check. Runs on SQLite and, when configured, PostgreSQL.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from datetime import date

from sqlalchemy import func, select

import ketapain.clinic  # noqa: F401 - registers every table on Base.metadata
from ketapain.clinic.accounts import create_user
from ketapain.clinic.audit import SYSTEM, AuditEntry
from ketapain.clinic.db import Database
from ketapain.clinic.patients import BodyMeasurement
from ketapain.clinic.registry import register_patient

# Commits the child must report before it is killed.
COMMITS = 30
# Give up on a child that reports nothing for this long (seconds).
WATCHDOG_S = 120

CHILD = """
import sys, uuid
import ketapain.clinic
from ketapain.clinic._service import add_row
from ketapain.clinic.audit import Actor
from ketapain.clinic.db import Database
from ketapain.clinic.patients import BodyMeasurement
from ketapain.clinic.permissions import Action

url, user_id, username, patient_id = sys.argv[1:5]
db = Database.connect(url)
actor = Actor(user_id=uuid.UUID(user_id), username=username, role="nurse")
committed = 0
while True:
    row = BodyMeasurement(patient_id=uuid.UUID(patient_id), weight_kg=40.0 + committed % 100)
    add_row(db, actor, Action.CHART, row)
    committed += 1
    print(committed, flush=True)
"""


def _kill_after_commits(url: str, user_id: uuid.UUID, patient_id: uuid.UUID) -> int:
    """Run the writer, SIGKILL it after COMMITS commits; return the last count it printed."""
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(user_id), "crash.nurse", str(patient_id)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        watchdog = threading.Timer(WATCHDOG_S, child.kill)
        watchdog.start()
        try:
            assert child.stdout is not None
            assert child.stderr is not None
            reported = 0
            killed = False
            # Read to the end: lines still in the pipe when the signal lands were committed.
            for line in child.stdout:
                reported = int(line)
                if reported >= COMMITS and not killed:
                    child.send_signal(signal.SIGKILL)
                    killed = True
            err = child.stderr.read()
            child.wait()
        finally:
            watchdog.cancel()
    assert killed, f"the writer stopped after {reported} commits:\n{err}"
    assert child.returncode == -signal.SIGKILL
    return reported


def test_sigkill_mid_write_loses_nothing_committed(db: Database) -> None:
    """After SIGKILL mid-write: committed rows survive, each with exactly one audit entry."""
    url = db.engine.url.render_as_string(hide_password=False)
    user = create_user(
        db, SYSTEM, username="crash.nurse", full_name="Crash Nurse", role="nurse",
        password="crash-password",
    )  # fmt: skip
    patient = register_patient(
        db, user.actor(), mrn="CRASH-1", family_name="Crash", given_name="Test",
        birth_date=date(1975, 6, 1), sex="male",
    )  # fmt: skip
    db.dispose()

    reported = _kill_after_commits(url, user.id, patient.id)

    reopened = Database.connect(url)
    try:
        with reopened.engine.connect() as conn:
            if reopened.engine.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalars().all() == ["ok"]
                assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        with reopened.session() as session:
            rows = {str(i) for i in session.scalars(select(BodyMeasurement.id))}
            entries = session.scalars(
                select(AuditEntry).where(AuditEntry.entity == "body_measurements")
            ).all()
            other = session.scalar(
                select(func.count())
                .select_from(BodyMeasurement)
                .where(BodyMeasurement.patient_id != patient.id)
            )
        # At most one commit can have landed between the child's last print and the kill.
        assert reported <= len(rows) <= reported + 1
        assert other == 0
        audited = Counter(e.after["id"] for e in entries if e.after is not None)
        assert len(entries) == len(rows)
        assert set(audited) == rows
        assert set(audited.values()) == {1}
        assert {e.action for e in entries} == {"create"}
        assert {e.actor_username for e in entries} == {"crash.nurse"}
    finally:
        reopened.dispose()
