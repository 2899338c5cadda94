"""Identifiers and timestamps in Mattermost's formats.

Ids are 26 characters: the unpadded base32 encoding, with Mattermost's alphabet, of 16 random
bytes. Session tokens, CSRF tokens, request ids and connection ids use the same format.
"""

from __future__ import annotations

import base64
import itertools
import os
import re
import time
import uuid

_STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_MM = "ybndrfg8ejkmcpqxot1uwisza345h769"
_TABLE = str.maketrans(_STD, _MM)
_VALID = re.compile(r"[a-z0-9]{26}")


def new_id() -> str:
    raw = base64.b32encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
    return raw.translate(_TABLE)


class RequestIds:
    """Request ids (the `X-Request-ID` of every answer): unique, not secret, so cheaper than
    `new_id()`: 10 random bytes drawn once per process and a 6-byte counter, in the same
    format. No system call per request: the random source releases the GIL, which under load
    let the database threads take it and held the event loop (a profile at 400 simulated users
    put `uuid4()` at 7 % of the loop's time).

    Nor any encoding of 16 bytes per request (`base64.b32encode` is Python code: 3 % of a
    request's CPU): 10 bytes are 16 characters exactly, so the prefix is encoded once; of the
    counter's 10 characters, the last two carry its low 8 bits (and two zero bits) and come from
    a table, and the first eight change every 256 requests."""

    def __init__(self, prefix: bytes | None = None, start: int = 1) -> None:
        self._prefix = os.urandom(10) if prefix is None else prefix
        self._head = _mm32(self._prefix)
        self._counter = itertools.count(start)
        self._high = -1
        self._high_text = ""

    def __call__(self) -> str:
        n = next(self._counter) % (1 << 48)
        high = n >> 8
        if high != self._high:
            # 40 bits (5 bytes) are 8 characters: the counter's bits 47..8.
            self._high_text = self._head + _mm32(high.to_bytes(5, "big"))
            self._high = high
        return self._high_text + _LOW[n & 0xFF]

    def encoded(self, n: int) -> str:
        """The id for counter value `n`, encoded as a whole (what `__call__` must equal)."""
        raw = base64.b32encode(self._prefix + (n % (1 << 48)).to_bytes(6, "big"))
        return raw.decode("ascii").rstrip("=").translate(_TABLE)


def _mm32(data: bytes) -> str:
    """Base32 with Mattermost's alphabet of a multiple of 5 bytes (no padding)."""
    return base64.b32encode(data).decode("ascii").translate(_TABLE)


# A 6-byte counter's last two characters: its last byte's 8 bits and two padding zeros.
_LOW = tuple(_MM[b >> 3] + _MM[(b & 0b111) << 2] for b in range(256))


new_request_id = RequestIds()


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and bool(_VALID.fullmatch(value))


def now_ms() -> int:
    return time.time_ns() // 1_000_000
