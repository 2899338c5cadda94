"""Load for the database failover tests: websocket clients, writers and readers through nginx,
and the checker that judges what they saw.

* `WsClient` behaves like `@mattermost/client`'s WebSocketClient: it keeps `connection_id` and
  the next `seq`, reconnects with both, treats a hello with another connection id as "refetch"
  (and refetches each channel's posts), and on a `seq` gap closes and reconnects.
* `writer` posts at a steady pace and retries a failed POST with the same `pending_post_id`
  until it succeeds; every attempt is timed (`WriteLog`), so the longest stretch without a
  successful commit (the write outage) can be measured.
* `reader` reads channel histories in a loop (the read-heavy part, served by replicas).
* `check` compares, per client and channel, the posts committed (read from PostgreSQL itself)
  with what arrived: lost, repeated and out-of-order counts.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.postgres import PostgresInstance
from tests.support.rest import Account, Rest


@dataclass
class World:
    admin: Account
    readers: list[Account]
    writers: list[Account]
    team_id: str
    channels: list[str]
    baseline: dict[str, int] = field(default_factory=dict)  # channel -> newest create_at


def build_world(rest: Rest, readers: int, writers: int, channels: int) -> World:
    admin = rest.user(None, "fadmin")
    team = rest.team(admin)
    people = [rest.user(admin, "freader") for _ in range(readers)]
    authors = [rest.user(admin, "fwriter") for _ in range(writers)]
    for user in (*people, *authors):
        rest.join_team(admin, team["id"], user)
    ids = [rest.channel(admin, team["id"], "O")["id"] for _ in range(channels)]
    for channel in ids:
        for user in (*people, *authors):
            rest.join_channel(admin, channel, user)
    return World(admin, people, authors, team["id"], ids)


@dataclass
class WsClient:
    index: int
    user: Account
    channels: list[str]
    ws_url: str
    http: httpx.AsyncClient
    baseline: dict[str, int]
    connection_id: str = ""
    next_seq: int = 0
    arrivals: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    received: Counter[str] = field(default_factory=Counter)
    refetched: set[str] = field(default_factory=set)
    last_seen: dict[str, int] = field(default_factory=dict)
    connects: int = 0
    refetches: int = 0
    seq_gaps: list[str] = field(default_factory=list)
    protocol_errors: list[str] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def url(self) -> str:
        query = {"connection_id": self.connection_id, "sequence_number": str(self.next_seq)}
        return f"{self.ws_url}?{urllib.parse.urlencode(query)}"

    async def run(self) -> None:
        while True:
            try:
                async with connect(
                    self.url(),
                    additional_headers={"Authorization": f"Bearer {self.user.token}"},
                    open_timeout=5,
                    ping_interval=None,
                    close_timeout=1,
                    max_queue=None,
                    compression=None,
                    proxy=None,
                ) as ws:
                    self.connects += 1
                    await self._read(ws)
            except asyncio.CancelledError:
                raise
            except (ConnectionClosed, OSError, TimeoutError, Exception):
                pass
            await asyncio.sleep(0.2)  # the real client's retry delay, shortened

    async def _read(self, ws: Any) -> None:
        async for raw in ws:
            message = json.loads(raw)
            if "event" not in message:
                continue
            if message["event"] == "hello":
                self._on_hello(message)
                continue
            if message.get("seq") != self.next_seq:
                self.seq_gaps.append(
                    f"client {self.index}: seq {message.get('seq')}, expected {self.next_seq}"
                )
                await ws.close(4001)
                return
            self.next_seq += 1
            if message["event"] == "posted":
                post = json.loads(message["data"]["post"])
                channel, create_at = post["channel_id"], int(post["create_at"])
                if channel in self.channels and create_at > self.baseline.get(channel, 0):
                    self.received[post["id"]] += 1
                    self.arrivals.setdefault(channel, []).append((create_at, post["id"]))
                    self.last_seen[channel] = max(self.last_seen.get(channel, 0), create_at)

    def _on_hello(self, message: dict[str, Any]) -> None:
        new_id = message["data"]["connection_id"]
        if message.get("seq") != 0:
            self.protocol_errors.append(f"hello with seq {message.get('seq')}")
        if self.connection_id and new_id != self.connection_id:
            self.refetches += 1
            since = {c: self.last_seen.get(c, self.baseline[c]) for c in self.channels}
            task = asyncio.get_running_loop().create_task(self._refetch(since))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.connection_id = new_id
        self.next_seq = 1

    async def _refetch(self, since: dict[str, int]) -> None:
        for channel, after in since.items():
            deadline = time.monotonic() + 60
            while True:
                try:
                    resp = await self.http.get(
                        f"/api/v4/channels/{channel}/posts?since={after}",
                        headers={"Authorization": f"Bearer {self.user.token}"},
                    )
                    if resp.status_code == 200:
                        for post in resp.json()["posts"].values():
                            if int(post["create_at"]) > self.baseline[channel]:
                                self.refetched.add(post["id"])
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.protocol_errors.append(f"refetch of {channel} kept failing")
                    break
                await asyncio.sleep(0.2)

    async def idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks))


@dataclass
class WriteLog:
    attempts: list[tuple[float, float, str]] = field(default_factory=list)  # start, end, answer
    committed: dict[str, str] = field(default_factory=dict)  # pending id -> post id
    failures: list[str] = field(default_factory=list)
    error_bodies: Counter[str] = field(default_factory=Counter)  # AppError ids of 5xx answers

    def longest_outage(self) -> float:
        """The longest time between two successive successful commits (writes were being
        attempted all along), in seconds."""
        ends = sorted(end for _, end, answer in self.attempts if answer == "201")
        return max((b - a for a, b in itertools.pairwise(ends)), default=0.0)

    def failed_attempts(self) -> int:
        return sum(1 for _, _, answer in self.attempts if answer != "201")


async def writer(
    http: httpx.AsyncClient,
    author: Account,
    number: int,
    count: int,
    channels: list[str],
    interval: float,
    started: float,
    log: WriteLog,
) -> None:
    for i in range(count):
        delay = started + i * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing, not synchronization
        pending = f"{author.id}:{number}-{i}"
        body = {
            "channel_id": channels[(number + i) % len(channels)],
            "message": f"w{number} #{i}",
            "pending_post_id": pending,
        }
        deadline = time.monotonic() + 60
        while True:
            begun = time.monotonic()
            answer = ""
            try:
                resp = await http.post(
                    "/api/v4/posts", json=body, headers={"Authorization": f"Bearer {author.token}"}
                )
                answer = str(resp.status_code)
                if resp.status_code == 201:
                    log.committed[pending] = resp.json()["id"]
                elif resp.status_code >= 500:
                    try:
                        log.error_bodies[str(resp.json().get("id"))] += 1
                    except ValueError:
                        log.error_bodies["(not json)"] += 1
                else:
                    log.failures.append(f"{pending}: {resp.status_code} {resp.text[:200]}")
            except httpx.HTTPError as exc:
                answer = type(exc).__name__
            log.attempts.append((begun, time.monotonic(), answer))
            if answer == "201" or (answer.isdigit() and int(answer) < 500):
                break
            if time.monotonic() > deadline:
                log.failures.append(f"{pending}: no success within 60 s")
                break
            await asyncio.sleep(0.05)


@dataclass
class ReadLog:
    ok: int = 0
    failed: Counter[str] = field(default_factory=Counter)


async def reader(
    http: httpx.AsyncClient, user: Account, channels: list[str], stop: asyncio.Event, log: ReadLog
) -> None:
    i = 0
    while not stop.is_set():
        channel = channels[i % len(channels)]
        i += 1
        try:
            resp = await http.get(
                f"/api/v4/channels/{channel}/posts?per_page=20",
                headers={"Authorization": f"Bearer {user.token}"},
            )
            if resp.status_code == 200:
                log.ok += 1
            else:
                log.failed[str(resp.status_code)] += 1
        except httpx.HTTPError as exc:
            log.failed[type(exc).__name__] += 1
        await asyncio.sleep(0.02)  # a steady trickle per reader, not synchronization


@dataclass
class Verdict:
    expected: int = 0
    lost: list[str] = field(default_factory=list)
    repeated: list[str] = field(default_factory=list)
    reordered: list[str] = field(default_factory=list)
    via_refetch_only: int = 0


def committed_posts(postgres: PostgresInstance, world: World) -> dict[str, list[tuple[int, str]]]:
    """channel -> [(create_at, post id)] committed after the baseline, read from PostgreSQL."""
    ids = ",".join(f"'{c}'" for c in world.channels)
    out = postgres.psql(
        f"SELECT channel_id, create_at, id FROM posts WHERE channel_id IN ({ids}) "
        "AND delete_at = 0 ORDER BY channel_id, create_at"
    )
    found: dict[str, list[tuple[int, str]]] = {c: [] for c in world.channels}
    for line in out.splitlines():
        channel, create_at, post_id = line.split("|")
        if int(create_at) > world.baseline.get(channel, 0):
            found[channel].append((int(create_at), post_id))
    return found


def caught_up(clients: list[WsClient], committed: dict[str, list[tuple[int, str]]]) -> bool:
    return all(
        client.received[post_id] or post_id in client.refetched
        for client in clients
        for channel in client.channels
        for _, post_id in committed[channel]
    )


def check(clients: list[WsClient], committed: dict[str, list[tuple[int, str]]]) -> Verdict:
    verdict = Verdict()
    for client in clients:
        for channel in client.channels:
            for _, post_id in committed[channel]:
                verdict.expected += 1
                got = client.received[post_id]
                if got > 1:
                    verdict.repeated.append(f"client {client.index}: {post_id} x{got}")
                elif not got and post_id in client.refetched:
                    verdict.via_refetch_only += 1
                elif not got:
                    verdict.lost.append(f"client {client.index} channel {channel}: {post_id}")
            newest = 0
            for create_at, post_id in client.arrivals.get(channel, []):
                if create_at <= newest:
                    verdict.reordered.append(f"client {client.index}: {post_id} after {newest}")
                newest = max(newest, create_at)
    return verdict
