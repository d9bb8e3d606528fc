"""Tests of ``ketapain db``, ``ketapain users`` and ``ketapain serve``."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from ketapain.cli.main import app
from ketapain.clinic import migrate

runner = CliRunner()


def _url(tmp_path: Path, name: str = "k.db") -> str:
    return f"sqlite:///{tmp_path / name}"


def _invoke(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.output


def test_db_upgrade_then_already_current(tmp_path: Path) -> None:
    """``db upgrade`` migrates an empty database to 0004; a second run says it is current."""
    url = _url(tmp_path)
    code, out = _invoke("db", "upgrade", "--database-url", url)
    assert code == 0, out
    assert migrate.head() == "0004"
    assert "revision 0004" in out
    assert "migrated from empty" in out
    code, out = _invoke("db", "upgrade", "--database-url", url)
    assert code == 0, out
    assert "already current" in out


def test_db_status(tmp_path: Path) -> None:
    """``db status`` exits 1 on an empty database and 0 once it is migrated."""
    url = _url(tmp_path)
    code, out = _invoke("db", "status", "--database-url", url)
    assert code == 1
    assert "database revision: empty" in out
    assert _invoke("db", "upgrade", "--database-url", url)[0] == 0
    code, out = _invoke("db", "status", "--database-url", url)
    assert code == 0, out
    assert "database revision: 0004; newest: 0004" in out


def test_users_create_and_list(tmp_path: Path) -> None:
    """``users create --password-stdin`` adds a user that ``users list`` shows."""
    url = _url(tmp_path)
    assert _invoke("db", "upgrade", "--database-url", url)[0] == 0
    code, out = _invoke(
        "users",
        "create",
        "--username",
        "dr.who",
        "--role",
        "physician",
        "--full-name",
        "Dr Who",
        "--password-stdin",
        "--database-url",
        url,
        stdin="secret-pass-1\n",
    )
    assert code == 0, out
    assert "dr.who" in out and "physician" in out
    code, out = _invoke("users", "list", "--database-url", url)
    assert code == 0, out
    assert "dr.who" in out and "Dr Who" in out and "physician" in out
    assert "secret-pass-1" not in out


def test_users_create_refuses_a_short_password(tmp_path: Path) -> None:
    """A password under 8 characters exits 2 with a message naming the password."""
    url = _url(tmp_path)
    assert _invoke("db", "upgrade", "--database-url", url)[0] == 0
    code, out = _invoke(
        "users",
        "create",
        "--username",
        "nurse.x",
        "--role",
        "nurse",
        "--full-name",
        "Nurse X",
        "--password-stdin",
        "--database-url",
        url,
        stdin="short\n",
    )
    assert code == 2
    assert "password" in out and "at least 8 characters" in out
    assert "'short'" not in out  # the password itself is never echoed
    assert "nurse.x" not in _invoke("users", "list", "--database-url", url)[1]


def test_db_demo_fills_once(tmp_path: Path) -> None:
    """``db demo`` fills a fresh database and lists the demo logins; a second run exits 2."""
    url = _url(tmp_path)
    code, out = _invoke("db", "demo", "--database-url", url, "--today", "2026-11-21")
    assert code == 0, out
    for username in ("dr.demo", "nurse.demo", "desk.demo", "admin.demo"):
        assert username in out
    assert "ketapain-demo" in out
    assert "8 patients" in out
    code, out = _invoke("db", "demo", "--database-url", url, "--today", "2026-11-21")
    assert code == 2
    assert "holds patients already" in out


def test_db_demo_refuses_a_bad_date(tmp_path: Path) -> None:
    """A ``--today`` that is not a date exits 2 with an error."""
    code, out = _invoke("db", "demo", "--database-url", _url(tmp_path), "--today", "21/11/2026")
    assert code == 2
    assert "error" in out


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.slow
def test_serve_with_demo_data(tmp_path: Path) -> None:
    """``serve --demo`` prints the address and the demo logins, answers health, logs in a
    demo user, lists the 8 demo patients and serves the sign-in page."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}/api/v1"
    log = (tmp_path / "serve.log").open("w")
    command = [
        sys.executable,
        "-c",
        "from ketapain.cli.main import app; app()",
        "serve",
        "--port",
        str(port),
        "--database-url",
        _url(tmp_path, "s.db"),
        "--demo",
    ]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        login = httpx.post(
            f"{base}/auth/token",
            json={"username": "dr.demo", "password": "ketapain-demo"},
            timeout=10,
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        patients = httpx.get(
            f"{base}/patients", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert patients.status_code == 200
        assert len(patients.json()) == 8
        assert httpx.get(f"{base}/patients", timeout=10).status_code == 401
        page = httpx.get(f"http://127.0.0.1:{port}/login", timeout=10)
        assert page.status_code == 200 and "nurse.demo" in page.text  # demo logins shown
        printed = (tmp_path / "serve.log").read_text()
        assert f"http://127.0.0.1:{port}/" in printed
        assert "dr.demo" in printed and "ketapain-demo" in printed
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
