"""`btecctl serve --processes 2` against `--processes 1` on this 2-core machine.

wrk runs pinned to CPU 1 (one thread, 64 connections) and the server is unpinned; the rounds
alternate 1, 2, 1, 2, ... on one data dir (embedded PostgreSQL and Redis). Two endpoints:
GET /api/v1/health/live (no I/O: the request frame alone) and GET /api/v1/users/me (a JWT and
one row). Each run reports requests/s, p99 and the server's CPU milliseconds per request: the
whole process tree (the parent, the API processes, and the embedded PostgreSQL and Redis).
Medians per arm, and the ratios 2 : 1.

`python perf/processes_bench.py [--rounds 3] [--duration 10s] [--connections 64]`
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import asdict
from pathlib import Path

from harness import btec_server, free_port, median, wrk_run
from me_bench import KEY, make_admin, token

ENDPOINTS = ("/api/v1/health/live", "/api/v1/users/me")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--pool-total", type=int, default=0,
                    help="Database connections shared out among the processes (each gets "
                    "TOTAL / N); 0: BTEC_DB_POOL_MAX_SIZE's default in each")  # fmt: skip
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="btec-processes-"))
    env = {"BTEC_JWT_KEYS": f"k1={KEY}", "BTEC_RATELIMIT_ENABLED": "false",
           "BTEC_MAIL_CATCHER_PORT": "0"}  # fmt: skip
    runs: dict[tuple[int, str], list[dict[str, float]]] = {}
    admin_made = False
    for _ in range(args.rounds):
        for count in (1, 2):
            port = free_port()
            share = args.pool_total // count
            pool = {"BTEC_DB_POOL_MAX_SIZE": str(share)} if args.pool_total else {}
            with btec_server(port, data, ("--processes", str(count)), **env, **pool) as pid:
                if not admin_made:
                    make_admin(data)
                    admin_made = True
                bearer = {"Authorization": f"Bearer {token(port)}"}
                for path in ENDPOINTS:
                    headers = bearer if path.endswith("/me") else None
                    run = wrk_run(f"{count}x {path}", f"http://127.0.0.1:{port}", path, pid,
                                  args.connections, args.duration, headers=headers)  # fmt: skip
                    print(json.dumps(asdict(run)), flush=True)
                    runs.setdefault((count, path), []).append(asdict(run))
    summary = {}
    for path in ENDPOINTS:
        arms = {n: runs[(n, path)] for n in (1, 2)}
        med = {n: {k: median([r[k] for r in arms[n]])
                   for k in ("rps", "p99_ms", "server_cpu_ms_per_req", "failed_rate")}
               for n in (1, 2)}  # fmt: skip
        summary[path] = {
            "processes_1": med[1],
            "processes_2": med[2],
            "rps_ratio_2_to_1": round(med[2]["rps"] / med[1]["rps"], 2),
            "cpu_per_req_ratio_2_to_1": round(
                med[2]["server_cpu_ms_per_req"] / med[1]["server_cpu_ms_per_req"], 2
            ),
        }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
