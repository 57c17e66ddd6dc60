"""Uploaded files over HTTP: upload, read, download and delete (rules in
server.services.uploads and server.services.files).

An upload streams into a private temporary file with a running byte count and SHA-256; the
uploads service then checks, stores and records it. Any failure, a client that goes away
included, removes the temporary file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable
from typing import TypeVar

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp_apigami import querystring_schema
from marshmallow import Schema, fields, validate

from server.domain.errors import (
    DomainError,
    FileTooLarge,
    MalformedUpload,
    NotFound,
    QuotaExceeded,
    StorageUnavailable,
)
from server.domain.filetypes import clean_filename
from server.domain.pages import page
from server.http import deps
from server.http.openapi import (
    json_response,
    operation,
    page_example,
)
from server.http.parsing import timed_out
from server.http.problems import from_domain
from server.http.ratelimit import limited
from server.http.responses import NO_STORE, answer, no_content, start_stream
from server.http.schemas import ID, page_fields
from server.observability.logging import get_logger
from server.platform.storage import StorageError, attachment
from server.services import files, uploads

T = TypeVar("T")
# What a file's scan can say (the files table's CHECK): runbooks/uploads.md tells each one.
SCAN_STATUSES = ("pending", "clean", "infected", "error", "unscanned")
log = get_logger("btec.files")
routes = web.RouteTableDef()
CHUNK = 256 * 1024
# What a multipart body carries beyond the file: boundaries and the part's headers.
MULTIPART_OVERHEAD = 64 * 1024
UNREADABLE = (ValueError, AssertionError, RuntimeError, HttpProcessingError)

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
    "created_at": "2026-11-28T09:14:03.120000+00:00",
    "content_url": "/api/v1/files/0b8f8f5e-5d7c-4d83-9a43-3a6f0d0f6d11/content",
}
UPLOAD_BODY = {
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "additionalProperties": False,  # the first part is the file; others are refused
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


@operation(
    "files",
    ok={201: json_response("Stored", FILE_EXAMPLE)},
    problems="malformed_upload file_too_large quota_exceeded unsupported_type unsafe_archive "
    "storage_unavailable",
    requestBody=UPLOAD_BODY,
)
@limited("files_upload", "60/3600")
@routes.post("/api/v1/files", name="files_upload")
async def upload(request: web.Request) -> web.StreamResponse:
    """Upload a file (multipart/form-data, one part named `file`)

    The file streams to storage; it is refused with 413 `file_too_large` past BTEC_UPLOAD_MAX_BYTES
    (early, when Content-Length says so), 413 `quota_exceeded` past the user's
    BTEC_UPLOAD_QUOTA_BYTES, 415 `unsupported_type` when its extension is not accepted or its
    content is not what the extension says, and 415 `unsafe_archive` for an Office file that unpacks
    past the caps. Accepted: PDF, DOCX, PPTX, XLSX, PNG, JPEG, UTF-8 text, MP3, M4A and WAV (as
    BTEC_UPLOAD_TYPES allows). The original name is kept, cleaned of paths and control characters.
    Nothing is kept from a refused or interrupted upload.
    """
    try:
        return await _upload(request)
    except DomainError as exc:
        deps.metrics(request).uploads.labels(exc.code).inc()
        raise


async def _upload(request: web.Request) -> web.StreamResponse:
    rules, owner = uploads.Rules.of(deps.settings(request)), deps.user(request)["id"]
    declared = request.content_length
    body = None if declared is None else max(declared - MULTIPART_OVERHEAD, 0)
    try:
        used = await uploads.room(db=deps.db(request), rules=rules, owner_id=owner, declared=body)
        received = await _receive_file(request, rules, used)
    except (FileTooLarge, QuotaExceeded) as exc:
        return _refuse(request, exc)
    try:
        saved = await uploads.accept(
            db=deps.db(request), storage=deps.storage(request), jobs=deps.jobs(request),
            rules=rules, owner_id=owner, upload=received,
        )  # fmt: skip
    finally:
        received.temp.unlink(missing_ok=True)  # gone already once stored
    _count_stored(request, received.size)
    return answer(saved, 201, location=f"/api/v1/files/{saved['id']}")


async def _receive_file(request: web.Request, rules: uploads.Rules, used: int) -> uploads.Received:
    """The one file part, streamed into a temporary file of the storage; the file goes
    again on any failure (FileTooLarge past the limit, 408 when the body stalls)."""
    idle = deps.settings(request).body_timeout
    reader, part = await _within(idle, _file_part(request))
    fd, temp = deps.storage(request).temporary()
    try:
        size, digest = await _receive(part, fd, rules, idle)
        await _within(idle, _no_more_parts(reader))
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return uploads.Received(clean_filename(part.filename), temp, size, digest, used)


async def _within(seconds: float, step: Awaitable[T]) -> T:
    """One read of the body, which must make progress within `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            return await step
    except TimeoutError:
        raise timed_out() from None


def _count_stored(request: web.Request, size: int) -> None:
    found = deps.metrics(request)
    found.uploads.labels("stored").inc()
    found.upload_bytes.inc(size)


def _refuse(request: web.Request, exc: FileTooLarge | QuotaExceeded) -> web.Response:
    """A refusal before the body was read: the connection closes after it, so the rest of
    a large body is not read just to be thrown away."""
    deps.metrics(request).uploads.labels(exc.code).inc()
    response = from_domain(exc, deps.request_id(request))
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


async def _receive(
    part: BodyPartReader, fd: int, rules: uploads.Rules, idle: float
) -> tuple[int, bytes]:
    """Stream the part into `fd` with a running count (aiohttp's body limit does not apply
    to multipart reads) and hash; FileTooLarge past the limit, 408 after `idle` seconds
    without a byte."""
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "wb", buffering=0) as out:
        try:
            while chunk := await _within(idle, part.read_chunk(CHUNK)):
                size += len(chunk)
                if size > rules.max_bytes:
                    raise rules.too_large()
                digest.update(chunk)
                out.write(chunk)
        except UNREADABLE as exc:  # a truncated or malformed part
            raise MalformedUpload(f"the file part cannot be read: {_reason(exc)}") from None
    return size, digest.digest()


class FilesQuery(Schema):
    status = fields.Str(
        validate=validate.OneOf(SCAN_STATUSES),
        metadata={"description": "Only files of this scan status.", "example": "clean"},
    )
    owner = fields.Int(
        validate=ID,
        metadata={"description": "Another user's files (admins only; 403 for anyone else).",
                  "example": 42},
    )  # fmt: skip
    limit, offset = page_fields(50)


@operation(
    "files",
    ok={200: json_response("A page of files", page_example(FILE_EXAMPLE, 50))},
    problems="forbidden",
)
@querystring_schema(FilesQuery)
@routes.get("/api/v1/files", name="files_list")
async def list_files(request: web.Request) -> web.Response:
    """List your uploads

    Newest first, a page at a time, with each file's scan status; `status` filters by it. Admins may
    pass `owner` to see another user's uploads.
    """
    q = deps.query(request)
    items, total = await files.uploads_of(
        db=deps.db(request), user=deps.user(request), owner_id=q.get("owner"),
        status=q.get("status"), limit=q["limit"], offset=q["offset"],
    )  # fmt: skip
    return answer(page(items, total=total, limit=q["limit"], offset=q["offset"]))


@operation(
    "files",
    ok={200: json_response("The file", FILE_EXAMPLE)},
    problems="not_found",
    parameters=FILE_PATH_PARAM,
)
@routes.get("/api/v1/files/{id}", name="files_one")
async def one(request: web.Request) -> web.Response:
    """A file's details and scan status

    Its owner, admins, and the assessors of an assignment it is evidence for may read it; to anyone
    else it does not exist (404).
    """
    found = await files.visible(
        db=deps.db(request), user=deps.user(request), file_id=request.match_info["id"]
    )
    return answer(files.public(found))


@operation(
    "files",
    ok={
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
    },
    problems="not_found file_not_available storage_unavailable",
    parameters=FILE_PATH_PARAM,
)
@routes.get("/api/v1/files/{id}/content", name="files_content")
async def content(request: web.Request) -> web.StreamResponse:
    """Download a file

    Only once a scan found it clean (or, in development with no scanner, `unscanned`); else 409
    `file_not_available` with the scan status in `detail`. Sent as an attachment with its original
    name, `X-Content-Type-Options: nosniff` and `Content-Security-Policy: sandbox`.
    """
    row = await files.for_download(
        db=deps.db(request), user=deps.user(request), file_id=request.match_info["id"],
        serves_unscanned=deps.settings(request).serves_unscanned,
    )  # fmt: skip
    storage, key = deps.storage(request), row["storage_key"]
    headers = {
        "Content-Type": row["content_type"],
        "Content-Disposition": attachment(row["filename"]),
        "Content-Security-Policy": "sandbox",
        **NO_STORE,
    }
    path = storage.local_path(key)
    if path is not None:
        if not path.is_file():
            raise NotFound("the file's content is missing from storage")
        return web.FileResponse(path, chunk_size=CHUNK, headers=headers)
    if deps.settings(request).s3_presigned_downloads:
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
    if not await start_stream(request, response):
        return response  # the generator is closed when it is collected
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


@operation(
    "files",
    ok={204: {"description": "Deleted"}},
    problems="forbidden not_found file_in_use",
    parameters=FILE_PATH_PARAM,
)
@routes.delete("/api/v1/files/{id}", name="files_delete")
async def delete(request: web.Request) -> web.Response:
    """Delete a file

    The owner or an admin; assessors who may read a file may not delete it (403). The row and the
    stored file both go. A file that is evidence in a submission stays: 409 `file_in_use`.
    """
    await files.delete(
        db=deps.db(request), storage=deps.storage(request), user=deps.user(request),
        file_id=request.match_info["id"],
    )  # fmt: skip
    return no_content()
