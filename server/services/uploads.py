"""Taking in an upload once its bytes have arrived: the owner's quota, the type by extension
and by content (with the Office ZIP caps), storage under a random name, the row, and the
scan job. Nothing reaches storage or the database until the whole file has passed the
checks, and a failure after it was stored removes it again. (Receiving the bytes, with a
running count and hash, is the HTTP edge's part.)"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.config.settings import Settings
from server.domain import filetypes
from server.domain.errors import (
    FileTooLarge,
    QuotaExceeded,
    StorageUnavailable,
    UnsafeArchive,
    UnsupportedType,
)
from server.jobs import outbox
from server.jobs.outbox import FollowUp
from server.jobs.queue import Jobs
from server.platform.storage import Storage, StorageError, new_key
from server.services.files import discard, public
from server.store import Connect
from server.store import files as store


@dataclass(frozen=True)
class Rules:
    """What an upload may be, from settings."""

    max_bytes: int
    quota_bytes: int
    allowed: frozenset[str]
    zip_limits: filetypes.ZipLimits
    scanning: bool  # a scanner is configured: files start `pending` and a scan job follows

    @classmethod
    def of(cls, settings: Settings) -> Rules:
        return cls(
            max_bytes=settings.upload_max_bytes,
            quota_bytes=settings.upload_quota_bytes,
            allowed=filetypes.parse_allowed(settings.upload_types),
            zip_limits=filetypes.ZipLimits(
                settings.upload_zip_max_entries,
                settings.upload_zip_max_bytes,
                settings.upload_zip_max_ratio,
            ),
            scanning=settings.clamd_url is not None,
        )

    def too_large(self) -> FileTooLarge:
        return FileTooLarge(f"files may be at most {self.max_bytes} bytes")


def over_quota(used: int, quota: int, size: int) -> QuotaExceeded:
    return QuotaExceeded(f"you keep {used} of {quota} bytes; this file needs {size}")


async def room(*, db: Connect, rules: Rules, owner_id: int, declared: int | None) -> int:
    """The bytes the owner keeps now. An upload whose declared size (None: unknown) is too
    large or would pass the quota is refused here, before its body is read."""
    if declared is not None and declared > rules.max_bytes:
        raise rules.too_large()
    async with db() as conn:
        used = await store.used_bytes(conn, owner_id)
    if declared is not None and used + declared > rules.quota_bytes:
        raise over_quota(used, rules.quota_bytes, declared)
    return used


@dataclass(frozen=True)
class Received:
    """An upload's bytes in a temporary file of the storage, with what was counted."""

    filename: str
    temp: Path
    size: int
    sha256: bytes
    used: int  # the owner's bytes when the upload began (for the quota message)


async def accept(
    *, db: Connect, storage: Storage, jobs: Jobs, rules: Rules, owner_id: int, upload: Received
) -> dict[str, Any]:
    """Check, store and record a received upload and queue its scan; its details. With the
    queue down the file stays `pending` (`btecctl files rescan` queues it later)."""
    kind = await _check(rules, upload)
    key = await _put(storage, upload.temp)
    try:
        saved = await _record(db, rules, owner_id, upload, kind, key, storage.name)
    except BaseException:
        await asyncio.shield(discard(storage, key))
        raise
    if saved["scan_status"] == "pending":
        await outbox.publish(db, jobs, [_scan(saved["id"])])
    return public(saved)


def _scan(file_id: uuid.UUID) -> FollowUp:
    """The scan of an upload: a follow-up of the transaction that recorded it."""
    return FollowUp("scan_file", f"scan-upload:{file_id}", {"file_id": str(file_id)},
                    about={"file_id": str(file_id)})  # fmt: skip


async def _check(rules: Rules, upload: Received) -> filetypes.Kind:
    try:
        return await asyncio.to_thread(
            filetypes.check, upload.temp, upload.filename, rules.allowed, rules.zip_limits
        )
    except filetypes.Rejected as exc:
        if exc.code == "unsafe_archive":
            raise UnsafeArchive(str(exc)) from None
        raise UnsupportedType(str(exc)) from None


async def _put(storage: Storage, temp: Path) -> str:
    key = new_key()
    try:
        await storage.put(temp, key)
    except StorageError as exc:
        raise StorageUnavailable(str(exc), retry_after=5) from None
    return key


async def _record(
    db: Connect, rules: Rules, owner_id: int, upload: Received, kind: filetypes.Kind,
    key: str, backend: str,
) -> dict[str, Any]:  # fmt: skip
    row = {
        "id": uuid.uuid4(), "owner_id": owner_id, "filename": upload.filename,
        "kind": kind.name, "content_type": kind.content_type, "size_bytes": upload.size,
        "sha256": upload.sha256, "storage": backend, "storage_key": key,
        "scan_status": "pending" if rules.scanning else "unscanned",
    }  # fmt: skip
    async with db() as conn, conn.transaction():
        saved = await store.insert_within_quota(conn, row, rules.quota_bytes)
        if saved is not None and saved["scan_status"] == "pending":
            await outbox.record(conn, _scan(saved["id"]))
    if saved is None:
        raise over_quota(upload.used, rules.quota_bytes, upload.size)
    return saved
