"""The realistic-users benchmark's client process: simulated Mattermost users.

Each user behaves like a user of Mattermost's load-test tool (`mattermost-load-test-ng`, its
simulative controller; the facts are in `shared/reference/mattermost-load-test-mix.md`): an
action drawn by relative frequency, the REST calls that action makes, then an idle time of
U[min, 2*avg - min) * rate; meanwhile its websocket reacts to events as the tool's user does
(`typing` or `posted` naming a user or channel it does not know yet sends `POST /users/ids`,
`POST /users/status/ids`, `GET /channels/{c}/members/me`), and every 60 s it refreshes statuses
and sends a performance report. Actions below a frequency of 0.02 (together 0.5 % of draws) are
left out; the rest are drawn among themselves.

The parent (`bench.realistic_users`) talks to it over stdin/stdout, one JSON object per line:

    parent -> {"active": k}     run the first k users of this process (more are started, spread
                                over `ramp` seconds; never fewer)
    parent -> {"report": true}  child -> {"report": {...}}: requests since the last report, by
                                route: count, errors, 5xx, timeouts and every latency (ms)
    parent -> "stop"

One keep-alive pool (`bench.http_pool`: at most users/4 connections like the tool's
`MaxConnsPerHost`, a 5 s timeout whose expiry is an error as in the tool's KPIs) per process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.baseline_server import run_client_process
from bench.http_pool import HTTPError, Pool

STORE_USERS = 500  # the tool's client store caps (api/agent.go)
STORE_STATUSES = 500
REPLY_SHARE = 0.18
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dogs",
    "while",
    "hubbub",
    "serves",
    "its",
    "users",
    "all",
    "day",
]

# (action, relative frequency) from the simulative controller's getActionList.
ACTIONS: list[tuple[str, float]] = [
    ("switch_channel", 6.5219),
    ("scroll_channel", 1.9873),
    ("delete_draft", 1.41),
    ("unread_check", 1.0),
    ("create_post", 1.0),
    ("open_dm", 0.9843),
    ("view_global_threads", 0.6023),
    ("upsert_draft", 0.504),
    ("update_thread_read", 0.3236),
    ("click_permalink", 0.3),
    ("view_thread", 0.2841),
    ("reconnect_websocket", 0.144),
    ("add_reaction", 0.1306),
    ("edit_post", 0.04),
    ("get_drafts", 0.037),
    ("search_users", 0.032),
    ("click_user_profile", 0.03),
    ("search_posts", 0.0218),
]


class LRU(OrderedDict[str, Any]):
    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap = cap

    def put(self, key: str, value: Any = True) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.cap:
            self.popitem(last=False)


@dataclass
class Stats:
    """Requests since the last report, by route template."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    server_errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    timeouts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    error_samples: list[str] = field(default_factory=list)
    ws_closed_by_server: int = 0
    ws_close_codes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    ws_connect_failures: int = 0
    actions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    events: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def take(self) -> dict[str, Any]:
        out = {
            "routes": {
                r: {
                    "lat": [round(x, 2) for x in lat],
                    "errors": self.errors.get(r, 0),
                    "5xx": self.server_errors.get(r, 0),
                    "timeouts": self.timeouts.get(r, 0),
                }
                for r, lat in self.latencies.items()
            },
            "error_samples": self.error_samples[:5],
            "ws_closed_by_server": self.ws_closed_by_server,
            "ws_close_codes": dict(self.ws_close_codes),
            "ws_connect_failures": self.ws_connect_failures,
            "actions": dict(self.actions),
            "events": dict(self.events),
        }
        self.__init__()  # type: ignore[misc]
        return out


@dataclass
class World:
    """What every user of the run knows from the setup (`bench.realistic_users`)."""

    host: str
    port: int
    prefix: str  # /api/v4
    ws_url: str
    team_id: str
    users: list[dict[str, Any]]  # {"id", "token", "channels": [...]} for this process
    all_user_ids: list[str]


