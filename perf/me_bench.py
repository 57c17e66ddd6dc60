"""`GET /api/v1/users/me` against a bare aiohttp + asyncpg handler doing the same work.

Both decode the same HS256 JWT and read the same row by primary key; btec adds its request
middleware (request id, rate limit, errors, metrics, access log) and the account checks, with
the sign-in's revocation read in the same query as the row. Both run on one embedded
PostgreSQL/Redis data dir held by a separate process; k6 alternates. Target (issue
"Accounts"): btec >= 70% of the bare handler's requests/s.
`python perf/me_bench.py [--rounds 3] [--duration 10s]`
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
from dataclasses import asdict
from pathlib import Path

from cache_bench import embedded_holder
from harness import HERE, Run, btec_env, btec_server, free_port, k6_run, median

KEY = "perf-signing-key-" + "x" * 40
ISSUER = "btec"  # the tokens' `iss`: BTEC_PUBLIC_URL, unset here, else BTEC_SERVICE_ID
PASSWORD = "a long perf passphrase"  # noqa: S105 - a throwaway account in a scratch dir
EMAIL = "perf@example.org"
PATH = "/api/v1/users/me"


def make_admin(data: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "btecctl", "users", "create-admin", EMAIL, "--name", "Perf",
         "--password-stdin", "--json"],
        env=btec_env(data, BTEC_JWT_KEYS=f"k1={KEY}"), input=PASSWORD + "\n", text=True,
        check=True, capture_output=True,
    )  # fmt: skip


def token(port: int) -> str:
    body = json.dumps({"email": EMAIL, "password": PASSWORD}).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/auth/login", data=body,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        return str(json.loads(resp.read())["access_token"])


def wait_up(url: str, timeout: float = 30) -> None:
    """Until the server answers at all (a 401 will do)."""
    import time
    import urllib.error

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer within {timeout} s")


@contextlib.contextmanager
def bare(port: int, data: Path) -> Iterator[int]:
    from server.platform.embedded import EmbeddedPostgres

    url = EmbeddedPostgres(data).url()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "bare_me.py"), str(port), url, KEY, ISSUER],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_up(f"http://127.0.0.1:{port}{PATH}")
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--vus", type=int, default=32)
    ap.add_argument("--duration", default="10s")
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="btec-me-"))
    ours, theirs = free_port(), free_port()
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, data, ignore_errors=True)  # last, once all stopped
        stack.enter_context(embedded_holder(data))
        env = {"BTEC_JWT_KEYS": f"k1={KEY}", "BTEC_MAIL_CATCHER_PORT": "0",
               "BTEC_RATELIMIT_DEFAULT": "1000000000/1"}  # fmt: skip
        our_pid = stack.enter_context(btec_server(ours, data, **env))
        make_admin(data)
        bearer = token(ours)
        their_pid = stack.enter_context(bare(theirs, data))
        os.environ["AUTHORIZATION"] = f"Bearer {bearer}"
        for _ in range(args.rounds):
            for label, port, pid in (("btec", ours, our_pid), ("bare", theirs, their_pid)):
                run = k6_run(label, f"http://127.0.0.1:{port}", PATH, pid, args.vus, args.duration)
                runs.append(run)
                print(json.dumps(asdict(run)), flush=True)
    summary: dict[str, object] = {}
    for label in ("btec", "bare"):
        mine = [r for r in runs if r.label == label]
        summary[label] = {
            "rps_median": median([r.rps for r in mine]),
            "p50_ms_median": median([r.p50_ms for r in mine]),
            "p99_ms_median": median([r.p99_ms for r in mine]),
            "server_cpu_ms_per_req_median": median([r.server_cpu_ms_per_req for r in mine]),
            "failed_rate_max": max(r.failed_rate for r in mine),
        }
    b, t = summary["btec"], summary["bare"]
    assert isinstance(b, dict)
    assert isinstance(t, dict)
    summary["rps_ratio"] = round(b["rps_median"] / t["rps_median"], 3)
    summary["target"] = {"rps_ratio": 0.7}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
