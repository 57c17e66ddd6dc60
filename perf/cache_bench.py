"""What the read cache buys: one catalogue page served from Redis and from PostgreSQL, side by side.

`GET /api/v1/units?level=3&limit=20` (a `count(*) OVER ()` + 20 rows query) on two
`btecctl serve` processes on one embedded PostgreSQL/Redis data dir, seeded with 2,000 units
through `btecctl units import`: one with the cache on (every request after the first is a
Redis hit), one with BTEC_CACHE_ENABLED=false (every request reads PostgreSQL). Rate limiting
is off on both; no If-None-Match is sent, so every answer is a full 200 with its body. k6
alternates between them.

A third process holds the embedded servers, so neither `btecctl serve` counts them as its
children: "app" CPU is the btecctl process alone, "backing" CPU is PostgreSQL (postmaster and
backends) plus Redis over the same run, both per request.

Target: a cached read runs at >= 2x the requests/s of the uncached read.
`python perf/cache_bench.py [--rounds 3] [--duration 10s] [--vus 32] [--units 2000]`
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil
from harness import btec_env, btec_server, free_port, k6_run, median

PATH = "/api/v1/units?level=3&limit=20"
LEVEL = 3
SERVER_ENV = {"BTEC_RATELIMIT_ENABLED": "false", "BTEC_MAIL_CATCHER_PORT": "0"}
# Starts the data dir's embedded PostgreSQL and Redis and keeps them until stdin closes.
HOLDER = """
import sys
from server.platform.embedded import embedded_services
from server.config.settings import load_settings
with embedded_services(load_settings()):
    print("ready", flush=True)
    sys.stdin.read()
"""
WORDS = ("Applied", "Advanced", "Practical", "Introductory", "Professional", "Digital",
         "Creative", "Technical", "Scientific", "Business")  # fmt: skip
SUBJECTS = ("Programming", "Networking", "Accounting", "Marketing", "Engineering Design",
            "Health and Safety", "Data Analysis", "Media Production", "Chemistry",
            "Customer Service", "Project Management", "Electronics")  # fmt: skip


def write_catalogue(path: Path, count: int) -> int:
    """A CSV of `count` units with levels 1-8 spread evenly; returns how many are LEVEL."""
    rng = random.Random(2026)
    at_level = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["code", "title", "level", "credits"])
        for i in range(1, count + 1):
            level = 1 + (i * 5) % 8
            at_level += level == LEVEL
            title = f"{rng.choice(WORDS)} {rng.choice(SUBJECTS)} {rng.randint(1, 99)}"
            out.writerow([f"U/{i // 10000:03d}/{i % 10000:04d}", title, level,
                          rng.randint(1, 999)])  # fmt: skip
    return at_level


@contextlib.contextmanager
def embedded_holder(data: Path) -> Iterator[dict[str, int]]:
    """Hold the embedded servers in a separate process; yields their pids by name."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER],
        env=btec_env(data),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("the embedded servers did not start")
        status = btecctl_json(data, "dev", "status")
        yield {s["name"]: int(s["pid"]) for s in status["servers"] if s["running"]}
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(60)


def btecctl_json(data: Path, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "btecctl", *args, "--json"],
        env=btec_env(data),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"btecctl {' '.join(args)} failed ({done.returncode}):\n"
                         f"{done.stdout}{done.stderr}")  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def backing_cpu(pids: dict[str, int]) -> float:
    """CPU seconds of PostgreSQL (postmaster, its processes, backends that exited) and Redis."""
    total = 0.0
    for pid in pids.values():
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    c = child.cpu_times()
                    total += c.user + c.system
    return total


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        if resp.status != 200:
            raise SystemExit(f"{url}: HTTP {resp.status}")
        return json.loads(resp.read())


