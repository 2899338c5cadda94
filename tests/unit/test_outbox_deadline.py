"""A writer never waits for its event's append longer than `PUBLISH_DEADLINE`, even when the
append does not give up when cancelled (the Redis client's retries can swallow a cancel: after
a Sentinel failover that held writers for about 2 s). The append goes on by itself and marks
its row published if it succeeds; no database is needed for an event without a channel."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hubbub.cluster.eventlog import EventMeta, MemoryEventLog
from hubbub.cluster.outbox import PUBLISH_DEADLINE, Outbox, OutboxRow
from tests.support.wait import wait_until_async


class StubbornLog(MemoryEventLog):
    """Appends after `release` is set, whatever cancels it meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.cancels = 0

    async def append(self, *args: Any, **kwargs: Any) -> None:
        while not self.release.is_set():
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancels += 1  # swallowed, as a retry loop that catches it would
        await super().append(*args, **kwargs)


async def test_the_writer_gets_its_answer_at_the_deadline_and_the_append_goes_on() -> None:
    log = StubbornLog()
    box = Outbox(db=Any, eventlog=log)  # type: ignore[arg-type]
    row = OutboxRow("e1", ["u1"], b'{"event":"user_updated"}', EventMeta("user_updated"))
    started = time.monotonic()
    publishing = asyncio.create_task(box.publish(row))
    try:
        done, _ = await asyncio.wait({publishing}, timeout=PUBLISH_DEADLINE + 2)
        took = time.monotonic() - started
        assert done, "the writer was still waiting for its append"
        assert took < PUBLISH_DEADLINE + 0.4, took
        assert box.deferred == 1
        assert (await log.read("u1", 0)).entries == []
    finally:
        # The append finishes later by itself (and lets a failed run end).
        log.release.set()
    await publishing
    # Its row is marked published in the next flush.
    await wait_until_async(lambda: box._published == ["e1"], 5, "the late append to finish")
    assert len((await log.read("u1", 0)).entries) == 1
