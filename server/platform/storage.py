"""Where uploaded files live, behind one small interface: a local directory or an S3 bucket.

An upload streams into a private temporary file first (`Storage.temporary`, always local);
only a file that passed every check is handed to `put` under a random key, so a failed or
aborted upload leaves nothing in storage. Keys never derive from what the client sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from aiohttp import web

from server.config.settings import SettingsError

if TYPE_CHECKING:
    from server.config.settings import Settings

STORAGE: web.AppKey[Storage] = web.AppKey("storage")

TEMP_DIR = ".incoming"
CHUNK = 256 * 1024
PART = 8 * 1024 * 1024  # S3 multipart part size (at least 5 MiB but for the last)
QUARANTINE_DIR = "quarantine"
STALE_SECONDS = 24 * 3600  # a temporary file this old belongs to no upload in progress


class StorageError(Exception):
    """The storage backend could not be reached or refused the operation."""


def _s3_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError, OSError)


def _temporary(root: Path) -> tuple[int, Path]:
    """A new private temporary file under `root`/.incoming, opened for writing."""
    path = root / TEMP_DIR / secrets.token_hex(16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return fd, path


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

    def chunks(self, key: str) -> AsyncIterator[bytes]:
        """The stored bytes, a chunk at a time; FileNotFoundError when they are gone."""
        ...

    async def presigned_url(
        self, key: str, *, filename: str, content_type: str, seconds: int
    ) -> str | None:
        """A short-lived URL that downloads the file directly, where the backend has one."""
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
        return _temporary(self.root)

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

    async def chunks(self, key: str) -> AsyncIterator[bytes]:
        with self._path(key).open("rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk

    async def presigned_url(
        self, key: str, *, filename: str, content_type: str, seconds: int
    ) -> str | None:
        return None


class S3Storage:
    """Files in an S3(-compatible) bucket under BTEC_S3_PREFIX. A file up to one part goes
    in one PUT; a larger one as a multipart upload in 8 MiB parts (aborted on failure, so no
    parts are left behind). The temporary files of uploads in progress stay local."""

    name = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str, temp_root: Path) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.temp_root = temp_root
        (temp_root / TEMP_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)

    def _key(self, key: str) -> str:
        return self.prefix + key

    def temporary(self) -> tuple[int, Path]:
        return _temporary(self.temp_root)

    async def put(self, temp: Path, key: str) -> None:
        """Upload the temporary file (the caller removes it afterwards)."""
        await self.put_raw(temp, self._key(key))

    async def put_raw(self, path: Path, target: str) -> None:
        """Upload a local file under a full key (off-site backups use their own prefix)."""
        try:
            if os.stat(path).st_size <= PART:
                data = await asyncio.to_thread(path.read_bytes)
                await self.client.put_object(Bucket=self.bucket, Key=target, Body=data)
            else:
                await self._multipart(path, target)
        except _s3_errors() as exc:
            raise StorageError(f"S3 put: {type(exc).__name__}") from None

    async def _multipart(self, temp: Path, target: str) -> None:
        started = await self.client.create_multipart_upload(Bucket=self.bucket, Key=target)
        upload_id = started["UploadId"]
        try:
            parts = []
            with temp.open("rb") as f:
                number = 1
                while data := await asyncio.to_thread(f.read, PART):
                    done = await self.client.upload_part(
                        Bucket=self.bucket, Key=target, UploadId=upload_id,
                        PartNumber=number, Body=data,
                    )  # fmt: skip
                    parts.append({"ETag": done["ETag"], "PartNumber": number})
                    number += 1
            await self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=target, UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )  # fmt: skip
        except BaseException:
            await asyncio.shield(self._abort(target, upload_id))
            raise

    async def _abort(self, target: str, upload_id: str) -> None:
        with contextlib.suppress(Exception):
            await self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=target, UploadId=upload_id
            )

    async def get_raw(self, target: str) -> bytes:
        """A small object's bytes (a manifest); FileNotFoundError when absent."""
        chunks = [chunk async for chunk in self._read(target)]
        return b"".join(chunks)

    async def download_raw(self, target: str, path: Path) -> None:
        """An object into a local file, streamed."""
        with path.open("wb") as out:
            async for chunk in self._read(target):
                await asyncio.to_thread(out.write, chunk)

    async def list_raw(self, prefix: str) -> list[str]:
        found: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2")
            async for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
                found.extend(o["Key"] for o in page.get("Contents", []))
        except _s3_errors() as exc:
            raise StorageError(f"S3 list: {type(exc).__name__}") from None
        return found

    async def delete(self, key: str) -> None:
        try:
            await self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except _s3_errors() as exc:
            raise StorageError(f"S3 delete: {type(exc).__name__}") from None

    async def quarantine(self, key: str) -> None:
        source = {"Bucket": self.bucket, "Key": self._key(key)}
        target = self._key(f"{QUARANTINE_DIR}/{key.replace('/', '_')}")
        try:
            await self.client.copy_object(Bucket=self.bucket, Key=target, CopySource=source)
        except _s3_errors() as exc:
            raise StorageError(f"S3 copy: {type(exc).__name__}") from None
        await self.delete(key)

    def local_path(self, key: str) -> Path | None:
        return None

    def chunks(self, key: str) -> AsyncIterator[bytes]:
        return self._read(self._key(key))

    async def _read(self, target: str) -> AsyncIterator[bytes]:
        try:
            found = await self.client.get_object(Bucket=self.bucket, Key=target)
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(target) from None
        except _s3_errors() as exc:
            raise StorageError(f"S3 get: {type(exc).__name__}") from None
        try:
            async with found["Body"] as body:
                while chunk := await body.read(CHUNK):
                    yield chunk
        except _s3_errors() as exc:
            raise StorageError(f"S3 read: {type(exc).__name__}") from None

    async def size(self, key: str) -> int:
        head = await self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        return int(head["ContentLength"])

    async def presigned_url(
        self, key: str, *, filename: str, content_type: str, seconds: int
    ) -> str | None:
        url: str = await self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self._key(key),
                "ResponseContentDisposition": attachment(filename),
                "ResponseContentType": content_type,
            },
            ExpiresIn=seconds,
        )
        return url


