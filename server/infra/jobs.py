"""cleanup_ctx entries for jobs and mail: the queue, the worker, and the mail catcher."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import redis.asyncio as aioredis
from aiohttp import web

from server import keys, tasks
from server.infra import tasks as queue_infra
from server.infra.mail import Mailer, SmtpTarget, mail_catcher, maildir_path, smtp_url


async def mail_ctx(app: web.Application) -> AsyncIterator[None]:
    """The mailer; with no BTEC_SMTP_URL, the embedded catcher in this process (if its port is
    free: serve and a worker on one machine share one)."""
    settings = app[keys.SETTINGS]
    if settings.smtp_url is not None:
        app[keys.MAILER] = Mailer(SmtpTarget.from_url(smtp_url(settings), settings.smtp_timeout))
        yield
        return
    async with mail_catcher(maildir_path(settings), settings.mail_catcher_port) as port:
        bound = port or settings.mail_catcher_port
        url = f"smtp://127.0.0.1:{bound}?starttls=off"
        app[keys.MAILER] = Mailer(SmtpTarget.from_url(url, settings.smtp_timeout))
        yield


def tasks_ctx(*, run_worker: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    """The queue (and, when asked, a worker in this process) on the app's Redis."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[keys.SETTINGS]
        assert settings.redis_url is not None
        queue = queue_infra.create_queue(settings.redis_url.get_secret_value())
        catalogue = queue_infra.Tasks(queue, tasks.specs(settings), app[keys.METRICS])
        app[keys.TASKS] = catalogue
        stop_monitor = asyncio.Event()
        monitor = asyncio.create_task(queue_infra.monitor_queue(catalogue, stop_monitor))
        try:
            if run_worker:
                worker = queue_infra.build_worker(
                    catalogue,
                    settings=settings,
                    mailer=app[keys.MAILER],
                    pool=app.get(keys.DB_POOL),
                    concurrency=settings.worker_concurrency,
                    drain_seconds=settings.worker_drain_seconds,
                    heartbeat_seconds=settings.worker_heartbeat_seconds,
                )
                worker.context["storage"] = app.get(keys.STORAGE)  # uploads, for scans
                worker.context["metrics"] = app[keys.METRICS]
                worker.context["tasks"] = catalogue
                async with queue_infra.running_worker(worker):
                    yield
            else:
                yield
        finally:
            stop_monitor.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(monitor, 10)
            # saq unsubscribes from Redis on the way out, which fails when Redis is down.
            with contextlib.suppress(aioredis.RedisError, OSError):
                await queue.disconnect()

    return ctx
