"""btecctl security check: an audit of a deployment, after Django's `check --deploy`. It
checks the loaded settings always (btecctl/findings.py), and with `--url` what a running
server answers an anonymous client, as anyone on the internet could ask it: its security
headers, what it exposes without a token, its errors, HEAD, TRACE, CORS and rate limits.

btec sets no cookies (clients sign in with bearer tokens), so there is no cookie check: nothing
like Django's SESSION_COOKIE_SECURE has anything to look at.

The requests go out through aiohttp's client, each bounded by REQUEST_SECONDS and all of them
by ALL_SECONDS; two are written as bytes on a socket (asyncio streams), which no client library
sends as they must go: a HEAD pipelined with a GET on one connection (a server that answers a
HEAD with a body shifts every later answer on the connection) and a TRACE. A proxy that blocks
/api/v1/ops should answer 403: any answer but 401 or 403 there is reported as an exposure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import SplitResult, urlsplit

import typer
from rich.table import Table
from rich.text import Text

from btecctl.context import session
from btecctl.findings import RANK, Finding, secret_values, settings_findings
from btecctl.health import base_url
from btecctl.output import (
    FAILED,
    UNREACHABLE,
    USAGE,
    JsonOpt,
    err_console,
    fail,
    out_console,
    report,
)
from server.domain.text import describe

if TYPE_CHECKING:
    import aiohttp

UrlOpt = Annotated[
    str | None,
    typer.Option(
        metavar="URL",
        help="Also check the server at this base URL, as an anonymous client sees it. "
        "Default: the settings only.",
    ),
]
REQUEST_SECONDS = 4.0
ALL_SECONDS = 10.0
BODY_BYTES = 65536  # read of an answer's body: enough for a problem or a health document
AGENT = "btecctl-security-check"
EVIL = "https://evil.example"
LIVE, NOPE, LOGIN = "/api/v1/health/live", "/api/v1/nope", "/api/v1/auth/login"
MALFORMED = b'{"email":'
# What a body shows of Python's internals: a traceback, or an exception's class name.
LEAK = re.compile(
    r"(Traceback|File \")|\b([A-Z]\w*(?:Error|Exception)|KeyboardInterrupt|StopIteration|"
    r"StopAsyncIteration|SystemExit|GeneratorExit)\b"
)
STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def check(ctx: typer.Context, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Check the deployment's security settings, and with --url a running server's answers:
    exit 1 if any finding is an error, else 0; 2 for a bad --url, 3 if it does not answer.

    Each finding has a stable `id`, a `severity` (error, warning, info), a `message` and a
    `fix`; no secret's value is ever shown. `--json` prints `{"ok", "findings": [{"id",
    "severity", "message", "fix"}], "url": URL or null}`.
    The settings: settings.not_production, secrets.ops_token_unset,
    secrets.metrics_token_unset, secrets.health_token_unset, secrets.token_weak,
    secrets.reused, tls.public_url_http, proxies.trusted_too_wide, docs.ui_enabled,
    scan.disabled, smtp.cleartext, cors.dev_defaults, cors.origins_insecure,
    cors.loopback_origin. The server: headers.missing, headers.server_banner,
    exposure.metrics, exposure.ops, exposure.health_details, exposure.docs_ui,
    http.head_body, http.trace, errors.leak, cors.wildcard, ratelimit.absent."""
    from server.platform.localsecrets import LOCAL

    with session(ctx, as_json) as s:
        base = _target(url, as_json) if url is not None else None
        effective = {f"BTEC_{name.upper()}": s.secret(name) for name in LOCAL}
        secrets = secret_values(
            s.settings, {k: v.get_secret_value() if v else None for k, v in effective.items()}
        )
        found = settings_findings(s.settings, secrets)
        if base is not None:
            found += _against(base, s.settings.env == "production", as_json)
    found.sort(key=lambda f: RANK[f.severity])
    ok = not any(f.severity == "error" for f in found)
    data = {"ok": ok, "findings": [f.as_json() for f in found], "url": base}
    report(as_json, data, lambda: _print(found, base))
    if not ok:
        raise typer.Exit(FAILED)


def _target(url: str, as_json: bool) -> str:
    """The base URL to check, or exit 2: not http(s), or carrying credentials (the checks are
    an anonymous client's, and the password would show in messages)."""
    try:
        credentials = "@" in urlsplit(url).netloc
    except ValueError:
        credentials = False  # base_url says what is wrong
    if credentials:
        fail("--url must not carry credentials (user:password@): the checks ask anonymously",
             code=USAGE, as_json=as_json)  # fmt: skip
    return base_url(url, as_json)


