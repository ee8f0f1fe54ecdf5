"""HTTP plumbing: a threaded server routing /EWS/Exchange.asmx and the /_ewsim/ control interface."""

from __future__ import annotations

import json
import logging
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import control
from .ews import Reply, Simulator
from .store import Store

log = logging.getLogger("ewsim")
EWS_PATH = "/ews/exchange.asmx"


class Handler(BaseHTTPRequestHandler):
    server: EwsHttpServer
    # HTTP/1.1 keeps connections alive: exchangelib pools sessions and treats "Connection: close"
    # on an error response as a throttling signal.
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0 ewsim"
    disable_nagle_algorithm = True  # headers and body go out in separate writes; avoid 40 ms delayed-ACK stalls

    def log_message(self, format: str, *args: Any) -> None:  # route access logs to logging, not stderr
        log.debug("%s - %s", self.address_string(), format % args)

    # ---- plumbing ---------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None, close: bool = False) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, data: Any) -> None:
        body = b"" if data is None else json.dumps(data, indent=1).encode()
        self._send(status, body, {"Content-Type": "application/json"} if body else {})

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering 411/413 (the connection is then closed)."""
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked" or length_header is None:
            if self.command == "POST" or self.command == "PATCH":
                self._send(411, b"Content-Length required", {"Content-Type": "text/plain"}, close=True)
                return None
            return b""
        try:
            length = int(length_header)
        except ValueError:
            self._send(400, b"Bad Content-Length", {"Content-Type": "text/plain"}, close=True)
            return None
        if length < 0 or length > self.server.simulator.max_body:
            # Not reading an oversized body: answer and drop the connection.
            self._send(413, b"Request entity too large", {"Content-Type": "text/plain"}, close=True)
            return None
        return self.rfile.read(length)

    # ---- verbs ------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        wall, started = time.time(), time.monotonic()
        path = self.path.split("?")[0]
        body = self._read_body()
        if body is None:
            self._log_rejected(wall, started, 413)
            return
        if path.startswith(control.PREFIX):
            status, data = control.handle(self.server.simulator, self.command, self.path, body)
            self._send_json(status, data)
        elif path.lower() == EWS_PATH and self.command == "POST":
            reply = self.server.simulator.handle_ews(self.headers.get("Authorization"), body)
            self._send(reply.status, reply.body, reply.headers)
            self.server.simulator.record(reply, wall, (time.monotonic() - started) * 1000)
        elif path.lower() == EWS_PATH:
            self._send(405, b"Use POST with a SOAP envelope", {"Allow": "POST", "Content-Type": "text/plain"})
        else:
            self._send(404, b"Not found", {"Content-Type": "text/plain"})

    def _log_rejected(self, wall: float, started: float, status: int) -> None:
        if self.path.split("?")[0].lower() == EWS_PATH:
            reply = Reply(status, b"", response_code=None)
            self.server.simulator.record(reply, wall, (time.monotonic() - started) * 1000)


class EwsHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def make_server(
    host: str = "127.0.0.1", port: int = 0, data: str | None = None, max_body: int = 10 * 1024 * 1024
) -> EwsHttpServer:
    """A ready-to-serve server (port 0 picks a free port; see .url)."""
    return EwsHttpServer((host, port), Simulator(Store(data), max_body=max_body))
