"""A client that stops reading must not stall anyone else (DESIGN §4 invariants 4 and 5).

The slow client is a raw socket with a tiny receive buffer that never reads after its hello.
While ephemeral events flow to it, the server drops them (and counts the drops) without closing
it; when durable events overflow its queue, it is closed with reason `slow_consumer` and the
resumable close code 1013. A normal client in the same channel receives every post promptly the
whole time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.node import Node, keepalive_settings
from tests.support.rest import Org, Rest
from tests.support.wait import wait_until
from tests.support.ws import RawWS, WSClosed, hello_of, post_id_of, read_until_post

PROMPT = 1.0  # seconds from the start of a POST to the event at the fast client
BIG = 60_000  # characters in a filler post: fills socket buffers in few requests


@pytest.fixture(scope="module")
def live_node_settings() -> dict[str, str]:
    # The stalled client sends nothing either; a long pong timeout keeps read_timeout out of it.
    # The typer floods typing events on purpose: no coalescing, no action budget to speak of.
    return {
        **keepalive_settings(25, 60),
        "MM_SERVICESETTINGS_MAXPOSTSIZE": str(BIG + 100),
        "MM_SERVICESETTINGS_TIMEBETWEENUSERTYPINGUPDATESMILLISECONDS": "0",
        "MM_SERVICESETTINGS_WEBSOCKETACTIONSPERSECOND": "100000",
        "MM_SERVICESETTINGS_WEBSOCKETACTIONBURST": "100000",
    }


def _reply_to(seq: int) -> Callable[[dict[str, Any]], bool]:
    return lambda message: message.get("seq_reply") == seq


class Reader:
    """Reads a websocket in a thread, noting when each post arrived."""

    def __init__(self, ws: RawWS) -> None:
        self.ws = ws
        self.arrivals: dict[str, float] = {}
        self.typing = 0
        self.seqs: list[int] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                message = self.ws.recv_message(0.2)
                if message is None or "event" not in message:
                    continue
                self.seqs.append(message["seq"])
                if message["event"] == "typing":
                    self.typing += 1
                post_id = post_id_of(message)
                if post_id is not None:
                    self.arrivals[post_id] = time.monotonic()
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_slow_consumer_drops_ephemeral_then_is_closed_and_others_keep_up(
    live_node: Node, rest: Rest, org: Org
) -> None:
    dropped_before = live_node.metric("hubbub_websocket_dropped_events_total", event="typing")
    closes_before = live_node.disconnects("slow_consumer")

    slow = live_node.connect(org.alice, rcvbuf=4096)
    slow_id = hello_of(slow)["data"]["connection_id"]
    # From here on the slow client never reads again (until the end, to see how it was closed).
    fast = live_node.connect(org.carol)
    hello_of(fast)
    reader = Reader(fast)
    typer = live_node.connect(org.bob)
    hello_of(typer)
    started: dict[str, float] = {}

    def post(message: str) -> None:
        t0 = time.monotonic()
        started[rest.post(org.admin, org.public["id"], message)["id"]] = t0

    try:
        # Phase 1: big posts fill the socket buffers, so the slow queue starts to grow; typing
        # events in between pile up in it and, past the threshold, are dropped, not closed on.
        typing = {"channel_id": org.public["id"], "parent_id": ""}
        sent = 0
        deadline = time.monotonic() + 40
        while (
            live_node.metric("hubbub_websocket_dropped_events_total", event="typing")
            <= dropped_before
        ):
            assert time.monotonic() < deadline, f"no typing event dropped after {sent} sent"
            assert live_node.close_line(slow_id) is None, "closed before any ephemeral drop"
            post(f"big {len(started)} " + "x" * BIG)
            for _ in range(20):
                sent += 1
                typer.send_json({"seq": sent, "action": "user_typing", "data": typing})
            typer.wait_event(_reply_to(sent), 10, "typing replies")
        assert live_node.close_line(slow_id) is None, "closed for ephemeral events alone"
        assert live_node.disconnects("slow_consumer") == closes_before
        wait_until(lambda: reader.typing >= sent, 10, "the fast client to get every typing event")

        # Phase 2: durable events overflow the slow queue: closed as a slow consumer.
        deadline = time.monotonic() + 40
        while live_node.close_line(slow_id) is None:
            assert time.monotonic() < deadline, f"still open after {len(started)} posts"
            post(f"flood {len(started)}")
        line = live_node.wait_close_line(slow_id)
        assert line["reason"] == "slow_consumer", line
        assert line["close_code"] == 1013, line
        assert live_node.disconnects("slow_consumer") == closes_before + 1

        # The fast client got every post, each within PROMPT of the request that made it.
        last = list(started)[-1]
        wait_until(lambda: last in reader.arrivals, 5, "the fast client to get the last post")
        assert reader.error is None, reader.error
        late = {
            pid: round(reader.arrivals[pid] - t0, 3)
            for pid, t0 in started.items()
            if reader.arrivals.get(pid, float("inf")) - t0 > PROMPT
        }
        assert not late, f"posts late or missing at the fast client while one was stalled: {late}"
        assert reader.seqs == list(range(1, len(reader.seqs) + 1)), "the fast client saw a gap"

        # What the slow client finally finds: the frames it was sent, then a close with 1013.
        slow.answer_pings = False
        got: list[dict[str, Any]] = []
        with pytest.raises(WSClosed) as closed:
            while (message := slow.recv_message(5)) is not None:
                got.append(message)
        assert closed.value.code == 1013, closed.value
        seqs = [m["seq"] for m in got if "event" in m]
        assert seqs == list(range(1, len(seqs) + 1)), "gap before the close"

        # 1013 means "come back": resuming from the last frame read yields every post missed.
        back = live_node.connect(
            org.alice, query={"connection_id": slow_id, "sequence_number": str(seqs[-1] + 1)}
        )
        marker = rest.post(org.admin, org.public["id"], "after the slow close")["id"]
        replay: list[dict[str, Any]] = []
        read_until_post(back, marker, 15, replay)
        back.close()
        events = [m for m in replay if "event" in m]
        assert events[0]["event"] != "hello", "the slow consumer could not resume"
        assert [m["seq"] for m in events] == list(range(seqs[-1] + 1, seqs[-1] + 1 + len(events)))
        before_close = [post_id_of(m) for m in got if post_id_of(m)]
        after = [post_id_of(m) for m in events if post_id_of(m)]
        assert before_close + after == [*started, marker], "posts lost or doubled across the close"
    finally:
        reader.stop()
        for ws in (slow, fast, typer):
            ws.close()
