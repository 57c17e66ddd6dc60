"""btecctl jobs: the job queue's counts, failures and workers; retry, abort, and ping. (Also
answers as `btecctl tasks`, its name before.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from btecctl.context import Session, session
from btecctl.output import FAILED, JsonOpt, err_console, noun, out_console, report

if TYPE_CHECKING:
    from saq import Job

    from server.jobs.queue import JobQueue

app = noun(
    "The job queue: counts, failures, workers; retry, abort, ping.",
    no_args_is_help=False,
    invoke_without_command=True,
)
JobId = Annotated[
    str, typer.Argument(metavar="ID", help="The job's id (as `btecctl jobs` shows it).")
]
SecondsOpt = Annotated[
    float, typer.Option(min=0, max=300, metavar="SECONDS", help="Work the job pretends.")
]
WaitOpt = Annotated[
    float, typer.Option(min=0.5, metavar="SECONDS", help="Give up waiting after this.")
]
JobTimeoutOpt = Annotated[
    int | None,
    typer.Option(min=1, metavar="SECONDS", help="The job's own timeout, to see timeouts handled."),
]


@app.callback()
def overview(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The job queue: counts, failures, workers; retry, abort, ping.

    Queue counts (queued, active, scheduled, failed), the recent failures with their error, and
    the workers with a recent heartbeat and their counters."""
    if ctx.invoked_subcommand is None:
        list_command(ctx, as_json)


@app.command("list")
def list_command(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Queue counts (queued, active, scheduled, failed), recent failures and live workers."""
    with session(ctx, as_json, redis=True) as s:
        data = s.run(_overview(s.jobs.queue))
    report(as_json, data, lambda: _render(data))


async def _overview(queue: JobQueue) -> dict[str, Any]:
    from server.jobs import admin

    counts = await admin.counts(queue)
    return {
        "queues": [{"name": queue.name, **counts.as_dict()}],
        "failures": [admin.describe(j) for j in await admin.recent_failures(queue)],
        "workers": [_worker(k, v) for k, v in (await admin.workers(queue)).items()],
    }


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


def _table(
    title: str, columns: tuple[str, ...], rows: list[list[Any]], numbers: bool = False
) -> Table:
    """A table whose first column, an id, never wraps."""
    table = Table(title=title, title_justify="left")
    table.add_column(columns[0], no_wrap=True)
    for col in columns[1:]:
        table.add_column(col, overflow="fold", justify="right" if numbers else "left")
    for row in rows:
        table.add_row(*map(str, row))
    return table


def _render(data: dict[str, Any]) -> None:
    counts = ("queued", "active", "scheduled", "failed")
    queues = [[q["name"], *(q[k] for k in counts)] for q in data["queues"]]
    out_console.print(_table("queues", ("queue", *counts), queues, numbers=True))
    heard = [[w[k] for k in ("id", "pid", "complete", "failed", "retried", "uptime_s")]
             for w in data["workers"]]  # fmt: skip
    workers = _table("workers (recent heartbeat)",
                     ("id", "pid", "complete", "failed", "retried", "up (s)"), heard)  # fmt: skip
    out_console.print(workers if heard else "[yellow]no worker is running[/]")
    failed = [[f[k] for k in ("id", "task", "attempts", "completed_at", "error")]
              for f in data["failures"]]  # fmt: skip
    if failed:
        out_console.print(
            _table("recent failures", ("id", "task", "attempts", "failed at", "error"), failed)
        )


@app.command("show")
def show(ctx: typer.Context, job_id: JobId, as_json: JsonOpt = False) -> None:
    """One job: status, attempts, times, result or error."""
    from server.jobs import admin

    with session(ctx, as_json, redis=True) as s:
        job = s.run(s.jobs.queue.job(job_id))
        if job is None:
            raise LookupError(f"no job {job_id}")
    found = admin.describe(job)
    report(as_json, found, lambda: _print_fields(found))


def _print_fields(found: dict[str, Any]) -> None:
    for key, value in found.items():
        out_console.print(Text.assemble((f"{key}", "bold"), f": {value}"), soft_wrap=True)


def _act(ctx: typer.Context, job_id: str, as_json: bool, verb: str,
         action: Callable[[JobQueue, str], Coroutine[Any, Any, Job]]) -> None:  # fmt: skip
    from server.jobs import admin

    with session(ctx, as_json, redis=True) as s:
        result = admin.describe(s.run(action(s.jobs.queue, job_id)))
    said = f"[green]{verb}[/] {job_id} ({result['task']}): {result['status']}"
    report(as_json, {"ok": True, "job": result}, lambda: err_console.print(said))


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
    ctx: typer.Context, seconds: SecondsOpt = 0.0, timeout: WaitOpt = 30.0,
    job_timeout: JobTimeoutOpt = None, as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Queue a no-op job and wait for a worker to run it: proves the queue works end to end."""
    with session(ctx, as_json, redis=True) as s:
        result = s.run(_ping(s, seconds, job_timeout, wait=timeout))
    ok = result["status"] == "complete"
    said = (f"[green]pong[/] in {result['round_trip_s']} s (job {result['id']})" if ok else
            f"[red]no pong[/] after {timeout:g} s: job {result['id']} is {result['status']}; "
            "is a worker running?")  # fmt: skip
    report(as_json, {"ok": ok, **result}, lambda: err_console.print(said))
    if not ok:
        raise typer.Exit(FAILED)


async def _ping(
    s: Session, seconds: float, job_timeout: int | None, *, wait: float
) -> dict[str, Any]:
    """Queue a ping and wait up to `wait` seconds for it to end; the job as it then is."""
    from server.jobs import admin

    started = time.monotonic()
    job = await s.jobs.enqueue("ping", timeout=job_timeout, seconds=seconds)
    if job is None:
        raise RuntimeError("the ping job was not queued")
    await _finished(s.jobs.queue, job.key, deadline=time.monotonic() + wait)
    done = await s.jobs.queue.job(job.key)
    if done is None:
        raise RuntimeError(f"job {job.key} is gone from the queue")
    return {**admin.describe(done), "round_trip_s": round(time.monotonic() - started, 3)}


async def _finished(queue: JobQueue, key: str, *, deadline: float) -> None:
    """Until the job has ended or the `deadline` (time.monotonic) has passed: polled up to the
    deadline, never cancelled at it (once in CI, `jobs ping --timeout 0.5` hung for 120 s in
    the event loop while asyncio.wait_for cancelled its Redis read; polling cancels nothing)."""
    from saq import Status

    while True:
        job = await queue.job(key)
        if job is not None and job.status in (Status.COMPLETE, Status.FAILED, Status.ABORTED):
            return
        left = deadline - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(0.05, left))
