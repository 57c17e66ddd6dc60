"""btec's own pages for mailed links, served while no front end is configured: plain HTML
under a strict CSP, one same-origin script and stylesheet, gone once BTEC_FRONTEND_URL is set.
A real browser follows them in tests/http/accounts/test_pages_browser.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from server.app import create_app
from server.config.settings import Settings
from tests.support.accounts import CHEAP

PAGES = ("/verify-email", "/confirm-email-change", "/reset-password")


async def test_the_pages_are_plain_html_under_a_strict_csp(http: Any) -> None:
    for path in PAGES:
        page = await http.get(path, params={"token": "abc"})
        assert page.status == 200, path
        assert page.content_type == "text/html"
        csp = page.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert page.headers["Cache-Control"] == "no-store"  # the token is in the URL
        assert page.headers["Referrer-Policy"] == "no-referrer"
        text = await page.text()
        assert '<script src="/pages/pages.js" defer></script>' in text
        assert "http" not in text.replace("http-equiv", "")  # nothing from elsewhere
        assert "abc" not in text  # the token stays in the URL, never echoed
    for asset, kind in (("/pages/pages.js", "text/javascript"), ("/pages/pages.css", "text/css")):
        answer = await http.get(asset)
        assert answer.status == 200
        assert answer.content_type == kind


async def test_the_reset_page_asks_for_the_password_twice(http: Any) -> None:
    text = await (await http.get("/reset-password", params={"token": "t"})).text()
    assert text.count('type="password"') == 2
    assert 'autocomplete="new-password"' in text


@pytest.mark.parametrize("path", PAGES)
async def test_a_front_end_replaces_the_pages(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings], path: str
) -> None:
    settings = make_settings(**CHEAP, frontend_url="https://app.college.example")
    client = await aiohttp_client(create_app(settings))
    assert (await client.get(path)).status == 404
    assert (await client.get("/pages/pages.js")).status == 404


async def test_pages_follow_the_configured_paths(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(**CHEAP, frontend_verify_path="/account/verify")
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/account/verify")).status == 200
    assert (await client.get("/verify-email")).status == 404
