"""Job queue figures: enqueue cost (what a handler pays) and no-op throughput of one worker.

`python perf/jobs_bench.py [--jobs 5000] [--redis-url URL --database-url URL]`
Targets (issue "Background jobs and mail"): median enqueue <= 1 ms on loopback Redis;
>= 500 no-op jobs/s with one worker.

By default it starts its own embedded PostgreSQL and Redis in a scratch data dir, removed
afterwards, so it touches no server of the machine's. Given `--redis-url`, it refuses a Redis
database that holds any key (it never flushes one it did not make), and between phases and at
the end deletes only the queue's keys (`saq:*`), which in a database empty at the start are
its own; the worker then uses `--database-url` (or BTEC_DATABASE_URL).

On the embedded Redis it measures both with and without its append-only file (issue "Nothing
lost under faults": the default keeps jobs across restarts; its cost must stay within 10%),
side by side: `--rounds` rounds, each one with the AOF on (`appendfsync everysec`, the default)
and one with it switched off at runtime (`CONFIG SET appendonly no`). A given `--redis-url` is
measured as it is configured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from server.config.settings import Settings
from server.jobs.queue import Jobs, create_queue
from server.platform.embedded import embedded_services
from server.worker import handlers as catalogue

HERE = Path(__file__).resolve().parent


async def enqueue_cost(url: str, n: int) -> dict[str, float]:
    queue = create_queue(url)
    tasks = Jobs(queue, catalogue.specs(Settings(_env_file=None)), None)
    await tasks.enqueue("ping")  # connect and load the script first
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await tasks.enqueue("ping")
        samples.append((time.perf_counter() - started) * 1000)
    await queue.disconnect()
    samples.sort()
    return {
        "enqueues": n,
        "median_ms": round(statistics.median(samples), 4),
        "p99_ms": round(samples[int(n * 0.99) - 1], 4),
    }


async def fill(url: str, n: int) -> list[str]:
    queue = create_queue(url)
    tasks = Jobs(queue, catalogue.specs(Settings(_env_file=None)), None)
    keys = []
    for _ in range(n):
        job = await tasks.enqueue("ping")
        assert job is not None
        keys.append(job.key)
    await queue.disconnect()
    return keys


async def finished(url: str, keys: list[str]) -> tuple[int, float]:
    queue = create_queue(url)
    jobs = [j for j in await queue.jobs(keys) if j is not None]
    await queue.disconnect()
    done = [j for j in jobs if j.status.value == "complete"]
    span = (max(j.completed for j in done) - min(j.started for j in done)) / 1000
    return len(done), span


def throughput(url: str, database_url: str, n: int, concurrency: int) -> dict[str, float]:
    keys = asyncio.run(fill(url, n))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BTEC_")}
    env.update({"BTEC_REDIS_URL": url, "BTEC_ENV_FILE": "", "BTEC_LOG_LEVEL": "WARNING",
                "BTEC_DATABASE_URL": database_url, "BTEC_MAIL_CATCHER_PORT": "0"})  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "btecctl", "worker", "--concurrency", str(concurrency)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=HERE.parent,
    )  # fmt: skip
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        pending = client.llen("saq:btec:queued") + client.llen("saq:btec:active")
        if pending == 0:
            break
        time.sleep(0.2)
    worker.send_signal(signal.SIGTERM)
    worker.wait(60)
    done, span = asyncio.run(finished(url, keys))
    return {"jobs": n, "completed": done, "seconds": round(span, 3),
            "jobs_per_s": round(done / span, 1), "concurrency": concurrency}  # fmt: skip


def clear_queue(url: str) -> None:
    """Delete the queue's keys, and nothing else."""
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match="saq:*", count=1000):
        client.delete(key)


