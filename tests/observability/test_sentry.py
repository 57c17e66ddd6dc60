"""Sentry: a real sentry-sdk sends to a loopback sink in a separate process
(tests/support/sentry_sink.py).
An unhandled exception arrives with its tags, release and environment, headers redacted, and a
transaction named by route; expected 4xx errors and health probes send nothing; `btecctl
sentry test` reports whether the event was accepted."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from aiohttp import web

from server.app import create_app
from server.config.settings import Settings
from server.http.guard import public
from server.jobs.queue import JOBS
from server.observability import sentry
from server.observability.logging import request_id_var
from tests.support.env import closed_port
from tests.support.metrics import scrape
from tests.support.sentry_sink import SinkProcess
from tests.support.wait import eventually

SECRET_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI5In0.sentry-test-signature"


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SinkProcess]:
    running = SinkProcess(tmp_path / "envelopes.jsonl")
    yield running
    running.stop()


@pytest.fixture
def reporting(sink: SinkProcess, make_settings: Callable[..., Settings]) -> Iterator[Settings]:
    settings = make_settings(sentry_dsn=sink.dsn, sentry_traces_sample_rate=1.0)
    assert sentry.init_sentry(settings, component="api")
    yield settings
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # no DSN: reporting off again for the rest of the suite
    sentry._enabled = False


@public
async def explode(request: web.Request) -> web.Response:
    raise RuntimeError("the database said: password=hunter2 for postgresql://app:pw9@db/x")


async def test_an_unhandled_exception_reaches_sentry_redacted(
    aiohttp_client: Callable[..., Any], reporting: Settings, sink: SinkProcess
) -> None:
    app = create_app(reporting)
    app.router.add_get("/_test/explode/{part}", explode)
    client = await aiohttp_client(app)
    resp = await client.get("/_test/explode/x", headers={
        "X-Request-ID": "sentry-1", "Authorization": f"Bearer {SECRET_TOKEN}",
        "Cookie": "session=cookie-secret-1"})  # fmt: skip
    assert resp.status == 500
    assert (await resp.json(content_type="application/problem+json"))["code"] == "internal_error"
    await sentry.flush()
    events = sink.wait_items("event")
    assert len(events) == 1
    event = events[0]
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert event["tags"]["request_id"] == "sentry-1"
    assert event["tags"]["component"] == "api"
    assert event["release"] == reporting.release
    assert event["environment"] == "test"
    transactions = sink.wait_items("transaction")
    assert [t["transaction"] for t in transactions] == ["GET /_test/explode/{part}"]
    assert transactions[0]["tags"]["request_id"] == "sentry-1"
    everything = sink.out.read_text()
    for secret in (SECRET_TOKEN, "cookie-secret-1", "hunter2", "pw9"):
        assert secret not in everything, secret
    assert all(e["auth"].startswith("Sentry sentry_key=public") for e in sink.envelopes())


async def test_expected_errors_and_probes_send_nothing(
    aiohttp_client: Callable[..., Any], reporting: Settings, sink: SinkProcess
) -> None:
    client = await aiohttp_client(create_app(reporting))
    assert (await client.get("/api/v1/units/999999")).status == 404
    assert (await client.get("/api/v1/units?level=99")).status == 422
    assert (await client.get("/api/v1/users/me")).status == 401
    assert (await client.get("/api/v1/health/live")).status == 200
    await scrape(client)
    await sentry.flush()  # everything sent has been received: the sink answers after writing
    # The transactions arrive after any error event of the same requests: with them all in,
    # no event can be on its way.
    expected = {"GET /api/v1/units/{id}", "GET /api/v1/units", "GET /api/v1/users/me"}
    sink.wait_items("transaction", count=len(expected))
    assert sink.items("event") == []
    names = {t["transaction"] for t in sink.items("transaction")}
    assert names == expected


async def test_a_job_that_fails_for_good_is_reported(
    aiohttp_client: Callable[..., Any], reporting: Settings, sink: SinkProcess
) -> None:
    app = create_app(reporting, worker=True)
    await aiohttp_client(app)
    request_id_var.set("job-req-1")
    job = await app[JOBS].enqueue(
        "send_email", key="sentry-test-1", template="no-such-template", to="a@example.org",
        context={},
    )  # fmt: skip
    request_id_var.set(None)
    assert job is not None

    async def received() -> list[dict[str, Any]]:
        await sentry.flush()  # the worker's last attempt may have just failed
        return sink.items("event")

    events = await eventually(received, timeout=15, interval=0.2,
                              message="the failed job's event at the sink")  # fmt: skip
    assert len(events) == 1
    assert events[0]["exception"]["values"][-1]["type"] == "PermanentError"
    assert events[0]["tags"]["task"] == "send_email"
    assert events[0]["tags"]["request_id"] == "job-req-1"
    assert job.key in events[0]["tags"]["job"]


def test_sentry_test_command(cli: Callable[..., Any], sink: SinkProcess) -> None:
    env = {"BTEC_ENV_FILE": "", "SENTRY_DSN": sink.dsn}
    result = cli("sentry", "test", "--json", env=env)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["ok"] is True
    assert answer["accepted"] is True
    events = sink.wait_items("event")
    assert [e["event_id"] for e in events] == [answer["event_id"]]
    assert events[0]["message"] == "btecctl sentry test"


@pytest.mark.parametrize(("dsn", "code"), [(None, 4), ("http://public@127.0.0.1:{closed}/1", 3)])
def test_sentry_test_command_failures(cli: Callable[..., Any], dsn: str | None, code: int) -> None:
    env = {"BTEC_ENV_FILE": ""}
    if dsn is not None:
        env["SENTRY_DSN"] = dsn.format(closed=closed_port())
    result = cli("sentry", "test", "--json", env=env)
    assert result.exit_code == code, result.output
    assert json.loads(result.stdout.splitlines()[0])["ok"] is False


def test_a_bad_dsn_stops_every_command_naming_the_variable(cli: Callable[..., Any]) -> None:
    secret_looking = "https//key-7f3a@sentry.example/1"  # no scheme separator
    for args in (("sentry", "test"), ("db", "status")):
        result = cli(*args, env={"BTEC_ENV_FILE": "", "SENTRY_DSN": secret_looking})
        assert result.exit_code == 4, result.output
        assert "SENTRY_DSN" in result.output
        assert "key-7f3a" not in result.output