class User:
    def __init__(
        self, world: World, me: dict[str, Any], http: Pool, stats: Stats, args: Any
    ) -> None:
        self.world, self.http, self.stats, self.args = world, http, stats, args
        self.id: str = me["id"]
        self.auth = {"Authorization": f"Bearer {me['token']}"}
        self.channels: list[str] = me["channels"]
        self.current = self.channels[0]
        self.viewed: dict[str, int] = {}  # channel -> last view (ms)
        self.users = LRU(STORE_USERS)
        self.statuses = LRU(STORE_STATUSES)
        self.members: set[str] = set(self.channels)
        self.posts: dict[str, list[dict[str, Any]]] = defaultdict(list)  # channel -> newest
        self.dms: dict[str, str] = {}  # partner -> channel
        self.drafts: set[str] = set()
        self.my_posts: list[dict[str, Any]] = []
        self.ws: ClientConnection | None = None
        self.conn_id = ""
        self.seq = 0
        self.stopping = False
        self.rng = random.Random(hash(self.id))

    # --- HTTP

    async def call(self, method: str, route: str, path: str, body: Any = None) -> Any:
        started = time.monotonic()
        try:
            resp = await self.http.request(method, self.world.prefix + path, body, self.auth)
        except TimeoutError:
            self.stats.timeouts[route] += 1
            self.stats.errors[route] += 1
            self.stats.latencies[route].append(1000 * (time.monotonic() - started))
            return None
        except (HTTPError, OSError) as exc:
            self.stats.errors[route] += 1
            self.stats.latencies[route].append(1000 * (time.monotonic() - started))
            if len(self.stats.error_samples) < 5:
                self.stats.error_samples.append(f"{route}: {type(exc).__name__}: {exc}")
            return None
        self.stats.latencies[route].append(1000 * (time.monotonic() - started))
        if resp.status >= 400:
            self.stats.errors[route] += 1
            if resp.status >= 500:
                self.stats.server_errors[route] += 1
            if len(self.stats.error_samples) < 5:
                text = resp.body[:160].decode(errors="replace")
                self.stats.error_samples.append(f"{route}: {resp.status} {text}")
            return None
        try:
            return resp.json() if resp.body else {}
        except ValueError:
            return {}

    # --- What the web app does around a page of posts

    async def posts_info(self, posts: list[dict[str, Any]]) -> None:
        authors = {p["user_id"] for p in posts if p.get("user_id")}
        unknown = [a for a in authors if a not in self.users]
        if unknown:
            got = await self.call("POST", "POST /users/ids", "/users/ids", unknown)
            for u in got or []:
                self.users.put(u["id"])
        no_status = [a for a in authors if a not in self.statuses]
        if no_status:
            await self.fetch_statuses(no_status)
        for author in authors:
            await self.call("GET", "GET /users/{id}/image", f"/users/{author}/image")

    async def fetch_statuses(self, ids: list[str]) -> None:
        got = await self.call("POST", "POST /users/status/ids", "/users/status/ids", ids)
        for s in got or []:
            self.statuses.put(s["user_id"], s.get("status"))

    def remember(self, channel: str, page: Any) -> list[dict[str, Any]]:
        if not isinstance(page, dict) or "posts" not in page:
            return []
        posts = [page["posts"][i] for i in page.get("order", []) if i in page["posts"]]
        if posts:
            self.posts[channel] = (posts + self.posts[channel])[:250]
        return posts

    async def view_channel(self, channel: str, dm: bool = False) -> None:
        await self.call(
            "POST",
            "POST /channels/members/me/view",
            "/channels/members/me/view",
            {"channel_id": channel, "prev_channel_id": self.current},
        )
        if channel not in self.viewed:
            page = await self.call(
                "GET",
                "GET /users/me/channels/{c}/posts/unread",
                f"/users/me/channels/{channel}/posts/unread?limit_before=30&limit_after=30",
            )
        else:
            page = await self.call(
                "GET",
                "GET /channels/{c}/posts?since",
                f"/channels/{channel}/posts?since={self.viewed[channel]}",
            )
        self.viewed[channel] = int(time.time() * 1000)
        await self.posts_info(self.remember(channel, page))
        await self.call("GET", "GET /channels/{c}/stats", f"/channels/{channel}/stats")
        if dm:
            prefs = [
                {
                    "user_id": self.id,
                    "category": "direct_channel_show",
                    "name": channel,
                    "value": "true",
                },
                {
                    "user_id": self.id,
                    "category": "channel_open_time",
                    "name": channel,
                    "value": str(self.viewed[channel]),
                },
            ]
            await self.call("PUT", "PUT /users/me/preferences", "/users/me/preferences", prefs)

    async def presence(self, channel: str) -> None:
        """The `presence` action the web app sends with WebSocketEventScope on."""
        await self.send_presence({"channel_id": channel})

    async def send_presence(self, data: dict[str, Any]) -> None:
        if self.ws is not None:
            self.seq += 1
            frame = {"action": "presence", "seq": self.seq, "data": data}
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(orjson.dumps(frame).decode())

    async def join_team_presence(self) -> None:
        """What the tool sends on its initial team join: the team, and no thread open in
        either thread slot (right-hand side, threads view). With both slots set, typing and
        reactions of other channels are left out for this connection (the server's rule)."""
        await self.send_presence({"team_id": self.world.team_id})
        for thread_view in (False, True):
            await self.send_presence({"thread_channel_id": "", "is_thread_view": thread_view})

    async def typing(self, channel: str, parent: str = "") -> None:
        if self.ws is not None:
            self.seq += 1
            frame = {
                "action": "user_typing",
                "seq": self.seq,
                "data": {"channel_id": channel, "parent_id": parent},
            }
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(orjson.dumps(frame).decode())

    def message(self) -> str:
        words = self.rng.choices(WORDS, k=self.rng.randint(10, 40))
        if self.rng.random() < 0.1:
            words.append("@" + "bench")  # a mention
        return " ".join(words)

    def some_post(self) -> dict[str, Any] | None:
        posts = self.posts.get(self.current) or []
        return self.rng.choice(posts) if posts else None

    # --- Actions

    async def switch_channel(self) -> None:
        choices = [c for c in self.channels if c != self.current] or self.channels
        channel = self.rng.choice(choices)
        await self.view_channel(channel)
        self.current = channel
        await self.presence(channel)

    async def scroll_channel(self) -> None:
        for _ in range(self.rng.randint(1, 5)):
            posts = self.posts.get(self.current) or []
            path = f"/channels/{self.current}/posts?per_page=30"
            if posts:
                path += f"&before={posts[-1]['id']}"
            page = await self.call("GET", "GET /channels/{c}/posts?before", path)
            await self.posts_info(self.remember(self.current, page))
            await asyncio.sleep(self.rng.uniform(1, 10) * self.args.think_scale)

    async def delete_draft(self) -> None:
        if not self.drafts:
            return
        channel = self.drafts.pop()
        await self.call(
            "DELETE",
            "DELETE /users/me/channels/{c}/drafts",
            f"/users/me/channels/{channel}/drafts",
        )

    async def unread_check(self) -> None:
        t = self.world.team_id
        await self.call(
            "GET",
            "GET /users/me/teams/{t}/channels",
            f"/users/me/teams/{t}/channels?include_deleted=true",
        )
        await self.call(
            "GET",
            "GET /users/me/teams/{t}/channels/members",
            f"/users/me/teams/{t}/channels/members",
        )
        await self.call(
            "POST",
            "POST /channels/members/me/view",
            "/channels/members/me/view",
            {"channel_id": self.current, "prev_channel_id": ""},
        )

    async def create_post(self) -> None:
        root = ""
        if self.rng.random() < REPLY_SHARE and (post := self.some_post()) is not None:
            root = post.get("root_id") or post["id"]
        await self.typing(self.current, root)
        body = {"channel_id": self.current, "message": self.message(), "root_id": root}
        got = await self.call("POST", "POST /posts", "/posts", body)
        if got:
            self.my_posts = [got, *self.my_posts][:20]

    async def open_dm(self) -> None:
        partner = self.rng.choice(self.world.all_user_ids)
        if partner == self.id:
            return
        channel = self.dms.get(partner)
        if channel is None:
            got = await self.call(
                "POST", "POST /channels/direct", "/channels/direct", [self.id, partner]
            )
            if not got:
                return
            channel = self.dms[partner] = got["id"]
            self.members.add(channel)
        await self.view_channel(channel, dm=True)

    async def view_global_threads(self) -> None:
        t = self.world.team_id
        for _ in range(self.rng.randint(1, 3)):
            await self.call(
                "GET",
                "GET /users/me/teams/{t}/threads",
                f"/users/me/teams/{t}/threads?per_page=25&extended=true",
            )

    async def upsert_draft(self) -> None:
        post = self.some_post()
        root = (post.get("root_id") or post["id"]) if post and self.rng.random() < 0.87 else ""
        await self.typing(self.current, root)
        body = {
            "user_id": self.id,
            "channel_id": self.current,
            "root_id": root,
            "message": self.message(),
            "create_at": 0,
        }
        if await self.call("POST", "POST /drafts", "/drafts", body) is not None:
            self.drafts.add(self.current)

    async def update_thread_read(self) -> None:
        post = self.some_post()
        if post is None:
            return
        root = post.get("root_id") or post["id"]
        now = int(time.time() * 1000)
        t = self.world.team_id
        await self.call(
            "PUT",
            "PUT /users/me/teams/{t}/threads/{id}/read/{ts}",
            f"/users/me/teams/{t}/threads/{root}/read/{now}",
        )

    async def view_thread(self) -> None:
        post = self.some_post()
        if post is None:
            return
        root = post.get("root_id") or post["id"]
        page = await self.call(
            "GET",
            "GET /posts/{id}/thread",
            f"/posts/{root}/thread?perPage=60&direction=down",
        )
        await self.posts_info(self.remember("thread", page))
        await self.send_presence({"thread_channel_id": self.current, "is_thread_view": False})

    async def click_permalink(self) -> None:
        await self.view_thread()

    async def reconnect_websocket(self) -> None:
        """The web app's REST calls after a reconnect (the tool does not reconnect)."""
        t = self.world.team_id
        await self.call("GET", "GET /users/me/teams/{t}/channels", f"/users/me/teams/{t}/channels")
        await self.call(
            "GET",
            "GET /users/me/teams/{t}/channels/members",
            f"/users/me/teams/{t}/channels/members",
        )
        since = self.viewed.get(self.current, 0)
        await self.call(
            "GET",
            "GET /channels/{c}/posts?since",
            f"/channels/{self.current}/posts?since={since}",
        )
        await self.fetch_statuses(list(self.statuses)[:100] or [self.id])
        await self.call("GET", "GET /users/me/teams/unread", "/users/me/teams/unread")
        await self.call(
            "POST",
            "POST /users/ids",
            f"/users/ids?since={since}",
            list(self.users)[:100] or [self.id],
        )

    async def add_reaction(self) -> None:
        post = self.some_post()
        if post is None:
            return
        body = {"user_id": self.id, "post_id": post["id"], "emoji_name": "smile"}
        await self.call("POST", "POST /reactions", "/reactions", body)

    async def edit_post(self) -> None:
        if self.my_posts:
            post = self.rng.choice(self.my_posts)
            await self.call(
                "PUT",
                "PUT /posts/{id}/patch",
                f"/posts/{post['id']}/patch",
                {"message": self.message()},
            )

    async def get_drafts(self) -> None:
        t = self.world.team_id
        await self.call("GET", "GET /users/me/teams/{t}/drafts", f"/users/me/teams/{t}/drafts")

    async def search_users(self) -> None:
        term = "bench"[: self.rng.randint(2, 5)]
        for k in range(1, len(term) + 1):  # one request per typed character
            await self.call("POST", "POST /users/search", "/users/search", {"term": term[:k]})
            await asyncio.sleep(self.rng.uniform(0.1, 0.3))

    async def click_user_profile(self) -> None:
        other = self.rng.choice(self.world.all_user_ids)
        await self.call("GET", "GET /users/{id}", f"/users/{other}")
        await self.fetch_statuses([other])

    async def search_posts(self) -> None:
        t = self.world.team_id
        term = self.rng.choice(WORDS)
        await self.call(
            "POST",
            "POST /teams/{t}/posts/search",
            f"/teams/{t}/posts/search",
            {"terms": term, "is_or_search": False, "page": 0, "per_page": 20},
        )

    # --- The websocket and its reactions (simulcontroller/websocket.go)

    async def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event", "")
        self.stats.events[kind] += 1
        data = event.get("data") or {}
        broadcast = event.get("broadcast") or {}
        if kind == "typing":
            who = data.get("user_id", "")
            if who and who not in self.users:
                self.users.put(who)
                await self.call("POST", "POST /users/ids", "/users/ids", [who])
                await self.fetch_statuses([who])
            elif who and who not in self.statuses:
                await self.fetch_statuses([who])
        elif kind == "posted":
            channel = broadcast.get("channel_id", "")
            if channel and channel not in self.members:
                self.members.add(channel)
                await self.call(
                    "GET", "GET /channels/{c}/members/me", f"/channels/{channel}/members/me"
                )
            if channel == self.current and isinstance(data.get("post"), str):
                post = orjson.loads(data["post"])
                self.posts[channel] = [post, *self.posts[channel]][:250]

    async def read_ws(self, ws: ClientConnection) -> None:
        reactions: set[asyncio.Task[None]] = set()
        try:
            async for frame in ws:
                event = orjson.loads(frame)
                if "event" not in event:
                    continue
                task = asyncio.create_task(self.on_event(event))
                reactions.add(task)
                task.add_done_callback(reactions.discard)
        except ConnectionClosed as exc:
            if not self.stopping:
                self.stats.ws_closed_by_server += 1
                code = exc.rcvd.code if exc.rcvd is not None else "no close frame"
                self.stats.ws_close_codes[str(code)] += 1
        finally:
            self.ws = None

    async def open_ws(self) -> asyncio.Task[None] | None:
        try:
            ws = await connect(
                self.world.ws_url,
                additional_headers=self.auth,
                compression=None,
                ping_interval=None,
                open_timeout=30,
                close_timeout=2,
                max_size=2**22,
            )
            hello = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
        except Exception:
            self.stats.ws_connect_failures += 1
            return None
        self.conn_id = hello.get("data", {}).get("connection_id", "")
        self.ws = ws
        return asyncio.create_task(self.read_ws(ws))

    async def periodic(self) -> None:
        """Every 60 s: statuses of self, authors of the newest posts and DM partners; and a
        performance report (simulcontroller/periodic.go)."""
        while True:
            await asyncio.sleep(60 * self.rng.uniform(0.9, 1.1))
            ids = {self.id, *self.dms}
            ids |= {p["user_id"] for p in (self.posts.get(self.current) or [])[:60]}
            await self.fetch_statuses(sorted(ids))
            await self.call(
                "POST",
                "POST /client_perf",
                "/client_perf",
                {
                    "version": "0.1.0",
                    "client_id": self.id,
                    "labels": {},
                    "counters": [],
                    "histograms": [],
                },
            )

    async def run(self, picker: random.Random) -> None:
        # Login is replaced by a personal access token (an argon2 check per login would
        # measure password hashing); the initial load is the web app's reload, then a switch.
        t = self.world.team_id
        await self.call("GET", "GET /users/me", "/users/me")
        await self.call("GET", "GET /users/me/teams", "/users/me/teams")
        await self.call("GET", "GET /users/me/teams/{t}/channels", f"/users/me/teams/{t}/channels")
        await self.call(
            "GET",
            "GET /users/me/teams/{t}/channels/members",
            f"/users/me/teams/{t}/channels/members",
        )
        reader = await self.open_ws()
        await self.join_team_presence()
        await self.switch_channel()
        periodic = asyncio.create_task(self.periodic())
        names = [a for a, _ in ACTIONS]
        weights = [w for _, w in ACTIONS]
        try:
            while True:
                action = picker.choices(names, weights)[0]
                self.stats.actions[action] += 1
                await getattr(self, action)()
                if self.ws is None and reader is not None and reader.done():
                    reader = await self.open_ws()  # the server closed it: start over
                    await self.join_team_presence()
                    await self.presence(self.current)
                lo, avg = self.args.min_idle, self.args.avg_idle
                await asyncio.sleep(picker.uniform(lo, 2 * avg - lo) * self.args.rate)
        finally:
            self.stopping = True
            periodic.cancel()
            if self.ws is not None:
                self.ws.transport.abort()
            if reader is not None:
                reader.cancel()


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def run(args: argparse.Namespace) -> None:
    spec = orjson.loads(Path(args.world).read_bytes())
    mine = spec["users"][args.start : args.start + args.count]
    url = urlsplit(spec["base"])
    world = World(
        url.hostname or "127.0.0.1",
        url.port or 80,
        url.path,
        spec["ws_url"],
        spec["team_id"],
        mine,
        spec["all_user_ids"],
    )
    stats = Stats()
    pool = max(8, spec["max_users"] // 4 // max(1, spec["procs"]))
    tasks: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    http = Pool(world.host, world.port, pool, timeout=5.0)
    try:

        async def start_users(upto: int, ramp: float) -> None:
            first = len(tasks)
            for k in range(first, min(upto, len(mine))):
                user = User(world, mine[k], http, stats, args)
                tasks.append(asyncio.create_task(user.run(random.Random(k + args.start))))
                await asyncio.sleep(ramp / max(1, upto - first))

        starter: asyncio.Task[None] | None = None
        while True:
            line = (await reader.readline()).strip()
            if not line or line == b"stop":
                break
            msg = json.loads(line)
            if "active" in msg:
                if starter is not None:
                    await starter
                starter = asyncio.create_task(start_users(msg["active"], msg.get("ramp", 0)))
                emit({"ok": True})
            elif "report" in msg:
                emit({"report": {**stats.take(), "races": http.races}, "users": len(tasks)})
                http.races = 0
        if starter is not None:
            starter.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await http.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--world", required=True, help="JSON written by bench.realistic_users")
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--min-idle", type=float, default=1.0)
    p.add_argument("--avg-idle", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--think-scale", type=float, default=1.0, help="scales in-action pauses")
    p.add_argument("--uvloop", action="store_true")
    args = p.parse_args()
    run_client_process(run(args), args.uvloop)


if __name__ == "__main__":
    main()
