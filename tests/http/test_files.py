"""File uploads over HTTP: streaming limits, type checks by content, Office ZIP caps, names,
storage, quota, access rules, and nothing left behind by a refused or aborted upload."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import stat
import time
import tracemalloc
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from server.app import create_app
from server.config.settings import Settings
from tests.support import s3
from tests.support.accounts import CHEAP, PASSWORD, make_admin, session_of
from tests.support.env import closed_port
from tests.support.metrics import scrape
from tests.support.problems import problem
from tests.support.uploads import ADMIN, BOUNDARY, MULTIPART, admin_app, multipart, part, upload
from tests.support.wait import eventually

# The tests marked `embedded` run against the embedded servers too, in CI's second pass
# (pyproject.toml's markers): those whose statements and transactions reach PostgreSQL and
# Redis in every way this module does. The checks of the bytes themselves run once.


LIMIT = 2 * 1024 * 1024

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + b"\x00" * 64
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 32
M4A = b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom" + b"\x00" * 64
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 64
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 64
ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 64


def office(folder: str, extra: dict[str, bytes] | None = None) -> bytes:
    """A minimal OOXML package: [Content_Types].xml and the main part in `folder`."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        z.writestr("_rels/.rels", '<?xml version="1.0"?><Relationships/>')
        z.writestr(f"{folder}document.xml", "<doc>Unit 4 evidence</doc>")
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The settings of each storage backend: every test here runs on both."""
    if request.param == "local":
        return {}
    url = request.getfixturevalue("s3_url")
    return s3.settings_for(url, s3.new_bucket(url))


@pytest.fixture
def files_settings(
    make_settings: Callable[..., Settings], tmp_path: Path, storage: dict[str, Any]
) -> Settings:
    return make_settings(**CHEAP, **storage, upload_max_bytes=LIMIT, data_dir=tmp_path / "var")


@pytest.fixture
async def http(aiohttp_client: Callable[..., Any], files_settings: Settings) -> Any:
    return await aiohttp_client(create_app(files_settings))


async def raw_post(port: int, who: dict[str, str], length: int, body: bytes = b"") -> Any:
    """POST /api/v1/files over a bare socket, so the body can lie about its length or stop
    half-way: (reader, writer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /api/v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {who['Authorization']}\r\n"
        f"Content-Type: {MULTIPART}\r\nContent-Length: {length}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    return reader, writer


@pytest.fixture
async def people(http: Any, acli: Callable[..., Any], files_settings: Settings) -> dict[str, Any]:
    await make_admin(acli, files_settings, ADMIN)
    admin = await session_of(http, ADMIN)
    for email, role in (("sam@example.org", "assessor"), ("stu@example.org", "student"),
                        ("kim@example.org", "student")):  # fmt: skip
        body = {"email": email, "full_name": role.title(), "role": role, "password": PASSWORD}
        answer = await http.post("/api/v1/users", headers=admin, json=body)
        assert answer.status == 201, await answer.text()
    return {
        "admin": admin,
        "assessor": await session_of(http, "sam@example.org"),
        "student": await session_of(http, "stu@example.org"),
        "other": await session_of(http, "kim@example.org"),
    }


def form(filename: str, data: bytes | Any, name: str = "file") -> aiohttp.FormData:
    """aiohttp's own encoder (chunked when `data` is an async iterator)."""
    body = aiohttp.FormData()
    body.add_field(name, data, filename=filename, content_type="application/octet-stream")
    return body


def stored_files(settings: Settings) -> list[Path]:
    """Files on local disk: stored ones, or temporary ones left by an upload."""
    root = settings.uploads_path
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def stored_objects(settings: Settings) -> list[str]:
    """Objects in the test's bucket (none with local storage)."""
    if settings.storage_backend != "s3":
        return []
    assert settings.s3_bucket is not None
    assert settings.s3_endpoint_url is not None
    return s3.keys(settings.s3_endpoint_url, settings.s3_bucket)


def stored_contents(settings: Settings) -> list[bytes]:
    if settings.storage_backend == "s3":
        assert settings.s3_endpoint_url is not None
        bucket = s3.client(settings.s3_endpoint_url)
        return [bucket.get_object(Bucket=settings.s3_bucket, Key=k)["Body"].read()
                for k in stored_objects(settings)]  # fmt: skip
    return [p.read_bytes() for p in stored_files(settings)]


async def rows(settings: Settings) -> int:
    assert settings.database_url is not None
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        return int(await conn.fetchval("SELECT count(*) FROM files"))
    finally:
        await conn.close()


async def nothing_kept(settings: Settings) -> None:
    assert stored_files(settings) == []
    assert stored_objects(settings) == []
    assert await rows(settings) == 0


@pytest.mark.embedded
async def test_upload_read_download_delete(
    http: Any, people: dict[str, Any], files_settings: Settings
) -> None:
    answer = await upload(http, people["student"], "Unit 4 évidence.pdf", PDF)
    assert answer.status == 201, await answer.text()
    meta = await answer.json()
    assert answer.headers["Location"] == f"/api/v1/files/{meta['id']}"
    assert meta["filename"] == "Unit 4 évidence.pdf"
    assert meta["kind"] == "pdf"
    assert meta["content_type"] == "application/pdf"
    assert meta["size_bytes"] == len(PDF)
    assert meta["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert meta["scan_status"] == "unscanned"
    assert "files_upload" in answer.headers["RateLimit-Policy"]

    assert stored_contents(files_settings) == [PDF]
    for path in stored_files(files_settings):  # local storage
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for name in [*map(str, stored_files(files_settings)), *stored_objects(files_settings)]:
        assert "Unit" not in name  # stored under a random name

    again = await http.get(f"/api/v1/files/{meta['id']}", headers=people["student"])
    assert again.status == 200
    assert await again.json() == meta

    got = await http.get(meta["content_url"], headers=people["student"])
    assert got.status == 200
    assert await got.read() == PDF
    assert got.headers["Content-Length"] == str(len(PDF))
    assert got.headers["Content-Type"] == "application/pdf"
    assert got.headers["Content-Disposition"] == (
        'attachment; filename="Unit 4 _vidence.pdf"; '
        "filename*=UTF-8''Unit%204%20%C3%A9vidence.pdf"
    )
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Security-Policy"] == "sandbox"

    metrics = await scrape(http)
    assert 'btec_uploads_total{result="stored"} 1.0' in metrics
    assert f"btec_upload_bytes_total {float(len(PDF))}" in metrics

    gone = await http.delete(f"/api/v1/files/{meta['id']}", headers=people["student"])
    assert gone.status == 204
    await nothing_kept(files_settings)
    await problem(await http.get(f"/api/v1/files/{meta['id']}", headers=people["student"]),
                  404, "not_found")  # fmt: skip


@pytest.mark.parametrize(
    ("filename", "data", "kind"),
    [
        ("report.PDF", PDF, "pdf"),
        ("plan.docx", office("word/"), "docx"),
        ("slides.pptx", office("ppt/"), "pptx"),
        ("marks.xlsx", office("xl/"), "xlsx"),
        ("diagram.png", PNG, "png"),
        ("photo.jpeg", JPEG, "jpg"),
        ("photo.jpg", JPEG, "jpg"),
        ("notes.txt", "Évaluation — 評価 ✓\n".encode(), "txt"),
        ("talk.mp3", MP3, "mp3"),
        ("talk.m4a", M4A, "m4a"),
        ("talk.wav", WAV, "wav"),
    ],
)
async def test_every_accepted_type(
    http: Any, people: dict[str, Any], filename: str, data: bytes, kind: str
) -> None:
    answer = await upload(http, people["student"], filename, data)
    assert answer.status == 201, await answer.text()
    assert (await answer.json())["kind"] == kind


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("essay.pdf", EXE),  # an executable renamed
        ("essay.pdf", ELF),
        ("photo.png", JPEG),  # the wrong image type
        ("plan.docx", office("xl/")),  # a spreadsheet named as a document
        ("plan.docx", b"PK\x03\x04 not really a zip"),
        ("plan.docx", PDF),
        ("notes.txt", b"text\x00with NUL"),
        ("notes.txt", b"\xff\xfe not utf-8 \xc3"),
        ("tool.exe", EXE),  # not an accepted extension
        ("noextension", PDF),
        (".pdf", PDF),
    ],
)
async def test_spoofed_or_unaccepted_types_are_415(
    http: Any, people: dict[str, Any], files_settings: Settings, filename: str, data: bytes
) -> None:
    await problem(await upload(http, people["student"], filename, data), 415, "unsupported_type")
    await nothing_kept(files_settings)
    metrics = await scrape(http)
    assert 'btec_uploads_total{result="unsupported_type"} 1.0' in metrics


