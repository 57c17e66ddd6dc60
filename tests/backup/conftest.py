"""A source database with 2000 audit rows for each backup test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.schema.migrate_test import scratch_database
from tests.support.backups import seeded


@pytest.fixture
def source(pg_server_url: str) -> Iterator[str]:
    with scratch_database(pg_server_url, prefix="btec_src") as url:
        seeded(url, 2000)
        yield url
