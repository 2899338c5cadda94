"""Waiting for a condition with a deadline: the one way tests synchronize (never a bare sleep).

`wait_until` polls a check from plain (thread) code, `wait_until_async` from a coroutine (the
check may then be a coroutine function too). Both return the check's first truthy result, and on
timeout raise `TimeoutError` naming what was awaited and the last error the check raised.

An exception from the check means "not yet" (a service that is starting refuses connections),
except `GiveUp`, which a check raises when waiting longer cannot help, for instance because the
process it waits for has exited: that propagates at once.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class GiveUp(Exception):
    """Raised by a check when the condition can no longer come true."""


def _timed_out(timeout: float, what: str, last_error: BaseException | None) -> TimeoutError:
    detail = f" (last error: {last_error!r})" if last_error is not None else ""
    return TimeoutError(f"timed out after {timeout}s waiting for {what}{detail}")


def wait_until(
    check: Callable[[], T | None],
    timeout: float = 10.0,
    what: str = "a condition",
    *,
    interval: float = 0.05,
) -> T:
    """Polls `check` until it returns something truthy, which is returned."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except GiveUp:
            raise
        except Exception as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            raise _timed_out(timeout, what, last_error) from last_error
        time.sleep(interval)


async def wait_until_async(
    check: Callable[[], T | Awaitable[T | None] | None],
    timeout: float = 10.0,
    what: str = "a condition",
    *,
    interval: float = 0.01,
) -> T:
    """Polls `check` (plain or async) without blocking the event loop."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
        except GiveUp:
            raise
        except Exception as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            raise _timed_out(timeout, what, last_error) from last_error
        await asyncio.sleep(interval)
