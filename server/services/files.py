"""Uploaded files after the upload: who may see, download and delete them, their virus scan
and the verdict's effects. (Taking an upload in is server.services.uploads.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from server.domain.errors import FileInUse, FileNotAvailable, Forbidden, NotFound
from server.jobs.queue import Jobs
from server.observability.logging import get_logger
from server.platform.clamd import Clamd, ScanError, Verdict
from server.platform.storage import Storage, StorageError
from server.store import Connect
from server.store import files as store
from server.store import users as users_store

log = get_logger("btec.files")


async def visible(*, db: Connect, user: dict[str, Any], file_id: str) -> dict[str, Any]:
    """The file, if this user may see it: its owner, an admin, or an assessor of an
    assignment it is evidence for (the work they grade, not every upload). Anyone else gets
    the same 404 as for a file that does not exist."""
    try:
        found = uuid.UUID(file_id)
    except ValueError:
        raise NotFound("no such file") from None
    async with db() as conn:
        row = await store.by_id(conn, found)
        if row is None or not await _may_read(conn, row, user):
            raise NotFound("no such file")
    return row


async def _may_read(conn: Any, row: dict[str, Any], user: dict[str, Any]) -> bool:
    if row["owner_id"] == user["id"] or user["role"] == "admin":
        return True
    return user["role"] == "assessor" and await store.assessed_by(conn, row["id"], user["id"])


async def uploads_of(
    *, db: Connect, user: dict[str, Any], owner_id: int | None, status: str | None,
    limit: int, offset: int,
) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
    """A page of the caller's own uploads; an admin may name another owner (`owner_id`), and
    anyone else who does is refused."""
    if owner_id is not None and owner_id != user["id"] and user["role"] != "admin":
        raise Forbidden("only admins may list another user's files")
    async with db() as conn:
        rows, total = await store.page(conn, owner_id=owner_id or user["id"], status=status,
                                       limit=limit, offset=offset)  # fmt: skip
    return [public(row) for row in rows], total


async def for_download(
    *, db: Connect, user: dict[str, Any], file_id: str, serves_unscanned: bool
) -> dict[str, Any]:
    """The file, if this user may see it and it may be downloaded: once a scan found it
    clean, or `unscanned` where the deployment serves unscanned files."""
    row = await visible(db=db, user=user, file_id=file_id)
    status = row["scan_status"]
    if not (status == "clean" or (status == "unscanned" and serves_unscanned)):
        raise FileNotAvailable(f"the file's scan status is {status}")
    return row


async def delete(*, db: Connect, storage: Storage, user: dict[str, Any], file_id: str) -> None:
    """The owner or an admin deletes a file: the row, then the stored bytes. A file that is
    evidence in a submission stays."""
    row = await visible(db=db, user=user, file_id=file_id)
    if row["owner_id"] != user["id"] and user["role"] != "admin":
        raise Forbidden("only the owner or an admin may delete a file")
    async with db() as conn:
        try:
            gone = await store.delete(conn, row["id"])
        except asyncpg.ForeignKeyViolationError:
            raise FileInUse("a submission uses this file as evidence") from None
    if gone is not None:
        await asyncio.shield(discard(storage, gone["storage_key"]))


async def discard(storage: Storage, key: str) -> None:
    """Remove stored bytes whose row failed or went; a storage error is logged (the object
    is orphaned, not recorded) and does not hide the caller's own failure."""
    try:
        await storage.delete(key)
    except StorageError as exc:
        log.warning("file_orphaned", storage_key=key, error=str(exc))


async def scan(
    *, db: Connect, storage: Storage, scanner: Clamd, file_id: uuid.UUID, last_try: bool
) -> dict[str, Any]:
    """Scan a pending file and record the verdict. A scanner failure raises (the job is
    retried) until `last_try`, when the file is marked `error`: never `clean`. An infected
    file is moved to quarantine; the result says whom to tell."""
    async with db() as conn:
        row = await store.by_id(conn, file_id)
    if row is None:
        return {"skipped": "the file was deleted"}
    if row["scan_status"] not in ("pending", "error"):
        return {"skipped": f"already {row['scan_status']}"}
    try:
        verdict = await _verdict(scanner, storage, row["storage_key"])
    except (ScanError, StorageError) as exc:
        if not last_try:
            raise
        async with db() as conn:
            await store.set_verdict(conn, file_id, "error", str(exc)[:500])
        return {"status": "error", "detail": str(exc)}
    async with db() as conn:
        updated = await store.set_verdict(conn, file_id, verdict.status, verdict.detail)
        owner = await users_store.by_id(conn, row["owner_id"])
    result: dict[str, Any] = {"status": verdict.status, "detail": verdict.detail}
    if verdict.status == "infected" and updated is not None:
        await storage.quarantine(row["storage_key"])
        if owner is not None:
            result["notify"] = {
                "to": owner["email"],
                "name": owner["full_name"],
                "filename": row["filename"],
                "signature": verdict.detail,
                "file_id": str(file_id),
                "uploaded": row["created_at"].strftime("%d %B %Y at %H:%M UTC"),
            }
    return result


async def _verdict(scanner: Clamd, storage: Storage, key: str) -> Verdict:
    try:
        return await scanner.scan(storage.chunks(key))
    except FileNotFoundError:
        raise ScanError("the file is missing from storage") from None


async def listing(*, db: Connect, status: str | None, limit: int) -> list[dict[str, Any]]:
    """Uploaded files newest first, of one scan status (None: any), with the owner's address:
    the operator's view."""
    async with db() as conn:
        rows = await store.by_status(conn, status, limit)
    return [{**r, "id": str(r["id"]), "created_at": r["created_at"].isoformat()} for r in rows]


async def rescan(*, db: Connect, jobs: Jobs, statuses: Sequence[str]) -> int:
    """Queue a scan of every file in one of `statuses`; how many. The files become `pending`
    first, so a queue that fails halfway leaves them to the next rescan."""
    async with db() as conn:
        ids = await store.mark_pending(conn, statuses)
    for file_id in ids:
        await jobs.enqueue("scan_file", file_id=str(file_id))
    return len(ids)


def public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "owner_id": row["owner_id"],
        "filename": row["filename"],
        "kind": row["kind"],
        "content_type": row["content_type"],
        "size_bytes": row["size_bytes"],
        "sha256": row["sha256"].hex(),
        "scan_status": row["scan_status"],
        "scan_detail": row["scan_detail"],
        "scanned_at": _iso(row["scanned_at"]),
        "created_at": _iso(row["created_at"]),
        "content_url": f"/api/v1/files/{row['id']}/content",
    }


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()  # as every other answer: +00:00
