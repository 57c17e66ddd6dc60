"""What logging and metrics cost: `/api/v1/health/live` with both on and both off, side by side.

Three `btecctl serve` processes on one embedded PostgreSQL/Redis data dir, alternating rounds:
- `off`: BTEC_METRICS_ENABLED=false and BTEC_LOG_LEVEL=WARNING (no access line is built);
- `on`: the defaults (metrics counted; INFO, where probes' access lines are skipped because
  they log at DEBUG);
- `on+log`: metrics, and BTEC_LOG_LEVELS=btec.access=DEBUG, so every request writes its JSON
  access line (to a pipe, as under systemd): the cost of a logged request on the cheapest
  endpoint.
Target (issue "Observability"): logging and metrics together cost <= 10% of the requests/s
with both off.
`python perf/obs_bench.py [--together] [--tool wrk|k6] [--rounds 5] [--duration 8s]
[--configs off,on,on+log]`

wrk is the default: at these rates (over 20,000 requests/s) k6 measures itself.
`--together` runs the servers at once, pinned to one shared core, one load generator each (see
perf/README.md): their requests/s ratios are their CPU-cost ratios over the same seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from cache_bench import embedded_holder
from harness import Run, btec_server, free_port, k6_run, load_together, median, pin, wrk_run

PATH = "/api/v1/health/live"
CONFIGS = {
    "off": {"BTEC_METRICS_ENABLED": "false", "BTEC_LOG_LEVEL": "WARNING"},
    "on": {},
    "on+log": {"BTEC_LOG_LEVELS": "btec.access=DEBUG"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--vus", type=int, default=32)
    ap.add_argument("--duration", default="8s")
    ap.add_argument("--tool", choices=("k6", "wrk"), default="wrk")
    ap.add_argument("--configs", default=",".join(CONFIGS), help="which of off,on,on+log")
    ap.add_argument("--together", action="store_true", help="all servers at once, one core")
    args = ap.parse_args()
    chosen = {name: CONFIGS[name] for name in args.configs.split(",")}
    data = Path(tempfile.mkdtemp(prefix="btec-obs-"))
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, data, ignore_errors=True)  # last, once all stopped
        stack.enter_context(embedded_holder(data))
        servers = {}
        for label, env in chosen.items():
            port = free_port()
            common = {"BTEC_MAIL_CATCHER_PORT": "0", "BTEC_RATELIMIT_ENABLED": "false"}
            pid = stack.enter_context(btec_server(port, data, **common, **env))
            servers[label] = (port, pid)
        if args.together:
            for _, pid in servers.values():
                pin(pid, [0])
        for _ in range(args.rounds):
            if args.together:
                targets = [(lab, f"http://127.0.0.1:{port}", pid)
                           for lab, (port, pid) in servers.items()]  # fmt: skip
                for run in load_together(targets, PATH, args.vus, args.duration, args.tool):
                    runs.append(run)
                    print(json.dumps(asdict(run)), flush=True)
                continue
            for label, (port, pid) in servers.items():
                url = f"http://127.0.0.1:{port}"
                if args.tool == "wrk":
                    run = wrk_run(label, url, PATH, pid, args.vus, args.duration)
                else:
                    run = k6_run(label, url, PATH, pid, args.vus, args.duration)
                runs.append(run)
                print(json.dumps(asdict(run)), flush=True)
    print(json.dumps(summarise(runs, list(chosen)), indent=2))


def summarise(runs: list[Run], labels: list[str]) -> dict[str, object]:
    summary: dict[str, object] = {}
    by_label = {label: [r for r in runs if r.label == label] for label in labels}
    for label, mine in by_label.items():
        summary[label] = {
            "rps_median": median([r.rps for r in mine]),
            "p50_ms_median": median([r.p50_ms for r in mine]),
            "p99_ms_median": median([r.p99_ms for r in mine]),
            "server_cpu_ms_per_req_median": median([r.server_cpu_ms_per_req for r in mine]),
        }
    off = by_label["off"]
    for label in labels[1:]:
        costs = [1 - a.rps / b.rps for a, b in zip(by_label[label], off, strict=True)]
        cpu = median([r.server_cpu_ms_per_req for r in by_label[label]]) - median(
            [r.server_cpu_ms_per_req for r in off]
        )
        summary[f"{label}_vs_off"] = {
            "rps_cost_per_round": [round(c, 3) for c in costs],
            "rps_cost_median": round(median(costs), 3),
            "cpu_added_ms_per_req": round(cpu, 4),
            "target_rps_cost": 0.10,
        }
    return summary


if __name__ == "__main__":
    main()
