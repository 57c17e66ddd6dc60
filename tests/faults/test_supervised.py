"""An embedded server that dies under `btecctl serve` (killed, crashed, OOM) is started again
by serve, with backoff, logged and counted in `btec_embedded_restarts_total`; readiness
recovers by itself (it fails while the server is down, which a restart within a second rarely
lets a probe see), and `dev status` shows the new pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.env import free_port
from tests.support.http import call
from tests.support.processes import Served
from tests.support.wait import eventually_sync

TOKEN = "a metrics and ops token for the supervision tests"


def _pid(data: Path, name: str) -> int:
    done = subprocess.run(
        [sys.executable, "-m", "btecctl", "dev", "status", "--json"],
        env={**os.environ, "BTEC_DATA_DIR": str(data), "BTEC_ENV_FILE": ""},
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    state = next(s for s in json.loads(done.stdout)["servers"] if s["name"] == name)
    return int(state["pid"] or 0)


def _restarts(served: Served, name: str) -> float:
    status, body = call(served.url + "/metrics", token=TOKEN, timeout=10)
    assert status == 200, status
    text = body.decode()
    wanted = f'btec_embedded_restarts_total{{server="{name}"}} '
    return next((float(line.split()[-1]) for line in text.splitlines()
                 if line.startswith(wanted)), 0.0)  # fmt: skip


@pytest.mark.parametrize("name", ["redis", "postgres"])
def test_a_killed_embedded_server_is_restarted_and_readiness_recovers(
    tmp_path: Path, name: str
) -> None:
    data = tmp_path / "var"
    served = Served(data, free_port(), BTEC_METRICS_TOKEN=TOKEN, BTEC_MAIL_CATCHER_PORT="0")
    served.wait_ready()
    try:
        assert served.get("/api/v1/health/ready") == 200
        before = _pid(data, name)
        os.kill(before, signal.SIGKILL)
        after = eventually_sync(
            lambda: _pid(data, name),
            lambda pid: pid not in (0, before),
            timeout=90,
            interval=0.2,
            message="serve starts it again",
        )
        eventually_sync(
            lambda: served.get("/api/v1/health/ready"),
            lambda s: s == 200,
            timeout=60,
            interval=0.2,
            message="readiness recovers by itself",
        )
        assert _pid(data, name) == after
        assert _restarts(served, name) == 1
        events = [line.get("event") for line in served.lines]
        assert "embedded_server_died" in events
        assert "embedded_server_restarted" in events
    finally:
        assert served.stop() == 0
