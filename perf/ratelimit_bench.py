"""What rate limiting costs: the same endpoint with limiting on and off, side by side.

Two `btecctl serve` processes on one embedded PostgreSQL/Redis data dir: one with a default
policy so high it never limits, one with BTEC_RATELIMIT_ENABLED=false. k6 alternates between
them. Target (issue "Traffic protection"): <= 0.5 ms added to p50, <= 15% fewer requests/s.
`python perf/ratelimit_bench.py [--rounds 3] [--duration 10s]`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
from dataclasses import asdict
from pathlib import Path

from harness import Run, btec_server, free_port, k6_run, median

PATH = "/api/v1/no-such-route"  # 404 from the router: the request path without a handler's work


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--vus", type=int, default=32)
    ap.add_argument("--duration", default="10s")
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="btec-rl-"))
    on, off = free_port(), free_port()
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        on_pid = stack.enter_context(
            btec_server(on, data, BTEC_RATELIMIT_DEFAULT="1000000000/1", BTEC_MAIL_CATCHER_PORT="0")
        )
        off_pid = stack.enter_context(btec_server(
            off, data, BTEC_RATELIMIT_ENABLED="false", BTEC_MAIL_CATCHER_PORT="0"))  # fmt: skip
        for _ in range(args.rounds):
            for label, port, pid in (("limited", on, on_pid), ("unlimited", off, off_pid)):
                run = k6_run(label, f"http://127.0.0.1:{port}", PATH, pid, args.vus,
                             args.duration, expect=404)  # fmt: skip
                runs.append(run)
                print(json.dumps(asdict(run)), flush=True)
    summary: dict[str, object] = {}
    for label in ("limited", "unlimited"):
        mine = [r for r in runs if r.label == label]
        summary[label] = {
            "rps_median": median([r.rps for r in mine]),
            "p50_ms_median": median([r.p50_ms for r in mine]),
            "server_cpu_ms_per_req_median": median([r.server_cpu_ms_per_req for r in mine]),
        }
    lim, unl = summary["limited"], summary["unlimited"]
    assert isinstance(lim, dict)
    assert isinstance(unl, dict)
    summary["p50_added_ms"] = round(lim["p50_ms_median"] - unl["p50_ms_median"], 3)
    summary["rps_cost"] = round(1 - lim["rps_median"] / unl["rps_median"], 3)
    summary["targets"] = {"p50_added_ms": 0.5, "rps_cost": 0.15}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
