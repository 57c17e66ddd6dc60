"""SIGTERM to `btecctl serve` while uploads are arriving: each upload whose body is on its way
is read to the end and answered (201, and the file is kept), and the process exits within
the drain plus the body grace, saying how long it took. Readiness fails first, and answers
in the drain close their connections; once the listener has closed, a new request on a
kept-alive connection is refused, unread, with 503 `shutting_down` and logged with its id.

The uploads are sent by hand over sockets, a slice at a time, so that SIGTERM lands while
their bodies are half sent; the rest follows over the next second, as a slow client's would.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

from tests.support.env import free_port
from tests.support.processes import Served
from tests.support.wait import eventually_sync

BOUNDARY = "drainboundary7"
CONTENT = ("The essay of an upload in flight. " * 3000).encode()  # ~100 KB of text


def _multipart(name: str) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: text/plain\r\n\r\n"
        ).encode()
        + CONTENT
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               path: str) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """One GET on a kept-alive connection: status, headers (lower-cased) and body."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers, body


async def _slow_upload(port: int, token: str, name: str, halfway: asyncio.Event,
                       go_on: asyncio.Event) -> tuple[int, bytes]:  # fmt: skip
    """Send the headers and half the body, wait for `go_on`, send the rest over a second;
    the status and body of the answer (0 when the connection closed without one)."""
    body = _multipart(name)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"POST /api/v1/files HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
    writer.write(head + body[: len(body) // 2])
    await writer.drain()
    halfway.set()
    await go_on.wait()
    rest = body[len(body) // 2 :]
    for start in range(0, len(rest), len(rest) // 10 + 1):
        writer.write(rest[start : start + len(rest) // 10 + 1])
        await writer.drain()
        await asyncio.sleep(0.1)
    answer = await reader.read()
    writer.close()
    if not answer:
        return 0, b""
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[1]


def test_uploads_in_flight_at_sigterm_are_read_and_answered(tmp_path: Path) -> None:
    drain, grace = 1.0, 10.0
    env = {"BTEC_DRAIN_SECONDS": str(drain), "BTEC_MAIL_CATCHER_PORT": "0",
           "BTEC_SCAN_DISABLED": "true"}  # fmt: skip
    served = Served(tmp_path / "var", free_port(), **env)
    served.wait_ready()
    token = served.admin_token()

    kept: dict[str, tuple[int, dict[str, str], bytes]] = {}

    async def scenario() -> list[tuple[int, bytes]]:
        halfway = [asyncio.Event() for _ in range(3)]
        go_on = asyncio.Event()
        alive = await asyncio.open_connection("127.0.0.1", served.port)
        kept["before"] = await _get(*alive, "/api/v1/health/live")
        sending = [asyncio.create_task(_slow_upload(served.port, token, f"essay{i}.txt",
                                                    halfway[i], go_on))
                   for i in range(3)]  # fmt: skip
        for event in halfway:
            await event.wait()
        served.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(
            eventually_sync,
            lambda: any(line.get("event") == "draining" for line in served.lines),
            timeout=10,
        )
        probe = await asyncio.open_connection("127.0.0.1", served.port)
        kept["ready"] = await _get(*probe, "/api/v1/health/ready")
        await asyncio.sleep(drain + 0.3)  # the rest arrives after the listener closed
        go_on.set()
        kept["after"] = await _get(*alive, "/api/v1/health/live")
        return await asyncio.gather(*sending)

    signalled = time.monotonic()
    answers = asyncio.run(scenario())
    code = served.proc.wait(60)
    exit_seconds = time.monotonic() - signalled
    print("answers:", [a[0] for a in answers], "exit after", round(exit_seconds, 2), "s")
    assert code == 0
    assert [status for status, _ in answers] == [201, 201, 201], answers
    assert exit_seconds < drain + grace
    stored = [json.loads(body)["size_bytes"] for _, body in answers]
    assert stored == [len(CONTENT)] * 3
    assert kept["before"][0] == 200
    status, headers, _ = kept["ready"]  # readiness fails first, and says so to close
    assert (status, headers["connection"]) == (503, "close")
    status, headers, body = kept["after"]
    assert (status, headers["connection"]) == (503, "close")
    assert json.loads(body)["code"] == "shutting_down"
    assert headers["retry-after"] == "1"
    refused = [line for line in served.lines if line.get("event") == "request_refused"]
    assert [line["request_id"] for line in refused] == [headers["x-request-id"]]
    stopped = next(line for line in served.lines if line.get("event") == "stopped")
    assert stopped["seconds"] < drain + grace
    assert stopped["refused"] == 1