async def test_zip_bombs_disguised_as_office_files_are_refused(
    http: Any, people: dict[str, Any], files_settings: Settings
) -> None:
    bomb = office("word/", {"word/media/zeros.bin": b"\x00" * (8 * 1024 * 1024)})
    assert len(bomb) < LIMIT  # small on the wire: ~8 KiB for 8 MiB
    body = await problem(await upload(http, people["student"], "essay.docx", bomb), 415,
                         "unsafe_archive")  # fmt: skip
    assert "compressed more than 100 to 1" in body["detail"]
    many = office("word/", {f"word/part{i}.xml": b"<x/>" for i in range(3000)})
    body = await problem(await upload(http, people["student"], "essay.docx", many), 415,
                         "unsafe_archive")  # fmt: skip
    assert "entries" in body["detail"]
    await nothing_kept(files_settings)


async def test_a_zip_that_lies_about_its_sizes_is_measured_not_trusted(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    tmp_path: Path,
    storage: dict[str, Any],
) -> None:
    """Unpacked size over the cap, with every entry's ratio under it: the total counts."""
    settings = make_settings(**CHEAP, **storage, upload_zip_max_bytes=1024 * 1024,
                             data_dir=tmp_path / "v")  # fmt: skip
    http, admin = await admin_app(aiohttp_client, acli, settings)
    payload = os.urandom(300 * 1024)  # incompressible: ratio ~1
    doc = office("word/", {f"word/media/{i}.bin": payload for i in range(5)})
    await problem(await upload(http, admin, "big.docx", doc), 415, "unsafe_archive")
    await nothing_kept(settings)


