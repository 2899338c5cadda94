"""Users: creation (the first becomes system admin), lookup, patch, search and bots."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, String, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.batching import Batcher
from hubbub.cluster.events import Broadcast, Event, EventPublisher
from hubbub.config import Settings
from hubbub.errors import AppError, not_found
from hubbub.ids import new_id, now_ms
from hubbub.services.passwords import check_password, hash_password
from hubbub.store.db import Database
from hubbub.store.tables import bots, channel_members, channels, systems, users

USERNAME_RE = re.compile(r"^[a-z][a-z0-9.\-_]{2,21}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
RESERVED_USERNAMES = {"all", "channel", "here", "matterbot", "system", "mattermost"}

DEFAULT_NOTIFY_PROPS = {
    "email": "true",
    "push": "mention",
    "desktop": "mention",
    "desktop_sound": "true",
    "mention_keys": "",
    "channel": "true",
    "first_name": "false",
    "push_status": "away",
    "comments": "never",
}
DEFAULT_TIMEZONE = {"useAutomaticTimezone": "true", "automaticTimezone": "", "manualTimezone": ""}
# Built once (a constant statement's cache key is memoized): the apps look users up by id all
# the time, a page of posts' authors or a typist at a time.
_USER_BY_ID = select(users).where(users.c.id == bindparam("p_id", type_=String))
_USERS_BY_IDS = select(users).where(users.c.id.in_(bindparam("p_ids", expanding=True)))
_USERS_BY_IDS_SINCE = _USERS_BY_IDS.where(users.c.update_at > bindparam("p_since"))
PATCHABLE = ("username", "nickname", "first_name", "last_name", "position", "email", "locale")


@dataclass(frozen=True)
class UserPatch:
    """What `PUT /users/{id}/patch` (and the full update) may change: a field left None stays
    as it is. The route builds it from the request body (`api/users.py`)."""

    username: str | None = None
    nickname: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    position: str | None = None
    email: str | None = None
    locale: str | None = None
    props: dict[str, str] | None = None
    notify_props: dict[str, str] | None = None
    timezone: dict[str, str] | None = None

    def changes(self) -> dict[str, Any]:
        """The fields given, in declaration order."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def user_json(row: Row[Any] | Mapping[str, Any]) -> dict[str, Any]:
    """A sanitized User in Mattermost's shape (no password, no auth data, no MFA secret)."""
    u = row._mapping if isinstance(row, Row) else row
    data: dict[str, Any] = {
        "id": u["id"],
        "create_at": u["create_at"],
        "update_at": u["update_at"],
        "delete_at": u["delete_at"],
        "username": u["username"],
        "auth_service": u["auth_service"],
        "email": u["email"],
        "email_verified": u["email_verified"],
        "nickname": u["nickname"],
        "first_name": u["first_name"],
        "last_name": u["last_name"],
        "position": u["position"],
        "roles": u["roles"],
        "props": u["props"] or {},
        "notify_props": u["notify_props"] or {},
        "last_password_update": u["last_password_update"],
        "last_picture_update": u["last_picture_update"],
        "locale": u["locale"],
        "timezone": u["timezone"] or DEFAULT_TIMEZONE,
        "disable_welcome_email": False,
    }
    if u["is_bot"]:
        data["is_bot"] = True
    if u["last_activity_at"]:
        data["last_activity_at"] = u["last_activity_at"]
    if u["mfa_active"]:
        data["mfa_active"] = True
    return data


def validate_username(username: object) -> str:
    if not isinstance(username, str) or not USERNAME_RE.match(username):
        raise AppError(
            "model.user.is_valid.username.app_error",
            "Username must begin with a letter and contain between 3 and 22 lowercase characters "
            "made up of numbers, letters, and the symbols '.', '-', and '_'.",
            400,
        )
    if username in RESERVED_USERNAMES:
        raise AppError(
            "app.user.save.username_reserved.app_error", "This username is reserved.", 400
        )
    return username


def validate_email(email: object) -> str:
    if not isinstance(email, str) or len(email) > 128 or not EMAIL_RE.match(email):
        raise AppError("model.user.is_valid.email.app_error", "Invalid email.", 400)
    return email.lower()


