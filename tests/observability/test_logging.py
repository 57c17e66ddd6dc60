"""The logging pipeline: secrets redacted in every line (ours and third-party), levels per
logger, and BTEC_LOG_FILE rotated by size, also from a real `btecctl serve`."""

from __future__ import annotations

import io
import json
import logging
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from server.config.settings import Settings
from server.observability.logging import configure_logging, get_logger, log_access, request_id_var
from tests.support.accounts import CHEAP, PASSWORD, bearer, make_admin
from tests.support.env import free_port
from tests.support.processes import Served

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI3In0.c2lnbmF0dXJlLXBhcnQ"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    configure_logging("DEBUG", "json", stream=buf)
    try:
        yield buf
    finally:
        configure_logging("INFO", "json")


def lines_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_secrets_are_redacted_in_every_line(captured: io.StringIO) -> None:
    log = get_logger("btec.test")
    log.info("signing_in", password="hunter2-pass", user_id=7,
             headers={"Authorization": "Bearer abc.def.ghi", "Accept": "application/json"},
             nested={"deeper": [{"api_key": "k-123456"}, {"note": f"token was {JWT}"}]},
             dsn="https://public:s3cr3t-dsn@sentry.example/1")  # fmt: skip
    logging.getLogger("somelib.client").warning(
        "connecting to %s with Authorization: Basic dXNlcjpwYXNz",
        "postgresql://app:pg-pw-9@db/btec",
    )
    text = captured.getvalue()
    for secret in ("hunter2-pass", "abc.def.ghi", "k-123456", JWT, "s3cr3t-dsn", "pg-pw-9",
                   "dXNlcjpwYXNz"):  # fmt: skip
        assert secret not in text, secret
    ours, theirs = lines_of(text)
    assert ours["user_id"] == 7
    assert ours["password"] == "[redacted]"
    assert ours["headers"] == {"Authorization": "[redacted]", "Accept": "application/json"}
    assert ours["nested"]["deeper"][1]["note"] == "token was [redacted]"
    assert theirs["logger"] == "somelib.client"
    assert "postgresql://app:[redacted]@db/btec" in theirs["event"]


def test_levels_per_logger(captured: io.StringIO) -> None:
    buf = io.StringIO()
    configure_logging("INFO", "json", stream=buf, levels="noisy.lib=ERROR, btec.detail=debug")
    logging.getLogger("noisy.lib").warning("dropped")
    logging.getLogger("noisy.lib").error("kept-error")
    get_logger("btec.detail").debug("kept-debug")
    get_logger("btec.other").debug("dropped")
    get_logger("btec.other").info("kept-info")
    assert [line["event"] for line in lines_of(buf.getvalue())] == [
        "kept-error", "kept-debug", "kept-info"]  # fmt: skip


@pytest.mark.parametrize("value", ["saq=LOUD", "=INFO", "saq"])
def test_bad_levels_setting_names_the_variable(cli: Callable[..., Any], value: str) -> None:
    result = cli("db", "status", env={"BTEC_ENV_FILE": "", "BTEC_LOG_LEVELS": value})
    assert result.exit_code == 4
    assert "BTEC_LOG_LEVELS" in result.output


def test_log_file_rotates_at_the_size_limit(captured: io.StringIO, tmp_path: Path) -> None:
    path = tmp_path / "btec.log"
    configure_logging("INFO", "json", stream=io.StringIO(), file=path, file_max_bytes=2048,
                      file_backups=2)  # fmt: skip
    request_id_var.set("rot-1")
    for i in range(120):
        get_logger("btec.test").info("line", n=i, password="never-in-a-file")
        log_access(20, {"method": "GET", "route": "/x", "path": "/x", "status": 200,
                        "duration_s": 0.001, "client_ip": "127.0.0.1"})  # fmt: skip
    request_id_var.set(None)
    configure_logging("INFO", "json", stream=io.StringIO())  # closes the file
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["btec.log", "btec.log.1", "btec.log.2"]  # 2 backups kept, no more
    for name in files:
        file = tmp_path / name
        assert file.stat().st_size <= 2048 + 300  # rotated before the line that passes
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        entries = lines_of(file.read_text())
        assert entries
        assert {e["event"] for e in entries} <= {"line", "request"}
        assert all(e["request_id"] == "rot-1" for e in entries)
    newest = lines_of(path.read_text())
    assert newest[-1]["event"] == "request"  # access lines land as JSON, not re-encoded
    assert "never-in-a-file" not in "".join((tmp_path / n).read_text() for n in files)


def test_serve_writes_and_rotates_its_log_file(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "serve.log"
    served = Served(data_dir, free_port(), BTEC_LOG_FILE=str(path),
                    BTEC_LOG_FILE_MAX_BYTES="4096", BTEC_LOG_FILE_BACKUPS="3")  # fmt: skip
    try:
        served.wait_ready()
        assert all(served.get("/api/v1/no-such-thing") == 404 for _ in range(60))
    finally:
        assert served.stop() == 0
    assert (tmp_path / "serve.log.1").exists()
    assert not (tmp_path / "serve.log.4").exists()
    entries = [e for f in sorted(tmp_path.glob("serve.log*")) for e in lines_of(f.read_text())]
    requests = [e for e in entries if e["event"] == "request"]
    assert requests
    assert all(e["status"] == 404 and len(e["request_id"]) == 32 for e in requests)
    assert {"draining", "stopped"} <= {e["event"] for e in entries}  # the app's own lines


async def test_access_lines_carry_every_field(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    logs: io.StringIO,
) -> None:
    """REFERENCES' access-log fields, including bytes_out, the signed-in user and the client
    behind a trusted proxy."""
    settings = make_settings(**CHEAP, trusted_proxies="127.0.0.1/32")
    http = await aiohttp_client(create_app(settings))
    await make_admin(acli, settings, "ada@example.org")
    units = await http.get("/api/v1/units", headers={"X-Request-ID": "acc-1",
                                                     "X-Forwarded-For": "203.0.113.7"})  # fmt: skip
    body = await units.read()
    session = await (await http.post("/api/v1/auth/login", json={
        "email": "ada@example.org", "password": PASSWORD})).json()  # fmt: skip
    me = await http.get("/api/v1/users/me", headers={"X-Request-ID": "acc-2", **bearer(session)})
    profile = await me.json()
    lines = lines_of(logs.getvalue())
    access = {e["request_id"]: e for e in lines if e["event"] == "request"}
    first = access["acc-1"]
    assert set(first) == {"ts", "level", "event", "logger", "request_id", "method", "route", "path",
                          "status", "duration_s", "bytes_out", "client_ip", "user_id"}  # fmt: skip
    assert (first["route"], first["status"], first["bytes_out"]) == (
        "/api/v1/units",
        200,
        len(body),
    )
    assert (first["client_ip"], first["user_id"]) == ("203.0.113.7", None)
    assert access["acc-2"]["user_id"] == str(profile["id"])
