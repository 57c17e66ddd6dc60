"""The fault suite: every test here carries the `faults` marker (`pytest -m faults` runs the
suite alone, as .ci/run reports its time)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import Served, embedded_processes

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.faults)


@pytest.fixture(autouse=True)
def no_server_left() -> Iterator[None]:
    """A test that fails half-way leaves no `btecctl serve` nor its embedded servers running."""
    before = len(Served.started)
    yield
    for served in Served.started[before:]:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait(30)
        for proc in embedded_processes(served.data_dir):
            proc.kill()
    del Served.started[before:]
