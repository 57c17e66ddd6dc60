"""Jobs through the queue: enqueued over HTTP, run once per idempotency key, retried with
growing delays, timed out, retried and aborted with `btecctl jobs`, counted in /metrics; mail
goes through a real SMTP server (over TLS with AUTH too)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from server.app import create_app
from server.config.settings import Settings
from server.jobs.queue import Jobs, create_queue
from server.worker import handlers as catalogue
from tests.support.env import cli_env
from tests.support.jobs import jobs_idle, wait_job
from tests.support.mail import Credentials, parts, refusing_server, smtp_server, tls_smtp_server
from tests.support.metrics import as_operator, scrape

# Also run against the embedded servers in CI's second pass (pyproject.toml's markers).
pytestmark = pytest.mark.embedded


@pytest.fixture
def aiohttp_client(aiohttp_client: Callable[..., Any]) -> Callable[..., Any]:
    """Clients send the ops token, as an operator's tools do (the ops routes, the health
    details); `headers={}` makes one anonymous."""
    return as_operator(aiohttp_client)


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
        await jobs_idle(client.app)  # had a repeat queued a job, it would have run by now
        assert len(inbox.messages) == 1


async def test_failing_mail_retries_with_growing_delays_then_fails(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with refusing_server() as smtp:
        settings = make_settings(smtp_url=SecretStr(smtp.url), mail_retries=4, mail_retry_delay=1.0)
        client = await served(aiohttp_client, settings)
        resp = await client.post("/api/v1/ops/mail/test", json={"to": "b@example.org"})
        job = await wait_job(client, (await resp.json())["job_id"], {"failed"}, timeout=40)
        attempts = list(smtp.times)
    assert job["status"] == "failed"
    assert job["attempts"] == 4
    # Each attempt that is retried logs a warning; only the last, which fails the job, an error.
    levels = [r.levelname for r in caplog.records
              if r.name == "saq" and r.getMessage().startswith("Error processing job")]  # fmt: skip
    assert levels == ["WARNING", "WARNING", "WARNING", "ERROR"]
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
    metrics = await scrape(client)
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


async def test_job_metrics(client: Any) -> None:
    resp = await client.post("/api/v1/ops/mail/test", json={"to": "a@example.org"})
    await wait_job(client, (await resp.json())["job_id"], {"complete", "failed", "queued"})
    text = await scrape(client)
    assert 'btec_jobs_enqueued_total{task="send_email"} 1.0' in text
    assert "btec_job_duration_seconds_bucket" in text


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "smtps"])
async def test_mail_over_tls_with_auth(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    tmp_path: Any,
    implicit: bool,
) -> None:
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