def attachment(filename: str) -> str:
    """Content-Disposition for a download (RFC 6266): an ASCII fallback and the UTF-8 name."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def sweep_incoming(root: Path, older_than: float = STALE_SECONDS) -> int:
    """Remove temporary files of uploads a crash (or a kill) interrupted: those older than
    any upload in progress could be, so other processes' uploads are left alone."""
    cutoff = time.time() - older_than
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for path in (root / TEMP_DIR).iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
    return removed


@contextlib.asynccontextmanager
async def open_storage(settings: Settings) -> AsyncIterator[Storage]:
    """The storage BTEC_STORAGE_BACKEND names, open for the life of the process."""
    settings.uploads_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    await asyncio.to_thread(sweep_incoming, settings.uploads_path)
    if settings.storage_backend == "local":
        yield LocalStorage(settings.uploads_path)
        return
    if settings.s3_bucket is None:
        raise SettingsError("BTEC_STORAGE_BACKEND=s3 needs BTEC_S3_BUCKET")
    try:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session
    except ImportError:
        raise SettingsError(
            "BTEC_STORAGE_BACKEND=s3 needs the S3 client: install btec[s3]"
        ) from None
    secret = settings.s3_secret_access_key
    key_id = settings.s3_access_key_id
    async with get_session().create_client(
        "s3",
        region_name=settings.s3_region,
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=key_id.get_secret_value() if key_id else None,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        config=AioConfig(
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 3},
            signature_version="s3v4",
        ),
    ) as client:
        yield S3Storage(client, settings.s3_bucket, settings.s3_prefix, settings.uploads_path)
