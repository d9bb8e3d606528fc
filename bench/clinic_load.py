"""Load on the clinic server: a busy clinic's chairs charting and its pages viewed, open loop.

Starts ``ketapain serve --workers N --threads T`` (default 4 processes of 1 thread: on 2
cores they served more than 2 of 4, whose threads contend for each process's interpreter
lock; loopback) on a fresh database, fills it through the
API with ``--chairs`` running infusions (a patient, a planned ``single-day`` course, a bag
hung, the checklist and the baseline charted, the pump started) and then sends requests at
a fixed rate from this process (asyncio, keep-alive HTTP/1.1 connections). The load is
**open loop**: every request has a scheduled send time (Poisson arrivals at the rate, or
evenly spaced with ``--arrivals uniform``) and is sent then whatever the earlier ones are
doing, and its latency is measured **from its scheduled time** to the end of the response
body, so that queueing anywhere (client pool, server, database) counts and a slow server
cannot slow the load down (no coordinated omission).

The workload, per chair and per minute at the clinic's pace (the issue's "40 chairs
charting every 15 s plus page views"), and its share of the requests at every rate:

==========  ====================================================  ==========  ======
kind        request                                               per chair   share
==========  ====================================================  ==========  ======
vitals      POST /api/v1/patients/{id}/vitals (BP, HR, RR, SpO2)  4 / min     37.4%
score       POST /api/v1/patients/{id}/scores (NRS, MOAA/S, RASS) 1 / min      9.3%
rate        POST /api/v1/infusions/{id}/events (rate_change,      0.2 / min    1.9%
            within the plan, by the nurse)
infusion    GET /api/v1/infusions/{id} (the infusion view)        2 / min     18.7%
live        GET /infusions/{id}/live (the chair page's poll)      2 / min     18.7%
chair       GET /infusions/{id} (the chair page)                  1 / min      9.3%
patient     GET /patients/{id} (the record page, physician)       0.25 / min   2.3%
home        GET /home (today's chairs and alarms, nurse)          0.25 / min   2.3%
==========  ====================================================  ==========  ======

That is 10.7 requests per chair per minute: 7.1 requests/s for 40 chairs (the rate
``clinic``). Other rates keep the same mix and the same chairs. API requests carry the
chair's nurse's bearer token (one nurse per 5 chairs); pages carry a web session cookie
(opened by ``POST /api/v1/auth/login``; pages take no bearer token), the nurse's or, for
the record page, the physician's. Values stay inside the alarm thresholds.

Every rate runs on its own copy of the database filled once (an SQLite file copy, or
``CREATE DATABASE ... TEMPLATE`` on PostgreSQL) and its own server, so that the runs do
not depend on their order: one request of each kind (templates compiled), a warm-up of
``--warmup-s`` at the rate (not counted), the baseline, then the workload; after each
phase the bench waits for the server to go idle. At most ``--connections`` requests are in
flight (the others wait in the bench, and that wait counts); a request not answered
``--timeout-s`` after its scheduled time is given up and counted as an error, and 5xx
answers the server logged after that are reported beside the errors.

The baseline, in the same process, at the same rate and with the same arrival process, is
``GET /api/v1/health`` (the cheapest route that still reaches the database: ``SELECT 1``);
the tables give the workload's p50 and p95 as multiples of the baseline's. Before the
rates, each kind of request is also sent alone, one at a time, and the server's CPU time
per request is read from ``/proc`` (Linux): what the mix costs the server per request, and
so how many requests per second one server process can serve on one core. The target of
the issue: p95 under 100 ms at 200 requests/s with zero errors, on 2 cores (the bench's
own share of them is printed too).

PostgreSQL runs when ``KETAPAIN_BENCH_POSTGRESQL_URL`` names a server (a database
``ketapain_load_<pid>`` and one per rate are created on it and dropped at the end). With
``KETAPAIN_BENCH_PROFILE=DIR`` the server runs under cProfile (every thread, timed by the
thread's CPU clock, so that waits for a connection or the write lock do not count) and
writes ``DIR/<database>-<rate>.prof``; the top functions are printed. Profiled runs are
slower: they are for finding the cost, not for the verdict.

    uv run python bench/clinic_load.py [--duration-s 20] [--warmup-s 3] [--rates clinic,200,300]
                                       [--database sqlite|postgresql|both] [--chairs 40]
                                       [--workers 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pstats
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from _common import show
from ketapain.clinic import migrate
from ketapain.clinic.accounts import create_user
from ketapain.clinic.audit import SYSTEM
from ketapain.clinic.db import Database

API: Final = "/api/v1"
PASSWORD: Final = "bench-load-password"
TARGET_RATE: Final = 200.0
TARGET_P95_S: Final = 0.100
CHAIRS_PER_NURSE: Final = 5
SESSION_COOKIE: Final = "ketapain_session"
# The server's access log: "GET /api/v1/infusions/{infusion_id} 200 12.3 ms".
_ACCESS: Final = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE) (\S+) (\d{3}) ([\d.]+) ms")


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of request of the workload."""

    name: str
    per_chair_min: float  # requests per chair per minute at the clinic's pace
    route: str  # the route as the server's access log names it


