"""The chaos run and its checker (DESIGN §8), shared by the cluster tier's chaos scenarios
(tests/cluster/test_chaos.py): many clients and writers through nginx while faults are injected;
then, for every client and every channel it is in, each committed post must have arrived exactly
once (live, by resume replay, or by the REST refetch a fresh hello asks for) and live/replayed
posts in commit order.

Every client behaves like `@mattermost/client`'s WebSocketClient: it keeps `connection_id` and
the next expected `seq`, reconnects through nginx with `connection_id` + `sequence_number`, treats
a hello with a different connection id as "refetch" (and refetches each channel's posts since the
last one it saw), and on a `seq` gap closes and reconnects (the real client's 4001). Writers retry
a failed POST with the same `pending_post_id` until it succeeds.

The checker counts, per client: **lost** (a committed post neither received over any of its
websockets nor refetched), **repeated** (received more than once, over all of the client's
connections together), **out of order** (a post received after a later post of its channel;
commit order is the channel sequence the outbox recorded in the committing transaction), and,
for the writers, **slow writes** (a POST that took longer than `SLOW_WRITE` seconds from the
first try to its 201, retries included).

Parameters (environment, for a longer run): HUBBUB_CHAOS_CLIENTS (30), HUBBUB_CHAOS_USERS (10),
HUBBUB_CHAOS_CHANNELS (4), HUBBUB_CHAOS_WRITERS (5), HUBBUB_CHAOS_POSTS (2000),
HUBBUB_CHAOS_SECONDS (40: how long the writers take), HUBBUB_CHAOS_KILL_EVERY (5 s between a
node's restart and the next kill, on average), HUBBUB_CHAOS_REDIS_RESTARTS (3),
HUBBUB_CHAOS_SEED (random; printed), HUBBUB_CHAOS_SETTLE (45 s for clients to catch up).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.cluster import Cluster
from tests.support.postgres import PostgresInstance
from tests.support.rest import Account, Rest
from tests.support.sentinel import SentinelSet
from tests.support.wait import wait_until_async

SLOW_WRITE = 2.0  # seconds: a write slower than this at the proxy counts against the run


def _env(name: str, default: float) -> float:
    return float(os.environ.get(f"HUBBUB_CHAOS_{name}", default))


@dataclass(frozen=True)
class ChaosParams:
    clients: int
    users: int
    channels: int
    writers: int
    posts: int
    seconds: float
    kill_every: float
    redis_restarts: int
    seed: int
    settle: float

    @classmethod
    def from_env(cls, **defaults: float) -> ChaosParams:
        """The parameters, each from HUBBUB_CHAOS_<NAME> or `defaults` or the built-in one."""

        def get(name: str, default: float) -> float:
            return _env(name.upper(), defaults.get(name, default))

        return cls(
            clients=int(get("clients", 30)),
            users=int(get("users", 10)),
            channels=int(get("channels", 4)),
            writers=int(get("writers", 5)),
            posts=int(get("posts", 2000)),
            seconds=get("seconds", 40),
            kill_every=get("kill_every", 5),
            redis_restarts=int(get("redis_restarts", 3)),
            seed=int(get("seed", random.randrange(1 << 30))),
            settle=get("settle", 45),
        )


# The world: readers (connected), writers (posting), channels


@dataclass
class World:
    admin: Account
    readers: list[Account]
    writers: list[Account]
    channels: list[str]
    membership: dict[str, set[str]]  # user id -> channel ids
    baseline: dict[str, int]  # channel id -> newest create_at before the run


def build_world(rest: Rest, params: ChaosParams, rng: random.Random) -> World:
    admin = rest.user(None, "chaosadmin")
    team = rest.team(admin)
    readers = [rest.user(admin, "reader") for _ in range(params.users)]
    writers = [rest.user(admin, "writer") for _ in range(params.writers)]
    for user in (*readers, *writers):
        rest.join_team(admin, team["id"], user)
    channels = [rest.channel(admin, team["id"], "O")["id"] for _ in range(params.channels)]
    membership: dict[str, set[str]] = {u.id: set() for u in readers}
    for i, reader in enumerate(readers):
        # Each reader is in about two thirds of the channels, and in at least one.
        chosen = {c for c in channels if rng.random() < 0.67} or {channels[i % len(channels)]}
        membership[reader.id] = chosen
    for channel in channels:
        for reader in readers:
            if channel in membership[reader.id]:
                rest.join_channel(admin, channel, reader)
        for writer in writers:
            rest.join_channel(admin, channel, writer)
    return World(admin, readers, writers, channels, membership, {})


# A client that behaves like @mattermost/client's WebSocketClient


@dataclass
class Arrival:
    post_id: str
    create_at: int
    connection_id: str


@dataclass
class ChaosClient:
    index: int
    user: Account
    channels: set[str]
    ws_url: str
    http: httpx.AsyncClient
    baseline: dict[str, int]
    rng: random.Random
    connection_id: str = ""
    next_seq: int = 0
    arrivals: dict[str, list[Arrival]] = field(default_factory=dict)  # channel -> in order
    received: Counter[str] = field(default_factory=Counter)  # post id -> websocket deliveries
    refetched: set[str] = field(default_factory=set)
    resumed_ids: set[str] = field(default_factory=set)  # connection ids resumed at least once
    last_seen: dict[str, int] = field(default_factory=dict)  # channel -> newest create_at seen
    connects: int = 0
    resumed: int = 0
    refetches: int = 0
    unknown_outcome: int = 0
    seq_gaps: list[str] = field(default_factory=list)
    protocol_errors: list[str] = field(default_factory=list)
    close_codes: Counter[str] = field(default_factory=Counter)
    connected: bool = False
    # (wall-clock ms, what happened): connects, hellos, resumes, closes; a lost post's line
    # shows the ones around its create_at.
    history: list[tuple[int, str]] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def note(self, what: str) -> None:
        self.history.append((_ms(), what))

    def around(self, at: int, window: int = 3000) -> list[str]:
        return [f"{t - at:+d}ms {what}" for t, what in self.history if abs(t - at) <= window]

    def url(self) -> str:
        query = {"connection_id": self.connection_id, "sequence_number": str(self.next_seq)}
        return f"{self.ws_url}?{urllib.parse.urlencode(query)}"

    async def run(self) -> None:
        while True:
            self.note(f"connect {self.connection_id[:8] or '-'} seq {self.next_seq}")
            try:
                async with connect(
                    self.url(),
                    additional_headers={"Authorization": f"Bearer {self.user.token}"},
                    open_timeout=5,
                    ping_interval=None,  # the server pings; the library answers
                    close_timeout=1,
                    max_queue=None,
                    compression=None,
                    proxy=None,
                ) as ws:
                    self.connects += 1
                    self.connected = True
                    await self._read(ws)
            except asyncio.CancelledError:
                raise
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else "none"
                self.close_codes[str(code)] += 1
                self.note(f"closed {code}")
            except Exception as exc:  # refused upgrade, reset, timeout: try again
                self.close_codes[type(exc).__name__] += 1
                self.note(f"failed {type(exc).__name__}")
            finally:
                self.connected = False
            # The real client waits minWebSocketRetryTime plus jitter; shortened here.
            await asyncio.sleep(0.1 + self.rng.random() * 0.3)

    async def _read(self, ws: Any) -> None:
        first = True
        async for raw in ws:
            message = json.loads(raw)
            if "event" not in message:
                continue  # a reply
            if first:
                first = False
                if message["event"] != "hello":
                    if self.connection_id:
                        self.resumed += 1
                        self.resumed_ids.add(self.connection_id)
                        self.note(f"resumed, first seq {message.get('seq')}")
                    else:
                        self.protocol_errors.append(f"first event is not hello: {message}")
            if message["event"] == "hello":
                if not self._on_hello(message):
                    await ws.close(4001)
                    return
                continue
            if message.get("seq") != self.next_seq:
                # The real client logs "missed websocket event", closes with 4001 and
                # reconnects asking for the seq it expected.
                self.seq_gaps.append(
                    f"client {self.index}: got seq {message.get('seq')} "
                    f"({message['event']}), expected {self.next_seq}"
                )
                await ws.close(4001)
                return
            self.next_seq += 1
            if message["event"] == "posted":
                self._on_posted(message)

    def _on_hello(self, message: dict[str, Any]) -> bool:
        new_id = message["data"]["connection_id"]
        if message.get("seq") != 0:
            self.protocol_errors.append(f"hello with seq {message.get('seq')}")
            return False
        if self.connection_id and new_id == self.connection_id:
            self.protocol_errors.append("hello with the same connection id (not a resume)")
        elif self.connection_id:
            # Told to refetch: everything since the last post seen in each channel.
            self.refetches += 1
            since = {c: self.last_seen.get(c, self.baseline[c]) for c in self.channels}
            self.note(f"hello {new_id[:8]}: refetch since {sorted(since.values())}")
            task = asyncio.get_running_loop().create_task(self._refetch(since))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.connection_id = new_id
        self.next_seq = 1
        return True

    def _on_posted(self, message: dict[str, Any]) -> None:
        post = json.loads(message["data"]["post"])
        channel, create_at = post["channel_id"], int(post["create_at"])
        if channel not in self.channels or create_at <= self.baseline.get(channel, 0):
            return
        self.received[post["id"]] += 1
        self.arrivals.setdefault(channel, []).append(
            Arrival(post["id"], create_at, self.connection_id)
        )
        self.last_seen[channel] = max(self.last_seen.get(channel, 0), create_at)

    async def _refetch(self, since: dict[str, int]) -> None:
        for channel, after in since.items():
            cursor = after
            while True:
                listing = await self._get(f"/api/v4/channels/{channel}/posts?since={cursor}")
                posts = list(listing["posts"].values())
                for post in posts:
                    if int(post["create_at"]) > self.baseline[channel]:
                        self.refetched.add(post["id"])
                if len(posts) < 1000:
                    break
                cursor = max(int(p["update_at"]) for p in posts)

    async def _get(self, path: str) -> Any:
        deadline = time.monotonic() + 60
        while True:
            try:
                resp = await self.http.get(
                    path, headers={"Authorization": f"Bearer {self.user.token}"}
                )
                if resp.status_code == 200:
                    return resp.json()
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"client {self.index}: GET {path} kept failing")
            await asyncio.sleep(0.2)

    async def idle(self) -> None:
        """Waits for the refetches in flight."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=False)


