"""The operator console under Redis Sentinel: it names the sentinels and the master they point
at, and follows a failover (a real master SIGKILLed, a replica promoted by real sentinels)."""

from __future__ import annotations

from typing import Any

from tests.support.cluster import start_cluster
from tests.support.postgres import PostgresInstance, fresh_postgres_database
from tests.support.rest import Rest
from tests.support.sentinel import start_sentinel_set
from tests.support.wait import wait_until


def test_the_console_names_the_master_the_sentinels_point_at(postgres: PostgresInstance) -> None:
    sentinels = start_sentinel_set()
    try:
        cluster = start_cluster(
            fresh_postgres_database(postgres), nodes=1, sentinels=sentinels, with_nginx=False
        )
        rest = Rest(cluster[0].url)
        try:
            admin = rest.user(None, "admin")
            seen: list[Any] = []

            def redis_master() -> Any:
                view = rest.call("GET", "/hubbub/console", admin.token)
                seen.append(view["data"]["redis"])
                return view["data"]["redis"].get("sentinel")

            first = redis_master()
            assert first == {
                "sentinels": sentinels.spec.split(","),
                "master_name": sentinels.master_name,
                "master": f"127.0.0.1:{sentinels.master.port}",
            }, seen[-1]
            # The event log's feed through Redis, as the node's Redis event log reports it.
            bus = seen[-1]["event_bus"]
            assert set(bus) == {"healthy", "lag_ms", "reconnects", "resets", "last_error"}, bus
            assert isinstance(bus["healthy"], bool) and bus["lag_ms"] >= 0, bus
            survivor = sentinels.kill_master()
            sentinels.wait_for_failover(survivor)

            def follows() -> bool:
                now = redis_master()
                return isinstance(now, dict) and now["master"] == f"127.0.0.1:{survivor.port}"

            wait_until(follows, 30, "the console to name the promoted master")
            assert seen[-1]["status"] == "ok" and seen[-1]["role"] == "master", seen[-1]
        finally:
            rest.close()
            cluster.close()
    finally:
        sentinels.stop()
