"""`btecctl serve --processes N`, through the real CLI: N API processes share one port and
each takes part of the traffic; each serves its own /metrics, listed for Prometheus, and the
shared port's /metrics says where they are; the parent restarts a process that dies, drains
them all on SIGTERM, and leaves none behind when it is killed itself; a rate limit holds
exactly across them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from server.platform.embedded import EmbeddedRedis
from tests.support.env import free_port
from tests.support.http import call
from tests.support.metrics import metric
from tests.support.processes import Served
from tests.support.wait import eventually_sync

pytestmark = pytest.mark.slow  # among the longest: started first (tests/conftest.py)

METRICS_TOKEN = "a-metrics-token-for-the-processes-test-0123456789"
LOGIN_LIMIT = 12


@pytest.fixture
def two(tmp_path: Path, database_url: str, own_redis: EmbeddedRedis) -> Iterator[Served]:
    """`serve --processes 2` on the suite's database and a Redis of its own (the rate limit's
    state is then this test's alone)."""
    served = Served(
        tmp_path / "var", free_port(), "--processes", "2", "--no-migrate",
        BTEC_DATABASE_URL=database_url, BTEC_REDIS_URL=own_redis.url(),
        BTEC_MAIL_CATCHER_PORT="0",
        BTEC_METRICS_TOKEN=METRICS_TOKEN,
        BTEC_RATELIMIT_POLICIES=f"auth_login={LOGIN_LIMIT}/600:closed",
    )  # fmt: skip
    try:
        yield served
    finally:
        if served.proc.poll() is None:
            served.stop()


def _members(served: Served) -> list[psutil.Process]:
    return psutil.Process(served.proc.pid).children()


def _requests(url: str) -> float:
    status, body = call(url, token=METRICS_TOKEN)
    assert status == 200, body
    return metric(body.decode(), "btec_http_requests_total", route="/api/v1/health/live")


def test_processes_share_the_port_each_with_its_own_metrics(two: Served) -> None:
    ready = two.wait_ready()
    assert len(ready["metrics"]) == 2
    targets = json.loads((two.data_dir / "prometheus" / "btec-api.json").read_text())
    assert [t["labels"]["process"] for t in targets] == ["0", "1"]
    assert [f"http://{t['targets'][0]}/metrics" for t in targets] == ready["metrics"]
    assert len(_members(two)) == 2

    # A new connection for each request: the kernel spreads them over both listeners.
    statuses = Counter(call(two.url + "/api/v1/health/live")[0] for _ in range(200))
    assert statuses == {200: 200}
    served = [_requests(url) for url in ready["metrics"]]
    assert sum(served) == 200
    assert min(served) > 0, served

    status, problem = call(two.url + "/metrics", token=METRICS_TOKEN)
    assert (status, problem["code"]) == (404, "not_found")
    assert "prometheus/btec-api.json" in problem["detail"]

    assert two.stop() == 0
    assert [e for e in two.lines if e.get("event") == "stopped"][-1]["processes"] == 2


def test_a_rate_limit_holds_exactly_across_the_processes(two: Served) -> None:
    two.wait_ready()
    statuses: list[int] = []

    def login(n: int) -> None:
        wrong = {"email": f"nobody{n}@example.org", "password": "not the password"}
        statuses.append(call(two.url + "/api/v1/auth/login", method="POST", body=wrong)[0])

    threads = [threading.Thread(target=login, args=(n,)) for n in range(3 * LOGIN_LIMIT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert Counter(statuses) == {401: LOGIN_LIMIT, 429: 2 * LOGIN_LIMIT}


def test_a_process_that_dies_is_started_again(two: Served) -> None:
    two.wait_ready()
    victim = _members(two)[1]
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    eventually_sync(lambda: [p.pid for p in _members(two)],
                    lambda pids: len(pids) == 2 and victim.pid not in pids,
                    timeout=30, message="a new process took its place")  # fmt: skip
    eventually_sync(lambda: [e for e in two.lines if e.get("event") == "process_ready"],
                    lambda found: len(found) == 1, timeout=60)  # fmt: skip
    exited = [e for e in two.lines if e.get("event") == "process_exited"]
    assert [(e["process"], e["code"]) for e in exited] == [(1, -signal.SIGKILL)]
    assert Counter(call(two.url + "/api/v1/health/live")[0] for _ in range(20)) == {200: 20}


def test_no_process_outlives_a_killed_parent(two: Served) -> None:
    two.wait_ready()
    members = _members(two)
    two.proc.send_signal(signal.SIGKILL)
    two.proc.wait(30)
    gone, alive = psutil.wait_procs(members, timeout=60)
    assert alive == []
    assert len(gone) == 2


@pytest.mark.parametrize("count", ["0", "65", "two"])
def test_a_bad_number_of_processes_is_refused(count: str) -> None:
    done = subprocess.run([sys.executable, "-m", "btecctl", "serve", "--processes", count],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--processes" in done.stderr
