"""btecctl tasks: the job queue's counts, failures and workers; retry, abort, and ping."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from btecctl.output import (
    FAILED,
    UNREACHABLE,
    USAGE,
    JsonOpt,
    emit_json,
    err_console,
    fail,
    out_console,
    settings_of,
)
from server.config.settings import Settings
from server.platform.embedded import EmbeddedError, embedded_services

if TYPE_CHECKING:
    from server.jobs.queue import JobQueue, Jobs

T = TypeVar("T")
app = typer.Typer(
    no_args_is_help=False,
    invoke_without_command=True,
    help="The job queue: counts, failures, workers; retry, abort, ping.",
)
JobId = Annotated[str, typer.Argument(help="The job's id (as `btecctl tasks` shows it).")]


@contextlib.contextmanager
def _redis(settings: Settings, as_json: bool) -> Iterator[Settings]:
    try:
        with embedded_services(settings, postgres=False) as resolved:
            yield resolved
    except EmbeddedError as exc:
        fail(f"embedded Redis: {exc}", as_json=as_json)


@contextlib.asynccontextmanager
async def _queue(settings: Settings) -> AsyncIterator[JobQueue]:
    from server.jobs.queue import create_queue

    assert settings.redis_url is not None
    queue = create_queue(settings.redis_url.get_secret_value())
    try:
        yield queue
    finally:
        await queue.disconnect()


@contextlib.asynccontextmanager
async def catalogue(settings: Settings) -> AsyncIterator[Jobs]:
    """The task catalogue on the settings' Redis: for commands that queue jobs."""
    from server.jobs.queue import Jobs
    from server.worker import handlers as task_specs

    async with _queue(settings) as queue:
        yield Jobs(queue, task_specs.specs(settings), None)


def _run(settings: Settings, as_json: bool, work: Callable[[JobQueue], Awaitable[T]]) -> T:
    import redis.exceptions

    async def main(resolved: Settings) -> T:
        async with _queue(resolved) as queue:
            return await work(queue)

    with _redis(settings, as_json) as resolved:
        try:
            return asyncio.run(main(resolved))
        except (redis.exceptions.ConnectionError, OSError) as exc:
            fail(f"Redis unreachable: {type(exc).__name__}", code=UNREACHABLE, as_json=as_json)