async def test_oversize_is_413_with_an_honest_or_a_chunked_length(
    http: Any, people: dict[str, Any], files_settings: Settings
) -> None:
    big = os.urandom(LIMIT + 1)
    body = await problem(await upload(http, people["student"], "big.pdf", PDF + big), 413,
                         "file_too_large")  # fmt: skip
    assert str(LIMIT) in body["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked encoding
        yield PDF
        for _ in range(LIMIT // 65536 + 2):
            yield os.urandom(65536)

    answer = await http.post("/api/v1/files", data=form("big.pdf", chunks()),
                             headers=people["student"])  # fmt: skip
    await problem(answer, 413, "file_too_large")
    await nothing_kept(files_settings)
    # A Content-Length past the limit is refused before any of the body is read.
    reader, writer = await raw_post(http.server.port, people["student"], 10 * 1024**3)
    status_line = await asyncio.wait_for(reader.readline(), 10)
    headers = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode().lower()
    writer.close()
    assert status_line.split()[1] == b"413", status_line
    assert "connection: close" in headers
    # Exactly at the limit is fine.
    exact = PDF + os.urandom(LIMIT - len(PDF))
    assert (await upload(http, people["student"], "exact.pdf", exact)).status == 201


async def test_a_lying_content_length_keeps_nothing(
    http: Any, people: dict[str, Any], files_settings: Settings
) -> None:
    """A Content-Length shorter than the body: the server reads only that much, which cuts
    the multipart body short."""
    raw = multipart(part("essay.pdf", PDF + os.urandom(200_000)))
    reader, writer = await raw_post(http.server.port, people["student"], 1000, raw)
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status_line.split()[1] in (b"400", b"413"), status_line
    await nothing_kept(files_settings)


async def test_memory_does_not_grow_with_the_body(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    tmp_path: Path,
    storage: dict[str, Any],
) -> None:
    """A 40 MiB upload streams through in bounded memory (traced in this process, where the
    server runs): a few chunks for local storage, about two 8 MiB parts for S3."""
    settings = make_settings(**CHEAP, **storage, upload_max_bytes=64 * 1024 * 1024,
                             data_dir=tmp_path / "v")  # fmt: skip
    http, admin = await admin_app(aiohttp_client, acli, settings)
    size = 40 * 1024 * 1024
    block = os.urandom(256 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        yield PDF
        for _ in range(size // len(block)):
            yield block

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        answer = await http.post("/api/v1/files", data=form("big.pdf", chunks()), headers=admin)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status == 201, await answer.text()
    assert (await answer.json())["size_bytes"] == size + len(PDF)
    bound = 24 if storage else 8  # MiB
    assert peak < bound * 1024 * 1024, f"peak {peak} bytes for a {size}-byte upload"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        # In a quoted-string a backslash escapes the next character (RFC 9110).
        ("..\\..\\windows\\evil.txt", "windowsevil.txt"),
        ("a\u202eb\u200b\ufeff.txt", "ab.txt"),
        ("   .hidden.txt", "hidden.txt"),
        ("über   notes.txt", "über notes.txt"),
    ],
)
async def test_names_are_cleaned(
    http: Any, people: dict[str, Any], files_settings: Settings, given: str, kept: str
) -> None:
    answer = await upload(http, people["student"], given, b"text")
    assert answer.status == 201, await answer.text()
    assert (await answer.json())["filename"] == kept
    for path in stored_files(files_settings):
        assert path.resolve().is_relative_to(files_settings.uploads_path.resolve())


async def test_a_very_long_unicode_name_is_cut_keeping_the_extension(
    http: Any, people: dict[str, Any]
) -> None:
    answer = await upload(http, people["student"], "é" * 400 + "🎓" * 50 + ".txt", b"text")
    assert answer.status == 201, await answer.text()
    name = (await answer.json())["filename"]
    assert name.endswith(".txt")
    assert len(name.encode()) <= 200
    assert set(name[:-4]) == {"é"}


@pytest.mark.embedded
async def test_who_may_see_download_and_delete(
    http: Any, people: dict[str, Any], files_settings: Settings
) -> None:
    meta = await (await upload(http, people["student"], "mine.pdf", PDF)).json()
    one, data = f"/api/v1/files/{meta['id']}", meta["content_url"]
    for path in (one, data):  # another student: as if it did not exist
        await problem(await http.get(path, headers=people["other"]), 404, "not_found")
    await problem(await http.delete(one, headers=people["other"]), 404, "not_found")
    await problem(await http.get(one), 401, "unauthorized")
    for path in (one, data):  # an assessor, for a file that is no one's evidence: neither
        await problem(await http.get(path, headers=people["assessor"]), 404, "not_found")
    assert (await http.get(one, headers=people["admin"])).status == 200
    assert await (await http.get(data, headers=people["admin"])).read() == PDF
    await problem(await http.delete(one, headers=people["assessor"]), 404, "not_found")
    assert (await http.delete(one, headers=people["admin"])).status == 204
    await nothing_kept(files_settings)
    for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000", "%00", "ü"):
        await problem(await http.get(f"/api/v1/files/{bad}", headers=people["student"]),
                      404, "not_found")  # fmt: skip


@pytest.mark.embedded
async def test_the_quota_holds_under_concurrent_uploads(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    tmp_path: Path,
    storage: dict[str, Any],
) -> None:
    settings = make_settings(**CHEAP, **storage, upload_quota_bytes=100_000,
                             data_dir=tmp_path / "v")  # fmt: skip
    http, admin = await admin_app(aiohttp_client, acli, settings)
    payload = PDF + os.urandom(60_000)
    answers = await asyncio.gather(*(upload(http, admin, f"{i}.pdf", payload) for i in range(4)))
    statuses = sorted(a.status for a in answers)
    assert statuses == [201, 413, 413, 413], statuses
    for answer in answers:
        if answer.status == 413:
            await problem(answer, 413, "quota_exceeded")
    assert await rows(settings) == 1
    assert len(stored_contents(settings)) == 1


async def test_concurrent_uploads_all_land(
    http: Any, people: dict[str, Any], files_settings: Settings
) -> None:
    datas = [PDF + os.urandom(1000 + i) for i in range(10)]
    answers = await asyncio.gather(
        *(upload(http, people["student"], f"{i}.pdf", d) for i, d in enumerate(datas))
    )
    metas = [await a.json() for a in answers]
    assert [a.status for a in answers] == [201] * 10
    assert len({m["id"] for m in metas}) == 10
    assert {m["sha256"] for m in metas} == {hashlib.sha256(d).hexdigest() for d in datas}
    assert sorted(stored_contents(files_settings)) == sorted(datas)


async def test_malformed_uploads_are_400(
    http: Any, people: dict[str, Any], files_settings: Settings
) -> None:
    who = people["student"]
    await problem(await http.post("/api/v1/files", json={"file": "x"}, headers=who), 400,
                  "malformed_upload")  # fmt: skip
    typed = {**who, "Content-Type": MULTIPART}
    other = multipart(part("a.pdf", PDF, name="other"))
    await problem(await http.post("/api/v1/files", data=other, headers=typed), 400,
                  "malformed_upload")  # fmt: skip
    two = multipart(part("a.pdf", PDF), part("b.pdf", PDF))
    await problem(await http.post("/api/v1/files", data=two, headers=typed), 400,
                  "malformed_upload")  # fmt: skip
    nul = multipart(part("a\x00b.pdf", PDF))  # aiohttp refuses NUL in part headers
    await problem(await http.post("/api/v1/files", data=nul, headers=typed), 400,
                  "malformed_upload")  # fmt: skip
    cut = multipart(part("a.pdf", PDF))[:-20]  # no closing boundary
    await problem(await http.post("/api/v1/files", data=cut, headers=typed), 400,
                  "malformed_upload")  # fmt: skip
    broken = {**who, "Content-Type": "multipart/form-data"}  # no boundary
    await problem(await http.post("/api/v1/files", data=b"--x\r\n", headers=broken), 400,
                  "malformed_upload")  # fmt: skip
    await nothing_kept(files_settings)


async def test_a_client_that_goes_away_midway_leaves_nothing(
    http: Any, people: dict[str, Any], files_settings: Settings
) -> None:
    raw = multipart(part("essay.pdf", PDF + os.urandom(500_000)))
    _, writer = await raw_post(http.server.port, people["student"], len(raw), raw[: len(raw) // 2])
    incoming = files_settings.uploads_path / ".incoming"
    await eventually(lambda: any(incoming.iterdir()), timeout=10, interval=0.02,
                     message="the upload streams to a temporary file")  # fmt: skip
    writer.close()
    await eventually(lambda: not any(incoming.iterdir()), timeout=10,
                     message="the temporary file is gone")  # fmt: skip
    await nothing_kept(files_settings)


async def test_s3_downloads_can_redirect_to_a_presigned_url(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    tmp_path: Path,
    s3_url: str,
) -> None:
    settings = make_settings(**CHEAP, **s3.settings_for(s3_url, s3.new_bucket(s3_url)),
                             s3_presigned_downloads=True, data_dir=tmp_path / "v")  # fmt: skip
    http, admin = await admin_app(aiohttp_client, acli, settings)
    data = PDF + os.urandom(9 * 1024 * 1024)  # more than one part: a multipart upload
    meta = await (await upload(http, admin, "Évaluation finale.pdf", data)).json()
    moved = await http.get(meta["content_url"], headers=admin, allow_redirects=False)
    assert moved.status == 302
    location = moved.headers["Location"]
    assert location.startswith(s3_url)
    assert "X-Amz-Expires=60" in location
    async with aiohttp.ClientSession() as direct, direct.get(location) as got:
        assert got.status == 200
        assert await got.read() == data
        assert got.headers["Content-Type"] == "application/pdf"
        assert "filename*=UTF-8''%C3%89valuation%20finale.pdf" in got.headers["Content-Disposition"]
    assert (await http.delete(f"/api/v1/files/{meta['id']}", headers=admin)).status == 204
    await nothing_kept(settings)


async def test_s3_down_is_503_and_nothing_is_kept(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    tmp_path: Path,
) -> None:
    down = f"http://127.0.0.1:{closed_port()}"
    settings = make_settings(**CHEAP, **s3.settings_for(down, "nowhere"), data_dir=tmp_path / "v")
    http, admin = await admin_app(aiohttp_client, acli, settings)
    answer = await upload(http, admin, "essay.pdf", PDF)
    body = await problem(answer, 503, "storage_unavailable")
    assert "S3 put" in body["detail"]
    assert answer.headers["Retry-After"] == "5"
    assert stored_files(settings) == []  # no temporary file left either
    assert await rows(settings) == 0


@pytest.mark.embedded
async def test_a_start_sweeps_what_crashed_uploads_left(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Temporary files older than a day belong to no upload in progress: they go at start;
    younger ones (another process's upload) stay."""
    settings = make_settings(data_dir=tmp_path / "v")
    incoming = settings.uploads_path / ".incoming"
    incoming.mkdir(parents=True)
    old, fresh = incoming / "old", incoming / "fresh"
    old.write_bytes(b"x" * 100)
    fresh.write_bytes(b"y" * 100)
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    await aiohttp_client(create_app(settings))
    assert not old.exists()
    assert fresh.exists()


@pytest.mark.parametrize(
    ("encoded", "kept"),
    [
        ("a%00b.txt", "ab.txt"),
        ("a%00b%2F..%2F..%2Fc.txt", "c.txt"),
        ("%E2%80%AEtxt.exe.txt", "txt.exe.txt"),
    ],
)
async def test_names_sent_percent_encoded_are_cleaned_too(
    http: Any, people: dict[str, Any], encoded: str, kept: str
) -> None:
    """RFC 5987 `filename*` is decoded by the parser, NUL and all: the cleaning still holds."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f"filename*=UTF-8''{encoded}\r\nContent-Type: text/plain\r\n\r\n"
    )
    body = head.encode() + b"text\r\n" + f"--{BOUNDARY}--\r\n".encode()
    answer = await http.post("/api/v1/files", data=body,
                             headers={**people["student"], "Content-Type": MULTIPART})  # fmt: skip
    assert answer.status == 201, await answer.text()
    assert (await answer.json())["filename"] == kept


@pytest.mark.embedded
async def test_listing_shows_only_the_callers_files(http: Any, people: dict[str, Any]) -> None:
    mine = [await (await upload(http, people["student"], f"mine-{i}.pdf", PDF)).json()
            for i in range(3)]  # fmt: skip
    theirs = await (await upload(http, people["other"], "theirs.pdf", PDF)).json()
    listed = await http.get("/api/v1/files?limit=2", headers=people["student"])
    assert listed.status == 200
    page = await listed.json()
    assert (page["total"], page["limit"], page["offset"], page["next_offset"]) == (3, 2, 0, 2)
    assert [f["id"] for f in page["items"]] == [mine[2]["id"], mine[1]["id"]]  # newest first
    rest = await (await http.get("/api/v1/files?offset=2", headers=people["student"])).json()
    assert [f["id"] for f in rest["items"]] == [mine[0]["id"]]
    other = await (await http.get("/api/v1/files", headers=people["other"])).json()
    assert [f["id"] for f in other["items"]] == [theirs["id"]]
    status = mine[0]["scan_status"]
    same = await (await http.get(f"/api/v1/files?status={status}",
                                 headers=people["student"])).json()  # fmt: skip
    assert same["total"] == 3
    none = await (await http.get("/api/v1/files?status=infected",
                                 headers=people["student"])).json()  # fmt: skip
    assert none == {"items": [], "total": 0, "limit": 50, "offset": 0, "next_offset": None}
    # another owner: admins only
    owner = theirs["owner_id"]
    await problem(await http.get(f"/api/v1/files?owner={owner}", headers=people["student"]),
                  403, "forbidden")  # fmt: skip
    await problem(await http.get(f"/api/v1/files?owner={owner}", headers=people["assessor"]),
                  403, "forbidden")  # fmt: skip
    seen = await (await http.get(f"/api/v1/files?owner={owner}", headers=people["admin"])).json()
    assert [f["id"] for f in seen["items"]] == [theirs["id"]]
    own = await (await http.get("/api/v1/files", headers=people["admin"])).json()
    assert own["total"] == 0
    for bad in ("status=burnt", "limit=0", "limit=101", "offset=-1", "owner=0", "owner=x"):
        await problem(await http.get(f"/api/v1/files?{bad}", headers=people["student"]),
                      422, "validation_failed")  # fmt: skip
    await problem(await http.get("/api/v1/files"), 401, "unauthorized")
