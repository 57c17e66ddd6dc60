"""Error reports to Sentry (sentry-sdk with AioHttpIntegration), on only when SENTRY_DSN is set.

- `release` is /health's releaseId and `environment` is BTEC_ENV; no personal data is
  collected (sentry-sdk's default).
- Errors are sampled at BTEC_SENTRY_SAMPLE_RATE; transactions at
  BTEC_SENTRY_TRACES_SAMPLE_RATE, never for health probes or /metrics, and named by route
  template (`GET /api/v1/units/{id}`).
- The log redactor runs over every event and every transaction before it leaves.
- Expected failures (4xx problem+json) are never reported: the request middleware reports
  only unexpected exceptions (`report`), tagged with the request id, and the worker reports
  jobs that failed for good.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from server.observability.redact import redact

if TYPE_CHECKING:
    from server.config.settings import Settings

UNSAMPLED_PREFIXES = ("/api/v1/health", "/metrics")
_enabled = False


def enabled() -> bool:
    return _enabled


def init_sentry(settings: Settings, *, component: str) -> bool:
    """Start reporting when SENTRY_DSN is set; whether it is on."""
    global _enabled
    if settings.sentry_dsn is None:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.aiohttp import AioHttpIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration

    rate = settings.sentry_traces_sample_rate

    def traces_sampler(context: dict[str, Any]) -> float:
        request = context.get("aiohttp_request")
        path = getattr(request, "path", "") or ""
        return 0.0 if path.startswith(UNSAMPLED_PREFIXES) else rate

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        release=settings.release,
        environment=settings.env,
        server_name=settings.service_id,
        sample_rate=settings.sentry_sample_rate,
        traces_sampler=traces_sampler,
        before_send=scrub,
        before_send_transaction=scrub,
        integrations=[
            AioHttpIntegration(transaction_style="method_and_path_pattern"),
            # Log lines become breadcrumbs, never events: errors are reported once, by report().
            LoggingIntegration(level=logging.INFO, event_level=None),
        ],
    )
    sentry_sdk.set_tag("component", component)
    _enabled = True
    return True


def scrub(event: Any, hint: Any) -> Any:
    """before_send and before_send_transaction: the log redactor, deep enough for frames."""
    return redact(event, max_depth=24)


def report(exc: BaseException, **tags: str | None) -> None:
    """Send an unexpected exception, with tags (request_id, task, ...), when Sentry is on."""
    if not _enabled:
        return
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        for name, value in tags.items():
            if value is not None:
                scope.set_tag(name, value)
        sentry_sdk.capture_exception(exc)


def tag_request(request_id: str) -> None:
    """The current request's id on its transaction and anything reported during it."""
    if _enabled:
        import sentry_sdk

        sentry_sdk.get_current_scope().set_tag("request_id", request_id)


FLUSH_SECONDS = 2.0


async def flush() -> None:
    """Send what is queued before the process exits, waiting at most FLUSH_SECONDS (flush
    blocks: it runs in a thread)."""
    if _enabled:
        import sentry_sdk

        await asyncio.to_thread(sentry_sdk.flush, FLUSH_SECONDS)
