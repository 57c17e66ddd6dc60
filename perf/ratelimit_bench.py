"""What rate limiting costs: the same endpoint with limiting on and off, side by side.

Two `btecctl serve` processes on one embedded PostgreSQL/Redis data dir: one with a default
policy so high it never limits, one with BTEC_RATELIMIT_ENABLED=false. k6 alternates between
them. Target (issue "Traffic protection"): <= 0.5 ms added to p50, <= 15% fewer requests/s.
`python perf/ratelimit_bench.py [--tool k6|wrk] [--rounds 3] [--duration 10s] [--path PATH]`

The default path is the cheapest request there is (a 404 from the router), where the limiter's
share is largest. `--path "/api/v1/units?level=3&limit=20"` measures a real read (a cached
catalogue page); the catalogue is seeded first. `--tool wrk` drives the same load with wrk,
which needs a fraction of k6's CPU and so leaves the server more of this 2-core machine.
Besides the medians of each side, the summary gives the median of the per-round ratios,
which is steadier when the machine's speed drifts between rounds.

`--together` runs both servers at the same time instead, pinned to the same core (CPU 0)
with one load generator each (`--tool`) on CPU 1: the scheduler shares that core between
them, so each round's requests/s ratio is their CPU cost ratio, measured in the same seconds,
and the machine's drift cancels out. (32 connections each; no one-client p50 rounds.)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cache_bench import btecctl_json, embedded_holder, write_catalogue
from harness import Run, btec_server, free_port, k6_run, load_together, median, pin, wrk_run

PATH = "/api/v1/no-such-route"  # 404 from the router: the request path without a handler's work


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--vus", type=int, default=32)
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--path", default=PATH)
    ap.add_argument("--tool", choices=("k6", "wrk"), default="k6")
    ap.add_argument("--together", action="store_true", help="both servers at once, one core")
    args = ap.parse_args()
    expect = 404 if args.path == PATH else 200
    data = Path(tempfile.mkdtemp(prefix="btec-rl-"))
    on, off = free_port(), free_port()
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, data, ignore_errors=True)  # last, once all stopped
        # A separate process holds the embedded servers, so neither server's CPU includes
        # Redis's (it would be a child of whichever started first).
        stack.enter_context(embedded_holder(data))
        on_pid = stack.enter_context(
            btec_server(on, data, BTEC_RATELIMIT_DEFAULT="1000000000/1", BTEC_MAIL_CATCHER_PORT="0")
        )
        off_pid = stack.enter_context(btec_server(
            off, data, BTEC_RATELIMIT_ENABLED="false", BTEC_MAIL_CATCHER_PORT="0"))  # fmt: skip
        if args.path.startswith("/api/v1/units"):
            write_catalogue(data / "units.csv", 2000)
            btecctl_json(data, "units", "import", str(data / "units.csv"))
        if args.together:
            together(args, [("limited", on, on_pid), ("unlimited", off, off_pid)])
            return
        for _ in range(args.rounds):
            for label, port, pid in (("limited", on, on_pid), ("unlimited", off, off_pid)):
                for vus, suffix in ((args.vus, ""), (1, "@1vu")):
                    url = f"http://127.0.0.1:{port}"
                    if args.tool == "wrk":
                        run = wrk_run(label + suffix, url, args.path, pid, vus, args.duration)
                    else:
                        run = k6_run(label + suffix, url, args.path, pid, vus, args.duration,
                                     expect=expect)  # fmt: skip
                    runs.append(run)
                    print(json.dumps(asdict(run)), flush=True)
    print(json.dumps(summarise(runs, args.path), indent=2))


def together(args: argparse.Namespace, servers: list[tuple[str, int, int]]) -> None:
    """Both servers under load at once on one shared core; see the module docstring."""
    for _, _, pid in servers:
        pin(pid, [0])
    costs, cpu_added = [], []
    targets = [(label, f"http://127.0.0.1:{port}", pid) for label, port, pid in servers]
    for _ in range(args.rounds):
        lim, unl = load_together(targets, args.path, args.vus, args.duration, args.tool,
                                 expect=404 if args.path == PATH else 200)  # fmt: skip
        for run in (lim, unl):
            print(json.dumps(asdict(run)), flush=True)
        costs.append(1 - lim.rps / unl.rps)
        cpu_added.append(lim.server_cpu_ms_per_req - unl.server_cpu_ms_per_req)
    print(json.dumps({
        "mode": f"together, one shared core, {args.tool}",
        "rps_cost_per_round": [round(c, 3) for c in costs],
        "rps_cost_median": round(median(costs), 3),
        "cpu_added_ms_per_req_median": round(median(cpu_added), 4),
        "path": args.path,
        "target_rps_cost": 0.15,
    }, indent=2))  # fmt: skip


def summarise(runs: list[Run], path: str) -> dict[str, object]:
    """Throughput at saturation; latency both at saturation (where it is mostly queueing,
    so it follows throughput) and with one client at a time (the limiter's own delay)."""
    summary: dict[str, Any] = {}
    for label in ("limited", "unlimited", "limited@1vu", "unlimited@1vu"):
        mine = [r for r in runs if r.label == label]
        summary[label] = {
            "rps_median": median([r.rps for r in mine]),
            "p50_ms_median": median([r.p50_ms for r in mine]),
            "server_cpu_ms_per_req_median": median([r.server_cpu_ms_per_req for r in mine]),
        }
    lim, unl = summary["limited"], summary["unlimited"]
    summary["rps_cost"] = round(1 - lim["rps_median"] / unl["rps_median"], 3)
    pairs = zip(
        [r for r in runs if r.label == "limited"],
        [r for r in runs if r.label == "unlimited"],
        strict=True,
    )
    per_round = [1 - a.rps / b.rps for a, b in pairs]
    summary["rps_cost_per_round"] = [round(c, 3) for c in per_round]
    summary["rps_cost_median_of_rounds"] = round(median(per_round), 3)
    summary["cpu_added_ms_per_req"] = round(
        lim["server_cpu_ms_per_req_median"] - unl["server_cpu_ms_per_req_median"], 4
    )
    summary["p50_added_ms_one_client"] = round(
        summary["limited@1vu"]["p50_ms_median"] - summary["unlimited@1vu"]["p50_ms_median"], 3
    )
    summary["p50_added_ms_saturated"] = round(lim["p50_ms_median"] - unl["p50_ms_median"], 3)
    summary["path"] = path
    summary["targets"] = {"p50_added_ms": 0.5, "rps_cost": 0.15}
    return summary


if __name__ == "__main__":
    main()
