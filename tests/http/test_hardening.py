"""What an anonymous client can send that no well-behaved one would: bodies nested deep, huge
numbers, NUL and text that is not UTF-8, tokens that are not text, HEAD on a streamed export,
a body cut short. Each gets a 4xx problem with a stable code, never a 500, and the server
goes on serving."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.app import create_app
from server.config.settings import SETTINGS, Settings
from server.http.parsing import MAX_DEPTH, MAX_VALUES
from tests.support.accounts import CHEAP, CHEAP_ENV, PASSWORD, make_admin, session_of
from tests.support.env import cli_env, free_port
from tests.support.problems import places, problem
from tests.support.processes import Served
from tests.support.rawhttp import exchange, request, status_of
from tests.support.uploads import MULTIPART, multipart, part
from tests.support.wait import eventually

LOGIN = "/api/v1/auth/login"


@pytest.fixture
async def http(aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]) -> Any:
    return await aiohttp_client(create_app(make_settings(**CHEAP)))


async def post_raw(http: Any, body: bytes, path: str = LOGIN) -> Any:
    return await http.post(path, data=body, headers={"Content-Type": "application/json"})


def nested(depth: int) -> bytes:
    return b'{"email": ' + b"[" * depth + b"]" * depth + b', "password": "x"}'


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 100_000])
async def test_deep_nesting_is_400(http: Any, depth: int) -> None:
    await problem(await post_raw(http, nested(depth)), 400, "body_too_complex")


async def test_nesting_within_the_limit_reaches_the_schema(http: Any) -> None:
    await problem(await post_raw(http, nested(MAX_DEPTH - 2)), 422, "validation_failed")


@pytest.mark.parametrize(
    "number", ["9" * 5_000, "-" + "9" * 5_000, "9" * 20, str(2**63), "1" + "0" * 4_400]
)
async def test_huge_integers_are_400(http: Any, number: str) -> None:
    body = b'{"email": "a@example.org", "password": "x", "n": ' + number.encode() + b"}"
    found = await problem(await post_raw(http, body), 400, "body_too_complex")
    assert number not in found["detail"]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"email": "a\u0000@example.org", "password": "x"}, "#/email"),
        ({"email": "a@example.org", "password": "x\u0000y"}, "#/password"),
        ({"email": "a@example.org", "password": "x", "k\u0000": 1}, "#/k%00"),
    ],
)
async def test_nul_in_a_string_is_422(http: Any, body: dict[str, Any], pointer: str) -> None:
    found = await problem(await http.post(LOGIN, json=body), 422, "validation_failed")
    assert places(found) == [pointer]


async def test_a_lone_surrogate_is_422(http: Any) -> None:
    body = b'{"email": "\\ud800@example.org", "password": "x"}'
    await problem(await post_raw(http, body), 422, "validation_failed")


@pytest.mark.parametrize(
    "body", [b'{"email": "\xff\xfe@example.org", "password": "x"}', b"\xc3\x28", b"\xed\xa0\x80"]
)
async def test_invalid_utf8_is_400(http: Any, body: bytes) -> None:
    await problem(await post_raw(http, body), 400, "malformed_body")


async def test_nul_in_the_query_string_is_422(http: Any) -> None:
    found = await problem(await http.get("/api/v1/units?q=a%00b"), 422, "validation_failed")
    assert places(found) == ["query:q"]


async def test_a_token_that_is_not_ascii_is_401_and_rate_limited(http: Any) -> None:
    """PyJWT raised on such a token before the limiter ran: 500s that bypassed the limits."""
    raw = request("GET", "/api/v1/users/me", "Authorization: Bearer ")
    raw = raw.replace(b"Bearer ", b"Bearer \xff\xfe.\xc3\x28.abc")
    answer = await exchange(http.server, raw)
    assert status_of(answer) == 401
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"RateLimit-Policy" in head
    assert json.loads(body)["code"] == "invalid_token"


@pytest.mark.parametrize(
    "body",
    [b"[" + b",".join([b"{}"] * (MAX_VALUES + 1)) + b"]",
     b"[" + b",".join([b"7"] * (10 * MAX_VALUES + 1)) + b"]",
     b"[" + b",".join([b"7"] * (MAX_VALUES + 1)) + b"]"],
)  # fmt: skip
async def test_too_many_values_are_400(http: Any, body: bytes) -> None:
    """The decoder's work grows with the objects it makes: a body holding more values than
    any request needs is refused (its cost: perf/hardening_bench.py)."""
    await problem(await post_raw(http, body), 400, "body_too_complex")
    assert (await http.get("/api/v1/health/live")).status == 200


async def test_a_long_answer_with_many_commas_is_still_taken(http: Any) -> None:
    """The pre-parse count is generous: prose with thousands of commas is not refused for
    them (it reaches the schema, which answers for the missing password)."""
    essay = "word, " * 15_000
    found = await problem(await http.post(LOGIN, json={"email": essay}), 422,
                          "validation_failed")  # fmt: skip
    assert "password" in json.dumps(found["errors"])


async def test_head_on_the_grades_export_sends_headers_only(
    http: Any, acli: Callable[..., Any]
) -> None:
    """A body after a HEAD's headers would be read by a proxy as the next response: the
    second pipelined request's answer must follow the first's headers at once."""
    await make_admin(acli, http.app[SETTINGS], "ada@example.org")
    admin = await session_of(http, "ada@example.org")
    body = {"code": "U1", "title": "Programming", "level": 3, "credits": 60}
    unit = await http.post("/api/v1/units", json=body, headers=admin)
    assert unit.status == 201, await unit.text()
    made = await http.post("/api/v1/assignments", headers=admin, json={
        "unit_id": (await unit.json())["id"], "title": "Classes", "brief": "Write classes.",
        "opens_at": "2026-01-01T00:00:00+00:00", "deadline": "2027-01-01T00:00:00+00:00",
        "criteria": [{"code": "P1", "description": "Explain."}],
        "assessor_ids": [(await (await http.get("/api/v1/users/me", headers=admin)).json())["id"]],
    })  # fmt: skip
    assert made.status == 201, await made.text()
    path = f"/api/v1/assignments/{(await made.json())['id']}/grades.csv"
    auth = f"Authorization: {admin['Authorization']}"
    raw = request("HEAD", path, auth, close=False) + request("GET", "/api/v1/health/live")
    answer = await exchange(http.server, raw)
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"text/csv" in head
    assert rest.startswith(b"HTTP/1.1 200"), rest[:80]
    got = await http.get(path, headers=admin)
    assert got.status == 200
    assert (await got.read()).startswith("\ufeff".encode())


async def test_a_body_cut_short_is_not_a_500(http: Any, logs: Any) -> None:
    """A client that announces 1000 bytes, sends 30 and closes: logged as the client's
    going (499, nginx's code for it), not as an unexpected error that would reach Sentry."""
    raw = request("POST", LOGIN, "Content-Type: application/json", "Content-Length: 1000")
    _, writer = await asyncio.open_connection(http.server.host, http.server.port)
    writer.write(raw + b'{"email": "a@example.org", "pa')
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    def finished() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in logs.getvalue().splitlines() if line[:1] == "{"]
        return [e for e in lines if e.get("event") in ("request", "unhandled_exception")]

    events = await eventually(finished, bool, message="the cut request is logged")
    assert [(e["event"], e.get("status")) for e in events] == [("request", 499)]
    assert (await http.get("/api/v1/health/live")).status == 200


