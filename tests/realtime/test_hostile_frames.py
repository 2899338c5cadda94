"""Hostile websocket input against a real `hubbub serve`: malformed and huge frames, binary
frames, broken framing, unknown actions, wrong `seq`, floods of actions and of `user_typing`.
Each gets a clear error reply or a close code; the node keeps serving everyone else and its
memory stays bounded. The last test is a hypothesis-driven frame fuzzer.

Frames are written byte by byte here (`frame()`), so a test can send what no client library
would: reserved bits and opcodes, unmasked frames, oversized control frames, lying lengths.
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hubbub.realtime.limits import TYPING_BURST
from tests.support.node import Node, keepalive_settings
from tests.support.rest import Org, Rest
from tests.support.ws import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    RawWS,
    WSClosed,
    hello_of,
    read_until_post,
)

BURST = 20
RATE = 5


@pytest.fixture(scope="module")
def live_node_settings() -> dict[str, str]:
    return {
        **keepalive_settings(25, 60),
        "MM_SERVICESETTINGS_WEBSOCKETACTIONSPERSECOND": str(RATE),
        "MM_SERVICESETTINGS_WEBSOCKETACTIONBURST": str(BURST),
    }


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    declared: int | None = None,
) -> bytes:
    """One frame as bytes; `declared` claims a payload length other than the real one."""
    n = len(payload) if declared is None else declared
    head = bytes([(0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode])
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    stream = int.from_bytes((key * (len(payload) // 4 + 1))[: len(payload)], "big")
    masked_payload = (int.from_bytes(payload, "big") ^ stream).to_bytes(len(payload), "big")
    return head + key + masked_payload


def rss_kib(node: Node) -> int:
    with open(f"/proc/{node.server.proc.pid}/status") as f:
        status = f.read()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


@pytest.fixture
def ws(live_node: Node, org: Org) -> Iterator[RawWS]:
    conn = live_node.connect(org.alice)
    hello_of(conn)
    try:
        yield conn
    finally:
        conn.close()


def closed_with(conn: RawWS, timeout: float = 5.0) -> int | None:
    return conn.wait_closed(timeout).code


def test_binary_frame_is_closed_as_unsupported(ws: RawWS) -> None:
    ws.send_frame(OP_BINARY, b"\x81\xa6action\xa4ping")
    assert closed_with(ws) == 1003


def test_invalid_utf8_text_is_closed_with_1007(ws: RawWS) -> None:
    ws.send_frame(OP_TEXT, b'{"seq":1,"action":"ping\xff\xfe"}')
    assert closed_with(ws) == 1007


@pytest.mark.parametrize(
    "raw",
    [
        frame(OP_TEXT, b'{"seq":1,"action":"ping"}', rsv=4),  # RSV1 without an extension
        frame(0x3, b"x"),  # reserved data opcode
        frame(0xB, b"x"),  # reserved control opcode
        frame(OP_TEXT, b'{"seq":1,"action":"ping"}', masked=False),  # clients must mask
        frame(OP_PING, b"p" * 126),  # control frames carry at most 125 bytes
        frame(OP_PING, b"p", fin=False),  # control frames cannot be fragmented
        frame(OP_CONT, b"orphan continuation"),
    ],
    ids=["rsv1", "opcode-3", "opcode-11", "unmasked", "big-ping", "fragmented-ping", "orphan"],
)
def test_broken_framing_is_closed_as_a_protocol_error(ws: RawWS, raw: bytes) -> None:
    ws.sock.sendall(raw)
    assert closed_with(ws) == 1002


def test_frame_over_the_size_limit_is_closed_with_1009_before_it_is_read(ws: RawWS) -> None:
    # Only the header is sent: the server refuses by the declared length, without buffering.
    ws.sock.sendall(frame(OP_TEXT, b"", declared=64 * 1024 * 1024))
    assert closed_with(ws) == 1009


def test_fragmented_message_over_the_limit_is_closed_with_1009(ws: RawWS) -> None:
    chunk = b"x" * 65536
    ws.sock.sendall(frame(OP_TEXT, chunk, fin=False))
    with pytest.raises(WSClosed) as closed:
        for _ in range(20):  # 1.3 MiB in all, over the 512 KiB limit
            ws.sock.sendall(frame(OP_CONT, chunk, fin=False))
            ws.recv_message(0.05)
        ws.wait_closed(5)
    assert closed.value.code == 1009


def test_fragmented_message_within_the_limit_is_one_request(ws: RawWS) -> None:
    text = json.dumps({"seq": 7, "action": "ping"}).encode()
    ws.sock.sendall(frame(OP_TEXT, text[:5], fin=False) + frame(OP_CONT, text[5:]))
    reply = ws.wait_event(lambda m: m.get("seq_reply") == 7, 5, "the ping reply")
    assert reply["status"] == "OK"


@pytest.mark.parametrize(
    ("request_", "error_id"),
    [
        ({"seq": 1, "action": "no_such_action"}, "api.web_socket_router.bad_action.app_error"),
        ({"seq": -5, "action": "ping"}, "api.web_socket_router.bad_seq.app_error"),
        ({"seq": "1", "action": "ping"}, "api.web_socket_router.bad_seq.app_error"),
        ({"seq": 1.5, "action": "ping"}, "api.web_socket_router.bad_seq.app_error"),
        ({"seq": True, "action": "ping"}, "api.web_socket_router.bad_seq.app_error"),
        ({"seq": 1, "action": ""}, "api.web_socket_router.no_action.app_error"),
        ({"seq": 1, "action": 5}, "api.web_socket_router.no_action.app_error"),
        ({"seq": 1, "action": "ping", "data": [1]}, "api.web_socket_router.bad_data.app_error"),
        (
            {"seq": 1, "action": "user_typing", "data": {"channel_id": "../../etc"}},
            "api.websocket_handler.invalid_param.app_error",
        ),
        (
            {"seq": 1, "action": "get_statuses_by_ids", "data": {"user_ids": "x"}},
            "api.websocket_handler.invalid_param.app_error",
        ),
    ],
)
def test_bad_requests_get_an_error_reply_and_the_socket_stays(
    ws: RawWS, request_: dict[str, Any], error_id: str
) -> None:
    ws.send_json(request_)
    reply = ws.wait_event(lambda m: m.get("status") == "FAIL", 5, "an error reply")
    assert reply["error"]["id"] == error_id, reply
    assert ws.request(99, "ping")["status"] == "OK"


def test_a_flood_is_refused_then_closed_and_others_keep_receiving(
    live_node: Node, rest: Rest, org: Org, ws: RawWS
) -> None:
    bystander = live_node.connect(org.bob)
    hello_of(bystander)
    typing = {"channel_id": org.public["id"], "parent_id": ""}
    refused_before = live_node.metric(
        "hubbub_websocket_refused_actions_total", reason="rate_limited"
    )
    try:
        statuses: list[str] = []
        with pytest.raises(WSClosed) as closed:
            for seq in range(1, 10 * BURST):
                ws.send_json({"seq": seq, "action": "user_typing", "data": typing})
            while True:
                message = ws.recv_message(5)
                if message is None:
                    raise AssertionError(f"not closed after the flood; replies {statuses[-5:]}")
                if "seq_reply" in message:
                    statuses.append(
                        message["status"]
                        if message["status"] == "OK"
                        else message["error"]["id"] + f":{message['error']['status_code']}"
                    )
        assert closed.value.code == 1008
        # The burst ran (and what refilled meanwhile); then refusals, counted, until the close.
        assert BURST <= statuses.count("OK") <= BURST + RATE * 5, statuses
        assert set(statuses) <= {"OK", "api.web_socket_router.rate_limit.app_error:429"}
        refused = live_node.metric("hubbub_websocket_refused_actions_total", reason="rate_limited")
        assert refused >= refused_before + BURST
        # Of the typing that ran, a burst was published, the rest dropped: bob saw a few
        # typing events, not a flood.
        post = rest.post(org.carol, org.public["id"], "after the flood")
        seen: list[dict[str, Any]] = []
        read_until_post(bystander, post["id"], 5, seen)
        assert 1 <= [m.get("event") for m in seen].count("typing") <= TYPING_BURST + 1, seen
        coalesced = live_node.metric(
            "hubbub_websocket_refused_actions_total", reason="typing_coalesced"
        )
        assert coalesced >= BURST - TYPING_BURST - 1
        [line] = live_node.wait_close_reason("rate_limited", 0)
        assert line["user_id"] == org.alice.id and line["close_code"] == 1008
    finally:
        bystander.close()


# The fuzzer. Each example opens a socket, sends a few generated frames, then a ping: the
# server must answer every request with a well-formed reply and the ping, or close with one of
# the codes below; never fail internally, never drop the TCP connection without a close frame.
ALLOWED_CLOSES = {1002, 1003, 1007, 1008, 1009}
ACTIONS = [
    "ping",
    "user_typing",
    "presence",
    "get_statuses",
    "get_statuses_by_ids",
    "user_update_active_status",
    "authentication_challenge",
    "posted_notify_ack",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
requests = st.fixed_dictionaries(
    {
        "seq": st.integers(-3, 2**40) | json_values,
        "action": st.sampled_from(ACTIONS) | st.text(max_size=20),
    },
    optional={
        "data": st.dictionaries(
            st.sampled_from(
                ["channel_id", "parent_id", "user_ids", "user_is_active", "manual", "token"]
            ),
            json_values,
            max_size=4,
        )
        | json_values
    },
)
request_frames = requests.map(lambda r: frame(OP_TEXT, json.dumps(r).encode()))
other_text = (
    json_values.map(lambda v: json.dumps(v).encode())
    | st.text(max_size=200).map(str.encode)
    | st.binary(max_size=200)
    | st.integers(1, 600_000).map(lambda n: b'{"seq":1,"action":"' + b"a" * n + b'"}')
)
# Requests (well-formed JSON of any shape) weigh as much as everything else together, so most
# examples get past the first frame.
frames = st.one_of(
    request_frames,
    request_frames,
    request_frames,
    other_text.map(lambda p: frame(OP_TEXT, p)),
    st.binary(max_size=100).map(lambda p: frame(OP_BINARY, p)),
    # Any opcode but close (a close of the client's own is answered with its own code).
    st.tuples(
        st.integers(0, 15).filter(lambda op: op != 0x8),
        st.binary(max_size=130),
        st.booleans(),
        st.integers(0, 7),
    ).map(lambda t: frame(t[0], t[1], fin=t[2], rsv=t[3])),
)


class Frames(tuple[bytes, ...]):
    """The frames of one example, shown short: a frame may be 600 kB, and hypothesis's report of
    a failing example would otherwise be refused as an overly large repr (a warning, so an
    error here), hiding the failure itself."""

    __slots__ = ()

    def __repr__(self) -> str:
        shown = ", ".join(f"{len(f)} bytes {f[:48]!r}" for f in self)
        return f"Frames({shown})"


@pytest.fixture(scope="module")
def fuzz_guard(live_node: Node, org: Org) -> Iterator[dict[str, Any]]:
    """A bystander that must keep being served, and the server's memory before the run."""
    bystander = live_node.connect(org.bob)
    hello_of(bystander)
    state = {
        "bystander": bystander,
        "rss_before": rss_kib(live_node),
        "examples": 0,
        "closes": {},
        "pinged": 0.0,
    }
    try:
        yield state
    finally:
        bystander.close()


