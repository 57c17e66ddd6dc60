"""`btecctl worker` as a process of its own: SIGTERM lets a short job finish and puts a long
one back in the queue, a send under way is delivered exactly once, its UI is behind basic auth,
and it serves its own job metrics."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from server.app import create_app
from server.config.settings import Settings
from server.jobs.queue import Jobs, create_queue
from server.worker import handlers as catalogue
from tests.support.env import cli_env, free_port
from tests.support.jobs import wait_job, wait_status
from tests.support.mail import smtp_server
from tests.support.metrics import operator_headers
from tests.support.problems import PROBLEM
from tests.support.processes import WorkerProcess
from tests.support.wait import eventually


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
        await eventually(
            lambda: inbox.receiving, message="the worker is inside the SMTP transaction"
        )
        assert await worker.stop() == 0
        assert len(inbox.messages) == 1  # the send finished before the worker left
        second = await WorkerProcess.start(settings, BTEC_WORKER_DRAIN_SECONDS="1")
        try:
            status = await wait_status(queue, job.key, {"complete"}, timeout=20)
        finally:
            await second.stop()
        assert status == "complete"  # the retry has run, and its worker has stopped
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
    settings = make_settings()
    port = free_port()
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
            # CSRF: a page on another site making the browser post, credentials attached
            action = f"http://127.0.0.1:{port}/api/queues/btec/jobs/nope/retry"
            signed = basic("admin", "ui-secret-1")
            for forged in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                           {"Origin": "null", "Sec-Fetch-Site": "same-site"}):  # fmt: skip
                async with http.post(action, headers={**signed, **forged}) as refused:
                    assert refused.status == 403, forged
            own = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
            for allowed in (own, {}):  # the UI's own page; a script with no browser headers
                async with http.post(action, headers={**signed, **allowed}) as passed:
                    assert passed.status != 403, allowed
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.communicate()


async def test_worker_serves_its_job_metrics(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    """Job counts live in the worker that ran the jobs: `btecctl worker` serves them on
    BTEC_WORKER_METRICS_PORT, behind BTEC_METRICS_TOKEN like the API's /metrics, with its
    liveness probe."""
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
        ops = operator_headers(settings, "ops_token")
        resp = await api.post("/api/v1/ops/mail/test", json={"to": "a@example.org"}, headers=ops)
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
            # The liveness probe beside it, for a container platform, needs no token.
            live = url.removesuffix("/metrics") + "/api/v1/health/live"
            async with http.get(live) as alive:
                assert (alive.status, (await alive.json())["status"]) == (200, "pass")
            async with http.get(url.removesuffix("/metrics") + "/api/v1/units") as other:
                assert other.status == 404  # nothing else is served there
        assert await worker.stop() == 0
    assert 'btec_jobs_finished_total{status="complete",task="send_email"} 1.0' in text
    assert 'btec_job_duration_seconds_count{task="send_email"} 1.0' in text
    assert "btec_http_requests_total" in text  # the same families as the API's, for one query


async def test_worker_metrics_port_taken_is_a_clear_error(
    make_settings: Callable[..., Settings],
) -> None:
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
