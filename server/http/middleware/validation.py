"""Input validation by apigami's schemas (request_schema, querystring_schema,
match_info_schema), run only for handlers that declare one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp_apigami import validation_middleware
from aiohttp_apigami.constants import SCHEMAS_ATTR

Step = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def validating() -> Step:
    """Call the handler, through apigami's validation when it declares schemas; whether it
    does is remembered per handler (hasattr is slow)."""
    known: dict[object, bool] = {}  # routed handlers: a bounded set of functions and views

    def has_schemas(request: web.Request) -> bool:
        match_info = request.match_info
        if match_info.route.resource is None:  # 404/405: a new system handler every time
            return False
        handler = match_info.handler
        found = known.get(handler)
        if found is None:
            # @docs leaves an empty list behind; only a non-empty one means validation.
            found = bool(getattr(handler, SCHEMAS_ATTR, None)) or isinstance(handler, type)
            known[handler] = found
        return found

    async def call(request: web.Request, handler: Handler) -> web.StreamResponse:
        if has_schemas(request):
            return await validation_middleware(request, handler)
        return await handler(request)

    return call
