"""Jobs on a real cluster (3 nodes, PostgreSQL, Redis): a periodic job is created once per slot
while the scheduler node is SIGKILLed mid-period, and a long job whose node is SIGKILLed mid-run
is finished by another node with exactly the result of one run (data retention and import).

Timing (hubbub-only settings, docs/jobs.md): cleanup every 2 s (`CleanupIntervalSeconds`), node
heartbeat 0.5 s (lease 1.5 s), job heartbeat 0.3 s, a job silent for 2 s is reaped. Every wait
is for a condition with a deadline.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from tests.support.cluster import Cluster, ClusterNode
from tests.support.postgres import PostgresInstance
from tests.support.rest import Org, Rest

PERIOD = 2.0
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def cluster_settings() -> dict[str, str]:
    # The daily retention run is put half a day away: only the jobs the tests create run.
    start = time.gmtime(time.time() + 12 * 3600)
    return {
        "MM_CLUSTERSETTINGS_HEARTBEATSECONDS": "0.5",
        "MM_JOBSETTINGS_CLEANUPINTERVALSECONDS": str(PERIOD),
        "MM_JOBSETTINGS_POLLSECONDS": "1",
        "MM_JOBSETTINGS_HEARTBEATSECONDS": "0.3",
        "MM_JOBSETTINGS_STALESECONDS": "2",
        "MM_DATARETENTIONSETTINGS_ENABLEMESSAGEDELETION": "true",
        "MM_DATARETENTIONSETTINGS_MESSAGERETENTIONHOURS": "1",
        "MM_DATARETENTIONSETTINGS_DELETIONJOBSTARTTIME": time.strftime("%H:%M", start),
        "MM_DATARETENTIONSETTINGS_BATCHSIZE": "100",
        "MM_DATARETENTIONSETTINGS_TIMEBETWEENBATCHESMILLISECONDS": "150",
        "MM_LOGSETTINGS_CONSOLELEVEL": "INFO",
    }


def wait(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def sql(postgres: PostgresInstance, cluster: Cluster, statement: str) -> list[list[str]]:
    database = urlsplit(cluster.database_url).path.strip("/")
    out = postgres.psql(statement, database=database).strip()
    return [line.split("|") for line in out.splitlines()] if out else []


def scheduler_node(rest: Rest, token: str, cluster: Cluster) -> ClusterNode | None:
    for node in rest.call("GET", "/cluster/status", token):
        if node["job_scheduler"] and node["status"] == "ok":
            return cluster.node_named(node["node_name"])
    return None


def node_of_worker(rest: Rest, token: str, cluster: Cluster, worker: str) -> ClusterNode:
    for node in rest.call("GET", "/cluster/status", token):
        if node["id"] == worker:
            return cluster.node_named(node["node_name"])
    raise AssertionError(f"no live node has id {worker}")


def job(rest: Rest, token: str, job_id: str) -> dict[str, Any]:
    return dict(rest.call("GET", f"/jobs/{job_id}", token))


def test_a_periodic_job_is_created_once_per_slot_across_a_scheduler_kill(
    cluster: Cluster, lb: Rest, org: Org, postgres: PostgresInstance
) -> None:
    token = org.admin.token

    def slots() -> Counter[int]:
        rows = sql(
            postgres,
            cluster,
            "SELECT schedule_slot FROM jobs WHERE type = 'cleanup' AND schedule_slot IS NOT NULL",
        )
        return Counter(int(r[0]) for r in rows)

    wait(lambda: len(slots()) >= 3, 20, "three cleanup slots")
    doomed = wait(lambda: scheduler_node(lb, token, cluster), 10, "a scheduler")
    # Mid-period: half a period after a slot's start.
    wait(
        lambda: 0.4 * PERIOD < time.time() % PERIOD < 0.6 * PERIOD,
        5,
        "the middle of a period",
        0.02,
    )
    before = max(slots())
    doomed.kill()
    successor = wait(
        lambda: (n := scheduler_node(lb, token, cluster)) is not None and n is not doomed and n,
        15,
        "another node to take the scheduler lease",
    )
    assert successor.alive
    wait(lambda: max(slots()) >= before + 5, 30, "five more slots after the kill")

    counted = slots()
    first, last = min(counted), max(counted)
    assert sorted(counted) == list(range(first, last + 1)), f"a slot was skipped: {counted}"
    assert set(counted.values()) == {1}, f"a slot was doubled: {counted}"

    # Every one of them ran (once: a job the dead node held was reaped and run by another).
    def all_done() -> bool:
        rows = sql(
            postgres,
            cluster,
            f"SELECT status FROM jobs WHERE type = 'cleanup' AND schedule_slot <= {last}",
        )
        return all(r[0] == "success" for r in rows)

    wait(all_done, 20, "every scheduled cleanup job to succeed")


def old_posts(postgres: PostgresInstance, cluster: Cluster, org: Org, count: int) -> str:
    """`count` posts (and a reaction on every fifth) two hours old in a new channel, written
    straight to the database; returns the channel id."""
    rest = Rest(cluster.nginx_url)
    try:
        channel = rest.channel(org.admin, org.team["id"], "O")
    finally:
        rest.close()
    old = int(time.time() * 1000) - 2 * HOUR_MS
    cid, uid = channel["id"], org.admin.id
    sql(
        postgres,
        cluster,
        "INSERT INTO posts (id, create_at, update_at, user_id, channel_id, message, props, "
        f"file_ids) SELECT substr(md5('{cid}' || i), 1, 26), {old} + i, {old} + i, '{uid}', "
        f"'{cid}', 'old post ' || i, '{{}}', '[]' FROM generate_series(1, {count}) AS i",
    )
    sql(
        postgres,
        cluster,
        "INSERT INTO reactions (user_id, post_id, emoji_name, create_at, channel_id) "
        f"SELECT '{uid}', substr(md5('{cid}' || i), 1, 26), 'smile', {old} + i, '{cid}' "
        f"FROM generate_series(1, {count}, 5) AS i",
    )
    return str(cid)


def kill_the_worker_midway(
    cluster: Cluster,
    lb: Rest,
    token: str,
    postgres: PostgresInstance,
    job_id: str,
    midway: Callable[[dict[str, Any]], bool],
) -> ClusterNode:
    running = wait(
        lambda: (j := job(lb, token, job_id))["status"] == "in_progress" and midway(j) and j,
        60,
        "the job to be halfway",
        0.05,
    )
    ((worker,),) = sql(postgres, cluster, f"SELECT worker FROM jobs WHERE id = '{job_id}'")
    victim = node_of_worker(lb, token, cluster, worker)
    victim.kill()
    assert running["status"] == "in_progress"
    return victim


def test_a_retention_job_whose_node_dies_is_finished_by_another_exactly_once(
    cluster: Cluster, lb: Rest, org: Org, postgres: PostgresInstance
) -> None:
    token = org.admin.token
    total = 4000
    channel_id = old_posts(postgres, cluster, org, total)
    kept = [lb.post(org.admin, channel_id, f"new post {i}")["id"] for i in range(5)]
    created = lb.call("POST", "/jobs", token, json={"type": "data_retention"}, expect=201)
    victim = kill_the_worker_midway(
        cluster,
        lb,
        token,
        postgres,
        created["id"],
        lambda j: 800 <= int(j["data"].get("deleted_posts", "0")) <= total - 1500,
    )
    done = wait(
        lambda: (j := job(lb, token, created["id"]))["status"] in ("success", "error") and j,
        90,
        "another node to finish the job",
    )
    assert done["status"] == "success", done
    # Exactly what one run deletes: every old post and its reaction, counted once.
    assert done["data"]["deleted_posts"] == str(total)
    assert done["data"]["deleted_reactions"] == str(len(range(1, total + 1, 5)))
    ((attempts, worker),) = sql(
        postgres, cluster, f"SELECT attempts, worker FROM jobs WHERE id = '{created['id']}'"
    )
    # Two claims, unless a loaded machine made a heartbeat late enough for one more reap.
    assert int(attempts) >= 2 and node_of_worker(lb, token, cluster, worker) is not victim
    left = sql(postgres, cluster, f"SELECT id FROM posts WHERE channel_id = '{channel_id}'")
    assert sorted(r[0] for r in left) == sorted(kept)


def test_an_import_whose_node_dies_is_resumed_by_another_exactly_once(
    cluster: Cluster, lb: Rest, org: Org, postgres: PostgresInstance
) -> None:
    token = org.admin.token
    posts = 6000
    base = 1_700_000_000_000
    lines: list[dict[str, Any]] = [
        {"type": "version", "version": 1},
        {"type": "team", "team": {"name": "moved", "display_name": "Moved", "type": "O"}},
        {
            "type": "channel",
            "channel": {"team": "moved", "name": "big", "type": "O", "display_name": "Big"},
        },
        {
            "type": "user",
            "user": {
                "username": "mover",
                "email": "mover@example.com",
                "teams": [{"name": "moved", "channels": [{"name": "big"}]}],
            },
        },
    ]
    for i in range(posts):
        lines.append(
            {
                "type": "post",
                "post": {
                    "team": "moved",
                    "channel": "big",
                    "user": "mover",
                    "message": f"moved post {i}",
                    "create_at": base + i,
                    "reactions": [{"user": "mover", "emoji_name": "ok", "create_at": base + i + 1}],
                },
            }
        )
    (cluster.files_dir / "import").mkdir(exist_ok=True)
    (cluster.files_dir / "import" / "big.jsonl").write_bytes(
        b"\n".join(orjson.dumps(x) for x in lines)
    )
    created = lb.call(
        "POST",
        "/jobs",
        token,
        json={"type": "import_process", "data": {"import_file": "import/big.jsonl"}},
        expect=201,
    )
    victim = kill_the_worker_midway(
        cluster,
        lb,
        token,
        postgres,
        created["id"],
        lambda j: 1000 <= int(j["data"].get("imported_through_line", "0")) <= posts - 2000,
    )
    done = wait(
        lambda: (j := job(lb, token, created["id"]))["status"] in ("success", "error") and j,
        180,
        "another node to finish the import",
    )
    assert done["status"] == "success", done
    assert done["data"]["imported_posts"] == str(posts)
    assert done["data"]["imported_reactions"] == str(posts)
    ((count, distinct),) = sql(
        postgres,
        cluster,
        "SELECT count(*), count(DISTINCT message) FROM posts p JOIN channels c "
        "ON c.id = p.channel_id WHERE c.name = 'big'",
    )
    assert int(count) == posts and int(distinct) == posts
    ((total,),) = sql(postgres, cluster, "SELECT total_msg_count FROM channels WHERE name = 'big'")
    assert int(total) == posts
    ((attempts, worker),) = sql(
        postgres, cluster, f"SELECT attempts, worker FROM jobs WHERE id = '{created['id']}'"
    )
    assert int(attempts) >= 2 and node_of_worker(lb, token, cluster, worker) is not victim
