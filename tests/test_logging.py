"""What the server log prints for refused and failing requests."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from crmsync_portal.logfilters import RefusalWithoutTraceback


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """The text the portal's console handler writes during the test."""
    (handler,) = [
        h for h in logging.getLogger().handlers if any(isinstance(f, RefusalWithoutTraceback) for f in h.filters)
    ]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)


def test_a_refused_request_is_one_line_without_traceback(client: Client, alice: Any, console: io.StringIO) -> None:
    client.force_login(alice)
    assert client.get("/mailboxes/").status_code == 403
    text = console.getvalue()
    assert text.count("Forbidden (Permission denied): /mailboxes/") == 1
    assert "Traceback" not in text


def test_an_error_keeps_its_traceback(console: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("django.request").error("Internal Server Error: /x/", exc_info=True)
    text = console.getvalue()
    assert text.count("Internal Server Error: /x/") == 1
    assert "Traceback" in text and "ValueError: boom" in text
