"""Real SMTP peers on loopback for tests: aiosmtpd that records messages (also over TLS with
AUTH), and a server that greets with 421 (service unavailable) and records when each attempt
came; and reading what arrived."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.wait import eventually


@dataclass
class Inbox:
    """Messages an aiosmtpd server accepted, parsed."""

    messages: list[EmailMessage] = field(default_factory=list)
    delay: float = 0.0  # seconds handle_DATA waits before accepting, to catch senders mid-way
    port: int = 0
    receiving: int = 0  # messages sent in full and not yet accepted (during `delay`)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.receiving += 1
        try:
            if self.delay:  # a deliberately slow peer: the sender waits for the reply
                await asyncio.sleep(self.delay)
            parsed = BytesParser(policy=default_policy).parsebytes(envelope.original_content or b"")
            assert isinstance(parsed, EmailMessage)
            self.messages.append(parsed)
        finally:
            self.receiving -= 1
        return "250 OK queued"

    async def wait_for(self, count: int, timeout: float = 15) -> list[EmailMessage]:
        """The messages, once at least `count` have arrived."""
        await eventually(lambda: len(self.messages), lambda n: n >= count, timeout=timeout,
                         message=f"{count} message(s) in the inbox")  # fmt: skip
        return self.messages

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?starttls=off"


@contextlib.asynccontextmanager
async def smtp_server(delay: float = 0.0, port: int = 0) -> AsyncIterator[Inbox]:
    """aiosmtpd in this event loop on a loopback port, a free one by default (as DESIGN.md
    prescribes)."""
    inbox = Inbox(delay=delay)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(inbox, hostname="localhost", enable_SMTPUTF8=True), "127.0.0.1", port
    )
    inbox.port = server.sockets[0].getsockname()[1]
    try:
        yield inbox
    finally:
        server.close()
        await server.wait_closed()


@dataclass
class Refusals:
    """When each connection came to a server that answers 421 and hangs up."""

    times: list[float] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?starttls=off"


@contextlib.asynccontextmanager
async def refusing_server() -> AsyncIterator[Refusals]:
    seen = Refusals()

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.times.append(time.monotonic())
        writer.write(b"421 4.3.2 Service not available, closing channel\r\n")
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    seen.port = server.sockets[0].getsockname()[1]
    try:
        yield seen
    finally:
        server.close()
        await server.wait_closed()


def text_of(message: EmailMessage) -> str:
    """The plain-text body of a message."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def parts(message: EmailMessage) -> dict[str, Any]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return {
        "text": text.get_content() if text is not None else None,
        "html": html.get_content() if html is not None else None,
    }


@dataclass
class Credentials:
    """What a TLS SMTP server saw: the logins it accepted or refused."""

    user: str
    password: str
    logins: list[str] = field(default_factory=list)

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            self.user.encode(),
            self.password.encode(),
        )
        self.logins.append(f"{mechanism}:{'ok' if ok else 'refused'}")
        return AuthResult(success=ok)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost, made with openssl, valid for a day."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@contextlib.asynccontextmanager
async def tls_smtp_server(
    directory: Path, credentials: Credentials, *, implicit: bool
) -> AsyncIterator[tuple[Inbox, str]]:
    """aiosmtpd requiring STARTTLS (or TLS from the start) and AUTH; yields the btec URL."""
    cert, key = self_signed(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    loop = asyncio.get_running_loop()

    def protocol() -> SMTP:
        return SMTP(
            # With TLS from the first byte aiosmtpd does not know the channel is secure.
            inbox, hostname="localhost", authenticator=credentials, auth_require_tls=not implicit,
            tls_context=None if implicit else context, require_starttls=not implicit,
        )  # fmt: skip

    server = await loop.create_server(protocol, "127.0.0.1", 0, ssl=context if implicit else None)
    inbox.port = server.sockets[0].getsockname()[1]
    secret = quote(credentials.password, safe="")
    auth = f"{credentials.user}:{secret}@127.0.0.1:{inbox.port}"
    scheme = "smtps" if implicit else "smtp"
    query = f"cafile={cert}" + ("" if implicit else "&starttls=required")
    try:
        yield inbox, f"{scheme}://{auth}?{query}"
    finally:
        server.close()
        await server.wait_closed()
