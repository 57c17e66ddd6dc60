"""create_app(settings): the only place where btec is wired together."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_apigami import AiohttpApiSpec, OpenApiVersion
from aiohttp_apigami.constants import APISPEC_PARSER, SWAGGER_DICT

from server import __version__
from server.app.resources import (
    auth_ctx,
    health_ctx,
    jobs_ctx,
    mail_ctx,
    pool_ctx,
    redis_ctx,
    storage_ctx,
)
from server.config.settings import SETTINGS, Settings
from server.http import contract
from server.http.guard import GUARD, Guard
from server.http.middleware import request_frame
from server.http.middleware.cors import Cors
from server.http.middleware.security import SecurityHeaders
from server.http.openapi import SECURITY_SCHEMES, ProblemSchema
from server.http.parsing import ProblemParser
from server.http.ratelimit import RateLimits
from server.http.routes import (
    assignments,
    auth,
    files,
    health,
    metrics,
    ops,
    pages,
    submissions,
    units,
    users,
)
from server.observability import sentry
from server.observability.metrics import METRICS, BackupSnapshot, Metrics
from server.platform.lifecycle import LIFECYCLE, Lifecycle

API_DOCS_PATH = "/api/docs"
API_SPEC_PATH = "/api/docs/openapi.json"
# The API docs' own routes (apigami's): public, like the document they serve.
DOCS_ROUTES = ("swagger.docs", "swagger.spec", "swagger.static")
# The document's introduction: what holds for every operation.
API_DESCRIPTION = """The backend of the BTEC assessment platform: units, assignments graded
against Pass/Merit/Distinction criteria, student submissions with uploaded files, and
assessors' grades.

**Signing in.** `POST /api/v1/auth/login` answers an access token for `Authorization: Bearer
...` and a refresh token for `/api/v1/auth/refresh`. Every route needs a signed-in user unless
it says otherwise. A user whose address is not verified yet may only read and change
`/users/me`, ask for the link again and sign out: every other route answers 403
`email_unverified`. Routes for a role answer 403 `forbidden` to other roles, with the
account's role as it is at that request.

**Errors.** Every error is `application/problem+json` with `type`, `title`, `status`,
`detail`, a stable `code` and the `request_id` (also in the `X-Request-ID` response header).
A request that is not valid (422) adds `errors`, one object per field (RFC 9457): a field of
the body as a JSON Pointer, `{"pointer": "#/criteria/0/code", "code": "required", "detail":
"..."}`, a parameter by name, `{"parameter": "level", "in": "query", ...}`, each with a
stable `code` (`required`, `unknown_field`, `not_found`, `invalid`); its `detail` names them:
`2 fields are not valid: opens_at, criteria.0.code`. A body that is not JSON is 415. In a
body or a query string, a field or parameter the operation does not take is an error
(`unknown_field`, naming it), on every operation alike: a misspelt filter is never ignored.

**Text.** A string of format `printable-text` (names, titles, codes, search words) may hold
no character of the Unicode general categories Cc, Cf, Cs or Co (controls, format characters
such as bidirectional overrides and zero-width joiners, surrogates, private use); its
`pattern` says so over the Basic Multilingual Plane, the format over all of Unicode. Prose
(briefs, criteria, feedback, answers) may hold line breaks and tabs but no other control.

**Lists** answer `{"items", "total", "limit", "offset", "next_offset"}`: the next page is at
`next_offset`, null on the last page; each list's 200 answer has an OpenAPI link, `next`, that
says so. Send the same filters with it.

**Rate limits.** Every endpoint but the health probes and `/metrics` is limited per client
(the user once signed in, else the IP). Responses carry `RateLimit-Policy:
"default";q=600;w=60` and `RateLimit: "default";r=599;t=1`; a limited request gets 429
`rate_limited` with an integer `Retry-After`.

