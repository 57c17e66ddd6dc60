"""What aiohttp answers itself, before any route runs: a request it cannot parse (a bad request
line, a header that is not HTTP, a body framing it refuses) gets the same problem+json and
security headers as every other answer, without aiohttp's `Server` header, and is logged as
one line without a traceback.

aiohttp builds these answers in `RequestHandler.handle_error`, outside the application, so no
middleware or response hook sees them. `ProblemRunner` is the `web.AppRunner` whose
connections use `ProblemHandler`, which overrides that one method. Written here rather than
found in a library: nothing else sits at that level of aiohttp; the test that sends such
requests to `btecctl serve` (tests/http/test_hardening.py) fails if aiohttp changes the hook.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from server.config.settings import Settings
from server.http.middleware.security import SERVER, SecurityHeaders
from server.http.problems import HTTP_CODES, problem_body
from server.observability.logging import get_logger

log = get_logger("btec.http")


class BareResponse(web.Response):
    """A Response that leaves without the `Server` header aiohttp adds while preparing it."""

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        self._headers.popall(SERVER, None)


class ProblemHandler(RequestHandler):
    """aiohttp's connection handler, with its own error answers as problem+json."""

    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The problem for a request aiohttp refused; the connection closes after it."""
        if request.writer.output_size > 0:  # the answer had started: nothing more to say
            raise ConnectionError("the response had started; the connection is closed")
        code = HTTP_CODES.get(status, f"http_{status}")
        title = HTTPStatus(status).phrase
        log.info("http_protocol_error", status=status, code=code,
                 error_type=type(exc).__name__ if exc else None)  # fmt: skip
        detail = title if status >= 500 else _printable(message or title)
        body = problem_body(status=status, code=code, title=title, detail=detail, request_id=None)
        response = BareResponse(
            status=status, body=_json(body), content_type="application/problem+json"
        )
        security = getattr(self._manager, "security", None)  # None once the client left
        if security is not None:
            security.apply(request.path, response.headers)
        response.force_close()
        return response


class ProblemServer(Server):
    """A Server whose connections are ProblemHandlers, with the headers they add."""

    security: SecurityHeaders

    def __call__(self) -> RequestHandler:
        return ProblemHandler(self, loop=self._loop, **self._kwargs)


class ProblemRunner(web.AppRunner):
    """`web.AppRunner` for `btecctl serve`: its connections answer parse errors as the API
    answers every error."""

    def __init__(self, app: web.Application, settings: Settings, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.security = SecurityHeaders(settings)

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        server.__class__ = ProblemServer  # aiohttp made it; only its factory method changes
        server.security = self.security  # type: ignore[attr-defined]
        return server


def _printable(text: str) -> str:
    """aiohttp's complaint, printable and short (it may quote the client's bytes)."""
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()
