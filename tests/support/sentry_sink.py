"""A loopback stand-in for Sentry's ingestion endpoint, run as its own process (sentry-sdk's
AioHttpIntegration instruments every aiohttp app in the process it runs in, so it cannot share
the test's). It answers 200 to `POST /api/<project>/envelope/` and appends each envelope's
items, decompressed and parsed, to a JSON-lines file; a fake only in that it stores instead of
processing. `python -m tests.sentry_sink PORT OUT_FILE`
"""

from __future__ import annotations

import gzip
import json
import sys
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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


def main() -> None:
    port, out_file = int(sys.argv[1]), sys.argv[2]
    Sink.out_file = out_file
    server = ThreadingHTTPServer(("127.0.0.1", port), Sink)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
