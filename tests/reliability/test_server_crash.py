"""Crash safety of the running server: ``ketapain serve`` killed with SIGKILL mid-write.

The server runs as a process of its own (the ``ketapain`` console script; uvicorn serves
in that very process, whose id is checked against the one uvicorn logs). Set-up goes
through its API: four patients, each with a seed-outpatient course planned by the
physician, the bag of session 1 hung, the checklist complete and the pump started. Then,
round after round, six nurse clients chart vital signs and pump rate changes (within the
plan's maximum) as fast as they can, two of them on the same patients as others; once
every client has had a write acknowledged, the server is killed with SIGKILL after a
random delay, so that the kill lands in the middle of requests, and is started again.

After every restart a direct connection to the database checks that:

- every write the server acknowledged (201 with the row's id), in this round and every
  round before, is there with exactly the values sent (and, for a pump event, the
  sequence number and time the answer gave);
- a write whose answer the crash cut off (the connection broke after the request was
  sent: unknown outcome) is there whole or not at all, and nothing else is there: every
  charted row is an acknowledged write or one of those, at most once;
- nothing is half-written: every row of every table has exactly one audit entry that
  created it, and every such entry names a row that exists; each infusion's pump events
  are numbered 1..n without a gap, in time order, and follow the pump's state machine;
- the audit trail's hash chain verifies (:func:`ketapain.clinic.audit.verify_trail`);
- an SQLite file passes ``PRAGMA integrity_check`` and ``PRAGMA foreign_key_check``;

and through the restarted server that it answers and accepts a write. At the end the
server is stopped, the database checked once more and ``ketapain audit verify`` must
report the chain intact, with as many entries as the check counted.

``KETAPAIN_CRASH_ROUNDS`` sets the number of kills per database (default 5) and
``KETAPAIN_CRASH_SEED`` the seed of the kill delays and the values charted (default 1).
The long run::

    KETAPAIN_CRASH_ROUNDS=50 uv run pytest tests/reliability -rP

prints, per database, the rounds, the writes acknowledged, the writes of unknown outcome
and how many of those were found written.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from sqlalchemy import Table, func, select

import ketapain.clinic  # noqa: F401 - registers every table on Base.metadata
from ketapain.clinic.accounts import TokenKind, User, issue_token
from ketapain.clinic.audit import AuditEntry, verify_trail
from ketapain.clinic.audit_chain import AuditChainHead
from ketapain.clinic.db import Base, Database
from ketapain.clinic.infusions import InfusionEvent, pump_state
from ketapain.clinic.observations import VitalSigns
from ketapain.config import Settings
from ketapain.errors import ConflictError

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals"),
]


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise pytest.UsageError(f"{name} must be a whole number of at least 1; got {raw!r}")
    return int(raw)


API: Final = "/api/v1"
# Kills per database, and the seed of the kill delays and the values charted.
ROUNDS: Final = _env_int("KETAPAIN_CRASH_ROUNDS", 5)
SEED: Final = _env_int("KETAPAIN_CRASH_SEED", 1)
PATIENTS: Final = 4
# More clients than patients: some infusions get rate changes from two nurses at once.
CLIENTS: Final = 6
# The kill comes this long (seconds, uniform) after every client had a write acknowledged.
KILL_DELAY_S: Final = (0.3, 1.5)
# Watchdogs (seconds).
START_TIMEOUT_S: Final = 60.0
REQUEST_TIMEOUT_S: Final = 30.0
FIRST_WRITE_TIMEOUT_S: Final = 30.0
EXIT_TIMEOUT_S: Final = 30.0
CLI_TIMEOUT_S: Final = 300.0
# The share of the clients' writes that are vital signs; the rest are rate changes.
VITALS_SHARE: Final = 0.5
# The tables nobody writes a row of through a service (the chain's head is moved, never
# created by a unit of work); every other table's rows each have their audit entry.
NOT_AUDITED: Final = frozenset({AuditEntry.__tablename__, AuditChainHead.__tablename__})
# The columns a write is recognised by, when its answer was lost.
CONTENT: Final = {
    "vital_signs": (
        "patient_id",
        "infusion_id",
        "measured_utc",
        "sbp_mmhg",
        "dbp_mmhg",
        "hr_per_min",
        "spo2_pct",
        "recorded_by_id",
    ),
    "infusion_events": ("infusion_id", "kind", "rate_mg_per_h", "reason", "recorded_by_id"),
}
TABLES: Final[dict[str, Table]] = {
    "vital_signs": VitalSigns.__table__,  # type: ignore[dict-item]
    "infusion_events": InfusionEvent.__table__,  # type: ignore[dict-item]
}
# What the set-up charts (the web tests' patient, course and bag).
COURSE: Final = {
    "protocol": "seed-outpatient",
    "start_date": "2026-11-09",
    "bag_mg": 250,
    "bag_ml": 250,
}
BAG: Final = {"session_number": 1, "bag_mg": 250, "bag_ml": 250, "lot": "LOT-CRASH"}
CHECKLIST: Final = {
    "consent_confirmed": True,
    "escort_confirmed": True,
    "escort_name": "A. Escort",
    "fasting_confirmed": True,
    "medications_reviewed": True,
    "premedication_given": ["midazolam", "ondansetron"],
}


# The writes


@dataclass(frozen=True, slots=True)
class Write:
    """One write as sent: the table and the column values the row must hold."""

    table: str
    columns: dict[str, Any]

    def content(self) -> tuple[Any, ...]:
        """The values the row is recognised by."""
        return tuple(self.columns[c] for c in CONTENT[self.table])


@dataclass(frozen=True, slots=True)
class Acked:
    """A write the server acknowledged: the row id it gave, and what the row must hold."""

    write: Write
    row_id: uuid.UUID
    # Values the answer gave that the request did not (a pump event's sequence and time).
    answered: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Chair:
    """A patient in the chair: the running infusion and the plan's maximum rate."""

    patient_id: uuid.UUID
    infusion_id: uuid.UUID
    max_rate_mg_per_h: float


