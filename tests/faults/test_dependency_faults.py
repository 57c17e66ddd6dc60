"""A real `btecctl serve` on its embedded servers under a steady load (four clients asking for
`GET /api/v1/users/me`, which reads PostgreSQL and is rate limited through Redis), while a
dependency is stalled (SIGSTOP of the server and its processes) or killed. Each case counts
the answers: no 500, no request left hanging past its bound, every refusal a 503 with its
problem code and Retry-After, and full service again afterwards."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from tests.support.env import free_port
from tests.support.load import Answer, SteadyLoad
from tests.support.processes import Served, embedded_processes
from tests.support.wait import eventually_sync

STALL_SECONDS = 4.0
ACQUIRE_SECONDS = 1.0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(
        tmp_path / "var", free_port(), BTEC_MAIL_CATCHER_PORT="0",
        BTEC_DB_POOL_ACQUIRE_TIMEOUT=str(ACQUIRE_SECONDS),
        BTEC_RATELIMIT_DEFAULT="1000000/1",  # the limiter runs; the load never meets it
    )  # fmt: skip
    server.wait_ready()
    try:
        yield server
    finally:
        server.stop()


def _server(served: Served, name: str) -> psutil.Process:
    binary = "postgres" if name == "postgres" else "redis-server"
    return next(p for p in embedded_processes(served.data_dir) if binary in p.name())


@contextmanager
def _stalled(leader: psutil.Process) -> Iterator[None]:
    """SIGSTOP to the server and every process it started, SIGCONT after the block."""
    group = [leader, *leader.children(recursive=True)]
    for proc in group:
        proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for proc in group:
            proc.send_signal(signal.SIGCONT)


def _load(served: Served) -> SteadyLoad:
    return SteadyLoad(served.port, "/api/v1/users/me",
                      {"Authorization": f"Bearer {served.admin_token()}"})  # fmt: skip


def _judge(answers: list[Answer], allowed: set[str], bound: float) -> dict[str, int]:
    """Counts by outcome; fails on a 500, a hang past `bound` s, or a refusal not allowed."""
    counts: dict[str, int] = {}
    for a in answers:
        key = str(a.status) if a.code is None else f"{a.status} {a.code}"
        counts[key] = counts.get(key, 0) + 1
        assert a.status != 0, f"no answer after {a.seconds:.1f} s"
        assert a.status < 500 or a.status == 503, counts
        assert a.seconds <= bound, f"{key} took {a.seconds:.1f} s"
        if a.status == 503:
            assert a.code in allowed, counts
            assert a.retry_after is not None
    print("answers:", counts)
    return counts


def _recovered(load: SteadyLoad, timeout: float = 60) -> None:
    """Until ten answers in a row are 200."""
    eventually_sync(lambda: [a.status for a in load.answers[-10:]],
                    lambda last: len(last) == 10 and set(last) == {200}, timeout=timeout,
                    interval=0.2, message="full service again")  # fmt: skip


def test_postgres_stalled(served: Served) -> None:
    with _load(served) as load:
        eventually_sync(lambda: len(load.answers), lambda n: n >= 20, timeout=30)
        with _stalled(_server(served, "postgres")):
            time.sleep(STALL_SECONDS)
        _recovered(load)
    counts = _judge(load.answers, {"db_pool_timeout", "db_unavailable"},
                    bound=STALL_SECONDS + ACQUIRE_SECONDS + 5)  # fmt: skip
    assert counts.get("200", 0) >= 20


def test_a_postgres_backend_killed(served: Served) -> None:
    """SIGKILL of one backend: PostgreSQL ends every backend and recovers (its crash
    handling); the requests that were using one get 503, and service comes back."""
    with _load(served) as load:
        eventually_sync(lambda: len(load.answers), lambda n: n >= 20, timeout=30)
        postmaster = _server(served, "postgres")
        backend = next(p for p in postmaster.children() if "btec" in " ".join(p.cmdline()))
        backend.send_signal(signal.SIGKILL)
        _recovered(load)
    _judge(load.answers, {"db_pool_timeout", "db_unavailable"}, bound=30)


def test_redis_stalled_costs_no_request(served: Served) -> None:
    with _load(served) as load:
        eventually_sync(lambda: len(load.answers), lambda n: n >= 20, timeout=30)
        stalled_at = time.monotonic()
        with _stalled(_server(served, "redis")):
            time.sleep(STALL_SECONDS)
        _recovered(load)
    counts = _judge(load.answers, set(), bound=STALL_SECONDS + 5)
    assert set(counts) == {"200"}, counts
    assert load.since(stalled_at + 0.5)  # requests went on meanwhile


def test_redis_killed_costs_no_request_and_comes_back(served: Served) -> None:
    with _load(served) as load:
        eventually_sync(lambda: len(load.answers), lambda n: n >= 20, timeout=30)
        redis = _server(served, "redis")
        redis.send_signal(signal.SIGKILL)
        eventually_sync(lambda: [p.pid for p in embedded_processes(served.data_dir)
                                 if "redis" in p.name()],
                        lambda pids: pids and redis.pid not in pids, timeout=60,
                        message="serve starts Redis again")  # fmt: skip
        _recovered(load)
    counts = _judge(load.answers, set(), bound=10)
    assert set(counts) == {"200"}, counts


def test_no_stray_process_after_the_faults(served: Served) -> None:
    """serve stops its embedded servers, however they were treated."""
    redis = _server(served, "redis")
    os.kill(redis.pid, signal.SIGKILL)
    eventually_sync(lambda: len(embedded_processes(served.data_dir)), lambda n: n == 2,
                    timeout=60)  # fmt: skip
    assert served.stop() == 0
    assert embedded_processes(served.data_dir) == []
