"""What btec's request frame costs on the liveness probe, step by step, in one process.

Each variant answers `GET /api/v1/health/live` through aiohttp's own dispatch
(`Application._handle`: route lookup, middleware, handler) and then writes the response's
status line and headers as aiohttp does, with no socket: the CPU the server spends beyond
HTTP parsing and the socket. Variants run interleaved in rounds (A, B, C, ... then again),
and each figure is the median of the rounds' microseconds per request, so the machine's
drift between rounds cancels out in the differences.

`python perf/frame_bench.py [--rounds 15] [--requests 20000]`
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_writer import _serialize_headers  # type: ignore[attr-defined]
from aiohttp.test_utils import make_mocked_request
from pydantic import SecretStr

from server.app import create_app
from server.config.settings import Settings

PATH = "/api/v1/health/live"
BODY = b'{"status":"pass"}'


async def live(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/health+json")


def bare() -> web.Application:
    app = web.Application()
    app.router.add_get(PATH, live)
    return app


@web.middleware
async def _passthrough(request: web.Request, handler: Any) -> web.StreamResponse:
    return await handler(request)  # type: ignore[no-any-return]


async def _noop_hook(request: web.Request, response: web.StreamResponse) -> None:
    return None


def bare_middleware() -> web.Application:
    """The bare app with one middleware that only passes the request on."""
    app = web.Application(middlewares=[_passthrough])
    app.router.add_get(PATH, live)
    return app


def bare_hook() -> web.Application:
    """The bare app with one on_response_prepare hook that does nothing."""
    app = bare()
    app.on_response_prepare.append(_noop_hook)
    return app


def bare_many_routes() -> web.Application:
    """The bare handler among every route btec registers (same paths, same order)."""
    app = web.Application()
    for route in btec().router.routes():
        if route.method != "HEAD" and route.resource is not None:
            path = route.resource.canonical
            handler = live if path == PATH else _other
            app.router.add_route(route.method, path, handler)
    return app


async def _other(request: web.Request) -> web.Response:
    return web.Response()


def btec(**overrides: Any) -> web.Application:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        env="test",
        database_url=SecretStr("postgresql://unused@127.0.0.1:1/unused"),
        redis_url=SecretStr("redis://127.0.0.1:1/0"),
        **overrides,
    )
    return create_app(settings)


async def per_request_us(app: web.Application, requests: int) -> float:
    """Microseconds per request: dispatch, the prepare hooks, and the header block."""
    request = make_mocked_request("GET", PATH, app=app)
    handle = app._handle
    prepare = app.on_response_prepare
    started = time.process_time()  # CPU time: another process on the core does not count
    for _ in range(requests):
        request._match_info = None  # type: ignore[assignment]
        response = await handle(request)
        await prepare.send(request, response)
        _serialize_headers("HTTP/1.1 200 OK", response.headers)
    return (time.process_time() - started) * 1e6 / requests


VARIANTS: dict[str, Callable[[], web.Application]] = {
    "bare": bare,
    "bare, btec's routes": bare_many_routes,
    "bare, a middleware": bare_middleware,
    "bare, a prepare hook": bare_hook,
    "btec": btec,
    "btec, metrics off": lambda: btec(metrics_enabled=False),
    "btec, rate limits off": lambda: btec(ratelimit_enabled=False),
}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--requests", type=int, default=20000)
    args = ap.parse_args()
    apps = {name: make() for name, make in VARIANTS.items()}
    for app in apps.values():
        app.freeze()
    rounds: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(args.rounds):
        for name, app in apps.items():
            rounds[name].append(await per_request_us(app, args.requests))
    base = statistics.median(rounds["bare"])
    for name, figures in rounds.items():
        us = statistics.median(figures)
        print(f"{name:28} {us:7.2f} µs  {us - base:+6.2f} µs over bare  ({us / base:.2f}x)")


if __name__ == "__main__":
    asyncio.run(main())
