"""What the worst bodies an anonymous client can send cost the server: JSON bodies at the size
limit (BTEC_MAX_BODY_BYTES, 1 MiB) shaped to be as expensive as the limits allow, against an
ordinary sign-in body.

For each shape it reports the CPU per parse (`server.http.parsing.loads`, the step every JSON
body passes before any schema) as the median of several rounds, the answer it gets (what the
client sees), and the peak memory the parse allocates (tracemalloc). The parse is where
the limits act: nesting, integers, strings and UTF-8 are checked there, so this is the bound.

`python perf/hardening_bench.py [--rounds 7]`
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tracemalloc
from collections.abc import Callable

from server.domain.errors import DomainError
from server.http.parsing import MAX_DEPTH, loads

LIMIT = 1024 * 1024
ORDINARY = json.dumps({"email": "ada@example.org", "password": "correct horse battery"}).encode()


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def pad_to_limit(item: bytes) -> bytes:
    """A JSON array of `item`s, as many as fit in the size limit."""
    count = (LIMIT - 2) // (len(item) + 1)
    return b"[" + b",".join([item] * count) + b"]"


SHAPES: dict[str, bytes] = {
    "ordinary sign-in body": ORDINARY,
    f"nesting at the limit ({MAX_DEPTH}), repeated to 1 MiB": pad_to_limit(nested(MAX_DEPTH - 1)),
    "nesting past the limit: 1 MiB of '['": b"[" * LIMIT,
    f"nesting {MAX_DEPTH + 1} deep": nested(MAX_DEPTH + 1),
    "1 MiB of small integers": pad_to_limit(b"7"),
    "1 MiB of 19-digit integers": pad_to_limit(b"9" * 18),
    "a 20-digit integer": b"[" + b"9" * 20 + b"]",
    "a 1 MiB string": b'"' + b"a" * (LIMIT - 2) + b'"',
    "a 1 MiB string ending in NUL": b'"' + b"a" * (LIMIT - 8) + b'\\u0000"',
    "1 MiB of short strings": pad_to_limit(b'"abcdefgh"'),
    "1 MiB of empty objects": pad_to_limit(b"{}"),
    "1 MiB, invalid UTF-8 at the end": b'"' + b"a" * (LIMIT - 3) + b'\xff"',
}


def outcome(body: bytes) -> str:
    try:
        loads(body)
    except DomainError as exc:
        return f"{exc.status} {exc.code}"
    return "parsed"


def cpu_per_call(body: bytes, rounds: int) -> float:
    """Median CPU seconds of one parse (refusals included) over `rounds` rounds."""
    timings = []
    for _ in range(rounds):
        started = time.process_time()
        outcome(body)
        timings.append(time.process_time() - started)
    return statistics.median(timings)


def peak_bytes(run: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(f"{'shape':<48} {'bytes':>9} {'answer':>24} {'CPU ms':>8} {'peak MiB':>9}")
    for name, body in SHAPES.items():
        seconds = cpu_per_call(body, args.rounds)
        peak = peak_bytes(lambda body=body: outcome(body))  # type: ignore[misc]
        print(f"{name:<48} {len(body):>9} {outcome(body):>24} {seconds * 1000:>8.2f} "
              f"{peak / 2**20:>9.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
