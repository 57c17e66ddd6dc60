"""A loopback stand-in for Sentry's ingestion endpoint, run as its own process (sentry-sdk's
AioHttpIntegration instruments every aiohttp app in the process it runs in, so it cannot share
the test's). It answers 200 to `POST /api/<project>/envelope/` and appends each envelope's
items, decompressed and parsed, to a JSON-lines file; a fake only in that it stores instead of
processing. `python -m tests.support.sentry_sink PORT OUT_FILE`; SinkProcess runs it for a test.

At the top this module imports only the standard library, so the sink's process starts fast.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Sink(BaseHTTPRequestHandler):
    out_file = ""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding == "br":
            import brotli  # type: ignore[import-not-found]

            body = brotli.decompress(body)
        lines = body.split(b"\n")
        header = json.loads(lines[0])
        items = []
        i = 1
        while i < len(lines) and lines[i].strip():
            item_header = json.loads(lines[i])
            payload = lines[i + 1] if i + 1 < len(lines) else b"{}"
            try:
                parsed = json.loads(payload)
            except ValueError:
                parsed = payload.decode(errors="replace")
            items.append({"type": item_header.get("type"), "payload": parsed})
            i += 2
        record = {"path": self.path, "auth": self.headers.get("X-Sentry-Auth", ""),
                  "header": header, "items": items}  # fmt: skip
        with open(self.out_file, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"id": "accepted"}')

    def log_message(self, *args: object) -> None:
        pass


class SinkProcess:
    """The sink running in its own process, writing to `out`; what it received, read back."""

    def __init__(self, out: Path) -> None:
        from tests.support.env import free_port

        self.out = out
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.sentry_sink", str(self.port), str(out)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.port}/1"

    def envelopes(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines()]

    def items(self, kind: str) -> list[dict[str, Any]]:
        """The payloads of the items of `kind` ("event", "transaction") received so far."""
        return [i["payload"] for e in self.envelopes() for i in e["items"] if i["type"] == kind]

    def wait_items(self, kind: str, count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
        """The items of `kind`, once at least `count` have arrived."""
        from tests.support.wait import eventually_sync

        return eventually_sync(
            lambda: self.items(kind), lambda found: len(found) >= count, timeout=timeout,
            message=f"{count} {kind}(s) at the sink",
        )  # fmt: skip

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def main() -> None:
    port, out_file = int(sys.argv[1]), sys.argv[2]
    Sink.out_file = out_file
    server = ThreadingHTTPServer(("127.0.0.1", port), Sink)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