def _against(base: str, production: bool, as_json: bool) -> list[Finding]:
    """What the server at `base` gets wrong; exit 3 if it does not answer."""
    try:
        seen = asyncio.run(_ask(base))
    except Unreachable as exc:
        fail(f"no server answered at {base}: {exc}", code=UNREACHABLE, as_json=as_json, url=base)
    seen.production = production
    return [finding for judge in JUDGES for finding in judge(seen)]


class Unreachable(Exception):
    """A request got no answer: the server is down, or not all there."""


@dataclass(frozen=True)
class Answer:
    """One answer of the server: to which request, its status, headers and (start of) body."""

    asked: str  # "GET /metrics"
    status: int
    headers: Mapping[str, str]  # case-insensitive (aiohttp's CIMultiDictProxy)
    body: bytes = b""


@dataclass
class Seen:
    """Every answer the checks judge, and what they need to know besides."""

    https: bool
    live: Answer
    nope: Answer
    metrics: Answer
    ops: Answer
    health: Answer
    docs: Answer
    login: Answer
    preflight: Answer
    after_head: bytes  # what followed the HEAD's headers on the connection
    trace: int | None  # TRACE's status; None if it got none
    production: bool = False


async def _ask(base: str) -> Seen:
    import aiohttp

    target = urlsplit(base)
    timeout = aiohttp.ClientTimeout(total=REQUEST_SECONDS)
    try:
        async with (
            asyncio.timeout(ALL_SECONDS),
            aiohttp.ClientSession(
                timeout=timeout, headers={"User-Agent": AGENT}, cookie_jar=aiohttp.DummyCookieJar()
            ) as http,
        ):
            ask = _asker(http, base)
            live = await ask("GET", LIVE)  # first alone: a server that is not there says so once
            results = await asyncio.gather(
                ask("GET", NOPE), ask("GET", "/metrics"), ask("GET", "/api/v1/ops/jobs/check"),
                ask("GET", "/api/v1/health", {"Accept": "application/health+json"}),
                ask("GET", "/api/docs"),
                ask("POST", LOGIN, {"Content-Type": "application/json", "Origin": EVIL},
                    MALFORMED),
                ask("OPTIONS", LOGIN, {"Origin": EVIL, "Access-Control-Request-Method": "POST"}),
                _after_head(target), _trace(target),
                return_exceptions=True,
            )  # fmt: skip
    except TimeoutError:
        raise Unreachable(f"the checks took longer than {ALL_SECONDS:g} s") from None
    nope, metrics, ops, health, docs, login, preflight, after_head, trace = _each(results)
    return Seen(target.scheme == "https", live, nope, metrics, ops, health, docs, login,
                preflight, after_head, trace)  # fmt: skip