class UsersService:
    def __init__(
        self, db: Database, settings: Settings, events: EventPublisher | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.events = events
        # SQLite (one node, no replica): the reads by ids that arrive together share one
        # statement, as the statuses' do (`StatusesService`): the web app asks for every user a
        # `typing` or `posted` event names that it does not know yet.
        self._by_ids: Batcher[str, None, Row[Any] | None] | None = (
            Batcher(self._read_many, None) if db.is_sqlite else None
        )

    async def _publish(self, conn: AsyncConnection, event: str, data: dict[str, Any]) -> None:
        # Mattermost sends new_user and user_updated to everyone connected.
        if self.events is not None:
            await self.events.publish(Event(event, data, Broadcast()), conn)

    def validate_password(self, password: object) -> str:
        return check_password(password, self.settings.PasswordSettings)

    async def set_password(self, user_id: str, password: object) -> None:
        """Checks `password` against `PasswordSettings`, stores its hash, and clears the failed
        login count (as Mattermost's `UpdatePassword`)."""
        hashed = await hash_password(self.validate_password(password))
        async with self.db.write() as conn:
            row = await self.get_row(user_id, conn)
            if row.is_bot:
                raise AppError(
                    "api.user.update_password.valid_account.app_error",
                    "Bots have no password.",
                    400,
                )
            now = now_ms()
            await conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(password=hashed, last_password_update=now, update_at=now, failed_attempts=0)
            )

    async def count(self) -> int:
        async with self.db.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())

    async def create(
        self,
        *,
        email: object,
        username: object,
        password: object | None,
        first_name: str = "",
        last_name: str = "",
        nickname: str = "",
        position: str = "",
        locale: str = "en",
        system_admin: bool = False,
        first_becomes_admin: bool = False,
        is_bot: bool = False,
    ) -> dict[str, Any]:
        """Creates a user. With `first_becomes_admin`, the very first account is a system admin."""
        username = validate_username(username)
        email = validate_email(email)
        hashed = ""
        if password is not None or not is_bot:
            hashed = await hash_password(self.validate_password(password))
        now = now_ms()
        row = {
            "id": new_id(),
            "create_at": now,
            "update_at": now,
            "delete_at": 0,
            "username": username,
            "password": hashed,
            "auth_service": "",
            "auth_data": None,
            "email": email,
            "email_verified": is_bot,
            "nickname": nickname,
            "first_name": first_name,
            "last_name": last_name,
            "position": position,
            "roles": "system_user",
            "props": {},
            "notify_props": dict(DEFAULT_NOTIFY_PROPS),
            "timezone": dict(DEFAULT_TIMEZONE),
            "last_password_update": now if hashed else 0,
            "last_picture_update": 0,
            "failed_attempts": 0,
            "locale": locale or "en",
            "mfa_active": False,
            "mfa_secret": "",
            "mfa_used_timestamps": "",
            "is_bot": is_bot,
            "last_activity_at": 0,
            "last_login": 0,
        }
        try:
            async with self.db.write() as conn:
                await self._ensure_unique(conn, username, email)
                if system_admin or (first_becomes_admin and await self._claim_first_admin(conn)):
                    row["roles"] = "system_user system_admin"
                await conn.execute(insert(users).values(**row))
                await self._publish(conn, "new_user", {"user_id": row["id"]})
        except IntegrityError:
            raise AppError(
                "app.user.save.existing.app_error", "An account with that name already exists.", 400
            ) from None
        return user_json(row)

    @staticmethod
    async def _ensure_unique(conn: AsyncConnection, username: str, email: str) -> None:
        found = (
            await conn.execute(
                select(users.c.username, users.c.email).where(
                    or_(users.c.username == username, users.c.email == email)
                )
            )
        ).first()
        if found is None:
            return
        if found.username == username:
            raise AppError(
                "app.user.save.username_exists.app_error",
                "An account with that username already exists.",
                400,
            )
        raise AppError(
            "app.user.save.email_exists.app_error",
            "An account with that email already exists.",
            400,
        )

    @staticmethod
    async def _claim_first_admin(conn: AsyncConnection) -> bool:
        """True exactly once per database: for the first user who signs up."""
        humans = (
            await conn.execute(select(func.count()).select_from(users).where(~users.c.is_bot))
        ).scalar_one()
        if humans:
            return False
        stmt = insert(systems).values(name="FirstAdminCreated", value="true")
        try:
            async with conn.begin_nested():
                await conn.execute(stmt)
        except IntegrityError:
            return False
        return True

    async def get_row(self, user_id: str, conn: AsyncConnection | None = None) -> Row[Any]:
        if conn is None:
            async with self.db.read() as c:
                return await self.get_row(user_id, c)
        row = (await conn.execute(_USER_BY_ID, {"p_id": user_id})).first()
        if row is None:
            raise not_found("user", "app.user.missing_account.const")
        return row

    async def get(self, user_id: str) -> dict[str, Any]:
        return user_json(await self.get_row(user_id))

    async def get_by_username(self, username: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            row = (await conn.execute(select(users).where(users.c.username == username))).first()
        if row is None:
            raise not_found("user", "app.user.missing_account.const")
        return user_json(row)

    async def get_by_email(self, email: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            row = (await conn.execute(select(users).where(users.c.email == email.lower()))).first()
        if row is None:
            raise not_found("user", "app.user.missing_account.const")
        return user_json(row)

    async def get_many(self, user_ids: Iterable[str], since: int = 0) -> list[dict[str, Any]]:
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return []
        if self._by_ids is not None:
            found = await self._by_ids.submit_many(ids, None)
            return [
                user_json(row)
                for row in found
                if row is not None and (not since or row.update_at > since)
            ]
        async with self.db.read() as conn:
            if since:
                result = await conn.execute(_USERS_BY_IDS_SINCE, {"p_ids": ids, "p_since": since})
            else:
                result = await conn.execute(_USERS_BY_IDS, {"p_ids": ids})
            rows = result.all()
        return [user_json(r) for r in rows]

    async def _read_many(self, batch: dict[str, None]) -> dict[str, Row[Any]]:
        async with self.db.read() as conn:
            rows = (await conn.execute(_USERS_BY_IDS, {"p_ids": list(batch)})).all()
        return {r.id: r for r in rows}

    async def in_group_channels(
        self, user_id: str, channel_ids: Iterable[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """The members of each of these group channels that `user_id` is in (the caller
        included), by channel; other ids (not a group channel, not the caller's) are left out,
        as Mattermost's `POST /users/group_channels` does."""
        ids = list(dict.fromkeys(channel_ids))
        mine = (
            select(channel_members.c.channel_id)
            .join(channels, channels.c.id == channel_members.c.channel_id)
            .where(
                channel_members.c.user_id == user_id,
                channel_members.c.channel_id.in_(ids),
                channels.c.type == "G",
            )
        )
        query = (
            select(users, channel_members.c.channel_id.label("group_channel_id"))
            .join(channel_members, channel_members.c.user_id == users.c.id)
            .where(channel_members.c.channel_id.in_(mine))
            .order_by(channel_members.c.channel_id, users.c.username)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        out: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            out.setdefault(row.group_channel_id, []).append(user_json(row))
        return out

    async def get_by_usernames(self, usernames: Iterable[str]) -> list[dict[str, Any]]:
        names = list(dict.fromkeys(usernames))
        if not names:
            return []
        async with self.db.read() as conn:
            rows = (await conn.execute(select(users).where(users.c.username.in_(names)))).all()
        return [user_json(r) for r in rows]

    async def list_page(
        self, page: int, per_page: int, ids: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        query = select(users).where(users.c.delete_at == 0).order_by(users.c.username)
        if ids is not None:
            query = query.where(users.c.id.in_(list(ids)))
        query = query.offset(page * per_page).limit(per_page)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [user_json(r) for r in rows]

    async def search(
        self, term: str, limit: int, ids: Iterable[str] | None = None, allow_inactive: bool = False
    ) -> list[dict[str, Any]]:
        """Users whose username, names, nickname or email start with `term` (case-insensitive)."""
        term = term.strip().lstrip("@").lower()
        like = _escape_like(term) + "%"
        query = select(users).order_by(users.c.username).limit(limit)
        if term:
            cols = (
                users.c.username,
                users.c.first_name,
                users.c.last_name,
                users.c.nickname,
                users.c.email,
            )
            query = query.where(or_(*(func.lower(c).like(like, escape="\\") for c in cols)))
        if not allow_inactive:
            query = query.where(users.c.delete_at == 0)
        if ids is not None:
            query = query.where(users.c.id.in_(list(ids)))
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [user_json(r) for r in rows]

    async def patch(self, user_id: str, patch: UserPatch) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, value in patch.changes().items():
            if key == "username":
                value = validate_username(value)
            elif key == "email":
                value = validate_email(value)
            values[key] = value
        try:
            async with self.db.write() as conn:
                current = await self.get_row(user_id, conn)
                if "username" in values and values["username"] != current.username:
                    await self._ensure_unique(conn, values["username"], "\x00")
                if "email" in values and values["email"] != current.email:
                    await self._ensure_unique(conn, "\x00", values["email"])
                if "notify_props" in values:
                    values["notify_props"] = {**current.notify_props, **values["notify_props"]}
                values["update_at"] = now_ms()
                await conn.execute(update(users).where(users.c.id == user_id).values(**values))
                row = await self.get_row(user_id, conn)
                await self._publish(conn, "user_updated", {"user": user_json(row)})
        except IntegrityError:
            raise AppError(
                "app.user.save.existing.app_error", "An account with that name already exists.", 400
            ) from None
        return user_json(row)

    async def set_roles(self, user_id: str, roles: str) -> dict[str, Any]:
        """Stores the user's system roles (checked by the caller against the role catalogue)."""
        async with self.db.write() as conn:
            await self.get_row(user_id, conn)
            await conn.execute(
                update(users).where(users.c.id == user_id).values(roles=roles, update_at=now_ms())
            )
            self.db.affects(conn, user_id)
            updated = user_json(await self.get_row(user_id, conn))
            await self._publish(conn, "user_updated", {"user": updated})
            return updated

    async def set_active(self, user_id: str, active: bool) -> None:
        async with self.db.write() as conn:
            await self.get_row(user_id, conn)
            now = now_ms()
            await conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(delete_at=0 if active else now, update_at=now)
            )
            if not active:
                self.db.affects(conn, user_id)

    async def create_bot(
        self, owner_id: str, username: object, display_name: str, description: str
    ) -> dict[str, Any]:
        user = await self.create(
            email=f"{username}@localhost" if isinstance(username, str) else username,
            username=username,
            password=None,
            first_name=display_name,
            is_bot=True,
        )
        now = now_ms()
        async with self.db.write() as conn:
            await conn.execute(
                insert(bots).values(
                    user_id=user["id"],
                    description=description,
                    owner_id=owner_id,
                    create_at=now,
                    update_at=now,
                    delete_at=0,
                )
            )
        return bot_json(user, owner_id, description, now)

    async def get_bot(self, bot_user_id: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(bots, users.c.username, users.c.first_name)
                    .join(users, users.c.id == bots.c.user_id)
                    .where(bots.c.user_id == bot_user_id)
                )
            ).first()
        if row is None:
            raise not_found("bot", "store.sql_bot.get.missing.app_error")
        return {
            "user_id": row.user_id,
            "username": row.username,
            "display_name": row.first_name,
            "description": row.description,
            "owner_id": row.owner_id,
            "create_at": row.create_at,
            "update_at": row.update_at,
            "delete_at": row.delete_at,
        }

    async def list_bots(
        self, page: int, per_page: int, owner_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Bots in creation order; only those `owner_id` owns when given."""
        query = select(bots.c.user_id).order_by(bots.c.create_at)
        if owner_id is not None:
            query = query.where(bots.c.owner_id == owner_id)
        async with self.db.read() as conn:
            rows = (await conn.execute(query.offset(page * per_page).limit(per_page))).all()
        return [await self.get_bot(r.user_id) for r in rows]


def bot_json(user: Mapping[str, Any], owner_id: str, description: str, now: int) -> dict[str, Any]:
    return {
        "user_id": user["id"],
        "username": user["username"],
        "display_name": user["first_name"],
        "description": description,
        "owner_id": owner_id,
        "create_at": now,
        "update_at": now,
        "delete_at": 0,
    }


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
