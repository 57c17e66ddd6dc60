"""The job queue (saq on Redis): task catalogue, enqueueing, the worker, and their metrics.

saq supplies the queue, scheduling, timeouts and retries. Three things are ours:
- retry delays use "equal jitter" (half the exponential cap fixed, half random) instead of
  saq's full jitter, so a retry never comes sooner than the one before it: a job failing
  against a down SMTP server backs off instead of sometimes retrying at once;
- idempotency keys hold after a job completes (saq only de-duplicates while a job is pending):
  a completed key is remembered, and a second run of it is skipped;
- the sweep of stuck jobs spares a job that a worker has just taken: saq moves a job to the
  active list a moment before marking it active, and its sweep would abort a job caught in
  between (seen here when a worker starts while jobs wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import redis.asyncio as aioredis
from aiohttp import web
from saq import Job, Status, Worker
from saq.queue.redis import RedisQueue
from saq.types import Context as SaqContext

from server.observability.probes import Check, Observation

if TYPE_CHECKING:
    from saq.types import PartialTimersDict

    from server.config.settings import Settings
    from server.platform.mail import Mailer

from server.domain.errors import QueueUnavailable
from server.observability import sentry
from server.observability.logging import get_logger, request_id_var
from server.observability.metrics import Metrics

TASKS: web.AppKey[Tasks] = web.AppKey("tasks")

log = get_logger("btec.tasks")

QUEUE_NAME = "btec"
FAILED_INDEX = "btec:tasks:failed"  # sorted set: job key -> time it failed
DONE_PREFIX = "btec:tasks:done:"  # idempotency keys of completed jobs
FAILED_KEEP = 1000
SWEEP_RECHECK = 2.0


class Context(SaqContext, total=False):
    """What a task receives: saq's context plus btec's resources."""

    settings: Settings
    mailer: Mailer
    pool: Any  # the app's asyncpg pool (None in a worker without a database)
    storage: Any  # the app's file storage (server.platform.storage.Storage)
    metrics: Any  # the process's Metrics, for counts of what tasks did
    tasks: Any  # the catalogue (Tasks), for jobs that queue jobs
    in_flight: set[asyncio.Future[Any]]
    started: float


TaskFunction = Callable[..., Awaitable[Any]]


class PermanentError(Exception):
    """A job failure that no retry can fix (bad input): the job fails at once."""


@dataclass(frozen=True)
class TaskSpec:
    """A task and its explicit defaults (saq's own are 1 try and 10 s)."""

    function: TaskFunction
    timeout: int = 30
    retries: int = 5
    retry_delay: float = 2.0  # first retry after 1-2 s, then 2-4 s, 4-8 s, ...
    max_delay: float = 600.0
    ttl: int = 3 * 24 * 3600  # finished jobs stay inspectable for three days
    idempotent: bool = False  # callers must pass a key; completed keys never run again

    @property
    def name(self) -> str:
        return self.function.__name__


class TaskQueue(RedisQueue):
    """saq's Redis queue with equal-jitter retry delays and a race-free sweep."""

    _sweep_script: Any = None

    async def _retry(self, job: Job, error: str | None) -> None:
        cap = min(job.retry_delay * 2 ** max(job.attempts - 1, 0), _max_delay(job))
        delay = cap / 2 + random.uniform(0, cap / 2)  # noqa: S311 - jitter, not secrecy
        job_id = job.id
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrem(self._active, 1, job_id)
            pipe.lrem(self._queued, 1, job_id)
            pipe.zadd(self._incomplete, {job_id: time.time() + delay})
            pipe.set(job_id, self.serialize(job))
            await pipe.execute()
        await self.notify(job)

    async def sweep(self, lock: int = 60, abort: float = 5.0) -> list[str]:
        """saq's sweep of the active list, except that a job still marked queued there is
        looked at again after SWEEP_RECHECK seconds: a worker that has just taken it marks it
        active in that time, and only a job that stays queued is stuck."""
        if self._sweep_script is None:
            self._sweep_script = self.redis.register_script(_SWEEP_LUA)
        pairs = await self._sweep_script(keys=[self._sweep, self._active], args=[lock])
        jobs = [(job_id, self.deserialize(raw)) for job_id, raw in pairs]
        if any(job is not None and job.status == Status.QUEUED for _, job in jobs):
            await asyncio.sleep(SWEEP_RECHECK)
            jobs = [(job_id, await self._get_job_by_id(job_id)) for job_id, _ in jobs]
        swept = []
        for job_id, job in jobs:
            if job is None:
                await self.redis.lrem(self._active, 0, job_id)
                await self.redis.zrem(self._incomplete, job_id)
            elif job.status == Status.ACTIVE and not job.stuck:
                continue
            elif job.status not in (Status.QUEUED, Status.ACTIVE, Status.ABORTING):
                continue  # finished meanwhile
            else:
                await self._sweep_one(job, abort)
            swept.append(job_id.decode() if isinstance(job_id, bytes) else str(job_id))
        return swept

    async def _sweep_one(self, job: Job, abort: float) -> None:
        log.warning("task_swept", task=job.function, job=job.key, status=job.status.value)
        await self.abort(job, error=self.swept_error_message)
        with contextlib.suppress(TimeoutError):
            await job.refresh(abort)
        if job.retryable:
            await self.retry(job, error=self.swept_error_message)
        else:
            await self.finish(job, Status.ABORTED, error=self.swept_error_message)


# The script saq's own sweep runs: take the sweep lock, then read the active list with jobs.
_SWEEP_LUA = """
local id_jobs = {}
if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('SETEX', KEYS[1], ARGV[1], 1)
    for i, v in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
        id_jobs[i] = {v, redis.call('GET', v)}
    end
end
return id_jobs
"""


def _max_delay(job: Job) -> float:
    backoff = job.retry_backoff
    return float(backoff) if not isinstance(backoff, bool) and backoff else float("inf")


class Tasks:
    """The catalogue of tasks and the queue they go through."""

    def __init__(self, queue: TaskQueue, specs: list[TaskSpec], metrics: Metrics | None) -> None:
        self.queue = queue
        self.specs = {s.name: s for s in specs}
        self.metrics = metrics

    async def enqueue(
        self,
        name: str,
        *,
        key: str | None = None,
        timeout: int | None = None,  # noqa: ASYNC109 - the job's own timeout, not this call's
        **kwargs: Any,
    ) -> Job | None:
        """Queue a task with its defaults (`timeout` may only shorten the task's own);
        returns None when `key` is already pending or done."""
        spec = self.specs[name]
        if spec.idempotent and key is None:
            raise ValueError(f"task {name} needs an idempotency key")
        try:
            return await self._enqueue(spec, key, timeout, kwargs)
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
            raise QueueUnavailable("the job queue cannot be reached", retry_after=5) from None

    async def follow_up(
        self, name: str, *, key: str | None = None, about: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> bool:  # fmt: skip
        """Queue a job that follows a change already committed (a scan, a similarity check,
        a notice): with the queue down the change stands, the miss is logged as
        `job_not_queued` with the task, its key and `about` (ids, never the arguments), for an
        operator to queue it again, and this returns False."""
        try:
            await self.enqueue(name, key=key, **kwargs)
        except QueueUnavailable:
            log.warning("job_not_queued", task=name, key=key, **(about or {}))
            return False
        return True

    async def _enqueue(
        self, spec: TaskSpec, key: str | None, limit: int | None, kwargs: dict[str, Any]
    ) -> Job | None:
        name = spec.name
        if key is not None and await self.queue.redis.exists(DONE_PREFIX + key):
            return None
        job = Job(
            function=name,
            kwargs=kwargs,
            timeout=min(limit, spec.timeout) if limit else spec.timeout,
            retries=spec.retries,
            retry_delay=spec.retry_delay,
            retry_backoff=spec.max_delay,
            ttl=spec.ttl,
            meta={"request_id": request_id_var.get(), "idempotent": key is not None},
        )
        if key is not None:
            job.key = key
        queued = await self.queue.enqueue(job)
        if self.metrics is not None and queued is not None:
            self.metrics.jobs_enqueued.labels(name).inc()
        return queued

    async def job(self, key: str) -> Job | None:
        try:
            return await self.queue.job(key)
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
            raise QueueUnavailable("the job queue cannot be reached", retry_after=5) from None


def create_queue(redis_url: str) -> TaskQueue:
    client: aioredis.Redis = aioredis.Redis.from_url(
        redis_url, socket_connect_timeout=2, health_check_interval=30
    )
    return TaskQueue(client, name=QUEUE_NAME)


# Worker side ------------------------------------------------------------------------------


def _wrap(spec: TaskSpec) -> Callable[..., Awaitable[Any]]:
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
    assert isinstance(job.queue, TaskQueue), "btec jobs live on a TaskQueue"
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
    tasks: Tasks,
    *,
    settings: Settings,
    mailer: Mailer,
    concurrency: int,
    drain_seconds: float,
    heartbeat_seconds: float = 10.0,
    pool: Any = None,
) -> Worker[Context]:
    """A saq worker over the catalogue. Signals are the caller's: saq's own handlers would
    replace those of `btecctl serve`."""
    metrics = tasks.metrics

    async def before(ctx: Context) -> None:
        ctx["started"] = time.perf_counter()

    async def after(ctx: Context) -> None:
        job: Job = ctx["job"]
        if metrics is not None:
            seconds = time.perf_counter() - ctx.get("started", time.perf_counter())
            metrics.jobs_finished.labels(job.function, job.status.value).inc()
            if job.status == Status.FAILED:
                metrics.jobs_failed.labels(job.function).inc()
            metrics.job_duration.labels(job.function).observe(seconds)
        if job.status == Status.FAILED:
            await _remember_failure(tasks.queue, job)
            log.warning("task_failed", task=job.function, job=job.key, error=last_line(job.error))
        elif job.status == Status.QUEUED and job.error:
            log.info("task_retry", task=job.function, job=job.key, attempt=job.attempts)

    worker: Worker[Context] = Worker(
        tasks.queue,
        [(spec.name, _wrap(spec)) for spec in tasks.specs.values()],
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
                "sweep": 60,
                "abort": 1,
            },
        ),
        metadata={"pid": os.getpid()},
    )
    worker.SIGNALS = []
    worker.context["settings"] = settings
    worker.context["mailer"] = mailer
    worker.context["pool"] = pool  # the app's asyncpg pool, for tasks that read the database
    worker.context["in_flight"] = set()
    return worker


