"""Uploaded files: upload (streamed, checked, stored), read, download and delete.

An upload streams into a private temporary file with a running byte count and SHA-256;
nothing reaches storage or the database until the whole file has arrived and passed the
checks (size, quota, type by extension and content, Office ZIP caps). Any failure, a client
that goes away included, removes the temporary file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from typing import Any

import asyncpg
from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp_apigami import docs

from server.config.settings import SETTINGS, Settings
from server.domain import filetypes
from server.domain.errors import (
    DomainError,
    FileInUse,
    FileNotAvailable,
    FileTooLarge,
    Forbidden,
    MalformedUpload,
    NotFound,
    QuotaExceeded,
    StorageUnavailable,
    UnsafeArchive,
    UnsupportedType,
)
from server.http.keys import REQUEST_ID
from server.http.openapi import LIMITED_PROBLEMS, json_response, problem_responses
from server.http.problems import from_domain
from server.http.ratelimit import limited
from server.http.routes.auth import NO_STORE, SIGNED_IN, current_user
from server.jobs.queue import JOBS
from server.observability.logging import get_logger
from server.observability.metrics import METRICS
from server.platform.postgres import connection
from server.platform.storage import (
    STORAGE,
    Storage,
    StorageError,
    attachment,
    new_key,
)
from server.services.files import public
from server.store import files as store

log = get_logger("btec.files")
routes = web.RouteTableDef()
CHUNK = 256 * 1024
# What a multipart body carries beyond the file: boundaries and the part's headers.
MULTIPART_OVERHEAD = 64 * 1024
UNREADABLE = (ValueError, AssertionError, RuntimeError, HttpProcessingError)
READERS = frozenset({"assessor", "admin"})  # besides the owner

FILE_EXAMPLE = {
    "id": "0b8f8f5e-5d7c-4d83-9a43-3a6f0d0f6d11",
    "owner_id": 42,
    "filename": "Unit 4 - Assignment 1 evidence.pdf",
    "kind": "pdf",
    "content_type": "application/pdf",
    "size_bytes": 182_044,
    "sha256": "9f2c6a1b0e0f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f809",
    "scan_status": "unscanned",
    "scan_detail": None,
    "scanned_at": None,
    "created_at": "2026-11-28T09:14:03.120Z",
    "content_url": "/api/v1/files/0b8f8f5e-5d7c-4d83-9a43-3a6f0d0f6d11/content",
}
UPLOAD_BODY = {
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "The file; its name's extension must be one of "
                        "BTEC_UPLOAD_TYPES and agree with its content.",
                    }
                },
            },
            "encoding": {"file": {"contentType": "application/octet-stream"}},
        }
    },
    "required": True,
}
FILE_PATH_PARAM = [
    {"in": "path", "name": "id", "required": True, "schema": {"type": "string", "format": "uuid"}}
]


def _initial_status(settings: Settings) -> str:
    """`pending` when a scanner is configured (a scan job follows), else `unscanned`."""
    return "pending" if settings.clamd_url else "unscanned"


@docs(
    tags=["files"],
    summary="Upload a file (multipart/form-data, one part named `file`)",
    description="The file streams to storage; it is refused with 413 `file_too_large` past "
    "BTEC_UPLOAD_MAX_BYTES (early, when Content-Length says so), 413 `quota_exceeded` past "
    "the user's BTEC_UPLOAD_QUOTA_BYTES, 415 `unsupported_type` when its extension is not "
    "accepted or its content is not what the extension says, and 415 `unsafe_archive` for an "
    "Office file that unpacks past the caps. Accepted: PDF, DOCX, PPTX, XLSX, PNG, JPEG, "
    "UTF-8 text, MP3, M4A and WAV (as BTEC_UPLOAD_TYPES allows). The original name is kept, "
    "cleaned of paths and control characters. Nothing is kept from a refused or interrupted "
    "upload.",
    security=SIGNED_IN,
    requestBody=UPLOAD_BODY,
    responses={
        201: json_response("Stored", FILE_EXAMPLE),
        **problem_responses(
            "malformed_upload",
            "unauthorized",
            "invalid_token",
            "email_unverified",
            "file_too_large",
            "quota_exceeded",
            "unsupported_type",
            "unsafe_archive",
            "storage_unavailable",
            *LIMITED_PROBLEMS,
        ),
    },
)
@limited("files_upload", "60/3600")
@routes.post("/api/v1/files", name="files_upload")
async def upload(request: web.Request) -> web.StreamResponse:
    user = await current_user(request)
    uploads = request.app[METRICS].uploads
    try:
        return await _upload(request, user)
    except DomainError as exc:
        uploads.labels(exc.code).inc()
        raise


async def _upload(request: web.Request, user: dict[str, Any]) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    limit = settings.upload_max_bytes
    declared = request.content_length
    if declared is not None and declared > limit + MULTIPART_OVERHEAD:
        return _refuse(request, FileTooLarge(f"files may be at most {limit} bytes"))
    async with connection(request) as conn:
        used = await store.used_bytes(conn, user["id"])
    quota = settings.upload_quota_bytes
    if declared is not None and used + max(declared - MULTIPART_OVERHEAD, 0) > quota:
        return _refuse(request, _over_quota(used, quota, declared - MULTIPART_OVERHEAD))
    reader, part = await _file_part(request)
    filename = filetypes.clean_filename(part.filename)
    storage = request.app[STORAGE]
    fd, temp = storage.temporary()
    stored_key: str | None = None  # in storage: removed again if anything after fails
    try:
        try:
            size, digest = await _receive(part, fd, limit)
        except FileTooLarge as exc:
            return _refuse(request, exc)
        await _no_more_parts(reader)
        kind = await _check(settings, temp, filename)
        key = new_key()
        try:
            await storage.put(temp, key)
        except StorageError as exc:
            raise StorageUnavailable(str(exc), retry_after=5) from None
        stored_key = key
        row = {
            "id": uuid.uuid4(),
            "owner_id": user["id"],
            "filename": filename,
            "kind": kind.name,
            "content_type": kind.content_type,
            "size_bytes": size,
            "sha256": digest,
            "storage": storage.name,
            "storage_key": stored_key,
            "scan_status": _initial_status(settings),
        }
        async with connection(request) as conn, conn.transaction():
            saved = await store.insert_within_quota(conn, row, quota)
        if saved is None:
            raise _over_quota(used, quota, size)
        if saved["scan_status"] == "pending":
            await _queue_scan(request, saved["id"])
    except BaseException:
        if stored_key is not None:
            await asyncio.shield(_discard(storage, stored_key))
        raise
    finally:
        temp.unlink(missing_ok=True)  # gone already once stored
    request.app[METRICS].uploads.labels("stored").inc()
    request.app[METRICS].upload_bytes.inc(size)
    location = f"/api/v1/files/{saved['id']}"
    return web.json_response(public(saved), status=201, headers={"Location": location, **NO_STORE})


async def _discard(storage: Storage, key: str) -> None:
    """Remove a stored file whose upload failed after all; a storage error is logged (the
    object is orphaned, not recorded) and does not hide the upload's own failure."""
    try:
        await storage.delete(key)
    except StorageError as exc:
        log.warning("file_orphaned", storage_key=key, error=str(exc))


