"""Conditional GET: an ETag on cacheable JSON responses, and 304 for a matching If-None-Match."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.cache.core import EncodedJSON
from server.http.openapi import json_response

# Clients may keep the body but must revalidate each time; a 304 costs no body.
CACHE_CONTROL = "no-cache"
ETAG_HEADERS = {
    "ETag": {"schema": {"type": "string"}, "description": "The representation's version."},
    "Cache-Control": {"schema": {"type": "string"}, "description": "`no-cache`: revalidate."},
}
NOT_MODIFIED = {"description": "Not modified: the If-None-Match ETag is current."}
IF_NONE_MATCH = {
    "in": "header",
    "name": "If-None-Match",
    "required": False,
    "schema": {"type": "string"},
    "description": "An ETag from an earlier answer: 304 with no body if it is still current.",
}


def cacheable_json(request: web.Request, data: Any) -> web.Response:
    """`data` as JSON with a strong ETag over the body; 304 when the client has it already.
    An EncodedJSON document (a cache hit) is sent as it is."""
    body = data if isinstance(data, EncodedJSON) else EncodedJSON.of(data)
    tag = body.etag
    headers = {"ETag": f'"{tag}"', "Cache-Control": CACHE_CONTROL}
    if _matches(request, tag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", headers=headers)


def _matches(request: web.Request, tag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/ prefixes do not matter."""
    wanted = request.if_none_match
    return bool(wanted) and any(e.value in (tag, "*") for e in wanted or ())


def cacheable_ok(description: str, example: Any) -> dict[int, Any]:
    """OpenAPI answers of a cacheable GET: 200 with its ETag, and 304."""
    return {200: json_response(description, example) | {"headers": ETAG_HEADERS}, 304: NOT_MODIFIED}