MIX: Final = (
    Kind("vitals", 4.0, "POST /api/v1/patients/{patient_id}/vitals"),
    Kind("score", 1.0, "POST /api/v1/patients/{patient_id}/scores"),
    Kind("rate", 0.2, "POST /api/v1/infusions/{infusion_id}/events"),
    Kind("infusion", 2.0, "GET /api/v1/infusions/{infusion_id}"),
    Kind("live", 2.0, "GET /infusions/{infusion_id}/live"),
    Kind("chair", 1.0, "GET /infusions/{infusion_id}"),
    Kind("patient", 0.25, "GET /patients/{patient_id}"),
    Kind("home", 0.25, "GET /home"),
)
HEALTH: Final = Kind("health", 0.0, "GET /api/v1/health")
_SCORES: Final = (("pain_nrs", 0, 10), ("moaas", 4, 5), ("rass", -1, 1))


def clinic_rate(chairs: int) -> float:
    """Requests per second of the clinic's pace for ``chairs`` chairs."""
    return chairs * sum(k.per_chair_min for k in MIX) / 60.0


# Set-up: users, chairs, logins.


@dataclass(frozen=True, slots=True)
class Chair:
    """A running infusion: its patient, its nurse and the rates it may run at."""

    patient_id: str
    infusion_id: str
    nurse: int
    rate_mg_per_h: float
    max_rate_mg_per_h: float


@dataclass(slots=True)
class Logins:
    """Bearer headers and session cookies: ``nurses[i]``, and the physician's."""

    nurse_api: list[dict[str, str]] = field(default_factory=list)
    nurse_page: list[dict[str, str]] = field(default_factory=list)
    doc_api: dict[str, str] = field(default_factory=dict)
    doc_page: dict[str, str] = field(default_factory=dict)


