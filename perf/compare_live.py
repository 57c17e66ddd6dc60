"""btec's liveness probe against a bare aiohttp app, side by side, alternating A/B rounds.

Target (issue "Foundation"): btec's requests/s at least 80% of the bare app's.
`python perf/compare_live.py [--tool k6|wrk] [--rounds 3] [--vus 32] [--duration 15s]`

k6 tops out near its own core's limit here, so also read the server CPU per request (and
`--tool wrk`, which drives more load from the same core).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from harness import Run, bare_server, btec_server, free_port, k6_run, median, wrk_run

PATH = "/api/v1/health/live"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--vus", type=int, default=32)
    ap.add_argument("--duration", default="15s")
    ap.add_argument("--tool", choices=("k6", "wrk"), default="k6")
    args = ap.parse_args()
    load = k6_run if args.tool == "k6" else wrk_run
    btec_port, bare_port = free_port(), free_port()
    runs: list[Run] = []
    with btec_server(btec_port) as btec_pid, bare_server(bare_port) as bare_pid:
        for _ in range(args.rounds):
            runs.append(load("btec", f"http://127.0.0.1:{btec_port}", PATH, btec_pid,
                             args.vus, args.duration))  # fmt: skip
            runs.append(load("bare", f"http://127.0.0.1:{bare_port}", PATH, bare_pid,
                             args.vus, args.duration))  # fmt: skip
            print(json.dumps(asdict(runs[-2])), flush=True)
            print(json.dumps(asdict(runs[-1])), flush=True)
    summary = {}
    for label in ("btec", "bare"):
        mine = [r for r in runs if r.label == label]
        summary[label] = {
            "rps_median": median([r.rps for r in mine]),
            "p99_ms_median": median([r.p99_ms for r in mine]),
            "server_cpu_ms_per_req_median": median([r.server_cpu_ms_per_req for r in mine]),
            "loadgen_cpu_share_median": median([r.loadgen_cpu_share for r in mine]),
        }
    ratios = [a.rps / b.rps for a, b in zip(runs[::2], runs[1::2], strict=True)]
    summary["rps_ratio_btec_over_bare"] = {
        "per_round": [round(r, 3) for r in ratios],
        "median": round(median(ratios), 3),
        "target": 0.8,
    }
    summary["cpu_ratio_btec_over_bare"] = round(
        summary["btec"]["server_cpu_ms_per_req_median"]
        / summary["bare"]["server_cpu_ms_per_req_median"],
        3,
    )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
