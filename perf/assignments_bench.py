"""`GET /api/v1/assignments?unit=...&limit=20` against a bare aiohttp + asyncpg handler
returning the same 20 rows.

btec serves the page from its Redis cache (every request after the first is a hit) behind
its request middleware (request id, rate limit, errors, metrics, access log), the Redis
logout check and the account checks; the bare handler (`perf/bare_assignments.py`) decodes
the same HS256 JWT and runs the same query (summary columns, each assignment's criterion
codes, `count(*) OVER ()`) on every request. Both run on one embedded PostgreSQL/Redis data
dir held by a separate process, seeded over the API by `perf/seed_assessment.py` (5 units of
24 assignments with P/M/D criteria); both answers are checked to be the same document first.
btec's rate limiter is on with a policy that never limits (as in `perf/me_bench.py`); no
If-None-Match is sent, so every answer is a full 200. k6 (pinned to CPU 1) alternates.
Beside each server's own CPU per request, the CPU PostgreSQL + Redis spent per request (the
bare handler queries PostgreSQL every time, btec reads Redis) and the two together.

Target (issue "BTEC domain"): btec >= 70% of the bare handler's requests/s.
`python perf/assignments_bench.py [--rounds 3] [--duration 10s] [--vus 50]`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cache_bench import embedded_holder, measure, medians
from harness import HERE, btec_server, free_port, k6_run
from me_bench import KEY, wait_up
from seed_assessment import (
    ADMIN_EMAIL,
    CHEAP,
    PASSWORD,
    SERVER_ENV,
    Sizes,
    counts,
    create_admin,
    seed,
)

ISSUER = "btec"  # the tokens' `iss`: BTEC_PUBLIC_URL, unset here, else BTEC_SERVICE_ID
SIZES = Sizes(units=5, assignments=24, assessors=2, students=1, submissions=0)


@contextlib.contextmanager
def bare(port: int, data: Path) -> Iterator[int]:
    from server.platform.embedded import EmbeddedPostgres

    url = EmbeddedPostgres(data).url()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "bare_assignments.py"), str(port), url, KEY, ISSUER],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_up(f"http://127.0.0.1:{port}/api/v1/assignments")
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def page(port: int, path: str, bearer: str) -> Any:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {bearer}"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--vus", type=int, default=50)
    ap.add_argument("--duration", default="10s")
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="btec-assignments-"))
    ours, theirs = free_port(), free_port()
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, data, ignore_errors=True)  # last, once all stopped
        backing = stack.enter_context(embedded_holder(data))
        env = {**SERVER_ENV, "BTEC_JWT_KEYS": f"k1={KEY}"}
        our_pid = stack.enter_context(btec_server(ours, data, **env))
        create_admin(data, ADMIN_EMAIL, PASSWORD, **CHEAP)
        document = seed(f"http://127.0.0.1:{ours}", ADMIN_EMAIL, PASSWORD, SIZES)
        print(json.dumps({"seeded": counts(document)}), flush=True)
        bearer = document["students"][0]["token"]
        path = f"/api/v1/assignments?unit={document['units'][0]['id']}&limit=20"
        their_pid = stack.enter_context(bare(theirs, data))
        pages = [page(port, path, bearer) for port in (ours, theirs)]
        if pages[0] != pages[1]:
            raise SystemExit(f"btec and the bare handler answer different pages:\n{pages}")
        if len(pages[0]["items"]) != 20 or pages[0]["total"] != SIZES.assignments:
            raise SystemExit(f"unexpected page: {pages[0]}")
        os.environ["AUTHORIZATION"] = f"Bearer {bearer}"
        for port, pid in ((ours, our_pid), (theirs, their_pid)):  # warm up, not counted
            k6_run("warmup", f"http://127.0.0.1:{port}", path, pid, args.vus, "2s")
        for _ in range(args.rounds):
            for label, port, pid in (("btec", ours, our_pid), ("bare", theirs, their_pid)):
                row = measure(label, port, pid, backing, args.vus, args.duration, path)
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary: dict[str, Any] = {"path": path}
    summary |= {label: medians(rows, label) for label in ("btec", "bare")}
    b, t = summary["btec"], summary["bare"]
    summary["rps_ratio"] = round(b["rps_median"] / t["rps_median"], 3)
    for key in ("server_cpu_ms_per_req", "total_cpu_ms_per_req"):
        summary[key.removesuffix("_ms_per_req") + "_ratio"] = round(
            b[key + "_median"] / t[key + "_median"], 3
        )
    summary["target"] = {"rps_ratio": 0.7, "met": summary["rps_ratio"] >= 0.7}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