async def _remember_failure(queue: TaskQueue, job: Job) -> None:
    async with queue.redis.pipeline(transaction=True) as pipe:
        pipe.zadd(FAILED_INDEX, {job.key: time.time()})
        pipe.zremrangebyrank(FAILED_INDEX, 0, -FAILED_KEEP - 1)
        await pipe.execute()


def last_line(error: str | None) -> str | None:
    """The exception line of a saq error (which stores a whole traceback), for display."""
    if not error:
        return error
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else None


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
        await worker.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        in_flight = list(worker.context.get("in_flight", ()))
        if in_flight:
            await asyncio.wait(in_flight, timeout=60)


# Monitoring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueCounts:
    queued: int
    active: int
    scheduled: int
    failed: int

    def as_dict(self) -> dict[str, int]:
        return {
            "queued": self.queued,
            "active": self.active,
            "scheduled": self.scheduled,
            "failed": self.failed,
        }


async def counts(queue: TaskQueue) -> QueueCounts:
    r = queue.redis
    async with r.pipeline(transaction=False) as pipe:
        pipe.llen(queue.namespace("queued"))
        pipe.llen(queue.namespace("active"))
        pipe.zcount(queue.namespace("incomplete"), f"({time.time()}", "+inf")
        pipe.zcard(FAILED_INDEX)
        queued, active, scheduled, failed = await pipe.execute()
    return QueueCounts(int(queued), int(active), int(scheduled), int(failed))