# Writers


@dataclass
class WriterStats:
    attempts: int = 0
    retries: int = 0
    failures: list[str] = field(default_factory=list)
    committed: dict[str, str] = field(default_factory=dict)  # pending id -> post id
    answers: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)  # per post, first try to success
    # Per post: when its first try started (s into the run) and each try's answer and duration
    # as the writer saw them, for a slow write's line.
    tries: dict[str, tuple[float, list[str]]] = field(default_factory=dict)


async def writer(
    http: httpx.AsyncClient,
    writer: Account,
    number: int,
    count: int,
    channels: list[str],
    interval: float,
    started: float,
    rng: random.Random,
    stats: WriterStats,
) -> None:
    for i in range(count):
        delay = started + i * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing, not synchronization
        pending = f"{writer.id}:{number}-{i}"
        body = {"channel_id": rng.choice(channels), "message": f"w{number} #{i}"}
        body["pending_post_id"] = pending
        first_try = time.monotonic()
        deadline = first_try + 60
        tries: list[str] = []  # each attempt's answer and duration, for a slow write's line
        stats.tries[pending] = (first_try - started, tries)
        while True:
            stats.attempts += 1
            attempt = time.monotonic()
            try:
                resp = await http.post(
                    "/api/v4/posts",
                    json=body,
                    headers={"Authorization": f"Bearer {writer.token}", "X-Chaos-Write": pending},
                )
                stats.answers[str(resp.status_code)] += 1
                tries.append(f"{resp.status_code} in {time.monotonic() - attempt:.2f}s")
                if resp.status_code == 201:
                    stats.committed[pending] = resp.json()["id"]
                    stats.seconds[pending] = time.monotonic() - first_try
                    break
                if resp.status_code < 500:
                    stats.failures.append(f"{pending}: {resp.status_code} {resp.text[:200]}")
                    break
            except httpx.HTTPError as exc:
                stats.answers[type(exc).__name__] += 1
                tries.append(f"{type(exc).__name__} in {time.monotonic() - attempt:.2f}s")
            if time.monotonic() > deadline:
                stats.failures.append(f"{pending}: no success within 60 s")
                break
            stats.retries += 1
            await asyncio.sleep(0.1)