@app.callback()
def overview(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Queue counts, recent failures and live workers (the same as `btecctl tasks list`)."""
    if ctx.invoked_subcommand is None:
        _overview(settings_of(ctx), as_json)


@app.command("list")
def list_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Queue counts (queued, active, scheduled, failed), recent failures and live workers."""
    _overview(settings_of(ctx), as_json)


def _overview(settings: Settings, as_json: bool) -> None:
    from server.jobs import admin

    async def read(queue: JobQueue) -> dict[str, Any]:
        counts = await admin.counts(queue)
        failures = await admin.recent_failures(queue)
        workers = await admin.workers(queue)
        return {
            "queues": [{"name": queue.name, **counts.as_dict()}],
            "failures": [admin.describe(j) for j in failures],
            "workers": [_worker(k, v) for k, v in workers.items()],
        }

    data = _run(settings, as_json, read)
    if as_json:
        emit_json(data)
        return
    _render(data)


def _worker(worker_id: str, info: dict[str, Any]) -> dict[str, Any]:
    stats = info.get("stats") or {}
    return {
        "id": worker_id,
        "pid": (info.get("metadata") or {}).get("pid"),
        "queue": info.get("queue_key"),
        "complete": stats.get("complete"),
        "failed": stats.get("failed"),
        "retried": stats.get("retried"),
        "uptime_s": round((stats.get("uptime") or 0) / 1000),
    }


def _render(data: dict[str, Any]) -> None:
    queues = Table(title="queues", title_justify="left")
    for col in ("queue", "queued", "active", "scheduled", "failed"):
        queues.add_column(col, justify="left" if col == "queue" else "right")
    for q in data["queues"]:
        queues.add_row(q["name"], *(str(q[k]) for k in ("queued", "active", "scheduled", "failed")))
    out_console.print(queues)
    workers = Table(title="workers (recent heartbeat)", title_justify="left")
    for col in ("id", "pid", "complete", "failed", "retried", "up (s)"):
        workers.add_column(col)
    for w in data["workers"]:
        workers.add_row(w["id"], str(w["pid"]), str(w["complete"]), str(w["failed"]),
                        str(w["retried"]), str(w["uptime_s"]))  # fmt: skip
    out_console.print(workers if data["workers"] else "[yellow]no worker is running[/]")
    if data["failures"]:
        failures = Table(title="recent failures", title_justify="left")
        for col in ("id", "task", "attempts", "failed at", "error"):
            failures.add_column(col, overflow="fold")
        for f in data["failures"]:
            failures.add_row(f["id"], f["task"], str(f["attempts"]), str(f["completed_at"]),
                             str(f["error"]))  # fmt: skip
        out_console.print(failures)


@app.command("show")
def show(ctx: typer.Context, job_id: JobId, as_json: JsonOpt = False) -> None:
    """One job: status, attempts, times, result or error."""
    from server.jobs import admin

    async def read(queue: JobQueue) -> dict[str, Any] | None:
        job = await queue.job(job_id)
        return admin.describe(job) if job else None

    found = _run(settings_of(ctx), as_json, read)
    if found is None:
        fail(f"no job {job_id}", as_json=as_json)
    if as_json:
        emit_json(found)
        return
    for key, value in found.items():
        out_console.print(f"[bold]{key}[/]: {value}", highlight=False)


def _act(ctx: typer.Context, job_id: str, as_json: bool, verb: str, action: Any) -> None:
    async def work(queue: JobQueue) -> dict[str, Any]:
        from server.jobs import admin

        job = await action(queue, job_id)
        return admin.describe(job)

    try:
        result = _run(settings_of(ctx), as_json, work)
    except LookupError as exc:
        fail(str(exc), as_json=as_json)
    except ValueError as exc:
        fail(str(exc), code=USAGE, as_json=as_json)
    if as_json:
        emit_json({"ok": True, "job": result})
    else:
        err_console.print(f"[green]{verb}[/] {job_id} ({result['task']}): {result['status']}")


@app.command("retry")
def retry(ctx: typer.Context, job_id: JobId, as_json: JsonOpt = False) -> None:
    """Queue a failed (or aborted) job again, with a fresh set of attempts."""
    from server.jobs.admin import retry_failed

    _act(ctx, job_id, as_json, "queued again", retry_failed)


@app.command("abort")
def abort(ctx: typer.Context, job_id: JobId, as_json: JsonOpt = False) -> None:
    """Stop a queued, scheduled or running job; it ends as aborted."""
    from server.jobs.admin import abort as abort_job

    _act(ctx, job_id, as_json, "aborted", abort_job)


@app.command("ping")
def ping(
    ctx: typer.Context,
    seconds: Annotated[float, typer.Option(min=0, max=300, help="Work the job pretends.")] = 0.0,
    timeout: Annotated[float, typer.Option(min=0.5, help="Give up waiting after this.")] = 30.0,
    job_timeout: Annotated[
        int | None, typer.Option(min=1, help="The job's own timeout, to see timeouts handled.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue a no-op job and wait for a worker to run it: proves the queue works end to end."""

    async def work(queue: JobQueue) -> dict[str, Any]:
        from server.jobs import admin
        from server.jobs.queue import Jobs
        from server.worker import handlers as task_specs

        settings = settings_of(ctx)
        jobs = Jobs(queue, task_specs.specs(settings), None)
        started = time.monotonic()
        job = await jobs.enqueue("ping", timeout=job_timeout, seconds=seconds)
        assert job is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_finished(queue, job.key), timeout)
        done = await queue.job(job.key)
        assert done is not None
        return {**admin.describe(done), "round_trip_s": round(time.monotonic() - started, 3)}

    result = _run(settings_of(ctx), as_json, work)
    ok = result["status"] == "complete"
    if as_json:
        emit_json({"ok": ok, **result})
    elif ok:
        err_console.print(f"[green]pong[/] in {result['round_trip_s']} s (job {result['id']})")
    else:
        err_console.print(f"[red]no pong[/] after {timeout:g} s: job {result['id']} is "
                          f"{result['status']}; is a worker running?")  # fmt: skip
    if not ok:
        raise typer.Exit(FAILED)


async def _finished(queue: JobQueue, key: str) -> None:
    from saq import Status

    while True:
        job = await queue.job(key)
        if job is not None and job.status in (Status.COMPLETE, Status.FAILED, Status.ABORTED):
            return
        await asyncio.sleep(0.05)
