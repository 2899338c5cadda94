"""The client and the console against a cluster: three `hubbub serve` nodes on one PostgreSQL
database and one Redis, behind nginx (tests/support/cluster.py); the browser talks to nginx only.

* The node serving a browser's websocket is SIGKILLed while someone keeps posting: the page shows
  "Reconnecting…", resumes its stream on another node (same connection id), and shows every
  message exactly once, without reloading.
* The console shows every node green; a node whose config.json got a different setting red
  with "config mismatch: <setting>" after a reload from the console, and green again once the
  file is fixed and reloaded (no restart); a node that died red with "down". Someone who is not
  a system admin gets 403 from its API and from `/admin`, a page that says "Forbidden".
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import Pages
from tests.support.browser_chat import PASSWORD, Chat, SocketFrames
from tests.support.cluster import Cluster, ClusterNode, start_cluster, write_config
from tests.support.postgres import PostgresInstance, fresh_postgres_database
from tests.support.rest import Account, Org, Rest, make_org
from tests.support.stream import Stream
from tests.support.wait import wait_until

# Records every websocket state the page goes through, with the time and the banner's text.
RECORD_STATES = """() => {
  window.__states = [];
  window.__sameDocument = true;
  const banner = document.querySelector(".banner");
  new MutationObserver(() => window.__states.push({
    state: document.body.dataset.wsState,
    at: Date.now(),
    banner: banner.hidden ? "" : banner.textContent,
  })).observe(document.body, { attributes: true, attributeFilter: ["data-ws-state"] });
}"""


# In each node's config.json (not an MM_* variable), so that a test can change it and reload.
QUERY_TIMEOUT = 30


@pytest.fixture(scope="module")
def cluster(postgres: PostgresInstance) -> Iterator[Cluster]:
    started = start_cluster(
        fresh_postgres_database(postgres),
        config_json={"SqlSettings": {"QueryTimeout": QUERY_TIMEOUT}},
    )
    try:
        yield started
    finally:
        started.close()


@pytest.fixture(scope="module")
def org(cluster: Cluster) -> Iterator[Org]:
    rest = Rest(cluster[0].url)
    try:
        yield make_org(rest)
    finally:
        rest.close()


@pytest.fixture(autouse=True)
def every_node_up(cluster: Cluster) -> None:
    cluster.ensure_all_running()


def _alive_other_than(cluster: Cluster, victim: ClusterNode) -> ClusterNode:
    return next(node for node in cluster if node.alive and node is not victim)


class Poster:
    """Posts a numbered message every 50 ms from a thread, through one node's REST API."""

    def __init__(self, rest: Rest, author: Account, channel_id: str) -> None:
        self.rest, self.author, self.channel_id = rest, author, channel_id
        self.posts: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        try:
            while not self.stopping.wait(0.05):
                self.posts.append(
                    self.rest.post(
                        self.author, self.channel_id, f"during failover {len(self.posts)}"
                    )
                )
        except BaseException as exc:
            self.errors.append(exc)

    def stop(self) -> list[dict[str, Any]]:
        self.stopping.set()
        self.thread.join(10)
        assert not self.errors, self.errors
        return self.posts


def _open_chat(page: Page, who: Account, channel: dict[str, Any]) -> Chat:
    chat = Chat(page)
    chat.log_in(who.username, PASSWORD)
    chat.wait_ready()
    chat.open_channel(channel["display_name"])
    return chat


def test_a_browser_resumes_on_another_node_when_its_node_is_killed(
    cluster: Cluster, org: Org, pages: Pages
) -> None:
    page = pages.open("alice", cluster.nginx_url)
    chat = _open_chat(page, org.alice, org.public)
    connection_id = chat.ws("connection-id")
    assert connection_id
    name = ""

    def registered() -> bool:
        nonlocal name
        name = cluster.node_of_connection(connection_id)
        return bool(name)

    wait_until(registered, 10, f"the registry to name the node of {connection_id}")
    victim = cluster.node_named(name)
    survivor = _alive_other_than(cluster, victim)
    rest = Rest(survivor.url)
    try:
        before = rest.post(org.bob, org.public["id"], "before the failover")
        expect(chat.post("before the failover")).to_have_count(1)
        page.evaluate(RECORD_STATES)
        frames = SocketFrames(page)  # the sockets of the reconnect

        poster = Poster(rest, org.bob, org.public["id"])
        poster.thread.start()
        victim.kill()
        page.wait_for_function(
            "() => window.__states.some(s => s.state === 'reconnecting')", timeout=15_000
        )
        page.wait_for_function(
            "() => window.__states.length && window.__states.at(-1).state === 'open'",
            timeout=30_000,
        )
        # A few more once it is back, then stop.
        resumed_at = len(poster.posts)
        wait_until(lambda: len(poster.posts) >= resumed_at + 3, 10, "posts after the resume")
        posts = poster.stop()
    finally:
        rest.close()

    states = page.evaluate("window.__states")
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
    assert any(s["banner"] == "Reconnecting…" for s in states), states
    down_at = next(s["at"] for s in states if s["state"] == "reconnecting")
    up_at = next(s["at"] for s in reversed(states) if s["state"] == "open")
    meanwhile = [p for p in posts if down_at <= p["create_at"] <= up_at]
    assert meanwhile, f"no post was made while the page was reconnecting: {states}"

    # Every message once, in order, on the page that never reloaded.
    for post in [before, *posts]:
        expect(chat.post(post["message"])).to_have_count(1)
    shown = page.locator("main .post .post-body").all_inner_texts()
    expected = [before["message"], *(p["message"] for p in posts)]
    assert [t for t in shown if t in expected] == expected

    # The same stream, resumed (not a fresh hello and a refetch) on a node that is alive.
    assert chat.ws("connection-id") == connection_id
    now_on = cluster.node_named(cluster.node_of_connection(connection_id))
    assert now_on is not victim and now_on.alive, (victim.name, now_on.name)
    expect(page.locator("body")).to_have_attribute("data-ws-node", now_on.name)

    # The new node knows nothing of what the page shows: the page told it again when its socket
    # opened, so typing in a channel it does not show is still not sent to it (WebSocketEventScope).
    frames.wait_replied("presence")
    assert {"channel_id": org.public["id"]} in frames.sent("presence")
    typist = Stream.open(survivor, org.bob)
    try:
        typist.hello()
        for seq, channel in enumerate((org.private, org.public), start=1):
            typist.ws.send_json(
                {"action": "user_typing", "seq": seq, "data": {"channel_id": channel["id"]}}
            )
            typist.expect(lambda m, s=seq: m.get("seq_reply") == s, 5, f"reply {seq}")
    finally:
        typist.close()
    expect(chat.typing_line()).to_have_text(re.compile(r" is typing…$"))
    assert set(frames.typing_channels()) == {org.public["id"]}


