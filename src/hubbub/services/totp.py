"""Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP), as authenticator apps and
Mattermost's MFA use them: HMAC-SHA1, 30-second steps, 6 digits, a base32 secret of 160 bits.

Pure functions, no I/O: the time is an argument. A code is accepted for the current step and one
step either side (clocks drift, people type slowly), and never for a step already used: the
caller stores the steps `verify` returns and passes them back (`used`), so a code seen over a
shoulder or in a log cannot be replayed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from collections.abc import Iterable
from urllib.parse import quote

STEP_SECONDS = 30
DIGITS = 6
WINDOW = 1  # steps accepted before and after the current one
SECRET_BYTES = 20  # 160 bits, RFC 4226's recommendation


def new_secret() -> str:
    """A random secret, base32 without padding (what authenticator apps expect)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")


def _key(secret: str) -> bytes:
    cleaned = secret.strip().replace(" ", "").upper()
    return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))


def hotp(key: bytes, counter: int) -> str:
    """RFC 4226: the `DIGITS`-digit code for `counter` (dynamic truncation of HMAC-SHA1)."""
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def step_at(unix_seconds: float) -> int:
    return int(unix_seconds // STEP_SECONDS)


def code_at(secret: str, unix_seconds: float) -> str:
    return hotp(_key(secret), step_at(unix_seconds))


def well_formed(code: str) -> bool:
    """Six ASCII digits, after trimming spaces (as Mattermost trims them)."""
    code = code.strip()
    return len(code) == DIGITS and code.isascii() and code.isdigit()


def verify(secret: str, code: str, unix_seconds: float, used: Iterable[int] = ()) -> int | None:
    """The step `code` belongs to when it is valid now (current step ± `WINDOW`) and that step
    was not used before; else None. Compared in constant time."""
    if not well_formed(code):
        return None
    code = code.strip()
    key = _key(secret)
    now = step_at(unix_seconds)
    spent = set(used)
    found = None
    for step in range(now - WINDOW, now + WINDOW + 1):
        if hmac.compare_digest(hotp(key, step), code) and step not in spent:
            found = step
    return found


def recent_steps(used: Iterable[int], unix_seconds: float) -> list[int]:
    """The used steps that could still be replayed (inside the window): all that is kept."""
    oldest = step_at(unix_seconds) - WINDOW
    return sorted(s for s in set(used) if s >= oldest)


def otpauth_uri(issuer: str, account: str, secret: str) -> str:
    """The `otpauth://` URI an authenticator app reads from the QR code."""
    label = quote(f"{issuer}:{account}", safe=":@")
    return (
        f"otpauth://totp/{label}?secret={secret}&issuer={quote(issuer, safe='')}"
        f"&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}"
    )