async def workers(queue: TaskQueue) -> dict[str, dict[str, Any]]:
    """Workers that reported within their heartbeat interval."""
    info = await queue.info()
    return {str(k): dict(v) for k, v in info.get("workers", {}).items()}


async def recent_failures(queue: TaskQueue, limit: int = 10) -> list[Job]:
    keys = await queue.redis.zrevrange(FAILED_INDEX, 0, limit - 1)
    found = await queue.jobs(k.decode() if isinstance(k, bytes) else str(k) for k in keys)
    return [j for j in found if j is not None]


def describe(job: Job) -> dict[str, Any]:
    """What an operator needs to know about a job; the error is its last line only."""
    return {
        "id": job.key,
        "task": job.function,
        "status": job.status.value,
        "attempts": job.attempts,
        "retries": job.retries,
        "queued_at": _iso(job.queued),
        "started_at": _iso(job.started),
        "completed_at": _iso(job.completed),
        "result": job.result if job.status == Status.COMPLETE else None,
        "error": last_line(job.error),
    }


def _iso(millis: int) -> str | None:
    if not millis:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(millis / 1000))


async def retry_failed(queue: TaskQueue, key: str) -> Job:
    """Put a failed or aborted job back in the queue with a fresh set of attempts."""
    job = await queue.job(key)
    if job is None:
        raise LookupError(f"no job {key}")
    if job.status not in (Status.FAILED, Status.ABORTED):
        raise ValueError(f"job {key} is {job.status.value}, not failed")
    job.attempts = 0
    job.error = None
    job.status = Status.QUEUED
    await queue.redis.zrem(FAILED_INDEX, key)
    await queue.redis.delete(job.id)  # saq re-enqueues a key only once it is gone
    queued = await queue.enqueue(job)
    if queued is None:
        raise ValueError(f"job {key} could not be queued again")
    return queued


