"""Jobs: enqueued over HTTP, retried with growing delays, timed out, drained on SIGTERM, and
monitored through `btecctl jobs` and /metrics; mail goes through a real SMTP server."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr

from server.app import create_app
from server.config.settings import Settings
from server.jobs.queue import Jobs, create_queue
from server.worker import handlers as catalogue
from tests.helpers import cli_env
from tests.smtp import parts, refusing_server, smtp_server

PROBLEM = "application/problem+json"


async def wait_job(
    client: Any, job_id: str, until: set[str], timeout: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        resp = await client.get(f"/api/v1/ops/jobs/{job_id}")
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        if body["status"] in until or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.1)


async def served(aiohttp_client: Callable[..., Any], settings: Settings) -> Any:
    return await aiohttp_client(create_app(settings, worker=True))


async def test_http_enqueued_mail_is_delivered_with_both_parts(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    async with smtp_server() as inbox:
        client = await served(aiohttp_client, make_settings(smtp_url=SecretStr(inbox.url)))
        resp = await client.post(
            "/api/v1/ops/mail/test",
            json={"to": "zoe@bücher.example", "note": "<script>alert(1)</script> & Ünïcødé"},
            headers={"X-Request-ID": "req-mail-1"},
        )
        assert resp.status == 202
        queued = await resp.json()
        job = await wait_job(client, queued["job_id"], {"complete", "failed"})
        assert job["status"] == "complete", job
        assert job["result"]["to"] == "zoe@xn--bcher-kva.example"
        [message] = await inbox.wait_for(1)
    assert message["Subject"] == "btec mail test from btec"
    assert message["To"] == "zoe@xn--bcher-kva.example"
    assert "no-reply@btec.localhost" in message["From"]
    assert message["X-Request-ID"] == "req-mail-1"
    assert message["Message-ID"] == job["result"]["message_id"]
    assert message["Auto-Submitted"] == "auto-generated"
    body = parts(message)
    assert "<script>alert(1)</script> & Ünïcødé" in body["text"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Ünïcødé" in body["html"]
    assert "<script>" not in body["html"]


async def test_idempotency_key_sends_one_message(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    async with smtp_server() as inbox:
        client = await served(aiohttp_client, make_settings(smtp_url=SecretStr(inbox.url)))
        first = await client.post(
            "/api/v1/ops/mail/test", json={"to": "a@example.org"},
            headers={"Idempotency-Key": "term-1-reminder"},
        )  # fmt: skip
        job_id = (await first.json())["job_id"]
        assert (await wait_job(client, job_id, {"complete"}))["status"] == "complete"
        again = await asyncio.gather(*(
            client.post("/api/v1/ops/mail/test", json={"to": "a@example.org"},
                        headers={"Idempotency-Key": "term-1-reminder"})
            for _ in range(5)
        ))  # fmt: skip
        assert {r.status for r in again} == {202}
        assert {(await r.json())["job_id"] for r in again} == {job_id}
        await asyncio.sleep(1.5)
        assert len(inbox.messages) == 1


async def test_failing_mail_retries_with_growing_delays_then_fails(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
) -> None:
    async with refusing_server() as smtp:
        settings = make_settings(smtp_url=SecretStr(smtp.url), mail_retries=4, mail_retry_delay=1.0)
        client = await served(aiohttp_client, settings)
        resp = await client.post("/api/v1/ops/mail/test", json={"to": "b@example.org"})
        job = await wait_job(client, (await resp.json())["job_id"], {"failed"}, timeout=40)
        attempts = list(smtp.times)
    assert job["status"] == "failed"
    assert job["attempts"] == 4
    assert "421" in job["error"]
    assert "Traceback" not in job["error"]
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert len(gaps) == 3, attempts
    # Equal jitter: the n-th retry waits between half and all of 1 s * 2^(n-1), plus up to
    # one second for the scheduler's poll.
    for n, gap in enumerate(gaps):
        cap = 1.0 * 2**n
        assert cap / 2 - 0.05 <= gap <= cap + 1.3, (n, gaps)
    result = await acli("jobs", "--json", env=cli_env(settings))
    assert result.exit_code == 0, result.output
    overview = json.loads(result.stdout)
    alias = await acli("tasks", "--json", env=cli_env(settings))  # the name users type still
    assert json.loads(alias.stdout)["failures"] == overview["failures"]
    assert overview["queues"][0]["failed"] == 1
    [failure] = overview["failures"]
    assert failure["id"] == job["id"]
    assert "421" in failure["error"]
    metrics = await (await client.get("/metrics")).text()
    assert 'btec_jobs_failed_total{task="send_email"} 1.0' in metrics
    health = await (await client.get("/api/v1/health?fresh=true")).json(
        content_type="application/health+json"
    )
    assert health["checks"]["smtp:responseTime"][0]["status"] == "warn"


async def test_job_over_its_timeout_is_stopped_and_recorded(
    make_settings: Callable[..., Settings], acli: Callable[..., Any], aiohttp_client: Any
) -> None:
    settings = make_settings()
    await served(aiohttp_client, settings)
    started = time.monotonic()
    result = await acli("jobs", "ping", "--seconds", "30", "--job-timeout", "1", "--json",
                        env=cli_env(settings))  # fmt: skip
    assert time.monotonic() - started < 10
    assert result.exit_code == 1
    job = json.loads(result.stdout)
    assert job["status"] == "failed"
    assert "TimeoutError" in job["error"]


async def test_ping_round_trip(
    make_settings: Callable[..., Settings], acli: Callable[..., Any], aiohttp_client: Any
) -> None:
    settings = make_settings()
    await served(aiohttp_client, settings)
    result = await acli("jobs", "ping", "--json", env=cli_env(settings))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "complete"


async def test_ping_without_a_worker_fails_clearly(
    make_settings: Callable[..., Settings], acli: Callable[..., Any]
) -> None:
    settings = make_settings()
    result = await acli("jobs", "ping", "--timeout", "1", env=cli_env(settings))
    assert result.exit_code == 1
    assert "worker running?" in result.output


async def test_retry_and_abort_from_the_cli(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
) -> None:
    async with refusing_server() as down, smtp_server() as up:
        failing = make_settings(smtp_url=SecretStr(down.url), mail_retries=1)
        client = await served(aiohttp_client, failing)
        resp = await client.post("/api/v1/ops/mail/test", json={"to": "c@example.org"})
        job_id = (await resp.json())["job_id"]
        assert (await wait_job(client, job_id, {"failed"}))["status"] == "failed"
        await client.close()
        # The relay is fixed: a worker that reaches it takes the retried job.
        working = failing.model_copy(update={"smtp_url": SecretStr(up.url)})
        client = await served(aiohttp_client, working)
        retried = await acli("jobs", "retry", job_id, "--json", env=cli_env(working))
        assert retried.exit_code == 0, retried.output
        assert (await wait_job(client, job_id, {"complete"}))["status"] == "complete"
        assert len(await up.wait_for(1)) == 1
        again = await acli("jobs", "retry", job_id, "--json", env=cli_env(working))
        assert again.exit_code == 2  # it is complete, not failed
        missing = await acli("jobs", "abort", "no-such-job", "--json", env=cli_env(working))
        assert missing.exit_code == 1


async def test_abort_a_scheduled_job(
    make_settings: Callable[..., Settings], acli: Callable[..., Any], redis_url: str
) -> None:
    settings = make_settings()
    queue = create_queue(redis_url)
    tasks = Jobs(queue, catalogue.specs(settings), None)
    job = await tasks.enqueue("ping", seconds=0)
    assert job is not None
    result = await acli("jobs", "abort", job.key, "--json", env=cli_env(settings))
    assert result.exit_code == 0, result.output
    stored = await queue.job(job.key)
    assert stored is not None
    assert stored.status.value == "aborted"
    await queue.disconnect()


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ({}, {}, 422, "validation_failed"),
        ({"to": 5}, {}, 422, "validation_failed"),
        ({"to": "not-an-address"}, {}, 422, "validation_failed"),
        ({"to": "zoë@example.org"}, {}, 422, "validation_failed"),
        ({"to": ["a@example.org"]}, {}, 422, "validation_failed"),
        ({"to": "a@example.org", "note": "x" * 501}, {}, 422, "validation_failed"),
        ({"to": "a@example.org"}, {"Idempotency-Key": "bad key!"}, 422, "validation_failed"),
        ("{not json", {"Content-Type": "application/json"}, 400, "malformed_body"),
    ],
)
async def test_mail_test_bad_input(
    client: Any, body: Any, headers: dict[str, str], status: int, code: str
) -> None:
    kwargs = {"data": body} if isinstance(body, str) else {"json": body}
    resp = await client.post("/api/v1/ops/mail/test", headers=headers, **kwargs)
    assert resp.status == status
    assert (await resp.json(content_type=PROBLEM))["code"] == code


async def test_mail_test_huge_body_is_413(client: Any) -> None:
    resp = await client.post(
        "/api/v1/ops/mail/test",
        data=json.dumps({"to": "a@example.org", "note": "x" * 2_000_000}),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert (await resp.json(content_type=PROBLEM))["code"] == "payload_too_large"


async def test_unknown_job_is_404(client: Any) -> None:
    resp = await client.get("/api/v1/ops/jobs/nope")
    assert resp.status == 404
    assert (await resp.json(content_type=PROBLEM))["code"] == "not_found"


async def test_ops_token(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    client = await aiohttp_client(create_app(make_settings(ops_token=SecretStr("o" * 40))))
    assert (await client.get("/api/v1/ops/jobs/x")).status == 401
    wrong = await client.get("/api/v1/ops/jobs/x", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 403
    right = await client.get("/api/v1/ops/jobs/x", headers={"Authorization": "Bearer " + "o" * 40})
    assert right.status == 404


async def test_ops_refuse_forwarded_callers_without_token(client: Any) -> None:
    resp = await client.post(
        "/api/v1/ops/mail/test", json={"to": "a@example.org"},
        headers={"X-Forwarded-For": "203.0.113.5"},
    )  # fmt: skip
    assert resp.status == 403


async def test_job_metrics(client: Any) -> None:
    resp = await client.post("/api/v1/ops/mail/test", json={"to": "a@example.org"})
    await wait_job(client, (await resp.json())["job_id"], {"complete", "failed", "queued"})
    text = await (await client.get("/metrics")).text()
    assert 'btec_jobs_enqueued_total{task="send_email"} 1.0' in text
    assert "btec_job_duration_seconds_bucket" in text


# SIGTERM with a separate `btecctl worker` process ------------------------------------------


class WorkerProcess:
    """`btecctl worker --json` as a child process; its log lines are read as they come."""

    running: ClassVar[list[asyncio.subprocess.Process]] = []

    def __init__(self, proc: asyncio.subprocess.Process, ready: dict[str, Any]) -> None:
        self.proc = proc
        self.ready = ready  # the `ready` event it printed
        self.lines: list[bytes] = []
        self._reader = asyncio.create_task(self._read())
        WorkerProcess.running.append(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line)

    @classmethod
    async def start(cls, settings: Settings, **env: str) -> WorkerProcess:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("BTEC_")}
        environ.update(cli_env(settings, BTEC_ENV_FILE="", **env))
        if settings.smtp_url is not None:
            environ["BTEC_SMTP_URL"] = settings.smtp_url.get_secret_value()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "btecctl", "worker", "--json",
            env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while True:
                line = await proc.stdout.readline()
                assert line, "the worker exited before it was ready"
                if b'"event": "ready"' in line:
                    break
        return cls(proc, json.loads(line))

    async def stop(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                await self.proc.wait()
                await self._reader
        except TimeoutError:
            self.proc.kill()
            raise
        return int(self.proc.returncode or 0)


@pytest.fixture(autouse=True)
def _no_worker_left_behind() -> Iterator[None]:
    yield
    for proc in WorkerProcess.running:
        if proc.returncode is None:
            proc.kill()
    WorkerProcess.running.clear()


@pytest.fixture
async def queue(redis_url: str, make_settings: Callable[..., Settings]) -> AsyncIterator[Jobs]:
    settings = make_settings()
    q = create_queue(redis_url)
    yield Jobs(q, catalogue.specs(settings), None)
    await q.disconnect()


async def wait_status(tasks: Jobs, key: str, until: set[str], timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        job = await tasks.job(key)
        status = job.status.value if job else "missing"
        if status in until or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.05)


async def test_sigterm_lets_a_short_job_finish(
    make_settings: Callable[..., Settings], queue: Jobs
) -> None:
    settings = make_settings()
    worker = await WorkerProcess.start(settings, BTEC_WORKER_DRAIN_SECONDS="5")
    job = await queue.enqueue("ping", seconds=1.5)
    assert job is not None
    assert await wait_status(queue, job.key, {"active"}) == "active"
    started = time.monotonic()
    assert await worker.stop() == 0
    assert time.monotonic() - started < 5
    assert await wait_status(queue, job.key, {"complete"}, timeout=1) == "complete"


async def test_sigterm_requeues_a_job_past_the_deadline(
    make_settings: Callable[..., Settings], queue: Jobs
) -> None:
    settings = make_settings()
    worker = await WorkerProcess.start(settings, BTEC_WORKER_DRAIN_SECONDS="1")
    job = await queue.enqueue("ping", seconds=4)
    assert job is not None
    assert await wait_status(queue, job.key, {"active"}) == "active"
    assert await worker.stop() == 0
    stored = await queue.job(job.key)
    assert stored is not None
    assert stored.status.value == "queued"  # back in the queue, not lost
    assert stored.error == "cancelled"
    second = await WorkerProcess.start(settings, BTEC_WORKER_DRAIN_SECONDS="1")
    try:
        assert await wait_status(queue, job.key, {"complete"}, timeout=20) == "complete"
    finally:
        await second.stop()


async def test_sigterm_mid_send_delivers_exactly_once(
    make_settings: Callable[..., Settings], queue: Jobs
) -> None:
    async with smtp_server(delay=3.0) as inbox:
        settings = make_settings(smtp_url=SecretStr(inbox.url))
        worker = await WorkerProcess.start(settings, BTEC_WORKER_DRAIN_SECONDS="1")
        job = await queue.enqueue(
            "send_email", key="grade-released:42", template="test", to="d@example.org",
            context={"service": "btec", "public_url": "http://x", "requested_by": "t", "note": ""},
        )  # fmt: skip
        assert job is not None
        assert await wait_status(queue, job.key, {"active"}) == "active"
        await asyncio.sleep(0.5)  # the worker is now inside the SMTP transaction
        assert await worker.stop() == 0
        assert len(inbox.messages) == 1  # the send finished before the worker left
        second = await WorkerProcess.start(settings, BTEC_WORKER_DRAIN_SECONDS="1")
        try:
            status = await wait_status(queue, job.key, {"complete"}, timeout=20)
        finally:
            await second.stop()
        assert status == "complete"
        await asyncio.sleep(0.5)
        assert len(inbox.messages) == 1  # the retry found it done and did not send again
        again = await queue.enqueue(
            "send_email", key="grade-released:42", template="test", to="d@example.org",
            context={"service": "btec", "public_url": "http://x", "requested_by": "t", "note": ""},
        )  # fmt: skip
        assert again is None


def test_worker_ui_needs_a_password(cli: Callable[..., Any], settings: Settings) -> None:
    result = cli("worker", "--ui-port", "18765", env=cli_env(settings, BTEC_ENV_FILE=""))
    assert result.exit_code == 2
    assert "BTEC_JOBS_UI_PASSWORD" in result.output


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_worker_ui_behind_basic_auth(make_settings: Callable[..., Settings]) -> None:
    import aiohttp

    from tests.helpers import closed_port

    settings = make_settings()
    port = closed_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BTEC_")}
    # The variable's old name, on purpose: deployments that set it keep their UI.
    environ.update(cli_env(settings, BTEC_ENV_FILE="", BTEC_TASKS_UI_PASSWORD="ui-secret-1"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "btecctl", "worker", "--ui-port", str(port), "--json",
        env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while b'"event": "ready"' not in await proc.stdout.readline():
                pass
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/api/queues"
            async with http.get(url) as anonymous:
                assert anonymous.status == 401
            async with http.get(url, headers=basic("admin", "wrong")) as wrong:
                assert wrong.status == 401
            async with http.get(url, headers=basic("admin", "ui-secret-1")) as ok:
                assert ok.status == 200
                assert "btec" in await ok.text()
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.communicate()


async def test_worker_serves_its_job_metrics(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    """Job counts live in the worker that ran the jobs: `btecctl worker` serves them on
    BTEC_WORKER_METRICS_PORT, behind BTEC_METRICS_TOKEN like the API's /metrics."""
    import aiohttp

    token = "metrics-token-" + "m" * 24
    async with smtp_server() as inbox:
        settings = make_settings(smtp_url=SecretStr(inbox.url))
        worker = await WorkerProcess.start(
            settings, BTEC_WORKER_METRICS_PORT="0", BTEC_METRICS_TOKEN=token
        )
        url = worker.ready["metrics_url"]
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/metrics")
        api = await aiohttp_client(create_app(settings))  # no worker of its own
        resp = await api.post("/api/v1/ops/mail/test", json={"to": "a@example.org"})
        assert resp.status == 202, await resp.text()
        done = await wait_job(api, (await resp.json())["job_id"], {"complete", "failed"})
        assert done["status"] == "complete"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as anonymous:
                assert anonymous.status == 401
                assert anonymous.content_type == PROBLEM
                assert (await anonymous.json())["code"] == "unauthorized"
            async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as ok:
                assert ok.status == 200
                text = await ok.text()
        assert await worker.stop() == 0
    assert 'btec_jobs_finished_total{status="complete",task="send_email"} 1.0' in text
    assert 'btec_job_duration_seconds_count{task="send_email"} 1.0' in text
    assert "btec_http_requests_total" in text  # the same families as the API's, for one query


