"""What k6 measured, read from its JSON output (`--out json=...`) line by line while it runs:
per request type every duration, the statuses, the failures and the problem codes the script
counted; the VUs; and, per interval, what the live progress shows.

k6 writes about a dozen points per request; only `http_req_duration` (one per request, with
its type, status and whether it was expected), `btec_problems`, `vus` and
`dropped_iterations` are read, by one regular expression over each chunk: the other points
never reach Python, and the tags of a request type are decoded once. Percentiles are k6's own
(linear between the closest ranks), so a figure here is the one k6 judged a threshold by.
"""

from __future__ import annotations

import json
import math
import re
import threading
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# A point of a metric btecctl reads, as k6 (0.x to 1.x) writes it, a line of its own:
# {"metric":NAME,"type":"Point","data":{"time":T,"value":V,"tags":{...}}}. Go writes struct
# fields in order and map keys sorted, so a request type's tags are the same bytes every time
# and are decoded once (ANSWERS_KEPT). Declarations ({"type":"Metric",...}) never match.
WANTED = re.compile(
    rb'\n\{"metric":"(http_req_duration|btec_problems|vus|dropped_iterations)","type":"Point",'
    rb'"data":\{"time":"[^"]*","value":([^,}]+),"tags":(\{[^{}]*\}|null)'
)
ANSWERS_KEPT = 10_000  # distinct tag sets remembered (each a request type and status)
MAX_TYPES = 100  # request types beyond these (untagged URLs) count as OTHER
OTHER = "(other)"


def percentile(ordered: Sequence[float], pct: float) -> float | None:
    """k6's percentile of sorted values: linear between the closest ranks."""
    if not ordered:
        return None
    i = pct / 100 * (len(ordered) - 1)
    low, high = ordered[math.floor(i)], ordered[math.ceil(i)]
    return low + (high - low) * (i - math.floor(i))


@dataclass
class Kind:
    """One request type: its durations (ms), its answers by their tags, its problem codes."""

    durations: array[float] = field(default_factory=lambda: array("d"))
    answers: list[Answer] = field(default_factory=list)
    problems: Counter[str] = field(default_factory=Counter)

    def figures(self, seconds: float) -> dict[str, Any]:
        ordered = sorted(self.durations)
        count = len(ordered)
        statuses, failed, errors = Counter[str](), Counter[str](), Counter[str]()
        for answer in self.answers:
            statuses[answer.status] += answer.count
            if answer.failed:
                failed[answer.status] += answer.count
            if answer.error:
                errors[answer.error] += answer.count

        def ms(pct: float) -> float | None:
            found = percentile(ordered, pct)
            return None if found is None else round(found, 3)

        return {
            "count": count,
            "rate_per_s": round(count / seconds, 3) if seconds > 0 else None,
            "p50_ms": ms(50), "p90_ms": ms(90), "p95_ms": ms(95), "p99_ms": ms(99),
            "max_ms": round(ordered[-1], 3) if ordered else None,
            "failed": sum(failed.values()),
            "statuses": dict(sorted((+statuses).items())),
            "failed_by_status": dict(sorted((+failed).items())),
            "problems": dict(self.problems.most_common()),
            "k6_errors": dict(errors.most_common()),
        }  # fmt: skip


@dataclass(eq=False)
class Answer:
    """One kind of answer to one request type (one set of k6 tags), and how many came: the
    work done per request is a count and a duration, whatever the tags say."""

    kind: Kind
    status: str  # "0": no answer
    failed: bool  # outside the request's expected statuses (k6's expected_response=false)
    error: str  # k6's error code when there was no answer
    count: int = 0


