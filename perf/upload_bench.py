"""Uploads: a 100 MB file streamed to local storage, and a 10 MB clamd INSTREAM scan.

Targets (issue "File uploads"): >= 100 MB/s for a 100 MB upload on loopback with server RSS
growth <= 30 MB during it; a 10 MB scan in <= 0.5 s with the test signature database.
`python perf/upload_bench.py [--rounds 3] [--mb 100] [--scan-mb 10]`

The upload runs against `btecctl serve` on embedded servers (a fresh data dir), signed in
as an admin made with `btecctl users create-admin`. The client streams the body from one
in-memory block (pinned to CPU 1, like the load generators here); the server's RSS is
sampled every 5 ms. The scan runs btec's own INSTREAM client against a real clamd started
with the one-signature test database (tests/support/clamd.py), over its unix socket and over TCP.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import psutil
from harness import btec_env, btec_server, free_port, median

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support.clamd and server, from a checkout

from server.platform.clamd import Clamd  # noqa: E402
from tests.support.clamd import clamd_server  # noqa: E402

EMAIL, PASSWORD = "bench@example.org", "correct horse battery staple"
CHEAP = {"BTEC_ARGON2_TIME_COST": "1", "BTEC_ARGON2_MEMORY_KIB": "8192",
         "BTEC_ARGON2_PARALLELISM": "1"}  # fmt: skip
BOUNDARY = "btec-bench-boundary"


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)


async def body(size: int) -> AsyncIterator[bytes]:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="evidence.pdf"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.7\n'
    ).encode()
    yield head
    block = os.urandom(1024 * 1024)
    left = size
    while left > 0:
        yield block[: min(left, len(block))]
        left -= len(block)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def upload_once(base: str, token: str, size: int, pid: int) -> dict[str, float]:
    proc = psutil.Process(pid)
    before = proc.memory_info().rss
    cpu_before = sum(proc.cpu_times()[:2])
    sampler = RssSampler(pid)
    sampler.start()
    started = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {token}",
                   "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}  # fmt: skip
        async with http.post(f"{base}/api/v1/files", data=body(size), headers=headers) as resp:
            answer = await resp.json()
            assert resp.status == 201, answer
    seconds = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    async with aiohttp.ClientSession() as http:
        gone = await http.delete(f"{base}/api/v1/files/{answer['id']}",
                                 headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert gone.status == 204
    return {
        "seconds": round(seconds, 3),
        "mb_per_s": round(size / 1e6 / seconds, 1),
        "rss_growth_mb": round((sampler.peak - before) / 1e6, 1),
        "server_cpu_s": round(sum(proc.cpu_times()[:2]) - cpu_before, 3),
    }


def sign_in(data: Path, base: str) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "btecctl", "users", "create-admin", EMAIL, "--name", "Bench",
         "--password-stdin", "--json"],
        input=PASSWORD + "\n", env=btec_env(data, **CHEAP), capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    if made.returncode != 0:
        raise SystemExit(f"create-admin failed: {made.stdout}{made.stderr}")

    async def login() -> str:
        async with aiohttp.ClientSession() as http:
            resp = await http.post(f"{base}/api/v1/auth/login",
                                   json={"email": EMAIL, "password": PASSWORD})  # fmt: skip
            return str((await resp.json())["access_token"])

    return asyncio.run(login())


def bench_upload(rounds: int, size: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="btec-upload-", ignore_cleanup_errors=True) as tmp:
        return _bench_upload(Path(tmp), rounds, size)  # the data dir and its uploads go after


def _bench_upload(data: Path, rounds: int, size: int) -> dict[str, object]:
    port = free_port()
    env = {**CHEAP, "BTEC_UPLOAD_MAX_BYTES": str(size + 1024 * 1024),
           "BTEC_UPLOAD_QUOTA_BYTES": str(10 * size), "BTEC_MAIL_CATCHER_PORT": "0"}  # fmt: skip
    with btec_server(port, data, **env) as pid:
        base = f"http://127.0.0.1:{port}"
        token = sign_in(data, base)
        os.sched_setaffinity(0, {1})  # the client on CPU 1, the server unpinned
        runs = []
        for _ in range(rounds):
            run = asyncio.run(upload_once(base, token, size, pid))
            print(json.dumps({"upload": run}), flush=True)
            runs.append(run)
    return {
        "size_mb": round(size / 1e6, 1),
        "mb_per_s_median": median([r["mb_per_s"] for r in runs]),
        "rss_growth_mb_max": max(r["rss_growth_mb"] for r in runs),
        "server_cpu_ms_per_mb": round(
            median([r["server_cpu_s"] for r in runs]) * 1000 / (size / 1e6), 2
        ),
        "targets": {"mb_per_s": 100, "rss_growth_mb": 30},
    }


def bench_scan(rounds: int, size: int) -> dict[str, object]:
    results: dict[str, object] = {"size_mb": round(size / 1e6, 1), "target_s": 0.5}
    if shutil.which("clamd", path=os.environ.get("PATH", "") + os.pathsep + "/usr/sbin") is None:
        why = "clamd is not installed (apt-get install clamav-daemon): the scan is not measured"
        print(json.dumps({"scan": "skipped", "why": why}), flush=True)
        return {**results, "skipped": why}
    with tempfile.NamedTemporaryFile(suffix=".bin") as f, clamd_server(stream_max="200M") as cd:
        f.write(os.urandom(size))
        f.flush()
        for name, url in (("unix", cd.unix_url), ("tcp", cd.tcp_url)):
            client = Clamd(url, timeout=30)
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                verdict = asyncio.run(client.scan_file(Path(f.name)))
                times.append(round(time.perf_counter() - started, 3))
                assert verdict.status == "clean", verdict
            print(json.dumps({"scan": name, "seconds": times}), flush=True)
            results[f"{name}_seconds_median"] = median(times)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--scan-mb", type=int, default=10)
    args = ap.parse_args()
    summary = {
        "scan": bench_scan(args.rounds, args.scan_mb * 1000 * 1000),
        "upload": bench_upload(args.rounds, args.mb * 1000 * 1000),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