def _usernames(chairs: int) -> list[str]:
    """The physician, then the nurses (one per ``CHAIRS_PER_NURSE`` chairs)."""
    nurses = max(1, -(-chairs // CHAIRS_PER_NURSE))
    return ["dr.load", *(f"nurse.load{i + 1}" for i in range(nurses))]


def create_staff(url: str, chairs: int) -> None:
    """Migrate the database at ``url`` and add the physician and the nurses."""
    db = Database.connect(url)
    try:
        migrate.upgrade(db)
        for k, name in enumerate(_usernames(chairs)):
            role = "physician" if k == 0 else "nurse"
            create_user(db, SYSTEM, username=name, full_name=name, role=role, password=PASSWORD)
    finally:
        db.dispose()


def _check(resp: httpx.Response, what: str) -> dict[str, Any]:
    if resp.status_code >= 300:
        raise SystemExit(f"set-up failed at {what}: HTTP {resp.status_code} {resp.text[:300]}")
    out: dict[str, Any] = resp.json()
    return out


async def log_in(client: httpx.AsyncClient, chairs: int) -> Logins:
    """An API token and a web session for the physician and every nurse."""
    logins = Logins()
    for k, name in enumerate(_usernames(chairs)):
        body = {"username": name, "password": PASSWORD}
        token = _check(await client.post(f"{API}/auth/token", json=body), "token")
        session = await client.post(f"{API}/auth/login", json=body)
        _check(session, "login")
        api = {"Authorization": f"Bearer {token['access_token']}"}
        page = {"Cookie": f"{SESSION_COOKIE}={session.cookies[SESSION_COOKIE]}"}
        client.cookies.clear()
        if k == 0:
            logins.doc_api, logins.doc_page = api, page
        else:
            logins.nurse_api.append(api)
            logins.nurse_page.append(page)
    return logins


async def _one_chair(
    client: httpx.AsyncClient, logins: Logins, n: int, today: date, rng: np.random.Generator
) -> Chair:
    """Patient n: registered, weighed, diagnosed, planned, bag hung, ready and started."""
    doc = logins.doc_api
    nurse_k = n // CHAIRS_PER_NURSE
    nurse = logins.nurse_api[nurse_k]
    person = {
        "mrn": f"LOAD-{n + 1:04d}",
        "family_name": f"Chair{n + 1}",
        "given_name": "Load",
        "birth_date": f"{1950 + n % 40}-0{1 + n % 9}-1{n % 9}",
        "sex": "female" if n % 3 else "male",
    }
    pid = _check(await client.post(f"{API}/patients", json=person, headers=doc), "patient")["id"]
    weight = float(np.round(rng.uniform(55, 95), 1))
    m = {"weight_kg": weight, "height_cm": 170.0}
    _check(await client.post(f"{API}/patients/{pid}/measurements", json=m, headers=nurse), "kg")
    dx = {"code": "G90.511"}
    _check(await client.post(f"{API}/patients/{pid}/diagnoses", json=dx, headers=doc), "dx")
    plan = {"protocol": "single-day", "start_date": today.isoformat(), "bag_mg": 250, "bag_ml": 250}
    course = _check(
        await client.post(f"{API}/patients/{pid}/courses", json=plan, headers=doc), "course"
    )
    bag = {"session_number": 1, "bag_mg": 250, "bag_ml": 250, "lot": f"LOT-{n + 1}"}
    hung = _check(
        await client.post(f"{API}/courses/{course['id']}/infusions", json=bag, headers=nurse),
        "bag",
    )
    iid = hung["id"]
    premed = [p["drug"] for p in course["plan"].get("premedication", []) if not p["prn"]]
    checklist = {
        "consent_confirmed": True,
        "escort_confirmed": True,
        "escort_name": "A. Escort",
        "fasting_confirmed": True,
        "medications_reviewed": True,
        "premedication_given": premed,
    }
    _check(
        await client.post(f"{API}/infusions/{iid}/checklist", json=checklist, headers=nurse),
        "checklist",
    )
    before = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    base = {"infusion_id": iid, "measured_utc": before}
    vitals = {"sbp_mmhg": 124, "dbp_mmhg": 78, "hr_per_min": 72, "rr_per_min": 14, "spo2_pct": 98}
    _check(
        await client.post(f"{API}/patients/{pid}/vitals", json=base | vitals, headers=nurse),
        "baseline vitals",
    )
    nrs = {"instrument": "pain_nrs", "value": 7}
    _check(
        await client.post(f"{API}/patients/{pid}/scores", json=base | nrs, headers=nurse),
        "baseline NRS",
    )
    rate = float(hung["program"][0]["rate_mg_per_h"])
    start = {"kind": "start", "rate_mg_per_h": rate}
    _check(await client.post(f"{API}/infusions/{iid}/events", json=start, headers=nurse), "start")
    return Chair(pid, iid, nurse_k, rate, float(hung["plan_max_rate_mg_per_h"]))


async def fill_chairs(base_url: str, chairs: int, seed: int, progress: Progress) -> list[Chair]:
    """``chairs`` running infusions, made through the API of the server at ``base_url``."""
    rng = np.random.default_rng(seed)
    task = progress.add_task("set-up: chairs through the API", total=chairs)
    today = datetime.now(UTC).date()
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as client:
        logins = await log_in(client, chairs)
        gate = asyncio.Semaphore(4)

        async def chair(n: int) -> Chair:
            async with gate:
                out = await _one_chair(client, logins, n, today, rng)
            progress.advance(task)
            return out

        made = await asyncio.gather(*(chair(n) for n in range(chairs)))
    progress.remove_task(task)
    return list(made)


# The server.


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# The server under cProfile, every thread (the sync routes run in a thread pool), timed by
# each thread's CPU clock: the profile attributes CPU, not waits (for the pool, the lock).
_PROFILED_SERVE: Final = """
import cProfile, pstats, sys, threading, time
out = sys.argv.pop(1)
profiles = []
def _per_thread(*_args):
    prof = cProfile.Profile(time.thread_time)
    profiles.append(prof)
    prof.enable()
threading.setprofile(_per_thread)
first = cProfile.Profile(time.thread_time)
profiles.append(first)
first.enable()
from ketapain.cli.main import app
try:
    app(prog_name="ketapain")
finally:
    threading.setprofile(None)
    stats = pstats.Stats(profiles[0])
    for prof in profiles[1:]:
        try:
            stats.add(prof)
        except TypeError:
            pass
    stats.dump_stats(out)
"""


@dataclass(slots=True)
class Server:
    """A running ``ketapain serve``: its address, process and log."""

    base_url: str
    proc: subprocess.Popen[bytes]
    log_path: Path


def _wait_healthy(base_url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise SystemExit(f"the server exited with code {proc.returncode}:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}{API}/health", timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit("the server did not answer /api/v1/health within 120 s")


@contextlib.contextmanager
def serving(
    url: str, log_path: Path, profile: Path | None = None, workers: int = 1, threads: int = 4
) -> Iterator[Server]:
    """``ketapain serve --database-url url --workers n`` on a free loopback port, until the
    block ends."""
    port = _free_port()
    args = ["serve", "--database-url", url, "--host", "127.0.0.1", "--port", str(port)]
    args += ["--workers", str(workers), "--threads", str(threads)]
    if profile is None:
        cmd = [str(Path(sys.executable).with_name("ketapain")), *args]
    else:
        cmd = [sys.executable, "-c", _PROFILED_SERVE, str(profile), *args]
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(base_url, proc, log_path)
            yield Server(base_url, proc, log_path)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and of its live descendants (the worker
    processes of ``--workers``), Linux; NaN elsewhere."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc/self/stat").exists() else ():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
    if pid not in stats:
        return float("nan")
    children: dict[int, list[int]] = defaultdict(list)
    for p, fields in stats.items():
        children[int(fields[1])].append(p)
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += int(stats[p][11]) + int(stats[p][12])
        todo += children.get(p, [])
    return total / tick


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU ticks of the machine since boot (Linux; NaNs elsewhere)."""
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return float("nan"), float("nan")
    idle = ticks[3] + ticks[4]
    return float(sum(ticks) - idle), float(sum(ticks))


# The load.


@dataclass(frozen=True, slots=True)
class Req:
    """One request of the schedule."""

    kind: str
    method: str
    path: str
    headers: dict[str, str]
    json: dict[str, Any] | None = None


def _request(kind: str, chair: Chair, logins: Logins, rng: np.random.Generator) -> Req:
    """A request of ``kind`` for ``chair``, with plausible values inside the alarm limits."""
    pid, iid = chair.patient_id, chair.infusion_id
    api, page = logins.nurse_api[chair.nurse], logins.nurse_page[chair.nurse]
    if kind == "vitals":
        body = {
            "infusion_id": iid,
            "sbp_mmhg": int(rng.integers(112, 136)),
            "dbp_mmhg": int(rng.integers(68, 86)),
            "hr_per_min": int(rng.integers(62, 96)),
            "rr_per_min": int(rng.integers(12, 19)),
            "spo2_pct": int(rng.integers(95, 100)),
        }
        return Req(kind, "POST", f"{API}/patients/{pid}/vitals", api, body)
    if kind == "score":
        name, low, high = _SCORES[int(rng.integers(len(_SCORES)))]
        body = {"infusion_id": iid, "instrument": name, "value": int(rng.integers(low, high + 1))}
        return Req(kind, "POST", f"{API}/patients/{pid}/scores", api, body)
    if kind == "rate":
        factor = float(rng.choice([0.8, 0.9, 1.0]))
        rate = round(min(chair.rate_mg_per_h * factor, chair.max_rate_mg_per_h), 1)
        body = {"kind": "rate_change", "rate_mg_per_h": rate, "reason": "titrated to comfort"}
        return Req(kind, "POST", f"{API}/infusions/{iid}/events", api, body)
    paths = {
        "infusion": (f"{API}/infusions/{iid}", api),
        "live": (f"/infusions/{iid}/live", page),
        "chair": (f"/infusions/{iid}", page),
        "patient": (f"/patients/{pid}", logins.doc_page),
        "home": ("/home", page),
        "health": (f"{API}/health", {}),
    }
    path, headers = paths[kind]
    return Req(kind, "GET", path, headers)


def schedule(
    rate: float,
    duration_s: float,
    kinds: tuple[Kind, ...],
    chairs: list[Chair],
    logins: Logins,
    rng: np.random.Generator,
    arrivals: str,
) -> list[tuple[float, Req]]:
    """The requests and their send times (s from the start), in time order."""
    if arrivals == "poisson":
        gaps = rng.exponential(1.0 / rate, size=int(rate * duration_s * 1.3) + 50)
        times = np.cumsum(gaps)
        times = times[times < duration_s]
    else:
        times = np.arange(round(rate * duration_s)) / rate
    weights = np.array([max(k.per_chair_min, 1e-12) for k in kinds])
    picks = rng.choice(len(kinds), size=len(times), p=weights / weights.sum())
    seats = rng.integers(len(chairs), size=len(times))
    return [
        (float(t), _request(kinds[k].name, chairs[c], logins, rng))
        for t, k, c in zip(times, picks, seats, strict=True)
    ]


@dataclass(slots=True)
class Phase:
    """What one phase measured: per request its kind, latency, send lag and outcome."""

    kinds: list[str] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    lag_s: list[float] = field(default_factory=list)
    outcome: list[str] = field(default_factory=list)  # "ok", "HTTP 500", "ConnectError"...
    sent: int = 0
    timeout_s: float = 30.0
    wall_s: float = float("nan")
    server_cpu_s: float = float("nan")
    client_cpu_s: float = float("nan")
    machine_busy: float = float("nan")  # fraction of all cores busy
    load1: float = float("nan")  # the machine's 1-minute load average at the start
    server_ms: dict[str, list[float]] = field(default_factory=dict)  # route -> access-log ms
    server_5xx: int = 0  # 5xx in the access log, those answered after the client gave up too

    @property
    def errors(self) -> int:
        return sum(o != "ok" for o in self.outcome)


# A connection idle this long is not used again: the server closes one idle for 5 s
# (uvicorn's keep-alive timeout), and a request sent as it closes would be lost.
_IDLE_S: Final = 3.0
_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter, float]  # and when last used


class _Connections:
    """Keep-alive HTTP/1.1 connections to the server, handed out first come, first served.

    The load generator shares the cores with the server, so it must cost far less per
    request than the server does: a request is sent as bytes prepared before the phase and
    its answer read by ``Content-Length``, about a tenth of httpx's CPU per request. Every
    answer of the server has a ``Content-Length`` (anything else is counted as an error).
    """

    def __init__(self, host: str, port: int, n: int) -> None:
        self.host, self.port = host, port
        self.free: asyncio.Queue[_Conn | None] = asyncio.Queue()
        for _ in range(n):
            self.free.put_nowait(None)  # opened on first use

    async def send(self, data: bytes) -> int:
        """Send one request; its status code once the whole answer is read."""
        conn = await self.free.get()
        try:
            loop = asyncio.get_running_loop()
            if conn is not None and loop.time() - conn[2] > _IDLE_S:
                conn[1].close()  # the server may have closed it: never send on it
                conn = None
            if conn is None:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                conn = (reader, writer, loop.time())
            reader, writer, _ = conn
            writer.write(data)
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                raise _NoLengthError
            length = int(head[at + 17 : head.index(b"\r\n", at + 2)])
            await reader.readexactly(length)
            if b"\r\nconnection: close" in head:
                writer.close()
                conn = None
            else:
                conn = (reader, writer, loop.time())
            return int(head[9:12])
        except BaseException:
            if conn is not None:  # cut off mid-answer (a timeout): not reusable
                conn[1].close()
                conn = None
            raise
        finally:
            self.free.put_nowait(conn)

    def close(self) -> None:
        while not self.free.empty():
            conn = self.free.get_nowait()
            if conn is not None:
                conn[1].close()


class _NoLengthError(Exception):
    """An answer without ``Content-Length``."""


def _wire(req: Req, host: str) -> bytes:
    """``req`` as the bytes of an HTTP/1.1 request."""
    body = b"" if req.json is None else json.dumps(req.json).encode()
    head = [f"{req.method} {req.path} HTTP/1.1", f"Host: {host}"]
    head += [f"{k}: {v}" for k, v in req.headers.items()]
    if req.json is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _fire(
    conns: _Connections,
    kind: str,
    data: bytes,
    scheduled: float,
    phase: Phase,
    done: Any,
) -> None:
    """Send a request once a connection is free; give up ``timeout`` after its scheduled time."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        # A deadline from the scheduled time, the local wait for a connection included.
        async with asyncio.timeout_at(scheduled + phase.timeout_s):
            status = await conns.send(data)
        outcome = "ok" if 200 <= status < 300 else f"HTTP {status}"
    except TimeoutError:
        outcome = f"no answer in {phase.timeout_s:g} s"
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, _NoLengthError) as exc:
        outcome = type(exc).__name__
    end = loop.time()
    phase.kinds.append(kind)
    phase.latency_s.append(end - scheduled)
    phase.lag_s.append(started - scheduled)
    phase.outcome.append(outcome)
    done()


async def open_loop(
    base_url: str,
    plan: list[tuple[float, Req]],
    progress: Progress,
    label: str,
    server_pid: int,
    args: argparse.Namespace,
) -> Phase:
    """Send every request of ``plan`` at its time, wait for all answers; measure.

    At most ``args.connections`` requests are in flight (keep-alive connections); the
    others wait here for a connection, first come first served, and that wait counts.
    """
    phase = Phase(sent=len(plan), timeout_s=args.timeout_s)
    task: TaskID = progress.add_task(label, total=len(plan))
    url = httpx.URL(base_url)
    host = f"{url.host}:{url.port}"
    wired = [(offset, req.kind, _wire(req, host)) for offset, req in plan]
    conns = _Connections(url.host, url.port or 80, args.connections)
    try:
        loop = asyncio.get_running_loop()
        cpu0, client0, busy0 = _cpu_s(server_pid), time.process_time(), _machine_busy()
        phase.load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        t0 = loop.time() + 0.05
        pending: set[asyncio.Task[None]] = set()
        for offset, kind, data in wired:
            delay = t0 + offset - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            job = asyncio.create_task(
                _fire(conns, kind, data, t0 + offset, phase, lambda: progress.advance(task))
            )
            pending.add(job)
            job.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*list(pending))
        phase.wall_s = loop.time() - t0
        busy1 = _machine_busy()
        phase.server_cpu_s = _cpu_s(server_pid) - cpu0
        phase.client_cpu_s = time.process_time() - client0
        phase.machine_busy = (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1.0)
    finally:
        conns.close()
    progress.remove_task(task)
    return phase


async def settle(pid: int, limit_s: float = 180.0) -> None:
    """Wait until the server is idle (under 5% of a core for 0.5 s): requests the client gave
    up on are still being served, and must not slow down the next phase."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = _cpu_s(pid)
        await asyncio.sleep(0.5)
        if not _cpu_s(pid) - before >= 0.025:  # also ends at once where /proc is missing
            return


def _access_log(path: Path, start: int, end: int) -> tuple[dict[str, list[float]], int]:
    """Server-side milliseconds per route, and the number of 5xx answers, from the access
    log's bytes [start, end)."""
    with path.open("rb") as f:
        f.seek(start)
        chunk = f.read(max(end - start, 0)).decode(errors="replace")
    out: dict[str, list[float]] = defaultdict(list)
    failed = 0
    for method, route, status, ms in _ACCESS.findall(chunk):
        out[f"{method} {route}"].append(float(ms))
        failed += status.startswith("5")
    return out, failed


# One rate on one database.


@dataclass(slots=True)
class RateRun:
    """The baseline and the workload at one rate."""

    label: str
    rate: float
    baseline: Phase
    workload: Phase


def run_rate(
    url: str,
    label: str,
    rate: float,
    args: argparse.Namespace,
    chairs: list[Chair],
    log_path: Path,
    progress: Progress,
    profile: Path | None,
) -> RateRun:
    """Serve ``url``, warm up, then the baseline and the workload at ``rate``."""
    rng = np.random.default_rng(args.seed)
    duration = max(args.duration_s, args.min_requests / rate)
    with serving(url, log_path, profile, args.workers, args.threads) as server:
        pid = server.proc.pid

        async def go() -> tuple[Phase, Phase]:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=60.0) as client:
                logins = await log_in(client, len(chairs))
                # Every kind once, so that no first request pays for compiling a template.
                for kind in (HEALTH, *MIX):
                    req = _request(kind.name, chairs[0], logins, rng)
                    await client.request(req.method, req.path, headers=req.headers, json=req.json)
            if args.warmup_s > 0:
                warm = schedule(rate, args.warmup_s, MIX, chairs, logins, rng, args.arrivals)
                await open_loop(server.base_url, warm, progress, f"{label}: warm-up", pid, args)
                await settle(pid)
            phases = []
            for name, kinds in (("baseline", (HEALTH,)), ("workload", MIX)):
                plan = schedule(rate, duration, kinds, chairs, logins, rng, args.arrivals)
                start = log_path.stat().st_size
                phase = await open_loop(
                    server.base_url, plan, progress, f"{label}: {name}", pid, args
                )
                # The server still serves what the client gave up on: its 500s count here.
                await settle(pid)
                await asyncio.sleep(0.3)  # the last log lines reach the file
                phase.server_ms, phase.server_5xx = _access_log(
                    log_path, start, log_path.stat().st_size
                )
                phases.append(phase)
            return phases[0], phases[1]

        base, work = asyncio.run(go())
    return RateRun(label, rate, base, work)


