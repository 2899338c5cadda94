"""Sidebar categories: how a user groups their channels, per team, as the apps show them.

Each user has, per team, three default categories (Favorites, Channels, Direct Messages, with
ids `<type>_<user_id>_<team_id>`) created the first time the sidebar is read, plus any custom
ones they make. A channel is placed in a category by a `sidebar_channels` row. Membership is
never copied here: when the sidebar is read, every channel the user belongs to that no category
of the team holds is shown in the team's Channels category (public and private channels of that
team) or Direct Messages (DMs and GMs, in every team). So a channel joined through any path
appears at once, a channel left disappears, and deleting a custom category puts its channels
back where they came from, without any other service having to tell the sidebar.

Moving a channel into a category takes it out of the team's other categories. Favorites stay in
step with the older `favorite_channel` preferences, which some clients still read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.cluster.events import Broadcast, Event, EventPublisher
from hubbub.errors import AppError
from hubbub.ids import is_valid_id, new_id
from hubbub.services.preferences import FAVORITE_CHANNEL, Preference, PreferencesService
from hubbub.store.db import Database
from hubbub.store.tables import (
    channel_members,
    channels,
    sidebar_categories,
    sidebar_channels,
    team_members,
    teams,
)

FAVORITES, CHANNELS, DIRECT_MESSAGES, CUSTOM = "favorites", "channels", "direct_messages", "custom"
SORTINGS = frozenset({"", "manual", "recent", "alpha"})
SORT_STEP = 10
MAX_DISPLAY_NAME = 64
# (type, display name, sort order, sorting) of the categories every user has in every team.
DEFAULTS = (
    (FAVORITES, "Favorites", 0, ""),
    (CHANNELS, "Channels", SORT_STEP, ""),
    (DIRECT_MESSAGES, "Direct Messages", 2 * SORT_STEP, "recent"),
)
_DEFAULT_ID = re.compile(r"(favorites|channels|direct_messages)_[a-z0-9]{26}_[a-z0-9]{26}")


def is_valid_category_id(value: str) -> bool:
    return is_valid_id(value) or bool(_DEFAULT_ID.fullmatch(value))


def default_category_id(kind: str, user_id: str, team_id: str) -> str:
    return f"{kind}_{user_id}_{team_id}"


def sidebar_error(status: int, detail: str = "") -> AppError:
    return AppError(
        "app.channel.sidebar_categories.app_error",
        "Unable to get or save the sidebar categories.",
        status,
        detailed_error=detail,
    )


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    user_id: str
    team_id: str
    sort_order: int
    sorting: str
    type: str
    display_name: str
    muted: bool
    collapsed: bool
    channel_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "team_id": self.team_id,
            "sort_order": self.sort_order,
            "sorting": self.sorting,
            "type": self.type,
            "display_name": self.display_name,
            "muted": self.muted,
            "collapsed": self.collapsed,
            "channel_ids": list(self.channel_ids),
        }


@dataclass(frozen=True, slots=True)
class CategoryUpdate:
    """What a client may change in a category; the rest is kept from the stored one."""

    id: str
    display_name: str
    sorting: str
    muted: bool
    collapsed: bool
    channel_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MemberChannel:
    id: str
    type: str
    team_id: str
    display_name: str
    delete_at: int


@dataclass
class Sidebar:
    categories: list[Category] = field(default_factory=list)

    @property
    def order(self) -> list[str]:
        return [c.id for c in self.categories]

    def to_json(self) -> dict[str, Any]:
        return {"categories": [c.to_json() for c in self.categories], "order": self.order}

    def get(self, category_id: str) -> Category | None:
        return next((c for c in self.categories if c.id == category_id), None)


def compose(
    rows: Sequence[Any], placed: Sequence[tuple[str, str]], members: Sequence[MemberChannel]
) -> Sidebar:
    """The sidebar as shown: `rows` are the team's categories in order, `placed` the
    (category_id, channel_id) rows in order, `members` the user's channels of the team and
    DMs/GMs. Channels the user left are dropped; each channel shows in one category only."""
    by_id = {m.id: m for m in members}
    seen: set[str] = set()
    stored: dict[str, list[str]] = {row.id: [] for row in rows}
    for category_id, channel_id in placed:
        if category_id in stored and channel_id in by_id and channel_id not in seen:
            stored[category_id].append(channel_id)
            seen.add(channel_id)
    loose = sorted(
        (m for m in members if m.id not in seen and not m.delete_at),
        key=lambda m: (m.display_name, m.id),
    )
    loose_by_kind = {
        CHANNELS: [m.id for m in loose if m.type in ("O", "P")],
        DIRECT_MESSAGES: [m.id for m in loose if m.type in ("D", "G")],
    }
    result = Sidebar()
    for row in rows:
        channel_ids = loose_by_kind.pop(row.type, []) + stored[row.id]
        result.categories.append(
            Category(
                id=row.id,
                user_id=row.user_id,
                team_id=row.team_id,
                sort_order=row.sort_order,
                sorting=row.sorting,
                type=row.type,
                display_name=row.display_name,
                muted=bool(row.muted),
                collapsed=bool(row.collapsed),
                channel_ids=tuple(channel_ids),
            )
        )
    return result


class SidebarService:
    def __init__(
        self, db: Database, events: EventPublisher, preferences: PreferencesService
    ) -> None:
        self.db = db
        self.events = events
        self.preferences = preferences

    # Reading

    async def sidebar(self, user_id: str, team_id: str) -> Sidebar:
        """The user's categories in the team, creating the default ones on first use. A user
        who is not an active member of the team has none (Mattermost answers an empty list)."""
        async with self.db.read() as conn:
            if not await _is_team_member(conn, user_id, team_id):
                return Sidebar()
            view = await self._view(conn, user_id, team_id)
        if {c.type for c in view.categories} >= {kind for kind, *_ in DEFAULTS}:
            return view
        async with self.db.write() as conn:
            await self._create_defaults(conn, user_id, team_id)
            return await self._view(conn, user_id, team_id)

    async def category(self, user_id: str, team_id: str, category_id: str) -> Category:
        found = (await self.sidebar(user_id, team_id)).get(category_id)
        if found is None:
            raise sidebar_error(404, f"category {category_id} not found")
        return found

    async def owner_of(self, category_id: str) -> tuple[str, str] | None:
        """(user_id, team_id) of a category, or None if there is no such category."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(sidebar_categories.c.user_id, sidebar_categories.c.team_id).where(
                        sidebar_categories.c.id == category_id
                    )
                )
            ).first()
        return None if row is None else (row.user_id, row.team_id)

    # Writing

    async def create(
        self,
        user_id: str,
        team_id: str,
        display_name: str,
        sorting: str,
        muted: bool,
        channel_ids: Sequence[str],
    ) -> Category:
        """A custom category, placed right after Favorites (or first if Favorites is not first),
        taking the given channels out of the team's other categories."""
        _check_name(display_name)
        _check_sorting(sorting)
        await self.sidebar(user_id, team_id)  # the defaults must exist to place it among them
        category_id = new_id()
        async with self.db.write() as conn:
            rows = await _category_rows(conn, user_id, team_id)
            if not rows:
                raise sidebar_error(404, "no categories: the user is not in the team")
            kept = _filter_channels(channel_ids, await _allowed_channels(conn, user_id, team_id))
            order = [r.id for r in rows]
            order.insert(1 if rows[0].type == FAVORITES else 0, category_id)
            await conn.execute(
                insert(sidebar_categories).values(
                    id=category_id,
                    user_id=user_id,
                    team_id=team_id,
                    sort_order=0,
                    sorting=sorting,
                    type=CUSTOM,
                    display_name=display_name,
                    muted=muted,
                    collapsed=False,
                )
            )
            await _place(conn, user_id, [r.id for r in rows], category_id, kept)
            await _renumber(conn, order)
            await self.events.publish(
                Event(
                    "sidebar_category_created",
                    {"category_id": category_id},
                    Broadcast(user_id=user_id, team_id=team_id),
                ),
                conn,
            )
            created = (await self._view(conn, user_id, team_id)).get(category_id)
        assert created is not None
        return created

    async def update(
        self, user_id: str, team_id: str, changes: Sequence[CategoryUpdate]
    ) -> list[Category]:
        """Applies `changes` (the client's full view of each category it sends). Only a custom
        category's name changes; a Direct Messages category keeps its channels and muting."""
        for change in changes:
            _check_sorting(change.sorting)
        await self.sidebar(user_id, team_id)
        async with self.db.write() as conn:
            rows = {r.id: r for r in await _category_rows(conn, user_id, team_id)}
            for change in changes:
                if change.id not in rows:
                    raise sidebar_error(404, f"category {change.id} not found")
                if rows[change.id].type == CUSTOM:
                    _check_name(change.display_name)
            allowed = await _allowed_channels(conn, user_id, team_id)
            favorites_before = (await self._view(conn, user_id, team_id)).get(
                default_category_id(FAVORITES, user_id, team_id)
            )
            placed: dict[str, list[str]] = {}
            taken: set[str] = set()
            for change in changes:
                row = rows[change.id]
                values: dict[str, Any] = {"sorting": change.sorting, "collapsed": change.collapsed}
                if row.type == CUSTOM:
                    values["display_name"] = change.display_name
                if row.type != DIRECT_MESSAGES:
                    values["muted"] = change.muted
                    kept = [
                        c for c in _filter_channels(change.channel_ids, allowed) if c not in taken
                    ]
                    taken.update(kept)
                    placed[change.id] = kept
                await conn.execute(
                    update(sidebar_categories)
                    .where(sidebar_categories.c.id == change.id)
                    .values(**values)
                )
            await conn.execute(
                delete(sidebar_channels).where(
                    sidebar_channels.c.user_id == user_id,
                    or_(
                        sidebar_channels.c.category_id.in_([c.id for c in changes]),
                        and_(
                            sidebar_channels.c.category_id.in_(list(rows)),
                            sidebar_channels.c.channel_id.in_(sorted(taken)),
                        ),
                    ),
                )
            )
            for category_id, kept in placed.items():
                await _insert_placements(conn, user_id, category_id, kept)
            await self._sync_favorites(conn, user_id, rows, placed, favorites_before)
            view = await self._view(conn, user_id, team_id)
            updated = [c for c in (view.get(change.id) for change in changes) if c is not None]
            await self.events.publish(
                Event(
                    "sidebar_category_updated",
                    {"updatedCategories": orjson.dumps([c.to_json() for c in updated]).decode()},
                    Broadcast(user_id=user_id, team_id=team_id),
                ),
                conn,
            )
        return updated

    async def order(self, user_id: str, team_id: str) -> list[str]:
        return (await self.sidebar(user_id, team_id)).order

    async def set_order(self, user_id: str, team_id: str, order: Sequence[str]) -> list[str]:
        """Reorders the team's categories; `order` must name each of them exactly once."""
        await self.sidebar(user_id, team_id)
        async with self.db.write() as conn:
            existing = [r.id for r in await _category_rows(conn, user_id, team_id)]
            if len(order) != len(existing) or set(order) != set(existing):
                raise sidebar_error(
                    400, "the new order must list every category of the team exactly once"
                )
            await _renumber(conn, order)
            await self.events.publish(
                Event(
                    "sidebar_category_order_updated",
                    {"order": list(order)},
                    Broadcast(user_id=user_id, team_id=team_id),
                ),
                conn,
            )
        return list(order)

    async def delete(self, user_id: str, team_id: str, category_id: str) -> None:
        """Deletes a custom category; its channels go back to Channels or Direct Messages."""
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    select(sidebar_categories).where(
                        sidebar_categories.c.id == category_id,
                        sidebar_categories.c.user_id == user_id,
                        sidebar_categories.c.team_id == team_id,
                    )
                )
            ).first()
            if row is None:
                raise sidebar_error(404, f"category {category_id} not found")
            if row.type != CUSTOM:
                raise sidebar_error(400, "only custom categories can be deleted")
            await conn.execute(
                delete(sidebar_categories).where(sidebar_categories.c.id == category_id)
            )
            await conn.execute(
                delete(sidebar_channels).where(sidebar_channels.c.category_id == category_id)
            )
            await self.events.publish(
                Event(
                    "sidebar_category_deleted",
                    {"category_id": category_id},
                    Broadcast(user_id=user_id, team_id=team_id),
                ),
                conn,
            )

    # Internals

    async def _view(self, conn: AsyncConnection, user_id: str, team_id: str) -> Sidebar:
        rows = await _category_rows(conn, user_id, team_id)
        if not rows:
            return Sidebar()
        placed = await conn.execute(
            select(sidebar_channels.c.category_id, sidebar_channels.c.channel_id)
            .where(
                sidebar_channels.c.user_id == user_id,
                sidebar_channels.c.category_id.in_([r.id for r in rows]),
            )
            .order_by(sidebar_channels.c.sort_order, sidebar_channels.c.channel_id)
        )
        order = {r.id: i for i, r in enumerate(rows)}
        pairs = sorted(((p.category_id, p.channel_id) for p in placed), key=lambda p: order[p[0]])
        return compose(rows, pairs, await _member_channels(conn, user_id, team_id))

    async def _create_defaults(self, conn: AsyncConnection, user_id: str, team_id: str) -> None:
        """The default categories the user lacks in the team, Favorites seeded from the
        `favorite_channel` preferences. Ids are deterministic, so a concurrent creation (another
        request, another node) inserts nothing twice."""
        present = set(
            (
                await conn.execute(
                    select(sidebar_categories.c.type).where(
                        sidebar_categories.c.user_id == user_id,
                        sidebar_categories.c.team_id == team_id,
                    )
                )
            ).scalars()
        )
        dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        for kind, name, sort_order, sorting in DEFAULTS:
            if kind in present:
                continue
            category_id = default_category_id(kind, user_id, team_id)
            inserted = await conn.execute(
                dialect_insert(sidebar_categories)
                .values(
                    id=category_id,
                    user_id=user_id,
                    team_id=team_id,
                    sort_order=sort_order,
                    sorting=sorting,
                    type=kind,
                    display_name=name,
                    muted=False,
                    collapsed=False,
                )
                .on_conflict_do_nothing()
            )
            if kind == FAVORITES and inserted.rowcount:
                favorites = await self.preferences.favorites(conn, user_id)
                members = await _member_channels(conn, user_id, team_id)
                chosen = sorted(
                    (m for m in members if m.id in favorites), key=lambda m: (m.display_name, m.id)
                )
                await _insert_placements(conn, user_id, category_id, [m.id for m in chosen])

    async def _sync_favorites(
        self,
        conn: AsyncConnection,
        user_id: str,
        rows: dict[str, Any],
        placed: dict[str, list[str]],
        favorites_before: Category | None,
    ) -> None:
        """`favorite_channel` preferences follow the Favorites category."""
        remove: set[str] = set()
        add: list[str] = []
        for category_id, kept in placed.items():
            if rows[category_id].type == FAVORITES:
                remove.update(favorites_before.channel_ids if favorites_before else ())
                add = kept
            else:
                remove.update(kept)
        await self.preferences.remove(conn, user_id, ((FAVORITE_CHANNEL, c) for c in remove))
        await self.preferences.upsert(
            conn, (Preference(user_id, FAVORITE_CHANNEL, c, "true") for c in add)
        )


