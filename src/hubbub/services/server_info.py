"""Small facts about the server the apps ask for on every load: user counts and client
performance reports (counted in the node's metrics, otherwise dropped)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import func, select

from hubbub.store.db import Database
from hubbub.store.tables import users


class ServerInfo:
    def __init__(self, db: Database, registry: CollectorRegistry) -> None:
        self.db = db
        self.client_reports = Counter(
            "hubbub_client_performance_reports_total",
            "Performance reports the web and desktop apps sent (POST /client_perf)",
            registry=registry,
        )
        self.client_samples = Counter(
            "hubbub_client_performance_samples_total",
            "Counter and histogram samples in those reports",
            registry=registry,
        )

    async def active_users(self) -> int:
        """Users not deactivated, bots included (Mattermost's total for `/users/stats`)."""
        async with self.db.read() as conn:
            return int(
                (
                    await conn.execute(
                        select(func.count()).select_from(users).where(users.c.delete_at == 0)
                    )
                ).scalar_one()
            )

    def record_client_report(self, samples: int) -> None:
        self.client_reports.inc()
        self.client_samples.inc(max(0, samples))
