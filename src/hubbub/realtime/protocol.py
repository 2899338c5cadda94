"""Mattermost's websocket protocol without I/O: client frames in, server frames out.

Events are serialized once per publish (`encode_event_body`) and stamped with a per-connection
`seq` by appending it to the pre-serialized object (`stamp`), so fan-out costs one copy per socket.
Replies to client requests carry `seq_reply` and no `seq`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import orjson

from hubbub.errors import AppError, render_body

MAX_FRAME_BYTES = 8 * 1024 * 64  # Mattermost reads 8 KiB; allow larger client actions


class FrameError(Exception):
    """A frame that is not a websocket request at all: the connection is closed."""


@dataclass(frozen=True, slots=True)
class ClientRequest:
    seq: int
    action: str
    data: dict[str, Any]


def parse_request(text: str | bytes) -> ClientRequest | AppError:
    """A well-formed request, or the AppError to reply with (the connection stays open).

    Raises FrameError for frames that are not a JSON object at all.
    """
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FrameError("frame is not valid JSON") from None
    if not isinstance(raw, dict):
        raise FrameError("frame is not a JSON object")
    seq = raw.get("seq")
    action = raw.get("action")
    data = raw.get("data")
    if not isinstance(action, str) or not action:
        return _request_error(
            "api.web_socket_router.no_action.app_error", "No websocket action.", 400, seq
        )
    if not isinstance(seq, int) or isinstance(seq, bool) or seq <= 0:
        return _request_error(
            "api.web_socket_router.bad_seq.app_error",
            "Invalid sequence for websocket message.",
            400,
            seq,
        )
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return _request_error(
            "api.web_socket_router.bad_data.app_error",
            "Invalid data for websocket message.",
            400,
            seq,
        )
    return ClientRequest(seq=seq, action=action, data=data)


def _request_error(error_id: str, message: str, status: int, seq: object) -> AppError:
    error = AppError(error_id, message, status)
    error.params["seq_reply"] = seq if isinstance(seq, int) and not isinstance(seq, bool) else 0
    return error


def encode_event_body(event: str, data: dict[str, Any], broadcast: dict[str, Any]) -> bytes:
    """The event object without `seq`: `{"event":..,"data":..,"broadcast":..}`."""
    # orjson's result keeps a buffer of at least 4 KiB; logs hold payloads for minutes, so
    # keep an exact-size copy instead.
    return memoryview(
        orjson.dumps({"event": event, "data": data, "broadcast": broadcast})
    ).tobytes()


def stamp(body: bytes, seq: int) -> bytes:
    """Adds `"seq": n` to a pre-serialized event object."""
    return body[:-1] + b',"seq":' + str(seq).encode() + b"}"


def event_prefix(body: bytes) -> bytes:
    """The event object open for its `seq`: `stamp(body, n) == event_prefix(body) + b"n}"`.
    Built once per event, so fan-out appends only the digits for each connection."""
    return body[:-1] + b',"seq":'


def reply(seq_reply: int, data: dict[str, Any] | None = None) -> bytes:
    frame: dict[str, Any] = {"status": "OK", "seq_reply": seq_reply}
    if data is not None:
        frame["data"] = data
    return orjson.dumps(frame)


def error_reply(error: AppError, request_id: str = "") -> bytes:
    frame: dict[str, Any] = {
        "status": "FAIL",
        "error": orjson.Fragment(render_body(error, request_id)),
    }
    seq_reply = error.params.get("seq_reply")
    if seq_reply:
        frame["seq_reply"] = seq_reply
    return orjson.dumps(frame)


def hello_body(connection_id: str, user_id: str, server_version: str, hostname: str) -> bytes:
    return encode_event_body(
        "hello",
        {
            "server_version": server_version,
            "connection_id": connection_id,
            "server_hostname": hostname,
        },
        {
            "omit_users": None,
            "user_id": user_id,
            "channel_id": "",
            "team_id": "",
            "connection_id": "",
            "omit_connection_id": "",
        },
    )


# Close codes. 1012 (service restart) and 1013 (try again later) make clients reconnect at once
# and resume; 4xxx are private codes hubbub uses for classified closes.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED = 1003
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN = 1013
CLOSE_AUTH_FAILED = 4003
CLOSE_READ_TIMEOUT = 4008
CLOSE_REPLACED = 4009

# Codes a client may report back as `disconnect_err_code` (Mattermost's accepted set).
VALID_CLIENT_CODES = set(range(1000, 1017)) | {4000, 4001}


class CloseReason(enum.Enum):
    """Why a connection ended, for the one log line and the metric per close."""

    CLIENT_CLOSE = "client_close"
    READ_TIMEOUT = "read_timeout"
    WRITE_TIMEOUT = "write_timeout"
    SLOW_CONSUMER = "slow_consumer"
    SERVER_DRAIN = "server_drain"
    AUTH_FAILED = "auth_failed"
    PROTOCOL_ERROR = "protocol_error"
    PROXY_IDLE_SUSPECTED = "proxy_idle_suspected"
    REPLACED = "replaced"  # a resumed connection took this one over
    SESSION_REVOKED = "session_revoked"
    RESYNC = "resync"  # the node lost continuity of live delivery; the client resumes
    BACKEND_ERROR = "backend_error"  # attaching failed (Redis unreachable): try again later
    RATE_LIMITED = "rate_limited"  # the client kept flooding after its actions were refused

    @property
    def expected(self) -> bool:
        """Expected disconnects are logged at info level, not as errors."""
        return self in {
            CloseReason.CLIENT_CLOSE,
            CloseReason.SERVER_DRAIN,
            CloseReason.REPLACED,
            CloseReason.READ_TIMEOUT,
            CloseReason.PROXY_IDLE_SUSPECTED,
            CloseReason.SESSION_REVOKED,
            CloseReason.RESYNC,
        }


def classify_peer_close(
    code: int, since_last_frame: float, ping_interval: float, got_close_frame: bool
) -> CloseReason:
    """Classifies a close the server did not initiate.

    A connection that vanished without a close frame after being silent for longer than the
    ping interval (our pings went unanswered) looks like a proxy or NAT dropping an idle socket.
    """
    if code in (CLOSE_TOO_BIG, CLOSE_PROTOCOL_ERROR, 1007):
        return CloseReason.PROTOCOL_ERROR
    if got_close_frame and code not in (CLOSE_ABNORMAL,):
        return CloseReason.CLIENT_CLOSE
    if since_last_frame >= ping_interval:
        return CloseReason.PROXY_IDLE_SUSPECTED
    return CloseReason.CLIENT_CLOSE
