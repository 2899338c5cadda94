"""Jobs on a real cluster (3 nodes, PostgreSQL, Redis): a periodic job is created once per slot
while the scheduler node is SIGKILLed mid-period; a long job whose node is SIGKILLed mid-run is
finished by another node with exactly the result of one run (data retention, import, export);
a running job is canceled; a leader with `RunScheduler` off says so in its log and on
`/cluster/status` while another node schedules (the last test: it restarts every node).

Timing (hubbub-only settings, docs/jobs.md): cleanup every 2 s (`CleanupIntervalSeconds`), node
heartbeat 0.5 s (lease 1.5 s), job heartbeat 0.3 s, a job silent for 2 s is reaped. Every wait
is for a condition with a deadline.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from hubbub.jobs.scheduler import LEADER_DOES_NOT_SCHEDULE, NO_SCHEDULER
from tests.support.cluster import Cluster, ClusterNode
from tests.support.postgres import PostgresInstance
from tests.support.rest import Org, Rest
from tests.support.wait import wait_until

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

    wait_until(lambda: len(slots()) >= 3, 20, "three cleanup slots", interval=0.1)
    doomed = wait_until(lambda: scheduler_node(lb, token, cluster), 10, "a scheduler")
    # Mid-period: half a period after a slot's start.
    wait_until(
        lambda: 0.4 * PERIOD < time.time() % PERIOD < 0.6 * PERIOD,
        5,
        "the middle of a period",
        interval=0.02,
    )
    before = max(slots())
    # The scheduler is the "leader" of scheduling; it usually holds the cluster leader lease
    # (the reaper's) too, and then both move at once.
    print(f"killing {doomed.name}, cluster leader too: {leader_node(lb, token, cluster) is doomed}")
    doomed.kill()
    successor = wait_until(
        lambda: (n := scheduler_node(lb, token, cluster)) is not None and n is not doomed and n,
        15,
        "another node to take the scheduler lease",
    )
    assert successor.alive
    wait_until(
        lambda: max(slots()) >= before + 5, 30, "five more slots after the kill", interval=0.1
    )

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

    wait_until(all_done, 20, "every scheduled cleanup job to succeed", interval=0.1)


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


def start_import(
    cluster: Cluster, lb: Rest, token: str, team: str, channel: str, user: str, posts: int
) -> dict[str, Any]:
    """Writes a bulk file of one team, channel and user and `posts` posts (each with a
    reaction) to the shared file store and creates the import job of it."""
    base = 1_700_000_000_000
    lines: list[dict[str, Any]] = [
        {"type": "version", "version": 1},
        {"type": "team", "team": {"name": team, "display_name": team.title(), "type": "O"}},
        {
            "type": "channel",
            "channel": {"team": team, "name": channel, "type": "O", "display_name": channel},
        },
        {
            "type": "user",
            "user": {
                "username": user,
                "email": f"{user}@example.com",
                "teams": [{"name": team, "channels": [{"name": channel}]}],
            },
        },
    ]
    for i in range(posts):
        lines.append(
            {
                "type": "post",
                "post": {
                    "team": team,
                    "channel": channel,
                    "user": user,
                    "message": f"{team} post {i}",
                    "create_at": base + i,
                    "reactions": [{"user": user, "emoji_name": "ok", "create_at": base + i + 1}],
                },
            }
        )
    (cluster.files_dir / "import").mkdir(exist_ok=True)
    (cluster.files_dir / "import" / f"{team}.jsonl").write_bytes(
        b"\n".join(orjson.dumps(x) for x in lines)
    )
    return dict(
        lb.call(
            "POST",
            "/jobs",
            token,
            json={"type": "import_process", "data": {"import_file": f"import/{team}.jsonl"}},
            expect=201,
        )
    )


def kill_the_worker_midway(
    cluster: Cluster,
    lb: Rest,
    token: str,
    postgres: PostgresInstance,
    job_id: str,
    midway: Callable[[dict[str, Any]], bool],
) -> ClusterNode:
    running = wait_until(
        lambda: (j := job(lb, token, job_id))["status"] == "in_progress" and midway(j) and j,
        60,
        "the job to be halfway",
        interval=0.05,
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
    done = wait_until(
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
    created = start_import(cluster, lb, token, "moved", "big", "mover", posts)
    victim = kill_the_worker_midway(
        cluster,
        lb,
        token,
        postgres,
        created["id"],
        lambda j: 1000 <= int(j["data"].get("imported_through_line", "0")) <= posts - 2000,
    )
    done = wait_until(
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


def recent_posts(postgres: PostgresInstance, cluster: Cluster, org: Org, count: int) -> str:
    """`count` posts of the last minute in a new channel, written straight to the database."""
    rest = Rest(cluster.nginx_url)
    try:
        channel = rest.channel(org.admin, org.team["id"], "O")
    finally:
        rest.close()
    start = int(time.time() * 1000) - 60_000
    cid, uid = channel["id"], org.admin.id
    sql(
        postgres,
        cluster,
        "INSERT INTO posts (id, create_at, update_at, user_id, channel_id, message, props, "
        f"file_ids) SELECT substr(md5('x{cid}' || i), 1, 26), {start} + i, {start} + i, '{uid}', "
        f"'{cid}', 'export post ' || i, '{{}}', '[]' FROM generate_series(1, {count}) AS i",
    )
    return str(cid)


def archive_of(lb: Rest, token: str, job_id: str) -> tuple[list[bytes], list[str]]:
    """The downloaded export's JSONL lines, without the version line (it carries the time of
    the run), and the archive's member names."""
    response = lb.http.get(
        f"/jobs/{job_id}/download", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        lines = archive.read("export.jsonl").splitlines()
        names = sorted(archive.namelist())
    assert orjson.loads(lines[0])["type"] == "version"
    return lines[1:], names


def test_an_export_whose_node_dies_is_finished_by_another_with_one_runs_archive(
    cluster: Cluster, lb: Rest, org: Org, postgres: PostgresInstance
) -> None:
    token = org.admin.token
    recent_posts(postgres, cluster, org, 30_000)
    created = lb.call("POST", "/jobs", token, json={"type": "export_process"}, expect=201)
    victim = kill_the_worker_midway(
        cluster, lb, token, postgres, created["id"], lambda j: 25 <= j["progress"] <= 55
    )
    done = wait_until(
        lambda: (j := job(lb, token, created["id"]))["status"] in ("success", "error") and j,
        120,
        "another node to finish the export",
    )
    assert done["status"] == "success", done
    ((attempts, worker),) = sql(
        postgres, cluster, f"SELECT attempts, worker FROM jobs WHERE id = '{created['id']}'"
    )
    assert int(attempts) >= 2 and node_of_worker(lb, token, cluster, worker) is not victim

    # One run's archive: the same as that of an export nobody disturbed.
    again = lb.call("POST", "/jobs", token, json={"type": "export_process"}, expect=201)
    clean = wait_until(
        lambda: (j := job(lb, token, again["id"]))["status"] in ("success", "error") and j,
        120,
        "the second export",
    )
    assert clean["status"] == "success", clean
    counted = {k: v for k, v in done["data"].items() if k.startswith("exported_")}
    assert counted == {k: v for k, v in clean["data"].items() if k.startswith("exported_")}
    assert int(counted["exported_posts"]) >= 30_000
    assert archive_of(lb, token, created["id"]) == archive_of(lb, token, again["id"])
    # The store holds the two archives and nothing half-written.
    stored = sorted(p.name for p in (cluster.files_dir / "export").iterdir())
    assert stored == sorted([f"{created['id']}.zip", f"{again['id']}.zip"]), stored


def test_a_running_import_is_canceled_and_writes_nothing_after(
    cluster: Cluster, lb: Rest, org: Org, postgres: PostgresInstance
) -> None:
    token = org.admin.token
    posts = 6000
    created = start_import(cluster, lb, token, "halted", "stopped", "halter", posts)
    wait_until(
        lambda: (
            (j := job(lb, token, created["id"]))["status"] == "in_progress"
            and int(j["data"].get("imported_through_line", "0")) >= 1000
        ),
        60,
        "the import to be under way",
        interval=0.05,
    )
    assert lb.call("POST", f"/jobs/{created['id']}/cancel", token) == {"status": "OK"}
    done = wait_until(
        lambda: (
            (j := job(lb, token, created["id"]))["status"]
            not in ("in_progress", "cancel_requested")
            and j
        ),
        10,
        "the worker to stop",
    )
    assert done["status"] == "canceled", done
    imported = int(done["data"]["imported_posts"])
    # Under way at line 1,000 of the file, whose first lines are the version, the team, the
    # channel and the users: some posts were imported, not all.
    assert 0 < imported < posts

    def written() -> int:
        ((count,),) = sql(
            postgres,
            cluster,
            "SELECT count(*) FROM posts p JOIN channels c ON c.id = p.channel_id "
            "WHERE c.name = 'stopped'",
        )
        return int(count)

    # What the job row says is what was written: the last batch committed with its checkpoint,
    # and a canceled job's worker can commit nothing more (its writes are fenced by status).
    assert written() == imported
    # Still so after two more heartbeats of every node, and nobody claims it again.
    time.sleep(0.6)
    assert written() == imported and job(lb, token, created["id"])["status"] == "canceled"


def log_since(node: ClusterNode, offset: int) -> str:
    with node.log_path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def leader_node(rest: Rest, token: str, cluster: Cluster) -> ClusterNode | None:
    for node in rest.call("GET", "/cluster/status", token):
        if node.get("leader"):
            return cluster.node_named(node["node_name"])
    return None


def scheduling_node(rest: Rest, token: str, cluster: Cluster) -> ClusterNode | None:
    """The node holding the scheduler lease, whatever its status (a node whose settings differ
    from the others' is shown with a config mismatch)."""
    for node in rest.call("GET", "/cluster/status", token):
        if node["job_scheduler"]:
            return cluster.node_named(node["node_name"])
    return None


def test_a_leader_with_the_scheduler_off_says_so_and_another_node_schedules(
    cluster: Cluster, lb: Rest, org: Org, postgres: PostgresInstance
) -> None:
    token = org.admin.token
    off = {"MM_JOBSETTINGS_RUNSCHEDULER": "false"}
    offsets = {node.name: node.log_path.stat().st_size for node in cluster}
    try:
        for node in cluster:
            node.restart(off)
        # No node may schedule: the leader says so in its log and on /cluster/status.
        leader = wait_until(lambda: leader_node(lb, token, cluster), 15, "a leader")
        wait_until(
            lambda: NO_SCHEDULER in log_since(leader, offsets[leader.name]),
            20,
            "the leader to log that no node schedules",
        )
        status = lb.call("GET", "/cluster/status", token)
        assert not any(n["job_scheduler"] for n in status)
        (entry,) = [n for n in status if n.get("leader")]
        assert NO_SCHEDULER in entry["reasons"], entry
        assert LEADER_DOES_NOT_SCHEDULE in log_since(leader, offsets[leader.name])

        # A node that may schedule comes back: it takes the scheduler lease, the leader (still
        # unable to schedule itself) names it, the status is clear, and slots are created again.
        ((last_slot,),) = sql(
            postgres, cluster, "SELECT max(schedule_slot) FROM jobs WHERE type = 'cleanup'"
        )
        other = next(node for node in cluster if node is not leader)
        other.restart()  # with the settings of the cluster fixture: RunScheduler on
        assert wait_until(lambda: scheduling_node(lb, token, cluster), 15, "a scheduler") is other
        assert leader_node(lb, token, cluster) is leader
        wait_until(
            lambda: "a node schedules jobs again" in log_since(leader, offsets[leader.name]),
            10,
            "the leader to log that a node schedules again",
        )
        status = lb.call("GET", "/cluster/status", token)
        assert [n["node_name"] for n in status if n["job_scheduler"]] == [other.name]
        assert not any(NO_SCHEDULER in n.get("reasons", []) for n in status), status
        wait_until(
            lambda: (
                int(
                    sql(
                        postgres,
                        cluster,
                        "SELECT max(schedule_slot) FROM jobs WHERE type = 'cleanup'",
                    )[0][0]
                )
                > int(last_slot)
            ),
            15,
            "a new cleanup slot",
        )
    finally:
        for node in cluster:
            node.restart()