# Cost of each route alone.


@dataclass(frozen=True, slots=True)
class Cost:
    """One kind of request sent alone, one at a time: its latency and the server's CPU."""

    latency_s: float  # median
    server_cpu_s: float  # mean per request


async def _route_costs(
    base_url: str, chairs: list[Chair], pid: int, n: int, seed: int
) -> dict[str, Cost]:
    rng = np.random.default_rng(seed)
    out = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as client:
        logins = await log_in(client, len(chairs))
        for kind in (HEALTH, *MIX):
            reqs = [_request(kind.name, chairs[k % len(chairs)], logins, rng) for k in range(n)]
            for req in reqs[:5]:  # warm: templates compiled, statements cached
                await client.request(req.method, req.path, headers=req.headers, json=req.json)
            took = []
            cpu0 = _cpu_s(pid)
            for req in reqs:
                t0 = time.perf_counter()
                r = await client.request(req.method, req.path, headers=req.headers, json=req.json)
                took.append(time.perf_counter() - t0)
                if r.status_code >= 300:
                    raise SystemExit(f"{kind.name}: HTTP {r.status_code} {r.text[:300]}")
            out[kind.name] = Cost(float(np.median(took)), (_cpu_s(pid) - cpu0) / n)
    return out


def route_costs(
    url: str, chairs: list[Chair], log_path: Path, n: int, seed: int
) -> dict[str, Cost]:
    """Every kind of request ``n`` times, one at a time, on a server of its own."""
    with serving(url, log_path) as server:
        return asyncio.run(_route_costs(server.base_url, chairs, server.proc.pid, n, seed))


