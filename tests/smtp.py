"""Real SMTP peers on loopback for tests: aiosmtpd that records messages, and a server that
greets with 421 (service unavailable) and records when each attempt came."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Inbox:
    """Messages an aiosmtpd server accepted, parsed."""

    messages: list[EmailMessage] = field(default_factory=list)
    delay: float = 0.0  # seconds handle_DATA waits before accepting, to catch senders mid-way
    port: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        parsed = BytesParser(policy=default_policy).parsebytes(envelope.original_content or b"")
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK queued"

    async def wait_for(self, count: int, timeout: float = 15) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.messages

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?starttls=off"


@contextlib.asynccontextmanager
async def smtp_server(delay: float = 0.0) -> AsyncIterator[Inbox]:
    """aiosmtpd in this event loop on a free loopback port (as DESIGN.md prescribes)."""
    inbox = Inbox(delay=delay)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(inbox, hostname="localhost", enable_SMTPUTF8=True), "127.0.0.1", 0
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


def parts(message: EmailMessage) -> dict[str, Any]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return {
        "text": text.get_content() if text is not None else None,
        "html": html.get_content() if html is not None else None,
    }