def test_a_body_cut_short_is_not_a_500_in_btecctl_serve(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """As `btecctl serve` runs (no handler cancellation, unlike the test server): the read
    of the body fails, and that too is the client's going."""
    env = cli_env(make_settings(data_dir=tmp_path / "var"))
    served = Served(tmp_path / "var", free_port(), **env)
    served.wait_ready()
    try:
        raw = request("POST", LOGIN, "Content-Type: application/json", "Content-Length: 1000")
        with socket.create_connection(("127.0.0.1", served.port)) as sock:
            sock.sendall(raw + b'{"email": "a@example.org", "pa')
        assert served.get("/api/v1/health/live") == 200
    finally:
        assert served.stop() == 0
    logins = [e for e in served.lines if e.get("path") == LOGIN]
    assert [(e["event"], e.get("status")) for e in logins] == [
        ("client_closed_request", None),
        ("request", 499),
    ]
    assert not [e for e in served.lines if e.get("event") == "unhandled_exception"]


@pytest.fixture
def served(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Served]:
    """`btecctl serve` as operators run it (its own runner, not the test server), with a
    header timeout of 2 s."""
    env = cli_env(make_settings(data_dir=tmp_path / "var"))
    running = Served(tmp_path / "var", free_port(), **env, BTEC_HEADER_TIMEOUT="2")
    running.wait_ready()
    yield running
    if running.proc.returncode is None:  # not stopped by the test itself
        assert running.stop() == 0


async def test_a_slowloris_client_is_cut_off_while_others_are_served(served: Served) -> None:
    """Headers trickled one byte a second: the connection is closed once the header timeout
    has passed since it opened, though bytes kept coming; normal requests meanwhile pass."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    started = time.monotonic()
    trickle = b"GET /api/v1/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100

    async def drip() -> None:
        for byte in trickle:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(1)  # the client's pace, not a wait for the server

    dripping = asyncio.create_task(drip())
    try:
        others = [await asyncio.to_thread(served.get, "/api/v1/health/live") for _ in range(3)]
        assert others == [200, 200, 200]
        closed = await asyncio.wait_for(reader.read(), timeout=30)  # EOF when the server cuts
        elapsed = time.monotonic() - started
    finally:
        dripping.cancel()
        writer.close()
    assert closed == b""  # cut off with no answer: the request never began
    assert 1.5 < elapsed < 10, elapsed
    assert await asyncio.to_thread(served.get, "/api/v1/health/live") == 200


async def test_a_request_aiohttp_cannot_parse_is_a_problem_with_security_headers(
    served: Served,
) -> None:
    """aiohttp answers these itself, outside the app: still problem+json, the security
    headers, no Server header, and no traceback in the log."""
    server = type("Address", (), {"host": "127.0.0.1", "port": served.port})()
    for raw in (
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
    ):
        answer = await exchange(server, raw)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert status_of(answer) == 400, answer
        lines = head.lower().split(b"\r\n")
        assert b"content-type: application/problem+json" in lines
        assert b"x-content-type-options: nosniff" in lines
        assert not [line for line in lines if line.startswith(b"server:")]
        assert json.loads(body)["code"] == "bad_request"
    assert served.stop() == 0
    assert not [e for e in served.lines if "Traceback" in json.dumps(e)]
    assert [e["event"] for e in served.lines if e.get("logger") == "btec.http"].count(
        "http_protocol_error"
    ) == 3


async def test_a_body_that_stalls_is_408(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    http = await aiohttp_client(create_app(make_settings(**CHEAP, body_timeout=1)))
    raw = request("POST", LOGIN, "Content-Type: application/json", "Content-Length: 100")
    reader, writer = await asyncio.open_connection(http.server.host, http.server.port)
    try:
        writer.write(raw + b'{"email": ')
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
    assert status_of(answer) == 408
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["code"] == "request_timeout"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/units", {"code": 5}),
        ("PATCH", "/api/v1/users/1", {"is_active": "maybe", "role": "king"}),
        ("PUT", "/api/v1/assignments/1/submission", {"answer": 7}),
        ("GET", "/api/v1/submissions?limit=0", None),
    ],
)
async def test_authentication_comes_before_validation(
    http: Any, method: str, path: str, body: Any
) -> None:
    """An anonymous caller learns nothing of a route's input rules: 401, never 422."""
    await problem(await http.request(method, path, json=body), 401, "unauthorized")


async def test_an_upload_cut_short_is_not_a_500_and_leaves_no_file(
    make_settings: Callable[..., Settings], tmp_path: Path, acli: Callable[..., Any]
) -> None:
    """`btecctl serve` as deployed: a client that announces 1 MB of upload, sends 100 KB and
    closes is the client's going (499), not an error for Sentry, and its partial file goes."""
    settings = make_settings(**CHEAP, data_dir=tmp_path / "var")
    await make_admin(acli, settings, "ada@example.org")
    served = Served(tmp_path / "var", free_port(), **cli_env(settings, **CHEAP_ENV))
    served.wait_ready()
    try:
        sign_in = {"email": "ada@example.org", "password": PASSWORD}
        async with aiohttp.ClientSession(served.url) as http, http.post(LOGIN, json=sign_in) as a:
            token = (await a.json())["access_token"]
        head = request("POST", "/api/v1/files", f"Authorization: Bearer {token}",
                       f"Content-Type: {MULTIPART}", "Content-Length: 1048576")  # fmt: skip
        body = multipart(part("essay.pdf", b"%PDF-1.7\n" + b"x" * 1_000_000))
        _, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(head + body[:100_000])
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        assert await asyncio.to_thread(served.get, "/api/v1/health/live") == 200
    finally:
        assert served.stop() == 0  # SIGTERM: in-flight requests finish first
    uploads = tmp_path / "var" / "uploads"
    assert not [p for p in uploads.rglob("*") if p.is_file()]  # the partial file went
    cut = [e for e in served.lines if e.get("path") == "/api/v1/files"]
    assert [(e["event"], e.get("status")) for e in cut] == [
        ("client_closed_request", None),
        ("request", 499),
    ]
    assert not [e for e in served.lines if e.get("event") == "unhandled_exception"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("application/x-www-form-urlencoded", b"email=a%40example.org&password=x"),
     ("text/plain", b'{"email": "a@example.org", "password": "x"}'),
     ("multipart/form-data; boundary=x", b"--x--\r\n")],
)  # fmt: skip
async def test_a_body_that_is_not_json_is_415(http: Any, content_type: str, body: bytes) -> None:
    answer = await http.post(LOGIN, data=body, headers={"Content-Type": content_type})
    found = await problem(answer, 415, "unsupported_media_type")
    assert content_type.split(";")[0] in found["detail"]