def _each(results: list[Any]) -> list[Any]:
    """What gather(..., return_exceptions=True) returned, or the first exception it met."""
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def _asker(http: aiohttp.ClientSession, base: str) -> Callable[..., Any]:
    """A function that makes one request to the server and returns its Answer."""
    import aiohttp

    async def ask(method: str, path: str, headers: dict[str, str] | None = None,
                  data: bytes | None = None) -> Answer:  # fmt: skip
        asked = f"{method} {path}"
        try:
            async with http.request(method, base + path, headers=headers, data=data,
                                    allow_redirects=False) as resp:  # fmt: skip
                body = b""
                while len(body) < BODY_BYTES and (chunk := await resp.content.read(BODY_BYTES)):
                    body += chunk
                return Answer(asked, resp.status, resp.headers, body[:BODY_BYTES])
        except TimeoutError:
            raise Unreachable(f"{asked}: no answer within {REQUEST_SECONDS:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise Unreachable(f"{asked}: {describe(exc)}") from None

    return ask


def _raw_request(method: str, target: SplitResult, path: str, close: bool) -> bytes:
    lines = [f"{method} {target.path}{path} HTTP/1.1", f"Host: {target.netloc}",
             f"User-Agent: {AGENT}", *(["Connection: close"] if close else [])]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _exchange(target: SplitResult, data: bytes, enough: Callable[[bytes], bool]) -> bytes:
    """Send `data` on a connection of its own; read until `enough` of the answer is in, the
    server closes, or BODY_BYTES have come."""
    https = target.scheme == "https"
    port = target.port or (443 if https else 80)
    context = ssl.create_default_context() if https else None
    async with asyncio.timeout(REQUEST_SECONDS):
        reader, writer = await asyncio.open_connection(target.hostname, port, ssl=context)
        try:
            writer.write(data)
            await writer.drain()
            got = b""
            while not enough(got) and len(got) < BODY_BYTES:
                chunk = await reader.read(BODY_BYTES)
                if not chunk:
                    break
                got += chunk
            return got
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _after_head(target: SplitResult) -> bytes:
    """HEAD then GET of /api/v1/health/live on one connection: the bytes that follow the
    HEAD's headers, which must be the GET's status line and nothing before it."""
    data = _raw_request("HEAD", target, LIVE, False) + _raw_request("GET", target, LIVE, True)

    def enough(got: bytes) -> bool:
        end = got.find(b"\r\n\r\n")
        return end >= 0 and len(got) >= end + 4 + len(b"HTTP/")

    try:
        got = await _exchange(target, data, enough)
    except (TimeoutError, OSError) as exc:
        raise Unreachable(f"HEAD {LIVE}: {describe(exc)}") from None
    end = got.find(b"\r\n\r\n")
    if end < 0:
        raise Unreachable(f"HEAD {LIVE}: the connection closed before the answer's headers")
    return got[end + 4 :]


async def _trace(target: SplitResult) -> int | None:
    """TRACE /: its status, or None if the server closed without one (a refusal too)."""
    try:
        got = await _exchange(target, _raw_request("TRACE", target, "/", True),
                              lambda got: b"\r\n" in got)  # fmt: skip
    except (TimeoutError, OSError) as exc:
        raise Unreachable(f"TRACE /: {describe(exc)}") from None
    parts = got.split(b"\r\n", 1)[0].split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


# The judges: what the answers show -------------------------------------------------------


def _missing(answer: Answer, https: bool) -> list[str]:
    """The security headers an answer lacks."""
    headers = answer.headers
    csp = headers.get("Content-Security-Policy", "")
    return [
        name for name, there in (
            ("X-Content-Type-Options: nosniff",
             headers.get("X-Content-Type-Options", "").strip().lower() == "nosniff"),
            ("X-Frame-Options (or a CSP with frame-ancestors)",
             "X-Frame-Options" in headers or "frame-ancestors" in csp.lower()),
            ("Referrer-Policy", "Referrer-Policy" in headers),
            ("Content-Security-Policy", bool(csp)),
            ("Strict-Transport-Security", not https or "Strict-Transport-Security" in headers),
        ) if not there
    ]  # fmt: skip


def _headers(seen: Seen) -> Iterator[Finding]:
    for answer in (seen.live, seen.nope):
        missing = _missing(answer, seen.https)
        if missing:
            yield Finding(
                "headers.missing", "error",
                f"{answer.asked} answers without {', '.join(missing)}",
                "btec sends these itself (HSTS once BTEC_PUBLIC_URL is https): make the proxy "
                "pass them through, or add them there",
            )  # fmt: skip


def _banner(seen: Seen) -> Iterator[Finding]:
    named = {f"{name}: {_shown(value)}" for answer in (seen.live, seen.nope)
             for name in ("Server", "X-Powered-By")
             for value in _all(answer.headers, name)}  # fmt: skip
    if named:
        yield Finding(
            "headers.server_banner", "warning",
            f"answers name the server's software: {'; '.join(sorted(named))}",
            "drop the header at the proxy (nginx: server_tokens off, or proxy_hide_header); "
            "btec itself sends no Server header",
        )  # fmt: skip


def _exposure(seen: Seen) -> Iterator[Finding]:
    if seen.metrics.status == 200:
        yield Finding(
            "exposure.metrics", "error",
            "GET /metrics answers 200 without a token: anyone can read the server's metrics",
            "run btec with BTEC_ENV=production and BTEC_METRICS_TOKEN set, and make sure no "
            "proxy adds an Authorization header on the way in",
        )  # fmt: skip
    if seen.ops.status not in (401, 403):
        yield Finding(
            "exposure.ops", "error",
            f"{seen.ops.asked} answers {seen.ops.status} without a token, not 401 or 403",
            "BTEC_OPS_TOKEN guards /api/v1/ops: make sure no proxy adds an Authorization "
            "header, and deny /api/v1/ops at the proxy with 403 if only operators inside use it",
        )  # fmt: skip
    if _checks_shown(seen.health):
        yield Finding(
            "exposure.health_details", "error",
            "GET /api/v1/health shows its checks to an anonymous client",
            "details are for holders of BTEC_HEALTH_TOKEN or BTEC_OPS_TOKEN: make sure no proxy "
            "adds an Authorization header, and run a btec that hides them",
        )  # fmt: skip
    if seen.docs.status == 200:
        yield Finding(
            "exposure.docs_ui", "warning" if seen.production else "info",
            "GET /api/docs answers 200: Swagger UI is served"
            + ("" if seen.production else " (as it is outside production)"),
            "unset BTEC_DOCS_UI (off in production), or block /api/docs at the proxy",
        )  # fmt: skip


def _http(seen: Seen) -> Iterator[Finding]:
    if seen.after_head and not (
        seen.after_head.startswith(b"HTTP/") or b"HTTP/".startswith(seen.after_head)
    ):
        yield Finding(
            "http.head_body", "error",
            f"HEAD {LIVE} answers with body bytes after its headers: every later answer on the "
            "connection is shifted (a response desync)",
            "answer HEAD with headers only: upgrade the proxy or server that adds the body",
        )  # fmt: skip
    if seen.trace is not None and 200 <= seen.trace < 300:
        yield Finding(
            "http.trace", "error",
            f"TRACE / answers {seen.trace}: the server echoes requests back, headers included",
            "refuse TRACE at the proxy with 405 (Apache: TraceEnable off); btec answers 405",
        )  # fmt: skip


def _errors(seen: Seen) -> Iterator[Finding]:
    for answer in (seen.login, seen.nope):
        wrong = []
        kind = answer.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/problem+json":
            wrong.append(f"as {_shown(kind) or 'no Content-Type'}, not application/problem+json")
        leaked = {m[1] or m[2] for m in LEAK.finditer(answer.body.decode("utf-8", "replace"))}
        if leaked:
            wrong.append(f"with {', '.join(sorted(leaked))} in its body")
        if wrong:
            asked = f"{answer.asked} (malformed JSON)" if answer is seen.login else answer.asked
            yield Finding(
                "errors.leak", "error",
                f"{asked} answers {answer.status} {' and '.join(wrong)}",
                "let btec answer errors itself (problem+json; details go to its logs and "
                "Sentry): no proxy error pages, no debug server",
            )  # fmt: skip


def _cors(seen: Seen) -> Iterator[Finding]:
    for answer in (seen.preflight, seen.login):
        allowed = answer.headers.get("Access-Control-Allow-Origin", "").strip()
        credentials = answer.headers.get("Access-Control-Allow-Credentials", "").strip()
        if (allowed == "*" and credentials.lower() == "true") or allowed == EVIL:
            yield Finding(
                "cors.wildcard", "error",
                f"{answer.asked} from Origin {EVIL} answers Access-Control-Allow-Origin: "
                f"{_shown(allowed)}" + (" with credentials" if credentials == "true" else "")
                + ": any web site can call the API in its visitors' name",
                "btec answers CORS itself, only to the origins of BTEC_CORS_ORIGINS: remove "
                "CORS headers the proxy adds, and list only the front end's own origin",
            )  # fmt: skip


def _ratelimit(seen: Seen) -> Iterator[Finding]:
    if "RateLimit-Policy" not in seen.login.headers:
        yield Finding(
            "ratelimit.absent", "warning",
            f"POST {LOGIN} answers without RateLimit-Policy: sign-ins may not be rate-limited",
            "keep BTEC_RATELIMIT_ENABLED=true (the default), and make the proxy pass the "
            "RateLimit-Policy and RateLimit headers through",
        )  # fmt: skip


JUDGES: tuple[Callable[[Seen], Iterator[Finding]], ...] = (
    _headers, _banner, _exposure, _http, _errors, _cors, _ratelimit,
)  # fmt: skip


def _all(headers: Mapping[str, str], name: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    return list(getall(name, [])) if getall else [v for v in [headers.get(name)] if v]


def _shown(text: str) -> str:
    """What the server said, printable and short."""
    return "".join(c if c.isprintable() else "?" for c in text)[:100]


def _checks_shown(answer: Answer) -> bool:
    if answer.status not in (200, 503):
        return False
    try:
        doc = json.loads(answer.body)
    except ValueError:
        return False
    return isinstance(doc, dict) and bool(doc.get("checks"))


def _print(found: list[Finding], base: str | None) -> None:
    title = "security check of the settings" + (f" and of {base}" if base else "")
    table = Table(title=Text(title), title_justify="left")
    table.add_column("severity", no_wrap=True)
    table.add_column("id", no_wrap=True)  # what scripts and docs key on: never cut
    table.add_column("message", ratio=3, overflow="fold")
    table.add_column("fix", ratio=2, overflow="fold")
    for f in found:
        table.add_row(Text(f.severity, STYLE[f.severity]), Text(f.id), Text(f.message),
                      Text(f.fix))  # fmt: skip
    out_console.print(table)
    counts = {s: sum(f.severity == s for f in found) for s in STYLE}
    said = ", ".join(f"{n} {s}{'s' if n != 1 and s != 'info' else ''}" for s, n in counts.items())
    worst = "error" if counts["error"] else "warning" if counts["warning"] else "info"
    err_console.print(Text.assemble((said, STYLE[worst])))
