"""The one redactor for log lines and Sentry events: secrets by key and by look.

By key: any mapping key whose name contains authorization, cookie, password, passwd, token,
secret, api_key, apikey or dsn has its value replaced, at any depth. By look, in any string:
`Bearer <credentials>`, JWT-shaped strings, `password=...`-style pairs (libpq conninfo,
messages), and the password in `scheme://user:password@host` URLs. Lists, tuples and nested
mappings are walked; other values are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"
SECRET_KEY_PARTS = ("authorization", "cookie", "password", "passwd", "token", "secret",
                    "api_key", "apikey", "dsn")  # fmt: skip
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*):[^\s/@]+@")
# key=value and key: value pairs in free text (libpq conninfo, exception messages).
_PAIR = re.compile(r"(?i)\b((?:password|passwd|pwd|secret|token|api_key|apikey)\w*)(\s*[=:]\s*)"
                   r"(\"[^\"]*\"|'[^']*'|[^\s,;&\"']+)")  # fmt: skip
# Strings without any of these need no work.
_QUICK = re.compile(r"(?i)bearer|basic|eyJ|://|password|passwd|pwd|secret|token|api_?key")
_MAX_DEPTH = 8


def secret_key(key: object) -> bool:
    name = str(key).lower()
    return any(part in name for part in SECRET_KEY_PARTS)


def redact_text(text: str) -> str:
    if not _QUICK.search(text):
        return text
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    text = _PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{REDACTED}@", text)


def redact(value: Any, depth: int = 0, max_depth: int = _MAX_DEPTH) -> Any:
    """A copy of `value` with secrets replaced; `value` itself is not changed. Containers
    deeper than `max_depth` are left as they are."""
    if isinstance(value, str):
        return redact_text(value)
    if depth >= max_depth:
        return value
    if isinstance(value, Mapping):
        return {
            k: REDACTED if secret_key(k) else redact(v, depth + 1, max_depth)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v, depth + 1, max_depth) for v in value)
    return value
