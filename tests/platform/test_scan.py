"""Virus scanning of uploads with a real clamd: EICAR is found and quarantined and its owner
told, a clean file goes clean, and a scanner that dies, hangs or refuses the stream leaves the
file `error`, never `clean`."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from server.app import create_app
from server.config.settings import SETTINGS, Settings
from tests.support import s3
from tests.support.accounts import CHEAP
from tests.support.clamd import EICAR, SIGNATURE, ClamdServer, clamd_server
from tests.support.env import cli_env
from tests.support.mail import Inbox
from tests.support.metrics import operator_headers, scrape
from tests.support.problems import problem
from tests.support.uploads import ADMIN, admin_app, upload
from tests.support.wait import eventually


@pytest.fixture
def clamd() -> Iterator[ClamdServer]:
    with clamd_server() as server:
        yield server


async def scanning(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    tmp_path: Path,
    inbox: Inbox,
    clamd_url: str,
    **extra: Any,
) -> tuple[Any, dict[str, str], Settings]:
    settings = make_settings(
        **CHEAP,
        clamd_url=clamd_url,
        smtp_url=SecretStr(inbox.url),
        data_dir=tmp_path / "var",
        **extra,
    )
    http, admin = await admin_app(aiohttp_client, acli, settings, worker=True)
    return http, admin, settings


async def verdict(
    http: Any, who: dict[str, str], file_id: str, timeout: float = 30
) -> dict[str, Any]:
    """The file's metadata, once its scan has given a verdict."""

    async def meta() -> dict[str, Any]:
        found: dict[str, Any] = await (
            await http.get(f"/api/v1/files/{file_id}", headers=who)
        ).json()
        return found

    return await eventually(meta, lambda found: found["scan_status"] != "pending",
                            timeout=timeout, message=f"a verdict on {file_id}")  # fmt: skip


@pytest.mark.parametrize("transport", ["unix", "tcp"])
async def test_eicar_is_quarantined_and_its_owner_told(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    tmp_path: Path,
    inbox: Inbox,
    clamd: ClamdServer,
    transport: str,
) -> None:
    url = clamd.unix_url if transport == "unix" else clamd.tcp_url
    http, who, settings = await scanning(aiohttp_client, make_settings, acli, tmp_path, inbox, url)
    answer = await upload(http, who, "notes.txt", EICAR)
    assert answer.status == 201, await answer.text()
    meta = await answer.json()
    assert meta["scan_status"] == "pending"
    await problem(await http.get(meta["content_url"], headers=who), 409, "file_not_available")

    done = await verdict(http, who, meta["id"])
    assert done["scan_status"] == "infected"
    assert done["scan_detail"] == SIGNATURE
    assert done["scanned_at"] is not None
    body = await problem(await http.get(meta["content_url"], headers=who), 409,
                         "file_not_available")  # fmt: skip
    assert "infected" in body["detail"]
    # Moved out of the served tree, kept for the operator.
    uploads = settings.uploads_path
    served = [p for p in uploads.rglob("*") if p.is_file() and "quarantine" not in p.parts]
    assert served == []
    [kept] = list((uploads / "quarantine").iterdir())
    assert kept.read_bytes() == EICAR

    metrics = await scrape(http)
    assert 'btec_scans_total{status="infected"} 1.0' in metrics
    [message] = await inbox.wait_for(1)
    assert message["To"] == ADMIN
    assert "quarantined" in message["Subject"]
    assert SIGNATURE in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_a_clean_file_goes_clean_and_can_be_downloaded(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    tmp_path: Path,
    inbox: Inbox,
    clamd: ClamdServer,
) -> None:
    http, who, _ = await scanning(aiohttp_client, make_settings, acli, tmp_path, inbox,
                                  clamd.unix_url)  # fmt: skip
    data = os.urandom(3 * 1024 * 1024).hex().encode()[: 3 * 1024 * 1024]  # 3 MiB of text
    meta = await (await upload(http, who, "log.txt", data)).json()
    done = await verdict(http, who, meta["id"])
    assert done["scan_status"] == "clean"
    assert done["scan_detail"] is None
    assert await (await http.get(meta["content_url"], headers=who)).read() == data
    assert inbox.messages == []


async def test_clamd_killed_mid_scan_is_error_not_clean(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    tmp_path: Path,
    inbox: Inbox,
    clamd: ClamdServer,
) -> None:
    http, who, _ = await scanning(aiohttp_client, make_settings, acli, tmp_path, inbox,
                                  clamd.unix_url, scan_retries=1)  # fmt: skip
    clamd.pause()  # it accepts the connection, then hangs mid-scan
    meta = await (await upload(http, who, "notes.txt", b"clean words " * 100_000)).json()
    await eventually(clamd.connections, message="the scan job is connected and streaming")
    clamd.kill()
    done = await verdict(http, who, meta["id"])
    assert done["scan_status"] == "error"
    assert done["scan_detail"].startswith("clamd")
    await problem(await http.get(meta["content_url"], headers=who), 409, "file_not_available")


