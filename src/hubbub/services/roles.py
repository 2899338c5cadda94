"""Roles: Mattermost's built-in roles, readable by every client and patchable by admins.

The definitions come from `role_catalog`. The first read on a database inserts a row for each
built-in role that has none (its id, timestamps and flags); a row whose `permissions` is NULL
follows the catalog of the running version, so an upgrade that adds a permission to a default
role reaches servers whose admins never changed that role. A patch stores the full list.

Permission checks read roles on every request, so a node keeps them in memory. A patch, once
committed, is announced on the cluster bus (`RolesChanged`); every node, the patching one
included, drops its copy and reads the roles again on the next check, so a patch changes what
the API allows on every node at once. `CACHE_SECONDS` only bounds how long a node could keep a
stale copy if it missed the message (Redis unreachable at that moment). A reload that was under
way when the message arrived is used once but not kept.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hubbub.cluster.bus import BusMessage, ClusterBus
from hubbub.cluster.events import Broadcast, Event, EventPublisher
from hubbub.errors import AppError
from hubbub.ids import new_id, now_ms
from hubbub.services.role_catalog import BUILT_IN_ROLES, KNOWN_PERMISSIONS
from hubbub.store.db import Database
from hubbub.store.tables import roles

CACHE_SECONDS = 60.0
# Mattermost's `NewSystemRoleIDs`: assignable only with a licence.
LICENSED_SYSTEM_ROLES = frozenset(
    {
        "system_user_manager",
        "system_read_only_admin",
        "system_manager",
        "system_shared_channel_manager",
    }
)
MAX_ROLE_NAME = 64
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


@dataclass(frozen=True, slots=True)
class Role:
    id: str
    name: str
    display_name: str
    description: str
    create_at: int
    update_at: int
    delete_at: int
    permissions: tuple[str, ...]
    scheme_managed: bool
    built_in: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "display_name": self.display_name,
            "description": self.description,
            "create_at": self.create_at,
            "update_at": self.update_at,
            "delete_at": self.delete_at,
            "permissions": list(self.permissions),
            "scheme_managed": self.scheme_managed,
            "built_in": self.built_in,
        }


def is_valid_role_name(name: object) -> bool:
    """Mattermost's `IsValidRoleName`: 1 to 64 characters of `a-z`, `0-9` and `_`."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_ROLE_NAME
        and all(c in _NAME_CHARS for c in name)
    )


def check_user_roles(roles: str) -> list[str]:
    """Mattermost's `IsValidUserRoles` and the licence rule of `PUT /users/{id}/roles`: valid
    role names, not `system_admin` alone, and none of the roles that need an Enterprise licence
    (`system_manager`, ...; hubbub has none). Returns the names."""
    names = roles.split()
    if not all(is_valid_role_name(n) for n in names) or names == ["system_admin"]:
        raise AppError("api.context.invalid_param.app_error", "Invalid or missing roles.", 400)
    if any(n in LICENSED_SYSTEM_ROLES for n in names):
        raise AppError(
            "api.user.update_user_roles.license.app_error",
            "Assigning this role needs a licence with custom permission schemes.",
            400,
        )
    return names


def _from_row(row: Any) -> Role:
    stored = row.permissions
    if stored is None:
        default = BUILT_IN_ROLES.get(row.name)
        permissions = default.permissions if default is not None else ()
    else:
        permissions = tuple(stored.split())
    return Role(
        id=row.id,
        name=row.name,
        display_name=row.display_name,
        description=row.description,
        create_at=row.create_at,
        update_at=row.update_at,
        delete_at=row.delete_at,
        permissions=permissions,
        scheme_managed=bool(row.scheme_managed),
        built_in=bool(row.built_in),
    )


def _role_not_found(by_name: bool) -> AppError:
    if by_name:
        return AppError("app.role.get_by_name.app_error", "Unable to get role.", 404)
    return AppError("app.role.get.app_error", "Unable to get role.", 404)


@dataclass(frozen=True)
class RolesChanged(BusMessage, kind="roles_changed"):
    """A role's permissions changed: every node drops its cached roles."""

    role_names: list[str]