def _vitals(chair: Chair, nurse_id: uuid.UUID, rng: random.Random) -> tuple[str, Any, Write]:
    """A set of vital signs near the baseline (no alarm), measured now."""
    measured = datetime.now(UTC)
    values = {
        "sbp_mmhg": round(rng.uniform(110.0, 135.0), 1),
        "dbp_mmhg": round(rng.uniform(65.0, 85.0), 1),
        "hr_per_min": round(rng.uniform(60.0, 95.0), 1),
        "spo2_pct": round(rng.uniform(95.0, 100.0), 1),
    }
    body = {"infusion_id": str(chair.infusion_id), "measured_utc": measured.isoformat(), **values}
    columns = {
        "patient_id": chair.patient_id,
        "infusion_id": chair.infusion_id,
        "measured_utc": measured,
        **values,
        "recorded_by_id": nurse_id,
    }
    return f"{API}/patients/{chair.patient_id}/vitals", body, Write("vital_signs", columns)


def _rate_change(
    chair: Chair, nurse_id: uuid.UUID, rng: random.Random, reason: str
) -> tuple[str, Any, Write]:
    """A rate change between half the plan's maximum and the maximum (a nurse's to make)."""
    rate = math.floor(rng.uniform(0.5, 1.0) * chair.max_rate_mg_per_h * 10) / 10
    body = {"kind": "rate_change", "rate_mg_per_h": rate, "reason": reason}
    columns = {
        "infusion_id": chair.infusion_id,
        "kind": "rate_change",
        "rate_mg_per_h": rate,
        "reason": reason,
        "recorded_by_id": nurse_id,
    }
    return f"{API}/infusions/{chair.infusion_id}/events", body, Write("infusion_events", columns)


