"""User preferences: any category/name/value a client stores, with Mattermost's rules.

The apps keep display settings, which DMs and GMs to show, recent emoji, tutorial state, the
theme and much more here. A preference is identified by (user, category, name); saving one
that exists replaces its value. Every save or delete reaches the user's other connections as
`preferences_changed` / `preferences_deleted`, whose `preferences` is a JSON-encoded list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.cluster.events import Broadcast, Event, EventPublisher
from hubbub.errors import AppError
from hubbub.ids import is_valid_id
from hubbub.store.db import Database
from hubbub.store.tables import preferences

MAX_CATEGORY = 32
MAX_NAME = 32
MAX_VALUE = 20_000  # characters, as Mattermost counts runes
THEME = "theme"
SIDEBAR_SETTINGS = "sidebar_settings"
LIMIT_VISIBLE_DMS_GMS = "limit_visible_dms_gms"
FAVORITE_CHANNEL = "favorite_channel"
FLAGGED_POST = "flagged_post"  # a saved post, as Mattermost keeps them
_COLOR = re.compile(r"^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$")
_THEME_FREE_KEYS = frozenset({"image", "type", "codeTheme"})


@dataclass(frozen=True, slots=True)
class Preference:
    user_id: str
    category: str
    name: str
    value: str

    def to_json(self) -> dict[str, str]:
        return {
            "user_id": self.user_id,
            "category": self.category,
            "name": self.name,
            "value": self.value,
        }


def _invalid(field: str, detail: str) -> AppError:
    return AppError(
        f"model.preference.is_valid.{field}.app_error",
        f"Invalid preference {field}.",
        400,
        detailed_error=detail,
    )


def parse_preferences(data: object) -> list[Preference]:
    """A JSON list of preference objects; anything else is Mattermost's invalid_param 400."""
    if not isinstance(data, list):
        raise AppError(
            "api.context.invalid_param.app_error", "Invalid or missing preferences parameter.", 400
        )
    result = []
    for item in data:
        if not isinstance(item, dict):
            raise AppError(
                "api.context.invalid_param.app_error",
                "Invalid or missing preferences parameter.",
                400,
            )
        fields = []
        for key in ("user_id", "category", "name", "value"):
            value = item.get(key, "")
            if not isinstance(value, str):
                raise AppError(
                    "api.context.invalid_param.app_error",
                    "Invalid or missing preferences parameter.",
                    400,
                )
            fields.append(value)
        result.append(Preference(*fields))
    return result


def validated(pref: Preference) -> Preference:
    """Mattermost's `Preference.IsValid`, then its theme clean-up (`PreUpdate`)."""
    if not is_valid_id(pref.user_id):
        raise _invalid("id", f"user_id={pref.user_id}")
    if not pref.category or len(pref.category) > MAX_CATEGORY:
        raise _invalid("category", f"category={pref.category}")
    if len(pref.name) > MAX_NAME:
        raise _invalid("name", f"name={pref.name}")
    if len(pref.value) > MAX_VALUE:
        raise _invalid("value", "value too long")
    if pref.category == SIDEBAR_SETTINGS and pref.name == LIMIT_VISIBLE_DMS_GMS:
        try:
            limit = int(pref.value)
        except ValueError:
            limit = 0
        if not 1 <= limit <= 40:
            raise _invalid("limit_visible_dms_gms", f"value={pref.value}")
    if pref.category == THEME:
        return Preference(pref.user_id, pref.category, pref.name, _clean_theme(pref.value))
    return pref


def _clean_theme(value: str) -> str:
    """A theme is a JSON object of strings; colours that are not `#rgb`/`#rrggbb` become white."""
    try:
        theme = orjson.loads(value)
    except orjson.JSONDecodeError:
        theme = None
    if not isinstance(theme, dict) or not all(isinstance(v, str) for v in theme.values()):
        raise _invalid("theme", "the theme is not a JSON object of strings")
    cleaned = {
        k: v if k in _THEME_FREE_KEYS or _COLOR.match(v) else "#ffffff" for k, v in theme.items()
    }
    return orjson.dumps(cleaned).decode()


def _row(row: Any) -> Preference:
    return Preference(row.user_id, row.category, row.name, row.value)


