"""`export_process`: a Mattermost bulk export of the whole server, as a zip in the file store,
downloadable through `GET /api/v4/jobs/{id}/download`.

The archive holds `export.jsonl` (the bulk format, `bulk.py`) and, unless the job's data says
`include_attachments: false`, every attached file under `data/` at the path its line names.
Exported: teams and their public and private channels (archived ones are left out, as
Mattermost does by default), users (not bots) with their team and channel memberships, posts
with their replies, reactions and attachments, direct and group channels and their posts.
Deleted posts and system messages are not exported; passwords never are, so imported accounts
sign in after a password reset, as with Mattermost.

Posts are read in creation order in batches (with their replies, reactions and files), written
to a temporary file, and the zip is built and stored at the end under
`ExportSettings.Directory`/`<job id>.zip`. An export is not resumable: a retry after its node
died starts over and stores the same archive under the same name.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar

import orjson
from sqlalchemy import ColumnElement, Row, and_, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub import __version__
from hubbub.config import Settings
from hubbub.files import FileBackend
from hubbub.ids import now_ms
from hubbub.jobs.bulk import DATA_DIR, VERSION, archive_name
from hubbub.jobs.model import EXPORT_PROCESS, JobData
from hubbub.jobs.worker import JobContext, JobHandler
from hubbub.services.preferences import FAVORITE_CHANNEL, FLAGGED_POST
from hubbub.store.db import Database
from hubbub.store.tables import (
    channel_members,
    channels,
    file_infos,
    posts,
    preferences,
    reactions,
    team_members,
    teams,
    users,
)

log = logging.getLogger("hubbub.jobs")

BATCH = 1000
JSONL_NAME = "export.jsonl"
Obj = dict[str, Any]
ByPost = dict[str, list[Row[Any]]]
Batch = tuple[Sequence[Row[Any]], ByPost, ByPost, ByPost, ByPost]


def store_dir(directory: str) -> str:
    """`./export/` as a path inside the file store: `export`."""
    parts = [p for p in directory.replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts) or "export"


def _roles(base: str, admin: bool) -> str:
    scope = base.split("_", 1)[0]
    return f"{base} {scope}_admin" if admin else base


class BulkExport(JobHandler):
    job_type: ClassVar[str] = EXPORT_PROCESS

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
        self._flags: ByPost = {}

    def check_request(self, data: Mapping[str, str]) -> JobData:
        out = dict(data)
        out["include_attachments"] = (
            "false" if data.get("include_attachments") == "false" else "true"
        )
        return out

    async def run(self, ctx: JobContext) -> JobData:
        with_files = ctx.data.get("include_attachments", "true") != "false"
        with tempfile.TemporaryDirectory(prefix="hubbub-export-") as tmp:
            jsonl = Path(tmp) / JSONL_NAME
            with jsonl.open("wb") as out:
                writer = _Writer(out)
                counts, attachments = await self._write(ctx, writer, with_files)
            await ctx.progress(92)
            archive = Path(tmp) / "export.zip"
            await self._archive(ctx, archive, jsonl, attachments)
            path = f"{store_dir(self.settings.ExportSettings.Directory)}/{ctx.job.id}.zip"
            content = await asyncio.to_thread(archive.read_bytes)
        ctx.check()
        await self.files.write(path, content)
        return {
            **{f"exported_{k}": str(v) for k, v in counts.items()},
            "exported_attachments": str(len(attachments)),
            "export_file": path,
            "export_size": str(len(content)),
            "is_downloadable": "true",
        }

    async def _archive(
        self, ctx: JobContext, archive: Path, jsonl: Path, attachments: Iterable[str]
    ) -> None:
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            await asyncio.to_thread(zf.write, jsonl, JSONL_NAME)
            for path in attachments:
                ctx.check()
                try:
                    data = await self.files.read(path)
                except FileNotFoundError:
                    log.warning("attached file missing from the store", extra={"path": path})
                    continue
                await asyncio.to_thread(zf.writestr, archive_name(path), data)

    async def _write(
        self, ctx: JobContext, out: _Writer, with_files: bool
    ) -> tuple[dict[str, int], list[str]]:
        counts: dict[str, int] = defaultdict(int)
        attachments: list[str] = []
        out.line(
            {
                "type": "version",
                "version": VERSION,
                "info": {"generator": "hubbub", "version": __version__, "created": str(now_ms())},
            }
        )
        async with self.db.read() as conn:
            usernames = {
                r.id: r.username
                for r in await conn.execute(
                    select(users.c.id, users.c.username).where(~users.c.is_bot)
                )
            }
            team_rows = (
                await conn.execute(
                    select(teams).where(teams.c.delete_at == 0).order_by(teams.c.name)
                )
            ).all()
            team_names = {t.id: t.name for t in team_rows}
            for t in team_rows:
                out.line({"type": "team", "team": _team(t)})
                counts["teams"] += 1
            channel_rows = (
                await conn.execute(
                    select(channels)
                    .where(
                        channels.c.team_id.in_(list(team_names)),
                        channels.c.type.in_(["O", "P"]),
                        channels.c.delete_at == 0,
                    )
                    .order_by(channels.c.team_id, channels.c.name)
                )
            ).all()
            places = {c.id: (team_names[c.team_id], c.name) for c in channel_rows}
            for c in channel_rows:
                out.line({"type": "channel", "channel": _channel(c, team_names[c.team_id])})
                counts["channels"] += 1
            await self._users(conn, out, usernames, team_names, places, counts)
            self._flags = await _flagged(conn)
        await ctx.progress(10)
        total = await self._count_roots(list(places))
        done = 0
        async for batch, replies, reacts, infos, flags in self._post_batches(list(places), ctx):
            for root in batch:
                team, channel = places[root.channel_id]
                extras = (replies, reacts, infos, flags)
                body = _post(root, usernames, extras, with_files, attachments)
                if body is None:
                    continue
                out.line({"type": "post", "post": {"team": team, "channel": channel, **body}})
                counts["posts"] += 1 + len(body.get("replies", []))
            done += len(batch)
            await ctx.progress(10 + 60 * done // max(1, total))
        await self._direct(ctx, out, usernames, with_files, attachments, counts)
        return dict(counts), attachments

    async def _users(
        self,
        conn: AsyncConnection,
        out: _Writer,
        usernames: Mapping[str, str],
        team_names: Mapping[str, str],
        places: Mapping[str, tuple[str, str]],
        counts: dict[str, int],
    ) -> None:
        memberships: dict[str, list[Row[Any]]] = defaultdict(list)
        for m in await conn.execute(
            select(team_members).where(
                team_members.c.delete_at == 0, team_members.c.team_id.in_(list(team_names))
            )
        ):
            memberships[m.user_id].append(m)
        in_channels: dict[tuple[str, str], list[Row[Any]]] = defaultdict(list)
        for m in await conn.execute(
            select(channel_members).where(channel_members.c.channel_id.in_(list(places)))
        ):
            team_name = places[m.channel_id][0]
            in_channels[(m.user_id, team_name)].append(m)
        favorites = await _favorites(conn)
        rows = await conn.execute(select(users).where(~users.c.is_bot).order_by(users.c.username))
        for u in rows:
            user = _user(u)
            user["teams"] = [
                {
                    "name": team_names[m.team_id],
                    "roles": _roles("team_user", m.scheme_admin),
                    "channels": [
                        _membership(cm, places[cm.channel_id][1], favorites)
                        for cm in sorted(
                            in_channels[(u.id, team_names[m.team_id])],
                            key=lambda cm: places[cm.channel_id][1],
                        )
                    ],
                }
                for m in sorted(memberships[u.id], key=lambda m: team_names[m.team_id])
            ]
            out.line({"type": "user", "user": user})
            counts["users"] += 1

    async def _count_roots(self, channel_ids: list[str]) -> int:
        if not channel_ids:
            return 0
        async with self.db.read() as conn:
            return int(
                (
                    await conn.execute(
                        select(func.count()).select_from(posts).where(_roots_in(channel_ids))
                    )
                ).scalar_one()
            )

    async def _post_batches(self, channel_ids: list[str], ctx: JobContext) -> AsyncIterator[Batch]:
        """Root posts of `channel_ids` in creation order, `BATCH` at a time, with the replies,
        reactions and files of each batch."""
        after: tuple[int, str] | None = None
        while channel_ids:
            ctx.check()
            query = select(posts).where(_roots_in(channel_ids))
            if after is not None:
                query = query.where(tuple_(posts.c.create_at, posts.c.id) > after)
            async with self.db.read() as conn:
                batch = (
                    await conn.execute(query.order_by(posts.c.create_at, posts.c.id).limit(BATCH))
                ).all()
                if not batch:
                    return
                extras = await _extras(conn, [r.id for r in batch])
            yield (batch, *extras, self._flags)
            after = (batch[-1].create_at, batch[-1].id)

    async def _direct(
        self,
        ctx: JobContext,
        out: _Writer,
        usernames: Mapping[str, str],
        with_files: bool,
        attachments: list[str],
        counts: dict[str, int],
    ) -> None:
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(channels)
                    .where(channels.c.type.in_(["D", "G"]), channels.c.delete_at == 0)
                    .order_by(channels.c.create_at, channels.c.id)
                )
            ).all()
            members: dict[str, list[Row[Any]]] = defaultdict(list)
            for m in await conn.execute(
                select(channel_members).where(
                    channel_members.c.channel_id.in_([c.id for c in rows])
                )
            ):
                members[m.channel_id].append(m)
            favorites = await _favorites(conn)
        names: dict[str, list[str]] = {}
        for c in rows:
            found = sorted(members[c.id], key=lambda m: usernames.get(m.user_id, ""))
            if not found or any(m.user_id not in usernames for m in found):
                continue  # a bot's channel, or one without members
            listed = [usernames[m.user_id] for m in found]
            if c.type == "D" and len(found) == 1:  # a self-DM names its one member twice
                found, listed = found * 2, listed * 2
            names[c.id] = listed
            line: Obj = {
                "members": names[c.id],
                "participants": [{"username": usernames[m.user_id], **_state(m)} for m in found],
            }
            if c.header:
                line["header"] = c.header
            favorited = sorted(
                {usernames[m.user_id] for m in found if (m.user_id, c.id) in favorites}
            )
            if favorited:
                line["favorited_by"] = favorited
            out.line({"type": "direct_channel", "direct_channel": line})
            counts["direct_channels"] += 1
        await ctx.progress(75)
        async for batch, replies, reacts, infos, flags in self._post_batches(list(names), ctx):
            for root in batch:
                extras = (replies, reacts, infos, flags)
                body = _post(root, usernames, extras, with_files, attachments)
                if body is None:
                    continue
                out.line(
                    {
                        "type": "direct_post",
                        "direct_post": {"channel_members": names[root.channel_id], **body},
                    }
                )
                counts["direct_posts"] += 1 + len(body.get("replies", []))


class _Writer:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out

    def line(self, obj: Obj) -> None:
        self.out.write(orjson.dumps(obj))
        self.out.write(b"\n")


def _roots_in(channel_ids: list[str]) -> ColumnElement[bool]:
    return and_(
        posts.c.channel_id.in_(channel_ids),
        posts.c.root_id == "",
        posts.c.delete_at == 0,
        ~posts.c.type.startswith("system_"),
    )


async def _extras(conn: AsyncConnection, root_ids: list[str]) -> tuple[ByPost, ByPost, ByPost]:
    """Replies per root, reactions per post and file infos per post, for `root_ids`."""
    replies: dict[str, list[Row[Any]]] = defaultdict(list)
    for r in await conn.execute(
        select(posts)
        .where(
            posts.c.root_id.in_(root_ids),
            posts.c.delete_at == 0,
            ~posts.c.type.startswith("system_"),
        )
        .order_by(posts.c.create_at, posts.c.id)
    ):
        replies[r.root_id].append(r)
    post_ids = root_ids + [r.id for rs in replies.values() for r in rs]
    reacts: dict[str, list[Row[Any]]] = defaultdict(list)
    infos: dict[str, list[Row[Any]]] = defaultdict(list)
    for chunk in range(0, len(post_ids), BATCH):
        ids = post_ids[chunk : chunk + BATCH]
        for r in await conn.execute(
            select(reactions)
            .where(reactions.c.post_id.in_(ids), reactions.c.delete_at == 0)
            .order_by(reactions.c.create_at, reactions.c.emoji_name)
        ):
            reacts[r.post_id].append(r)
        for f in await conn.execute(
            select(file_infos)
            .where(file_infos.c.post_id.in_(ids), file_infos.c.delete_at == 0)
            .order_by(file_infos.c.create_at, file_infos.c.id)
        ):
            infos[f.post_id].append(f)
    return replies, reacts, infos


def _team(t: Row[Any]) -> Obj:
    team: Obj = {
        "name": t.name,
        "display_name": t.display_name,
        "type": t.type,
        "allow_open_invite": bool(t.allow_open_invite),
    }
    if t.description:
        team["description"] = t.description
    return team


def _channel(c: Row[Any], team: str) -> Obj:
    channel: Obj = {"team": team, "name": c.name, "display_name": c.display_name, "type": c.type}
    if c.header:
        channel["header"] = c.header
    if c.purpose:
        channel["purpose"] = c.purpose
    return channel


def _user(u: Row[Any]) -> Obj:
    user: Obj = {"username": u.username, "email": u.email}
    for key in ("nickname", "first_name", "last_name", "position", "locale"):
        value = getattr(u, key)
        if value:
            user[key] = value
    user["roles"] = u.roles
    if u.delete_at:
        user["delete_at"] = u.delete_at
    props = dict(u.notify_props or {})
    notify = {
        "desktop": props.get("desktop"),
        "desktop_sound": props.get("desktop_sound"),
        "email": props.get("email"),
        "mobile": props.get("push"),
        "mobile_push_status": props.get("push_status"),
        "channel": props.get("channel"),
        "comments": props.get("comments"),
        "mention_keys": props.get("mention_keys"),
    }
    user["notify_props"] = {k: v for k, v in notify.items() if isinstance(v, str)}
    return user


def _state(m: Row[Any]) -> Obj:
    """A channel member's read state and notify props, as both membership kinds carry them."""
    props = dict(m.notify_props or {})
    notify = {
        "desktop": props.get("desktop"),
        "mobile": props.get("push"),
        "mark_unread": props.get("mark_unread"),
    }
    return {
        "last_viewed_at": m.last_viewed_at,
        "msg_count": m.msg_count,
        "msg_count_root": m.msg_count_root,
        "mention_count": m.mention_count,
        "notify_props": {k: v for k, v in notify.items() if isinstance(v, str)},
    }