async def _queue_scan(request: web.Request, file_id: uuid.UUID) -> None:
    """The scan job; if the queue is down, the file stays pending (`btecctl files rescan`
    queues it later) and the upload still succeeds."""
    await request.app[JOBS].follow_up(
        "scan_file", about={"file_id": str(file_id)}, file_id=str(file_id)
    )


def _over_quota(used: int, quota: int, size: int) -> QuotaExceeded:
    return QuotaExceeded(f"you keep {used} of {quota} bytes; this file needs {size}")


def _refuse(request: web.Request, exc: FileTooLarge | QuotaExceeded) -> web.Response:
    """A refusal before the body was read: the connection closes after it, so the rest of
    a large body is not read just to be thrown away."""
    request.app[METRICS].uploads.labels(exc.code).inc()
    response = from_domain(exc, request[REQUEST_ID])
    response.force_close()
    return response


async def _file_part(request: web.Request) -> tuple[MultipartReader, BodyPartReader]:
    if not request.content_type.startswith("multipart/form-data"):
        raise MalformedUpload("send multipart/form-data with one part named file")
    try:
        reader = await request.multipart()
        part = await reader.next()
    except UNREADABLE as exc:  # no boundary, bad framing, bad part headers
        raise MalformedUpload(f"the multipart body cannot be read: {_reason(exc)}") from None
    if not isinstance(part, BodyPartReader) or part.name != "file" or part.filename is None:
        raise MalformedUpload("the first part must be a file named file")
    return reader, part


