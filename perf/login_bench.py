"""Sign-in under load: requests/s, latency and the server's peak memory at the configured
argon2id parameters.

`btecctl serve` on embedded PostgreSQL/Redis with the default argon2id parameters (time cost
3, 64 MiB, 4 lanes) and BTEC_PASSWORD_HASH_WORKERS=2, unless overridden in the environment;
k6 (pinned to CPU 1) runs VUS users, each with an account of its own, signing in with the
right password in a loop. The per-IP login policy is lifted for the run (every VU shares one
address); the per-account backoff never applies (every attempt succeeds). Peak RSS is sampled
every 100 ms during the run. Target (issue "Accounts"): RSS <= 300 MB under 50 VUs.
`python perf/login_bench.py [--vus 50] [--duration 20s] [--rounds 1]`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import psutil
from cache_bench import embedded_holder
from harness import HERE, btec_server, cpu_seconds, free_port, k6_binary, median
from me_bench import EMAIL, PASSWORD, make_admin

SETTINGS_FROM_ENV = ("BTEC_ARGON2_TIME_COST", "BTEC_ARGON2_MEMORY_KIB",
                     "BTEC_ARGON2_PARALLELISM", "BTEC_PASSWORD_HASH_WORKERS")  # fmt: skip


class PeakRss:
    """The highest resident set size of a process while the block runs, sampled."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.proc = psutil.Process(pid)
        self.every = every
        self.start_mb = self.proc.memory_info().rss / 2**20
        self.peak_mb = self.start_mb
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            with contextlib.suppress(psutil.Error):
                self.peak_mb = max(self.peak_mb, self.proc.memory_info().rss / 2**20)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def k6_login(port: int, pid: int, vus: int, duration: str) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        summary = out.name
    env = {**os.environ, "BASE_URL": f"http://127.0.0.1:{port}", "PASSWORD": PASSWORD,
           "VUS": str(vus), "DURATION": duration}  # fmt: skip
    cmd = ["taskset", "-c", "1", k6_binary(), "run", "--quiet", "--no-color",
           "--summary-export", summary, str(HERE / "login.js")]  # fmt: skip
    cpu_before = cpu_seconds(pid)
    with PeakRss(pid) as rss:
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)  # fmt: skip
    cpu = cpu_seconds(pid) - cpu_before
    metrics = json.loads(Path(summary).read_text())["metrics"]
    os.unlink(summary)
    reqs = int(metrics["http_reqs"]["count"])
    dur = metrics["http_req_duration"]
    return {
        "rps": round(metrics["http_reqs"]["rate"], 1),
        "requests": reqs,
        "p50_ms": round(dur["med"], 1),
        "p99_ms": round(dur["p(99)"], 1),
        "server_cpu_ms_per_req": round(cpu * 1000 / max(reqs, 1), 2),
        "failed_rate": metrics.get("http_req_failed", {}).get("value", 0.0),
        "rss_start_mb": round(rss.start_mb, 1),
        "rss_peak_mb": round(rss.peak_mb, 1),
    }


def make_accounts(data: Path, count: int) -> None:
    """perf1..perfN@example.org, all with the perf admin's password hash."""
    import psycopg

    from server.platform.embedded import EmbeddedPostgres

    with psycopg.connect(EmbeddedPostgres(data).url(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (email, full_name, role, password_hash, email_verified_at) "
            "SELECT 'perf' || i || '@example.org', 'Perf ' || i, 'student', password_hash, "
            "now() FROM users, generate_series(1, %s) AS i WHERE email = %s",
            (count, EMAIL),
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--vus", type=int, default=50)
    ap.add_argument("--duration", default="20s")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="btec-login-"))
    port = free_port()
    runs = []
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, data, ignore_errors=True)  # last, once all stopped
        stack.enter_context(embedded_holder(data))
        env = {"BTEC_MAIL_CATCHER_PORT": "0",
               "BTEC_RATELIMIT_POLICIES": "auth_login=1000000000/1:closed",
               **{k: os.environ[k] for k in SETTINGS_FROM_ENV if k in os.environ}}  # fmt: skip
        pid = stack.enter_context(btec_server(port, data, **env))
        make_admin(data)
        make_accounts(data, args.vus)
        for _ in range(args.rounds):
            run = k6_login(port, pid, args.vus, args.duration)
            runs.append(run)
            print(json.dumps(run), flush=True)
    summary = {key: median([r[key] for r in runs]) for key in runs[0] if key != "failed_rate"}
    summary["failed_rate_max"] = max(r["failed_rate"] for r in runs)
    summary["argon2"] = {k: os.environ.get(k, "default") for k in SETTINGS_FROM_ENV}
    summary["target"] = {"rss_peak_mb": 300}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
