"""Mail delivery over SMTP (aiosmtplib), and the embedded mail catcher (aiosmtpd -> Maildir)."""

from __future__ import annotations

import asyncio
import contextlib
import mailbox
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
from aiohttp import web

from server.config.settings import Settings, SettingsError
from server.domain.text import describe
from server.observability.logging import get_logger
from server.observability.probes import Check, Observation, timed

if TYPE_CHECKING:  # the catcher's server is in the `embedded` extra, imported when it starts
    from aiosmtpd.smtp import SMTP as SMTPServer
    from aiosmtpd.smtp import Envelope, Session

MAILER: web.AppKey[Mailer] = web.AppKey("mailer")

log = get_logger("btec.mail")


class MailError(RuntimeError):
    """The message could not be handed to the SMTP server; the job retries."""


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool  # implicit TLS (smtps://, port 465)
    start_tls: bool | None  # True: required, None: if offered, False: never
    timeout: float
    cafile: str | None = None  # CA bundle for a server with a private CA

    @classmethod
    def from_url(cls, url: str, timeout: float) -> SmtpTarget:
        """smtp://[user:pass@]host[:port][?starttls=required|opportunistic|off][&timeout=S]
        [&cafile=PATH], or smtps://… for TLS from the first byte."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("BTEC_SMTP_URL must be an smtp:// or smtps:// URL")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        implicit = parts.scheme == "smtps"
        starttls = {"required": True, "opportunistic": None, "off": False}.get(
            query.get("starttls", "opportunistic")
        )
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (465 if implicit else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=implicit,
            start_tls=None if implicit else starttls,
            timeout=float(query.get("timeout", timeout)),
            cafile=query.get("cafile"),
        )


class Mailer:
    """Sends one message per call; every failure becomes a MailError the job can retry."""

    def __init__(self, target: SmtpTarget) -> None:
        self.target = target

    async def send(self, message: EmailMessage) -> str:
        t = self.target
        try:
            _, reply = await aiosmtplib.send(
                message,
                hostname=t.host,
                port=t.port,
                username=t.username,
                password=t.password,
                use_tls=t.use_tls,
                start_tls=t.start_tls,
                timeout=t.timeout,
                cert_bundle=t.cafile,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailError(describe(exc)) from None
        return reply


def smtp_url(settings: Settings) -> str:
    """Where mail goes: BTEC_SMTP_URL, or the embedded catcher on loopback."""
    if settings.smtp_url is not None:
        return settings.smtp_url.get_secret_value()
    return f"smtp://127.0.0.1:{settings.mail_catcher_port}?starttls=off"


# The embedded catcher -----------------------------------------------------------------------


def maildir_path(settings: Settings) -> Path:
    return settings.data_dir / "mail"


class MaildirHandler:
    """aiosmtpd handler: every accepted message is delivered to a Maildir."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.box = mailbox.Maildir(path, create=True)  # makes cur/, new/ and tmp/ too

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = BytesParser(policy=default_policy).parsebytes(raw)
        message["X-Btec-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        await asyncio.to_thread(self.box.add, message.as_bytes())
        return "250 Message accepted for delivery"


@contextlib.asynccontextmanager
async def mail_catcher(path: Path, port: int) -> AsyncIterator[int | None]:
    """Serve SMTP on 127.0.0.1:`port` into the Maildir at `path`; yields the port, or None when
    another process already serves it (serve and worker share one catcher)."""
    try:
        from aiosmtpd.smtp import SMTP as SMTPServer
    except ImportError:
        raise SettingsError(
            "BTEC_SMTP_URL is unset and the embedded mail catcher is not installed: set "
            "BTEC_SMTP_URL, or install btec[embedded]"
        ) from None
    handler = MaildirHandler(path)
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: SMTPServer(handler, hostname="localhost", enable_SMTPUTF8=True),
            "127.0.0.1",
            port,
        )
    except OSError:
        log.info("mail_catcher_elsewhere", port=port)
        yield None
        return
    bound = server.sockets[0].getsockname()[1]
    log.info("mail_catcher_listening", port=bound, maildir=str(path))
    try:
        yield bound
    finally:
        server.close()
        await server.wait_closed()


@dataclass(frozen=True)
class CaughtMessage:
    id: str
    date: str | None
    sender: str | None
    to: str | None
    subject: str | None
    message: Any

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "date": self.date,
            "from": self.sender,
            "to": self.to,
            "subject": self.subject,
        }


def caught(path: Path) -> list[CaughtMessage]:
    """Messages in the catcher's Maildir, oldest first."""
    if not (path / "cur").is_dir():  # nothing delivered yet
        return []
    box = mailbox.Maildir(path, factory=None, create=False)
    found = []
    for key in box.iterkeys():
        msg = BytesParser(policy=default_policy).parsebytes(box.get_bytes(key))
        found.append(CaughtMessage(key, msg["Date"], msg["From"], msg["To"], msg["Subject"], msg))
    return sorted(found, key=lambda m: _date_key(m.message))


def _date_key(message: Any) -> float:
    with contextlib.suppress(Exception):
        return float(message["Date"].datetime.timestamp())
    return 0.0


def health_check(target: SmtpTarget) -> Check:
    """The SMTP server greets and answers NOOP (through TLS when it is smtps://)."""

    async def response_time() -> Observation:
        async def greet() -> None:
            client = aiosmtplib.SMTP(
                hostname=target.host,
                port=target.port,
                use_tls=target.use_tls,
                start_tls=False,
                timeout=target.timeout,
                cert_bundle=target.cafile,
            )
            await client.connect()
            try:
                await client.noop()
            finally:
                with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                    await client.quit()

        return Observation(await timed(greet), "ms")

    return Check("smtp:responseTime", "component", response_time, critical=False)
