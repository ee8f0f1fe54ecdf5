"""A tiny client for the control interface (stdlib only, so the portal can use it anywhere)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote


class ControlError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class Control:
    """Wraps /_ewsim/: mailboxes, items, request log, faults and reset."""

    def __init__(self, base_url: str, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    @property
    def ews_url(self) -> str:
        return self.base_url + "/EWS/Exchange.asmx"

    def request(self, method: str, path: str, data: Any = None, raw: bytes | None = None) -> Any:
        """Send JSON `data` (or a `raw` body) to /_ewsim/<path>; returns the decoded JSON answer."""
        body = raw if raw is not None else None if data is None else json.dumps(data).encode()
        req = urllib.request.Request(
            self.base_url + "/_ewsim/" + path.lstrip("/"),
            data=body,
            method=method,
            headers={"Content-Type": "message/rfc822" if raw is not None else "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            raise ControlError(exc.code, json.loads(raw) if raw else None) from None
        return json.loads(raw) if raw else None

    # ---- readiness --------------------------------------------------------------------------
    def health(self) -> bool:
        try:
            return self.request("GET", "health") == {"status": "ok"}
        except (OSError, ControlError):
            return False

    def wait_ready(self, timeout: float = 15.0, interval: float = 0.05) -> None:
        """Poll /_ewsim/health until the server answers (for servers started as subprocesses)."""
        deadline = time.monotonic() + timeout
        while not self.health():
            if time.monotonic() > deadline:
                raise TimeoutError(f"ewsim at {self.base_url} did not become ready in {timeout}s")
            time.sleep(interval)  # polling interval, not synchronisation: readiness is checked each round

    # ---- mailboxes --------------------------------------------------------------------------
    def create_mailbox(
        self, address: str, password: str, can_impersonate: bool = False, display_name: str = ""
    ) -> dict:
        return self.request(
            "POST",
            "mailboxes",
            {
                "address": address,
                "password": password,
                "can_impersonate": can_impersonate,
                "display_name": display_name,
            },
        )

    def mailboxes(self) -> list[dict]:
        return self.request("GET", "mailboxes")

    def delete_mailbox(self, address: str) -> None:
        self.request("DELETE", f"mailboxes/{quote(address, safe='')}")

    def folders(self, address: str) -> list[dict]:
        return self.request("GET", f"mailboxes/{quote(address, safe='')}/folders")

    # ---- items ------------------------------------------------------------------------------
    def items(self, address: str, folder: str) -> list[dict]:
        return self.request("GET", f"mailboxes/{quote(address, safe='')}/folders/{quote(folder, safe='')}/items")

    def add_item(self, address: str, folder: str, item: dict) -> dict:
        return self.request("POST", f"mailboxes/{quote(address, safe='')}/folders/{quote(folder, safe='')}/items", item)

    def add_mime(
        self, address: str, folder: str, mime: bytes | str, is_read: bool = False, categories: list[str] | None = None
    ) -> dict:
        """Create a message from raw RFC 822 text, parsed as CreateItem with MimeContent is."""
        raw = mime.encode() if isinstance(mime, str) else mime
        path = f"mailboxes/{quote(address, safe='')}/folders/{quote(folder, safe='')}/mime"
        if categories:
            text = raw.decode("utf-8", "surrogateescape")
            return self.request("POST", path, {"mime": text, "is_read": is_read, "categories": categories})
        return self.request("POST", path + ("?is_read=true" if is_read else ""), raw=raw)

    def get_item(self, item_id: str) -> dict:
        return self.request("GET", f"items/{quote(item_id, safe='')}")

    def update_item(self, item_id: str, changes: dict) -> dict:
        return self.request("PATCH", f"items/{quote(item_id, safe='')}", changes)

    def delete_item(self, item_id: str) -> None:
        self.request("DELETE", f"items/{quote(item_id, safe='')}")

    # ---- log, faults, reset -----------------------------------------------------------------
    def requests(self) -> list[dict]:
        return self.request("GET", "requests")

    def clear_requests(self) -> None:
        self.request("DELETE", "requests")

    def add_fault(self, operation: str, count: int = 1, mailbox: str | None = None, **how: Any) -> dict:
        """how: error="ErrorServerBusy" [back_off_ms=...] | http_status=503 | delay_ms=2000."""
        spec = {"operation": operation, "count": count, **how}
        if mailbox:
            spec["mailbox"] = mailbox
        return self.request("POST", "faults", spec)

    def clear_faults(self) -> None:
        self.request("DELETE", "faults")

    def reset(self) -> None:
        self.request("POST", "reset")
