"""What happens to an uploaded file after the upload: its virus scan and the verdict's effects."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from server.platform.clamd import Clamd, ScanError, Verdict
from server.platform.storage import Storage, StorageError
from server.store import Conn
from server.store import files as store
from server.store import users as users_store

Db = Callable[[], AbstractAsyncContextManager[Conn]]


async def scan(
    *, db: Db, storage: Storage, scanner: Clamd, file_id: uuid.UUID, last_try: bool
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
    return None if value is None else value.isoformat().replace("+00:00", "Z")
