"""create_app(settings): the only place where btec is wired together."""

from __future__ import annotations

from typing import Any, NoReturn

from aiohttp import web
from aiohttp_apigami import OpenApiVersion, setup_aiohttp_apispec
from marshmallow import ValidationError

from server import __version__, keys
from server.api import health, metrics
from server.api.openapi import SECURITY_SCHEMES, ProblemSchema
from server.errors import ValidationFailed
from server.infra.checks import health_ctx
from server.infra.lifecycle import Lifecycle
from server.infra.metrics import Metrics
from server.infra.postgres import pool_ctx
from server.infra.redis import redis_ctx
from server.middleware import SecurityHeaders, request_middleware
from server.settings import Settings

API_DOCS_PATH = "/api/docs"
API_SPEC_PATH = "/api/docs/openapi.json"


def _validation_error(
    error: ValidationError, req: Any, schema: Any, *, error_status_code: Any, error_headers: Any
) -> NoReturn:
    raise ValidationFailed(errors=error.normalized_messages())  # type: ignore[no-untyped-call]


def create_app(settings: Settings) -> web.Application:
    """Build the application; resources open in cleanup_ctx order and close in reverse."""
    app_metrics = Metrics(version=__version__, release=settings.release)
    security = SecurityHeaders(settings)
    app = web.Application(
        middlewares=[request_middleware(app_metrics, security)],
        client_max_size=settings.max_body_bytes,
        handler_args={"max_field_size": 16384},
    )
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = app_metrics
    app[keys.LIFECYCLE] = Lifecycle()
    app.on_response_prepare.append(security.hook())
    app.cleanup_ctx.extend([pool_ctx, redis_ctx, health_ctx])
    app.add_routes(health.routes)
    app.add_routes(metrics.routes)
    _setup_docs(app, settings)
    return app


def _setup_docs(app: web.Application, settings: Settings) -> None:
    spec = setup_aiohttp_apispec(
        app,
        title="btec API",
        version=__version__,
        url=API_SPEC_PATH,
        swagger_path=API_DOCS_PATH,
        openapi_version=OpenApiVersion.V303,
        error_callback=_validation_error,
        servers=[{"url": settings.public_url, "description": "This deployment"}],
        info={
            "description": "The backend of the BTEC assessment platform. Every error is "
            "application/problem+json with a stable `code`."
        },
    )
    spec.spec.components.schema("Problem", schema=ProblemSchema)
    for name, scheme in SECURITY_SCHEMES.items():
        spec.spec.components.security_scheme(name, scheme)
