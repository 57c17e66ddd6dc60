"""The job queue (saq on Redis): what a job is (its spec and explicit defaults), the queue
jobs go through, and enqueueing. The worker that runs them is in jobs.worker, and the
operator's view (counts, failures, retry, abort, health) in jobs.admin.

saq supplies the queue, scheduling, timeouts and retries. Two things here are ours:
- retry delays use "equal jitter" (half the exponential cap fixed, half random) instead of
  saq's full jitter, so a retry never comes sooner than the one before it: a job failing
  against a down SMTP server backs off instead of sometimes retrying at once;
- the sweep of stuck jobs spares a job that a worker has just taken: saq moves a job to the
  active list a moment before marking it active, and its sweep would abort a job caught in
  between (seen here when a worker starts while jobs wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from aiohttp import web
from saq import Job, Status
from saq.queue.redis import RedisQueue
from saq.types import Context as SaqContext

from server.domain.errors import QueueUnavailable
from server.observability.logging import get_logger, request_id_var
from server.observability.metrics import Metrics

if TYPE_CHECKING:
    from server.config.settings import Settings
    from server.platform.mail import Mailer

JOBS: web.AppKey[Jobs] = web.AppKey("jobs")

log = get_logger("btec.jobs")

QUEUE_NAME = "btec"
# Redis key names keep the word "tasks" of earlier releases: queued and failed jobs survive an
# upgrade.
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
    metrics: Any  # the process's Metrics, for counts of what jobs did
    jobs: Any  # the queue (Jobs), for jobs that queue jobs
    in_flight: set[asyncio.Future[Any]]
    started: float


JobFunction = Callable[..., Awaitable[Any]]


class PermanentError(Exception):
    """A job failure that no retry can fix (bad input): the job fails at once."""


@dataclass(frozen=True)
class JobSpec:
    """A task and its explicit defaults (saq's own are 1 try and 10 s)."""

    function: JobFunction
    timeout: int = 30
    retries: int = 5
    retry_delay: float = 2.0  # first retry after 1-2 s, then 2-4 s, 4-8 s, ...
    max_delay: float = 600.0
    ttl: int = 3 * 24 * 3600  # finished jobs stay inspectable for three days
    idempotent: bool = False  # callers must pass a key; completed keys never run again

    @property
    def name(self) -> str:
        return self.function.__name__


class JobQueue(RedisQueue):
    """saq's Redis queue with equal-jitter retry delays and a race-free sweep."""

    _sweep_script: Any = None

    async def _retry(self, job: Job, error: str | None) -> None:
        cap = min(job.retry_delay * 2 ** max(job.attempts - 1, 0), _max_delay(job))
        delay = cap / 2 + random.uniform(0, cap / 2)  # noqa: S311  # nosec B311 # retry jitter, not secrecy
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


class Jobs:
    """The catalogue of jobs (their specs) and the queue they go through."""

    def __init__(self, queue: JobQueue, specs: list[JobSpec], metrics: Metrics | None) -> None:
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

    async def _enqueue(
        self, spec: JobSpec, key: str | None, limit: int | None, kwargs: dict[str, Any]
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


def create_queue(redis_url: str) -> JobQueue:
    client: aioredis.Redis = aioredis.Redis.from_url(
        redis_url, socket_connect_timeout=2, health_check_interval=30
    )
    return JobQueue(client, name=QUEUE_NAME)


def last_line(error: str | None) -> str | None:
    """The exception line of a saq error (which stores a whole traceback), for display."""
    if not error:
        return error
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else None
