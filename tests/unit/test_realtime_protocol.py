"""The sans-I/O websocket protocol: parsing, stamping, replies and close classification (the
connection's states are tested in test_connstate.py)."""

from __future__ import annotations

import orjson
import pytest

from hubbub.errors import AppError
from hubbub.realtime.protocol import (
    ClientRequest,
    CloseReason,
    FrameError,
    classify_peer_close,
    encode_event_body,
    error_reply,
    hello_body,
    parse_request,
    reply,
    stamp,
)


def test_parse_valid_request() -> None:
    req = parse_request('{"seq": 3, "action": "ping"}')
    assert req == ClientRequest(seq=3, action="ping", data={})


@pytest.mark.parametrize("frame", ["not json", "[1,2]", '"text"', "", "{"])
def test_non_object_frames_are_fatal(frame: str) -> None:
    with pytest.raises(FrameError):
        parse_request(frame)


@pytest.mark.parametrize(
    ("frame", "error_id", "seq_reply"),
    [
        ('{"seq": 1}', "api.web_socket_router.no_action.app_error", 1),
        ('{"seq": 0, "action": "ping"}', "api.web_socket_router.bad_seq.app_error", 0),
        ('{"action": "ping"}', "api.web_socket_router.bad_seq.app_error", 0),
        ('{"seq": true, "action": "ping"}', "api.web_socket_router.bad_seq.app_error", 0),
        (
            '{"seq": 2, "action": "ping", "data": [1]}',
            "api.web_socket_router.bad_data.app_error",
            2,
        ),
    ],
)
def test_malformed_requests_get_error_replies(frame: str, error_id: str, seq_reply: int) -> None:
    result = parse_request(frame)
    assert isinstance(result, AppError)
    assert result.id == error_id
    body = orjson.loads(error_reply(result))
    assert body["status"] == "FAIL"
    assert body["error"]["id"] == error_id
    assert body.get("seq_reply", 0) == seq_reply
    assert "seq" not in body


def test_stamp_appends_seq_to_a_preserialized_event() -> None:
    body = encode_event_body("posted", {"post": "{}"}, {"channel_id": "c"})
    event = orjson.loads(stamp(body, 7))
    assert list(event) == ["event", "data", "broadcast", "seq"]
    assert event["seq"] == 7 and event["event"] == "posted"


def test_reply_has_seq_reply_and_no_seq() -> None:
    body = orjson.loads(reply(4, {"text": "pong"}))
    assert body == {"status": "OK", "seq_reply": 4, "data": {"text": "pong"}}


def test_hello_shape() -> None:
    hello = orjson.loads(stamp(hello_body("c" * 26, "u" * 26, "9.11.0.x.h.false", "node:1"), 0))
    assert hello["event"] == "hello" and hello["seq"] == 0
    assert hello["data"]["connection_id"] == "c" * 26
    assert hello["broadcast"]["user_id"] == "u" * 26


@pytest.mark.parametrize(
    ("code", "silent", "close_frame", "reason"),
    [
        (1000, 0.1, True, CloseReason.CLIENT_CLOSE),
        (1001, 0.1, True, CloseReason.CLIENT_CLOSE),
        (1009, 0.1, True, CloseReason.PROTOCOL_ERROR),
        (1005, 30.0, False, CloseReason.PROXY_IDLE_SUSPECTED),
        (1005, 1.0, False, CloseReason.CLIENT_CLOSE),
    ],
)
def test_classify_peer_close(
    code: int, silent: float, close_frame: bool, reason: CloseReason
) -> None:
    assert classify_peer_close(code, silent, 25.0, close_frame) is reason
