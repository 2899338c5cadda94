"""The rolling-upgrade window on a real cluster (cluster/versions.py, docs/upgrades.md): a node
two minor versions away from the others refuses to start and says why (log line, exit status 3),
so does a node on a schema newer than it knows; a node one minor away joins and every node shows
the mix in yellow, in `/api/v4/cluster/status` and in the console, until it is gone.

The other versions are announced by the current code run as `tests.support.versioned_node`
(hubbub.__version__ replaced before start-up), since those releases do not exist.
"""

from __future__ import annotations

import subprocess
import urllib.parse
from typing import Any

from hubbub import __version__
from hubbub.cluster.versions import REFUSED_EXIT_STATUS, Version
from hubbub.store.migrate import head_revision
from tests.support.cluster import Cluster, ClusterNode
from tests.support.postgres import PostgresInstance
from tests.support.rest import Org, Rest
from tests.support.wait import wait_until

ANNOUNCE = "HUBBUB_TEST_ANNOUNCED_VERSION"
VERSIONED = "tests.support.versioned_node"


def _minor_away(steps: int) -> str:
    v = Version.parse(__version__)
    return f"{v.major}.{v.minor + steps}.0"


def _refused(node: ClusterNode, **start: Any) -> str:
    """Starts `node` (stopped), waits for it to exit on its own, returns what it logged."""
    node.start(wait=False, **start)
    try:
        code = node.server.proc.wait(30)
    except subprocess.TimeoutExpired:
        node.kill()
        raise AssertionError(f"{node.name} started instead of refusing") from None
    log = node.server.own_log()
    assert code == REFUSED_EXIT_STATUS, (code, log[-2000:])
    assert "refusing to start" in log, log[-2000:]
    return log


def _states(rest: Rest, token: str) -> dict[str, tuple[str, str, list[str]]]:
    view = rest.call("GET", "/cluster/status", token)
    return {n["node_name"]: (n["status"], n["state"], n["reasons"]) for n in view}


def _console(rest: Rest, token: str) -> dict[str, tuple[str, list[str]]]:
    view = rest.call("GET", "/hubbub/console", token)
    return {n["node_name"]: (n["state"], n["reasons"]) for n in view["nodes"]}


def test_a_node_outside_the_window_refuses_and_one_inside_shows_yellow(
    cluster: Cluster, rests: list[Rest], org: Org, postgres: PostgresInstance
) -> None:
    token = org.admin.token
    odd = cluster[2]
    odd.stop()

    two_away = _minor_away(2)
    log = _refused(odd, extra_env={ANNOUNCE: two_away}, module=VERSIONED)
    assert f"this node runs hubbub {two_away}, more than one minor version away" in log
    assert f"node0 runs {__version__}" in log and f"node1 runs {__version__}" in log
    # It refused before migrating or registering: the others never saw it.
    assert set(_states(rests[0], token)) == {"node0", "node1"}

    # A schema this build does not know (a newer release migrated it): refused too.
    database = urllib.parse.urlsplit(cluster.database_url).path.lstrip("/")
    postgres.psql("UPDATE alembic_version SET version_num = '9999_future'", database)
    try:
        log = _refused(odd)
    finally:
        postgres.psql(f"UPDATE alembic_version SET version_num = '{head_revision()}'", database)
    assert "the database schema is at revision 9999_future, which this build does not know" in log

    one_away = _minor_away(1)
    odd.start(extra_env={ANNOUNCE: one_away}, module=VERSIONED)
    mix = (
        f"version mix: {__version__} on node0, node1; {one_away} on node2 "
        "(a rolling upgrade, within the one-minor window)"
    )
    expected = {name: ("mixed", "yellow", [mix]) for name in ("node0", "node1", "node2")}
    wait_until(lambda: _states(rests[0], token) == expected, 20, "the mix in the cluster status")
    assert _states(rests[2], token) == expected  # the new node says the same
    assert _console(rests[1], token) == {name: ("yellow", [mix]) for name in expected}

    odd.stop()
    odd.start()
    wait_until(
        lambda: (
            {s for s, _, _ in _states(rests[0], token).values()} == {"ok"}
            and len(_states(rests[0], token)) == 3
        ),
        20,
        "every node ok again",
    )
    assert _console(rests[0], token) == {name: ("green", ["ok"]) for name in expected}