def _membership(m: Row[Any], channel: str, favorites: set[tuple[str, str]]) -> Obj:
    out = {"name": channel, "roles": _roles("channel_user", m.scheme_admin), **_state(m)}
    if (m.user_id, m.channel_id) in favorites:
        out["favorite"] = True
    return out


async def _flagged(conn: AsyncConnection) -> ByPost:
    """Who saved each post (the `flagged_post` preferences), read once per export: the
    preferences table has no index by post."""
    flags: dict[str, list[Row[Any]]] = defaultdict(list)
    for flag in await conn.execute(
        select(preferences).where(
            preferences.c.category == FLAGGED_POST, preferences.c.value == "true"
        )
    ):
        flags[flag.name].append(flag)
    return flags


async def _favorites(conn: AsyncConnection) -> set[tuple[str, str]]:
    """(user id, channel id) of every favorite channel (the `favorite_channel` preferences,
    which the sidebar's Favorites category keeps in step)."""
    rows = await conn.execute(
        select(preferences.c.user_id, preferences.c.name).where(
            preferences.c.category == FAVORITE_CHANNEL, preferences.c.value == "true"
        )
    )
    return {(r.user_id, r.name) for r in rows}


def _post(
    root: Row[Any],
    usernames: Mapping[str, str],
    extras: tuple[ByPost, ByPost, ByPost, ByPost],
    with_files: bool,
    attachments: list[str],
) -> Obj | None:
    """A root's line body: its replies, and reactions, files and saved marks of each."""
    replies, *per_post = extras
    body = _post_body(root, usernames, per_post, with_files, attachments)
    if body is None:
        return None
    threaded = [
        b
        for r in replies.get(root.id, [])
        if (b := _post_body(r, usernames, per_post, with_files, attachments)) is not None
    ]
    if threaded:
        body["replies"] = threaded
    return body