def cache_counters(port: int) -> dict[str, float]:
    """The units.page cache counters from the server's /metrics."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("btec_cache_") and 'cache="units.page"' in line:
            series, value = line.rsplit(" ", 1)
            name, _, labels = series.partition("{")
            labels = labels.rstrip("}").replace('cache="units.page"', "").strip(",")
            if not name.endswith("_created"):
                found[f"{name}{{{labels}}}" if labels else name] = float(value)
    return found


def measure(
    label: str,
    port: int,
    pid: int,
    backing: dict[str, int],
    vus: int,
    duration: str,
    path: str = PATH,
) -> dict[str, Any]:
    """One k6 run as a row: its figures, and the CPU PostgreSQL and Redis spent per request
    beside the server's."""
    before = backing_cpu(backing)
    run = k6_run(label, f"http://127.0.0.1:{port}", path, pid, vus, duration)
    backing_ms = round((backing_cpu(backing) - before) * 1000 / max(run.requests, 1), 4)
    return asdict(run) | {
        "backing_cpu_ms_per_req": backing_ms,
        "total_cpu_ms_per_req": round(run.server_cpu_ms_per_req + backing_ms, 4),
    }


MEDIAN_KEYS = ("rps", "p50_ms", "p99_ms", "server_cpu_ms_per_req", "backing_cpu_ms_per_req",
               "total_cpu_ms_per_req", "loadgen_cpu_share")  # fmt: skip


def medians(rows: list[dict[str, Any]], label: str) -> dict[str, Any]:
    """The medians of one server's rounds, and the worst failure rate among them."""
    mine = [r for r in rows if r["label"] == label]
    found: dict[str, Any] = {key + "_median": median([r[key] for r in mine]) for key in MEDIAN_KEYS}
    found["failed_rate_max"] = max(r["failed_rate"] for r in mine)
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--vus", type=int, default=32)
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--units", type=int, default=2000)
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="btec-cache-"))
    cached, uncached = free_port(), free_port()
    rows: list[dict[str, Any]] = []
    try:
        with contextlib.ExitStack() as stack:
            backing = stack.enter_context(embedded_holder(data))
            on_pid = stack.enter_context(btec_server(cached, data, **SERVER_ENV))
            off_pid = stack.enter_context(
                btec_server(uncached, data, BTEC_CACHE_ENABLED="false", **SERVER_ENV)
            )
            csv_path = data / "units.csv"
            expected = write_catalogue(csv_path, args.units)
            started = time.monotonic()
            imported = btecctl_json(data, "units", "import", str(csv_path))
            seconds = round(time.monotonic() - started, 2)
            print(json.dumps({"seeded": imported, "seconds": seconds}), flush=True)
            pages = [get_json(f"http://127.0.0.1:{port}{PATH}") for port in (cached, uncached)]
            for page in pages:
                if page["total"] != expected or len(page["items"]) != 20:
                    got = f"total {page['total']}, {len(page['items'])} items"
                    raise SystemExit(f"unexpected page: {got}; expected {expected}, 20")
            if pages[0] != pages[1]:
                raise SystemExit("the cached and uncached servers answer different pages")
            for port, pid in ((cached, on_pid), (uncached, off_pid)):  # warm up, not counted
                k6_run("warmup", f"http://127.0.0.1:{port}", PATH, pid, args.vus, "2s")
            for _ in range(args.rounds):
                for label, port, pid in (("cached", cached, on_pid),
                                         ("uncached", uncached, off_pid)):  # fmt: skip
                    row = measure(label, port, pid, backing, args.vus, args.duration)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            counters = {"cached": cache_counters(cached), "uncached": cache_counters(uncached)}
    finally:
        shutil.rmtree(data, ignore_errors=True)
    summary: dict[str, Any] = {label: medians(rows, label) for label in ("cached", "uncached")}
    on, off = summary["cached"], summary["uncached"]
    summary["rps_ratio"] = round(on["rps_median"] / off["rps_median"], 2)
    summary["total_cpu_ratio"] = round(
        off["total_cpu_ms_per_req_median"] / on["total_cpu_ms_per_req_median"], 2
    )
    summary["cache_counters"] = counters
    summary["target"] = {"rps_ratio": 2.0, "met": summary["rps_ratio"] >= 2.0}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