@contextlib.contextmanager
def servers(redis_url: str | None, database_url: str | None) -> Iterator[tuple[str, str, str]]:
    """(Redis URL, PostgreSQL URL, what they are): the given ones, or embedded ones of its own."""
    if redis_url:
        database_url = database_url or os.environ.get("BTEC_DATABASE_URL")
        if not database_url:
            raise SystemExit("--redis-url needs --database-url (or BTEC_DATABASE_URL): the "
                             "worker connects to PostgreSQL")  # fmt: skip
        keys = redis.Redis.from_url(redis_url).dbsize()
        if keys:
            raise SystemExit(f"that Redis database holds {keys} keys: name an empty one "
                             "(this benchmark deletes only the keys it makes)")  # fmt: skip
        try:
            yield redis_url, database_url, redis_url.split("@")[-1]
        finally:
            clear_queue(redis_url)
        return
    with tempfile.TemporaryDirectory(prefix="btec-jobs-bench-") as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp), database_url=None, redis_url=None)
        with embedded_services(settings) as running:
            assert running.redis_url is not None
            assert running.database_url is not None
            yield (running.redis_url.get_secret_value(), running.database_url.get_secret_value(),
                   "embedded, in a scratch data dir")  # fmt: skip


def set_aof(url: str, on: bool) -> None:
    """Switch the append-only file on or off, and wait for the rewrite switching on starts."""
    client = redis.Redis.from_url(url)
    client.config_set("appendonly", "yes" if on else "no")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = client.info("persistence")
        if info["aof_enabled"] == int(on) and not info["aof_rewrite_in_progress"]:
            return
        time.sleep(0.05)
    raise SystemExit("the append-only file did not settle in 60 s")


def measure(url: str, database_url: str, args: argparse.Namespace) -> dict[str, Any]:
    clear_queue(url)
    found = {"enqueue": asyncio.run(enqueue_cost(url, args.enqueues))}
    clear_queue(url)
    found["throughput"] = throughput(url, database_url, args.jobs, args.concurrency)
    clear_queue(url)
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--redis-url", help="an empty Redis database (default: embedded, its own)")
    ap.add_argument("--database-url", help="with --redis-url: the worker's PostgreSQL")
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--enqueues", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="embedded: rounds of AOF on and off")
    args = ap.parse_args()
    targets = {"enqueue_median_ms": 1.0, "jobs_per_s": 500, "aof_cost_max": 0.10}
    with servers(args.redis_url, args.database_url) as (url, database_url, where):
        if args.redis_url:
            print(json.dumps({"redis": where, **measure(url, database_url, args),
                              "targets": targets}, indent=2))  # fmt: skip
            return
        runs: dict[str, list[dict[str, Any]]] = {"aof": [], "no_aof": []}
        for _ in range(args.rounds):
            for on in (True, False):
                set_aof(url, on)
                found = measure(url, database_url, args)
                runs["aof" if on else "no_aof"].append(found)
                print(json.dumps({"aof": on, **found}), flush=True)
        set_aof(url, True)
    print(json.dumps({"redis": where, **side_by_side(runs), "targets": targets}, indent=2))


def side_by_side(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians of each arm, and what the AOF costs: throughput lost, enqueue time added."""

    def med(arm: str, part: str, key: str) -> float:
        return statistics.median(r[part][key] for r in runs[arm])

    figures = {arm: {"jobs_per_s": med(arm, "throughput", "jobs_per_s"),
                     "enqueue_median_ms": med(arm, "enqueue", "median_ms"),
                     "enqueue_p99_ms": med(arm, "enqueue", "p99_ms")} for arm in runs}  # fmt: skip
    on, off = figures["aof"], figures["no_aof"]
    return {**figures, "aof_cost": {
        "throughput_lost": round(1 - on["jobs_per_s"] / off["jobs_per_s"], 3),
        "enqueue_median_added": round(on["enqueue_median_ms"] / off["enqueue_median_ms"] - 1, 3),
    }}  # fmt: skip


if __name__ == "__main__":
    main()
