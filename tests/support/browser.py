"""A real headless Chromium for tests that need a browser (CORS, HTML pages): Debian's
chromium and chromedriver, driven by selenium 4. Where they are not installed the test is
skipped with the reason, or failed under BTEC_TEST_REQUIRE_CHROMIUM=1 (CI installs them).

    async with async_chromium() as browser:  # from an async test: servers keep answering
        await browser.open(f"http://127.0.0.1:{port}/page")
        seen = await browser.run("return fetch(arguments[0]).then(r => r.status)", url)

`chromium()` is the same for sync tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.env import required_tool

T = TypeVar("T")
REQUIRE = "BTEC_TEST_REQUIRE_CHROMIUM"
PACKAGES = "chromium chromium-driver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # as root (CI, these machines) Chromium's sandbox refuses to start
    "--disable-dev-shm-usage",  # containers' /dev/shm is too small for it
    "--disable-gpu",
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",  # nothing leaves loopback: no updates, no sync
    "--disable-component-update",
    "--disable-sync",
)


class Browser:
    """One headless Chromium tab."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver

    def open(self, url: str) -> None:
        """Load `url` and wait for its load event."""
        self.driver.get(url)

    def run(self, script: str, *args: Any) -> Any:
        """Run `script` in the page as a function body (`arguments` holds `args`) and return
        what it returns, as JSON-like values; a returned Promise is awaited first (WebDriver's
        rule), and a rejected one raises selenium's JavascriptException."""
        return self.driver.execute_script(script, *args)

    def quit(self) -> None:
        self.driver.quit()


class AsyncBrowser:
    """A Browser for async tests: each call runs in a thread, so that servers in the test's
    own event loop go on answering the browser meanwhile."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser

    async def open(self, url: str) -> None:
        await asyncio.to_thread(self.browser.open, url)

    async def run(self, script: str, *args: Any) -> Any:
        return await asyncio.to_thread(self.browser.run, script, *args)

    async def run_with_driver(self, steps: Callable[..., T], *args: Any) -> T:
        """`steps(driver, *args)` in a thread: selenium's own clicks and keys, for pages
        whose widgets a script cannot fill in as a user does (React's inputs)."""
        return await asyncio.to_thread(steps, self.browser.driver, *args)


def start(timeout: float = 30.0) -> Browser:
    """A headless Chromium with a fresh profile; `timeout` bounds each page load and script."""
    binary = required_tool("chromium", PACKAGES, REQUIRE)
    driver_path = required_tool("chromedriver", PACKAGES, REQUIRE)
    options = Options()
    options.binary_location = binary
    for flag in FLAGS:
        options.add_argument(flag)
    # A driver path given: selenium does not run Selenium Manager (which would download one).
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(timeout)
    driver.set_script_timeout(timeout)
    return Browser(driver)


@contextlib.contextmanager
def chromium(timeout: float = 30.0) -> Iterator[Browser]:
    """A headless Chromium for the block, quit after it."""
    browser = start(timeout)
    try:
        yield browser
    finally:
        browser.quit()


@contextlib.asynccontextmanager
async def async_chromium(timeout: float = 30.0) -> AsyncIterator[AsyncBrowser]:
    """`chromium()` for async tests: started, used and quit in threads."""
    required_tool("chromium", PACKAGES, REQUIRE)  # skip (or fail) here, not in a thread
    required_tool("chromedriver", PACKAGES, REQUIRE)
    browser = await asyncio.to_thread(start, timeout)
    try:
        yield AsyncBrowser(browser)
    finally:
        await asyncio.to_thread(browser.quit)
