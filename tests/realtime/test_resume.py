"""Resume: a client that reconnects with `connection_id` and `sequence_number` gets exactly what
it missed, with no hello; anything that cannot be served exactly gets a fresh hello with a new
connection id (never a close, never a partial replay); a resume takes over a socket the server
still thinks is alive (DESIGN §4 invariant 3; reference §2c+ points 2, 3, 5, 6, 9).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.node import Node, keepalive_settings
from tests.support.rest import Org, Rest
from tests.support.wait import wait_until
from tests.support.ws import RawWS, hello_of, post_id_of, read_until_post, sync

MISSED = 6


@pytest.fixture(scope="module")
def live_node_settings() -> dict[str, str]:
    # A held-open old socket that does not read must not be closed by the keep-alive here.
    return keepalive_settings(25, 60)


def _reconnects(live_node: Node, kind: str) -> float:
    return live_node.metric("mattermost_websocket_reconnects_total", type=kind)


def _closed_cleanly(live_node: Node, ws: RawWS, connection_id: str) -> None:
    ws.send_close(1000)
    ws.wait_closed(5)
    ws.close()
    # The server has finished with the old socket before the client comes back.
    live_node.wait_close_line(connection_id)


def _replayed(ws: RawWS, until_post: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    read_until_post(ws, until_post, 10, seen)
    return [m for m in seen if "event" in m]


def _assert_exact_replay(
    events: list[dict[str, Any]], next_seq: int, missed: list[str], marker: str
) -> None:
    assert not [e for e in events if e["event"] == "hello"], (
        f"a resumed stream got a hello: {events}"
    )
    assert [e["seq"] for e in events] == list(range(next_seq, next_seq + len(events))), [
        (e["event"], e["seq"]) for e in events
    ]
    assert [post_id_of(e) for e in events if e["event"] == "posted"] == [*missed, marker]


def test_resume_replays_exactly_the_missed_events(live_node: Node, rest: Rest, org: Org) -> None:
    success_before = _reconnects(live_node, "success")
    ws = live_node.connect(org.alice)
    connection_id = hello_of(ws)["data"]["connection_id"]
    next_seq = sync(ws, rest, org.admin, org.public["id"]) + 1
    _closed_cleanly(live_node, ws, connection_id)

    missed = [rest.post(org.bob, org.public["id"], f"missed {i}")["id"] for i in range(MISSED)]
    back = live_node.connect(
        org.alice, query={"connection_id": connection_id, "sequence_number": str(next_seq)}
    )
    try:
        marker = rest.post(org.bob, org.public["id"], "live again")["id"]
        _assert_exact_replay(_replayed(back, marker), next_seq, missed, marker)
        assert _reconnects(live_node, "success") == success_before + 1
    finally:
        back.close()


def test_resume_works_for_a_challenge_authenticated_client(
    live_node: Node, rest: Rest, org: Org
) -> None:
    """A bot that authenticates by authentication_challenge must be resumed too (§2c+ 2)."""
    ws = live_node.connect()
    ws.send_json({"seq": 1, "action": "authentication_challenge", "data": {"token": org.bob.token}})
    connection_id = ws.wait_event(lambda m: m.get("event") == "hello", 5, "hello")["data"][
        "connection_id"
    ]
    next_seq = sync(ws, rest, org.admin, org.public["id"]) + 1
    _closed_cleanly(live_node, ws, connection_id)

    missed = [rest.post(org.alice, org.public["id"], f"missed {i}")["id"] for i in range(MISSED)]
    back = live_node.connect(
        query={"connection_id": connection_id, "sequence_number": str(next_seq)}
    )
    try:
        back.send_json(
            {"seq": 1, "action": "authentication_challenge", "data": {"token": org.bob.token}}
        )
        marker = rest.post(org.alice, org.public["id"], "live again")["id"]
        seen: list[dict[str, Any]] = []
        read_until_post(back, marker, 10, seen)
        replies = [m for m in seen if "seq_reply" in m]
        assert replies == [{"status": "OK", "seq_reply": 1}], replies
        _assert_exact_replay([m for m in seen if "event" in m], next_seq, missed, marker)
    finally:
        back.close()


@pytest.mark.parametrize("case", ["unknown_connection_id", "sequence_far_ahead"])
def test_unservable_resume_gets_a_fresh_hello_with_a_new_id(
    live_node: Node, rest: Rest, org: Org, case: str
) -> None:
    failures_before = _reconnects(live_node, "failure")
    ws = live_node.connect(org.alice)
    connection_id = hello_of(ws)["data"]["connection_id"]
    next_seq = sync(ws, rest, org.admin, org.public["id"]) + 1
    _closed_cleanly(live_node, ws, connection_id)
    rest.post(org.bob, org.public["id"], "missed")

    if case == "unknown_connection_id":
        query = {"connection_id": "a" * 26, "sequence_number": str(next_seq)}
    else:
        query = {"connection_id": connection_id, "sequence_number": str(next_seq + 1000)}
    back = live_node.connect(org.alice, query=query)
    try:
        hello = hello_of(back)  # a fresh stream from seq 0, not a close
        new_id = hello["data"]["connection_id"]
        assert new_id not in (connection_id, query["connection_id"]), hello
        marker = rest.post(org.bob, org.public["id"], "after the fresh hello")["id"]
        seen: list[dict[str, Any]] = []
        read_until_post(back, marker, 5, seen)
        events = [m for m in seen if "event" in m]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert [post_id_of(e) for e in events if e["event"] == "posted"] == [marker], (
            "a fresh stream must not replay old posts"
        )
        assert _reconnects(live_node, "failure") == failures_before + 1
    finally:
        back.close()


def test_resume_takes_over_a_socket_the_server_thinks_is_alive(
    live_node: Node, rest: Rest, org: Org
) -> None:
    """After a silent network failure the client comes back while its old socket is still open
    on the server: the old socket must not get a single event more (§2c+ 3 and 9)."""
    lossless_before = _reconnects(live_node, "lossless")
    old = live_node.connect(org.carol)
    connection_id = hello_of(old)["data"]["connection_id"]
    # The socket puts carol online after its hello; that status_change must reach it before the
    # sync marker (a write after the status one), or it arrives after `frames_before` is taken.
    wait_until(
        lambda: (
            rest.call("GET", f"/users/{org.carol.id}/status", org.carol.token)["status"] == "online"
        ),
        10,
        "carol to show online",
    )
    next_seq = sync(old, rest, org.admin, org.public["id"]) + 1
    frames_before = old.frames_after_open

    new = live_node.connect(
        org.carol, query={"connection_id": connection_id, "sequence_number": str(next_seq)}
    )
    old_frames: list[dict[str, Any]] = []
    try:
        assert new.request(1, "ping")["data"]["text"] == "pong"
        posts = [
            rest.post(org.bob, org.public["id"], f"after takeover {i}")["id"] for i in range(5)
        ]
        seen: list[dict[str, Any]] = []
        read_until_post(new, posts[-1], 10, seen)
        events = [m for m in seen if "event" in m]
        assert not [e for e in events if e["event"] == "hello"], events
        assert [e["seq"] for e in events] == list(range(next_seq, next_seq + len(events)))
        assert [post_id_of(e) for e in events if e["event"] == "posted"] == posts
        assert _reconnects(live_node, "lossless") == lossless_before + 1

        # Whatever the old socket still yields: no event frame may be among it.
        try:
            while (message := old.recv_message(1.0)) is not None:
                old_frames.append(message)
        except OSError:
            pass
        except Exception as closed:  # WSClosed: the server dropped it, which is fine
            assert "close" in str(closed) or "TCP" in str(closed)
        assert old.frames_after_open == frames_before, f"old socket got {old_frames}"
    finally:
        old.close()
        new.close()


def test_resume_then_resume_again_continues_the_same_stream(
    live_node: Node, rest: Rest, org: Org
) -> None:
    ws = live_node.connect(org.bob)
    connection_id = hello_of(ws)["data"]["connection_id"]
    next_seq = sync(ws, rest, org.admin, org.public["id"]) + 1
    for round_ in range(3):
        _closed_cleanly(live_node, ws, connection_id)
        missed = [rest.post(org.alice, org.public["id"], f"r{round_} {i}")["id"] for i in range(3)]
        ws = live_node.connect(
            org.bob, query={"connection_id": connection_id, "sequence_number": str(next_seq)}
        )
        marker = rest.post(org.alice, org.public["id"], f"r{round_} marker")["id"]
        events = _replayed(ws, marker)
        _assert_exact_replay(events, next_seq, missed, marker)
        next_seq = events[-1]["seq"] + 1
    ws.close()
