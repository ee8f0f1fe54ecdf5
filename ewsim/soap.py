"""SOAP/EWS XML helpers: namespaces, request parsing, response and fault building."""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
NSMAP = {"s": SOAP, "m": M, "t": T}

# The build we claim to be: Exchange 2016 CU (15.1.x). exchangelib reads it from every response header.
SERVER_BUILD = {"MajorVersion": "15", "MinorVersion": "1", "MajorBuildNumber": "2507", "MinorBuildNumber": "6"}
SERVER_API_VERSION = "Exchange2016"

# A parser that never resolves entities or fetches DTDs, and refuses huge trees: requests are untrusted input.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=True)


class SoapParseError(ValueError):
    """The request is not a well-formed SOAP envelope."""


def t(name: str) -> str:
    return f"{{{T}}}{name}"


def m(name: str) -> str:
    return f"{{{M}}}{name}"


def local(tag: object) -> str:
    """The local part of an element tag ("{ns}Name" -> "Name"); comments and PIs give ""."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def children(elem: etree._Element | None) -> list[etree._Element]:
    """Element children only (skips comments and processing instructions)."""
    if elem is None:
        return []
    return [c for c in elem if isinstance(c.tag, str)]


def child(elem: etree._Element | None, name: str) -> etree._Element | None:
    """First child with the given local name, in any namespace."""
    for c in children(elem):
        if local(c.tag) == name:
            return c
    return None


def child_text(elem: etree._Element | None, name: str) -> str | None:
    c = child(elem, name)
    return None if c is None else (c.text or "")


def parse_envelope(body: bytes) -> tuple[etree._Element | None, etree._Element]:
    """Return (Header or None, the operation element inside Body)."""
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise SoapParseError(f"Malformed XML: {exc}") from exc
    if root.getroottree().docinfo.doctype:
        raise SoapParseError("DTDs are not allowed in SOAP requests")
    if root.tag != f"{{{SOAP}}}Envelope":
        raise SoapParseError("Root element is not a SOAP 1.1 Envelope")
    header = root.find(f"{{{SOAP}}}Header")
    soap_body = root.find(f"{{{SOAP}}}Body")
    ops = children(soap_body)
    if soap_body is None or len(ops) != 1:
        raise SoapParseError("SOAP Body must contain exactly one operation element")
    return header, ops[0]


def el(parent: etree._Element | None, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    """Create an element (as a child of parent when given). tag is "t:Name" or "m:Name"."""
    prefix, name = tag.split(":", 1)
    qname = f"{{{NSMAP[prefix]}}}{name}"
    node = etree.Element(qname, nsmap=NSMAP) if parent is None else etree.SubElement(parent, qname)
    for key, value in attrs.items():
        node.set(key, value)
    if text is not None:
        node.text = text
    return node


def _envelope() -> tuple[etree._Element, etree._Element]:
    env = etree.Element(f"{{{SOAP}}}Envelope", nsmap=NSMAP)
    header = etree.SubElement(env, f"{{{SOAP}}}Header")
    info = etree.SubElement(header, t("ServerVersionInfo"))
    for key, value in SERVER_BUILD.items():
        info.set(key, value)
    info.set("Version", SERVER_API_VERSION)
    body = etree.SubElement(env, f"{{{SOAP}}}Body")
    return env, body


def serialize(env: etree._Element) -> bytes:
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def response_envelope(operation: str, messages: Iterable[etree._Element]) -> bytes:
    """Wrap response messages in <m:{operation}Response><m:ResponseMessages>."""
    env, body = _envelope()
    resp = etree.SubElement(body, m(f"{operation}Response"))
    container = etree.SubElement(resp, m("ResponseMessages"))
    for msg in messages:
        container.append(msg)
    return serialize(env)


def success_message(operation: str) -> etree._Element:
    msg = el(None, f"m:{operation}ResponseMessage", ResponseClass="Success")
    el(msg, "m:ResponseCode", "NoError")
    return msg


def error_message(operation: str, code: str, text: str, values: dict[str, str] | None = None) -> etree._Element:
    msg = el(None, f"m:{operation}ResponseMessage", ResponseClass="Error")
    el(msg, "m:MessageText", text)
    el(msg, "m:ResponseCode", code)
    el(msg, "m:DescriptiveLinkKey", "0")
    if values:
        xml = el(msg, "m:MessageXml")
        for name, value in values.items():
            el(xml, "t:Value", value, Name=name)
    return msg


def fault_envelope(code: str, text: str, values: dict[str, str] | None = None, client: bool = True) -> bytes:
    """A SOAP Fault the way Exchange sends them: detail/e:ResponseCode, e:Message, t:MessageXml."""
    env, body = _envelope()
    fault = etree.SubElement(body, f"{{{SOAP}}}Fault")
    etree.SubElement(fault, "faultcode").text = "a:" + code if not client else "s:Client"
    etree.SubElement(fault, "faultstring").text = text
    detail = etree.SubElement(fault, "detail")
    detail_code = etree.SubElement(detail, f"{{{E}}}ResponseCode", nsmap={"e": E})
    detail_code.text = code
    etree.SubElement(detail, f"{{{E}}}Message", nsmap={"e": E}).text = text
    if values:
        xml = etree.SubElement(detail, t("MessageXml"))
        for name, value in values.items():
            el(xml, "t:Value", value, Name=name)
    return serialize(env)
