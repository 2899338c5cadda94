"""Components and their lifetime: started in dependency order, stopped in reverse, each under its
own deadline.

Everything in a node that holds a resource or runs in the background (the database pool, the event
log, the bus, the leader lease, the health monitor, ...) is a `Component`: `start()` acquires,
`stop()` releases. The composition root (`hubbub.app`) builds them all, then hands them, in the
order they depend on each other, to a `Lifecycle`. Stopping walks the started ones backwards; a
`stop()` that raises or overruns its deadline is logged and the walk goes on, so one broken
component never leaves the database pool or the Redis connections of the others open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger("hubbub.lifecycle")


class Component:
    """Something with a lifetime. Both methods default to doing nothing; `stop()` must be safe
    to call after a failed or partial `start()` (the root stops everything it started)."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


@dataclass(frozen=True)
class Part:
    """One entry of the start order: a name for the logs, the component, and how long its
    `stop()` may take before the node gives up on it and moves on."""

    name: str
    component: Component
    stop_timeout: float = 10.0


class Lifecycle:
    """Starts parts in order and stops the started ones in reverse (an `AsyncExitStack`)."""

    def __init__(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self.started: list[str] = []
        self.stop_failures: list[str] = []

    async def start(self, parts: Sequence[Part]) -> None:
        """Starts each part; if one fails, stops it (it may have started something before it
        failed) and those already started, newest first, and re-raises."""
        try:
            for part in parts:
                began = time.monotonic()
                self._stack.push_async_callback(self._stop_one, part)
                await part.component.start()
                self.started.append(part.name)
                log.debug(
                    "component started",
                    extra={"component": part.name, "seconds": round(time.monotonic() - began, 3)},
                )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stops every started part, newest first. Never raises for a part's failure."""
        stack, self._stack = self._stack, contextlib.AsyncExitStack()
        await stack.aclose()
        self.started.clear()

    async def _stop_one(self, part: Part) -> None:
        try:
            async with asyncio.timeout(part.stop_timeout):
                await part.component.stop()
        except TimeoutError:
            self.stop_failures.append(part.name)
            log.error(
                "component did not stop in time; going on with the others",
                extra={"component": part.name, "timeout_seconds": part.stop_timeout},
            )
        except Exception as exc:
            self.stop_failures.append(part.name)
            log.error(
                "component failed to stop; going on with the others",
                extra={"component": part.name, "error": f"{type(exc).__name__}: {exc}"},
                exc_info=True,
            )