# Databases.


@dataclass(slots=True)
class Target:
    """One database kind: a template filled once and a fresh copy of it per rate."""

    name: str
    tmp: Path
    pg_url: str | None = None
    made: list[str] = field(default_factory=list)

    @property
    def _stem(self) -> str:
        return f"ketapain_load_{os.getpid()}"

    def _create(self, name: str, template: str | None) -> str:
        assert self.pg_url is not None
        engine = create_engine(self.pg_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                copy = f' TEMPLATE "{template}"' if template else ""
                conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        finally:
            engine.dispose()
        self.made.append(name)
        return make_url(self.pg_url).set(database=name).render_as_string(hide_password=False)

    def make_template(self) -> str:
        """A new, empty database for the template; its URL."""
        if self.pg_url is None:
            return f"sqlite:///{self.tmp / 'template.db'}"
        return self._create(self._stem, None)

    def seal_template(self) -> None:
        """Fold SQLite's write-ahead log into the file, so that a plain copy is whole."""
        if self.pg_url is None:
            db = Database.connect(f"sqlite:///{self.tmp / 'template.db'}")
            with db.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            db.dispose()

    def copy_url(self, n: int) -> str:
        """A fresh copy of the template for run ``n``; its URL."""
        if self.pg_url is None:
            path = self.tmp / f"run{n}.db"
            shutil.copyfile(self.tmp / "template.db", path)
            return f"sqlite:///{path}"
        return self._create(f"{self._stem}_{n}", self._stem)

    def drop(self) -> None:
        """Drop the PostgreSQL databases made."""
        if self.pg_url is None or not self.made:
            return
        engine = create_engine(self.pg_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                for name in reversed(self.made):
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            engine.dispose()


def run_database(
    target: Target,
    rates: list[tuple[str, float]],
    args: argparse.Namespace,
    console: Console,
    progress: Progress,
) -> tuple[dict[str, Cost], list[RateRun]]:
    """Fill the template once; the routes' costs, then every rate, each on its own copy."""
    profile_dir = os.environ.get("KETAPAIN_BENCH_PROFILE")
    url = target.make_template()
    t0 = time.perf_counter()
    create_staff(url, args.chairs)
    with serving(url, target.tmp / "setup.log") as server:
        chairs = asyncio.run(fill_chairs(server.base_url, args.chairs, args.seed, progress))
    target.seal_template()
    console.print(
        f"{target.name}: {len(chairs)} chairs running "
        f"(set-up through the API, {time.perf_counter() - t0:.0f} s)"
    )
    with console.status(f"{target.name}: each kind of request alone, one at a time"):
        costs = route_costs(
            target.copy_url(len(rates)), chairs, target.tmp / "costs.log", args.cost_n, args.seed
        )
    out = []
    for n, (name, rate) in enumerate(rates):
        label = f"{target.name} {name}"
        slug = name.split(" ")[0]
        profile = None
        if profile_dir:
            Path(profile_dir).mkdir(parents=True, exist_ok=True)
            profile = Path(profile_dir) / f"{target.name.lower()}-{slug}.prof"
        log_path = target.tmp / f"server-{n}.log"
        run = run_rate(target.copy_url(n), label, rate, args, chairs, log_path, progress, profile)
        out.append(run)
        if args.keep_logs:
            shutil.copyfile(log_path, Path(args.keep_logs) / f"{target.name.lower()}-{slug}.log")
        if profile is not None and profile.exists():
            console.print(f"[bold]profile of the server, {label}[/] ({profile})")
            stats = pstats.Stats(str(profile), stream=sys.stdout)
            stats.sort_stats("cumulative").print_stats(r"ketapain|sqlalchemy|jinja2", 40)
            stats.sort_stats("tottime").print_stats(25)
    return costs, out


# Report.


def _ms(values: Any, q: float | None = None) -> str:
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return "-"
    v = float(arr.max() if q is None else np.percentile(arr, q))
    return f"{v * 1000:,.1f}" if v < 10 else f"{v * 1000:,.0f}"


def _pct(values: Any, q: float) -> float:
    arr = np.asarray(values, dtype=float)
    return float(np.percentile(arr, q)) if arr.size else float("nan")


def _server_times(phase: Phase, kind: Kind) -> list[float] | None:
    """The server's own times of ``kind`` from its access log; None where the log names an
    API route without its /api/v1 prefix and a page route reads the same."""
    if kind.route in phase.server_ms:
        return phase.server_ms[kind.route]
    short = kind.route.replace(f" {API}/", " /")
    if sum(k.route.replace(f" {API}/", " /") == short for k in MIX) > 1:
        return None
    return phase.server_ms.get(short, [])


def _errors(phase: Phase) -> str:
    counts = Counter(o for o in phase.outcome if o != "ok")
    counts["not answered"] = phase.sent - len(phase.outcome)
    out = ", ".join(f"{k} x{v}" for k, v in counts.most_common() if v) or "0"
    seen = sum(v for k, v in counts.items() if k.startswith("HTTP 5"))
    if phase.server_5xx > seen:  # answered after the client had given up
        out += f" (server log: {phase.server_5xx} x 5xx)"
    return out


def report_costs(console: Console, target: str, costs: dict[str, Cost]) -> None:
    """Print each kind's cost alone and what the mix costs the server per request."""
    total = sum(k.per_chair_min for k in MIX)
    rows = []
    base = costs[HEALTH.name]
    # CPU time is counted in clock ticks: a few cheap requests may read as none.
    per_base = 1 / base.server_cpu_s if base.server_cpu_s > 0 else float("nan")
    for k in (HEALTH, *MIX):
        c = costs[k.name]
        share = k.per_chair_min / total
        rows.append(
            [
                k.name,
                k.route,
                f"{share:.1%}" if k.per_chair_min else "baseline",
                f"{c.latency_s * 1000:,.1f}",
                f"{c.server_cpu_s * 1000:,.1f}",
                f"{c.server_cpu_s * per_base:,.1f}x",
                f"{share * c.server_cpu_s * 1000:,.2f}" if k.per_chair_min else "",
            ]
        )
    mix = sum(k.per_chair_min / total * costs[k.name].server_cpu_s for k in MIX)
    rows.append(["mix", "", "100%", "", f"{mix * 1000:,.1f}", f"{mix * per_base:,.1f}x", ""])
    show(
        console,
        f"{target}: each kind alone, one request at a time"
        + (
            " (the server's CPU includes SQLite's)"
            if target == "SQLite"
            else " (not PostgreSQL's CPU)"
        ),
        "kind|route|share|latency p50 ms|server CPU ms/req|x health|ms/req in the mix",
        rows,
        2,
    )
    console.print(
        f"{target}: the mix costs the server process {mix * 1000:.1f} ms of CPU per request: "
        f"one process on one full core serves at most {1 / mix:,.0f} req/s "
        f"({TARGET_RATE:.0f} req/s needs {TARGET_RATE * mix:.1f} cores of it)"
    )


def report(console: Console, target: str, runs: list[RateRun]) -> list[str]:
    """Print the tables of one database; return its verdict lines."""
    rows = []
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for r in runs:
        w, b = r.workload, r.baseline
        ok = len(w.outcome) - w.errors
        base_ok = len(b.outcome) - b.errors
        rows.append(
            [
                r.label.split(" ", 1)[1],
                f"{w.sent:,}",
                _errors(w),
                f"{ok / w.wall_s:,.1f}",
                _ms(w.latency_s, 50),
                _ms(w.latency_s, 95),
                _ms(w.latency_s, 99),
                _ms(w.latency_s),
                f"{_ms(b.latency_s, 50)} / {_ms(b.latency_s, 95)}; {base_ok / b.wall_s:,.0f} ok/s"
                + ("" if b.errors == 0 and b.server_5xx == 0 else f"; errors: {_errors(b)}"),
                f"{_pct(w.latency_s, 50) / _pct(b.latency_s, 50):,.1f}x"
                f" / {_pct(w.latency_s, 95) / _pct(b.latency_s, 95):,.1f}x",
                f"{w.server_cpu_s / max(len(w.outcome), 1) * 1000:,.1f}"
                f" / {b.server_cpu_s / max(len(b.outcome), 1) * 1000:,.1f}",
                f"{w.server_cpu_s / w.wall_s:.2f} / {w.client_cpu_s / w.wall_s:.2f}"
                f" / {w.machine_busy * (cores or 1):.2f}",
                f"{w.load1:.1f}",
                _ms(w.lag_s, 99),
            ]
        )
    show(
        console,
        f"{target}: the workload against the baseline (GET /api/v1/health) at the same rate;"
        " latency in ms from each request's scheduled send time",
        "rate (req/s)|sent|errors|ok/s|p50|p95|p99|max|baseline p50 / p95"
        "|x baseline p50 / p95|server CPU ms/req work / base"
        f"|cores used: server / bench / all (of {cores})|load (1 min)|send lag p99",
        rows,
        1,
    )
    for r in runs:
        w = r.workload
        kinds = np.array(w.kinds)
        lat = np.array(w.latency_s)
        outs = np.array(w.outcome)
        krows = []
        for k in MIX:
            sel = kinds == k.name
            server = _server_times(w, k)
            krows.append(
                [
                    k.name,
                    f"{int(sel.sum()):,}",
                    f"{sel.mean():.1%}" if sel.size else "-",
                    f"{int((outs[sel] != 'ok').sum())}",
                    _ms(lat[sel], 50),
                    _ms(lat[sel], 95),
                    _ms(lat[sel], 99),
                    _ms(lat[sel]),
                    "(route ambiguous in the log)"
                    if server is None
                    else f"{_pct(server, 50):,.1f} / {_pct(server, 95):,.1f}"
                    if server
                    else "-",
                ]
            )
        show(
            console,
            f"{target} at {r.rate:,.1f} req/s: by kind of request (ms)",
            "kind|answered|share|errors|p50|p95|p99|max|server p50 / p95 (access log)",
            krows,
            1,
        )
    verdict = []
    at_target = [r for r in runs if abs(r.rate - TARGET_RATE) < 1e-9]
    for r in at_target:
        w = r.workload
        p95 = _pct(w.latency_s, 95)
        ok = p95 < TARGET_P95_S and w.errors == 0 and len(w.outcome) == w.sent
        good = (len(w.outcome) - w.errors) / w.wall_s
        verdict.append(
            f"{target}: p95 < 100 ms at 200 req/s with zero errors: {'yes' if ok else 'no'} "
            f"(p95 {p95 * 1000:,.0f} ms; errors: {_errors(w)}; {good:,.1f} ok/s)"
        )
    if not at_target:
        verdict.append(f"{target}: p95 < 100 ms at 200 req/s with zero errors: not run")
    return verdict


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _rates(spec: str, chairs: int) -> list[tuple[str, float]]:
    out = []
    for item in spec.split(","):
        item = item.strip()
        if item == "clinic":
            out.append((f"clinic {clinic_rate(chairs):.1f}", clinic_rate(chairs)))
        elif item:
            rate = float(item)
            if rate <= 0:
                raise SystemExit(f"--rates: {item} is not a positive rate")
            out.append((f"{rate:g}", rate))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration-s", type=float, default=20.0, help="each measured phase")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="workload before measuring")
    parser.add_argument("--rates", default="clinic,200,300", help="req/s, or 'clinic'")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--chairs", type=int, default=40)
    parser.add_argument(
        "--workers", type=int, default=4, help="server processes (ketapain serve --workers)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="request threads per process (serve --threads)"
    )
    parser.add_argument("--arrivals", choices=("poisson", "uniform"), default="poisson")
    parser.add_argument("--connections", type=int, default=100, help="requests in flight, at most")
    parser.add_argument("--timeout-s", type=float, default=30.0, help="give up on a request")
    parser.add_argument(
        "--min-requests", type=int, default=200, help="lengthen slow runs to this many"
    )
    parser.add_argument("--cost-n", type=int, default=40, help="requests per kind, alone")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-logs", default=None, help="copy the server logs to this folder")
    args = parser.parse_args()
    if args.workers < 1:
        raise SystemExit("--workers: at least 1")
    if args.workers > 1 and os.environ.get("KETAPAIN_BENCH_PROFILE"):
        raise SystemExit("KETAPAIN_BENCH_PROFILE profiles one process: use --workers 1")
    console = Console(width=max(Console().width, 150))
    rates = _rates(args.rates, args.chairs)
    pg = os.environ.get("KETAPAIN_BENCH_POSTGRESQL_URL")
    names = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in names and not pg:
        if args.database == "postgresql":
            raise SystemExit("--database postgresql needs KETAPAIN_BENCH_POSTGRESQL_URL")
        names.remove("postgresql")
        console.print("no KETAPAIN_BENCH_POSTGRESQL_URL: SQLite only")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    console.print(
        f"{args.chairs} chairs, clinic pace {clinic_rate(args.chairs):.1f} req/s; "
        f"{cores} cores, 1-min load {os.getloadavg()[0]:.2f}; {args.workers} server "
        f"process(es) of {args.threads} threads; {args.arrivals} arrivals; "
        f"{args.duration_s:g} s per phase after {args.warmup_s:g} s of warm-up"
    )
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="ketapain-load-") as tmp:
        for name in names:
            label = "SQLite" if name == "sqlite" else "PostgreSQL"
            folder = Path(tmp) / name
            folder.mkdir()
            target = Target(label, folder, pg if name == "postgresql" else None)
            try:
                with _progress(console) as progress:
                    costs, runs = run_database(target, rates, args, console, progress)
            finally:
                target.drop()
            report_costs(console, label, costs)
            verdicts += report(console, label, runs)
    for line in verdicts:
        console.print(f"[bold]{line}[/]")


if __name__ == "__main__":
    main()
