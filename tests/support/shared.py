"""What the suite's pytest-xdist processes share: a lock one process at a time holds, and a
directory one process builds for all. Their files live in the run's common temporary root
(the parent of each process's own basetemp under xdist).

Written with fcntl.flock rather than through pytest-xdist's `xdist_group`: with pytest 9.2,
`--dist loadgroup` silently stops grouping (pytest-dev/pytest-xdist#1386), and a group would
keep a process waiting anyway where a lock only orders what must not overlap."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def common_root(factory: pytest.TempPathFactory) -> Path:
    """The temporary directory all of the run's processes share."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextmanager
def exclusive(factory: pytest.TempPathFactory, name: str) -> Iterator[None]:
    """Hold the run's lock `name`: one process at a time gets past it."""
    with (common_root(factory) / f"{name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def built_once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The directory `name`, made by `build` in the first process that asks for it; the others
    wait for it and reuse it. A build that failed is tried again by the next to ask."""
    target = common_root(factory) / name
    with exclusive(factory, name):
        if not (target / ".built").exists():
            target.mkdir(exist_ok=True)
            build(target)
            (target / ".built").touch()
    return target
