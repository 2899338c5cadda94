"""A rolling upgrade under load, for real (docs/upgrades.md): the previous release (CHANGELOG.md
names its commit) is checked out into a temporary git worktree with a virtualenv of its own
(tests/support/releases.py) and runs a three-node cluster on an empty PostgreSQL database (it
creates its own schema), one Redis and nginx. 30 websocket clients and 5 writers work through
nginx while the nodes are upgraded one by one to the current code: SIGTERM (drain), exit, start
the current code on the same ports, ready (tests/support/upgrade.py). The chaos checker
(tests/support/chaos.py) then asks: no request failed, every committed post reached every client
exactly once and in commit order. Mid-upgrade the cluster status is yellow (a version mix), at the
end green on the new version.

Parameters as for the chaos runs (HUBBUB_CHAOS_*); the defaults here: 900 posts over 45 s.
"""

from __future__ import annotations

import random
import sys

import pytest

from hubbub import __version__
from tests.support.chaos import ChaosParams, build_world, run_chaos
from tests.support.cluster import start_cluster
from tests.support.postgres import PostgresInstance, empty_postgres_database
from tests.support.releases import RELEASE_ENV, installed, previous_release
from tests.support.rest import Rest
from tests.support.upgrade import UpgradeLog, cluster_status, rolling_upgrade


async def test_rolling_upgrade_from_the_previous_release_under_load(
    postgres: PostgresInstance, capsys: pytest.CaptureFixture[str]
) -> None:
    params = ChaosParams.from_env(posts=900, seconds=45, settle=45)
    release = previous_release()
    assert release.version != __version__
    record = UpgradeLog()
    with installed(release) as old:
        cluster = start_cluster(
            empty_postgres_database(postgres), python=str(old.python), settings=RELEASE_ENV
        )
        try:
            rest = Rest(cluster[0].url)
            try:
                world = build_world(rest, params, random.Random(params.seed))
            finally:
                rest.close()
            before = await cluster_status(cluster[0].url, world.admin.token)
            assert {v[0] for v in before.values()} == {release.version}, before
            faults = rolling_upgrade(
                cluster, world.admin.token, first_after=5, between=3, record=record
            )
            report = await run_chaos("rolling upgrade", cluster, world, params, postgres, faults)
        finally:
            cluster.close()
    assert all(node.python == sys.executable for node in cluster)

    stats = report.stats
    with capsys.disabled():
        print("\n" + "\n".join(report.lines()))
        print(
            f"  upgrade {release.version} -> {__version__}: drains "
            f"{[round(d, 1) for d in record.drains]} s (exit {record.exit_codes}), starts "
            f"{[round(s, 1) for s in record.starts]} s"
        )
        for view in record.views:
            print(f"    status: { {k: v[:3] for k, v in view.items()} }")
    assert record.exit_codes == [0, 0, 0]
    # After the first and second node: every node yellow, the mix named.
    for view in record.views[:-1]:
        assert {v[0] for v in view.values()} == {release.version, __version__}
        assert all(v[1] == "mixed" and "version mix" in v[3][-1] for v in view.values()), view
    assert all(v[:3] == (__version__, "ok", "green") for v in record.views[-1].values())
    # No request failed: every POST answered 201 at its first try.
    assert dict(stats.answers) == {"201": report.expected_posts}, dict(stats.answers)
    report.assert_clean()
