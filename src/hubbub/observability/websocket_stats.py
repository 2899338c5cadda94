"""The websocket figures an operator reads in the console, over a recent window (an hour).

The node already counts everything in Prometheus counters (`observability/metrics.py`), which
only ever grow. This turns them into "over the last hour": it keeps a snapshot of the counters
every `resolution` seconds (taken whenever a summary is asked for, which the heartbeat does every
few seconds in a cluster) and subtracts the newest snapshot that is at least `window` old, or the
oldest one while the node is younger than that. `window_seconds` in the summary says what the
figures actually cover.

What the counters mean for an operator (docs/web.md):
* disconnects by reason: `proxy_idle_suspected` climbing means a proxy or load balancer drops idle
  sockets (raise its timeout above the ping interval); `read_timeout` means clients stopped
  answering; `slow_consumer` / `write_timeout` mean clients cannot keep up;
* resumes (`success` + `lossless`) against refetches (`failure`: the client got a fresh hello and
  reloaded over REST): many refetches after a node restart are normal, many at other times mean
  checkpoints are lost;
* dropped events: typing and status events skipped for slow consumers.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter

from hubbub.observability.metrics import Metrics

Counts = dict[str, float]


def _by_label(counter: Counter, label: str) -> Counts:
    """A labelled counter's current values by label value (through its public collect())."""
    out: Counts = {}
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out[sample.labels[label]] = sample.value
    return out


def _total(counter: Counter) -> float:
    return sum(
        sample.value
        for family in counter.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )


class WebsocketStats:
    def __init__(
        self,
        metrics: Metrics,
        connections: Callable[[], int],
        *,
        window: float = 3600.0,
        resolution: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self.connections = connections
        self.window = window
        self.resolution = resolution
        self.clock = clock
        self._snapshots: deque[tuple[float, Counts]] = deque([(clock(), self._read())])

    def _read(self) -> Counts:
        m = self.metrics
        counts: Counts = {}
        for reason, value in _by_label(m.disconnects, "reason").items():
            counts[f"disconnect:{reason}"] = value
        for outcome, value in _by_label(m.reconnects, "type").items():
            counts[f"reconnect:{outcome}"] = value
        for code, value in _by_label(m.client_reported, "code").items():
            counts[f"client_code:{code}"] = value
        counts["dropped_events"] = _total(m.dropped)
        counts["replayed_events"] = _total(m.replayed)
        return counts

    def summary(self) -> dict[str, Any]:
        now = self.clock()
        current = self._read()
        if now - self._snapshots[-1][0] >= self.resolution:
            self._snapshots.append((now, current))
        # Keep exactly one snapshot at or before the window's start: the baseline.
        while len(self._snapshots) >= 2 and self._snapshots[1][0] <= now - self.window:
            self._snapshots.popleft()
        since, baseline = self._snapshots[0]
        delta = {k: v - baseline.get(k, 0.0) for k, v in current.items()}

        def group(prefix: str) -> dict[str, int]:
            return {
                key.removeprefix(prefix): int(value)
                for key, value in sorted(delta.items())
                if key.startswith(prefix) and value > 0
            }

        reconnects = group("reconnect:")
        disconnects = group("disconnect:")
        return {
            "connections": self.connections(),
            "window_seconds": round(now - since),
            "disconnects": disconnects,
            "resumes": reconnects.get("success", 0) + reconnects.get("lossless", 0),
            "refetches": reconnects.get("failure", 0),
            "slow_consumer_closes": disconnects.get("slow_consumer", 0)
            + disconnects.get("write_timeout", 0),
            "dropped_events": int(delta.get("dropped_events", 0)),
            "replayed_events": int(delta.get("replayed_events", 0)),
            "client_reported_codes": group("client_code:"),
        }