**Caching.** The unit and assignment catalogue answers from a read cache shared by every
server process and invalidated when a unit or an assignment changes, so a read after a change
never sees the old catalogue. Those answers carry an `ETag` and `Cache-Control: no-cache`:
send the ETag back in `If-None-Match` to get 304 with no body while the answer is unchanged.
"""
ROUTES = (health, metrics, ops, units, auth, users, files, assignments, submissions)


def create_app(settings: Settings, *, worker: bool = False) -> web.Application:
    """Build the application; resources open in cleanup_ctx order and close in reverse.
    With `worker`, a job worker runs in the same process (the `btecctl serve` default)."""
    app_metrics = app_metrics_for(settings)
    security = SecurityHeaders(settings)
    guard = Guard(settings, public_names=DOCS_ROUTES)
    limits = RateLimits(settings, app_metrics)
    cors = Cors(settings.cors_allowed_origins)
    lifecycle = Lifecycle()
    app = web.Application(
        middlewares=[request_frame(app_metrics, security, limits, guard, cors, lifecycle)],
        client_max_size=settings.max_body_bytes,
        handler_args={"max_field_size": 16384},
    )
    app[SETTINGS] = settings
    app[METRICS] = app_metrics
    app[LIFECYCLE] = lifecycle
    app[GUARD] = guard
    app.on_startup.append(guard.check_routes)
    app.on_response_prepare.append(security.hook())
    if cors.enabled:  # none allowed: no Vary, no hook to run
        app.on_response_prepare.append(cors.hook())
    app.on_cleanup.append(_flush_reports)
    app.cleanup_ctx.extend(
        [pool_ctx, redis_ctx, auth_ctx, mail_ctx, storage_ctx, jobs_ctx(run_worker=worker),
         health_ctx]
    )  # fmt: skip
    for module in ROUTES:
        app.add_routes(module.routes)
    pages.add_pages(app, settings)
    _setup_docs(app, settings)
    return app


def app_metrics_for(settings: Settings) -> Metrics:
    """The process's metrics, with the backup gauges read from BTEC_BACKUP_DIR at scrape time."""
    found = Metrics(version=__version__, release=settings.release, enabled=settings.metrics_enabled)

    def read_backups() -> BackupSnapshot | None:
        from server.backup.core import metrics_snapshot  # psycopg: only once scraped

        try:
            return metrics_snapshot(settings)
        except (OSError, ValueError, KeyError, TypeError):  # unreadable: unknown, as if none
            return None

    found.watch_backups(read_backups)
    return found


def _setup_docs(app: web.Application, settings: Settings) -> None:
    spec = AiohttpApiSpec(
        url=API_SPEC_PATH,
        swagger_path=API_DOCS_PATH if settings.docs_ui_served else None,
        openapi_version=OpenApiVersion.V303,
        title="btec API",
        version=__version__,
        # Relative: the server the document was fetched from, whatever its host and port.
        servers=[{"url": "/", "description": "The server that served this document"}],
        info={"description": API_DESCRIPTION},
    )
    spec.spec.components.schema("Problem", schema=ProblemSchema)
    for name, scheme in SECURITY_SCHEMES.items():
        spec.spec.components.security_scheme(name, scheme)
    # The document is made here, once, with every route and component added (openapi_document
    # reads it without serving); apigami's parser is then replaced by ours.
    spec.register(app, in_place=True)
    contract.finish(app[SWAGGER_DICT], app)
    app[APISPEC_PARSER] = ProblemParser()


def openapi_document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI document the API serves at API_SPEC_PATH, without serving it."""
    document: dict[str, Any] = create_app(settings)[SWAGGER_DICT]
    return document


def create_worker_app(settings: Settings) -> web.Application:
    """The resources of `btecctl worker`: no HTTP routes, the same cleanup_ctx wiring."""
    app = web.Application()
    app[SETTINGS] = settings
    app[METRICS] = app_metrics_for(settings)
    app[LIFECYCLE] = Lifecycle()
    app.on_cleanup.append(_flush_reports)
    app.cleanup_ctx.extend([pool_ctx, redis_ctx, mail_ctx, storage_ctx, jobs_ctx(run_worker=True)])
    return app


async def _flush_reports(app: web.Application) -> None:
    """Error reports still queued leave before the process does (when Sentry is on)."""
    await sentry.flush()
