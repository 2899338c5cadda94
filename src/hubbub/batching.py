"""Coalescing many concurrent small requests into one batch (session lookups, presence writes).

A `Batcher` takes `submit(key, value)` calls from many tasks and hands them to one
`handle(batch)` call: everything submitted while the previous batch ran, or in the same turn of
the event loop, goes together. One batch runs at a time, so batches apply in submission order;
within a batch a key appears once, with the value submitted last (a user who connected and
disconnected before the batch ran is written once, as disconnected).

Why: 1,000 websockets opened at once each looked up their session and wrote their user's
status, 1,000 queries and 1,000 write transactions queued one by one on SQLite's single writer
(issue 17). Batched, that is a handful of queries and transactions, each as cheap as one.

Reads can be coalesced the same way (`submit_many`, statuses on SQLite): a read submitted while
a batch is running goes in the next one, so it never sees data older than its own request.

The runner task starts in an empty context: what a batch does must not depend on which caller
happened to start it (the request-scoped read routing of `hubbub.store.consistency` is a
context variable).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")

log = logging.getLogger("hubbub.batching")


class Batcher(Generic[K, V, R]):
    """`handle` gets `{key: value}` and returns `{key: result}` (a key it leaves out gets
    `default`); if it raises, every caller of that batch gets the exception."""

    def __init__(
        self,
        handle: Callable[[dict[K, V]], Awaitable[Mapping[K, R]]],
        default: R,
        *,
        max_batch: int = 500,
    ) -> None:
        self._handle = handle
        self._default = default
        self.max_batch = max_batch
        self._values: dict[K, V] = {}
        self._waiters: dict[K, list[asyncio.Future[R]]] = {}
        self._runner: asyncio.Task[None] | None = None
        self.batches = 0  # batches handled so far (tests and metrics read it)

    async def submit(self, key: K, value: V) -> R:
        return await self._enqueue(key, value)

    async def submit_many(self, keys: Sequence[K], value: V) -> list[R]:
        """`submit(key, value)` for each of `keys` at once: their results, in order."""
        futures = [self._enqueue(key, value) for key in keys]
        return list(await asyncio.gather(*futures))

    def _enqueue(self, key: K, value: V) -> asyncio.Future[R]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._values[key] = value
        self._waiters.setdefault(key, []).append(future)
        if self._runner is None:
            self._runner = loop.create_task(self._run(), context=contextvars.Context())
        return future

    async def _run(self) -> None:
        try:
            while self._values:
                keys = list(self._values)[: self.max_batch]
                batch = {k: self._values.pop(k) for k in keys}
                waiters = {k: self._waiters.pop(k) for k in keys}
                self.batches += 1
                try:
                    results = await self._handle(batch)
                except Exception as exc:
                    for futures in waiters.values():
                        for f in futures:
                            if not f.done():
                                f.set_exception(exc)
                    continue
                for k, futures in waiters.items():
                    result = results.get(k, self._default)
                    for f in futures:
                        if not f.done():
                            f.set_result(result)
        finally:
            self._runner = None
            if self._values:
                # Cancelled with work left (shutdown): nobody will run it; fail its callers.
                for futures in self._waiters.values():
                    for f in futures:
                        if not f.done():
                            f.cancel()
                self._values.clear()
                self._waiters.clear()
