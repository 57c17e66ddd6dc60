"""The mail btec sends people, each queued as a job by the use case it follows: what template,
to whom, and under which idempotency key (so a retried request or a repeat within a
cooldown window sends one message). The send_email job adds the service's name."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from server.jobs.outbox import FollowUp
from server.jobs.queue import Jobs
from server.services.links import Links

GRADE_NAMES = {"D": "Distinction", "M": "Merit", "P": "Pass", "U": "Unclassified"}


def cooldown() -> int:
    """The 2-minute window a link mail is keyed on: repeats within it send nothing more."""
    return int(time.time() // 120)


def address_key(email: str) -> str:
    """An address in a job key, without the address itself (job keys show in saq's UI)."""
    return hashlib.sha256(email.lower().encode()).hexdigest()[:16]


async def verification(jobs: Jobs, user_id: int) -> None:
    """A link to verify the account's address (made by the job, never in its arguments)."""
    await jobs.enqueue("send_verification", key=f"verify:{user_id}:{cooldown()}", user_id=user_id)


async def email_change(jobs: Jobs, user_id: int, email: str) -> None:
    """A link to the new address the user asked to move to."""
    await jobs.enqueue(
        "send_email_change", key=f"email-change:{user_id}:{address_key(email)}:{cooldown()}",
        user_id=user_id, email=email,
    )  # fmt: skip


async def email_changed(jobs: Jobs, user: dict[str, Any], old_address: str) -> None:
    """Tell the old address where the account went."""
    await jobs.enqueue(
        "send_email", key=f"email-changed:{user['id']}:{address_key(user['email'])}",
        template="email-changed", to=old_address,
        context={"name": user["full_name"], "new_email": user["email"]},
    )  # fmt: skip


async def password_reset(jobs: Jobs, email: str) -> None:
    """A reset link for the account using `email`, if one does (the job looks)."""
    await jobs.enqueue(
        "send_password_reset", key=f"password-reset:{address_key(email)}:{cooldown()}", email=email
    )


async def password_changed(jobs: Jobs, user: dict[str, Any]) -> None:
    """Tell the account its password changed (one message per change)."""
    await jobs.enqueue(
        "send_email", key=f"password-changed:{user['id']}:{user['token_version']}",
        template="password-changed", to=user["email"], context={"name": user["full_name"]},
    )  # fmt: skip


def grade_released(grade: dict[str, Any], facts: dict[str, Any], links: Links) -> FollowUp:
    """The mail that tells the student their work was graded (or regraded): a follow-up of
    the grade's transaction (server.jobs.outbox), one per grade version."""
    key = f"grade:{grade['submission_id']}:{grade['version']}"
    return FollowUp("send_email", key, {
        "template": "grade-released", "to": facts["email"],
        "context": {
            "name": facts["full_name"], "title": facts["title"], "unit_code": facts["unit_code"],
            "overall": grade["overall"], "grade_name": GRADE_NAMES[grade["overall"]],
            "criteria": grade["criteria"], "feedback": grade["feedback"],
            "version": grade["version"], "link": links.submission_page(grade["submission_id"]),
        },
    }, about={"submission_id": grade["submission_id"]})  # fmt: skip


async def test_message(jobs: Jobs, *, key: str, to: str, note: str, requested_by: str,
                       public_url: str) -> None:  # fmt: skip
    """An operator's test message through the queue and SMTP."""
    await jobs.enqueue(
        "send_email", key=key, template="test", to=to,
        context={"public_url": public_url, "requested_by": requested_by, "note": note},
    )  # fmt: skip
