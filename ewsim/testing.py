"""Helpers for tests: run a simulator on a free port inside the current process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .client import Control
from .server import EwsHttpServer, make_server


class RunningSimulator:
    """A simulator served from a background thread; `url` is the base URL, `ews_url` the endpoint."""

    def __init__(self, server: EwsHttpServer) -> None:
        self.server = server
        self.url = server.url
        self.ews_url = self.url + "/EWS/Exchange.asmx"
        self.control = Control(self.url)


@contextmanager
def running_simulator(
    host: str = "127.0.0.1", data: str | None = None, max_body: int = 10 * 1024 * 1024
) -> Iterator[RunningSimulator]:
    """Start ewsim on a free port in a thread; yields a RunningSimulator and shuts it down afterwards."""
    server = make_server(host, 0, data=data, max_body=max_body)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="ewsim", daemon=True)
    thread.start()
    try:
        yield RunningSimulator(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        if server.simulator.store.backend:
            server.simulator.store.backend.close()
