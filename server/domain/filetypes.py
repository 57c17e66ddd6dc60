"""What an upload is: its extension must be on the allowlist and its content must agree.

Magic bytes come from the `filetype` library. Office files (DOCX, PPTX, XLSX) are ZIPs: the
ZIP's own directory says which kind it is (`word/`, `ppt/`, `xl/` beside
`[Content_Types].xml`), and every entry is inflated once, counting bytes, so a ZIP that lies
about its sizes or unpacks past the caps is refused before anyone opens it. Text must be
UTF-8 without NUL bytes.
"""

from __future__ import annotations

import codecs
import unicodedata
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import filetype

HEAD_BYTES = 8192  # what filetype looks at
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Kind:
    name: str  # the canonical extension
    content_type: str
    magic: frozenset[str] = frozenset()  # filetype's extensions that prove it
    office: str | None = None  # the ZIP folder of its main part


def _kind(name: str, content_type: str, *magic: str, office: str | None = None) -> Kind:
    return Kind(name, content_type, frozenset(magic), office)


KINDS: dict[str, Kind] = {
    "pdf": _kind("pdf", "application/pdf", "pdf"),
    "docx": _kind(
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        office="word/",
    ),
    "pptx": _kind(
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        office="ppt/",
    ),
    "xlsx": _kind(
        "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", office="xl/"
    ),
    "png": _kind("png", "image/png", "png"),
    "jpg": _kind("jpg", "image/jpeg", "jpg"),
    "jpeg": _kind("jpg", "image/jpeg", "jpg"),
    "txt": _kind("txt", "text/plain; charset=utf-8"),
    "mp3": _kind("mp3", "audio/mpeg", "mp3"),
    "m4a": _kind("m4a", "audio/mp4", "m4a", "mp4"),  # an M4A is an MP4 holding audio
    "wav": _kind("wav", "audio/wav", "wav"),
}


@lru_cache(maxsize=8)
def parse_allowed(spec: str) -> frozenset[str]:
    """BTEC_UPLOAD_TYPES: known extensions, comma-separated (parsed once per value, not on
    every upload)."""
    found = frozenset(v.strip().lower().lstrip(".") for v in spec.split(",") if v.strip())
    unknown = sorted(found - KINDS.keys())
    if unknown:
        raise ValueError(f"unknown types {unknown}; known: {', '.join(sorted(KINDS))}")
    if not found:
        raise ValueError("at least one type is needed")
    return found


class Rejected(Exception):
    """The file is not what it must be; `code` is the problem code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ZipLimits:
    max_entries: int
    max_bytes: int
    max_ratio: float


def extension(filename: str) -> str:
    stem, dot, ext = filename.rpartition(".")
    return ext.lower() if dot and stem else ""


def check(path: Path, filename: str, allowed: frozenset[str], limits: ZipLimits) -> Kind:
    """The file's kind, or Rejected. Reads the file; for Office files, inflates every entry
    (run it in a thread)."""
    ext = extension(filename)
    if ext not in allowed:
        raise Rejected(
            "unsupported_type",
            f"files ending .{ext or '(none)'} are not accepted; accepted: "
            + ", ".join(sorted(allowed)),
        )
    kind = KINDS[ext]
    if kind.office is not None:
        _check_office(path, kind, limits)
    elif kind.name == "txt":
        _check_text(path)
    else:
        with path.open("rb") as f:
            guessed = filetype.guess(f.read(HEAD_BYTES))
        if guessed is None or guessed.extension not in kind.magic:
            raise Rejected(
                "unsupported_type",
                f"the content is not {kind.name.upper()}"
                + (f" (it looks like {guessed.extension.upper()})" if guessed else ""),
            )
    return kind


def _check_text(path: Path) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            if b"\x00" in chunk:
                raise Rejected("unsupported_type", "the content is not text (it holds NUL bytes)")
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                raise Rejected("unsupported_type", "the content is not UTF-8 text") from None
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise Rejected("unsupported_type", "the content is not UTF-8 text") from None


def _check_office(path: Path, kind: Kind, limits: ZipLimits) -> None:
    if kind.office is None:
        raise RuntimeError(f"{kind.name} is not an office format")
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            names = {e.filename for e in entries}
            if "[Content_Types].xml" not in names or not any(
                n.startswith(kind.office) for n in names
            ):
                raise Rejected("unsupported_type", f"the content is not {kind.name.upper()}")
            if len(entries) > limits.max_entries:
                raise Rejected(
                    "unsafe_archive", f"{len(entries)} entries (at most {limits.max_entries})"
                )
            _inflate_all(archive, entries, limits)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError):
        raise Rejected("unsupported_type", f"the content is not {kind.name.upper()}") from None


def _inflate_all(
    archive: zipfile.ZipFile, entries: list[zipfile.ZipInfo], limits: ZipLimits
) -> None:
    """Inflate every entry, counting what comes out: declared sizes are not trusted."""
    total = 0
    for entry in entries:
        if entry.flag_bits & 0x1:
            raise Rejected("unsafe_archive", f"{_shown(entry.filename)} is encrypted")
        if entry.file_size > limits.max_bytes:
            raise Rejected("unsafe_archive", f"{_shown(entry.filename)} unpacks too large")
        out = 0
        with archive.open(entry) as member:
            while chunk := member.read(_CHUNK):
                out += len(chunk)
                total += len(chunk)
                if total > limits.max_bytes:
                    raise Rejected(
                        "unsafe_archive", f"unpacks to more than {limits.max_bytes} bytes"
                    )
                if out > limits.max_ratio * max(entry.compress_size, 1) and out > _CHUNK:
                    raise Rejected(
                        "unsafe_archive",
                        f"{_shown(entry.filename)} is compressed more than "
                        f"{limits.max_ratio:g} to 1",
                    )


def _shown(name: str) -> str:
    """An entry name fit for a message: printable, at most 80 characters."""
    clean = "".join(c if unicodedata.category(c)[0] != "C" else "?" for c in name)
    return repr(clean[:80])


def clean_filename(raw: str | None, max_bytes: int = 200) -> str:
    """The name a client gave, safe to store and to send back in Content-Disposition: its
    last path component, NFC, no control or format characters, no leading dots, at most
    `max_bytes` of UTF-8 with the extension kept."""
    name = unicodedata.normalize("NFC", raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] not in ("C", "Z") or c == " ")
    name = " ".join(name.split()).lstrip(". ")
    if not name:
        return "file"
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode()) > 16:
        stem, ext = name, ""
    suffix = f".{ext}" if ext else ""
    budget = max_bytes - len(suffix.encode())
    cut = stem.encode()[:budget].decode("utf-8", errors="ignore").rstrip(". ") or "file"
    return cut + suffix