@settings(
    max_examples=int(os.environ.get("HUBBUB_WS_FUZZ_EXAMPLES", "300")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.generate],
)
@given(sent=st.lists(frames, min_size=1, max_size=5).map(Frames))
def test_fuzzed_frames_get_replies_or_a_clean_close(
    live_node: Node, org: Org, fuzz_guard: dict[str, Any], sent: Frames
) -> None:
    conn = live_node.connect(org.alice)
    try:
        hello_of(conn)
        # The socket's timeout is what the last read left of its deadline (maybe a fraction of
        # a second): a 600 kB frame to a busy server needs a sending deadline of its own.
        conn.sock.settimeout(10)
        for raw in sent:
            conn.sock.sendall(raw)
        conn.send_json({"seq": 10**12, "action": "ping"})
        code = _drain(conn)
        if code is not None:
            assert code in ALLOWED_CLOSES, f"closed with {code} after {sent!r:.300}"
        fuzz_guard["closes"][code] = fuzz_guard["closes"].get(code, 0) + 1
    except (BrokenPipeError, ConnectionResetError):
        # The server closed while frames were still going out; what it sent must be a close.
        code = _drain(conn)
        assert code in ALLOWED_CLOSES, f"connection reset with {code} after {sent!r:.300}"
        fuzz_guard["closes"][code] = fuzz_guard["closes"].get(code, 0) + 1
    finally:
        conn.close()
    fuzz_guard["examples"] += 1
    # The bystander pings twice a second at most, well within its own action budget (RATE 5/s):
    # one ping every 10 examples was not, when quick examples (a binary frame, closed at once)
    # ran at over 50 a second, and its ping was refused with 429.
    now = time.monotonic()
    if now - fuzz_guard["pinged"] >= 0.5:
        fuzz_guard["pinged"] = now
        answer = fuzz_guard["bystander"].request(fuzz_guard["examples"], "ping")
        assert answer["status"] == "OK", answer