def _post_body(
    p: Row[Any],
    usernames: Mapping[str, str],
    per_post: Sequence[ByPost],
    with_files: bool,
    attachments: list[str],
) -> Obj | None:
    reacts, infos, flags = per_post
    if p.user_id not in usernames:
        return None  # a bot's post
    body: Obj = {"user": usernames[p.user_id], "message": p.message, "create_at": p.create_at}
    if p.edit_at:
        body["edit_at"] = p.edit_at
    if p.type:
        body["type"] = p.type
    props = {k: v for k, v in (p.props or {}).items() if k != "deleteBy"}
    if props:
        body["props"] = props
    if p.is_pinned:
        body["is_pinned"] = True
    found = [
        {"user": usernames[r.user_id], "emoji_name": r.emoji_name, "create_at": r.create_at}
        for r in reacts.get(p.id, [])
        if r.user_id in usernames
    ]
    if found:
        body["reactions"] = found
    flagged = sorted(usernames[f.user_id] for f in flags.get(p.id, []) if f.user_id in usernames)
    if flagged:
        body["flagged_by"] = flagged
    if with_files and infos.get(p.id):
        body["attachments"] = [{"path": f"{DATA_DIR}/{f.path}"} for f in infos[p.id]]
        attachments.extend(f.path for f in infos[p.id])
    return body