async def test_an_over_limit_reply_is_error_not_clean(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    tmp_path: Path,
    inbox: Inbox,
) -> None:
    with clamd_server(stream_max="1M") as small:
        http, who, _ = await scanning(aiohttp_client, make_settings, acli, tmp_path, inbox,
                                      small.unix_url, scan_retries=1)  # fmt: skip
        meta = await (await upload(http, who, "big.txt", b"a" * (2 * 1024 * 1024))).json()
        done = await verdict(http, who, meta["id"])
    assert done["scan_status"] == "error"
    await problem(await http.get(meta["content_url"], headers=who), 409, "file_not_available")


async def test_health_reports_the_scanner(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    clamd: ClamdServer,
) -> None:
    async def check(settings: Settings) -> dict[str, Any]:
        http = await aiohttp_client(create_app(settings))
        report = await (
            await http.get(
                "/api/v1/health?fresh=true",
                headers=operator_headers(http.app[SETTINGS], "ops_token"),
            )
        ).json()
        found: dict[str, Any] = report["checks"]["clamd:responseTime"][0]
        return found

    up = await check(make_settings(clamd_url=clamd.tcp_url, data_dir=tmp_path / "a"))
    assert up["status"] == "pass"
    clamd.kill()
    down = await check(make_settings(clamd_url=clamd.tcp_url, data_dir=tmp_path / "b"))
    assert down["status"] == "warn"  # not critical: uploads wait as pending, readiness holds
    assert "clamd" in down["output"]
    none = await check(make_settings(data_dir=tmp_path / "c"))
    assert none["status"] == "warn"
    assert "BTEC_CLAMD_URL" in none["output"]


async def test_files_added_before_the_scanner_are_scanned_by_rescan(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    tmp_path: Path,
    inbox: Inbox,
    clamd: ClamdServer,
) -> None:
    """A deployment ran without a scanner; one is added; `btecctl files rescan --unscanned`
    queues the old files and the worker gives each its verdict."""
    plain = make_settings(**CHEAP, data_dir=tmp_path / "var")
    http, who = await admin_app(aiohttp_client, acli, plain)
    clean = await (await upload(http, who, "a.txt", b"fine words")).json()
    bad = await (await upload(http, who, "b.txt", EICAR)).json()
    assert {clean["scan_status"], bad["scan_status"]} == {"unscanned"}

    listed = await acli("files", "list", "--status", "unscanned", "--json",
                        env=cli_env(plain, BTEC_ENV_FILE=""))  # fmt: skip
    assert listed.exit_code == 0, listed.output
    assert {f["id"] for f in json.loads(listed.stdout)["files"]} == {clean["id"], bad["id"]}
    refused = await acli("files", "rescan", "--json", env=cli_env(plain, BTEC_ENV_FILE=""))
    assert refused.exit_code == 2
    assert "BTEC_CLAMD_URL" in refused.output

    env = cli_env(plain, BTEC_ENV_FILE="", BTEC_CLAMD_URL=clamd.unix_url)
    queued = await acli("files", "rescan", "--unscanned", "--json", env=env)
    assert queued.exit_code == 0, queued.output
    assert json.loads(queued.stdout)["queued"] == 2
    scanning_settings = make_settings(**CHEAP, data_dir=tmp_path / "var", clamd_url=clamd.unix_url,
                                      smtp_url=SecretStr(inbox.url))  # fmt: skip
    worker = await aiohttp_client(create_app(scanning_settings, worker=True))
    assert (await verdict(worker, who, clean["id"]))["scan_status"] == "clean"
    assert (await verdict(worker, who, bad["id"]))["scan_status"] == "infected"


async def test_on_s3_an_infected_file_moves_to_the_quarantine_prefix(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    tmp_path: Path,
    inbox: Inbox,
    clamd: ClamdServer,
    s3_url: str,
) -> None:
    bucket = s3.new_bucket(s3_url)
    http, who, _ = await scanning(aiohttp_client, make_settings, acli, tmp_path, inbox,
                                  clamd.unix_url, **s3.settings_for(s3_url, bucket))  # fmt: skip
    bad = await (await upload(http, who, "b.txt", EICAR)).json()
    good = await (await upload(http, who, "g.txt", b"fine words")).json()
    assert (await verdict(http, who, bad["id"]))["scan_status"] == "infected"
    assert (await verdict(http, who, good["id"]))["scan_status"] == "clean"
    stored = s3.keys(s3_url, bucket)
    assert len(stored) == 2
    [quarantined] = [k for k in stored if k.startswith("uploads/quarantine/")]
    body = s3.client(s3_url).get_object(Bucket=bucket, Key=quarantined)["Body"].read()
    assert body == EICAR
    assert await (await http.get(good["content_url"], headers=who)).read() == b"fine words"
