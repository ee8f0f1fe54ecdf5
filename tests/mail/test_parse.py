"""Parsing RFC 822 messages: what the CRM keeps, and bad input recorded in words."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from syncjobs.mail.parse import BadMessage, parse, sanitize, thread_key, tracking_number

SIMPLE = (
    b"From: =?utf-8?q?J=C3=B8rgen?= <Jorgen@Customer.Example>\r\nTo: alice@example.com, Bob <BOB@example.com>\r\n"
    b"Cc: carol@example.com\r\nSubject: =?utf-8?q?Tilbud_p=C3=A5_varer?=\r\nMessage-ID: <abc@customer.example>\r\n"
    b"In-Reply-To: <p@crm.example>\r\nReferences: <root@crm.example>\r\n <p@crm.example>\r\n"
    b"Date: Mon, 02 Mar 2026 10:00:00 +0100\r\n\r\nHej Alice\r\n"
)


def test_it_reads_headers_addresses_and_body() -> None:
    p = parse(SIMPLE)
    assert p.message_id == "<abc@customer.example>" and p.subject == "Tilbud på varer"
    assert (p.sender.address, p.sender.name) == ("jorgen@customer.example", "Jørgen")
    assert [a.address for a in p.to] == ["alice@example.com", "bob@example.com"]
    assert [a.address for a in p.cc] == ["carol@example.com"]
    assert p.reply_ids == ["<p@crm.example>", "<root@crm.example>"]
    assert p.sent_at.isoformat() == "2026-03-02T10:00:00+01:00"
    assert p.body_text.strip() == "Hej Alice" and not p.notes


def test_html_is_sanitized_and_the_text_taken_from_it() -> None:
    raw = (
        b"From: a@b.example\r\nSubject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><style>p{}</style></head><body><p onclick='x()'>Hi &amp; bye</p>"
        b"<script>alert(1)</script><a href='javascript:evil()'>link</a><iframe src='x'></iframe></body></html>"
    )
    p = parse(raw)
    for bad in ("script", "onclick", "javascript", "iframe", "style"):
        assert bad not in p.body_html
    assert "<p>Hi &amp; bye</p>" in p.body_html
    assert p.body_text.startswith("Hi & bye")
    assert any("Scripts" in n for n in p.notes)


def test_plain_html_without_active_content_has_no_note() -> None:
    raw = b"From: a@b.example\r\nMessage-ID: <m@b>\r\nContent-Type: text/html\r\n\r\n<p>Call me on monday</p>"
    assert parse(raw).notes == ()


@pytest.mark.parametrize(
    ("charset", "payload", "expected", "note"),
    [
        ("iso-8859-1", "café".encode("latin-1"), "café", None),
        ("us-ascii", "café".encode(), "café", "read as UTF-8"),
        ("klingon", b"caf\xe9", "caf\ufffd", "unknown charset"),
        ("utf-8", b"caf\xe9", "caf\ufffd", "replaced"),
    ],
)
def test_charsets(charset: str, payload: bytes, expected: str, note: str | None) -> None:
    head = f"From: a@b.example\r\nMessage-ID: <m@b>\r\nContent-Type: text/plain; charset={charset}\r\n\r\n"
    p = parse(head.encode() + payload)
    assert p.body_text == expected
    assert not p.notes if note is None else any(note in n for n in p.notes)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "empty"),
        (b"   \r\n", "empty"),
        (b"\x00\x01\x02\x03 binary junk", "malformed"),
        (b"just a line of text\r\n\r\nand a body", "malformed"),
    ],
)
def test_unreadable_messages_are_refused_in_words(raw: bytes, words: str) -> None:
    with pytest.raises(BadMessage) as caught:
        parse(raw)
    assert words in caught.value.reason


def test_the_size_limit(settings: Any) -> None:
    settings.EMAIL_MAX_BYTES = 100
    with pytest.raises(BadMessage, match="limit of 100 bytes"):
        parse(SIMPLE + b"x" * 100)


def test_a_missing_message_id_is_made_from_the_content() -> None:
    raw = b"From: a@b.example\r\nSubject: x\r\n\r\nbody"
    assert parse(raw).message_id == parse(raw).message_id != parse(raw + b"!").message_id
    assert any("no Message-ID" in n for n in parse(raw).notes)


def test_undecodable_header_bytes_and_nul_are_made_storable() -> None:
    raw = b"From: a@b.example\r\nSubject: caf\xe9 \x00x\r\n\r\nbody"
    subject = parse(raw).subject
    assert "\x00" not in subject and subject.encode("utf-8")


def test_thread_index_and_forwarded_messages() -> None:
    index = bytes(range(27))
    inner = b"From: c@d.example\r\nSubject: original\r\nMessage-ID: <o@d>\r\n\r\nfirst"
    raw = (
        b"From: a@b.example\r\nSubject: Fw\r\nThread-Index: " + base64.b64encode(index) + b"\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--B\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--B--\r\n"
    )
    p = parse(raw)
    assert p.thread_index == index and p.thread_key == thread_key(index) == index[:22].hex()
    assert p.body_text.strip() == "see attached"
    assert len(p.forwarded) == 1 and parse(p.forwarded[0]).message_id == "<o@d>"


def test_tracking_numbers() -> None:
    assert tracking_number("RE: Offer CRM:0001234") == 1234
    assert tracking_number("crm:77 follow-up") == 77
    assert tracking_number("CRM: no number, then CRM:5") == 5
    assert tracking_number("Nothing here") is None


def test_sanitize_keeps_links_safe() -> None:
    assert 'rel="noopener noreferrer nofollow"' in sanitize('<a href="https://x.example">x</a>')
