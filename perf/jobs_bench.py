"""Job queue figures: enqueue cost (what a handler pays) and no-op throughput of one worker.

`python perf/jobs_bench.py [--redis-url redis://127.0.0.1:6379/13] [--jobs 5000]`
Targets (issue "Background jobs and mail"): median enqueue <= 1 ms on loopback Redis;
>= 500 no-op jobs/s with one worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis

from server.config.settings import Settings
from server.jobs.queue import Jobs, create_queue
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


def throughput(url: str, n: int, concurrency: int) -> dict[str, float]:
    keys = asyncio.run(fill(url, n))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BTEC_")}
    env.update({"BTEC_REDIS_URL": url, "BTEC_ENV_FILE": "", "BTEC_LOG_LEVEL": "WARNING",
                "BTEC_DATABASE_URL": os.environ.get("BTEC_DATABASE_URL",
                                                    "postgresql://postgres@127.0.0.1:5432/postgres"),
                "BTEC_MAIL_CATCHER_PORT": "0"})  # fmt: skip
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--enqueues", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=10)
    args = ap.parse_args()
    redis.Redis.from_url(args.redis_url).flushdb()
    result = {
        "redis": args.redis_url.split("@")[-1],
        "enqueue": asyncio.run(enqueue_cost(args.redis_url, args.enqueues)),
    }
    redis.Redis.from_url(args.redis_url).flushdb()
    result["throughput"] = throughput(args.redis_url, args.jobs, args.concurrency)
    result["targets"] = {"enqueue_median_ms": 1.0, "jobs_per_s": 500}
    redis.Redis.from_url(args.redis_url).flushdb()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
