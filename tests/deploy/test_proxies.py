"""The shipped HAProxy and nginx configurations (deploy/haproxy/, deploy/nginx/): each passes
its own check (`haproxy -c`, `nginx -t`), and each, run as shipped but on loopback ports, puts
every request through to a real `btecctl serve` while its second API server is down (HAProxy's
readiness check takes that one out; nginx moves to the other on a refused connection)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.config.assets import PROJECT_ROOT
from tests.support.cluster import HAPROXY, haproxy_config
from tests.support.env import closed_port, free_port, required_tool
from tests.support.http import call
from tests.support.processes import Served
from tests.support.wait import eventually_sync

NGINX = PROJECT_ROOT / "deploy" / "nginx" / "btec.conf"
REQUIRE = "BTEC_TEST_REQUIRE_PROXIES"
REQUESTS = 30


def _tool(name: str) -> str:
    return required_tool(name, name, REQUIRE)


def _nginx_config(tmp_path: Path, listen: int, up: int, down: int) -> Path:
    site = NGINX.read_text().replace("listen 80;", f"listen 127.0.0.1:{listen};")
    site = site.replace("127.0.0.1:8081", f"127.0.0.1:{up}")
    site = site.replace("127.0.0.1:8082", f"127.0.0.1:{down}")
    (tmp_path / "btec.conf").write_text(site)
    for d in ("logs", "body", "proxy"):
        (tmp_path / d).mkdir(exist_ok=True)
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path}/body;\n"
        f"  proxy_temp_path {tmp_path}/proxy;\n  include {tmp_path}/btec.conf;\n}}\n"
    )
    return main


def test_haproxy_checks_the_shipped_config() -> None:
    done = subprocess.run([_tool("haproxy"), "-c", "-f", str(HAPROXY)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_nginx_checks_the_shipped_config(tmp_path: Path) -> None:
    config = _nginx_config(tmp_path, 80, 8081, 8082)
    done = subprocess.run([_tool("nginx"), "-t", "-c", str(config), "-p", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path / "var", free_port(), BTEC_MAIL_CATCHER_PORT="0",
                    BTEC_TRUSTED_PROXIES="127.0.0.1/32")  # fmt: skip
    server.wait_ready()
    try:
        yield server
    finally:
        server.stop()


def _status(url: str) -> int:
    return call(url, timeout=10)[0]


def _through(proxy: list[str], port: int) -> list[int]:
    """Start the proxy, wait until it answers, then send REQUESTS requests through it."""
    proc = subprocess.Popen(proxy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api/v1/health/live"
    try:
        eventually_sync(lambda: _status(url), lambda s: s == 200, timeout=30,
                        message="the proxy answers")  # fmt: skip
        return [_status(url) for _ in range(REQUESTS)]
    finally:
        proc.terminate()
        proc.wait(30)


def test_haproxy_puts_every_request_through_with_one_server_down(
    tmp_path: Path, served: Served
) -> None:
    port = free_port()
    config = haproxy_config(tmp_path, port, [served.port, closed_port()])
    statuses = _through([_tool("haproxy"), "-db", "-f", str(config)], port)
    assert statuses == [200] * REQUESTS


def test_nginx_puts_every_request_through_with_one_server_down(
    tmp_path: Path, served: Served
) -> None:
    port = free_port()
    config = _nginx_config(tmp_path, port, served.port, closed_port())
    command = [_tool("nginx"), "-c", str(config), "-p", str(tmp_path), "-g", "daemon off;"]
    assert _through(command, port) == [200] * REQUESTS