def _acked(write: Write, answer: dict[str, Any]) -> Acked:
    """The acknowledgement of ``write`` from the server's answer."""
    if write.table == "infusion_events":
        event = answer["event"]
        answered = {
            "sequence": event["sequence"],
            "time_utc": datetime.fromisoformat(event["time_utc"]),
        }
        return Acked(write, uuid.UUID(event["id"]), answered)
    assert answer["alarms"] == [], answer
    return Acked(write, uuid.UUID(answer["id"]))


# The server process


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """``ketapain serve`` on a free loopback port, its output in a file per start."""

    def __init__(self, command: Path, url: str, env: dict[str, str], log_dir: Path) -> None:
        self.command = command
        self.url = url
        self.env = env
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: Path | None = None
        self.starts = 0
        # Seconds from each start to the first 200 of /health.
        self.start_s: list[float] = []

    def tail(self) -> str:
        """The end of the latest start's output, for failure messages."""
        if self.log is None or not self.log.exists():
            return "(no server output)"
        text = self.log.read_text(errors="replace")
        return f"--- {self.log.name} (end) ---\n{text[-4000:]}"

    def start(self) -> str:
        """Start the server; return its base address once ``/health`` answers 200."""
        assert self.proc is None, "the server is running already"
        began = time.monotonic()
        for _ in range(3):
            port = _free_port()
            self.starts += 1
            self.log = self.log_dir / f"server-{self.starts:03d}.log"
            with self.log.open("wb") as out:
                self.proc = subprocess.Popen(
                    [str(self.command), "serve", "--database-url", self.url, "--port", str(port)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                )
            base = f"http://127.0.0.1:{port}"
            if self._healthy(base):
                self._check_pid(base)
                self.start_s.append(time.monotonic() - began)
                return base
            code = self.stop_now()
            if "address already in use" not in self.tail().lower():
                pytest.fail(f"the server exited ({code}) before answering\n{self.tail()}")
        pytest.fail(f"no free port in 3 tries\n{self.tail()}")

    def _healthy(self, base: str) -> bool:
        """Wait for ``/health``: True when it answers 200, False if the process exits."""
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if httpx.get(f"{base}{API}/health", timeout=2.0).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop_now()
        pytest.fail(f"/health did not answer within {START_TIMEOUT_S:g} s\n{self.tail()}")

    def _check_pid(self, base: str) -> None:
        """The process that answered is ours, and the one uvicorn serves in (not a wrapper):
        SIGKILL goes to the server itself."""
        assert self.proc is not None and self.log is not None
        deadline = time.monotonic() + 5.0
        while f"Uvicorn running on {base}" not in self.tail():
            assert time.monotonic() < deadline, f"uvicorn did not log {base}\n{self.tail()}"
            time.sleep(0.05)
        found = re.search(r"Started server process \[(\d+)\]", self.tail())
        assert found is not None and int(found.group(1)) == self.proc.pid, self.tail()

    def kill(self) -> None:
        """SIGKILL the server, which must have been running until then."""
        assert self.proc is not None, "no server to kill"
        alive = self.proc.poll() is None
        code = self.stop_now()
        assert alive, f"the server had died before the kill ({code})\n{self.tail()}"
        assert code == -signal.SIGKILL, self.tail()

    def stop(self) -> None:
        """Stop the server as an operator would (SIGTERM) and wait for a clean exit."""
        assert self.proc is not None, "no server to stop"
        self.proc.terminate()
        try:
            code = self.proc.wait(timeout=EXIT_TIMEOUT_S)
        finally:
            self.stop_now()
        # uvicorn shuts down, then ends itself with the signal it caught (0 before 0.29).
        assert code in (0, -signal.SIGTERM), f"exit {code} on SIGTERM\n{self.tail()}"
        assert "Application shutdown complete" in self.tail(), self.tail()

    def stop_now(self) -> int | None:
        """SIGKILL the server if it still runs and reap it; its exit code (None: none ran)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=EXIT_TIMEOUT_S)


# Set-up through the API


def _post(http: httpx.Client, path: str, body: dict[str, Any], token: str) -> dict[str, Any]:
    resp = http.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 201, f"POST {path}: {resp.status_code} {resp.text}"
    answer: dict[str, Any] = resp.json()
    return answer


def _set_up(
    base: str, tokens: dict[str, str], nurse_id: uuid.UUID, acked: list[Acked]
) -> list[Chair]:
    """Register the patients, plan their courses, hang the bags, complete the checklists
    and start the pumps; the baselines and starts charted are added to ``acked``."""
    chairs = []
    earlier = datetime.now(UTC) - timedelta(hours=2)
    with httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S) as http:
        for i in range(PATIENTS):
            patient = _post(
                http,
                f"{API}/patients",
                {
                    "mrn": f"CRASH-{i + 1:04d}",
                    "family_name": "Crash",
                    "given_name": f"Patient {i + 1}",
                    "birth_date": "1980-05-01",
                    "sex": "female",
                },
                tokens["front_desk"],
            )
            pid = patient["id"]
            _post(
                http,
                f"{API}/patients/{pid}/measurements",
                {"weight_kg": 68.0, "height_cm": 165.0},
                tokens["nurse"],
            )
            _post(http, f"{API}/patients/{pid}/diagnoses", {"code": "G90.511"}, tokens["physician"])
            course = _post(http, f"{API}/patients/{pid}/courses", COURSE, tokens["physician"])
            bag = _post(http, f"{API}/courses/{course['id']}/infusions", BAG, tokens["nurse"])
            chair = Chair(uuid.UUID(pid), uuid.UUID(bag["id"]), bag["plan_max_rate_mg_per_h"])
            _post(
                http, f"{API}/infusions/{chair.infusion_id}/checklist", CHECKLIST, tokens["nurse"]
            )
            baseline = {"sbp_mmhg": 120.0, "dbp_mmhg": 75.0, "hr_per_min": 72.0, "spo2_pct": 98.0}
            before = {"infusion_id": str(chair.infusion_id), "measured_utc": earlier.isoformat()}
            vitals = _post(
                http, f"{API}/patients/{pid}/vitals", {**before, **baseline}, tokens["nurse"]
            )
            columns = {
                "patient_id": chair.patient_id,
                "infusion_id": chair.infusion_id,
                "measured_utc": earlier,
                **baseline,
                "recorded_by_id": nurse_id,
            }
            acked.append(_acked(Write("vital_signs", columns), vitals))
            nrs = {**before, "instrument": "pain_nrs", "value": 7.0}
            _post(http, f"{API}/patients/{pid}/scores", nrs, tokens["nurse"])
            rate = bag["program"][0]["rate_mg_per_h"]
            start = {"kind": "start", "rate_mg_per_h": rate, "time_utc": earlier.isoformat()}
            started = _post(
                http, f"{API}/infusions/{chair.infusion_id}/events", start, tokens["nurse"]
            )
            columns = {
                "infusion_id": chair.infusion_id,
                "kind": "start",
                "rate_mg_per_h": rate,
                "reason": None,
                "recorded_by_id": nurse_id,
            }
            acked.append(_acked(Write("infusion_events", columns), started))
            chairs.append(chair)
    return chairs


# The clients


@dataclass
class ClientLog:
    """What one client saw: writes acknowledged, writes of unknown outcome, refusals."""

    acked: list[Acked] = field(default_factory=list)
    # Sent, then the connection broke before an answer: written or not, nobody knows.
    unknown: list[Write] = field(default_factory=list)
    # Not sent: the connection was refused (the server was down).
    not_sent: int = 0
    # Anything that should not happen while the server runs (an error status, a timeout).
    errors: list[str] = field(default_factory=list)
    # Set at the first write acknowledged, or when the client gives up.
    going: threading.Event = field(default_factory=threading.Event)


def _chart(
    base: str,
    token: str,
    chair: Chair,
    nurse_id: uuid.UUID,
    name: str,
    seed: int,
    stop: threading.Event,
    killed: threading.Event,
    log: ClientLog,
) -> None:
    """Chart vital signs and rate changes as fast as the server answers, until ``stop``
    or until the connection fails; every outcome goes to ``log``, nothing is raised."""
    rng = random.Random(seed)
    n = 0
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=REQUEST_TIMEOUT_S) as http:
            while not stop.is_set():
                n += 1
                if rng.random() < VITALS_SHARE:
                    path, body, write = _vitals(chair, nurse_id, rng)
                else:
                    path, body, write = _rate_change(chair, nurse_id, rng, f"{name} write {n}")
                try:
                    resp = http.post(path, json=body)
                except (httpx.ConnectError, httpx.ConnectTimeout) as err:
                    if killed.is_set():
                        log.not_sent += 1
                    else:
                        log.errors.append(f"{name}: POST {path} not sent: {err!r}")
                    return
                except httpx.TransportError as err:
                    if killed.is_set():
                        log.unknown.append(write)
                    else:
                        log.errors.append(f"{name}: POST {path} failed: {err!r}")
                    return
                if resp.status_code != 201:
                    log.errors.append(f"{name}: POST {path}: {resp.status_code} {resp.text[:500]}")
                    return
                log.acked.append(_acked(write, resp.json()))
                log.going.set()
    except Exception:
        log.errors.append(f"{name}: {traceback.format_exc()}")
    finally:
        log.going.set()


@dataclass
class Tally:
    """The numbers of one database's run, for the summary."""

    rounds: int = 0
    # Writes of the charting clients: acknowledged, of unknown outcome, refused connections.
    acknowledged: int = 0
    unknown: int = 0
    not_sent: int = 0
    # Of the unknown ones, those found written after the restart.
    unknown_found: int = 0
    audit_entries: int = 0
    acked: list[Acked] = field(default_factory=list)
    pending: list[Write] = field(default_factory=list)


def _crash_round(
    server: Server,
    base: str,
    chairs: list[Chair],
    tokens: list[str],
    nurse_id: uuid.UUID,
    rng: random.Random,
    number: int,
    tally: Tally,
) -> float:
    """Let the clients chart, SIGKILL the server mid-stream; return the kill delay (s)."""
    stop, killed = threading.Event(), threading.Event()
    logs = [ClientLog() for _ in range(CLIENTS)]
    threads = [
        threading.Thread(
            target=_chart,
            args=(
                base,
                tokens[i],
                chairs[i % len(chairs)],
                nurse_id,
                f"round {number} client {i + 1}",
                rng.randrange(2**32),
                stop,
                killed,
                logs[i],
            ),
            name=f"crash-client-{i + 1}",
            daemon=True,
        )
        for i in range(CLIENTS)
    ]
    delay = rng.uniform(*KILL_DELAY_S)
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + FIRST_WRITE_TIMEOUT_S
        for log in logs:
            log.going.wait(max(0.0, deadline - time.monotonic()))
        early = [log.errors for log in logs if log.errors]
        assert not early, f"round {number}: {early}\n{server.tail()}"
        time.sleep(delay)
        killed.set()
        server.kill()
    finally:
        killed.set()
        stop.set()
        server.stop_now()
        for thread in threads:
            thread.join(REQUEST_TIMEOUT_S + 5.0)
    assert not [t.name for t in threads if t.is_alive()], "a client hangs"
    errors = [e for log in logs for e in log.errors]
    assert not errors, f"round {number}: {errors}\n{server.tail()}"
    idle = [i + 1 for i, log in enumerate(logs) if not log.acked]
    assert not idle, f"round {number}: no write of client(s) {idle} acknowledged\n{server.tail()}"
    for log in logs:
        tally.acked += log.acked
        tally.pending += log.unknown
        tally.acknowledged += len(log.acked)
        tally.unknown += len(log.unknown)
        tally.not_sent += log.not_sent
    tally.rounds += 1
    return delay


def _probe(base: str, token: str, chair: Chair, nurse_id: uuid.UUID, tally: Tally) -> None:
    """The restarted server answers and accepts a write (checked after the next kill)."""
    path, body, write = _vitals(chair, nurse_id, random.Random(SEED))
    with httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S) as http:
        resp = http.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 201, f"POST {path} after a restart: {resp.text}"
        tally.acked.append(_acked(write, resp.json()))
        view = http.get(
            f"{API}/infusions/{chair.infusion_id}", headers={"Authorization": f"Bearer {token}"}
        )
        assert view.status_code == 200, view.text
        assert view.json()["state"] == "running"