_PROXY_WRITE = re.compile(
    r'^(?P<end>[\d.]+) "POST /api/v4/posts [^"]*" (?P<status>\d+) (?P<took>[\d.]+) '
    r"upstream .* write (?P<pending>\S+)$"
)


def proxy_spans(access_log: str) -> dict[str, float]:
    """Each chaos write's time at the proxy (the cluster's nginx logs every request with the
    writer's X-Chaos-Write header): from the moment nginx received its first try to the moment
    it sent the 201, retries and the pauses between them included. The writers' own clock also
    counts the test process's event loop, which on a loaded machine lags behind by seconds
    (30 websocket clients share it), so a slow write is judged here, where the cluster's
    answer is seen."""
    first: dict[str, float] = {}
    done: dict[str, float] = {}
    for line in access_log.splitlines():
        match = _PROXY_WRITE.match(line)
        if match is None or match["pending"] == "-":
            continue
        end, pending = float(match["end"]), match["pending"]
        start = end - float(match["took"])
        first[pending] = min(first.get(pending, start), start)
        if match["status"] == "201":
            done[pending] = end
    return {pending: end - first[pending] for pending, end in done.items()}


# Faults


@dataclass
class ChaosLog:
    events: list[str] = field(default_factory=list)
    kills: int = 0
    redis_restarts: int = 0
    failovers: int = 0
    failover_seconds: list[float] = field(default_factory=list)


