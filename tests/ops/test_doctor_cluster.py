"""`hubbub doctor` against a real three-node cluster (PostgreSQL, Redis, nginx): every node is
found through the cluster view and checked directly, clocks are compared with PostgreSQL's, an
event published on one node is seen on every node's websocket, and the data tier is named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.cluster import Cluster
from tests.support.rest import Account


def test_doctor_checks_every_node_of_a_cluster(
    ops_cluster: Cluster, ops_admin: Account, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HUBBUB_TOKEN"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hubbub.cli.main",
            "doctor",
            "--url",
            ops_cluster.nginx_url,
            "--token",
            ops_admin.token,
            "--json",
            "--skip-idle",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert done.stdout, done.stderr
    report = json.loads(done.stdout)
    by_check = {f["check"]: f for f in report["findings"]}
    urls = [n.url for n in ops_cluster]
    for node in ops_cluster:
        label = f"node {node.name} ({node.url})"
        assert by_check[f"{label}: ping"]["status"] == "ok", by_check.get(f"{label}: ping")
        assert by_check[f"{label}: cluster view"]["status"] == "ok"
        clock = by_check[f"{label}: clock"]
        # Same host as PostgreSQL: the skew is the measurement's own error, well under 250 ms.
        assert clock["status"] == "ok" and abs(clock["data"]["skew_ms"]) < 250, clock
    echoes = [f for f in report["findings"] if f["check"].startswith("event bus: ")]
    assert len(echoes) == 3, [f["check"] for f in report["findings"]]
    assert all(f["status"] == "ok" for f in echoes), echoes
    origin = echoes[0]["check"].split(" ")[2]
    assert origin in urls
    assert {f["check"].rsplit(" ", 1)[1] for f in echoes} == set(urls)
    assert by_check["database"]["status"] == "ok" and "primary" in by_check["database"]["summary"]
    assert by_check["redis"]["status"] == "ok" and "role master" in by_check["redis"]["summary"]
    assert by_check["file store"]["status"] == "ok"
    assert by_check["proxy: websocket upgrade"]["status"] == "ok"
    # The rig's nginx forwards the address but not the scheme: trusted, with a warning.
    forwarded = by_check["proxy: client address and scheme"]
    assert "is trusted and forwards the client's address" in forwarded["summary"], forwarded
