"""Fixtures of the reliability tests: the environment the server processes run in, and a
summary of the crash harness's numbers at the end of the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# The modules `ketapain serve` imports, compiled once before the first start.
_WARM_UP = "import ketapain.cli.main, ketapain.web.app"
_WARM_UP_TIMEOUT_S = 300


@pytest.fixture(scope="session")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of the ``ketapain`` processes the tests start.

    The ``KETAPAIN_*`` settings of the caller are left out (the tests pass the database on
    the command line). Where ``PYTHONDONTWRITEBYTECODE`` is set (CI), the compiled modules
    go to a temporary ``PYTHONPYCACHEPREFIX`` instead of nowhere, so that each restart of
    the server does not compile the whole application again; nothing is written to the
    source tree. The modules are compiled here, once per session.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("KETAPAIN_")}
    if env.pop("PYTHONDONTWRITEBYTECODE", None):
        env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    done = subprocess.run(
        [sys.executable, "-c", _WARM_UP],
        env=env,
        capture_output=True,
        text=True,
        timeout=_WARM_UP_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"importing the server failed:\n{done.stderr[-4000:]}"
    return env


@pytest.fixture(scope="session")
def ketapain_command() -> Path:
    """The ``ketapain`` console script of this environment."""
    command = Path(sys.executable).with_name("ketapain")
    assert command.exists(), f"no console script at {command}: run `uv sync`"
    return command


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the crash harness's summary (rounds, writes acknowledged, unknown, found)."""
    lines = [
        f"{report.nodeid}: {value}"
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == "crash_summary"
    ]
    if lines:
        terminalreporter.section("server crash harness")
        for line in lines:
            terminalreporter.write_line(line)