def _check_name(display_name: str) -> None:
    if not display_name.strip() or len(display_name) > MAX_DISPLAY_NAME:
        raise AppError(
            "api.context.invalid_param.app_error", "Invalid or missing category parameter.", 400
        )


def _check_sorting(sorting: str) -> None:
    if sorting not in SORTINGS:
        raise AppError(
            "api.context.invalid_param.app_error", "Invalid or missing category parameter.", 400
        )


def _filter_channels(channel_ids: Iterable[str], allowed: set[str]) -> list[str]:
    """The ids the user may put in the sidebar, once each, in the order given; others are
    dropped silently, as Mattermost does."""
    return [c for c in dict.fromkeys(channel_ids) if c in allowed]


async def _is_team_member(conn: AsyncConnection, user_id: str, team_id: str) -> bool:
    row = (
        await conn.execute(
            select(team_members.c.user_id)
            .join(teams, teams.c.id == team_members.c.team_id)
            .where(
                team_members.c.team_id == team_id,
                team_members.c.user_id == user_id,
                team_members.c.delete_at == 0,
                teams.c.delete_at == 0,
            )
        )
    ).first()
    return row is not None


async def _category_rows(conn: AsyncConnection, user_id: str, team_id: str) -> list[Any]:
    return list(
        (
            await conn.execute(
                select(sidebar_categories)
                .where(
                    sidebar_categories.c.user_id == user_id,
                    sidebar_categories.c.team_id == team_id,
                )
                .order_by(sidebar_categories.c.sort_order, sidebar_categories.c.id)
            )
        ).all()
    )


