"""One contract for every EventLog backend (memory and Redis), then Redis' cluster behaviour.

Delivery to subscribers is synchronous in memory and goes through pub/sub with Redis, so the
contract waits (with a deadline) for what subscribers hear.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from redis.asyncio import Redis

from hubbub.cluster.connections import Checkpoint, ConnectionRecord
from hubbub.cluster.eventlog import Delivery, EventLog, EventMeta, LogEntry, MemoryEventLog
from hubbub.cluster.redis_eventlog import RedisEventLog
from hubbub.realtime.protocol import encode_event_body
from tests.support.hubrig import Rig, Socket
from tests.support.redis import RedisInstance, redis_server_binary, start_redis
from tests.support.sentinel import SentinelSet, start_sentinel_set
from tests.support.wait import wait_until_async

Factory = Callable[..., Awaitable[EventLog]]

_prefixes = itertools.count()


def collect(into: list[LogEntry]) -> Callable[[Delivery], None]:
    """A subscriber that keeps every position it hears, one LogEntry per recipient."""
    return lambda delivery: into.extend(delivery.entries())


def fresh_prefix() -> str:
    return f"t{next(_prefixes)}:"


class RedisNodes:
    """RedisEventLog instances ("nodes") on one Redis; each has its own client."""

    def __init__(self, server: RedisInstance | SentinelSet) -> None:
        self.server = server
        self.clients: list[Redis] = []
        self.logs: list[RedisEventLog] = []

    def client(self) -> Redis:
        client = self.server.client()
        self.clients.append(client)
        return client

    async def node(self, prefix: str, **kw: float) -> RedisEventLog:
        log = RedisEventLog(self.client(), f"node{len(self.logs)}", prefix=prefix, **kw)
        self.logs.append(log)
        await log.start()
        return log

    async def close(self) -> None:
        for log in self.logs:
            await log.stop()
        for client in self.clients:
            await client.aclose()


@pytest.fixture
def redis_server() -> Iterator[RedisInstance]:
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def nodes(redis_server: RedisInstance) -> AsyncIterator[RedisNodes]:
    group = RedisNodes(redis_server)
    try:
        yield group
    finally:
        await group.close()


@pytest.fixture(params=["memory", "redis", "sentinel"])
async def make_log(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    if request.param == "memory":

        async def memory_factory(**kw: float) -> EventLog:
            return MemoryEventLog(**kw)

        yield memory_factory
        return
    server = "redis_server" if request.param == "redis" else "sentinel_set"
    group = RedisNodes(request.getfixturevalue(server))

    async def redis_factory(**kw: float) -> EventLog:
        return await group.node(fresh_prefix(), **kw)

    try:
        yield redis_factory
    finally:
        await group.close()


META = EventMeta("posted")


async def test_positions_are_per_user_and_gap_free(make_log: Factory) -> None:
    log = await make_log()
    await log.append(["a", "b"], b'{"n":1}', META)
    await log.append(["a"], b'{"n":2}', META)
    assert await log.head("a") == 2
    assert await log.head("b") == 1
    page = await log.read("a", 0)
    assert [e.pos for e in page.entries] == [1, 2]
    assert [e.payload for e in page.entries] == [b'{"n":1}', b'{"n":2}']
    assert not page.limited and not page.truncated


async def test_a_read_in_another_epoch_is_truncated(make_log: Factory) -> None:
    log = await make_log()
    await log.append(["a"], b'{"n":1}', META)
    assert [e.pos for e in (await log.read("a", 0, epoch=log.epoch)).entries] == [1]
    page = await log.read("a", 0, epoch="an epoch this log never had")
    assert page.truncated and page.entries == []


async def test_read_pages_with_limit(make_log: Factory) -> None:
    log = await make_log()
    for i in range(10):
        await log.append(["a"], str(i).encode(), META)
    first = await log.read("a", 0, limit=4)
    assert [e.pos for e in first.entries] == [1, 2, 3, 4] and first.limited
    rest = await log.read("a", 4, limit=100)
    assert [e.pos for e in rest.entries] == list(range(5, 11)) and not rest.limited
    assert rest.upto == 10


async def test_retention_keeps_min_events_and_reports_truncation(make_log: Factory) -> None:
    log = await make_log(min_events=5, min_age_seconds=0, max_events=5)
    for i in range(12):
        await log.append(["a"], str(i).encode(), META)
    page = await log.read("a", 7)
    assert [e.pos for e in page.entries] == [8, 9, 10, 11, 12] and not page.truncated
    gap = await log.read("a", 2)
    assert gap.truncated


async def test_subscribers_hear_every_append_in_order(make_log: Factory) -> None:
    log = await make_log()
    heard: list[LogEntry] = []
    log.subscribe(collect(heard))
    await log.append(["a", "b"], b"x", META)
    await log.append(["b"], b"y", META)
    await wait_until_async(lambda: len(heard) >= 3, what="three entries heard")
    assert [(e.user_id, e.pos, e.payload) for e in heard] == [
        ("a", 1, b"x"),
        ("b", 1, b"x"),
        ("b", 2, b"y"),
    ]


async def test_empty_log_reads(make_log: Factory) -> None:
    log = await make_log()
    page = await log.read("nobody", 0)
    assert page.entries == [] and not page.truncated and page.upto == 0
    assert log.epoch


def test_meta_connection_targeting() -> None:
    assert EventMeta("x", connection_id="c1").matches("c1")
    assert not EventMeta("x", connection_id="c1").matches("c2")
    assert not EventMeta("x", omit_connection_id="c1").matches("c1")
    assert EventMeta("x", omit_connection_id="c1").matches("c2")


async def test_append_is_idempotent_by_event_id(make_log: Factory) -> None:
    log = await make_log()
    heard: list[LogEntry] = []
    log.subscribe(collect(heard))
    await log.append(["a", "b"], b"once", META, event_id="ev1")
    await log.append(["a", "b"], b"once", META, event_id="ev1")
    await log.append(["a"], b"next", META, event_id="ev2")
    await wait_until_async(lambda: any(e.payload == b"next" for e in heard), what="the later event")
    assert [(e.user_id, e.pos, e.payload) for e in heard] == [
        ("a", 1, b"once"),
        ("b", 1, b"once"),
        ("a", 2, b"next"),
    ]
    assert await log.head("a") == 2 and await log.head("b") == 1


async def test_meta_and_creation_time_round_trip(make_log: Factory) -> None:
    log = await make_log()
    heard: list[LogEntry] = []
    log.subscribe(collect(heard))
    meta = EventMeta("typing", ephemeral=True, connection_id="c1", omit_connection_id="c2")
    await log.append(["a"], b'{"e":"typing"}', meta)
    page = await log.read("a", 0)
    await wait_until_async(lambda: len(heard) == 1, what="the entry heard")
    for entry in (page.entries[0], heard[0]):
        assert entry.meta == meta
        assert entry.created > 1_600_000_000


async def test_commit_xid_round_trips(make_log: Factory) -> None:
    log = await make_log()
    heard: list[LogEntry] = []
    log.subscribe(collect(heard))
    await log.append(["a"], b"x", EventMeta("posted", xid=123456789012))
    await log.append(["a"], b"y", META)
    await wait_until_async(lambda: len(heard) == 2, what="both entries heard")
    page = await log.read("a", 0)
    assert [e.meta.xid for e in page.entries] == [123456789012, 0]
    assert [e.meta.xid for e in heard] == [123456789012, 0]


async def test_an_event_appended_after_a_later_one_of_its_channel_is_marked_late(
    make_log: Factory,
) -> None:
    log = await make_log()
    heard: list[LogEntry] = []
    log.subscribe(collect(heard))
    await log.append(["a"], b"1", META, event_id="e1", channel=("ch", 1))
    await log.append(["a"], b"3", META, event_id="e3", channel=("ch", 3))
    await log.append(["a"], b"2", META, event_id="e2", channel=("ch", 2))  # its node was slow
    await log.append(["a"], b"4", META, event_id="e4", channel=("ch", 4))
    await log.append(["a"], b"other", META, event_id="o1", channel=("other", 1))
    await log.append(["a"], b"plain", META)
    await wait_until_async(lambda: len(heard) == 6, what="every entry heard")
    page = await log.read("a", 0)
    for entries in (page.entries, heard):
        assert [(e.payload, e.meta.late) for e in entries] == [
            (b"1", False),
            (b"3", False),
            (b"2", True),
            (b"4", False),
            (b"other", False),
            (b"plain", False),
        ]


async def test_young_entries_are_kept_beyond_min_events(make_log: Factory) -> None:
    log = await make_log(min_events=2, min_age_seconds=600, max_events=100)
    for i in range(10):
        await log.append(["a"], str(i).encode(), META)
    page = await log.read("a", 0)
    assert [e.pos for e in page.entries] == list(range(1, 11)) and not page.truncated


async def test_old_entries_beyond_min_events_are_dropped(make_log: Factory) -> None:
    log = await make_log(min_events=3, min_age_seconds=0.05, max_events=1000)
    appended = 0

    async def trimmed() -> bool:
        nonlocal appended
        appended += 1
        await log.append(["a"], str(appended).encode(), META)
        return (await log.read("a", 0)).truncated

    await wait_until_async(trimmed, what="old entries trimmed")
    page = await log.read("a", 0)
    assert page.truncated and page.upto == appended
    assert [e.pos for e in page.entries][-3:] == [appended - 2, appended - 1, appended]


async def test_read_after_head_is_empty(make_log: Factory) -> None:
    log = await make_log()
    await log.append(["a"], b"x", META)
    page = await log.read("a", 1)
    assert page.entries == [] and not page.truncated and not page.limited and page.upto == 1


# Redis only: several nodes on one Redis, restarts, lost connections.


async def test_two_nodes_hear_every_append_in_the_same_order(nodes: RedisNodes) -> None:
    a = await nodes.node("p:")
    b = await nodes.node("p:")
    assert a.epoch == b.epoch
    heard_a: list[LogEntry] = []
    heard_b: list[LogEntry] = []
    a.subscribe(collect(heard_a))
    b.subscribe(collect(heard_b))
    await a.append(["u1", "u2"], b"1", META)
    await b.append(["u2"], b"2", META)
    await a.append(["u1"], b"3", META)
    expected = [("u1", 1, b"1"), ("u2", 1, b"1"), ("u2", 2, b"2"), ("u1", 2, b"3")]
    for heard in (heard_a, heard_b):
        await wait_until_async(lambda h=heard: len(h) >= 4, what="four entries")  # type: ignore[misc]
        assert [(e.user_id, e.pos, e.payload) for e in heard] == expected


async def test_retried_append_on_another_node_is_not_duplicated(nodes: RedisNodes) -> None:
    a = await nodes.node("p:")
    b = await nodes.node("p:")
    heard: list[LogEntry] = []
    b.subscribe(collect(heard))
    await a.append(["u1"], b"post", META, event_id="outbox-1")
    await b.append(["u1"], b"post", META, event_id="outbox-1")
    await b.append(["u1"], b"later", META, event_id="outbox-2")
    await wait_until_async(
        lambda: any(e.payload == b"later" for e in heard), what="the later event"
    )
    assert [(e.pos, e.payload) for e in heard] == [(1, b"post"), (2, b"later")]


async def test_concurrent_appends_keep_positions_gap_free(nodes: RedisNodes) -> None:
    a = await nodes.node("p:")
    b = await nodes.node("p:")
    heard: dict[str, list[LogEntry]] = {"a": [], "b": []}
    a.subscribe(collect(heard["a"]))
    b.subscribe(collect(heard["b"]))
    await asyncio.gather(
        *(a.append(["u1", "u2"], f"a{i}".encode(), META) for i in range(200)),
        *(b.append(["u2", "u1"], f"b{i}".encode(), META) for i in range(200)),
    )
    expected_payloads = {f"{n}{i}".encode() for n in "ab" for i in range(200)}
    for user in ("u1", "u2"):
        assert await a.head(user) == 400
        page = await b.read(user, 0)
        assert [e.pos for e in page.entries] == list(range(1, 401))
        assert {e.payload for e in page.entries} == expected_payloads
    for entries in heard.values():
        await wait_until_async(lambda es=entries: len(es) >= 800, what="800 entries")  # type: ignore[misc]
        assert len(entries) == 800
        for user in ("u1", "u2"):
            assert [e.pos for e in entries if e.user_id == user] == list(range(1, 401))
    assert [(e.user_id, e.pos) for e in heard["a"]] == [(e.user_id, e.pos) for e in heard["b"]]


async def test_payload_is_binary_safe(nodes: RedisNodes) -> None:
    log = await nodes.node("p:")
    heard: list[LogEntry] = []
    log.subscribe(collect(heard))
    payload = b'{"m":"line\\nbreak"}\n\xff\x00end'
    await log.append(["u1"], payload, META)
    await wait_until_async(lambda: len(heard) == 1, what="the entry")
    assert heard[0].payload == payload
    assert (await log.read("u1", 0)).entries[0].payload == payload


async def test_restart_changes_epoch_and_the_bus_recovers(
    nodes: RedisNodes, redis_server: RedisInstance
) -> None:
    log = await nodes.node("p:", probe_interval=0.05, stall_timeout=1.0)
    resets: list[str] = []
    heard: list[LogEntry] = []
    log.on_reset(resets.append)
    log.subscribe(collect(heard))
    await log.append(["u1"], b"before", META)
    await wait_until_async(lambda: len(heard) == 1, what="the first entry")
    old_epoch = log.epoch

    redis_server.restart()

    new_epoch = ""

    async def epoch_read() -> bool:
        nonlocal new_epoch
        new_epoch = await log.current_epoch()
        return True

    await wait_until_async(epoch_read, what="Redis back")
    assert new_epoch != old_epoch and log.epoch == new_epoch
    await wait_until_async(
        lambda: log.bus_status().healthy and resets == ["epoch"], what="bus resync"
    )
    assert await log.head("u1") == 0  # the data is gone: positions start over
    await log.append(["u1"], b"after", META)
    await wait_until_async(lambda: len(heard) == 2, what="an entry after the restart")
    assert (heard[1].pos, heard[1].payload) == (1, b"after")
    assert log.bus_status().reconnects >= 1


async def test_resume_on_a_node_that_missed_the_restart_gets_a_fresh_hello(
    nodes: RedisNodes, redis_server: RedisInstance
) -> None:
    """Redis restarts empty and another node republishes a post the client already had (its
    `seen:` key went with the data), before this node noticed the new epoch. A resume here with
    the record from the old epoch must not walk the new incarnation's positions as if they were
    the old ones (it would replay the republished post a second time): a fresh hello instead."""
    stale = RedisEventLog(nodes.client(), "node0", prefix="p:")
    await stale.current_epoch()  # no bus listener: it does not hear about the restart
    nodes.logs.append(stale)
    rig = Rig(log=stale)
    old_epoch = stale.epoch
    await stale.append(["u1"], encode_event_body("posted", {"n": 0}, {}), META)
    cid = "c" * 26
    await rig.registry.open(ConnectionRecord(cid, "u1", old_epoch, [Checkpoint(1, 1)]))

    redis_server.restart()
    other = await nodes.node("p:")  # another node, on the new epoch, republishes post 0
    assert other.epoch != old_epoch
    for n in (99, 0, 1):  # something else first, so that post 0 is past position 1 there
        await other.append(["u1"], encode_event_body("posted", {"n": n}, {}), META)
    assert stale.epoch == old_epoch

    sock = Socket()
    result = await rig.hub.attach(rig.conn(sock), cid, 2)  # the client saw hello and post 0
    assert not result.resumed and result.connection_id != cid, result
    assert [e["event"] for e in sock.events()] == ["hello"]


async def test_a_read_in_an_epoch_the_log_no_longer_has_is_truncated(
    nodes: RedisNodes, redis_server: RedisInstance
) -> None:
    log = await nodes.node("p:")
    await log.append(["u1"], b"before", META)
    old_epoch = log.epoch
    assert not (await log.read("u1", 0, epoch=old_epoch)).truncated
    redis_server.restart()
    other = await nodes.node("p:")
    await other.append(["u1"], b"after 1", META)
    await other.append(["u1"], b"after 2", META)
    page = await other.read("u1", 0, epoch=old_epoch)
    assert page.truncated and page.entries == []
    assert [e.payload for e in (await other.read("u1", 0, epoch=other.epoch)).entries] == [
        b"after 1",
        b"after 2",
    ]


async def test_missed_messages_are_recovered_after_the_subscriber_is_cut(
    nodes: RedisNodes,
) -> None:
    log = await nodes.node("p:")
    heard: list[LogEntry] = []
    log.subscribe(collect(heard))
    admin = nodes.client()
    await admin.client_kill_filter(_type="pubsub")
    # Published while this node had no subscription: only the feed has it.
    await log.append(["u1"], b"during", META)
    await wait_until_async(lambda: len(heard) == 1, what="the missed entry")
    await log.append(["u1"], b"after", META)
    await wait_until_async(lambda: len(heard) == 2, what="the next entry")
    assert [(e.pos, e.payload) for e in heard] == [(1, b"during"), (2, b"after")]
    assert log.bus_status().reconnects >= 1 and log.bus_status().resets == 0


async def test_restarted_listener_catches_up_from_the_feed(nodes: RedisNodes) -> None:
    a = await nodes.node("p:")
    b = await nodes.node("p:")
    heard: list[LogEntry] = []
    a.subscribe(collect(heard))
    await a.stop()
    for i in range(3):
        await b.append(["u1"], str(i).encode(), META)
    await a.start()
    await wait_until_async(lambda: len(heard) == 3, what="three caught-up entries")
    assert [(e.pos, e.payload) for e in heard] == [(1, b"0"), (2, b"1"), (3, b"2")]


async def test_gap_beyond_the_feed_is_reported(nodes: RedisNodes) -> None:
    a = await nodes.node("p:", feed_length=5)
    b = await nodes.node("p:", feed_length=5)
    resets: list[str] = []
    heard: list[LogEntry] = []
    a.on_reset(resets.append)
    a.subscribe(collect(heard))
    await a.stop()
    for i in range(20):
        await b.append(["u1"], str(i).encode(), META)
    await a.start()
    await wait_until_async(lambda: len(heard) == 5, what="what the feed still holds")
    assert resets == ["gap"]
    assert [e.pos for e in heard] == [16, 17, 18, 19, 20]


async def test_bus_status_reports_health_and_lag(
    nodes: RedisNodes, redis_server: RedisInstance
) -> None:
    log = await nodes.node("p:", probe_interval=0.05, stall_timeout=1.0)
    await wait_until_async(
        lambda: log.bus_status().healthy and log.bus_status().lag_seconds > 0, what="a probe"
    )
    redis_server.kill()
    await wait_until_async(lambda: not log.bus_status().healthy, what="the bus reported down")
    assert log.bus_status().running and log.bus_status().last_error
    redis_server.start_again()
    await wait_until_async(lambda: log.bus_status().healthy, what="the bus healthy again")


async def test_idle_log_expires_but_positions_continue(nodes: RedisNodes) -> None:
    log = await nodes.node("p:", min_age_seconds=0, idle_seconds=0.1)
    for i in range(3):
        await log.append(["u1"], str(i).encode(), META)
    admin = nodes.client()
    await wait_until_async(lambda: _gone(admin, "p:log:u1"), what="the idle log expired")
    page = await log.read("u1", 0)
    assert page.entries == [] and page.truncated and page.upto == 3
    assert not (await log.read("u1", 3)).truncated
    await log.append(["u1"], b"again", META)
    assert [e.pos for e in (await log.read("u1", 3)).entries] == [4]


async def _gone(client: Redis, key: str) -> bool:
    return await client.exists(key) == 0


def test_missing_redis_binary_fails_clearly() -> None:
    with pytest.raises(RuntimeError, match="install the Debian package 'redis-server'"):
        redis_server_binary(path="/nonexistent")


def test_client_must_return_bytes() -> None:
    with pytest.raises(ValueError, match="decode_responses"):
        RedisEventLog(Redis(decode_responses=True), "n")


# Sentinel only: the master dies and the replica is promoted.


async def test_sentinel_failover_replaces_the_epoch_and_the_bus_follows() -> None:
    """After the master is SIGKILLed, the log's clients reach the promoted replica by
    themselves; the listener notices the new server and replaces the epoch (the replica may
    lack the newest appends: clients must start over rather than miss them), and appends made
    after the failover are heard by every node."""
    sentinels = start_sentinel_set()
    group = RedisNodes(sentinels)
    try:
        logs = [await group.node("f:", probe_interval=0.1, stall_timeout=1.0) for _ in range(2)]
        heard: list[list[LogEntry]] = [[], []]
        resets: list[list[str]] = [[], []]
        for log, into, reasons in zip(logs, heard, resets, strict=True):
            log.subscribe(collect(into))
            log.on_reset(reasons.append)
        await logs[0].append(["u1"], b"before", META, event_id="b1")
        await wait_until_async(lambda: all(len(h) == 1 for h in heard), what="before, heard")
        old_epoch = logs[0].epoch

        survivor = sentinels.kill_master()
        started = asyncio.get_running_loop().time()
        # The first append after the kill is retried until the new master takes it.
        while True:
            try:
                await logs[1].append(["u1"], b"after", META, event_id="a1")
                break
            except Exception:
                assert asyncio.get_running_loop().time() - started < 30, "no master for 30 s"
                await asyncio.sleep(0.05)
        await asyncio.to_thread(sentinels.wait_for_failover, survivor)
        await wait_until_async(
            lambda: all(log.bus_status().healthy for log in logs) and all(resets),
            what="both listeners resubscribed on the new master and reset",
        )
        assert all(r == ["epoch"] for r in resets), resets
        assert logs[0].epoch == logs[1].epoch != old_epoch
        await logs[0].append(["u1"], b"later", META, event_id="l1")
        await wait_until_async(
            lambda: all(any(e.payload == b"later" for e in h) for h in heard),
            what="an append after the failover heard by both nodes",
        )
    finally:
        await group.close()
        sentinels.stop()
