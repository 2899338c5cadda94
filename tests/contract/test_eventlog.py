"""One contract for every EventLog backend (memory today; Redis with the cluster work)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from hubbub.cluster.eventlog import EventLog, EventMeta, LogEntry, MemoryEventLog

Factory = Callable[..., EventLog]


@pytest.fixture(params=["memory"])
async def make_log(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    def factory(**kw: float) -> EventLog:
        return MemoryEventLog(**kw)  # type: ignore[arg-type]

    yield factory


META = EventMeta("posted")


async def test_positions_are_per_user_and_gap_free(make_log: Factory) -> None:
    log = make_log()
    await log.append(["a", "b"], b'{"n":1}', META)
    await log.append(["a"], b'{"n":2}', META)
    assert await log.head("a") == 2
    assert await log.head("b") == 1
    page = await log.read("a", 0)
    assert [e.pos for e in page.entries] == [1, 2]
    assert [e.payload for e in page.entries] == [b'{"n":1}', b'{"n":2}']
    assert not page.limited and not page.truncated


async def test_read_pages_with_limit(make_log: Factory) -> None:
    log = make_log()
    for i in range(10):
        await log.append(["a"], str(i).encode(), META)
    first = await log.read("a", 0, limit=4)
    assert [e.pos for e in first.entries] == [1, 2, 3, 4] and first.limited
    rest = await log.read("a", 4, limit=100)
    assert [e.pos for e in rest.entries] == list(range(5, 11)) and not rest.limited
    assert rest.upto == 10


async def test_retention_keeps_min_events_and_reports_truncation(make_log: Factory) -> None:
    log = make_log(min_events=5, min_age_seconds=0, max_events=5)
    for i in range(12):
        await log.append(["a"], str(i).encode(), META)
    page = await log.read("a", 7)
    assert [e.pos for e in page.entries] == [8, 9, 10, 11, 12] and not page.truncated
    gap = await log.read("a", 2)
    assert gap.truncated


async def test_subscribers_hear_every_append_in_order(make_log: Factory) -> None:
    log = make_log()
    heard: list[LogEntry] = []
    log.subscribe(heard.append)
    await log.append(["a", "b"], b"x", META)
    await log.append(["b"], b"y", META)
    assert [(e.user_id, e.pos, e.payload) for e in heard] == [
        ("a", 1, b"x"),
        ("b", 1, b"x"),
        ("b", 2, b"y"),
    ]


async def test_empty_log_reads(make_log: Factory) -> None:
    log = make_log()
    page = await log.read("nobody", 0)
    assert page.entries == [] and not page.truncated and page.upto == 0
    assert log.epoch


def test_meta_connection_targeting() -> None:
    assert EventMeta("x", connection_id="c1").matches("c1")
    assert not EventMeta("x", connection_id="c1").matches("c2")
    assert not EventMeta("x", omit_connection_id="c1").matches("c1")
    assert EventMeta("x", omit_connection_id="c1").matches("c2")
