"""Request bodies: JSON, at most CLIENT_API_MAX_BODY_BYTES.

DRF reads the body straight from the socket, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE: this
parser stops reading at the limit (413) instead of parsing whatever size a client sends.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from clients.api.errors import RequestTooLarge


class LimitedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        limit = settings.CLIENT_API_MAX_BODY_BYTES
        too_large = RequestTooLarge(_("The body may hold at most %(n)d bytes.") % {"n": limit})
        request = (parser_context or {}).get("request")
        length = request.META.get("CONTENT_LENGTH") if request is not None else None
        if length and str(length).isdigit() and int(length) > limit:
            raise too_large
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise too_large
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.loads(raw.decode(encoding), parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError) as error:
            raise ParseError(str(error)) from None


def _refuse_constant(name: str) -> None:
    raise ValueError(_("%(name)s is not JSON.") % {"name": name})