Faults = Callable[[asyncio.Event, "ChaosLog"], Awaitable[None]]


async def _pause(stop: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


def _ms() -> int:
    return int(time.time() * 1000)


# A node counts as up for nginx only this long after it answered again: a failed attempt marks it
# down for `fail_timeout` (tests/support/cluster.py), whatever the node does meanwhile.
NGINX_FAIL_TIMEOUT = 2.0


@dataclass
class NodeSchedule:
    """Which nodes the fault schedule may kill: never the last one that is up. A node is up
    once its restart answered and nginx's `fail_timeout` has passed since (nginx may still have
    it marked failed before that); a kill needs another node that is up, so the cluster always
    has one node serving (the issue's scenario is "a node SIGKILLed every 5 s", not "every node
    down at once")."""

    nodes: int
    busy: set[int] = field(default_factory=set)  # killed, or restarting
    up_since: dict[int, float] = field(default_factory=dict)  # restart answered at (monotonic)

    def up(self, node: int, now: float) -> bool:
        if node in self.busy:
            return False
        return now - self.up_since.get(node, float("-inf")) >= NGINX_FAIL_TIMEOUT

    def victims(self, now: float) -> list[int]:
        """Nodes that may be killed now: not busy, and some other node is up."""
        return [
            i
            for i in range(self.nodes)
            if i not in self.busy and any(self.up(j, now) for j in range(self.nodes) if j != i)
        ]

    def next_victim_in(self, now: float) -> float:
        """Seconds until some node may be killed, if no restart is still pending; else 0."""
        waits = [
            self.up_since[i] + NGINX_FAIL_TIMEOUT - now
            for i in range(self.nodes)
            if i not in self.busy and i in self.up_since
        ]
        return max(0.0, min(waits, default=0.0))


async def _kill_and_restart_later(
    cluster: Cluster,
    victim: int,
    down: float,
    log: ChaosLog,
    started: float,
    schedule: NodeSchedule,
) -> None:
    schedule.busy.add(victim)
    try:
        await asyncio.to_thread(cluster.kill, victim)
        log.kills += 1
        log.events.append(
            f"{time.monotonic() - started:6.1f}s SIGKILL node{victim} at {_ms()}, down {down:.1f}s"
        )
        await asyncio.sleep(down)  # pacing the fault, not synchronization
        await asyncio.to_thread(cluster[victim].start)  # returns once the node is ready
        schedule.up_since[victim] = time.monotonic()
    finally:
        schedule.busy.discard(victim)


def node_kills_and_redis_restarts(
    cluster: Cluster, params: ChaosParams, rng: random.Random
) -> Faults:
    """A random node SIGKILLed every `kill_every` s (on average) and restarted 0.2-2 s later;
    `redis_restarts` times, spread over the run, Redis SIGKILLed and restarted empty with a
    node SIGKILLed in the same second (just before or just after). A node being restarted is
    not killed again until it answers, and no node is killed unless another one is up
    (`NodeSchedule`): a kill that would take the last one down waits until a restarted node
    is up (a Redis restart then goes ahead without its node kill)."""

    async def run(stop: asyncio.Event, log: ChaosLog) -> None:
        started = time.monotonic()
        redis_due = [
            started + params.seconds * (k + 1) / (params.redis_restarts + 1)
            for k in range(params.redis_restarts)
        ]
        pending: set[asyncio.Task[None]] = set()
        schedule = NodeSchedule(len(cluster))

        def pick() -> int | None:
            free = schedule.victims(time.monotonic())
            return rng.choice(free) if free else None

        async def wait_for_victim() -> int | None:
            """A node that may be killed, once one may (None: stopping, or none within 30 s)."""
            deadline = time.monotonic() + 30
            while (victim := pick()) is None and time.monotonic() < deadline:
                # Pacing the schedule, not synchronization: restarts in flight end by themselves.
                if await _pause(stop, max(0.05, schedule.next_victim_in(time.monotonic()))):
                    return None
            return victim

        def next_pause() -> float:
            """Until the next node kill, or the next Redis restart if that comes first: a kill
            chosen a moment before a restart was due held the loop through the node's restart
            and, on a loaded machine, past the end of the run, so a restart was never made."""
            pause = rng.uniform(0.5, 1.5) * params.kill_every
            if redis_due:
                pause = min(pause, max(0.0, redis_due[0] - time.monotonic()))
            return pause

        try:
            while not await _pause(stop, next_pause()):
                # (The event loop may wake a timer up to its clock resolution early.)
                if redis_due and time.monotonic() >= redis_due[0] - 0.01:
                    redis_due.pop(0)
                    victim = pick()
                    before = rng.random() < 0.5
                    down = rng.uniform(0.2, 1.0)
                    if before and victim is not None:
                        pending.add(
                            asyncio.create_task(
                                _kill_and_restart_later(
                                    cluster, victim, down, log, started, schedule
                                )
                            )
                        )
                        await asyncio.sleep(rng.uniform(0.0, 0.3))
                    await asyncio.to_thread(cluster.redis.restart, True)
                    log.redis_restarts += 1
                    log.events.append(
                        f"{time.monotonic() - started:6.1f}s Redis SIGKILLed and restarted "
                        f"empty at {_ms()}"
                    )
                    if not before and victim is not None:
                        await asyncio.sleep(rng.uniform(0.0, 0.3))
                        victim = pick()  # the one chosen may not be allowed any more
                        if victim is not None:
                            pending.add(
                                asyncio.create_task(
                                    _kill_and_restart_later(
                                        cluster, victim, down, log, started, schedule
                                    )
                                )
                            )
                    continue
                victim = await wait_for_victim()
                if victim is None:
                    continue
                await _kill_and_restart_later(
                    cluster, victim, rng.uniform(0.2, 2.0), log, started, schedule
                )
        finally:
            if pending:
                await asyncio.gather(*pending)

    return run


def sentinel_failover(
    cluster: Cluster, sentinels: SentinelSet, params: ChaosParams, rng: random.Random
) -> Faults:
    """Halfway through the run, the Redis master is SIGKILLed; the sentinels promote the
    replica. Nodes keep running (they follow the failover by themselves)."""

    async def run(stop: asyncio.Event, log: ChaosLog) -> None:
        started = time.monotonic()
        if await _pause(stop, params.seconds * rng.uniform(0.4, 0.6)):
            return
        killed_at = time.monotonic()
        survivor = await asyncio.to_thread(sentinels.kill_master)
        log.events.append(f"{killed_at - started:6.1f}s Redis master SIGKILLed at {_ms()}")
        await asyncio.to_thread(sentinels.wait_for_failover, survivor)
        log.failovers += 1
        log.failover_seconds.append(time.monotonic() - killed_at)
        log.events.append(
            f"{time.monotonic() - started:6.1f}s sentinels promoted port {survivor.port} "
            f"({time.monotonic() - killed_at:.1f}s after the kill)"
        )

    return run


# The checker

LOG_PHRASES = (
    "outbox republished events",
    "channel event appended after a later one of its channel",
    "closing all websockets to resync",
    "event log epoch changed",
    "event log bus missed appends",
    "Redis master changed",
)


@dataclass
class Verdict:
    expected: int = 0
    lost: list[str] = field(default_factory=list)
    repeated: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    via_live_or_replay: int = 0
    via_refetch_only: int = 0
    lost_details: list[str] = field(default_factory=list)  # for the first few lost posts


def committed_posts(
    postgres: PostgresInstance,
    database: str,
    world: World,
    created_at: dict[str, int] | None = None,
) -> dict[str, list[tuple[int, str]]]:
    """channel -> [(channel sequence, post id)] in commit order, of the posts committed after
    the baseline, from PostgreSQL itself (posts joined with the outbox rows that announced
    them; a post without one has sequence 0 and takes no part in the order check).
    `created_at`, if given, gets each post's create_at."""
    ids = ",".join(f"'{c}'" for c in world.channels)
    # Two plain scans joined here: one query joining them on a JSON expression can get a nested
    # loop (the outbox's statistics lag its growth during the run) and take half a minute.
    announced = postgres.psql(
        "SELECT channel_seq, (body::json->'data'->>'post')::json->>'id' FROM outbox "
        f"WHERE channel_id IN ({ids}) AND meta::json->>'event' = 'posted'",
        database,
    )
    seq_of: dict[str, int] = {}
    for line in announced.splitlines():
        seq, post_id = line.split("|")
        seq_of[post_id] = int(seq)
    out = postgres.psql(
        f"SELECT channel_id, create_at, id FROM posts WHERE channel_id IN ({ids}) "
        "AND delete_at = 0",
        database,
    )
    rows = []
    for line in out.splitlines():
        channel, create_at, post_id = line.split("|")
        rows.append((channel, seq_of.get(post_id, 0), int(create_at), post_id))
        if created_at is not None:
            created_at[post_id] = int(create_at)
    rows.sort()
    committed: dict[str, list[tuple[int, str]]] = {c: [] for c in world.channels}
    for channel, seq, create_at, post_id in rows:
        if create_at > world.baseline[channel]:
            committed[channel].append((seq, post_id))
    return committed


def _lost_detail(
    client: ChaosClient, channel: str, post_id: str, order: dict[str, int], created: int
) -> str:
    """Where a lost post fell in what the client saw: the posts of its channel received just
    before and after it (channel seq, connection) and the client's connects, hellos and closes
    within 3 s of its create_at (times relative to it)."""
    seq = order[post_id]
    received = client.arrivals.get(channel, [])
    arrivals = [(order.get(a.post_id, 0), a.connection_id[:8]) for a in received]
    before = [a for a in arrivals if 0 < a[0] < seq][-2:]
    after = [a for a in arrivals if a[0] > seq][:2]
    return (
        f"client {client.index} lost {post_id} (channel seq {seq}, created {created}): "
        f"received before {before}, after {after}; around it: {client.around(created)}"
    )


def check(
    clients: list[ChaosClient],
    committed: dict[str, list[tuple[int, str]]],
    created_at: dict[str, int] | None = None,
) -> Verdict:
    created = created_at or {}
    verdict = Verdict()
    for client in clients:
        for channel in client.channels:
            order = {post_id: seq for seq, post_id in committed[channel]}
            for _, post_id in committed[channel]:
                verdict.expected += 1
                got = client.received[post_id]
                if got > 1:
                    # On which connections (r: resumed there), to tell a replay from a relay.
                    where = [
                        a.connection_id[:8]
                        + ("(r)" if a.connection_id in client.resumed_ids else "")
                        for a in client.arrivals.get(channel, [])
                        if a.post_id == post_id
                    ]
                    verdict.repeated.append(
                        f"client {client.index}: {post_id} x{got} on connections {where}"
                    )
                if got:
                    verdict.via_live_or_replay += 1
                elif post_id in client.refetched:
                    verdict.via_refetch_only += 1
                else:
                    verdict.lost.append(f"client {client.index} channel {channel}: {post_id}")
                    if len(verdict.lost_details) < 6:
                        verdict.lost_details.append(
                            _lost_detail(client, channel, post_id, order, created.get(post_id, 0))
                        )
            newest = 0
            for arrival in client.arrivals.get(channel, []):
                seq = order.get(arrival.post_id, 0)
                if seq and seq <= newest:
                    verdict.out_of_order.append(
                        f"client {client.index} channel {channel}: {arrival.post_id} "
                        f"(channel seq {seq}) after seq {newest}"
                    )
                newest = max(newest, seq)
    return verdict


def caught_up(clients: list[ChaosClient], committed: dict[str, list[tuple[int, str]]]) -> bool:
    return all(
        client.received[post_id] or post_id in client.refetched
        for client in clients
        for channel in client.channels
        for _, post_id in committed[channel]
    )


def all_posts(
    postgres: PostgresInstance, database: str, world: World
) -> list[tuple[str, list[tuple[int, str]]]]:
    ids = ",".join(f"'{c}'" for c in world.channels)
    out = postgres.psql(
        f"SELECT channel_id, create_at, id FROM posts WHERE channel_id IN ({ids})", database
    )
    found: dict[str, list[tuple[int, str]]] = {c: [] for c in world.channels}
    for line in out.splitlines():
        channel, create_at, post_id = line.split("|")
        found[channel].append((int(create_at), post_id))
    return list(found.items())


# The run


@dataclass
class ChaosReport:
    name: str
    params: ChaosParams
    clients: list[ChaosClient]
    stats: WriterStats
    log: ChaosLog
    verdict: Verdict
    total_posts: int
    expected_posts: int
    written_in: float
    settled_in: float
    server_log: Counter[str]
    crashed: list[str]  # nodes found dead although no fault was pending
    logs: Path  # copies of the node and proxy logs
    at_proxy: dict[str, float]  # each write's time as the proxy saw it (`proxy_spans`)

    @property
    def write_seconds(self) -> dict[str, float]:
        """Each committed write's time: at the proxy, or as the writer saw it without one."""
        return {p: self.at_proxy.get(p, s) for p, s in self.stats.seconds.items()}

    @property
    def slow_writes(self) -> list[str]:
        """A line for each write slower than SLOW_WRITE: when, how long, and its tries."""
        out = []
        for pending, took in self.write_seconds.items():
            if took > SLOW_WRITE:
                at, tries = self.stats.tries[pending]
                seen = self.stats.seconds[pending]
                out.append(
                    f"{pending} at {at:.1f}s took {took:.2f}s at the proxy, {seen:.2f}s for its "
                    f"writer ({', '.join(tries)})"
                )
        return out

    def lines(self) -> list[str]:
        post_ms = sorted(x * 1000 for x in self.write_seconds.values()) or [0.0]
        seen_ms = max(self.stats.seconds.values(), default=0.0) * 1000
        stale = sum(c.close_codes.total() for c in self.clients)
        out = [
            f"chaos {self.name} (seed {self.params.seed}): {self.params.clients} clients, "
            f"{self.params.writers} writers, {self.total_posts} posts committed in "
            f"{self.written_in:.0f}s, settled in {self.settled_in:.1f}s",
            f"  faults: {self.log.kills} SIGKILLs, {self.log.redis_restarts} Redis restarts, "
            f"{self.log.failovers} Sentinel failovers "
            f"{[round(s, 1) for s in self.log.failover_seconds]}",
            *(f"    {line}" for line in self.log.events),
            f"  writers: {self.stats.attempts} attempts, {self.stats.retries} retries, "
            f"answers {dict(self.stats.answers)}, failures {len(self.stats.failures)}; POST "
            f"until committed (at the proxy) p50 {post_ms[len(post_ms) // 2]:.0f} ms, "
            f"p99 {post_ms[int(len(post_ms) * 0.99)]:.0f} ms, max {post_ms[-1]:.0f} ms "
            f"(max {seen_ms:.0f} ms for the writers); "
            f"slower than {SLOW_WRITE:g}s: {len(self.slow_writes)}",
            f"  server logs: {dict(self.server_log)} (copies in {self.logs}); "
            f"crashed by themselves: {self.crashed or 'none'}",
            f"  clients: {sum(c.connects for c in self.clients)} connects, "
            f"{sum(c.resumed for c in self.clients)} resumed, "
            f"{sum(c.refetches for c in self.clients)} told to refetch, "
            f"seq gaps {sum(len(c.seq_gaps) for c in self.clients)}, "
            f"{stale} closes {dict(sum((c.close_codes for c in self.clients), Counter()))}",
            f"  checker: {self.verdict.expected} (client, post) pairs expected; "
            f"lost {len(self.verdict.lost)}, repeated {len(self.verdict.repeated)}, "
            f"out of order {len(self.verdict.out_of_order)}; "
            f"{self.verdict.via_live_or_replay} live/replay, "
            f"{self.verdict.via_refetch_only} refetch only",
        ]
        problems = self.verdict.lost + self.verdict.repeated + self.verdict.out_of_order
        out.extend(f"    {p}" for p in problems[:20])
        out.extend(f"    {d}" for d in self.verdict.lost_details)
        out.extend(f"    slow write: {w}" for w in self.slow_writes[:10])
        return out

    def assert_clean(self) -> None:
        stats, verdict = self.stats, self.verdict
        # Writers: every intended post committed exactly once despite retries, none slow.
        assert not self.crashed, f"nodes crashed by themselves: {self.crashed} (logs: {self.logs})"
        assert not stats.failures, stats.failures[:10]
        assert self.total_posts == self.expected_posts, (self.total_posts, self.expected_posts)
        assert len(set(stats.committed.values())) == self.total_posts
        assert not self.slow_writes, f"writes slower than {SLOW_WRITE}s: {self.slow_writes}"
        # Clients.
        errors = [e for c in self.clients for e in c.protocol_errors]
        assert not errors, errors[:10]
        gaps = [g for c in self.clients for g in c.seq_gaps]
        assert not gaps, gaps[:10]
        assert not verdict.lost, verdict.lost[:20]
        assert not verdict.repeated, verdict.repeated[:20]
        assert not verdict.out_of_order, verdict.out_of_order[:20]


async def run_chaos(
    name: str,
    cluster: Cluster,
    world: World,
    params: ChaosParams,
    postgres: PostgresInstance,
    faults: Faults,
) -> ChaosReport:
    """Clients connect, writers post for `params.seconds` while `faults` run, clients settle;
    returns what the checker found."""
    database = urllib.parse.urlsplit(cluster.database_url).path.lstrip("/")
    world.baseline.update(
        {c: max((t for t, _ in v), default=0) for c, v in all_posts(postgres, database, world)}
    )
    ws_url = f"ws://127.0.0.1:{cluster.nginx_port}/api/v4/websocket"
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=cluster.nginx_url, timeout=10, limits=limits) as http:
        clients = [
            ChaosClient(
                index=i,
                user=world.readers[i % len(world.readers)],
                channels=world.membership[world.readers[i % len(world.readers)].id],
                ws_url=ws_url,
                http=http,
                baseline=world.baseline,
                rng=random.Random(params.seed + i),
            )
            for i in range(params.clients)
        ]
        tasks = [asyncio.create_task(c.run()) for c in clients]
        stop = asyncio.Event()
        chaos_log = ChaosLog()
        stats = WriterStats()
        try:
            await wait_until_async(
                lambda: all(c.connection_id for c in clients), 20, "every client's hello"
            )

            started = time.monotonic()
            per_writer = params.posts // params.writers
            interval = params.seconds / per_writer
            writers = [
                asyncio.create_task(
                    writer(
                        http,
                        w,
                        n,
                        per_writer,
                        world.channels,
                        interval,
                        started,
                        random.Random(params.seed * 31 + n),
                        stats,
                    )
                )
                for n, w in enumerate(world.writers)
            ]
            chaos = asyncio.create_task(faults(stop, chaos_log))
            await asyncio.wait_for(asyncio.gather(*writers), params.seconds + 120)
            written_in = time.monotonic() - started
            stop.set()
            await asyncio.wait_for(chaos, 60)
            # Every fault has been repaired by now: a node that is down crashed by itself.
            crashed = [node.name for node in cluster if not node.alive]
            await asyncio.to_thread(cluster.ensure_all_running)

            # Settle: every client catches up (live, replay or refetch) or the deadline passes.
            committed = committed_posts(postgres, database, world)
            settle_deadline = time.monotonic() + params.settle
            while time.monotonic() < settle_deadline:
                if caught_up(clients, committed) and all(c.connected for c in clients):
                    break
                await asyncio.sleep(0.25)
            settled_in = time.monotonic() - started - written_in
            await asyncio.wait_for(asyncio.gather(*(c.idle() for c in clients)), 60)
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    created_at: dict[str, int] = {}
    committed = committed_posts(postgres, database, world, created_at)
    kept = Path(tempfile.mkdtemp(prefix="hubbub-chaos-logs-"))
    for node in cluster:
        with contextlib.suppress(OSError):
            shutil.copy(node.log_path, kept / f"{node.name}.log")
    with contextlib.suppress(OSError):
        shutil.copy(postgres.base / "server.log", kept / "postgres.log")
    at_proxy: dict[str, float] = {}
    if cluster.nginx is not None:
        for log_name in ("error.log", "access.log"):
            with contextlib.suppress(OSError):
                shutil.copy(cluster.nginx.base / log_name, kept / f"nginx-{log_name}")
        with contextlib.suppress(OSError):
            at_proxy = proxy_spans((kept / "nginx-access.log").read_text())
    server_log = Counter(
        phrase
        for node in cluster
        for line in node.server.log().splitlines()
        for phrase in LOG_PHRASES
        if phrase in line
    )
    return ChaosReport(
        name=name,
        params=params,
        clients=clients,
        stats=stats,
        log=chaos_log,
        verdict=check(clients, committed, created_at),
        total_posts=sum(len(v) for v in committed.values()),
        expected_posts=per_writer * params.writers,
        written_in=written_in,
        settled_in=settled_in,
        server_log=server_log,
        crashed=crashed,
        logs=kept,
        at_proxy=at_proxy,
    )
