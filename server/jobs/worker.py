"""The worker: runs queued jobs in this event loop with saq, binds each job's request id,
honours idempotency keys after a job completes (saq only de-duplicates while a job is
pending: a completed key is remembered and a second run of it is skipped), counts what it
did, and drains on stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import redis.asyncio as aioredis
from saq import Job, Status, Worker

from server.domain.text import describe
from server.jobs.queue import (
    DONE_PREFIX,
    FAILED_INDEX,
    FAILED_KEEP,
    Context,
    JobQueue,
    Jobs,
    JobSpec,
    PermanentError,
    last_line,
    log,
)
from server.observability import sentry
from server.observability.logging import request_id_var

if TYPE_CHECKING:
    from saq.types import PartialTimersDict

    from server.config.settings import Settings
    from server.platform.mail import Mailer


def _wrap(spec: JobSpec) -> Callable[..., Awaitable[Any]]:
    """The function saq runs: binds the request id, honours completed idempotency keys."""

    async def run(ctx: Context, **kwargs: Any) -> Any:
        job: Job = ctx["job"]
        request_id_var.set(job.meta.get("request_id"))
        if job.meta.get("idempotent") and await _done(job):
            log.info("task_skipped_already_done", task=spec.name, job=job.key)
            return {"skipped": "already done"}
        try:
            result = await spec.function(ctx, **kwargs)
        except Exception as exc:
            if isinstance(exc, PermanentError):
                job.retries = job.attempts  # saq retries only while retries > attempts
            if job.attempts >= job.retries:  # no retry left: the job fails for good
                sentry.report(exc, task=spec.name, job=job.key, request_id=request_id_var.get())
            raise
        if job.meta.get("idempotent"):
            await asyncio.shield(_mark_done(job, spec.ttl))
        return result

    run.__name__ = run.__qualname__ = spec.name
    return run


def _redis(job: Job) -> aioredis.Redis:
    if not isinstance(job.queue, JobQueue):
        raise RuntimeError("btec jobs live on a JobQueue")
    return job.queue.redis


async def _done(job: Job) -> bool:
    return bool(await _redis(job).exists(DONE_PREFIX + job.key))


async def _mark_done(job: Job, ttl: int) -> None:
    await _redis(job).set(DONE_PREFIX + job.key, b"1", ex=max(ttl, 7 * 24 * 3600))


async def once(ctx: Context, effect: Awaitable[Any]) -> Any:
    """Run a job's side effect (sending a message, say) so that cancellation cannot split it
    from the record that it happened: a drain deadline or timeout that strikes mid-way lets
    it finish (bounded by its own timeout) and the job's retry then finds it done."""
    job: Job = ctx["job"]

    async def effect_then_record() -> Any:
        result = await effect
        if job.meta.get("idempotent"):
            await _mark_done(job, job.ttl)
        return result

    task = asyncio.ensure_future(effect_then_record())
    pending: set[asyncio.Future[Any]] = ctx.setdefault("in_flight", set())
    pending.add(task)
    task.add_done_callback(pending.discard)
    return await asyncio.shield(task)


def build_worker(
    jobs: Jobs,
    *,
    settings: Settings,
    mailer: Mailer,
    concurrency: int,
    drain_seconds: float,
    heartbeat_seconds: float = 10.0,
    sweep_seconds: int = 60,
    pool: Any = None,
) -> Worker[Context]:
    """A saq worker over the catalogue. Signals are the caller's: saq's own handlers would
    replace those of `btecctl serve`."""
    metrics = jobs.metrics

    async def before(ctx: Context) -> None:
        ctx["started"] = time.perf_counter()
        if metrics is not None:
            metrics.jobs_running.labels(ctx["job"].function).inc()

    async def after(ctx: Context) -> None:
        job: Job = ctx["job"]
        if metrics is not None:
            metrics.jobs_running.labels(job.function).dec()
            seconds = time.perf_counter() - ctx.get("started", time.perf_counter())
            metrics.jobs_finished.labels(job.function, job.status.value).inc()
            if job.status == Status.FAILED:
                metrics.jobs_failed.labels(job.function).inc()
            metrics.job_duration.labels(job.function).observe(seconds)
        if job.status == Status.FAILED:
            await _remember_failure(jobs.queue, job)
            log.warning("task_failed", task=job.function, job=job.key, error=last_line(job.error))
        elif job.status == Status.QUEUED and job.error:
            log.info("task_retry", task=job.function, job=job.key, attempt=job.attempts)

    worker: Worker[Context] = Worker(
        jobs.queue,
        [(spec.name, _wrap(spec)) for spec in jobs.specs.values()],
        concurrency=concurrency,
        before_process=[before],
        after_process=[after],
        shutdown_grace_period_s=max(1, round(drain_seconds)),
        dequeue_timeout=1.0,  # idle workers notice a stop within a second
        cancellation_hard_deadline_s=2.0,
        # saq lists a worker while its info is younger than worker_info + 1 seconds; scheduled
        # retries are promoted every `schedule` seconds (saq's lock needs whole seconds).
        timers=cast(
            "PartialTimersDict",
            {
                "worker_info": max(1, int(heartbeat_seconds) - 1),
                "schedule": 1,
                "sweep": sweep_seconds,
                "abort": 1,
            },
        ),
        metadata={"pid": os.getpid()},
    )
    worker.SIGNALS = []
    worker.context["settings"] = settings
    worker.context["mailer"] = mailer
    worker.context["pool"] = pool  # the app's asyncpg pool, for jobs that read the database
    worker.context["in_flight"] = set()
    return worker


async def _report_interrupted(running: list[Job]) -> None:
    """Log once, with its id, each job the drain interrupted: back in the queue (it runs again
    after the restart), or left where the queue's sweep finds it when Redis cannot say."""
    for job in running:
        try:
            await job.refresh()
        except Exception as exc:
            log.warning("job_interrupted_at_shutdown", task=job.function, job=job.key,
                        status="unknown", error=describe(exc),
                        note="the queue's sweep puts it back once Redis answers")  # fmt: skip
            continue
        if job.status in (Status.QUEUED, Status.ACTIVE):
            log.warning("job_interrupted_at_shutdown", task=job.function, job=job.key,
                        status=job.status.value, attempt=job.attempts)  # fmt: skip


async def _remember_failure(queue: JobQueue, job: Job) -> None:
    async with queue.redis.pipeline(transaction=True) as pipe:
        pipe.zadd(FAILED_INDEX, {job.key: time.time()})
        pipe.zremrangebyrank(FAILED_INDEX, 0, -FAILED_KEEP - 1)
        await pipe.execute()


@contextlib.asynccontextmanager
async def running_worker(worker: Worker[Context]) -> AsyncIterator[Worker[Context]]:
    """Run the worker in this event loop; on exit, drain it: jobs past the deadline are
    cancelled and go back to the queue, and side effects already under way finish first."""
    task = asyncio.create_task(worker.start(), name="btec-worker")
    try:
        yield worker
    finally:
        # saq's upkeep loops sleep up to a minute between rounds and its stop() waits for
        # them: end them now, so the drain deadline only ever waits for jobs.
        for upkeep in [t for t in worker.tasks if t.get_name() != "process"]:
            upkeep.cancel()
        running = list(getattr(worker, "job_task_contexts", {}))  # in progress as it drains
        await worker.stop()
        await _report_interrupted(running)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        in_flight = list(worker.context.get("in_flight", ()))
        if in_flight:
            await asyncio.wait(in_flight, timeout=60)
