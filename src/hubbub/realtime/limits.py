"""How much one websocket client may ask of a node, without I/O (the time is an argument).

Every client action costs the node something (a database read, a publish that fans out to a
whole channel), so one connection that floods must not slow everyone else down:

* `ActionBudget`: a token bucket per connection (`ServiceSettings.WebsocketActionsPerSecond`,
  `WebsocketActionBurst`). An action beyond it is answered with an error reply (429) instead of
  being run; a client that keeps sending after a whole burst of refusals is closed (1008, policy
  violation). A real client sends a few actions a minute.
* `TypingGate`: `user_typing` is a best-effort signal that fans out to a whole channel, so a
  connection publishes a burst of `TYPING_BURST` and then at most one per quarter of
  `TimeBetweenUserTypingUpdatesMilliseconds` (the official clients send one per that interval
  while someone types, and one at once after a post); extra ones are answered OK and dropped.

Both live in the connection's read loop (hubbub/api/websocket.py), a few hundred bytes each.
"""

from __future__ import annotations

import enum

TYPING_BURST = 5


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
    """A token bucket for `user_typing` publishes; `interval` 0 lets every one through."""

    __slots__ = ("interval", "stamp", "tokens")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.tokens = float(TYPING_BURST)
        self.stamp = 0.0

    def allow(self, now: float) -> bool:
        if self.interval <= 0:
            return True
        elapsed = max(0.0, now - self.stamp) if self.stamp else 0.0
        self.stamp = now
        self.tokens = min(float(TYPING_BURST), self.tokens + elapsed / self.interval)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
