"""The transactional outbox of follow-up jobs: the jobs an operator would otherwise have to
repair by hand when the queue was down at the moment of a change (the scan after an upload,
the similarity check after a submission, the notice of a grade).

A service records the job in PostgreSQL, in the transaction of the change it follows
(`record`), so that the change and its job commit together or not at all. Once the transaction
commits, `publish` puts the job on the queue and deletes its row; when Redis cannot take it,
the row stays, logged once as `job_kept_in_outbox`. A relay in every worker process
(`relay_loop`) queues what was kept every BTEC_OUTBOX_RELAY_SECONDS, oldest first, and deletes
each row once queued. Every job has an idempotency key, and the queue refuses a key it holds or
has done, so a row queued twice (a relay racing a publish, a crash between queueing and
deleting) still runs once.

Chosen over queueing after the commit alone (what `Jobs.follow_up` did: a Redis outage lost
the job, logged for an operator) and over a two-phase commit between PostgreSQL and Redis
(which Redis does not offer). The table is the jobs package's own, so its SQL lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.domain.errors import QueueUnavailable
from server.domain.text import describe
from server.jobs.queue import Jobs, log

Conn = Any  # an asyncpg connection, pooled or not
Connect = Callable[[], contextlib.AbstractAsyncContextManager[Any]]  # as services take `db`

RELAY_BATCH = 200


@dataclass(frozen=True)
class FollowUp:
    """A job to run once the change it follows has committed. `about` names what it is about
    (ids, for the log), never its arguments."""

    task: str
    key: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    about: dict[str, Any] = field(default_factory=dict)


async def record(conn: Conn, follow: FollowUp) -> None:
    """Keep the job in the outbox, in the caller's transaction (the same key twice: once)."""
    await conn.execute(
        "INSERT INTO job_outbox (job_key, task, kwargs, about) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (job_key) DO NOTHING",
        follow.key, follow.task, json.dumps(follow.kwargs), json.dumps(follow.about),
    )  # fmt: skip


async def publish(db: Connect, jobs: Jobs, follows: Sequence[FollowUp]) -> bool:
    """After the commit: queue each job and delete its row. False when the queue could not
    take them: they stay in the outbox, logged, for the relay."""
    queued: list[str] = []
    try:
        for follow in follows:
            await jobs.enqueue(follow.task, key=follow.key, **follow.kwargs)
            queued.append(follow.key)
    except QueueUnavailable as exc:
        for follow in follows[len(queued) :]:
            log.warning("job_kept_in_outbox", task=follow.task, key=follow.key,
                        error=describe(exc), **follow.about)  # fmt: skip
    if queued:
        try:
            async with db() as conn:
                await conn.execute("DELETE FROM job_outbox WHERE job_key = ANY($1::text[])",
                                   queued)  # fmt: skip
        except Exception as exc:  # the change is committed and its jobs queued: answer so
            # The relay finds these rows queued already (their keys) and deletes them.
            log.warning("outbox_rows_kept", keys=queued, error=describe(exc))
    return len(queued) == len(follows)


async def relay(db: Connect, jobs: Jobs, *, after_seconds: float) -> int:
    """Queue the jobs kept in the outbox (older than `after_seconds`: a younger one is its
    writer's to queue), oldest first; each row goes once queued. How many were queued; stops
    at the first the queue refuses."""
    async with db() as conn:
        rows = await conn.fetch(
            "SELECT job_key, task, kwargs, about FROM job_outbox "
            "WHERE created_at < now() - make_interval(secs => $1) ORDER BY created_at LIMIT $2",
            after_seconds, RELAY_BATCH,
        )  # fmt: skip
    done = 0
    for row in rows:
        try:
            await jobs.enqueue(row["task"], key=row["job_key"], **json.loads(row["kwargs"]))
        except QueueUnavailable as exc:
            async with db() as conn:
                await conn.execute(
                    "UPDATE job_outbox SET attempts = attempts + 1, last_error = $2 "
                    "WHERE job_key = $1", row["job_key"], describe(exc),
                )  # fmt: skip
            break
        async with db() as conn:
            await conn.execute("DELETE FROM job_outbox WHERE job_key = $1", row["job_key"])
        log.info("job_relayed", task=row["task"], key=row["job_key"], **json.loads(row["about"]))
        done += 1
    return done


async def pending(conn: Conn) -> int:
    """Jobs waiting in the outbox."""
    return int(await conn.fetchval("SELECT count(*) FROM job_outbox"))


async def relay_loop(db: Connect, jobs: Jobs, stop: asyncio.Event, every: float) -> None:
    """Relay every `every` seconds the jobs older than twice that, until `stop` is set; a
    failed round is logged and retried."""
    while not stop.is_set():
        try:
            await relay(db, jobs, after_seconds=2 * every)
        except Exception as exc:  # the database is down: the next round tries again
            log.warning("outbox_relay_failed", error=describe(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
