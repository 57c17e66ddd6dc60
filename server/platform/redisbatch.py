"""Lua scripts run on Redis in batches: the calls made while the previous batch is on its way
(or, when none is, in one event-loop turn), whatever their scripts, go to Redis as one EVALSHA
that runs every call in order.

redis-py's asyncio client spends about 60-100 µs of CPU per command (connection checkout, retry
wrapper, packing, socket wake-ups, parsing), and more for a pipeline; under load that was the
largest cost of a rate-limit decision, a logout check and a cache hit. Here concurrent
requests' calls share one command: with one batch at a time on the wire, the busier the
server, the larger each batch, while an idle server sends each call at once. Each call stays
atomic (Redis runs a script alone), and a batch runs in well under a millisecond because every
script in it is O(1). A call waits at most for the batch ahead of it and then its own, each
cut off at `timeout`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

Call = tuple[int, Sequence[Any], Sequence[Any], asyncio.Future[Any]]

# Every one-call script seen so far (which reads KEYS and ARGV) as a function, and a loop that
# runs a batch's calls. ARGV: the number of calls, then per call "INDEX NKEYS NARGS" (its
# script's index, key count and argument count; one argument costs less to send than three)
# and its arguments; KEYS: every call's keys in order. Returns each call's reply, in order.
FUNCTION = """fns[{index}] = function(KEYS, ARGV)
{body}
end
"""
DISPATCH = """local fns = {{}}
{functions}
local out, k, pos = {{}}, 1, 2
for c = 1, tonumber(ARGV[1]) do
  local fn, nk, na = string.match(ARGV[pos], '(%d+) (%d+) (%d+)')
  fn, nk, na = tonumber(fn), tonumber(nk), tonumber(na)
  pos = pos + 1
  local keys, args = {{}}, {{}}
  for i = 1, nk do keys[i] = KEYS[k]; k = k + 1 end
  for i = 1, na do args[i] = ARGV[pos]; pos = pos + 1 end
  out[c] = fns[fn](keys, args)
end
return out
"""


class ScriptBatcher:
    """`await batcher.run(LUA, keys, args)` runs one-call script LUA (which must return a
    value, never nil) as part of the next batch. The dispatch script holds every
    script seen so far (a handful, known from the code): it is loaded again when a new one
    appears and after Redis restarts. Redis errors, and a batch slower than `timeout` seconds
    (TimeoutError), raise in every caller of the batch."""

    def __init__(self, client: aioredis.Redis, timeout: float = 5.0) -> None:
        self.client = client
        self.timeout = timeout  # per batch: one timer for all its callers
        self._index: dict[str, int] = {}  # script -> its place in the dispatch script
        self._sha: str | None = None  # of the dispatch script with every script in _index
        self._pending: list[Call] = []
        self._scheduled = False  # a flush is due at the next loop turn
        self._busy = False  # a batch is on its way: new calls wait for it and go together

    async def run(self, script: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        return await self.submit(script, keys, args)

    def submit(self, script: str, keys: Sequence[Any], args: Sequence[Any]) -> asyncio.Future[Any]:
        """Join the next batch without waiting: the future holds the reply. A call started
        early goes with whatever else is sent meanwhile (a rate-limit decision, say) instead of
        costing a round trip of its own later. An error in a reply nobody
        awaits (the request ended first) is dropped without asyncio's warning."""
        index = self._index.get(script)
        if index is None:
            index = self._index[script] = len(self._index) + 1
            self._sha = None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        future.add_done_callback(_retrieve)
        self._pending.append((index, keys, args, future))
        if not self._scheduled and not self._busy:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        self._busy = True
        task = asyncio.ensure_future(self._send(batch))
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Future[None]) -> None:
        """One batch at a time: what arrived meanwhile goes now, as the next batch."""
        _consume(task)
        self._busy = False
        if self._pending and not self._scheduled:
            self._scheduled = True
            task.get_loop().call_soon(self._flush)

    async def _send(self, batch: list[Call]) -> None:
        keys, argv = _flatten(batch)
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    replies = await self.client.evalsha(await self._loaded(), len(keys), *keys,
                                                        *argv)  # fmt: skip
                except NoScriptError:  # Redis restarted and lost its scripts
                    self._sha = None
                    replies = await self.client.evalsha(await self._loaded(), len(keys), *keys,
                                                        *argv)  # fmt: skip
        except Exception as exc:
            _fail(batch, exc)
            return
        for (*_, future), result in zip(batch, replies, strict=True):
            if not future.done():  # done: its caller gave up (a timeout)
                future.set_result(result)

    async def _loaded(self) -> str:
        """The SHA of the dispatch script for every script known now, loading it if needed."""
        if self._sha is None:
            scripts = sorted(self._index.items(), key=lambda item: item[1])
            functions = "".join(FUNCTION.format(index=i, body=body) for body, i in scripts)
            known = len(scripts)
            sha = str(await self.client.script_load(DISPATCH.format(functions=functions)))
            if len(self._index) == known:  # no script appeared while loading
                self._sha = sha
            return sha
        return self._sha


def _flatten(calls: list[Call]) -> tuple[list[Any], list[Any]]:
    keys: list[Any] = []
    argv: list[Any] = [len(calls)]
    for index, call_keys, call_args, _ in calls:
        keys.extend(call_keys)
        argv.append(f"{index} {len(call_keys)} {len(call_args)}")
        argv.extend(call_args)
    return keys, argv


def _fail(calls: list[Call], exc: BaseException) -> None:
    for *_, future in calls:
        if not future.done():
            future.set_exception(exc)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # marks an error as seen; whoever awaits still gets it


def _consume(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # errors were handed to the waiting callers already
