"""The assessment mix under load: students browsing and submitting, assessors grading.

`btecctl serve` on embedded PostgreSQL/Redis (held by a separate process, so the server's
CPU is its own), seeded over the API by `perf/seed_assessment.py` (5 units of 20
assignments, 5 assessors, 200 students, 400 submissions of which a quarter graded), then
`perf/scenarios/mixed.js` at 50 VUs (k6 pinned to CPU 1, the server unpinned). Each round
prints requests/s, p50/p99 per request type, errors (failed requests and unexpected
answers; a 409 `submission_graded` is expected and counted apart), and the CPU per request
of the server and of PostgreSQL + Redis. The summary gives medians over the rounds.

btec runs as deployed but for three things: its rate limiter is on with a policy that never
limits (every VU comes from one address), sign-ins are not limited (seeding signs in every
account) and argon2id is cheap (seeding makes 200 accounts; the mix never signs in). Access
tokens live an hour. `btecctl serve` runs its job worker in-process (the default), so the
similarity check each submission queues and the mail each grade queues (to the embedded
mail catcher) run in the server too and count in its CPU per request.

Each VU is a user: between two requests it pauses `--think-ms` on average (default 1000,
uniformly 0.5 to 1.5 times that; users arrive spread over the first pauses), the pacing of
people reading a brief or a submission. `--think-ms 0` fires requests back to back instead:
that measures the server saturated (its capacity), where latency is queueing. A warm-up run
(`--warmup`, default 10 s) goes first and is not reported.

Target (issue "BTEC domain"): p99 <= 100 ms and 0 errors at 50 VUs on this machine.
`python perf/mixed_bench.py [--rounds 3] [--vus 50] [--duration 30s] [--think-ms 1000]
[--warmup 10s]`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from cache_bench import backing_cpu, embedded_holder
from harness import HERE, btec_server, free_port, k6_binary, measure_load, median
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

SCRIPT = HERE / "scenarios" / "mixed.js"
TYPES = ("list_assignments", "get_assignment", "my_submissions", "submit",
         "assessor_submissions", "get_submission", "grade")  # fmt: skip


def run_mix(
    port: int, pid: int, backing: dict[str, int], seed_file: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """One k6 run of the mix; its figures and the CPU it cost the server and the backing."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        summary = out.name
    env = {**os.environ, "BASE_URL": f"http://127.0.0.1:{port}", "SEED_FILE": str(seed_file),
           "VUS": str(args.vus), "DURATION": args.duration, "THINK_MS": str(args.think_ms),
           "P99_MS": str(args.p99_ms)}  # fmt: skip
    cmd = ["taskset", "-c", "1", k6_binary(), "run", "--quiet", "--no-color",
           "--summary-export", summary, str(SCRIPT)]  # fmt: skip
    backing_before = backing_cpu(backing)
    _, share, cpu = measure_load(cmd, pid, env)
    backing_used = backing_cpu(backing) - backing_before
    metrics = json.loads(Path(summary).read_text())["metrics"]
    os.unlink(summary)
    reqs = int(metrics["http_reqs"]["count"])
    dur = metrics["http_req_duration"]
    per_type = {}
    for name in TYPES:
        found = metrics.get(f"http_req_duration{{name:{name}}}")
        count = int(metrics.get(f"http_reqs{{name:{name}}}", {}).get("count", 0))
        if found and count:
            per_type[name] = {"requests": count, "p50_ms": round(found["med"], 2),
                              "p99_ms": round(found["p(99)"], 2)}  # fmt: skip
    return {
        "rps": round(metrics["http_reqs"]["rate"], 1),
        "requests": reqs,
        "p50_ms": round(dur["med"], 2),
        "p99_ms": round(dur["p(99)"], 2),
        # k6 exports a rate's true values as "passes": here, the failed requests.
        "failed_requests": int(metrics["http_req_failed"]["passes"]),
        "unexpected_responses": int(metrics.get("unexpected_responses", {}).get("count", 0)),
        "submission_graded_409": int(metrics.get("submission_graded", {}).get("count", 0)),
        "server_cpu_ms_per_req": round(cpu * 1000 / max(reqs, 1), 4),
        "backing_cpu_ms_per_req": round(backing_used * 1000 / max(reqs, 1), 4),
        "loadgen_cpu_share": share,
        "per_type": per_type,
    }


def summarise(runs: list[dict[str, Any]], p99_target: float) -> dict[str, Any]:
    keys = ("rps", "p50_ms", "p99_ms", "server_cpu_ms_per_req", "backing_cpu_ms_per_req",
            "loadgen_cpu_share")  # fmt: skip
    summary: dict[str, Any] = {k + "_median": median([r[k] for r in runs]) for k in keys}
    summary["errors_total"] = sum(r["failed_requests"] + r["unexpected_responses"] for r in runs)
    summary["submission_graded_409_total"] = sum(r["submission_graded_409"] for r in runs)
    summary["per_type_median"] = {
        name: {
            stat: median([r["per_type"][name][stat] for r in runs if name in r["per_type"]])
            for stat in ("requests", "p50_ms", "p99_ms")
        }
        for name in TYPES
        if any(name in r["per_type"] for r in runs)
    }
    summary["target"] = {
        "p99_ms": p99_target,
        "errors": 0,
        "met": summary["p99_ms_median"] <= p99_target and summary["errors_total"] == 0,
    }
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--vus", type=int, default=50)
    ap.add_argument("--duration", default="30s")
    ap.add_argument("--think-ms", type=float, default=1000, help="mean pause between requests")
    ap.add_argument("--warmup", default="10s", help="an unreported run first (0s: none)")
    ap.add_argument("--p99-ms", type=float, default=100)
    ap.add_argument("--students", type=int, default=Sizes.students)
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="btec-mixed-"))
    port = free_port()
    runs: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, data, ignore_errors=True)  # last, once all stopped
        backing = stack.enter_context(embedded_holder(data))
        pid = stack.enter_context(btec_server(port, data, **SERVER_ENV))
        create_admin(data, ADMIN_EMAIL, PASSWORD, **CHEAP)
        document = seed(f"http://127.0.0.1:{port}", ADMIN_EMAIL, PASSWORD,
                        Sizes(students=args.students))  # fmt: skip
        seed_file = data / "assessment_seed.json"
        seed_file.write_text(json.dumps(document))
        print(json.dumps({"seeded": counts(document)}), flush=True)
        if args.warmup not in ("0", "0s"):  # statement caches, prepared plans, first pages
            warm = run_mix(
                port,
                pid,
                backing,
                seed_file,
                argparse.Namespace(**{**vars(args), "duration": args.warmup}),
            )
            print(json.dumps({"warmup": {k: warm[k] for k in ("rps", "p99_ms")}}), flush=True)
        for _ in range(args.rounds):
            run = run_mix(port, pid, backing, seed_file, args)
            runs.append(run)
            print(json.dumps(run), flush=True)
    print(json.dumps(summarise(runs, args.p99_ms), indent=2))


if __name__ == "__main__":
    main()
