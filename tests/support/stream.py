"""`Stream`: a `RawWS` that keeps everything it read. Expectations look through what was read
before reading more, so a test can wait for several events on one socket in any order, and
`check_seq()` verifies that the socket's `seq` never skipped (hello is 0)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from tests.support.cluster import ClusterNode
from tests.support.rest import Account
from tests.support.ws import RawWS, WSClosed, post_id_of

Message = dict[str, Any]


class Stream:
    """A websocket whose every message is kept; expectations search before reading more."""

    def __init__(self, ws: RawWS, label: str = "") -> None:
        self.ws = ws
        self.label = label
        self.messages: list[Message] = []
        self._used: set[int] = set()

    @classmethod
    def open(
        cls,
        node: ClusterNode,
        account: Account,
        *,
        connection_id: str = "",
        sequence_number: int | None = None,
        label: str = "",
    ) -> Stream:
        query = None
        if connection_id:
            query = {"connection_id": connection_id, "sequence_number": str(sequence_number)}
        ws = RawWS.connect(node.port, token=account.token, query=query)
        return cls(ws, label or f"{account.username}@{node.name}")

    def events(self) -> list[Message]:
        return [m for m in self.messages if "event" in m]

    def hello(self, timeout: float = 5.0) -> Message:
        """The first event, which must be a fresh hello with seq 0."""
        first = self.expect(lambda m: "event" in m, timeout, "the first event")
        assert first["event"] == "hello" and first["seq"] == 0, f"{self.label}: {first}"
        return first

    def _read(self, deadline: float) -> Message | None:
        message = self.ws.recv_message(max(0.0, deadline - time.monotonic()))
        if message is not None:
            self.messages.append(message)
        return message

    def expect(
        self, predicate: Callable[[Message], bool], timeout: float = 5.0, what: str = "an event"
    ) -> Message:
        """The first not yet expected message matching `predicate`, reading more if needed."""
        for i, message in enumerate(self.messages):
            if i not in self._used and predicate(message):
                self._used.add(i)
                return message
        deadline = time.monotonic() + timeout
        while True:
            got = self._read(deadline)
            if got is None:
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"{self.label}: no {what} within {timeout}s; read: "
                        f"{[_brief(m) for m in self.messages[-15:]]}"
                    )
                continue
            if predicate(got):
                self._used.add(len(self.messages) - 1)
                return got

    def expect_event(self, name: str, timeout: float = 5.0, **data: Any) -> Message:
        """The next `name` event whose data contains `data` (JSON-string fields compared as
        strings, so pass what the server sends)."""

        def matches(m: Message) -> bool:
            if m.get("event") != name:
                return False
            got = m.get("data") or {}
            return all(got.get(k) == v for k, v in data.items())

        return self.expect(matches, timeout, f"{name} {data or ''}".strip())

    def expect_post(self, post_id: str, timeout: float = 5.0) -> Message:
        return self.expect(lambda m: post_id_of(m) == post_id, timeout, f"posted {post_id}")

    def none_within(self, predicate: Callable[[Message], bool], seconds: float) -> None:
        """Reads for `seconds` (an observation window, not a synchronization) and fails if a
        not yet expected message matches."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._read(deadline)
        found = [m for i, m in enumerate(self.messages) if i not in self._used and predicate(m)]
        assert not found, f"{self.label}: unexpected {[_brief(m) for m in found]}"

    def check_seq(self, start: int = 0) -> None:
        seqs = [m["seq"] for m in self.events()]
        assert seqs == list(range(start, start + len(seqs))), (
            f"{self.label}: seq not contiguous: {[(_brief(m)) for m in self.events()]}"
        )

    def last_seq(self) -> int:
        events = self.events()
        return int(events[-1]["seq"]) if events else -1

    def close_cleanly(self) -> None:
        """A close frame, then wait for the server's echo."""
        self.ws.send_close(1000)
        try:
            while True:
                if self._read(time.monotonic() + 5) is None:
                    raise TimeoutError(f"{self.label}: the server did not echo the close")
        except WSClosed:
            pass
        self.ws.close()

    def wait_closed(self, timeout: float = 5.0) -> WSClosed:
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self._read(deadline) is None and time.monotonic() >= deadline:
                    raise TimeoutError(f"{self.label}: not closed within {timeout}s")
        except WSClosed as closed:
            return closed

    def close(self) -> None:
        self.ws.close()


def _brief(m: Message) -> Any:
    if "event" not in m:
        return {"reply": m.get("seq_reply"), "status": m.get("status")}
    out: dict[str, Any] = {"event": m["event"], "seq": m.get("seq")}
    post = post_id_of(m)
    if post:
        out["post"] = post
    return out


def post_data(message: Message) -> dict[str, Any]:
    """The decoded `post` of a posted/post_edited/post_deleted event."""
    return dict(json.loads(message["data"]["post"]))
