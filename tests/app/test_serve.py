"""`btecctl serve` as a real process: embedded servers start and stop with it, on any signal."""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from server.config.settings import Settings
from tests.support.env import MIGRATION_IDS, free_port
from tests.support.metrics import operator_headers
from tests.support.processes import STARTUP_TIMEOUT, Served, embedded_processes
from tests.support.wait import eventually_sync

pytestmark = pytest.mark.slow  # among the longest: started first (tests/conftest.py)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_starts_and_stops_embedded_servers(data_dir: Path, sig: signal.Signals) -> None:
    served = Served(data_dir, free_port())
    ready = served.wait_ready()
    assert ready["url"] == served.url
    assert served.get("/api/v1/health/ready") == 200
    assert served.get("/api/v1/health") == 200
    running = embedded_processes(data_dir)
    assert {p.name() for p in running} >= {"postgres", "redis-server"}

    assert served.stop(sig) == 0
    assert not embedded_processes(data_dir)
    for proc in running:
        assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    events = [e.get("event") for e in served.lines]
    assert "draining" in events
    assert "stopped" in events


def test_readiness_fails_during_drain(data_dir: Path) -> None:
    served = Served(data_dir, free_port(), BTEC_DRAIN_SECONDS="3")
    served.wait_ready()
    assert served.get("/api/v1/health/ready") == 200
    served.proc.send_signal(signal.SIGTERM)
    seen = eventually_sync(lambda: served.get("/api/v1/health/ready"), lambda s: s == 503,
                           timeout=2, message="readiness fails while draining")  # fmt: skip
    assert seen == 503
    assert served.get("/api/v1/health/live") == 200  # still alive while draining
    assert served.proc.wait(30) == 0
    assert not embedded_processes(data_dir)


def test_killed_serve_leaves_stale_servers_that_dev_stop_cleans(data_dir: Path, cli: Any) -> None:
    served = Served(data_dir, free_port())
    served.wait_ready()
    served.proc.kill()
    served.proc.wait(10)
    assert embedded_processes(data_dir)

    env = {"BTEC_DATA_DIR": str(data_dir), "BTEC_ENV_FILE": ""}
    status = json.loads(cli("dev", "status", "--json", env=env).stdout)
    assert all(s["running"] and s["stale"] for s in status["servers"])

    result = cli("dev", "stop", "--json", env=env)
    assert result.exit_code == 0, result.output
    assert sorted(json.loads(result.stdout)["stopped"]) == ["postgres", "redis"]
    assert not embedded_processes(data_dir)
    status = json.loads(cli("dev", "status", "--json", env=env).stdout)
    assert not any(s["running"] for s in status["servers"])


def test_serve_adopts_stale_servers_and_stops_them(data_dir: Path) -> None:
    first = Served(data_dir, free_port())
    first.wait_ready()
    first.proc.kill()
    first.proc.wait(10)
    stale = {p.pid for p in embedded_processes(data_dir)}
    assert stale

    second = Served(data_dir, free_port())
    second.wait_ready()
    assert {p.pid for p in embedded_processes(data_dir)} == stale  # adopted, not duplicated
    assert second.get("/api/v1/health/ready") == 200
    assert second.stop() == 0
    assert not embedded_processes(data_dir)


def test_dev_stop_leaves_servers_of_a_live_owner(data_dir: Path, cli: Any) -> None:
    served = Served(data_dir, free_port())
    served.wait_ready()
    env = {"BTEC_DATA_DIR": str(data_dir), "BTEC_ENV_FILE": ""}
    kept = json.loads(cli("dev", "stop", "--json", env=env).stdout)
    assert kept["stopped"] == []
    assert len(kept["in_use"]) == 2
    assert served.get("/api/v1/health/ready") == 200
    assert served.stop() == 0
    assert not embedded_processes(data_dir)


def test_port_in_use_is_a_clean_error_and_leaves_nothing(data_dir: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        served = Served(data_dir, port)
        _, err = served.proc.communicate(timeout=STARTUP_TIMEOUT)
    assert served.proc.returncode == 1
    assert "already in use" in err
    assert "Traceback" not in err
    assert not embedded_processes(data_dir)


def test_production_refuses_embedded_servers(data_dir: Path) -> None:
    served = Served(data_dir, free_port(), BTEC_ENV="production")
    _, err = served.proc.communicate(timeout=30)
    assert served.proc.returncode == 4
    assert "BTEC_DATABASE_URL" in err
    assert "BTEC_SECRET_KEY" in err
    assert "BTEC_CLAMD_URL" in err  # no scanner, and not said to run without one
    assert not data_dir.exists() or not embedded_processes(data_dir)


def test_cli_beside_serve_shares_its_embedded_database(data_dir: Path, cli: Any) -> None:
    """`btecctl db status` attaches to serve's PostgreSQL and leaves it running on exit."""
    served = Served(data_dir, free_port())
    served.wait_ready()
    env = {"BTEC_DATA_DIR": str(data_dir), "BTEC_ENV_FILE": ""}
    status = cli("db", "status", "--json", env=env)
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["pending"] == []
    assert served.get("/api/v1/health/ready") == 200
    users = json.loads(cli("dev", "status", "--json", env=env).stdout)["servers"]
    assert [s["users"] for s in users] == [[served.proc.pid], [served.proc.pid]]
    assert served.stop() == 0
    assert not embedded_processes(data_dir)


def test_cli_alone_starts_and_stops_the_embedded_database(data_dir: Path, cli: Any) -> None:
    env = {"BTEC_DATA_DIR": str(data_dir), "BTEC_ENV_FILE": ""}
    result = cli("db", "migrate", "--json", env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["applied"] == MIGRATION_IDS
    assert not embedded_processes(data_dir)


def test_embedded_default_catches_mail(data_dir: Path, cli: Any) -> None:
    """One command, no SMTP server: mail goes through the queue to the catcher."""
    catcher = free_port()
    served = Served(data_dir, free_port(), BTEC_MAIL_CATCHER_PORT=str(catcher))
    served.wait_ready()
    request = urllib.request.Request(  # noqa: S310
        served.url + "/api/v1/ops/mail/test",
        data=json.dumps({"to": "learner@college.example", "note": "welcome"}).encode(),
        # the data dir's own ops token, as btecctl would send it
        headers={"Content-Type": "application/json", **operator_headers(
            Settings(_env_file=None, data_dir=data_dir), "ops_token"  # type: ignore[call-arg]
        )},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310
        assert resp.status == 202
    env = {"BTEC_DATA_DIR": str(data_dir), "BTEC_ENV_FILE": ""}
    messages: list[dict[str, Any]] = eventually_sync(
        lambda: json.loads(cli("mail", "list", "--json", env=env).stdout)["messages"],
        timeout=15, interval=0.1, message="the catcher has the mail",
    )  # fmt: skip
    assert [m["to"] for m in messages] == ["learner@college.example"]
    shown = json.loads(cli("mail", "show", messages[0]["id"], "--json", env=env).stdout)
    assert "welcome" in shown["text"]
    assert "welcome" in shown["html"]
    assert served.stop() == 0
    assert not embedded_processes(data_dir)


def test_mail_show_unknown_id(data_dir: Path, cli: Any) -> None:
    env = {"BTEC_DATA_DIR": str(data_dir), "BTEC_ENV_FILE": ""}
    result = cli("mail", "show", "nope", "--json", env=env)
    assert result.exit_code == 1
    assert json.loads(cli("mail", "list", "--json", env=env).stdout) == {"messages": []}
