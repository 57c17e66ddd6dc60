"""What `btecctl perf` costs against bare `k6 run` of the same script, side by side.

Target (issue 21): at 50 VUs, `btecctl perf run` loses under 5% of the requests/s of bare
`k6 run`. Both run `perf/scenarios/health.js` against one `btecctl serve` (embedded servers),
pinned to CPU 1 with `taskset` (btecctl's k6 inherits the pinning, so btecctl's reading of
k6's stream competes with k6 for that core, which is the cost measured); the server is
unpinned. Rounds alternate bare and btecctl; medians and per-round ratios. Also: btecctl's own
CPU (its process alone: Python, the stream reader, the summary) and each run's wall time from
process start.

A third arm, `bare_json`, is bare k6 writing the per-request points btecctl reads (`--out json`
with btecctl's system tags) to /dev/null: what k6 itself spends on that output, which btecctl
cannot avoid while it reads per-request figures (k6 has no per-metric output filter), apart
from what btecctl's own reading costs.

`--scenario browse` measures a realistic load instead of the worst case: students browsing
seeded units and assignments (a few hundred requests/s that each do real work, where health's
are the cheapest the server answers). The server is seeded once, as an admin; bare k6 reads
that seed, and btecctl seeds its own copy beside it with `--admin-token` (outside the load).

`python perf/perf_overhead.py [--scenario health|browse] [--rounds 3] [--vus 50]
[--duration 10s]`
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from harness import HERE, btec_env, btec_server, free_port, k6_binary, median

from btecctl.loadtest.seed import SERVER_ENV

SCRIPT = HERE / "scenarios" / "health.js"
SEED: dict[str, str] = {}  # a seeded scenario's: the seed file k6 reads, the admin's token


def _seed(url: str, data: Path) -> None:
    """Seed the server as an admin made with btecctl; the seed and the admin's token in SEED."""
    import asyncio

    from btecctl.loadtest import seed

    seed.create_admin(btec_env(data, **SERVER_ENV), seed.ADMIN_EMAIL, seed.PASSWORD)
    admin = seed.Admin(seed.ADMIN_EMAIL, seed.PASSWORD)
    document = asyncio.run(seed.seed_async(url, admin, seed.Sizes(students=100)))
    (data / "seed.json").write_text(json.dumps(document))

    async def token() -> str:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            return await seed.Api(http, url, 1).login(seed.ADMIN_EMAIL, seed.PASSWORD)

    SEED.update(file=str(data / "seed.json"), admin_token=asyncio.run(token()))


def _watch(cmd: list[str], env: dict[str, str]) -> tuple[str, float, float]:
    """Run `cmd`; its stdout, its own CPU seconds (not its children's) and its wall time."""
    started = time.monotonic()
    proc = psutil.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    cpu = 0.0
    while proc.poll() is None:
        try:
            t = proc.cpu_times()
            cpu = t.user + t.system
        except psutil.Error:
            break
        time.sleep(0.1)
    out = proc.stdout.read() if proc.stdout else ""
    return out, cpu, time.monotonic() - started


def bare(url: str, vus: int, duration: str, points: bool = False) -> dict[str, float]:
    seeded = ["-e", f"SEED_FILE={SEED['file']}"] if SEED else []
    from btecctl.loadtest.k6 import SYSTEM_TAGS

    output = ["--out", "json=/dev/null", "--system-tags", SYSTEM_TAGS] if points else []
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.json"
        cmd = ["taskset", "-c", "1", k6_binary(), "run", "--quiet", "--no-usage-report",
               "--address", "", "--summary-export", str(summary), "-e", f"BASE_URL={url}",
               "-e", f"VUS={vus}", "-e", f"DURATION={duration}", *output, *seeded,
               str(SCRIPT)]  # fmt: skip
        _, _, wall = _watch(cmd, {**os.environ})
        reqs = json.loads(summary.read_text())["metrics"]["http_reqs"]
    return {"rps": round(reqs["rate"], 1), "requests": reqs["count"], "wall_s": round(wall, 2)}


def btecctl(url: str, data: Path, vus: int, duration: str) -> dict[str, float]:
    cmd = ["taskset", "-c", "1", sys.executable, "-m", "btecctl", "perf", "run", SCRIPT.stem,
           "--url", url, "--vus", str(vus), "--duration", duration, "--json",
           "--thresholds", str(HERE / "thresholds-functional.toml")]  # fmt: skip
    extra = {"BTEC_PERF_ADMIN_TOKEN": SEED["admin_token"]} if SEED else {}
    out, cpu, wall = _watch(cmd, btec_env(data, **extra))
    summary = json.loads(out.strip().splitlines()[-1])
    every = summary["requests"]["all"]
    return {"rps": every["rate_per_s"], "requests": every["count"], "wall_s": round(wall, 2),
            "btecctl_cpu_s": round(cpu, 2), "ok": summary["ok"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--vus", type=int, default=50)
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--scenario", choices=("health", "browse"), default="health")
    args = ap.parse_args()
    global SCRIPT
    SCRIPT = HERE / "scenarios" / f"{args.scenario}.js"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="btec-perf-overhead-") as tmp:
        data = Path(tmp)
        rounds = []
        server_env = SERVER_ENV if args.scenario != "health" else {}
        with btec_server(port, data, **server_env):
            if args.scenario != "health":
                _seed(url, data)
            for _ in range(args.rounds):
                pair = {"bare": bare(url, args.vus, args.duration),
                        "bare_json": bare(url, args.vus, args.duration, points=True),
                        "btecctl": btecctl(url, data, args.vus, args.duration)}  # fmt: skip
                print(json.dumps(pair), flush=True)
                rounds.append(pair)
    losses = [1 - r["btecctl"]["rps"] / r["bare"]["rps"] for r in rounds]
    output = [1 - r["bare_json"]["rps"] / r["bare"]["rps"] for r in rounds]
    reading = [1 - r["btecctl"]["rps"] / r["bare_json"]["rps"] for r in rounds]
    print(json.dumps({
        "bare_rps_median": median([r["bare"]["rps"] for r in rounds]),
        "bare_json_rps_median": median([r["bare_json"]["rps"] for r in rounds]),
        "k6_output_loss_median": round(median(output), 3),
        "btecctl_reading_loss_median": round(median(reading), 3),
        "btecctl_rps_median": median([r["btecctl"]["rps"] for r in rounds]),
        "loss_per_round": [round(x, 3) for x in losses],
        "loss_median": round(median(losses), 3), "target": 0.05,
        "btecctl_cpu_s_median": median([r["btecctl"]["btecctl_cpu_s"] for r in rounds]),
        "wall_s_median": {k: median([r[k]["wall_s"] for r in rounds])
                          for k in ("bare", "bare_json", "btecctl")},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
