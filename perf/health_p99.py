"""GET /api/v1/health under the liveness load (32 VUs, 15 s): p99 must stay under 50 ms.

The checks are cached (BTEC_HEALTH_CACHE_SECONDS), so a flood of probes costs one check run per
window. `python perf/health_p99.py [--rounds 3]`
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from harness import btec_server, free_port, k6_run, median


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--vus", type=int, default=32)
    ap.add_argument("--duration", default="15s")
    args = ap.parse_args()
    port = free_port()
    runs = []
    with btec_server(port) as pid:
        for _ in range(args.rounds):
            run = k6_run("health", f"http://127.0.0.1:{port}", "/api/v1/health", pid,
                         args.vus, args.duration)  # fmt: skip
            runs.append(run)
            print(json.dumps(asdict(run)), flush=True)
    print(json.dumps({
        "p99_ms_median": median([r.p99_ms for r in runs]),
        "p99_ms_max": max(r.p99_ms for r in runs),
        "rps_median": median([r.rps for r in runs]),
        "server_cpu_ms_per_req_median": median([r.server_cpu_ms_per_req for r in runs]),
        "target_p99_ms": 50,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
