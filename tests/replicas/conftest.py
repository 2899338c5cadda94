"""The replica tier: a real PostgreSQL primary with a streaming replica
(tests/support/replicated.py), and hubbub nodes reading from it.

Each test gets its own pair (about 1.5 s to start), since the tests stop, pause and promote the
replica. `replica_env` configures a node with the replica as both its read replica and its
search replica, probed every second.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.replicated import ReplicatedPostgres, start_replicated


@pytest.fixture
def pair() -> Iterator[ReplicatedPostgres]:
    started = start_replicated()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def replica_env(pair: ReplicatedPostgres, tmp_path: Path) -> dict[str, str]:
    return {
        "MM_SQLSETTINGS_DRIVERNAME": "postgres",
        "MM_SQLSETTINGS_DATASOURCE": pair.primary.url,
        "MM_SQLSETTINGS_DATASOURCEREPLICAS": pair.replica.url,
        "MM_SQLSETTINGS_DATASOURCESEARCHREPLICAS": pair.replica.url,
        "MM_SQLSETTINGS_REPLICAMONITORINTERVALSECONDS": "1",
        "MM_FILESETTINGS_DIRECTORY": str(tmp_path / "files"),
        "MM_SERVICESETTINGS_ENABLEUSERACCESSTOKENS": "true",
    }
