"""The API as the sign-in and user tests drive it: cheap password hashing, no worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from server.app import create_app
from server.config.settings import Settings
from tests.support.accounts import CHEAP


@pytest.fixture
def auth_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**CHEAP)


@pytest.fixture
async def http(aiohttp_client: Callable[..., Any], auth_settings: Settings) -> Any:
    """The app on `auth_settings`; modules that need it built otherwise define their own."""
    return await aiohttp_client(create_app(auth_settings))
