"""Identifiers and timestamps in Mattermost's formats.

Ids are 26 characters: the unpadded base32 encoding, with Mattermost's alphabet, of 16 random
bytes. Session tokens, CSRF tokens, request ids and connection ids use the same format.
"""

from __future__ import annotations

import base64
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


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and bool(_VALID.fullmatch(value))


def now_ms() -> int:
    return time.time_ns() // 1_000_000
