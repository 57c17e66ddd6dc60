"""The links btec mails: a base (the front end's BTEC_FRONTEND_URL, else the API's own URL,
where btec serves minimal pages of its own) and a configurable path per page. Tokens ride in
the query string, percent-encoded."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from server.config.settings import Settings


@dataclass(frozen=True)
class Links:
    base: str
    verify: str
    reset: str
    email_change: str
    submission: str

    @classmethod
    def of(cls, settings: Settings) -> Links:
        return cls(
            base=settings.links_base,
            verify=settings.frontend_verify_path,
            reset=settings.frontend_reset_path,
            email_change=settings.frontend_email_change_path,
            submission=settings.frontend_submission_path,
        )

    def verify_email(self, token: str) -> str:
        return f"{self.base}{self.verify}?token={quote(token)}"

    def reset_password(self, token: str) -> str:
        return f"{self.base}{self.reset}?token={quote(token)}"

    def confirm_email_change(self, token: str) -> str:
        return f"{self.base}{self.email_change}?token={quote(token)}"

    def submission_page(self, submission_id: int) -> str:
        return self.base + self.submission.replace("{id}", str(submission_id))