# The checks


def _row_problems(session: Any, tally: Tally) -> list[str]:
    """Acknowledged writes missing or different; rows that no write sent (or sent twice)."""
    problems: list[str] = []
    rows = {
        name: {r["id"]: r for r in session.execute(select(table)).mappings()}
        for name, table in TABLES.items()
    }
    acked_ids: set[uuid.UUID] = set()
    for ack in tally.acked:
        acked_ids.add(ack.row_id)
        row = rows[ack.write.table].get(ack.row_id)
        if row is None:
            problems.append(f"acknowledged {ack.write.table} row {ack.row_id} is missing")
            continue
        for column, value in {**ack.write.columns, **ack.answered}.items():
            if row[column] != value:
                problems.append(
                    f"{ack.write.table} row {ack.row_id}: {column} is {row[column]!r}, "
                    f"{value!r} was acknowledged"
                )
    pending = Counter((w.table, w.content()) for w in tally.pending)
    found = 0
    for name, table_rows in rows.items():
        for row_id, row in table_rows.items():
            if row_id in acked_ids:
                continue
            key = (name, tuple(row[c] for c in CONTENT[name]))
            if pending[key] > 0:
                pending[key] -= 1
                found += 1
            else:
                problems.append(f"{name} row {row_id} was never sent (or sent once, found twice)")
    tally.unknown_found = found
    return problems


