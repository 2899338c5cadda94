"""`FeatureFlags.WebSocketEventScope`: typing and reaction events only reach connections that have
their channel (or thread) open, as told by the clients' `presence` actions (realtime/scope.py).

Real websockets on a real node. In the public channel, alice types and bob reacts; who gets the
events depends on what each connection said it has open, by Mattermost's rule: left out only
when the open channel differs *and* both thread slots are set to other channels. A connection
that never sent `presence` gets everything. The left-out events take no seq (the stream stays
gap-free), and a resume after one replays exactly what was missed. With the flag off, presence
changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.node import Node, keepalive_settings, start_node
from tests.support.rest import Org, Rest, make_org
from tests.support.ws import RawWS, hello_of, post_id_of, read_until_post, sync

ELSEWHERE = "e" * 26  # a channel id that is not the public channel's


@pytest.fixture(scope="module")
def live_node_settings() -> dict[str, str]:
    # Long keep-alive: a socket closed on purpose stays resumable while the test works.
    return keepalive_settings(25, 60)


def _presence(ws: RawWS, seq: int, data: dict[str, Any]) -> None:
    answer = ws.request(seq, "presence", data)
    assert answer["status"] == "OK", answer


def _looking_elsewhere(ws: RawWS) -> None:
    """Another channel open, and another channel's thread in both thread slots."""
    _presence(ws, 1, {"channel_id": ELSEWHERE})
    _presence(ws, 2, {"thread_channel_id": ELSEWHERE, "is_thread_view": False})
    _presence(ws, 3, {"thread_channel_id": ELSEWHERE, "is_thread_view": True})


def _events_until(ws: RawWS, post_id: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    read_until_post(ws, post_id, 10, seen)
    return [m for m in seen if "event" in m]


def _typing_and_reaction(rest: Rest, org: Org, typer: RawWS) -> str:
    """alice types in the public channel, bob reacts to a post there; then a marker post.
    Returns the marker's id."""
    answer = typer.request(10, "user_typing", {"channel_id": org.public["id"], "parent_id": ""})
    assert answer["status"] == "OK", answer
    post = rest.post(org.admin, org.public["id"], "react to me")
    rest.call(
        "POST",
        "/reactions",
        org.bob.token,
        {"user_id": org.bob.id, "post_id": post["id"], "emoji_name": "smile"},
        expect=201,
    )
    return str(rest.post(org.admin, org.public["id"], "marker")["id"])


def _kinds(events: list[dict[str, Any]]) -> set[str]:
    return {e["event"] for e in events}


def test_typing_and_reactions_reach_only_connections_with_the_channel_open(
    live_node: Node, rest: Rest, org: Org
) -> None:
    # The web app sends `presence` only when the client configuration says so.
    assert rest.call("GET", "/config/client?format=old")["FeatureFlagWebSocketEventScope"] == "true"
    typer = live_node.connect(org.alice)
    viewing = live_node.connect(org.bob)  # has the public channel open
    elsewhere = live_node.connect(org.carol)  # another channel and other threads open
    half_told = live_node.connect(org.carol)  # another channel, thread slots never set
    silent = live_node.connect(org.admin)  # never sent presence
    sockets = [typer, viewing, elsewhere, half_told, silent]
    try:
        for ws in sockets:
            hello_of(ws)
        _presence(viewing, 1, {"channel_id": org.public["id"]})
        _looking_elsewhere(elsewhere)
        _presence(half_told, 1, {"channel_id": ELSEWHERE})
        before = sync(elsewhere, rest, org.admin, org.public["id"])
        scoped_before = live_node.metric("hubbub_websocket_scoped_events_total", event="typing")

        marker = _typing_and_reaction(rest, org, typer)

        for ws in (viewing, half_told, silent):
            assert {"typing", "reaction_added"} <= _kinds(_events_until(ws, marker))
        got = _events_until(elsewhere, marker)
        assert not {"typing", "reaction_added"} & _kinds(got), got
        # The left-out events took no seq: the stream goes on without a gap.
        assert [e["seq"] for e in got] == list(range(before + 1, before + 1 + len(got))), got
        assert [post_id_of(e) for e in got if e["event"] == "posted"][-1] == marker
        assert (
            live_node.metric("hubbub_websocket_scoped_events_total", event="typing")
            == scoped_before + 1
        )

        # Opening the channel brings the events back.
        _presence(elsewhere, 4, {"channel_id": org.public["id"]})
        marker = _typing_and_reaction(rest, org, typer)
        assert {"typing", "reaction_added"} <= _kinds(_events_until(elsewhere, marker))
    finally:
        for ws in sockets:
            ws.close()


def test_a_resume_after_left_out_events_replays_exactly_what_was_missed(
    live_node: Node, rest: Rest, org: Org
) -> None:
    ws = live_node.connect(org.carol)
    connection_id = hello_of(ws)["data"]["connection_id"]
    _looking_elsewhere(ws)
    post = rest.post(org.admin, org.public["id"], "react to me")
    rest.call(
        "POST",
        "/reactions",
        org.bob.token,
        {"user_id": org.bob.id, "post_id": post["id"], "emoji_name": "tada"},
        expect=201,
    )
    # Read up to the post; the reaction after it is left out for this connection.
    next_seq = int(read_until_post(ws, post["id"])["seq"]) + 1
    ws.send_close(1000)
    ws.wait_closed(5)
    ws.close()
    live_node.wait_close_line(connection_id)

    missed = rest.post(org.admin, org.public["id"], "missed")["id"]
    back = live_node.connect(
        org.carol,
        query={"connection_id": connection_id, "sequence_number": str(next_seq)},
    )
    try:
        marker = rest.post(org.admin, org.public["id"], "live again")["id"]
        events = _events_until(back, marker)
        assert "hello" not in _kinds(events), events
        assert [e["seq"] for e in events] == list(range(next_seq, next_seq + len(events)))
        assert [post_id_of(e) for e in events if e["event"] == "posted"] == [missed, marker]
    finally:
        back.close()


@pytest.fixture(scope="module")
def unscoped_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    node = start_node(
        tmp_path_factory.mktemp("unscoped"), {"MM_FEATUREFLAGS_WEBSOCKETEVENTSCOPE": "false"}
    )
    try:
        yield node
    finally:
        node.server.stop()


def test_with_the_flag_off_presence_changes_nothing(unscoped_node: Node) -> None:
    rest = Rest(unscoped_node.url)
    try:
        org = make_org(rest)
        config = rest.call("GET", "/config/client?format=old")
        assert config["FeatureFlagWebSocketEventScope"] == "false"
        typer = unscoped_node.connect(org.alice)
        elsewhere = unscoped_node.connect(org.carol)
        try:
            hello_of(typer)
            hello_of(elsewhere)
            _looking_elsewhere(elsewhere)
            marker = _typing_and_reaction(rest, org, typer)
            assert {"typing", "reaction_added"} <= _kinds(_events_until(elsewhere, marker))
        finally:
            typer.close()
            elsewhere.close()
    finally:
        rest.close()
