"""Jobs acknowledged with 202 survive `btecctl serve` stopping, on the embedded default: SIGTERM
(a restart), and SIGKILL of serve with its embedded servers (a crash; the whole service's
processes killed as systemd's control group would be). Each runs after the restart, exactly
once.

The jobs are test mails queued through the operator API while no worker runs (`serve
--no-worker`), so that they are still queued when the server stops; the server then starts
again with its worker and the embedded mail catcher, and every acknowledged job id must reach
`complete` and its message arrive once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from server.platform.mail import caught
from tests.support.env import free_port
from tests.support.http import call
from tests.support.mail import smtp_server
from tests.support.processes import Served, embedded_processes
from tests.support.wait import eventually, eventually_sync

pytestmark = pytest.mark.slow  # among the longest: started first (tests/conftest.py)

OPS = "an operator token for the fault tests, long enough"
QUEUED = 3


def _call(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    return call(url, token=OPS, method=method, body=body, timeout=10)


def _serve(data: Path, *args: str) -> Served:
    served = Served(data, free_port(), *args, BTEC_OPS_TOKEN=OPS, BTEC_MAIL_CATCHER_PORT="0")
    served.wait_ready()
    return served


def _kill_all(served: Served, data: Path) -> None:
    """SIGKILL to serve and its embedded PostgreSQL and Redis at once: nothing shuts down."""
    victims = [psutil.Process(served.proc.pid), *embedded_processes(data)]
    for proc in victims:
        proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=30)
    served.proc.wait(30)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_queued_jobs_survive_a_stop_of_serve_and_run_once_after(tmp_path: Path, how: str) -> None:
    data = tmp_path / "var"
    first = _serve(data, "--no-worker")
    acknowledged = []
    for n in range(QUEUED):
        status, body = _call(first.url + "/api/v1/ops/mail/test", "POST",
                             {"to": "ops@example.org", "note": f"kept {n}"})  # fmt: skip
        assert status == 202, body
        acknowledged.append(body["job_id"])
    for job_id in acknowledged:
        assert _call(f"{first.url}/api/v1/ops/jobs/{job_id}")[1]["status"] == "queued"
    if how == "sigterm":
        assert first.stop() == 0
    else:
        _kill_all(first, data)
    if how == "sigkill":
        assert embedded_processes(data) == []

    second = _serve(data)
    try:

        def states() -> list[str]:
            found = [_call(f"{second.url}/api/v1/ops/jobs/{j}") for j in acknowledged]
            return [body["status"] if status == 200 else f"HTTP {status}"
                    for status, body in found]  # fmt: skip

        done = eventually_sync(
            states, lambda s: all(x == "complete" for x in s), timeout=60, interval=0.5,
            message="every acknowledged job completes after the restart",
        )  # fmt: skip
        assert done == ["complete"] * QUEUED
        bodies = [m.message.get_body(("plain",)).get_content() for m in caught(data / "mail")]
        notes = sorted(body.split("kept ")[1].split()[0] for body in bodies)
        assert notes == [str(n) for n in range(QUEUED)]  # each once
    finally:
        second.stop()


def test_a_job_running_at_sigterm_is_logged_requeued_and_runs_after_the_restart(
    tmp_path: Path,
) -> None:
    """A job longer than the worker's drain: the drain interrupts it, puts it back in the
    queue and logs it once with its id; after the restart it runs to the end, once."""
    data = tmp_path / "var"
    env = {"BTEC_DATA_DIR": str(data), "BTEC_ENV_FILE": ""}
    first = Served(data, free_port(), BTEC_OPS_TOKEN=OPS, BTEC_MAIL_CATCHER_PORT="0",
                   BTEC_WORKER_DRAIN_SECONDS="1")  # fmt: skip
    first.wait_ready()
    ping = subprocess.run(
        [sys.executable, "-m", "btecctl", "jobs", "ping", "--seconds", "6", "--timeout", "1",
         "--json"], env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    job = json.loads(ping.stdout)
    assert job["status"] == "active", ping.stdout + ping.stderr
    assert first.stop() == 0
    interrupted = [line for line in first.lines
                   if line.get("event") == "job_interrupted_at_shutdown"]  # fmt: skip
    assert [(line["job"], line["status"]) for line in interrupted] == [(job["id"], "queued")]

    second = _serve(data)
    try:
        done = eventually_sync(
            lambda: _call(f"{second.url}/api/v1/ops/jobs/{job['id']}"),
            lambda found: found[1].get("status") == "complete",
            timeout=60,
            interval=0.5,
            message="the interrupted job runs to the end after the restart",
        )
        assert done[1]["attempts"] == 2  # interrupted once, then run once to the end
    finally:
        second.stop()


async def test_mail_queued_while_smtp_is_down_arrives_once_when_it_is_back(
    tmp_path: Path,
) -> None:
    """Three mails acknowledged while the SMTP server is down are retried (warnings, not
    errors) and each arrives exactly once after it comes back."""
    port = free_port()
    served = Served(tmp_path / "var", free_port(), BTEC_OPS_TOKEN=OPS,
                    BTEC_SMTP_URL=f"smtp://127.0.0.1:{port}?starttls=off",
                    BTEC_MAIL_RETRY_DELAY="0.5", BTEC_MAIL_RETRIES="20")  # fmt: skip
    served.wait_ready()
    try:
        acknowledged = []
        for n in range(QUEUED):
            status, body = await asyncio.to_thread(
                _call, served.url + "/api/v1/ops/mail/test", "POST",
                {"to": "ops@example.org", "note": f"kept {n}"},
            )  # fmt: skip
            assert status == 202, body
            acknowledged.append(body["job_id"])

        def attempts() -> list[int]:
            return [_call(f"{served.url}/api/v1/ops/jobs/{j}")[1].get("attempts", 0)
                    for j in acknowledged]  # fmt: skip

        await asyncio.to_thread(
            eventually_sync, attempts, lambda a: min(a) >= 2, timeout=60, interval=0.5,
            message="every mail was tried and failed",
        )  # fmt: skip
        async with smtp_server(port=port) as inbox:
            await eventually(lambda: len(inbox.messages) >= QUEUED, timeout=60,
                             message="the mails arrive once SMTP is back")  # fmt: skip
            states = await asyncio.to_thread(
                eventually_sync,
                lambda: [_call(f"{served.url}/api/v1/ops/jobs/{j}")[1]["status"]
                         for j in acknowledged],
                lambda found: "active" not in found and "queued" not in found,
                timeout=30, interval=0.5,
            )  # fmt: skip
            delivered = len(inbox.messages)
    finally:
        served.stop()
    assert delivered == QUEUED  # each once
    assert states == ["complete"] * QUEUED
    failures = [line for line in served.lines if "Error processing job" in line.get("event", "")]
    assert failures, "the failed attempts are logged"
    assert {line["level"] for line in failures} == {"warning"}