def _console(cluster: Cluster, token: str) -> httpx.Response:
    return httpx.get(
        f"{cluster.nginx_url}/api/v4/hubbub/console",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def _reload_from_the_console(page: Page) -> None:
    page.get_by_role("button", name="Reload configuration").click()
    page.get_by_role("group", name=re.compile(r"\?$")).get_by_role("button", name="Yes").click()
    expect(page.locator(".action-result")).to_have_text("Reload configuration: done.")


def _row(page: Page, node: ClusterNode) -> Any:
    return page.locator(f'table.nodes tr[data-node-name="{node.name}"]')


def test_the_console_names_a_config_mismatch_and_turns_green_after_the_fix(
    cluster: Cluster, org: Org, pages: Pages
) -> None:
    page = pages.open("console", cluster.nginx_url)
    Chat(page).log_in(org.admin.username, PASSWORD, path="/admin")
    for node in cluster:
        expect(_row(page, node)).to_have_attribute("data-state", "green")
    # A leader killed by the test before holds its lease until it expires (LeaseSeconds).
    expect(page.locator("table.nodes .tag", has_text="leader")).to_have_count(1, timeout=40_000)
    expect(page.get_by_role("region", name="Redis")).to_contain_text("master")
    expect(page.get_by_role("region", name="File store")).to_contain_text("Shared by every node")
    expect(page.locator("table.websockets tbody tr")).to_have_count(len(cluster))

    # A node whose config.json differs: red, naming the setting. The fix is the file and the
    # console's reload button, which reloads every node: green again, with no restart.
    # The leader tells the admins' websockets (on any node) when the picture changes; others
    # hear nothing of it.
    admin_ws = Stream.open(cluster[1], org.admin)
    alice_ws = Stream.open(cluster[1], org.alice)
    admin_ws.hello()
    alice_ws.hello()
    odd = cluster[2]
    write_config(odd.server.workdir, {"SqlSettings": {"QueryTimeout": 31}})
    _reload_from_the_console(page)
    row = _row(page, odd)
    expect(row).to_have_attribute("data-state", "red", timeout=30_000)
    expect(row.locator(".reasons")).to_have_text("config mismatch: SqlSettings.QueryTimeout")
    admin_ws.expect_event("hubbub_console_changed", 30)
    alice_ws.none_within(lambda m: m.get("event") == "hubbub_console_changed", 1.0)
    admin_ws.close()
    alice_ws.close()
    for node in (cluster[0], cluster[1]):
        expect(_row(page, node)).to_have_attribute("data-state", "green")

    write_config(odd.server.workdir, {"SqlSettings": {"QueryTimeout": QUERY_TIMEOUT}})
    _reload_from_the_console(page)
    expect(row).to_have_attribute("data-state", "green", timeout=30_000)
    expect(row.locator(".reasons")).to_have_text("ok")

    page.get_by_role("button", name="Recycle database connections").click()
    page.get_by_role("group", name=re.compile(r"\?$")).get_by_role("button", name="Yes").click()
    expect(page.locator(".action-result")).to_have_text("Recycle database connections: done.")

    # A node that dies: red, "down", once its heartbeats are older than the live window.
    gone = cluster[1]
    gone.kill()
    down = _row(page, gone)
    expect(down).to_have_attribute("data-state", "red", timeout=45_000)
    expect(down.locator(".reasons")).to_contain_text("down: no heartbeat for")


def test_the_console_is_for_system_admins_only(cluster: Cluster, org: Org, pages: Pages) -> None:
    assert _console(cluster, org.admin.token).status_code == 200
    refused = _console(cluster, org.alice.token)
    assert refused.status_code == 403
    assert refused.json()["id"] == "api.context.permissions.app_error"
    assert _console(cluster, "not-a-token").status_code == 401

    page = pages.open("alice-console", cluster.nginx_url)
    Chat(page).log_in(org.alice.username, PASSWORD, path="/admin")
    expect(page.get_by_role("alert")).to_contain_text("Forbidden")
    expect(page.locator("table.nodes")).to_have_count(0)
    # Signed in, the page itself is a 403 too.
    response = page.goto("/admin")
    assert response is not None and response.status == 403
    expect(page.get_by_role("alert")).to_contain_text("Forbidden")
