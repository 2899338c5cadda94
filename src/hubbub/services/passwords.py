"""Password hashing with argon2id, off the event loop (hashing costs milliseconds of CPU)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hubbub.config.settings import PasswordConfig
from hubbub.errors import AppError

# OWASP's minimum argon2id profile: 19 MiB, 2 iterations, 1 lane.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(hashed: str, password: str) -> bool:
    if not hashed:
        return False
    try:
        return await asyncio.to_thread(_hasher.verify, hashed, password)
    except (VerificationError, InvalidHashError):
        return False


# Mattermost's character classes (model/user.go): ASCII letters and digits, and these symbols.
LOWERCASE = frozenset("abcdefghijklmnopqrstuvwxyz")
UPPERCASE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
NUMBERS = frozenset("0123456789")
SYMBOLS = frozenset(" !\"\\#$%&'()*+,-./:;<=>?@[]^_`|~")
MAXIMUM_LENGTH = 72  # bytes, as bcrypt's (and Mattermost's) limit

_RULES = (
    ("Lowercase", "lowercase", LOWERCASE, "at least one lowercase letter"),
    ("Uppercase", "uppercase", UPPERCASE, "at least one uppercase letter"),
    ("Number", "number", NUMBERS, "at least one number"),
    ("Symbol", "symbol", SYMBOLS, 'at least one symbol (e.g. "~!@#$%^&*()")'),
)


def check_password(password: object, policy: PasswordConfig) -> str:
    """`password` when it meets `PasswordSettings`, else Mattermost's AppError: the id names
    every rule in force (`model.user.is_valid.pwd_lowercase_number.app_error`), whichever
    failed, so the client can print the whole requirement; `params` carries `Min` and `Max`."""
    text = password if isinstance(password, str) else ""
    failed = not isinstance(password, str)
    size = len(text.encode())
    if size < policy.MinimumLength or size > MAXIMUM_LENGTH:
        failed = True
    suffix = ""
    wants = []
    for setting, name, chars, words in _RULES:
        if getattr(policy, setting):
            suffix += "_" + name
            wants.append(words)
            if chars.isdisjoint(text):
                failed = True
    if not failed:
        return text
    message = (
        f"Your password must contain between {policy.MinimumLength} and {MAXIMUM_LENGTH} characters"
    )
    if wants:
        message += " made up of " + _join(wants)
    raise AppError(
        f"model.user.is_valid.pwd{suffix}.app_error",
        message + ".",
        400,
        params={"Min": policy.MinimumLength, "Max": MAXIMUM_LENGTH},
    )


def _join(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]
