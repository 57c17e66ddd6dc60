"""The API docs in a real headless Chromium, as a front-end developer first meets them:
Swagger UI renders every operation from assets the server bundles (nothing is fetched from
anywhere else), shows the sign-in flow and the problem codes, and its Authorize button takes
a bearer token with which "Try it out" calls the API on the server that served the page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from server.app import create_app
from server.config.settings import Settings
from server.http.contract import OPERATION_IDS
from tests.support.accounts import CHEAP, make_admin, token_for
from tests.support.browser import async_chromium
from tests.support.wait import eventually

ADMIN = "docs-admin@example.org"
OPERATIONS = "return document.querySelectorAll('.opblock').length"
LOADED = "return performance.getEntriesByType('resource').map(e => e.name)"
ME = "operations-users-getMe"  # Swagger UI's id: operations-<tag>-<operationId>


def authorize_and_call_me(driver: WebDriver, token: str) -> str:
    """Authorize with `token`, then try GET /api/v1/users/me: the status the page shows."""
    wait = WebDriverWait(driver, 20)
    driver.find_element(By.CSS_SELECTOR, ".scheme-container button.authorize").click()
    field = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".auth-container input"))
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper button.authorize").click()
    driver.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper button.btn-done").click()
    driver.find_element(By.CSS_SELECTOR, f"#{ME} .opblock-summary").click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, f"#{ME} button.try-out__btn")).click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, f"#{ME} button.execute")).click()
    cell = f"#{ME} .live-responses-table tr.response .response-col_status"
    shown: str = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, cell).text.strip())
    return shown


async def test_the_docs_render_offline_and_try_it_out_works_signed_in(
    aiohttp_server: Callable[..., Any],
    acli: Callable[..., Any],
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(**CHEAP)
    server = await aiohttp_server(create_app(settings))
    base = f"http://127.0.0.1:{server.port}"
    await make_admin(acli, settings, ADMIN)
    async with aiohttp.ClientSession(base) as http, async_chromium() as browser:
        token = await token_for(http, ADMIN)
        await browser.open(f"{base}/api/docs")
        shown = await eventually(lambda: browser.run(OPERATIONS), lambda n: n >= len(OPERATION_IDS),
                                 message="Swagger UI lists every operation")  # fmt: skip
        assert shown == len(OPERATION_IDS)
        loaded = await browser.run(LOADED)
        assert loaded
        assert all(url.startswith(base + "/") for url in loaded), loaded  # no CDN, nothing else
        text = await browser.run("return document.body.innerText")
        assert "Signing in." in text
        assert "/api/v1/auth/login" in text
        for code in ("email_unverified", "forbidden", "rate_limited", "unknown_field"):
            assert code in text, code
        status = await browser.run_with_driver(authorize_and_call_me, token)
    assert status == "200"
