"""What a Redis restart leaves in the log file: one JSON line per retry with the exception in
its `error` field, and its traceback once (per distinct error per minute), not on every retry.

A real `hubbub serve` with `LogSettings.EnableFile` on a real Redis, which is killed and started
again while the node keeps retrying.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import ping_status
from tests.support.redis import RedisInstance, start_redis
from tests.support.server import start_server
from tests.support.wait import wait_until

RETRY_MESSAGE = "cluster bus disconnected; retrying"


@pytest.fixture
def redis() -> Iterator[RedisInstance]:
    instance = start_redis()
    try:
        yield instance
    finally:
        instance.stop()


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_redis_restart_logs_one_line_per_retry_and_one_traceback(
    tmp_path: Path, redis: RedisInstance
) -> None:
    logs = tmp_path / "logs"
    server = start_server(
        tmp_path / "node",
        {
            "MM_CACHESETTINGS_CACHETYPE": "redis",
            "MM_CACHESETTINGS_REDISADDRESS": f"127.0.0.1:{redis.port}",
            "MM_LOGSETTINGS_ENABLEFILE": "true",
            "MM_LOGSETTINGS_FILELOCATION": str(logs),
            "MM_LOGSETTINGS_FILELEVEL": "INFO",
        },
    )
    log_file = logs / "hubbub.log"
    try:
        assert any(line["msg"] == "hubbub listening" for line in _lines(log_file))
        redis.kill()
        wait_until(
            lambda: sum(x["msg"] == RETRY_MESSAGE for x in _lines(log_file)) >= 4,
            30,
            "the node to retry the bus at least four times",
        )
        redis.start_again()
        wait_until(lambda: ping_status(server.url)[0] == 200, 30, "the node healthy again")
    finally:
        server.stop()

    lines = _lines(log_file)  # every line is one JSON object (json.loads above)
    retries = [x for x in lines if x["msg"] == RETRY_MESSAGE]
    assert len(retries) >= 4
    assert all(x["level"] == "warn" for x in retries)
    assert all(x["error"].startswith("ConnectionError: ") for x in retries), retries[0]
    assert all("\n" not in x["error"] for x in retries)
    traces = Counter((x["msg"], x["error"]) for x in lines if "stacktrace" in x)
    assert traces[(RETRY_MESSAGE, retries[0]["error"])] == 1, traces
    assert all(count == 1 for count in traces.values()), traces
    assert all(len(json.dumps(x)) < 2000 for x in lines if "stacktrace" not in x)
