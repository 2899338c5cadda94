"""`import_process`: imports a Mattermost bulk export (a zip with a `.jsonl` file and its
attachments under `data/`, or a bare `.jsonl` file) from the file store.

1. Validation, always first and never writing: every line is parsed and checked on its own
   (`bulk.check_line`), lines must come in the format's order, and every reference must resolve
   to something earlier in the file or already on this server (teams, channels, users, the
   attachments in the archive); an email may not belong to another account. Every bad line is
   reported by number (`data.line_number` is the first, `data.errors` lists up to 100, the error
   message the first few); then the job fails and nothing has been written. With
   `data.dry_run: true` the job stops after this pass.
2. Applying (`import_apply.Importer`), `LINES_PER_BATCH` lines per transaction: a line is
   written whole or not at all, and the transaction also records the last line done
   (`imported_through_line`) and the counts. A retry after the node died continues after that
   line. Every object is found by its unique key before it is created, and new posts and files
   get ids derived from that key, so re-running an import (or a retry that repeats a batch)
   creates nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
from sqlalchemy import select

from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.files import FileBackend
from hubbub.files.base import check_path
from hubbub.ids import now_ms
from hubbub.jobs.archive import Archive, ImportRefused, open_archive
from hubbub.jobs.bulk import (
    RANK,
    SKIPPED,
    LineError,
    archive_name,
    attachment_paths,
    check_line,
    members_of,
    parse,
    participants,
)
from hubbub.jobs.import_apply import Importer
from hubbub.jobs.model import IMPORT_PROCESS, JobData
from hubbub.jobs.worker import JobContext, JobHandler
from hubbub.store.db import Database
from hubbub.store.tables import channels, teams, users

log = logging.getLogger("hubbub.jobs")

LINES_PER_BATCH = 500
MAX_REPORTED = 100


@dataclass
class Report:
    errors: list[tuple[int, str]] = field(default_factory=list)
    lines: int = 0
    skipped: int = 0


class Validator:
    """Pass 1: reads every line and checks it; writes nothing."""

    def __init__(self, db: Database, max_post_size: int) -> None:
        self.db = db
        self.max_post_size = max_post_size
        self.teams: set[str] = set()
        self.channels: set[tuple[str, str]] = set()
        self.users: set[str] = set()
        self.emails: dict[str, str] = {}

    async def load(self) -> None:
        async with self.db.read() as conn:
            names = {r.id: r.name for r in await conn.execute(select(teams.c.id, teams.c.name))}
            self.teams = set(names.values())
            self.channels = {
                (names[r.team_id], r.name)
                for r in await conn.execute(
                    select(channels.c.team_id, channels.c.name).where(channels.c.team_id != "")
                )
                if r.team_id in names
            }
            for r in await conn.execute(select(users.c.username, users.c.email)):
                self.users.add(r.username)
                self.emails[r.email] = r.username

    async def run(self, archive: Archive) -> Report:
        await self.load()
        report = Report()
        rank, seen_version = -1, False
        for number, raw in enumerate(archive.lines, 1):
            if not raw.strip():
                continue
            report.lines += 1
            try:
                line = parse(raw)
                kind = line["type"]
                if not seen_version and kind != "version":
                    raise LineError("the first line must be the version line")
                if kind == "version" and seen_version:
                    raise LineError("the version line may appear only once")
                seen_version = True
                if RANK[kind] < rank:
                    raise LineError(f"a {kind} line cannot come after lines of a later type")
                rank = max(rank, RANK[kind])
                if kind in SKIPPED:
                    report.skipped += 1
                    continue
                check_line(line, self.max_post_size)
                self.resolve(kind, line.get(kind) or {}, archive)
            except LineError as exc:
                report.errors.append((number, str(exc)))
            if number % 5000 == 0:
                await asyncio.sleep(0)  # let the heartbeat run on a big file
        if not seen_version and not report.errors:
            report.errors.append((1, "the file is empty: the first line must be the version line"))
        return report

    def _team(self, name: str) -> str:
        key = name.lower()
        if key not in self.teams:
            raise LineError(f"team {name!r} is neither earlier in the file nor on this server")
        return key

    def _channel(self, team: str, name: str) -> None:
        if (self._team(team), name.lower()) not in self.channels:
            raise LineError(
                f"channel {name!r} of team {team!r} is neither earlier in the file nor on "
                "this server"
            )

    def _user(self, name: str) -> None:
        if name.lower() not in self.users:
            raise LineError(f"user {name!r} is neither earlier in the file nor on this server")

    def resolve(self, kind: str, body: Mapping[str, Any], archive: Archive) -> None:
        """The checks that need what came before: references and unique emails."""
        if kind == "team":
            self.teams.add(body["name"].lower())
        elif kind == "channel":
            self.channels.add((self._team(body["team"]), body["name"].lower()))
        elif kind == "user":
            username, email = body["username"].lower(), body["email"].lower()
            owner = self.emails.get(email)
            if owner is not None and owner != username:
                raise LineError(f"email {email!r} already belongs to user {owner!r}")
            for team in body.get("teams") or []:
                self._team(team["name"])
                for channel in team.get("channels") or []:
                    self._channel(team["name"], channel["name"])
            self.users.add(username)
            self.emails[email] = username
        elif kind in ("post", "direct_post"):
            if kind == "post":
                self._channel(body["team"], body["channel"])
            else:
                for member in members_of(dict(body), "channel_members"):
                    self._user(member)
            self._authors(body)
            for path in attachment_paths(dict(body)):
                if archive_name(path) not in archive.members:
                    raise LineError(f"attachment {path!r} is not in the archive")
        elif kind == "direct_channel":
            for participant in participants(dict(body)):
                self._user(participant["username"])

    def _authors(self, body: Mapping[str, Any]) -> None:
        self._user(body["user"])
        for name in body.get("flagged_by") or []:
            self._user(name)
        for reaction in body.get("reactions") or []:
            self._user(reaction["user"])
        for reply in body.get("replies") or []:
            self._authors(reply)


class BulkImport(JobHandler):
    job_type: ClassVar[str] = IMPORT_PROCESS
    resumable: ClassVar[bool] = True

    def __init__(
        self,
        db: Database,
        files: FileBackend,
        settings: Settings,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.db = db
        self.files = files
        self.settings = settings
        self.clock = clock

    def check_request(self, data: Mapping[str, str]) -> JobData:
        path = data.get("import_file", "")
        if not path:
            raise AppError(
                "api.job.import.missing_file.app_error",
                "An import job needs data.import_file: the path of the file in the file store.",
                400,
            )
        try:
            check_path(path)
        except ValueError:
            raise AppError(
                "api.job.import.bad_file.app_error",
                f"data.import_file {path!r} is not a plain relative path in the file store.",
                400,
            ) from None
        return {**data, "dry_run": "true" if data.get("dry_run") == "true" else "false"}

    async def run(self, ctx: JobContext) -> JobData:
        path = ctx.data["import_file"]
        try:
            raw = await self.files.read(path)
        except FileNotFoundError:
            raise ImportRefused(f"the import file {path!r} is not in the file store") from None
        archive = await asyncio.to_thread(open_archive, raw)
        report = await Validator(self.db, self.settings.ServiceSettings.MaxPostSize).run(archive)
        ctx.set(total_lines=report.lines, skipped_lines=report.skipped)
        if report.errors:
            first = report.errors[0][0]
            listed = [{"line": n, "error": e} for n, e in report.errors[:MAX_REPORTED]]
            ctx.set(line_number=first, errors=orjson.dumps(listed).decode())
            shown = "; ".join(f"line {n}: {e}" for n, e in report.errors[:5])
            raise ImportRefused(
                f"{len(report.errors)} of {report.lines} lines cannot be imported, so nothing "
                f"was: {shown}"
            )
        await ctx.progress(10)
        if ctx.data.get("dry_run") == "true":
            return {"validated_lines": str(report.lines)}
        importer = Importer(self.db, self.files, self.settings, archive, self.clock)
        await importer.run(ctx, LINES_PER_BATCH)
        return {}