class RolesService:
    def __init__(self, db: Database, events: EventPublisher, bus: ClusterBus) -> None:
        self.db = db
        self.events = events
        self.bus = bus
        self._by_name: dict[str, Role] = {}
        self._loaded_at = -CACHE_SECONDS
        self._generation = 0  # bumped by every invalidation
        self._seeded = False
        self._lock = asyncio.Lock()
        bus.subscribe(RolesChanged, self._on_changed)

    def invalidate(self) -> None:
        """Forget the cached roles: the next check reads them again."""
        self._generation += 1
        self._loaded_at = -CACHE_SECONDS

    async def _on_changed(self, message: RolesChanged) -> None:
        self.invalidate()

    # Reading

    async def all(self) -> list[Role]:
        return sorted((await self._roles()).values(), key=lambda r: r.name)

    async def by_name(self, name: str) -> Role:
        role = (await self._roles()).get(name)
        if role is None:
            raise _role_not_found(by_name=True)
        return role

    async def by_names(self, names: Iterable[str]) -> list[Role]:
        """The roles that exist among `names`, in the order asked; unknown names are skipped."""
        known = await self._roles()
        return [known[n] for n in dict.fromkeys(names) if n in known]

    async def by_id(self, role_id: str) -> Role:
        for role in (await self._roles()).values():
            if role.id == role_id:
                return role
        raise _role_not_found(by_name=False)

    async def permissions_of(self, names: Iterable[str]) -> frozenset[str]:
        """Every permission the named roles grant together (unknown names grant nothing)."""
        known = await self._roles()
        granted: set[str] = set()
        for name in names:
            role = known.get(name)
            if role is not None and not role.delete_at:
                granted.update(role.permissions)
        return frozenset(granted)

    async def require_exist(self, names: Iterable[str]) -> None:
        """Mattermost's `CheckRolesExist`: 400 naming the first role that does not exist."""
        known = await self._roles()
        for name in names:
            if name not in known:
                raise AppError(
                    "app.role.check_roles_exist.role_not_found",
                    "The provided role does not exist.",
                    400,
                    detailed_error=f"role={name}",
                )

    # Writing

    async def patch(self, role: Role, permissions: Sequence[str]) -> Role:
        """Replaces the role's permissions; every client hears `role_updated`."""
        unknown = [p for p in permissions if p not in KNOWN_PERMISSIONS]
        if unknown:
            raise AppError(
                "app.role.save.invalid_role.app_error",
                "The role was not valid.",
                400,
                detailed_error=f"unknown permissions: {' '.join(unknown)}",
            )
        kept = tuple(dict.fromkeys(permissions))
        now = now_ms()
        async with self.db.write() as conn:
            await conn.execute(
                update(roles)
                .where(roles.c.id == role.id)
                .values(permissions=" ".join(kept), update_at=now)
            )
            patched = replace(role, permissions=kept, update_at=now)
            await self.events.publish(
                Event(
                    "role_updated", {"role": orjson.dumps(patched.to_json()).decode()}, Broadcast()
                ),
                conn,
            )
        self.invalidate()
        await self.bus.publish(RolesChanged([role.name]))
        return patched

    # The cache and the seeding of built-in roles

    async def _roles(self) -> dict[str, Role]:
        if time.monotonic() - self._loaded_at < CACHE_SECONDS:
            return self._by_name
        async with self._lock:
            if time.monotonic() - self._loaded_at >= CACHE_SECONDS:
                if not self._seeded:
                    await self._seed()
                generation = self._generation
                # From the primary: a lagging replica's roles would be kept CACHE_SECONDS.
                async with self.db.read_primary() as conn:
                    rows = (await conn.execute(select(roles))).all()
                loaded = {row.name: _from_row(row) for row in rows}
                self._by_name = loaded
                if generation == self._generation:
                    self._loaded_at = time.monotonic()
                return loaded
        return self._by_name

    async def _seed(self) -> None:
        """Inserts the built-in roles this database lacks. Several nodes may do it at once: the
        unique role name keeps one row per role, whichever insert came first."""
        async with self.db.read_primary() as conn:
            present = set((await conn.execute(select(roles.c.name))).scalars())
        missing = [r for name, r in BUILT_IN_ROLES.items() if name not in present]
        if missing:
            now = now_ms()
            rows = [
                {
                    "id": new_id(),
                    "name": r.name,
                    "display_name": r.display_name,
                    "description": r.description,
                    "create_at": now,
                    "update_at": now,
                    "delete_at": 0,
                    "permissions": None,
                    "scheme_managed": r.scheme_managed,
                    "built_in": True,
                }
                for r in missing
            ]
            async with self.db.write() as conn:
                insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
                await conn.execute(insert(roles).on_conflict_do_nothing(), rows)
        self._seeded = True
