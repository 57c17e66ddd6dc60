"""The task catalogue: every job btec runs, with its timeout, retries and idempotency."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from saq import Job

from server.config.settings import Settings
from server.jobs.queue import Context, JobFunction, JobSpec, PermanentError
from server.jobs.worker import once
from server.platform.clamd import Clamd
from server.platform.mail import Mailer
from server.services import files as files_service
from server.services import mail as mail_service
from server.services import passwords as password_service
from server.services import submissions as submissions_service
from server.services import verification as verification_service
from server.services.links import Links

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
            context={"service": settings.service_id, **context},
            request_id=job.meta.get("request_id"),
        )
    except (ValueError, TypeError, LookupError) as exc:  # bad address or template data
        raise PermanentError(f"cannot build the message: {type(exc).__name__}") from None
    reply = await once(ctx, mailer.send(message))
    return {"to": to, "message_id": str(message["Message-ID"]), "smtp_reply": reply}


async def send_password_reset(ctx: Context, *, email: str) -> dict[str, Any]:
    """Make a reset token for the account using `email`, if one does, and mail its link.
    The token is made here, not by the request, so it never sits in the job's arguments."""
    settings: Settings = ctx["settings"]
    pool = ctx["pool"]
    context = await password_service.issue_reset(
        db=pool.acquire, email=email, minutes=settings.reset_token_minutes,
        links=Links.of(settings),
    )  # fmt: skip
    return await _mail_link(ctx, "password-reset", context)


async def send_verification(ctx: Context, *, user_id: int) -> dict[str, Any]:
    """Make a verification token for the user's current address and mail its link (unless
    the address is verified already). The token never sits in the job's arguments."""
    settings: Settings = ctx["settings"]
    context = await verification_service.issue(
        db=ctx["pool"].acquire, user_id=user_id, links=Links.of(settings)
    )
    return await _mail_link(ctx, "verify-email", context)


async def send_email_change(ctx: Context, *, user_id: int, email: str) -> dict[str, Any]:
    """Make a token for the new address the user asked for and mail its link there (unless
    the address was taken meanwhile). The token never sits in the job's arguments."""
    settings: Settings = ctx["settings"]
    context = await verification_service.issue(
        db=ctx["pool"].acquire, user_id=user_id, links=Links.of(settings), new_email=email
    )
    return await _mail_link(ctx, "email-change", context)


async def _mail_link(ctx: Context, template: str, context: dict[str, Any] | None) -> dict[str, Any]:
    """Send a message carrying a link made in this job (nothing when `context` is None). The
    result is the same either way: a job's result must not tell whether an address has an
    account (job keys are derived from the address)."""
    if context is None:
        return {}
    settings: Settings = ctx["settings"]
    message = mail_service.build(
        template=template, to=context["to"], sender=settings.smtp_from,
        context={**context, "service": settings.service_id},
        request_id=ctx["job"].meta.get("request_id"),
    )  # fmt: skip
    await once(ctx, ctx["mailer"].send(message))
    return {}


async def ping(ctx: Context, *, seconds: float = 0.0) -> dict[str, Any]:
    """A no-op job (optionally taking `seconds`): proves workers take and finish jobs."""
    if seconds:
        await asyncio.sleep(min(seconds, MAX_PING_SECONDS))
    worker = ctx.get("worker")
    return {"pong": time.time(), "worker": str(getattr(worker, "id", ""))}


def mail_spec(function: JobFunction, settings: Settings, margin: int = 10) -> JobSpec:
    """A job that sends mail: mail's retries and an idempotency key (for a link mail, a key
    per recipient and window, so that repeats within the window are the resend cooldown);
    `margin` seconds beyond two SMTP timeouts for its own work."""
    return JobSpec(
        function,
        timeout=int(settings.smtp_timeout * 2) + margin,
        retries=settings.mail_retries,
        retry_delay=settings.mail_retry_delay,
        max_delay=600.0,
        idempotent=True,
    )


async def scan_file(ctx: Context, *, file_id: str) -> dict[str, Any]:
    """Scan an uploaded file with clamd and record the verdict; an infected file goes to
    quarantine and its owner is told by mail. Scanner failures are retried; after the last
    try the file is `error`, never `clean`."""
    settings: Settings = ctx["settings"]
    job: Job = ctx["job"]
    if settings.clamd_url is None:
        raise PermanentError("no scanner is configured (BTEC_CLAMD_URL)")
    result = await files_service.scan(
        db=ctx["pool"].acquire,
        storage=ctx["storage"],
        scanner=Clamd(settings.clamd_url, settings.clamd_timeout),
        file_id=uuid.UUID(file_id),
        last_try=job.attempts >= job.retries,
    )
    if "status" in result and ctx.get("metrics") is not None:
        ctx["metrics"].scans.labels(result["status"]).inc()
    notify = result.pop("notify", None)
    if notify is not None:  # its own job: a mail failure retries the mail, not the scan
        to = notify.pop("to")
        await ctx["jobs"].enqueue(
            "send_email",
            key=f"file-quarantined:{file_id}",
            template="file-quarantined",
            to=to,
            context={**notify, "service": settings.service_id},
        )
        result["owner_told"] = True
    return result


async def check_similarity(
    ctx: Context, *, submission_id: int, resubmissions: int
) -> dict[str, Any]:
    """Compare a new (or resubmitted) answer with the others to its assignment and flag the
    pairs over BTEC_SIMILARITY_THRESHOLD for the assessors."""
    settings: Settings = ctx["settings"]
    result = await submissions_service.check_similarity(
        db=ctx["pool"].acquire,
        submission_id=submission_id,
        resubmissions=resubmissions,
        threshold=settings.similarity_threshold,
        min_words=settings.similarity_min_words,
    )
    if "skipped" not in result and ctx.get("metrics") is not None:
        outcome = "skipped" if result["too_short"] else "flagged" if result["flagged"] else "clear"
        ctx["metrics"].similarity_checks.labels(outcome).inc()
    return result


def specs(settings: Settings) -> list[JobSpec]:
    return [
        mail_spec(send_email, settings, margin=5),
        mail_spec(send_password_reset, settings),  # keyed per address and 2 minutes
        mail_spec(send_verification, settings),  # keyed per user and 2 minutes
        mail_spec(send_email_change, settings),  # keyed per user, address and 2 minutes
        # Two tries: a ping whose worker died mid-run is run again, as every other job is.
        JobSpec(ping, timeout=int(MAX_PING_SECONDS) + 5, retries=2, retry_delay=1.0),
        JobSpec(check_similarity, timeout=300, retries=5, retry_delay=5.0, max_delay=300.0),
        JobSpec(
            scan_file,
            timeout=int(settings.clamd_timeout) + 30,
            retries=settings.scan_retries,
            retry_delay=5.0,
            max_delay=300.0,
        ),
    ]
