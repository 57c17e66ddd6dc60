"""Where uploaded files live, behind one small interface.

An upload streams into a private temporary file first (`Storage.temporary`); only a file that
passed every check is handed to `put` under a random key, so a failed or aborted upload leaves
nothing in storage. Keys never derive from what the client sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from server.settings import Settings

TEMP_DIR = ".incoming"
QUARANTINE_DIR = "quarantine"


def new_key() -> str:
    """A random storage key: 32 hex digits under a two-digit fan-out directory."""
    token = secrets.token_hex(16)
    return f"{token[:2]}/{token}"


class Storage(Protocol):
    name: str

    def temporary(self) -> tuple[int, Path]:
        """A new private (0600) temporary file, opened for writing: (fd, path)."""
        ...

    async def put(self, temp: Path, key: str) -> None:
        """Move a finished temporary file in under `key`."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the file under `key`; gone already is fine."""
        ...

    async def quarantine(self, key: str) -> None:
        """Move the file under `key` where nothing serves it."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The file's path on this machine, when the backend is a local directory."""
        ...


class LocalStorage:
    """Files under BTEC_DATA_DIR/uploads, mode 0600 in 0700 directories. Temporary files sit
    in the same filesystem, so `put` is an atomic rename."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in (root, root / TEMP_DIR, root / QUARANTINE_DIR):
            sub.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / key

    def temporary(self) -> tuple[int, Path]:
        path = self.root / TEMP_DIR / secrets.token_hex(16)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return fd, path

    async def put(self, temp: Path, key: str) -> None:
        target = self._path(key)
        target.parent.mkdir(mode=0o700, exist_ok=True)
        os.replace(temp, target)

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    async def quarantine(self, key: str) -> None:
        target = self.root / QUARANTINE_DIR / key.replace("/", "_")
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(os.replace, self._path(key), target)

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def leftovers(self) -> Iterator[Path]:
        """Temporary files of uploads that a crash interrupted."""
        yield from (self.root / TEMP_DIR).iterdir()


def storage_for(settings: Settings) -> Storage:
    """The storage BTEC_* settings describe."""
    return LocalStorage(settings.uploads_path)
