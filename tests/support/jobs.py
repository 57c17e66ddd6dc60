"""Waiting for jobs: one job's status (through the ops API or the queue), or the queue gone
idle, so that a test asserts on what a job did, or did not do, only once it has run."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from server.config.settings import SETTINGS
from server.jobs.admin import describe
from server.jobs.queue import JOBS, Jobs
from tests.support.metrics import operator_headers
from tests.support.wait import eventually


async def wait_job(
    client: Any, job_id: str, until: set[str], timeout: float = 20
) -> dict[str, Any]:
    """The job as GET /api/v1/ops/jobs/{id} shows it, once its status is one of `until`."""
    ops = operator_headers(client.app[SETTINGS], "ops_token")

    async def shown() -> dict[str, Any]:
        resp = await client.get(f"/api/v1/ops/jobs/{job_id}", headers=ops)
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body

    return await eventually(shown, lambda job: job["status"] in until, timeout=timeout,
                            interval=0.1, message=f"job {job_id} is {sorted(until)}")  # fmt: skip


async def wait_status(jobs: Jobs, key: str, until: set[str], timeout: float = 20) -> str:
    """The job's status in the queue ("missing" if it has none), once it is one of `until`."""

    async def status() -> str:
        job = await jobs.job(key)
        return job.status.value if job else "missing"

    return await eventually(status, lambda found: found in until, timeout=timeout,
                            message=f"job {key} is {sorted(until)}")  # fmt: skip


async def jobs_idle(app: web.Application, timeout: float = 20) -> None:
    """Until the app's queue holds no job that is queued, scheduled for a retry or running:
    every job queued so far has finished, and whatever it sends has been sent."""
    queue = app[JOBS].queue
    await eventually(lambda: queue.count("incomplete"), lambda left: left == 0, timeout=timeout,
                     message="no job queued or running")  # fmt: skip


async def job_states(app: web.Application, prefix: str, suffixes: Iterable[object]) -> str:
    """What the app's queue says of the jobs `prefix + suffix`, as `btecctl jobs show` does
    (status, attempts, worker, times, last error), for a test's failure message."""
    jobs = app[JOBS]
    found = [describe(job) for suffix in suffixes
             if (job := await jobs.job(f"{prefix}{suffix}")) is not None]  # fmt: skip
    return json.dumps(found, default=str) if found else f"none queued as {prefix}*"
