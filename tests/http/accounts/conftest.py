"""Here `http` is the app with its worker, mailing to `inbox` (the top conftest's mail_http):
these flows send a link and go on once it is followed."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def http(mail_http: Any) -> Any:
    return mail_http