async def abort(queue: TaskQueue, key: str) -> Job:
    """Stop a queued, scheduled or running job; it ends as aborted."""
    job = await queue.job(key)
    if job is None:
        raise LookupError(f"no job {key}")
    if job.status in (Status.COMPLETE, Status.FAILED, Status.ABORTED):
        raise ValueError(f"job {key} already ended: {job.status.value}")
    await queue.abort(job, error="aborted by an operator")
    return job


# Wiring: cleanup_ctx for the app and for `btecctl worker` ------------------------------------


async def monitor_queue(tasks: Tasks, stop: asyncio.Event, every: float = 5.0) -> None:
    """Keep the queue gauges fresh for /metrics (collectors cannot await Redis) until `stop`.
    An event, not cancellation: redis-py can turn a cancellation into a ConnectionError."""
    assert tasks.metrics is not None
    gauges = tasks.metrics.queue
    while not stop.is_set():
        try:
            gauges.counts = (await counts(tasks.queue)).as_dict()
            gauges.workers = len(await workers(tasks.queue))
        except (OSError, aioredis.RedisError) as exc:
            log.warning("queue_monitor_failed", error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


def health_check(catalogue: Tasks, window: float) -> Check:
    """Some worker reported a heartbeat within `window` seconds (saq's worker registry)."""

    async def heartbeat() -> Observation:
        seen = await workers(catalogue.queue)
        if not seen:
            return Observation(
                0, "workers", "warn", f"no worker reported in the last {window:g} s; jobs wait"
            )
        return Observation(len(seen), "workers")

    return Check("worker:heartbeat", "component", heartbeat, critical=False)