def _audit_problems(session: Any) -> list[str]:
    """Rows without exactly one audit entry that created them; entries naming no row."""
    rows: set[tuple[str, str]] = set()
    for table in Base.metadata.sorted_tables:
        if table.name in NOT_AUDITED:
            continue
        keys = list(table.primary_key.columns)
        for key in session.execute(select(*keys)):
            rows.add((table.name, ",".join(str(v) for v in key)))
    created = Counter(
        (entity, entity_id)
        for entity, entity_id in session.execute(
            select(AuditEntry.entity, AuditEntry.entity_id).where(
                AuditEntry.action.in_(("create", "correct"))
            )
        )
    )
    problems = [
        f"{table} row {key} has {created[(table, key)]} audit entries that created it"
        for table, key in sorted(rows)
        if created[(table, key)] != 1
    ]
    problems += [
        f"audit entry creating {table} row {key}, which does not exist"
        for table, key in sorted(created)
        if (table, key) not in rows
    ]
    return problems


def _event_problems(session: Any) -> list[str]:
    """Pump events not numbered 1..n per infusion, out of time order, or not a valid run."""
    events: dict[uuid.UUID, list[Any]] = defaultdict(list)
    query = select(
        InfusionEvent.infusion_id,
        InfusionEvent.sequence,
        InfusionEvent.kind,
        InfusionEvent.time_utc,
    ).order_by(InfusionEvent.infusion_id, InfusionEvent.sequence)
    for row in session.execute(query):
        events[row.infusion_id].append(row)
    problems = []
    for infusion_id, rows in events.items():
        numbers = [r.sequence for r in rows]
        if numbers != list(range(1, len(rows) + 1)):
            problems.append(f"infusion {infusion_id}: events numbered {numbers[:20]}...")
        times = [r.time_utc for r in rows]
        if times != sorted(times):
            problems.append(f"infusion {infusion_id}: events out of time order")
        try:
            pump_state(r.kind for r in rows)
        except ConflictError as err:
            problems.append(f"infusion {infusion_id}: {err}")
    return problems


