"""The operator's view of the queue: counts, workers, recent failures, one job described,
retrying and aborting jobs, the gauges /metrics shows, and the worker heartbeat check."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from saq import Job, Status

from server.jobs.queue import FAILED_INDEX, JobQueue, Jobs, last_line, log
from server.observability.probes import Check, Observation


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


async def counts(queue: JobQueue) -> QueueCounts:
    r = queue.redis
    async with r.pipeline(transaction=False) as pipe:
        pipe.llen(queue.namespace("queued"))
        pipe.llen(queue.namespace("active"))
        pipe.zcount(queue.namespace("incomplete"), f"({time.time()}", "+inf")
        pipe.zcard(FAILED_INDEX)
        queued, active, scheduled, failed = await pipe.execute()
    return QueueCounts(int(queued), int(active), int(scheduled), int(failed))


async def workers(queue: JobQueue) -> dict[str, dict[str, Any]]:
    """Workers that reported within their heartbeat interval."""
    info = await queue.info()
    return {str(k): dict(v) for k, v in info.get("workers", {}).items()}


async def recent_failures(queue: JobQueue, limit: int = 10) -> list[Job]:
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
        "worker": job.worker_id,  # the worker that took it last (`btecctl jobs` lists them)
    }


def _iso(millis: int) -> str | None:
    if not millis:
        return None
    return dt.datetime.fromtimestamp(millis / 1000, dt.UTC).isoformat()  # as the API's others


async def retry_failed(queue: JobQueue, key: str) -> Job:
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


async def abort(queue: JobQueue, key: str) -> Job:
    """Stop a queued, scheduled or running job; it ends as aborted."""
    job = await queue.job(key)
    if job is None:
        raise LookupError(f"no job {key}")
    if job.status in (Status.COMPLETE, Status.FAILED, Status.ABORTED):
        raise ValueError(f"job {key} already ended: {job.status.value}")
    await queue.abort(job, error="aborted by an operator")
    return job


async def monitor_queue(jobs: Jobs, stop: asyncio.Event, every: float = 5.0) -> None:
    """Keep the queue gauges fresh for /metrics (collectors cannot await Redis) until `stop`.
    An event, not cancellation: redis-py can turn a cancellation into a ConnectionError."""
    if jobs.metrics is None:
        raise RuntimeError("monitor_queue needs Jobs made with metrics")
    gauges = jobs.metrics.queue
    while not stop.is_set():
        try:
            gauges.counts = (await counts(jobs.queue)).as_dict()
            gauges.workers = len(await workers(jobs.queue))
        except (OSError, aioredis.RedisError) as exc:
            log.warning("queue_monitor_failed", error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


def health_check(catalogue: Jobs, window: float) -> Check:
    """Some worker reported a heartbeat within `window` seconds (saq's worker registry)."""

    async def heartbeat() -> Observation:
        seen = await workers(catalogue.queue)
        if not seen:
            return Observation(
                0, "workers", "warn", f"no worker reported in the last {window:g} s; jobs wait"
            )
        return Observation(len(seen), "workers")

    return Check("worker:heartbeat", "component", heartbeat, critical=False)
