"""How much one websocket client may ask of a node, without I/O (the time is an argument).

Every client action costs the node something (a database read, a publish that fans out to a
whole channel), so one connection that floods must not slow everyone else down:

* `ActionBudget`: a token bucket per connection (`ServiceSettings.WebsocketActionsPerSecond`,
  `WebsocketActionBurst`). An action beyond it is answered with an error reply (429) instead of
  being run; a client that keeps sending after a whole burst of refusals is closed (1008, policy
  violation). A real client sends a few actions a minute.
* `TypingGate`: `user_typing` is published at most once per half of
  `TimeBetweenUserTypingUpdatesMilliseconds` per channel and thread for a connection (the
  official clients send it at most that often); extra ones are answered OK and dropped (typing
  is best effort). It remembers a bounded number of channels; a client cycling through more is
  still held by its budget.

Both live in the connection's read loop (hubbub/api/websocket.py), a few hundred bytes each.
"""

from __future__ import annotations

import enum
from collections import OrderedDict

TYPING_KEYS = 16


class Verdict(enum.Enum):
    RUN = "run"
    REFUSE = "refuse"  # error reply, the connection stays
    CLOSE = "close"  # the client ignores refusals: close with 1008


class ActionBudget:
    __slots__ = ("burst", "rate", "refused", "stamp", "tokens")

    def __init__(self, now: float, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now
        self.refused = 0  # refusals since the last action that ran

    def take(self, now: float) -> Verdict:
        elapsed = max(0.0, now - self.stamp)
        self.stamp = now
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.refused = 0
            return Verdict.RUN
        self.refused += 1
        return Verdict.CLOSE if self.refused > self.burst else Verdict.REFUSE


class TypingGate:
    __slots__ = ("_last", "interval")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        # Made on the first typing: most connections never type, and each one costs memory.
        self._last: OrderedDict[tuple[str, str], float] | None = None

    def allow(self, channel_id: str, parent_id: str, now: float) -> bool:
        if self.interval <= 0:
            return True
        if self._last is None:
            self._last = OrderedDict()
        key = (channel_id, parent_id)
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > TYPING_KEYS:
            self._last.popitem(last=False)
        return True
