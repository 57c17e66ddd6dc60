"""btec's own pages for the links it mails (verify an address, confirm a new one, choose a new
password), served where no front end is configured (BTEC_FRONTEND_URL unset), as Keycloak and
django-allauth serve theirs. Each is plain HTML with one same-origin script and stylesheet (no
third-party assets, a strict CSP): the script POSTs the link's token to the API endpoint a
front end would call, and shows the API's answer, problem details and field errors included.

The pages sit at the paths the mailed links use (BTEC_FRONTEND_*_PATH), so a deployment that
adds a front end only sets BTEC_FRONTEND_URL and these stop being served.
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from server.config.settings import Settings
from server.http.guard import public
from server.http.responses import NO_STORE

HERE = Path(__file__).resolve().parents[2] / "templates" / "pages"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
CONFIRM_FORM = '<form id="form" data-done="{done}"><button type="submit">{button}</button></form>'
RESET_FORM = (
    '<form id="form" data-done="{done}">'
    '<label>New password <input name="password" type="password" autocomplete="new-password" '
    'minlength="8" maxlength="1024" required></label>'
    '<label>The same again <input name="again" type="password" autocomplete="new-password" '
    'minlength="8" maxlength="1024" required></label>'
    '<button type="submit">{button}</button></form>'
)


@dataclass(frozen=True)
class Page:
    title: str
    intro: str
    form: str
    button: str
    done: str


PAGES = {
    "verify-email": Page(
        "Confirm your email address",
        "Confirm that this address is yours to finish setting up your account.",
        CONFIRM_FORM, "Confirm my address",
        "Your address is confirmed. You can close this page and sign in.",
    ),
    "confirm-email-change": Page(
        "Confirm your new email address",
        "Confirm that your account should use this new address from now on.",
        CONFIRM_FORM, "Use this address",
        "Your new address is confirmed; sign in with it from now on.",
    ),
    "reset-password": Page(
        "Choose a new password",
        "Choose a password of at least 8 characters. Every device signed in to your account "
        "will be signed out.",
        RESET_FORM, "Set my password",
        "Your password is changed. Sign in with it now.",
    ),
}  # fmt: skip
ASSETS = {"pages.js": "text/javascript", "pages.css": "text/css"}


def add_pages(app: web.Application, settings: Settings) -> None:
    """Serve the pages at the mailed paths, unless a front end serves them."""
    if settings.frontend_url is not None:
        return
    paths = {
        "verify-email": settings.frontend_verify_path,
        "confirm-email-change": settings.frontend_email_change_path,
        "reset-password": settings.frontend_reset_path,
    }
    for key, path in paths.items():
        app.router.add_get(path, _page_handler(key, settings.service_id), name=f"page_{key}")
    for name in ASSETS:
        app.router.add_get(f"/pages/{name}", _asset_handler(name), name=f"page_asset_{name}")


def _page_handler(key: str, service: str) -> Handler:
    @public
    async def page(request: web.Request) -> web.Response:
        return web.Response(
            text=render(key, service), content_type="text/html", charset="utf-8",
            headers={"Content-Security-Policy": PAGE_CSP, **NO_STORE},
        )  # fmt: skip

    return page


def _asset_handler(name: str) -> Handler:
    @public
    async def asset(request: web.Request) -> web.Response:
        return web.Response(
            text=_read(name), content_type=ASSETS[name], charset="utf-8",
            headers={"Cache-Control": "no-cache", "Content-Security-Policy": PAGE_CSP},
        )  # fmt: skip

    return asset


def render(key: str, service: str) -> str:
    page = PAGES[key]
    form = page.form.format(done=html.escape(page.done), button=html.escape(page.button))
    return _read("page.html").format(
        title=html.escape(page.title), service=html.escape(service), page=key,
        intro=html.escape(page.intro), form=form,
    )  # fmt: skip


@functools.cache
def _read(name: str) -> str:
    """A file of the pages, read once, on first use (never at import)."""
    return (HERE / name).read_text()
