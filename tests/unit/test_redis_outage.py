"""While Redis is unreachable a node is degraded, not down (DESIGN §5), unless the operator sets
CacheSettings.RedisOutageNotReady; and Sentinel addresses are parsed as documented."""

from __future__ import annotations

import pytest

from hubbub.cluster.backends import RealtimeBackends
from hubbub.cluster.bus import MemoryBus
from hubbub.cluster.connections import MemoryConnectionRegistry
from hubbub.cluster.eventlog import MemoryEventLog
from hubbub.cluster.redis_eventlog import parse_sentinels
from hubbub.config import ConfigError, load_config


def _backends(not_ready: bool) -> RealtimeBackends:
    # A Redis-backed group whose start has not succeeded yet (Redis unreachable).
    return RealtimeBackends(
        MemoryEventLog(),
        MemoryConnectionRegistry(),
        MemoryBus("n"),
        redis=object(),
        outage_not_ready=not_ready,
        last_error="cannot reach Redis: Connection refused",
    )


def test_a_redis_outage_is_degraded_by_default() -> None:
    backends = _backends(not_ready=False)
    assert backends.problems() == []
    assert backends.degraded() == ["cannot reach Redis: Connection refused"]


def test_the_operator_can_make_a_redis_outage_not_ready() -> None:
    backends = _backends(not_ready=True)
    assert backends.problems() == ["cannot reach Redis: Connection refused"]
    assert backends.degraded() == []


def test_sentinel_addresses() -> None:
    assert parse_sentinels("10.0.0.1:26379, 10.0.0.2:26380,redis-c") == [
        ("10.0.0.1", 26379),
        ("10.0.0.2", 26380),
        ("redis-c", 26379),
    ]
    with pytest.raises(ValueError):
        parse_sentinels(" , ")
    with pytest.raises(ValueError):
        parse_sentinels("host:port")


def test_a_bad_sentinel_setting_stops_start_up_naming_its_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MM_CACHESETTINGS_REDISSENTINELS", "a:b")
    with pytest.raises(ConfigError, match=r"CacheSettings\.RedisSentinels"):
        load_config(None)
