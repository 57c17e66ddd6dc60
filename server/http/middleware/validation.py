"""Input validation by apigami's schemas (request_schema, querystring_schema,
match_info_schema), run only for handlers that declare one."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import validation_middleware
from aiohttp_apigami.constants import SCHEMAS_ATTR

# Calls the handler through apigami's validation (a middleware function, called directly).
validate = validation_middleware


def declares_schemas(route: web.AbstractRoute) -> bool:
    """Whether apigami must validate requests to `route` (the router's 404/405 never)."""
    if route.resource is None:
        return False
    handler = route.handler
    # @docs leaves an empty list behind; only a non-empty one means validation.
    return bool(getattr(handler, SCHEMAS_ATTR, None)) or isinstance(handler, type)
