"""How long a bulk export and an import of a data set of 100,000+ posts take.

1. A bulk file in Mattermost's format is generated (teams, channels, users with memberships,
   root posts with replies and reactions, direct messages, attachments) and imported into an
   empty node: the seeding, timed as "import (generated file)".
2. That node exports everything (`export_process`), timed from the job's creation to its
   success, and the archive's size is noted.
3. The archive is imported into a second, empty node (`import_process`), timed the same way;
   the post counts of both nodes are compared.

Each node runs in this process with its own database (SQLite files in a temporary directory, or
with `--db postgres` two databases of a private PostgreSQL started here) and its own file
directory; the job server of each node runs the jobs as in production.

    python -m bench.jobs_export_import [--posts 100000] [--db sqlite|postgres]

Prints a table and writes `bench/results/jobs_export_import.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select

from hubbub.app import Hubbub
from hubbub.config import load_config
from hubbub.jobs.model import Job
from hubbub.store.tables import posts

ROOT = Path(__file__).resolve().parents[1]
USERS = 50
TEAMS = 2
CHANNELS_PER_TEAM = 10
ATTACHMENTS = 200


def generate(total_posts: int) -> tuple[bytes, dict[str, int]]:
    """A zip with `export.jsonl` of at least `total_posts` posts, and what it holds."""
    import zipfile

    base = 1_600_000_000_000
    lines: list[Any] = [{"type": "version", "version": 1}]
    teams = [f"team{t}" for t in range(TEAMS)]
    channels = [(t, f"chan{c}") for t in teams for c in range(CHANNELS_PER_TEAM)]
    users = [f"user{u:03d}" for u in range(USERS)]
    for team in teams:
        lines.append({"type": "team", "team": {"name": team, "display_name": team, "type": "O"}})
    for team, name in channels:
        lines.append(
            {
                "type": "channel",
                "channel": {"team": team, "name": name, "type": "O", "display_name": name},
            }
        )
    for user in users:
        lines.append(
            {
                "type": "user",
                "user": {
                    "username": user,
                    "email": f"{user}@example.com",
                    "teams": [
                        {"name": t, "channels": [{"name": c} for tt, c in channels if tt == t]}
                        for t in teams
                    ],
                },
            }
        )
    files: dict[str, bytes] = {}
    count = 0
    roots = replies = reactions = 0
    i = 0
    direct_share = total_posts // 20
    while count < total_posts - direct_share:
        team, channel = channels[i % len(channels)]
        post: dict[str, Any] = {
            "team": team,
            "channel": channel,
            "user": users[i % USERS],
            "message": f"message {i} with some words to search for, number {i * 7919 % 10007}",
            "create_at": base + i * 10,
        }
        if i % 5 == 0:
            post["reactions"] = [
                {
                    "user": users[(i + 1) % USERS],
                    "emoji_name": "smile",
                    "create_at": base + i * 10 + 1,
                }
            ]
            reactions += 1
        if i % 10 == 0:
            post["replies"] = [
                {
                    "user": users[(i + 2) % USERS],
                    "message": f"reply to {i}",
                    "create_at": base + i * 10 + 5,
                }
            ]
            replies += 1
            count += 1
        if len(files) < ATTACHMENTS and i % 97 == 0:
            path = f"data/bench/{i}/notes-{i}.txt"
            files[path] = f"attachment {i}\n".encode() * 50
            post["attachments"] = [{"path": path}]
        lines.append({"type": "post", "post": post})
        roots += 1
        count += 1
        i += 1
    pairs = [(users[k], users[(k + 1) % USERS]) for k in range(USERS)]
    for pair in pairs:
        lines.append({"type": "direct_channel", "direct_channel": {"members": list(pair)}})
    j = 0
    while count < total_posts:
        pair = pairs[j % len(pairs)]
        lines.append(
            {
                "type": "direct_post",
                "direct_post": {
                    "channel_members": list(pair),
                    "user": pair[j % 2],
                    "message": f"direct {j}",
                    "create_at": base + j * 10 + 3,
                },
            }
        )
        count += 1
        j += 1
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("export.jsonl", b"\n".join(orjson.dumps(x) for x in lines))
        for path, content in files.items():
            archive.writestr(path, content)
    return out.getvalue(), {
        "posts": count,
        "roots": roots,
        "replies": replies,
        "direct_posts": j,
        "reactions": reactions,
        "attachments": len(files),
        "lines": len(lines),
    }


def node_env(kind: str, workdir: Path, name: str, postgres: Any) -> dict[str, str]:
    env = {
        "MM_FILESETTINGS_DIRECTORY": str(workdir / f"{name}-files"),
        "MM_JOBSETTINGS_POLLSECONDS": "0.2",
        "MM_LOGSETTINGS_CONSOLELEVEL": "WARN",
    }
    if kind == "sqlite":
        env["MM_SQLSETTINGS_DATASOURCE"] = str(workdir / f"{name}.db")
    else:
        postgres.psql(f"CREATE DATABASE {name}")
        env["MM_SQLSETTINGS_DRIVERNAME"] = "postgres"
        env["MM_SQLSETTINGS_DATASOURCE"] = postgres.url_for(name)
    return env


async def run_job(node: Hubbub, job_type: str, data: dict[str, str]) -> tuple[Job, float]:
    began = time.perf_counter()
    job = await node.jobs.create(None, job_type, data)
    last = -1
    while not job.finished:
        await asyncio.sleep(0.2)
        job = await node.job_store.get(job.id)
        if job.progress // 10 != last // 10:
            last = job.progress
            print(f"  {job_type}: {job.status} {job.progress}%", file=sys.stderr)
    elapsed = time.perf_counter() - began
    if job.status != "success":
        raise RuntimeError(f"{job_type} ended {job.status}: {job.data}")
    return job, elapsed


async def count_posts(node: Hubbub) -> int:
    async with node.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(posts))).scalar_one())


async def measure(args: argparse.Namespace, workdir: Path, postgres: Any) -> dict[str, Any]:
    began = time.perf_counter()
    content, generated = generate(args.posts)
    print(f"generated {generated} in {time.perf_counter() - began:.1f}s", file=sys.stderr)
    source = Hubbub(load_config(None, environ=node_env(args.db, workdir, "source", postgres)))
    target = Hubbub(load_config(None, environ=node_env(args.db, workdir, "target", postgres)))
    await source.start()
    await target.start()
    try:
        await source.files.write("import/generated.zip", content)
        _, seed_s = await run_job(source, "import_process", {"import_file": "import/generated.zip"})
        exported, export_s = await run_job(source, "export_process", {})
        archive = await source.files.read(exported.data["export_file"])
        await target.files.write("import/export.zip", archive)
        imported, import_s = await run_job(
            target, "import_process", {"import_file": "import/export.zip"}
        )
        source_posts, target_posts = await count_posts(source), await count_posts(target)
    finally:
        await target.stop()
        await source.stop()
    if source_posts != target_posts or source_posts != generated["posts"]:
        raise RuntimeError(
            f"post counts differ: generated {generated['posts']}, source "
            f"{source_posts}, target {target_posts}"
        )
    return {
        "db": args.db,
        "generated": generated,
        "posts": source_posts,
        "seed_import_seconds": round(seed_s, 2),
        "export_seconds": round(export_s, 2),
        "export_bytes": len(archive),
        "import_seconds": round(import_s, 2),
        "exported": {k: v for k, v in exported.data.items() if k.startswith("exported_")},
        "imported": {k: v for k, v in imported.data.items() if k.startswith("imported_")},
    }


def table(result: dict[str, Any]) -> Iterator[str]:
    posts = result["posts"]
    yield f"{'step':32} {'seconds':>9} {'posts/s':>9}"
    for label, key in (
        ("import (generated file)", "seed_import_seconds"),
        ("export (export_process)", "export_seconds"),
        ("import of the export", "import_seconds"),
    ):
        seconds = result[key]
        yield f"{label:32} {seconds:>9.1f} {posts / seconds:>9.0f}"
    yield f"{posts} posts on {result['db']}; archive {result['export_bytes'] / 1e6:.1f} MB"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    postgres = None
    if args.db == "postgres":
        from tests.support.postgres import start_postgres

        postgres = start_postgres()
    try:
        with tempfile.TemporaryDirectory(prefix="hubbub-bench-jobs-") as tmp:
            return await measure(args, Path(tmp), postgres)
    finally:
        if postgres is not None:
            postgres.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--posts", type=int, default=100_000)
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args()
    result = asyncio.run(run(args))
    result["machine"] = {"python": platform.python_version(), "platform": platform.platform()}
    for line in table(result):
        print(line)
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"jobs_export_import_{args.db}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
