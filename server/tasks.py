"""The task catalogue: every job btec runs, with its timeout, retries and idempotency."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from saq import Job

from server.infra.mail import Mailer
from server.infra.tasks import Context, PermanentError, TaskSpec, once
from server.services import mail as mail_service
from server.settings import Settings

MAX_PING_SECONDS = 300.0


async def send_email(
    ctx: Context, *, template: str, to: str, context: dict[str, Any]
) -> dict[str, Any]:
    """Render a template and hand the message to the SMTP server."""
    job: Job = ctx["job"]
    settings: Settings = ctx["settings"]
    mailer: Mailer = ctx["mailer"]
    try:
        message = mail_service.build(
            template=template,
            to=to,
            sender=settings.smtp_from,
            context=context,
            request_id=job.meta.get("request_id"),
        )
    except (ValueError, TypeError, LookupError) as exc:  # bad address or template data
        raise PermanentError(f"cannot build the message: {type(exc).__name__}") from None
    reply = await once(ctx, mailer.send(message))
    return {"to": to, "message_id": str(message["Message-ID"]), "smtp_reply": reply}


async def ping(ctx: Context, *, seconds: float = 0.0) -> dict[str, Any]:
    """A no-op job (optionally taking `seconds`): proves workers take and finish jobs."""
    if seconds:
        await asyncio.sleep(min(seconds, MAX_PING_SECONDS))
    worker = ctx.get("worker")
    return {"pong": time.time(), "worker": str(getattr(worker, "id", ""))}


def specs(settings: Settings) -> list[TaskSpec]:
    return [
        TaskSpec(
            send_email,
            timeout=int(settings.smtp_timeout * 2) + 5,
            retries=settings.mail_retries,
            retry_delay=settings.mail_retry_delay,
            max_delay=600.0,
            idempotent=True,
        ),
        TaskSpec(ping, timeout=int(MAX_PING_SECONDS) + 5, retries=1, retry_delay=1.0),
    ]
