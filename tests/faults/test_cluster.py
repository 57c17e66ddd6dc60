"""btec as a cluster on loopback, from the shipped configurations: HAProxy in front of two
`btecctl serve --no-worker`, two `btecctl worker`, PgBouncer in front of one PostgreSQL, one
Redis and the S3 test server for uploads. Under a steady load of reads and uploads through
HAProxy:
- a rolling restart (SIGTERM one API process, wait until HAProxy has it back, then the other)
  fails no request, and every upload it acknowledged is in S3;
- a job queued by one process runs exactly once, on one of the workers;
- SIGKILL of the worker running a job loses nothing: once its timeout has passed the job is
  run again by the other worker, and completes once;
- a rate limit holds exactly across both API processes;
- the cache a process fills is invalidated by a write on the other;
- `btecctl health` and `/metrics` report each member.
The counts and the seconds it took, from the cluster's start, are printed as one JSON line, and
written to `$BTEC_TEST_REPORT_DIR/cluster.json` when that is set (.ci/run prints it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from server.platform.embedded import EmbeddedRedis
from server.schema.migrate_test import scratch_database
from tests.support import s3
from tests.support.cluster import (
    Worker,
    btecctl,
    haproxy_config,
    haproxy_states,
    member_env,
    pgbouncer_config,
    pooled_url,
    start_pgbouncer,
)
from tests.support.env import free_port, required_tool
from tests.support.http import call
from tests.support.load import SteadyLoad
from tests.support.metrics import metric
from tests.support.processes import Served
from tests.support.uploads import MULTIPART, multipart, part
from tests.support.wait import eventually_sync

pytestmark = pytest.mark.slow  # among the longest: started first (tests/conftest.py)

REQUIRE = "BTEC_TEST_REQUIRE_PROXIES"
METRICS_TOKEN = "a-metrics-token-for-the-cluster-test-0123456789"
LOGIN_LIMIT = 20
PINGS = 8


@dataclass
class Cluster:
    root: Path
    environ: dict[str, str]
    lb_port: int
    api_ports: list[int]
    api: list[Served] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)  # the cluster's start, for its time

    @property
    def lb(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    def start_api(self, port: int) -> Served:
        env = {k: v for k, v in self.environ.items() if k.startswith("BTEC_")}
        served = Served(self.root / "var", port, "--no-worker", "--no-migrate", **env)
        served.wait_ready()
        return served

    def wait_in_rotation(self, name: str, state: str = "UP") -> None:
        eventually_sync(lambda: haproxy_states(self.root).get(name), lambda s: s == state,
                        timeout=30, message=f"HAProxy has {name} {state}")  # fmt: skip

    def scrape(self, url: str) -> str:
        status, body = call(url, token=METRICS_TOKEN)
        assert status == 200, body
        return body.decode() if isinstance(body, bytes) else str(body)


@pytest.fixture
def cluster(
    tmp_path: Path, pg_server_url: str, s3_url: str, own_redis: EmbeddedRedis
) -> Iterator[Cluster]:
    haproxy = required_tool("haproxy", "haproxy", REQUIRE)
    pgbouncer = required_tool("pgbouncer", "pgbouncer", REQUIRE)
    with scratch_database(pg_server_url, prefix="btec_cluster") as direct:
        redis_url = own_redis.url()  # keeps an append-only file, as the queue needs
        bouncer_port = free_port()
        bouncer = start_pgbouncer(pgbouncer, pgbouncer_config(tmp_path, direct, bouncer_port),
                                  bouncer_port)  # fmt: skip
        bucket = s3.new_bucket(s3_url)
        environ = member_env(
            tmp_path / "var",
            BTEC_DATABASE_URL=pooled_url(direct, bouncer_port),
            BTEC_DB_STATEMENT_CACHE_SIZE="0",
            BTEC_REDIS_URL=redis_url,
            BTEC_SECRET_KEY="a-cluster-wide-signing-secret-of-more-than-32-chars",
            BTEC_METRICS_TOKEN=METRICS_TOKEN,
            BTEC_TRUSTED_PROXIES="127.0.0.1/32",
            BTEC_MAIL_CATCHER_PORT="0",
            BTEC_DRAIN_SECONDS="1.5",  # five of the test's HAProxy checks (300 ms apart)
            BTEC_RATELIMIT_DEFAULT="1000000/1",
            BTEC_RATELIMIT_POLICIES=f"auth_login={LOGIN_LIMIT}/600:closed,files_upload=100000/60",
            BTEC_JOB_SWEEP_SECONDS="1",
            BTEC_STORAGE_BACKEND="s3",
            BTEC_S3_BUCKET=bucket,
            BTEC_S3_ENDPOINT_URL=s3_url,
            BTEC_S3_ACCESS_KEY_ID=s3.KEY_ID,
            BTEC_S3_SECRET_ACCESS_KEY=s3.SECRET,
        )  # fmt: skip
        # Migrations go to PostgreSQL directly, as the PgBouncer file says.
        btecctl({**environ, "BTEC_DATABASE_URL": direct}, "db", "migrate")
        lb_port = free_port()
        state = Cluster(tmp_path, environ, lb_port, [free_port(), free_port()])
        proxy = None
        try:
            state.workers = [Worker(environ), Worker(environ)]
            state.api = [state.start_api(port) for port in state.api_ports]
            config = haproxy_config(tmp_path, lb_port, state.api_ports, fast=True)
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            proxy = subprocess.Popen([haproxy, "-db", "-f", str(config)], **quiet)
            for name in ("api1", "api2"):
                state.wait_in_rotation(name)
            yield state
        finally:
            for member in [*state.api, *state.workers]:
                member.stop()
            for proc in (proxy, bouncer):
                if proc is not None:
                    proc.terminate()
                    proc.wait(30)


def _upload_body(n: int) -> bytes:
    return multipart(part(f"notes-{n}.txt", f"upload {n} during the cluster test\n".encode()))


def test_the_cluster_serves_through_a_rolling_restart_and_a_worker_killed_mid_job(
    cluster: Cluster,
) -> None:
    token = cluster.api[0].admin_token()
    bearer = {"Authorization": f"Bearer {token}"}
    reads = SteadyLoad(cluster.lb_port, "/api/v1/units", headers=bearer, threads=3)
    uploads = SteadyLoad(cluster.lb_port, "/api/v1/files", method="POST", threads=1,
                         headers={**bearer, "Content-Type": MULTIPART}, body=_upload_body(0),
                         pause=0.05)  # fmt: skip

    # A rolling restart under the load: one API process at a time, back in rotation first.
    with reads, uploads:
        eventually_sync(lambda: len(reads.answers), lambda n: n >= 50, timeout=30,
                        message="the load is under way")  # fmt: skip
        for index, name in enumerate(("api1", "api2")):
            assert cluster.api[index].stop() == 0
            cluster.wait_in_rotation(name, "DOWN")
            cluster.api[index] = cluster.start_api(cluster.api_ports[index])
            cluster.wait_in_rotation(name)
    answered = Counter(a.status for a in reads.answers + uploads.answers)
    assert set(answered) == {200, 201}, answered
    stored = s3.keys(cluster.environ["BTEC_S3_ENDPOINT_URL"], cluster.environ["BTEC_S3_BUCKET"])
    assert len(stored) >= answered[201]

    # Each member served part of it, and reports itself.
    per_member = []
    for served in cluster.api:
        text = cluster.scrape(served.url + "/metrics")
        per_member.append(metric(text, "btec_http_requests_total", route="/api/v1/units"))
        health = btecctl(cluster.environ, "health", "--url", served.url)
        assert health["status"] in ("pass", "warn"), health
        assert health["checks"]["worker:heartbeat"][0]["status"] == "pass"
    assert all(n > 0 for n in per_member), per_member

    # Jobs queued by one process run once each, across both workers.
    before = sum(_pings_done(cluster, w) for w in cluster.workers)
    pings = [_ping(cluster.environ) for _ in range(PINGS)]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in pings]
    assert [r["status"] for r in results] == ["complete"] * PINGS
    assert [r["attempts"] for r in results] == [1] * PINGS
    ran = sum(_pings_done(cluster, w) for w in cluster.workers) - before
    assert ran == PINGS  # no job ran twice

    # The worker running a job is killed: the other runs it once its timeout has passed.
    long_ping = _ping(cluster.environ, "--seconds", "2", "--job-timeout", "4")
    victim = eventually_sync(lambda: _running_ping(cluster), lambda w: w is not None,
                             timeout=30, message="a worker runs the ping")  # fmt: skip
    assert victim is not None
    survivor = next(w for w in cluster.workers if w is not victim)
    before = _pings_done(cluster, survivor)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(30)
    rerun = json.loads(long_ping.communicate(timeout=120)[0])
    assert (rerun["status"], rerun["attempts"]) == ("complete", 2), rerun
    pids = {w["id"]: w["pid"] for w in btecctl(cluster.environ, "jobs")["workers"]}
    assert pids[rerun["worker"]] == survivor.proc.pid
    assert _pings_done(cluster, survivor) - before == 1

    # The login limit holds across both processes: exactly LOGIN_LIMIT answered, the rest 429.
    statuses = _logins_through(cluster, 2 * LOGIN_LIMIT)
    assert Counter(statuses) == {401: LOGIN_LIMIT, 429: LOGIN_LIMIT}
    allowed = [metric(cluster.scrape(s.url + "/metrics"), "btec_ratelimit_decisions_total",
                      policy="auth_login", result="allowed") for s in cluster.api]  # fmt: skip
    assert sum(allowed) >= LOGIN_LIMIT  # the admin's own sign-in was before the restart

    # A write on one process invalidates what the other has cached.
    first, second = cluster.api
    assert call(second.url + "/api/v1/units", token=token)[0] == 200  # cached there
    made = _make_unit(cluster, first.url, token)
    listed = call(second.url + "/api/v1/units", token=token)[1]
    assert made in [u["code"] for u in listed["items"]]

    counts = json.dumps({
        "requests": len(reads.answers) + len(uploads.answers), "failed": sum(
            n for s, n in answered.items() if s not in (200, 201)),
        "uploads_stored": answered[201], "per_member_reads": per_member,
        "jobs_queued": PINGS + 1, "jobs_run": ran + 1, "duplicates": ran - PINGS,
        "login_answers": dict(Counter(statuses)), "login_allowed_per_member": allowed,
        "seconds": round(time.monotonic() - cluster.started, 1),
    })  # fmt: skip
    print(counts)
    report_dir = os.environ.get("BTEC_TEST_REPORT_DIR")
    if report_dir:  # CI prints it after the fault suite
        (Path(report_dir) / "cluster.json").write_text(counts + "\n")


def _ping(environ: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "btecctl", "jobs", "ping", "--timeout", "60", "--json", *args],
        env=environ, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def _running_ping(cluster: Cluster) -> Worker | None:
    """The worker whose /metrics shows a ping running."""
    for worker in cluster.workers:
        if metric(cluster.scrape(worker.metrics_url), "btec_jobs_running", task="ping"):
            return worker
    return None


def _pings_done(cluster: Cluster, worker: Worker) -> float:
    text = cluster.scrape(worker.metrics_url)
    return metric(text, "btec_jobs_finished_total", task="ping", status="complete")


def _logins_through(cluster: Cluster, count: int) -> list[int]:
    """`count` wrong sign-ins through HAProxy at once, from one client address (HAProxy adds
    itself to X-Forwarded-For; btec, trusting it, reads the client's)."""
    statuses: list[int] = []
    client = {"X-Forwarded-For": "203.0.113.7"}

    def one(n: int) -> None:
        # Each for another address: the per-address throttle is not what is counted here.
        wrong = {"email": f"nobody{n}@example.org", "password": "not the password"}
        url = cluster.lb + "/api/v1/auth/login"
        statuses.append(call(url, method="POST", body=wrong, headers=client)[0])

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return statuses


def _make_unit(cluster: Cluster, url: str, token: str) -> str:
    code = "T/615/9001"
    status, body = call(url + "/api/v1/units", token=token, method="POST",
                        body={"code": code, "title": "Cluster test unit", "level": 3,
                              "credits": 10})  # fmt: skip
    assert status == 201, body
    return code