@dataclass(frozen=True)
class Tick:
    """The interval since the previous tick, and the totals so far."""

    seconds: float
    requests: int
    failed: int
    p95_ms: float | None
    vus: int
    total_requests: int
    total_failed: int
    p50_ms: float | None = None
    p99_ms: float | None = None

    def as_dict(self, elapsed: float) -> dict[str, Any]:
        rps = self.requests / self.seconds if self.seconds > 0 else 0.0
        return {"elapsed_s": round(elapsed, 1), "rps": round(rps, 1),
                "p50_ms": None if self.p50_ms is None else round(self.p50_ms, 3),
                "p95_ms": None if self.p95_ms is None else round(self.p95_ms, 3),
                "p99_ms": None if self.p99_ms is None else round(self.p99_ms, 3),
                "failed": self.failed, "vus": self.vus, "requests_total": self.total_requests,
                "failed_total": self.total_failed}  # fmt: skip


class Stream:
    """k6's points, fed from the thread that reads them; ticks and figures for the others."""

    def __init__(self) -> None:
        self.kinds: dict[str, Kind] = {}
        self.vus = 0
        self.dropped_iterations = 0
        self.requests = 0  # as of the last tick
        self.failed = 0
        self._window = array("d")
        self._window_failed = 0
        self._answers: dict[bytes, Answer] = {}
        self._lock = threading.Lock()

    def feed(self, chunk: bytes) -> None:
        """Whole lines of k6's JSON output: the points of WANTED read, the rest skipped by one
        scan in C (most of k6's dozen points per request never reach Python)."""
        found = WANTED.findall(b"\n" + chunk)  # each line starts after a newline, the first too
        with self._lock:
            for metric, value, tags in found:
                if metric == b"http_req_duration":
                    answer = self._answers.get(tags) or self._answer(tags)
                    answer.count += 1
                    answer.kind.durations.append(float(value))
                    self._window.append(float(value))
                    self._window_failed += answer.failed
                else:
                    self._other(metric, float(value), _decode(tags))

    def _answer(self, raw: bytes) -> Answer:
        tags = _decode(raw)
        status = tags.get("status") or "0"
        failed = tags.get("expected_response") == "false"
        answer = Answer(self._kind(tags), status, failed, tags.get("error_code", ""))
        if len(self._answers) < ANSWERS_KEPT:
            self._answers[raw] = answer
        answer.kind.answers.append(answer)
        return answer

    def _kind(self, tags: dict[str, str]) -> Kind:
        name = tags.get("name") or OTHER
        found = self.kinds.get(name)
        if found is None:
            name = name if len(self.kinds) < MAX_TYPES else OTHER
            found = self.kinds.setdefault(name, Kind())
        return found

    def _other(self, metric: bytes, value: float, tags: dict[str, str]) -> None:
        if metric == b"btec_problems":
            problem = tags.get("code") or f"status {tags.get('status', '?')}"
            self._kind(tags).problems[problem] += 1
        elif metric == b"vus":
            self.vus = int(value)
        elif metric == b"dropped_iterations":
            self.dropped_iterations += int(value)

    def tick(self, seconds: float) -> Tick:
        """The `seconds` since the last tick: its requests, failures, p50, p95 and p99."""
        with self._lock:
            window, self._window = self._window, array("d")
            failed, self._window_failed = self._window_failed, 0
            self.requests += len(window)
            self.failed += failed
            totals = (self.vus, self.requests, self.failed)
        ordered = sorted(window)
        return Tick(
            seconds,
            len(window),
            failed,
            percentile(ordered, 95),
            *totals,
            p50_ms=percentile(ordered, 50),
            p99_ms=percentile(ordered, 99),
        )

    def figures(self, seconds: float) -> dict[str, Any]:
        """Per request type and over all of them, for a run of `seconds`."""
        with self._lock:
            every = Kind()
            for kind in self.kinds.values():
                every.durations.extend(kind.durations)
                every.answers.extend(kind.answers)
                every.problems.update(kind.problems)
            by_type = {name: kind.figures(seconds) for name, kind in sorted(self.kinds.items())}
        return {"all": every.figures(seconds), "by_type": by_type,
                "dropped_iterations": self.dropped_iterations}  # fmt: skip


def _decode(raw: bytes) -> dict[str, str]:
    """k6's tags; a tag value with a brace in it (cut short by WANTED) counts as OTHER."""
    try:
        tags = json.loads(raw)
    except ValueError:
        return {"name": OTHER}
    return tags if isinstance(tags, dict) else {}