def _encode(prefs: Sequence[Preference]) -> str:
    return orjson.dumps([p.to_json() for p in prefs]).decode()


class PreferencesService:
    def __init__(self, db: Database, events: EventPublisher) -> None:
        self.db = db
        self.events = events

    async def get_all(self, user_id: str) -> list[Preference]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(preferences)
                .where(preferences.c.user_id == user_id)
                .order_by(preferences.c.category, preferences.c.name)
            )
            return [_row(r) for r in rows]

    async def get_category(self, user_id: str, category: str) -> list[Preference]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(preferences)
                .where(preferences.c.user_id == user_id, preferences.c.category == category)
                .order_by(preferences.c.name)
            )
            found = [_row(r) for r in rows]
        if not found:
            raise AppError(
                "api.preference.preferences_category.get.app_error",
                "Unable to find preferences for the given category.",
                404,
            )
        return found

    async def get_one(self, user_id: str, category: str, name: str) -> Preference:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(preferences).where(
                        preferences.c.user_id == user_id,
                        preferences.c.category == category,
                        preferences.c.name == name,
                    )
                )
            ).first()
        if row is None:
            # Mattermost answers a missing preference with 400, not 404.
            raise AppError("app.preference.get.app_error", "Unable to get the preference.", 400)
        return _row(row)

    async def save(self, user_id: str, prefs: Sequence[Preference]) -> None:
        """Stores every preference (replacing existing values) and tells the user's clients."""
        for pref in prefs:
            if pref.user_id != user_id:
                raise AppError(
                    "api.preference.update_preferences.set.app_error",
                    "Unable to set user preferences.",
                    403,
                )
        cleaned = _last_of_each([validated(p) for p in prefs])
        if not cleaned:
            return
        async with self.db.write() as conn:
            await self.upsert(conn, cleaned)
            await self.events.publish(
                Event(
                    "preferences_changed",
                    {"preferences": _encode(cleaned)},
                    Broadcast(user_id=user_id),
                ),
                conn,
            )

    async def delete(self, user_id: str, prefs: Sequence[Preference]) -> None:
        for pref in prefs:
            if pref.user_id != user_id:
                raise AppError(
                    "api.preference.delete_preferences.delete.app_error",
                    "Unable to delete user preferences.",
                    403,
                )
        if not prefs:
            return
        async with self.db.write() as conn:
            await self.remove(conn, user_id, [(p.category, p.name) for p in prefs])
            await self.events.publish(
                Event(
                    "preferences_deleted",
                    {"preferences": _encode(prefs)},
                    Broadcast(user_id=user_id),
                ),
                conn,
            )

    # Within a caller's transaction (the sidebar keeps `favorite_channel` in step).

    @staticmethod
    async def upsert(conn: AsyncConnection, prefs: Iterable[Preference]) -> None:
        """Inserts or replaces, atomically on both databases (`INSERT ... ON CONFLICT`)."""
        rows = [p.to_json() for p in prefs]
        if not rows:
            return
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        statement = insert(preferences)
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["user_id", "category", "name"],
                set_={"value": statement.excluded.value},
            ),
            rows,
        )

    @staticmethod
    async def remove(conn: AsyncConnection, user_id: str, keys: Iterable[tuple[str, str]]) -> None:
        conditions = [
            and_(preferences.c.category == category, preferences.c.name == name)
            for category, name in dict.fromkeys(keys)
        ]
        if conditions:
            await conn.execute(
                delete(preferences).where(preferences.c.user_id == user_id, or_(*conditions))
            )

    @staticmethod
    async def favorites(conn: AsyncConnection, user_id: str) -> set[str]:
        """The channel ids the user marked favorite the old way (`favorite_channel` = true)."""
        rows = await conn.execute(
            select(preferences.c.name).where(
                preferences.c.user_id == user_id,
                preferences.c.category == FAVORITE_CHANNEL,
                preferences.c.value == "true",
            )
        )
        return set(rows.scalars())


def _last_of_each(prefs: Iterable[Preference]) -> list[Preference]:
    """One preference per key, the last one given winning (as successive upserts would)."""
    by_key: dict[tuple[str, str, str], Preference] = {}
    for pref in prefs:
        by_key[(pref.user_id, pref.category, pref.name)] = pref
    return list(by_key.values())