def _check_database(url: str, tally: Tally, when: str) -> None:
    """Every check of the database, through a connection of this process's own."""
    db = Database.connect(url)
    try:
        if db.engine.dialect.name == "sqlite":
            with db.engine.connect() as conn:
                integrity = conn.exec_driver_sql("PRAGMA integrity_check").scalars().all()
                assert integrity == ["ok"], f"{when}: {integrity}"
                keys = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                assert keys == [], f"{when}: {keys}"
        with db.session() as session:
            problems = _row_problems(session, tally)
            problems += _audit_problems(session)
            problems += _event_problems(session)
            assert not problems, f"{when}: {len(problems)} problems: {problems[:20]}"
            entries = session.scalar(select(func.count()).select_from(AuditEntry))
        # In a session of its own: verify_trail begins its own (snapshot) transaction.
        with db.session() as session:
            trail = verify_trail(session)
        assert trail.intact, f"{when}: the audit chain is broken: {trail.problems[:10]}"
        assert trail.entries == entries, f"{when}: {trail.entries} chained of {entries}"
        tally.audit_entries = trail.entries
    finally:
        db.dispose()


def _cli_verify(command: Path, url: str, env: dict[str, str], entries: int) -> None:
    """``ketapain audit verify --format json``: exit 0, the chain intact, every entry."""
    done = subprocess.run(
        [str(command), "audit", "verify", "--database-url", url, "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, (
        f"exit {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    )
    report = json.loads(done.stdout)
    assert report["intact"] is True, report
    assert report["entries"] == entries, report


# The test


def test_sigkill_mid_request_loses_no_acknowledged_write(
    db: Database,
    staff_users: dict[str, User],
    server_env: dict[str, str],
    ketapain_command: Path,
    tmp_path: Path,
    record_property: Any,
) -> None:
    """Kill the server with SIGKILL in the middle of concurrent charting, ROUNDS times:
    acknowledged writes survive with their values, nothing is half-written or invented,
    the audit chain holds, and the restarted server works (see the module's docstring)."""
    began = time.monotonic()
    url = db.engine.url.render_as_string(hide_password=False)
    nurse = staff_users["nurse"]
    settings = Settings()
    roles = ("front_desk", "physician", "nurse")
    tokens = {r: issue_token(db, settings, staff_users[r], kind=TokenKind.API) for r in roles}
    clients = [issue_token(db, settings, nurse, kind=TokenKind.API) for _ in range(CLIENTS)]
    db.dispose()
    rng = random.Random(SEED)
    tally = Tally()
    server = Server(ketapain_command, url, server_env, tmp_path)
    delays: list[float] = []
    try:
        base = server.start()
        chairs = _set_up(base, tokens, nurse.id, tally.acked)
        for number in range(1, ROUNDS + 1):
            delays.append(_crash_round(server, base, chairs, clients, nurse.id, rng, number, tally))
            base = server.start()
            _check_database(url, tally, f"after kill {number}")
            _probe(base, tokens["nurse"], chairs[number % len(chairs)], nurse.id, tally)
            print(
                f"kill {number} after {delays[-1]:.2f} s, restart in {server.start_s[-1]:.1f} s: "
                f"{tally.acknowledged} acknowledged, "
                f"{tally.unknown} unknown ({tally.unknown_found} found written)"
            )
        server.stop()
        _check_database(url, tally, "after the last restart")
    finally:
        server.stop_now()
    _cli_verify(ketapain_command, url, server_env, tally.audit_entries)
    summary = {
        "database": db.engine.dialect.name,
        "rounds": tally.rounds,
        "acknowledged": tally.acknowledged,
        "unknown_outcome": tally.unknown,
        "unknown_found_written": tally.unknown_found,
        "refused_connections": tally.not_sent,
        "all_acknowledged_found": True,
        "found_written": tally.acknowledged + tally.unknown_found,
        "audit_entries": tally.audit_entries,
        "server_start_s": round(sum(server.start_s) / len(server.start_s), 1),
        "seconds": round(time.monotonic() - began, 1),
    }
    record_property("crash_summary", summary)
    print(summary)
