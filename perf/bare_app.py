"""The baseline: a bare aiohttp app answering the liveness probe's JSON, nothing else.

Same event loop (uvloop), same body and content type as btec's /api/v1/health/live, no
middleware, no access log. `python perf/bare_app.py PORT`.
"""

from __future__ import annotations

import sys

from aiohttp import web

BODY = b'{"status":"pass"}'


async def live(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/health+json")


def main() -> None:
    app = web.Application()
    app.router.add_get("/api/v1/health/live", live)
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        loop_factory = None
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        access_log=None,
        print=None,
        loop=loop_factory() if loop_factory else None,
    )


if __name__ == "__main__":
    main()
