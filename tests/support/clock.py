"""A clock moved by hand, for code that takes its clocks as arguments."""

from __future__ import annotations


class FakeClock:
    """Wall-clock milliseconds and a monotonic clock, moved by hand."""

    def __init__(self, ms: int = 1_800_000_000_000) -> None:
        self.ms = ms
        self.mono = 1000.0

    def wall(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)
        self.mono += seconds
