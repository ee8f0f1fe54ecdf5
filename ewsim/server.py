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

    def _read_body(self) -> bytes | tuple[int, bytes]:
        """The request body, or (status, message) for a request to refuse (the connection is then closed)."""
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked" or length_header is None:
            return (411, b"Content-Length required") if self.command in ("POST", "PATCH") else b""
        try:
            length = int(length_header)
        except ValueError:
            return 400, b"Bad Content-Length"
        if length < 0 or length > self.server.simulator.max_body:
            return 413, b"Request entity too large"  # not reading an oversized body
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
        is_ews = path.lower() == EWS_PATH
        body = self._read_body()
        if isinstance(body, tuple):
            status, message = body
            if is_ews:
                self._record(Reply(status, b"", response_code=None), wall, started)
            self._send(status, message, {"Content-Type": "text/plain"}, close=True)
            return
        if path.startswith(control.PREFIX):
            status, data = control.handle(self.server.simulator, self.command, self.path, body)
            self._send_json(status, data)
        elif is_ews and self.command == "POST":
            reply = self.server.simulator.handle_ews(self.headers.get("Authorization"), body)
            # Log before answering: a client that reads the log after its reply must find its request there.
            self._record(reply, wall, started)
            self._send(reply.status, reply.body, reply.headers)
        elif is_ews:
            self._send(405, b"Use POST with a SOAP envelope", {"Allow": "POST", "Content-Type": "text/plain"})
        else:
            self._send(404, b"Not found", {"Content-Type": "text/plain"})

    def _record(self, reply: Reply, wall: float, started: float) -> None:
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