async def _no_more_parts(reader: MultipartReader) -> None:
    """One file per request, and a body that ends as multipart bodies must."""
    try:
        extra = await reader.next()
    except UNREADABLE as exc:
        raise MalformedUpload(f"the multipart body cannot be read: {_reason(exc)}") from None
    if extra is not None:
        raise MalformedUpload("send one file per request")
    if not reader.at_eof():
        raise MalformedUpload("the multipart body does not end with its closing boundary")


def _reason(exc: Exception) -> str:
    """The parser's complaint, printable and short (it may quote the client's bytes)."""
    text = str(exc) or type(exc).__name__
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


async def _receive(part: BodyPartReader, fd: int, limit: int) -> tuple[int, bytes]:
    """Stream the part into `fd` with a running count (aiohttp's body limit does not apply
    to multipart reads) and hash; FileTooLarge past `limit`."""
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "wb", buffering=0) as out:
        try:
            while chunk := await part.read_chunk(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise FileTooLarge(f"files may be at most {limit} bytes")
                digest.update(chunk)
                out.write(chunk)
        except UNREADABLE as exc:  # a truncated or malformed part
            raise MalformedUpload(f"the file part cannot be read: {_reason(exc)}") from None
    return size, digest.digest()


async def _check(settings: Settings, temp: Any, filename: str) -> filetypes.Kind:
    limits = filetypes.ZipLimits(
        settings.upload_zip_max_entries,
        settings.upload_zip_max_bytes,
        settings.upload_zip_max_ratio,
    )
    allowed = filetypes.parse_allowed(settings.upload_types)
    try:
        return await asyncio.to_thread(filetypes.check, temp, filename, allowed, limits)
    except filetypes.Rejected as exc:
        if exc.code == "unsafe_archive":
            raise UnsafeArchive(str(exc)) from None
        raise UnsupportedType(str(exc)) from None


async def _visible(request: web.Request, user: dict[str, Any]) -> dict[str, Any]:
    """The file of the path, if this user may see it: the owner, assessors and admins.
    Anyone else gets the same 404 as for a file that does not exist."""
    try:
        file_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("no such file") from None
    async with connection(request) as conn:
        row = await store.by_id(conn, file_id)
    if row is None or (row["owner_id"] != user["id"] and user["role"] not in READERS):
        raise NotFound("no such file")
    return row


@docs(
    tags=["files"],
    summary="A file's details and scan status",
    description="The owner, assessors and admins may read it; to anyone else it does not "
    "exist (404).",
    security=SIGNED_IN,
    parameters=FILE_PATH_PARAM,
    responses={
        200: json_response("The file", FILE_EXAMPLE),
        **problem_responses("unauthorized", "invalid_token", "not_found", *LIMITED_PROBLEMS),
    },
)
@routes.get("/api/v1/files/{id}", name="files_one")
async def one(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response(public(await _visible(request, user)), headers=NO_STORE)


def downloadable(settings: Settings, status: str) -> bool:
    return status == "clean" or (status == "unscanned" and settings.serves_unscanned)


@docs(
    tags=["files"],
    summary="Download a file",
    description="Only once a scan found it clean (or, in development with no scanner, "
    "`unscanned`); else 409 `file_not_available` with the scan status in `detail`. Sent as "
    "an attachment with its original name, `X-Content-Type-Options: nosniff` and "
    "`Content-Security-Policy: sandbox`.",
    security=SIGNED_IN,
    parameters=FILE_PATH_PARAM,
    responses={
        200: {
            "description": "The file's bytes",
            "content": {"application/octet-stream": {"example": "%PDF-1.7 ..."}},
            "headers": {
                "Content-Disposition": {
                    "schema": {"type": "string"},
                    "description": "`attachment; filename*=UTF-8''Unit%204%20evidence.pdf`",
                }
            },
        },
        302: {
            "description": "With S3 storage and BTEC_S3_PRESIGNED_DOWNLOADS: the file is at "
            "`Location`, a presigned URL valid 60 s",
            "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}},
        },
        **problem_responses(
            "unauthorized",
            "invalid_token",
            "not_found",
            "file_not_available",
            "storage_unavailable",
            *LIMITED_PROBLEMS,
        ),
    },
)
@routes.get("/api/v1/files/{id}/content", name="files_content")
async def content(request: web.Request) -> web.StreamResponse:
    user = await current_user(request)
    row = await _visible(request, user)
    settings = request.app[SETTINGS]
    if not downloadable(settings, row["scan_status"]):
        raise FileNotAvailable(f"the file's scan status is {row['scan_status']}")
    storage = request.app[STORAGE]
    key, headers = (
        row["storage_key"],
        {
            "Content-Type": row["content_type"],
            "Content-Disposition": attachment(row["filename"]),
            "Content-Security-Policy": "sandbox",
            **NO_STORE,
        },
    )
    path = storage.local_path(key)
    if path is not None:
        if not path.is_file():
            raise NotFound("the file's content is missing from storage")
        return web.FileResponse(path, chunk_size=CHUNK, headers=headers)
    if settings.s3_presigned_downloads:
        url = await storage.presigned_url(key, filename=row["filename"],
                                          content_type=row["content_type"], seconds=60)  # fmt: skip
        if url is not None:
            return web.Response(status=302, headers={"Location": url, **NO_STORE})
    chunks = storage.chunks(key)
    try:
        first = await anext(chunks, b"")
    except FileNotFoundError:
        raise NotFound("the file's content is missing from storage") from None
    except StorageError as exc:
        raise StorageUnavailable(str(exc), retry_after=5) from None
    response = web.StreamResponse(headers=headers)
    response.content_length = row["size_bytes"]
    await response.prepare(request)
    await response.write(first)
    try:
        async for chunk in chunks:
            await response.write(chunk)
    except StorageError as exc:  # mid-way: the client sees a body shorter than announced
        log.warning("download_cut_short", file_id=str(row["id"]), error=str(exc))
        response.force_close()
        return response
    await response.write_eof()
    return response


@docs(
    tags=["files"],
    summary="Delete a file",
    description="The owner or an admin; assessors may read files but not delete them (403). "
    "The row and the stored file both go. A file that is evidence in a submission stays: "
    "409 `file_in_use`.",
    security=SIGNED_IN,
    parameters=FILE_PATH_PARAM,
    responses={
        204: {"description": "Deleted"},
        **problem_responses(
            "unauthorized",
            "invalid_token",
            "forbidden",
            "not_found",
            "file_in_use",
            *LIMITED_PROBLEMS,
        ),
    },
)
@routes.delete("/api/v1/files/{id}", name="files_delete")
async def delete(request: web.Request) -> web.Response:
    user = await current_user(request)
    row = await _visible(request, user)
    if row["owner_id"] != user["id"] and user["role"] != "admin":
        raise Forbidden("only the owner or an admin may delete a file")
    async with connection(request) as conn:
        try:
            gone = await store.delete(conn, row["id"])
        except asyncpg.ForeignKeyViolationError:
            raise FileInUse("a submission uses this file as evidence") from None
    if gone is not None:
        await _discard(request.app[STORAGE], gone["storage_key"])
    return web.Response(status=204, headers=NO_STORE)
