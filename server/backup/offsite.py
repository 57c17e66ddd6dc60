"""Off-site copies of backups in the uploads' S3 bucket, under `backups/<name>/`.

A copy is written file by file, the manifest last: a copy whose manifest is present is
complete. Fetching writes into a partial directory of BTEC_BACKUP_DIR, checks every file
against the manifest (size and SHA-256), and only then renames it into place, so a fetched
backup is either whole and verified or absent.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from typing import Any

from server.backup.core import MANIFEST, PARTIAL_PREFIX, Backup, BackupError, load, verify_files
from server.config.settings import Settings
from server.platform.storage import S3Storage, StorageError, open_storage

PREFIX = "backups/"
Progress = Callable[[str], None]


def _storage_check(settings: Settings) -> None:
    if settings.storage_backend != "s3":
        raise BackupError(
            "off-site copies go to the S3 bucket of uploads: set BTEC_STORAGE_BACKEND=s3 "
            "and BTEC_S3_BUCKET"
        )


async def push(settings: Settings, backup: Backup, progress: Progress) -> dict[str, Any]:
    """Copy a local backup to the bucket; the manifest goes last."""
    _storage_check(settings)
    names = [*sorted(backup.manifest["files"]), MANIFEST]
    async with open_storage(settings) as storage:
        if not isinstance(storage, S3Storage):
            raise RuntimeError("BTEC_STORAGE_BACKEND=s3 opened no S3 storage")
        try:
            for name in names:
                await storage.put_raw(backup.path / name, f"{PREFIX}{backup.name}/{name}")
                progress(name)
        except StorageError as exc:
            raise BackupError(f"off-site copy failed: {exc}") from None
    return {"offsite": f"s3://{settings.s3_bucket}/{PREFIX}{backup.name}/", "files": len(names)}


async def copies(settings: Settings) -> list[str]:
    """Names of the complete off-site copies, newest first."""
    _storage_check(settings)
    async with open_storage(settings) as storage:
        if not isinstance(storage, S3Storage):
            raise RuntimeError("BTEC_STORAGE_BACKEND=s3 opened no S3 storage")
        try:
            keys = await storage.list_raw(PREFIX)
        except StorageError as exc:
            raise BackupError(f"cannot list off-site copies: {exc}") from None
    names = {k[len(PREFIX) :].split("/", 1)[0] for k in keys if k.endswith("/" + MANIFEST)}
    return sorted(names, reverse=True)


async def fetch(settings: Settings, name: str, progress: Progress) -> Backup:
    """Bring an off-site copy back into BTEC_BACKUP_DIR, checked against its manifest."""
    _storage_check(settings)
    if "/" in name or name.startswith("."):
        raise BackupError(f"not a backup name: {name!r}")
    root = settings.backups_path
    final = root / name
    if final.exists():
        raise BackupError(f"{final} exists already")
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f"{PARTIAL_PREFIX}{name}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        async with open_storage(settings) as storage:
            if not isinstance(storage, S3Storage):
                raise RuntimeError("BTEC_STORAGE_BACKEND=s3 opened no S3 storage")
            base = f"{PREFIX}{name}/"
            try:
                manifest_bytes = await storage.get_raw(base + MANIFEST)
            except FileNotFoundError:
                raise BackupError(f"no complete off-site copy named {name}") from None
            manifest = json.loads(manifest_bytes)
            for file in sorted(manifest["files"]):
                target = partial / file
                target.parent.mkdir(parents=True, exist_ok=True)
                await storage.download_raw(base + file, target)
                progress(file)
        (partial / MANIFEST).write_bytes(manifest_bytes)
        verify_files(load(partial))
        await asyncio.to_thread(partial.rename, final)
    except StorageError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise BackupError(f"fetching {name} failed: {exc}") from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return load(final)