async def _member_channels(
    conn: AsyncConnection, user_id: str, team_id: str
) -> list[MemberChannel]:
    """The user's channels of the team and their DMs/GMs, archived ones included."""
    rows = await conn.execute(
        select(
            channels.c.id,
            channels.c.type,
            channels.c.team_id,
            channels.c.display_name,
            channels.c.delete_at,
        )
        .join(channel_members, channel_members.c.channel_id == channels.c.id)
        .where(
            channel_members.c.user_id == user_id,
            or_(channels.c.team_id == team_id, channels.c.type.in_(("D", "G"))),
        )
    )
    return [MemberChannel(r.id, r.type, r.team_id, r.display_name, r.delete_at) for r in rows]


async def _allowed_channels(conn: AsyncConnection, user_id: str, team_id: str) -> set[str]:
    return {m.id for m in await _member_channels(conn, user_id, team_id)}


async def _place(
    conn: AsyncConnection,
    user_id: str,
    team_categories: Sequence[str],
    category_id: str,
    channel_ids: Sequence[str],
) -> None:
    """Puts the channels in the category, taking them out of the team's other categories."""
    if not channel_ids:
        return
    await conn.execute(
        delete(sidebar_channels).where(
            sidebar_channels.c.user_id == user_id,
            sidebar_channels.c.category_id.in_(list(team_categories)),
            sidebar_channels.c.channel_id.in_(list(channel_ids)),
        )
    )
    await _insert_placements(conn, user_id, category_id, channel_ids)


async def _insert_placements(
    conn: AsyncConnection, user_id: str, category_id: str, channel_ids: Sequence[str]
) -> None:
    if channel_ids:
        await conn.execute(
            insert(sidebar_channels),
            [
                {
                    "channel_id": channel_id,
                    "user_id": user_id,
                    "category_id": category_id,
                    "sort_order": i * SORT_STEP,
                }
                for i, channel_id in enumerate(channel_ids)
            ],
        )


async def _renumber(conn: AsyncConnection, order: Sequence[str]) -> None:
    for i, category_id in enumerate(order):
        await conn.execute(
            update(sidebar_categories)
            .where(sidebar_categories.c.id == category_id)
            .values(sort_order=i * SORT_STEP)
        )
