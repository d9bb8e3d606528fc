"""``ketapain serve --workers N``: N server processes on one port and one SQLite file.

The real console script is started as a process of its own on a free loopback port, with
a user created beforehand by ``ketapain users create``; it must answer through two worker
processes (its children), take 40 concurrent writes without losing one, show the demo
logins that ``--demo`` printed, and stop on SIGINT. An in-memory database, which each
process would have on its own, is refused with more than one worker.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

import httpx
import pytest
from sqlalchemy import select

from ketapain.clinic import migrate
from ketapain.clinic.audit import verify_trail
from ketapain.clinic.db import Database
from ketapain.clinic.patients import Patient

API: Final = "/api/v1"
WORKERS: Final = 2
WRITES: Final = 40
PASSWORD: Final = "desk-password-1"
# Each worker imports the application for a few seconds; on a busy machine longer.
START_TIMEOUT_S: Final = 90.0
EXIT_TIMEOUT_S: Final = 30.0
CLI_TIMEOUT_S: Final = 120.0
_WARM_UP: Final = "import ketapain.cli.main, ketapain.web.app"

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="reads the worker processes from /proc"
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of the ``ketapain`` processes: no ``KETAPAIN_*`` settings of the
    caller, and compiled modules kept in a temporary folder (where the caller writes none),
    compiled once here, so that each worker starts in seconds."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("KETAPAIN_")}
    if out.pop("PYTHONDONTWRITEBYTECODE", None):
        out["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    done = subprocess.run(
        [sys.executable, "-c", _WARM_UP],
        env=out,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def ketapain() -> Path:
    command = Path(sys.executable).with_name("ketapain")
    assert command.exists(), f"no console script at {command}: run `uv sync`"
    return command


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _children(pid: int) -> set[int]:
    """The child processes of ``pid`` (Linux: /proc/<pid>/task/*/children)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _workers(pid: int) -> set[int]:
    """The uvicorn workers among the children (not multiprocessing's resource tracker)."""
    return {c for c in _children(pid) if "spawn_main" in _cmdline(c)}


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Server:
    """``ketapain serve --workers 2 --demo`` on a free port, its output in a file."""

    def __init__(self, command: Path, url: str, env: dict[str, str], log: Path) -> None:
        self.command, self.url, self.env, self.log = command, url, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""

    def tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- server output (end) ---\n{text[-4000:]}"

    def start(self) -> None:
        for _ in range(3):
            port = _free_port()
            args = ["serve", "--workers", str(WORKERS), "--demo"]
            args += ["--database-url", self.url, "--port", str(port)]
            with self.log.open("wb") as out:
                self.proc = subprocess.Popen(
                    [str(self.command), *args],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                )
            self.base = f"http://127.0.0.1:{port}"
            if self._healthy():
                return
            self.kill()
            if "address already in use" not in self.tail().lower():
                pytest.fail(f"the server exited before answering\n{self.tail()}")
        pytest.fail(f"no free port in 3 tries\n{self.tail()}")

    def _healthy(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.base}{API}/health", timeout=2.0).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.kill()
        pytest.fail(f"/health did not answer within {START_TIMEOUT_S:g} s\n{self.tail()}")

    def serving_workers(self) -> set[int]:
        """The worker processes once there are WORKERS of them, each having logged its
        start (uvicorn replaces a worker slow to answer its first health check)."""
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            workers = _workers(self.proc.pid)
            started = {int(p) for p in re.findall(r"Started server process \[(\d+)\]", self.tail())}
            if len(workers) == WORKERS and workers <= started:
                return workers
            assert time.monotonic() < deadline, f"workers {workers}, started {started}"
            time.sleep(0.2)

    def interrupt(self) -> int:
        """SIGINT, as Ctrl+C does; the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=EXIT_TIMEOUT_S)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the server and its workers if they still run."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            workers = _workers(proc.pid)
            proc.kill()
            for pid in workers:
                if _alive(pid) and "spawn_main" in _cmdline(pid):
                    os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=EXIT_TIMEOUT_S)


@pytest.fixture
def database(tmp_path: Path, ketapain: Path, env: dict[str, str]) -> str:
    """A migrated SQLite file with a front desk user, made by ``ketapain users create``."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    db = Database.connect(url)
    migrate.upgrade(db)
    db.dispose()
    create = ["users", "create", "--username", "desk", "--role", "front_desk"]
    create += ["--full-name", "Front Desk", "--password-stdin", "--database-url", url]
    done = subprocess.run(
        [str(ketapain), *create],
        input=PASSWORD + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return url


@pytest.mark.slow
def test_two_workers_serve_concurrent_writes(
    database: str, ketapain: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """Two worker processes answer on one port; 40 patients registered at once by 40
    threads are all there once, with an intact audit trail; the demo logins show; SIGINT
    stops the server and its workers."""
    server = Server(ketapain, database, env, tmp_path / "serve.log")
    server.start()
    try:
        workers = server.serving_workers()
        assert "Started parent process" in server.tail()
        with httpx.Client(base_url=server.base, timeout=60.0) as client:
            login = client.post(
                f"{API}/auth/token", json={"username": "desk", "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

            def register(i: int) -> tuple[int, str]:
                body = {
                    "mrn": f"SW-{i:03d}",
                    "family_name": f"Worker{i:03d}",
                    "given_name": "Test",
                    "birth_date": "1980-05-01",
                    "sex": "female" if i % 2 else "male",
                }
                resp = client.post(f"{API}/patients", json=body, headers=headers)
                return resp.status_code, resp.text

            with ThreadPoolExecutor(max_workers=WRITES) as pool:
                answers = list(pool.map(register, range(WRITES)))
            assert [code for code, _ in answers] == [201] * WRITES, answers
            for _ in range(4):
                assert "nurse.demo" in client.get("/login").text
        assert server.proc is not None
        assert _workers(server.proc.pid) == workers, server.tail()
        code = server.interrupt()
    finally:
        server.kill()
    assert code in (0, -signal.SIGINT), f"exit {code} on SIGINT\n{server.tail()}"
    assert "Stopping parent process" in server.tail()
    deadline = time.monotonic() + 10.0
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, f"workers {workers} outlived the server"
        time.sleep(0.1)
    db = Database.connect(database)
    try:
        with db.session() as s:
            mrns = s.scalars(select(Patient.mrn).where(Patient.mrn.like("SW-%"))).all()
            trail = verify_trail(s)
    finally:
        db.dispose()
    assert sorted(mrns) == [f"SW-{i:03d}" for i in range(WRITES)]
    assert trail.intact, trail.problems


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_workers_refuse_an_in_memory_database(
    ketapain: Path, env: dict[str, str], url: str
) -> None:
    """More than one worker on an in-memory database (one per process) exits 2, naming
    ``workers``, without serving."""
    port = _free_port()
    done = subprocess.run(
        [str(ketapain), "serve", "--workers", "2", "--database-url", url, "--port", str(port)],
        stdin=subprocess.DEVNULL,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2, output
    assert "error: workers must be 1 for an in-memory database" in output
    assert "Uvicorn running" not in output
