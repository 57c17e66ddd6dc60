"""A rolling restart under a steady 200 requests/s: its failed requests and its p99 against the
steady state's.

HAProxy (deploy/haproxy/haproxy.cfg, its checks every 300 ms) in front of two
`btecctl serve --no-worker` sharing one data dir's embedded PostgreSQL and Redis. An open-loop
client pinned to CPU 1 sends GET /api/v1/users/me (a JWT and one row) at a fixed rate, each
request on schedule whether or not the last has answered. After the steady phase, each server
in turn gets SIGTERM, is started again and waits until HAProxy has it back; then a short tail.
Reported: requests, failures, p50 and p99 of the steady phase and of the restart window, and
the ratio of the two p99s.

`python perf/rolling_restart.py [--rate 200] [--steady 20] [--rounds 3]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
from cache_bench import embedded_holder
from harness import HERE, btec_env, free_port, median
from me_bench import KEY, make_admin, token

sys.path.insert(0, str(HERE.parent))
from tests.support.cluster import haproxy_config, haproxy_states
from tests.support.wait import eventually_sync

PATH = "/api/v1/users/me"


class Api:
    """One `btecctl serve --no-worker` on `port`."""

    def __init__(self, data: Path, port: int) -> None:
        self.data, self.port, self.proc = data, port, None
        self.start()

    def start(self) -> None:
        env = btec_env(self.data, BTEC_JWT_KEYS=f"k1={KEY}", BTEC_DRAIN_SECONDS="1.5",
                       BTEC_TRUSTED_PROXIES="127.0.0.1/32", BTEC_RATELIMIT_ENABLED="false",
                       BTEC_MAIL_CATCHER_PORT="0")  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "btecctl", "serve", "--no-worker", "--no-migrate", "--port",
             str(self.port), "--json"], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if '"event": "ready"' in line:
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()
                return
        raise SystemExit("btecctl serve exited before it was ready")

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(60)


def in_rotation(tmp: Path, name: str, state: str) -> None:
    eventually_sync(lambda: haproxy_states(tmp).get(name), lambda s: s == state, timeout=60,
                    message=f"HAProxy has {name} {state}")  # fmt: skip


async def load(url: str, headers: dict[str, str], rate: float, stop: threading.Event,
               found: list[tuple[float, float, int]]) -> None:  # fmt: skip
    """Open loop: one request every 1/rate s, on schedule, until `stop`. This thread alone runs
    on CPU 1 meanwhile (Linux pins a thread; the servers restarted by another are unpinned)."""
    everywhere = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {1})
    try:
        await _open_loop(url, headers, rate, stop, found)
    finally:
        os.sched_setaffinity(0, everywhere)


async def _open_loop(url: str, headers: dict[str, str], rate: float, stop: threading.Event,
                     found: list[tuple[float, float, int]]) -> None:  # fmt: skip
    async with aiohttp.ClientSession(headers=headers) as http:

        async def one(at: float) -> None:
            started = time.monotonic()
            try:
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=30)) as answer:
                    await answer.read()
                    status = answer.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            found.append((at, time.monotonic() - started, status))

        tasks = set()
        next_at = time.monotonic()
        while not stop.is_set():
            task = asyncio.ensure_future(one(next_at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_at += 1 / rate
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*tasks)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))] * 1000, 2) if s else 0.0


def one_round(data: Path, tmp: Path, haproxy: str, args: argparse.Namespace) -> dict[str, float]:
    ports = [free_port(), free_port()]
    servers = [Api(data, p) for p in ports]
    lb = free_port()
    config = haproxy_config(tmp, lb, ports, fast=True)
    proxy = subprocess.Popen([haproxy, "-db", "-f", str(config)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for name in ("api1", "api2"):
            in_rotation(tmp, name, "UP")
        headers = {"Authorization": f"Bearer {token(ports[0])}"}
        stop, found = threading.Event(), []
        marks: dict[str, float] = {}

        def restarts() -> None:
            time.sleep(args.steady)
            marks["from"] = time.monotonic()
            for index, name in enumerate(("api1", "api2")):
                servers[index].stop()
                in_rotation(tmp, name, "DOWN")
                servers[index].start()
                in_rotation(tmp, name, "UP")
            marks["to"] = time.monotonic()
            time.sleep(3)
            stop.set()

        worker = threading.Thread(target=restarts)
        worker.start()
        asyncio.run(load(f"http://127.0.0.1:{lb}{PATH}", headers, args.rate, stop, found))
        worker.join()
    finally:
        proxy.terminate()
        proxy.wait(30)
        for server in servers:
            server.stop()
    steady = [s for at, s, _ in found if at < marks["from"]]
    window = [s for at, s, _ in found if marks["from"] <= at <= marks["to"]]
    failed = sum(1 for _, _, status in found if status != 200)
    result = {
        "requests": len(found), "failed": failed,
        "restart_seconds": round(marks["to"] - marks["from"], 2),
        "steady_p50_ms": pct(steady, 0.50), "steady_p99_ms": pct(steady, 0.99),
        "restart_p50_ms": pct(window, 0.50), "restart_p99_ms": pct(window, 0.99),
        "restart_max_ms": pct(window, 1.0),
    }  # fmt: skip
    result["p99_ratio"] = round(result["restart_p99_ms"] / result["steady_p99_ms"], 2)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--steady", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    haproxy = "/usr/sbin/haproxy"
    data = Path(tempfile.mkdtemp(prefix="btec-rolling-"))
    tmp = Path(tempfile.mkdtemp(prefix="btec-rolling-lb-"))
    with embedded_holder(data):
        subprocess.run([sys.executable, "-m", "btecctl", "db", "migrate", "--json"],
                       env=btec_env(data), check=True, capture_output=True)  # fmt: skip
        make_admin(data)
        rounds = []
        for _ in range(args.rounds):
            result = one_round(data, tmp, haproxy, args)
            rounds.append(result)
            print(json.dumps(result), flush=True)
    print(json.dumps({
        "rate": args.rate,
        "failed_total": sum(r["failed"] for r in rounds),
        "steady_p99_ms_median": median([r["steady_p99_ms"] for r in rounds]),
        "restart_p99_ms_median": median([r["restart_p99_ms"] for r in rounds]),
        "p99_ratio_median": median([r["p99_ratio"] for r in rounds]),
        "target_ratio": 2.0,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