def _drain(conn: RawWS) -> int | None:
    """Reads replies until the final ping's (None) or a close (its code); checks each reply."""
    deadline = time.monotonic() + 10
    while True:
        try:
            message = conn.recv_message(max(0.0, deadline - time.monotonic()))
        except WSClosed as closed:
            assert not closed.tcp_only, "the TCP connection was dropped without a close frame"
            return closed.code
        assert message is not None, "no answer to the final ping within 10 s"
        if "event" in message:
            continue
        assert message.get("status") in {"OK", "FAIL"}, message
        if message["status"] == "FAIL":
            error = message["error"]
            assert set(error) >= {"id", "message", "status_code"}, message
            # Mattermost answers an unknown action with 500 (bad_action); nothing else may.
            if error["id"] != "api.web_socket_router.bad_action.app_error":
                assert error["status_code"] < 500, f"internal error reply: {message}"
        if message.get("seq_reply") == 10**12:
            assert message["status"] == "OK", message
            return None


def test_after_the_fuzzing_the_node_serves_and_its_memory_is_bounded(
    live_node: Node, rest: Rest, org: Org, fuzz_guard: dict[str, Any]
) -> None:
    assert fuzz_guard["examples"] > 0, "run with the fuzzer"
    post = rest.post(org.carol, org.public["id"], "after the fuzzing")
    read_until_post(fuzz_guard["bystander"], post["id"], 5)
    grown = rss_kib(live_node) - fuzz_guard["rss_before"]
    assert grown < 64 * 1024, f"the server grew by {grown} KiB over the fuzzing"
    log = live_node.server.own_log()
    assert "Traceback" not in log and "websocket action failed" not in log
    print(
        f"\nws fuzz: {fuzz_guard['examples']} examples, closes {fuzz_guard['closes']}, "
        f"rss grew {grown} KiB"
    )
