"""Background tasks: stopping one for certain."""

from __future__ import annotations

import asyncio
import contextlib


async def stop_task(task: asyncio.Task[None], grace: float = 1.0) -> None:
    """Cancels `task` and waits for it to end, cancelling again if a cancellation was lost.

    On Python 3.11 `asyncio.wait_for` (which redis-py uses for socket writes, and hubbub around
    registry calls) can swallow a cancellation that arrives just as the awaited call completes;
    a loop that then goes on would keep a plain `cancel(); await task` waiting forever.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=grace)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()
