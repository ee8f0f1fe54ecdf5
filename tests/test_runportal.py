"""The README's run command: ``manage.py runportal`` serves the portal with demo data and
stops cleanly on SIGTERM, leaving no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
import requests

from crmsync_portal.management.commands.runportal import free_port, port_in_use

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
SIGN_IN = re.compile(r"Demo sign-in: user name “admin”, password “([^”]+)”")

pytestmark = pytest.mark.slow


class Output:
    """Collects a pipe's lines in a thread, so the child never blocks on a full pipe."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)


def process_table() -> dict[int, tuple[int, str, str]]:
    """{pid: (parent pid, start time, state)} of every process, from /proc."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        table[int(stat.parent.name)] = (int(fields[1]), fields[19], fields[0])
    return table


def descendants(pid: int) -> dict[int, str]:
    """{pid: start time} of every process below pid (the start time tells a reused pid apart)."""
    table = process_table()
    found: dict[int, str] = {}
    parents = [pid]
    while parents:
        parent = parents.pop()
        for child, (ppid, started, _) in table.items():
            if ppid == parent and child not in found:
                found[child] = started
                parents.append(child)
    return found


def still_running(processes: dict[int, str]) -> list[int]:
    table = process_table()
    return [
        pid
        for pid, started in processes.items()
        if pid in table and table[pid][1] == started and table[pid][2] != "Z"  # a zombie has exited
    ]


@pytest.fixture
def portal_env(tmp_path: Path) -> dict[str, str]:
    """A checkout's environment with nothing configured: fresh SQLite, secrets and Redis in tmp."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ENCRYPTION_KEYS", "DEBUG", "PORT", "ALLOWED_HOSTS"}
    }
    # No PYTHONUNBUFFERED: the sign-in must show up on a pipe (a log, `| tee`) while it runs.
    env |= {"VAR_DIR": str(tmp_path / "var"), "PYTHONIOENCODING": "utf-8"}
    env.pop("PYTHONUNBUFFERED", None)
    return env


@pytest.fixture
def portal(portal_env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], int, Output, Output]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runportal", "--port", str(port)],
        cwd=ROOT,
        env=portal_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    out, err = Output(proc.stdout), Output(proc.stderr)  # type: ignore[arg-type]
    seen: dict[int, str] = {}
    try:
        yield proc, port, out, err
    finally:
        # Whatever the test did: nothing of the portal may outlive it.
        if proc.poll() is None:
            seen |= descendants(proc.pid)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in still_running(seen):
            os.kill(pid, signal.SIGKILL)


def wait_until_ready(proc: subprocess.Popen[str], port: int, out: Output, err: Output) -> str:
    """Poll /login/ and the output until the portal answers and printed the sign-in; the password."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        match = SIGN_IN.search(out.text)
        if match and "Stop with Ctrl-C." in out.text:
            response = requests.get(f"http://127.0.0.1:{port}/login/", timeout=5)
            assert response.status_code == 200
            return match.group(1)
        try:
            proc.wait(timeout=0.25)  # the poll interval, and a check that it is still running
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"runportal exited with {proc.returncode}:\n{out.text}\n{err.text}")
    pytest.fail(f"runportal did not get ready within {READY_TIMEOUT:.0f} s:\n{out.text}\n{err.text}")


def test_runportal_serves_the_demo_and_stops_cleanly(
    portal: tuple[subprocess.Popen[str], int, Output, Output],
) -> None:
    proc, port, out, err = portal
    base = f"http://127.0.0.1:{port}"

    password = wait_until_ready(proc, port, out, err)
    assert f"CRM Sync Portal:  http://127.0.0.1:{port}/" in out.text
    children = descendants(proc.pid)
    # At least the embedded Redis, the RQ worker and the web server (and ewsim when present).
    assert len(children) >= 3, out.text

    # 1. The printed sign-in works and the administrator lands on the dashboard.
    session = requests.Session()
    session.get(f"{base}/login/", timeout=10).raise_for_status()
    response = session.post(
        f"{base}/login/",
        data={"username": "admin", "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.url == f"{base}/dashboard/"
    assert '<h1 class="h3 mb-4">Dashboard</h1>' in response.text
    assert '<a href="/mailboxes/">3</a>' in response.text  # the demo's three mailboxes

    # 2. SIGTERM stops it within a bounded time, with every child process and the port.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=STOP_TIMEOUT) == 0, err.text
    assert "Stopping" in out.text
    # The children stop before Redis: no worker or scheduler complains that it is gone.
    assert "Traceback" not in err.text and "Connection refused" not in err.text, err.text
    assert still_running(children) == []
    assert not port_in_use("127.0.0.1", port)
