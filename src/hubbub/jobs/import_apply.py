"""Pass 2 of an import: writing validated lines, a batch of lines per transaction.

Teams, channels, users and their memberships, and direct channels are written line by line,
each looked up by its unique key (`bulk.py`) and updated, or created. Post lines wait in the
batch and are written together by `import_posts.PostWriter` before any other kind of line and
at the end of the batch; then the job's checkpoint is written in the same transaction. New
posts and files get ids derived from their keys, so a batch that is repeated (its transaction
rolled back when the node died, or the whole import run again) writes the same rows and the
same stored files, never a second copy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.config import Settings
from hubbub.files import FileBackend
from hubbub.ids import new_id
from hubbub.jobs.archive import Archive
from hubbub.jobs.bulk import members_of, parse, participants
from hubbub.jobs.import_posts import Incoming, PostWriter
from hubbub.jobs.worker import JobContext
from hubbub.services.channel_model import (
    DEFAULT_CHANNEL_NOTIFY_PROPS,
    DEFAULT_CHANNELS,
    TOWN_SQUARE,
    bump_member_version,
    dm_name,
    group_name,
    new_channel_row,
)
from hubbub.services.passwords import hash_password
from hubbub.services.preferences import FAVORITE_CHANNEL, Preference, PreferencesService
from hubbub.services.users import DEFAULT_NOTIFY_PROPS, DEFAULT_TIMEZONE
from hubbub.store.db import Database
from hubbub.store.tables import (
    channel_members,
    channels,
    team_members,
    teams,
    users,
)

Obj = dict[str, Any]
COUNTS = ("teams", "channels", "users", "posts", "reactions", "attachments")
# Mattermost's user notify props in the bulk format, and hubbub's names for them.
USER_NOTIFY = {
    "desktop": "desktop",
    "desktop_sound": "desktop_sound",
    "email": "email",
    "mobile": "push",
    "mobile_push_status": "push_status",
    "channel": "channel",
    "comments": "comments",
    "mention_keys": "mention_keys",
}
CHANNEL_NOTIFY = {"desktop": "desktop", "mobile": "push", "mark_unread": "mark_unread"}


class Importer:
    def __init__(
        self,
        db: Database,
        files: FileBackend,
        settings: Settings,
        archive: Archive,
        clock: Callable[[], int],
    ) -> None:
        self.db = db
        self.files = files
        self.settings = settings
        self.archive = archive
        self.clock = clock
        self.team_ids: dict[str, str] = {}
        self.channel_ids: dict[tuple[str, str], str] = {}
        self.user_ids: dict[str, str] = {}
        self.direct_ids: dict[tuple[str, ...], str] = {}
        self.counts = dict.fromkeys(COUNTS, 0)
        self.posts = PostWriter(files, archive, self._user_id, self.counts)
        self._pending: list[Incoming] = []

    async def run(self, ctx: JobContext, per_batch: int) -> None:
        done = int(ctx.data.get("imported_through_line", "0"))
        for key in COUNTS:
            self.counts[key] = int(ctx.data.get(f"imported_{key}", "0"))
        lines = self.archive.lines
        start = done
        while start < len(lines):
            ctx.check()
            end = min(len(lines), start + per_batch)
            async with self.db.write() as conn:
                for raw in lines[start:end]:
                    if raw.strip():
                        await self.apply(conn, parse(raw))
                await self._flush(conn)
                await ctx.checkpoint(
                    conn,
                    progress=10 + 90 * end // max(1, len(lines)),
                    imported_through_line=end,
                    **{f"imported_{k}": v for k, v in self.counts.items()},
                )
            start = end

    async def _flush(self, conn: AsyncConnection) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await self.posts.write(conn, pending)

    async def apply(self, conn: AsyncConnection, line: Obj) -> None:
        """Writes one line; post lines wait in a batch, written before any other line."""
        kind = line["type"]
        body = line.get(kind) or {}
        if kind == "post":
            team_id = await self._team_id(conn, body["team"])
            channel_id = await self._channel_id(conn, team_id, body["channel"])
            self._pending.append(Incoming(channel_id, body))
            return
        if kind == "direct_post":
            members = members_of(body, "channel_members")
            channel_id = await self._direct(conn, [{"username": m} for m in members])
            self._pending.append(Incoming(channel_id, body))
            return
        await self._flush(conn)
        if kind == "team":
            await self._team(conn, body)
        elif kind == "channel":
            await self._channel(conn, body)
        elif kind == "user":
            await self._user(conn, body)
        elif kind == "direct_channel":
            channel_id = await self._direct(conn, participants(body))
            for name in body.get("favorited_by") or []:
                await self._favorite(conn, await self._user_id(conn, name), channel_id, True)
            if body.get("header") is not None:
                await conn.execute(
                    update(channels)
                    .where(channels.c.id == channel_id)
                    .values(header=body["header"])
                )

    # Lookups (cached for the run: every batch that filled the caches committed, or the job
    # stopped)

    async def _team_id(self, conn: AsyncConnection, name: str) -> str:
        key = name.lower()
        if key not in self.team_ids:
            found = (await conn.execute(select(teams.c.id).where(teams.c.name == key))).scalar()
            assert found is not None, f"team {key} vanished after validation"
            self.team_ids[key] = str(found)
        return self.team_ids[key]

    async def _channel_id(self, conn: AsyncConnection, team_id: str, name: str) -> str:
        key = (team_id, name.lower())
        if key not in self.channel_ids:
            found = (
                await conn.execute(
                    select(channels.c.id).where(
                        channels.c.team_id == team_id, channels.c.name == key[1]
                    )
                )
            ).scalar()
            assert found is not None, f"channel {key[1]} vanished after validation"
            self.channel_ids[key] = str(found)
        return self.channel_ids[key]

    async def _user_id(self, conn: AsyncConnection, name: str) -> str:
        key = name.lower()
        if key not in self.user_ids:
            found = (await conn.execute(select(users.c.id).where(users.c.username == key))).scalar()
            assert found is not None, f"user {key} vanished after validation"
            self.user_ids[key] = str(found)
        return self.user_ids[key]

    # Teams and channels

    async def _team(self, conn: AsyncConnection, body: Obj) -> None:
        name = body["name"].lower()
        values: Obj = {"display_name": body["display_name"], "type": body["type"]}
        if body.get("description") is not None:
            values["description"] = body["description"]
        if body.get("allow_open_invite") is not None:
            values["allow_open_invite"] = body["allow_open_invite"]
        found = (await conn.execute(select(teams.c.id).where(teams.c.name == name))).scalar()
        now = self.clock()
        if found is not None:
            await conn.execute(
                update(teams).where(teams.c.id == found).values(update_at=now, **values)
            )
            self.team_ids[name] = str(found)
            return
        team_id = new_id()
        await conn.execute(
            insert(teams).values(
                id=team_id,
                create_at=now,
                update_at=now,
                delete_at=0,
                name=name,
                email="",
                invite_id=new_id(),
                company_name="",
                allowed_domains="",
                last_team_icon_update=0,
                **{"allow_open_invite": body["type"] == "O", **values},
            )
        )
        for channel_name, display_name in DEFAULT_CHANNELS:
            row = new_channel_row(
                team_id=team_id,
                type_="O",
                name=channel_name,
                display_name=display_name,
                creator_id="",
            )
            await conn.execute(insert(channels).values(**row))
        self.team_ids[name] = team_id
        self.counts["teams"] += 1

    async def _channel(self, conn: AsyncConnection, body: Obj) -> None:
        team_id = await self._team_id(conn, body["team"])
        name = body["name"].lower()
        values: Obj = {
            "display_name": body.get("display_name") or name,
            "type": body["type"],
        }
        for key in ("header", "purpose"):
            if body.get(key) is not None:
                values[key] = body[key]
        found = (
            await conn.execute(
                select(channels.c.id).where(channels.c.team_id == team_id, channels.c.name == name)
            )
        ).scalar()
        if found is not None:
            await conn.execute(
                update(channels)
                .where(channels.c.id == found)
                .values(update_at=self.clock(), **values)
            )
            self.channel_ids[(team_id, name)] = str(found)
            return
        row = new_channel_row(
            team_id=team_id,
            type_=values["type"],
            name=name,
            display_name=values["display_name"],
            creator_id="",
            header=values.get("header", ""),
            purpose=values.get("purpose", ""),
        )
        await conn.execute(insert(channels).values(**row))
        self.channel_ids[(team_id, name)] = row["id"]
        self.counts["channels"] += 1

    # Users and memberships

    async def _user(self, conn: AsyncConnection, body: Obj) -> None:
        username = body["username"].lower()
        values: Obj = {"email": body["email"].lower()}
        for key in ("nickname", "first_name", "last_name", "position", "locale"):
            if body.get(key) is not None:
                values[key] = body[key]
        if body.get("roles") is not None:
            values["roles"] = " ".join(
                ["system_user", *(["system_admin"] if "system_admin" in body["roles"] else [])]
            )
        if body.get("delete_at") is not None:
            values["delete_at"] = body["delete_at"]
        now = self.clock()
        if body.get("password") is not None:
            values["password"] = await hash_password(body["password"])
            values["last_password_update"] = now
        found = (
            await conn.execute(
                select(users.c.id, users.c.notify_props).where(users.c.username == username)
            )
        ).first()
        notify = dict(found.notify_props if found is not None else DEFAULT_NOTIFY_PROPS)
        for ours, theirs in USER_NOTIFY.items():
            given = (body.get("notify_props") or {}).get(ours)
            if isinstance(given, str):
                notify[theirs] = given
        values["notify_props"] = notify
        if found is not None:
            user_id = str(found.id)
            await conn.execute(
                update(users).where(users.c.id == user_id).values(update_at=now, **values)
            )
        else:
            user_id = new_id()
            await conn.execute(
                insert(users).values(
                    id=user_id,
                    create_at=now,
                    update_at=now,
                    username=username,
                    auth_service="",
                    auth_data=None,
                    email_verified=True,
                    props={},
                    timezone=dict(DEFAULT_TIMEZONE),
                    **{"roles": "system_user", "locale": "en", **values},
                )
            )
            self.counts["users"] += 1
        self.user_ids[username] = user_id
        for team in body.get("teams") or []:
            await self._team_member(conn, user_id, team)

    async def _team_member(self, conn: AsyncConnection, user_id: str, team: Obj) -> None:
        team_id = await self._team_id(conn, team["name"])
        admin = "team_admin" in (team.get("roles") or "").split()
        key = (team_members.c.team_id == team_id) & (team_members.c.user_id == user_id)
        found = (await conn.execute(select(team_members.c.delete_at).where(key))).first()
        if found is None:
            await conn.execute(
                insert(team_members).values(
                    team_id=team_id,
                    user_id=user_id,
                    roles="",
                    delete_at=0,
                    scheme_user=True,
                    scheme_admin=admin,
                    scheme_guest=False,
                    create_at=self.clock(),
                )
            )
        elif team.get("roles") is not None or found.delete_at:
            await conn.execute(
                update(team_members).where(key).values(scheme_admin=admin, delete_at=0)
            )
        memberships = {c["name"].lower(): c for c in team.get("channels") or []}
        # Everyone in a team is in its town square, as Mattermost's join does.
        town_square = self.channel_ids.get((team_id, TOWN_SQUARE))
        if town_square is None:
            town_square = (
                await conn.execute(
                    select(channels.c.id).where(
                        channels.c.team_id == team_id, channels.c.name == TOWN_SQUARE
                    )
                )
            ).scalar()
            if town_square is not None:
                self.channel_ids[(team_id, TOWN_SQUARE)] = str(town_square)
        if town_square is not None and TOWN_SQUARE not in memberships:
            memberships[TOWN_SQUARE] = {"name": TOWN_SQUARE}
        for name, membership in memberships.items():
            channel_id = await self._channel_id(conn, team_id, name)
            await self._channel_member(conn, channel_id, user_id, membership)

    async def _channel_member(
        self, conn: AsyncConnection, channel_id: str, user_id: str, given: Mapping[str, Any]
    ) -> None:
        key = (channel_members.c.channel_id == channel_id) & (channel_members.c.user_id == user_id)
        found = (await conn.execute(select(channel_members.c.notify_props).where(key))).first()
        notify = dict(found.notify_props if found is not None else DEFAULT_CHANNEL_NOTIFY_PROPS)
        for theirs, ours in CHANNEL_NOTIFY.items():
            value = (given.get("notify_props") or {}).get(theirs)
            if isinstance(value, str):
                notify[ours] = value
        values: Obj = {"notify_props": notify}
        for name in ("last_viewed_at", "msg_count", "msg_count_root", "mention_count"):
            if given.get(name) is not None:
                values[name] = given[name]
        if given.get("roles") is not None:
            values["scheme_admin"] = "channel_admin" in given["roles"].split()
        if given.get("favorite") is not None:
            await self._favorite(conn, user_id, channel_id, bool(given["favorite"]))
        if found is not None:
            if len(values) > 1 or notify != found.notify_props:
                await conn.execute(update(channel_members).where(key).values(**values))
            return
        await conn.execute(
            insert(channel_members).values(
                channel_id=channel_id,
                user_id=user_id,
                roles="",
                mention_count_root=0,
                urgent_mention_count=0,
                last_update_at=self.clock(),
                scheme_user=True,
                scheme_guest=False,
                **{
                    "last_viewed_at": 0,
                    "msg_count": 0,
                    "msg_count_root": 0,
                    "mention_count": 0,
                    "scheme_admin": False,
                    **values,
                },
            )
        )
        await bump_member_version(conn, channel_id)

    @staticmethod
    async def _favorite(conn: AsyncConnection, user_id: str, channel_id: str, on: bool) -> None:
        """A favorite as Mattermost's bulk import keeps it: the `favorite_channel` preference
        (the sidebar's Favorites category is seeded from it when the user's categories in a
        team are first made)."""
        if on:
            await PreferencesService.upsert(
                conn, [Preference(user_id, FAVORITE_CHANNEL, channel_id, "true")]
            )
        else:
            await PreferencesService.remove(conn, user_id, [(FAVORITE_CHANNEL, channel_id)])

    async def _direct(self, conn: AsyncConnection, members: list[Obj]) -> str:
        """Finds or creates the direct or group channel of `members` (participants: a username
        and, from a newer export, that member's state) and makes them its members."""
        usernames = [m["username"] for m in members]
        cached = self.direct_ids.get(tuple(sorted(usernames)))
        if cached is not None and all(len(m) == 1 for m in members):
            return cached  # a direct post's channel, already made
        ids = sorted({await self._user_id(conn, u) for u in usernames})
        if len(ids) <= 2:
            type_, name, display_name = "D", dm_name(ids[0], ids[-1]), ""
        else:
            type_, name = "G", group_name(ids)
            display_name = ", ".join(sorted(set(usernames)))
            if len(display_name) > 64:
                display_name = display_name[:61] + "..."
        found = (
            await conn.execute(
                select(channels.c.id).where(channels.c.team_id == "", channels.c.name == name)
            )
        ).scalar()
        if found is not None:
            channel_id = str(found)
        else:
            row = new_channel_row(
                team_id="", type_=type_, name=name, display_name=display_name, creator_id=ids[0]
            )
            await conn.execute(insert(channels).values(**row))
            channel_id = row["id"]
            self.counts["channels"] += 1
        for member in {m["username"]: m for m in members}.values():
            user_id = await self._user_id(conn, member["username"])
            state = {k: v for k, v in member.items() if k != "username"}
            await self._channel_member(conn, channel_id, user_id, state)
        self.direct_ids[tuple(sorted(usernames))] = channel_id
        return channel_id
