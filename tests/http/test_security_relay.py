"""The audit's relay: a plain TCP proxy on the same host (socat, an SSH tunnel, a sidecar) makes
every caller look like a loopback client with no forwarding headers. Through one, in
production mode, the operator routes stay shut to anyone without their token: no metrics, no
job results, no health details, and no open mail relay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from server.app import create_app
from server.config.settings import Settings
from tests.support.mail import Inbox
from tests.support.problems import PROBLEM

STRONG = "kT3v0Qm9ZrX2bW8yHc5NpL1sJd7FgA4uEo6iRt0qVx-_"
OPS = "Xq3-operator-token-7fK2mP9sL4vB8nR1cT6wY0zA"


@contextlib.asynccontextmanager
async def relay(host: str, port: int) -> AsyncIterator[str]:
    """A TCP relay on 127.0.0.1 to host:port: bytes both ways, nothing added."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def accept(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(host, port)
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


def production(make_settings: Callable[..., Settings], inbox: Inbox, **extra: Any) -> Settings:
    return make_settings(env="production", secret_key=SecretStr(STRONG), scan_disabled=True,
                         smtp_url=SecretStr(inbox.url), **extra)  # fmt: skip


@pytest.mark.parametrize("ops_token", [None, OPS])
async def test_operator_routes_are_shut_through_a_same_host_relay(
    aiohttp_server: Callable[..., Any], make_settings: Callable[..., Settings], inbox: Inbox,
    ops_token: str | None,
) -> None:  # fmt: skip
    token = SecretStr(ops_token) if ops_token else None
    server = await aiohttp_server(create_app(production(make_settings, inbox, ops_token=token),
                                             worker=True))  # fmt: skip
    async with relay(server.host, server.port) as url, aiohttp.ClientSession(url) as http:
        for method, path in (("GET", "/metrics"), ("GET", "/api/v1/ops/jobs/mail-test:x")):
            async with http.request(method, path) as answer:
                assert answer.status in (401, 403), (path, answer.status)
                assert answer.content_type == PROBLEM
        # the open mail relay of the audit: anyone could send mail to any address
        async with http.post("/api/v1/ops/mail/test", json={"to": "victim@example.org"}) as sent:
            assert sent.status == (403 if ops_token is None else 401)
        async with http.get("/api/v1/health") as health:
            assert set(await health.json(content_type=None)) == {"status"}  # no details
        if ops_token is not None:  # the token holder, through the same relay, is served
            signed = {"Authorization": f"Bearer {ops_token}"}
            async with http.post("/api/v1/ops/mail/test", json={"to": "ops@example.org"},
                                 headers=signed) as sent:  # fmt: skip
                assert sent.status == 202
            assert [m["To"] for m in await inbox.wait_for(1)] == ["ops@example.org"]
