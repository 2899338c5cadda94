"""`hubbub jobs list|run TYPE|cancel ID|download ID`: the job API from the command line.

The command runs as the operator (no session), on a one-off node that does not join the cluster
and runs no jobs itself: `run` creates the job and announces it on the cluster bus, and a node
with `JobSettings.RunJobs` claims it. `--wait` follows it to the end (exit status 0 only for
`success`). `run import_process --file export.zip` first copies the local file into the file
store under `ImportSettings.Directory`, where every node can read it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os.path
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hubbub.config import LoadedConfig
from hubbub.errors import AppError
from hubbub.ids import new_id
from hubbub.jobs.export import store_dir
from hubbub.jobs.model import IMPORT_PROCESS, Job

Load = Callable[[argparse.Namespace], LoadedConfig]


def add_parser(sub: Any, load: Load) -> None:
    jobs = sub.add_parser("jobs", help="scheduled and requested jobs (docs/jobs.md)")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)

    listing = jobs_sub.add_parser("list", help="jobs, newest first")
    listing.add_argument("--type", help="only jobs of this type")
    listing.add_argument("--page", type=int, default=0)
    listing.add_argument("--per-page", type=int, default=60)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=lambda args: _run(args, load, _list))

    run = jobs_sub.add_parser("run", help="create a job of TYPE (a node with RunJobs runs it)")
    run.add_argument("type", help="data_retention, cleanup, export_process, import_process")
    run.add_argument("--data", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--file", help="import_process: a local bulk file to import")
    run.add_argument("--wait", action="store_true", help="wait until the job has finished")
    run.add_argument("--timeout", type=float, default=3600.0, help="seconds --wait waits")
    run.set_defaults(func=lambda args: _run(args, load, _create))

    cancel = jobs_sub.add_parser("cancel", help="cancel a pending or running job")
    cancel.add_argument("id")
    cancel.set_defaults(func=lambda args: _run(args, load, _cancel))

    download = jobs_sub.add_parser("download", help="save the file a job produced")
    download.add_argument("id")
    download.add_argument("--output", "-o", help="where to write it (default: its name)")
    download.set_defaults(func=lambda args: _run(args, load, _download))


def _run(args: argparse.Namespace, load: Load, work: Callable[..., Any]) -> int:
    from hubbub.app import Hubbub

    config = load(args)

    async def main() -> int:
        node = Hubbub(config, join_cluster=False)
        await node.start()
        try:
            return int(await work(node, args))
        finally:
            await node.stop()

    try:
        return asyncio.run(main())
    except AppError as exc:
        print(f"hubbub: {exc.message} ({exc.id})", file=sys.stderr)
        return 1


async def _list(node: Any, args: argparse.Namespace) -> int:
    found: list[Job] = await node.jobs.list(None, args.page, args.per_page, args.type)
    if args.json:
        print(json.dumps([job.to_json() for job in found], indent=2))
        return 0
    print(f"{'ID':26}  {'TYPE':16}  {'STATUS':16}  {'PROGRESS':>8}  CREATED")
    for job in found:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.create_at / 1000))
        print(f"{job.id:26}  {job.type:16}  {job.status:16}  {job.progress:>7}%  {created}")
        if job.data.get("error"):
            print(f"    error: {job.data['error']}")
    return 0


async def _create(node: Any, args: argparse.Namespace) -> int:
    data: dict[str, str] = {}
    for item in args.data:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"hubbub: --data wants KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        data[key] = value
    if args.file:
        if args.type != IMPORT_PROCESS:
            print("hubbub: --file is for import_process", file=sys.stderr)
            return 2
        content = await asyncio.to_thread(Path(args.file).read_bytes)
        directory = store_dir(node.settings.ImportSettings.Directory)
        path = f"{directory}/{new_id()}_{os.path.basename(args.file)}"
        await node.files.write(path, content)
        data["import_file"] = path
    job: Job = await node.jobs.create(None, args.type, data)
    print(json.dumps(job.to_json()))
    if not args.wait:
        return 0
    return await _follow(node, job, args.timeout)


async def _follow(node: Any, job: Job, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    seen = (job.status, job.progress)
    while not job.finished:
        if time.monotonic() > deadline:
            print(f"hubbub: job {job.id} still {job.status} after {timeout:g}s", file=sys.stderr)
            return 1
        await asyncio.sleep(0.5)
        job = await node.jobs.get(None, job.id)
        if (job.status, job.progress) != seen:
            seen = (job.status, job.progress)
            print(f"{job.status} {job.progress}%", file=sys.stderr)
    print(json.dumps(job.to_json()))
    return 0 if job.status == "success" else 1


async def _cancel(node: Any, args: argparse.Namespace) -> int:
    job: Job = await node.jobs.cancel(None, args.id)
    print(json.dumps(job.to_json()))
    return 0


async def _download(node: Any, args: argparse.Namespace) -> int:
    result = await node.jobs.download(None, args.id)
    target = Path(args.output or result.name)
    await asyncio.to_thread(target.write_bytes, result.content)
    print(f"wrote {len(result.content)} bytes to {target}")
    return 0