async def test_worker_metrics_port_taken_is_a_clear_error(
    make_settings: Callable[..., Settings],
) -> None:
    import socket

    settings = make_settings()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        environ = {k: v for k, v in os.environ.items() if not k.startswith("BTEC_")}
        environ.update(cli_env(settings, BTEC_ENV_FILE="", BTEC_WORKER_METRICS_PORT=str(port)))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "btecctl", "worker", "--json",
            env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
    assert proc.returncode == 1
    reply = json.loads(out.decode().strip().splitlines()[-1])
    assert reply["ok"] is False
    assert f"cannot listen for metrics on 127.0.0.1:{port}" in reply["error"]
    assert b"Traceback" not in err


async def test_redis_down_is_503_not_500(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    from tests.helpers import closed_port

    settings = make_settings(
        redis_url=SecretStr(f"redis://127.0.0.1:{closed_port()}/0"), ratelimit_enabled=False
    )
    client = await aiohttp_client(create_app(settings))
    resp = await client.post("/api/v1/ops/mail/test", json={"to": "a@example.org"})
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "5"
    assert (await resp.json(content_type=PROBLEM))["code"] == "queue_unavailable"
    ready = await client.get("/api/v1/health/ready")
    assert ready.status == 503


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "smtps"])
async def test_mail_over_tls_with_auth(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    tmp_path: Any,
    implicit: bool,
) -> None:
    from tests.smtp import Credentials, tls_smtp_server

    creds = Credentials("btec-relay", "relay p@ss ✓")
    async with tls_smtp_server(tmp_path, creds, implicit=implicit) as (inbox, url):
        client = await served(aiohttp_client, make_settings(smtp_url=SecretStr(url)))
        resp = await client.post("/api/v1/ops/mail/test", json={"to": "tls@example.org"})
        job = await wait_job(client, (await resp.json())["job_id"], {"complete", "failed"})
        assert job["status"] == "complete", job
        [message] = await inbox.wait_for(1)
        health = await (await client.get("/api/v1/health?fresh=true")).json(
            content_type="application/health+json"
        )
    assert message["To"] == "tls@example.org"
    assert creds.logins
    assert all(entry.endswith(":ok") for entry in creds.logins)
    assert health["checks"]["smtp:responseTime"][0]["status"] == "pass"
