"""A publisher wrapper for in-process tests: records every event, then publishes it for real."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.cluster.events import Event, EventPublisher


class RecordingPublisher(EventPublisher):
    def __init__(self, inner: EventPublisher) -> None:
        self.inner = inner
        self.events: list[Event] = []

    async def publish(self, event: Event, conn: AsyncConnection | None = None) -> None:
        self.events.append(event)
        await self.inner.publish(event, conn)

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.event == name]
