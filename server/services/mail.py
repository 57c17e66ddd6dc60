"""Mail messages: templates rendered as plain text and HTML (user data escaped in HTML)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.header import Header
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import EmailPolicy, Policy
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "mail"


class _Subject(UnstructuredHeader, BaseHeader):
    """A Subject folded by the stdlib's RFC 2047 encoder (email.header), which keeps the
    spaces between words inside its encoded words. The modern folder, which aiosmtplib uses
    whatever the message's policy, drops the space where a fold falls between two encoded
    words (3.11: "Ünit Café Zoë" came out as "ÜnitCaféZoë", after a doubled space)."""

    max_count = 1

    def fold(self, *, policy: Policy) -> str:
        value = Header(str(self), header_name=self.name, maxlinelen=policy.max_line_length)
        return f"{self.name}: {value.encode(linesep=policy.linesep)}{policy.linesep}"


def _policy() -> EmailPolicy[EmailMessage]:
    registry = HeaderRegistry()
    registry.map_to_type("subject", _Subject)
    return default_policy.clone(header_factory=registry)


POLICY = _policy()


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def templates() -> list[str]:
    return sorted(p.name.removesuffix(".subject.txt") for p in TEMPLATES.glob("*.subject.txt"))


def render(template: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of a template; HTML escapes every value."""
    if template not in templates():
        raise ValueError(f"no mail template {template!r}")
    env = _environment()
    subject = env.get_template(f"{template}.subject.txt").render(context).strip()
    text = env.get_template(f"{template}.txt").render(context)
    html = env.get_template(f"{template}.html").render(context)
    return " ".join(subject.split()), text, html


def build(
    *, template: str, to: str, sender: str, context: dict[str, Any], request_id: str | None
) -> EmailMessage:
    """A multipart/alternative message ready for SMTP."""
    subject, text, html = render(template, {**context, "to": to})
    message = EmailMessage(policy=POLICY)
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = Address(addr_spec=to)
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].strip("> "))
    message["Auto-Submitted"] = "auto-generated"
    if request_id:
        message["X-Request-ID"] = request_id
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message
