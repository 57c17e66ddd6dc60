"""A steady load for the fault suite: a few threads sending one request after another to a
server, each answer recorded (status, problem code, Retry-After, seconds), until stopped."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType


@dataclass(frozen=True)
class Answer:
    at: float  # when it was sent, on the monotonic clock
    status: int  # 0: no answer (the connection failed or timed out)
    code: str | None  # a problem's `code`
    retry_after: str | None
    seconds: float


@dataclass
class SteadyLoad:
    """`threads` clients sending `method path` (with `headers` and `body`) back to back,
    `pause` seconds apart, until the `with` block ends."""

    port: int
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "GET"
    body: bytes | None = None
    threads: int = 4
    pause: float = 0.02
    timeout: float = 30.0
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> SteadyLoad:
        for n in range(self.threads):
            worker = threading.Thread(target=self._run, name=f"load-{n}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(self.timeout + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.answers.append(self._one())
            self._stop.wait(self.pause)

    def _one(self) -> Answer:
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.request(self.method, self.path, body=self.body, headers=self.headers)
            response = conn.getresponse()
            body = response.read()
            code = None
            if response.headers.get("Content-Type", "").startswith("application/problem+json"):
                code = json.loads(body).get("code")
            return Answer(started, response.status, code, response.headers.get("Retry-After"),
                          time.monotonic() - started)  # fmt: skip
        except (OSError, http.client.HTTPException):
            return Answer(started, 0, None, None, time.monotonic() - started)
        finally:
            conn.close()

    def since(self, moment: float) -> list[Answer]:
        return [a for a in self.answers if a.at >= moment]

    def statuses(self) -> Counter[tuple[int, str | None]]:
        return Counter((a.status, a.code) for a in self.answers)
