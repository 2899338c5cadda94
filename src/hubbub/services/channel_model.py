"""Channel and ChannelMember rows: Mattermost's JSON shapes, name rules, and the writes that both
`TeamsService` (default channels on team creation and join) and `ChannelsService` make.

The writes here take an open transaction and never commit: the caller owns the transaction and
publishes its events on the same connection. Every membership change bumps the channel's
`member_version` in that transaction, so the realtime layer can tell a stale member list from a
current one (DESIGN §4 invariant 7).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.errors import AppError
from hubbub.ids import new_id, now_ms
from hubbub.store.tables import channel_members, channels

TOWN_SQUARE = "town-square"
OFF_TOPIC = "off-topic"
DEFAULT_CHANNELS = ((TOWN_SQUARE, "Town Square"), (OFF_TOPIC, "Off-Topic"))

CHANNEL_NAME_MAX = 64
CHANNEL_DISPLAY_NAME_MAX = 64
CHANNEL_HEADER_MAX = 1024
CHANNEL_PURPOSE_MAX = 250
GROUP_MIN_USERS = 3
GROUP_MAX_USERS = 8

# Mattermost's `IsValidChannelIdentifier`: a lowercase letter or digit, then letters, digits,
# '-' and '_'.
CHANNEL_NAME_RE = re.compile(r"^[a-z0-9]+([a-z\-_0-9]+|(__)?)[a-z0-9]*$")

DEFAULT_CHANNEL_NOTIFY_PROPS = {
    "desktop": "default",
    "mark_unread": "all",
    "push": "default",
    "email": "default",
    "ignore_channel_mentions": "default",
    "channel_auto_follow_threads": "off",
}

# Allowed values per notify prop (Mattermost's `ChannelMember.IsValid`); other keys pass freely.
NOTIFY_PROP_VALUES = {
    "desktop": (
        "model.channel_member.is_valid.notify_level.app_error",
        {"default", "all", "mention", "none"},
    ),
    "push": (
        "model.channel_member.is_valid.push_level.app_error",
        {"default", "all", "mention", "none"},
    ),
    "mark_unread": ("model.channel_member.is_valid.unread_level.app_error", {"all", "mention"}),
    "email": ("model.channel_member.is_valid.email_value.app_error", {"default", "true", "false"}),
    "ignore_channel_mentions": (
        "model.channel_member.is_valid.ignore_channel_mentions_value.app_error",
        {"default", "off", "on"},
    ),
    "channel_auto_follow_threads": (
        "model.channel_member.is_valid.channel_auto_follow_threads_value.app_error",
        {"on", "off"},
    ),
}


def compose_roles(explicit: str, guest: bool, user: bool, admin: bool, scope: str) -> str:
    """Mattermost's member `roles`: explicit roles, then the ones the scheme flags imply."""
    roles = explicit.split()
    for flag, name in (
        (guest, f"{scope}_guest"),
        (user, f"{scope}_user"),
        (admin, f"{scope}_admin"),
    ):
        if flag and name not in roles:
            roles.append(name)
    return " ".join(roles)


def parse_scheme_roles(roles: str, scope: str) -> tuple[bool, bool]:
    """(`scheme_user`, `scheme_admin`) from a roles string of `<scope>_user`/`<scope>_admin`.

    hubbub has no custom roles, so any other role name is a 400, as Mattermost answers for a
    scheme-managed role that does not belong to the member's scope.
    """
    user = admin = False
    for role in roles.split():
        if role == f"{scope}_user":
            user = True
        elif role == f"{scope}_admin":
            admin = True
        else:
            where = "update_team_member_roles" if scope == "team" else "update_channel_member_roles"
            raise AppError(
                f"api.channel.{where}.scheme_role.app_error",
                f"The provided role is managed by a Scheme and therefore cannot be applied "
                f"directly to a {scope} member: {role}.",
                400,
            )
    return user, admin


def channel_json(row: Row[Any] | Mapping[str, Any]) -> dict[str, Any]:
    """A Channel in Mattermost's shape."""
    c = row._mapping if isinstance(row, Row) else row
    return {
        "id": c["id"],
        "create_at": c["create_at"],
        "update_at": c["update_at"],
        "delete_at": c["delete_at"],
        "team_id": c["team_id"],
        "type": c["type"],
        "display_name": c["display_name"],
        "name": c["name"],
        "header": c["header"],
        "purpose": c["purpose"],
        "last_post_at": c["last_post_at"],
        "total_msg_count": c["total_msg_count"],
        "extra_update_at": c["extra_update_at"],
        "creator_id": c["creator_id"],
        "scheme_id": None,
        "props": c["props"],
        "group_constrained": None,
        "shared": None,
        "total_msg_count_root": c["total_msg_count_root"],
        "policy_id": None,
        "last_root_post_at": c["last_root_post_at"],
    }


def channel_member_json(row: Row[Any] | Mapping[str, Any]) -> dict[str, Any]:
    """A ChannelMember in Mattermost's shape (`roles` includes the scheme-implied roles)."""
    m = row._mapping if isinstance(row, Row) else row
    return {
        "channel_id": m["channel_id"],
        "user_id": m["user_id"],
        "roles": compose_roles(
            m["roles"], m["scheme_guest"], m["scheme_user"], m["scheme_admin"], "channel"
        ),
        "last_viewed_at": m["last_viewed_at"],
        "msg_count": m["msg_count"],
        "mention_count": m["mention_count"],
        "mention_count_root": m["mention_count_root"],
        "urgent_mention_count": m["urgent_mention_count"],
        "msg_count_root": m["msg_count_root"],
        "notify_props": m["notify_props"] or dict(DEFAULT_CHANNEL_NOTIFY_PROPS),
        "last_update_at": m["last_update_at"],
        "scheme_guest": m["scheme_guest"],
        "scheme_user": m["scheme_user"],
        "scheme_admin": m["scheme_admin"],
        "explicit_roles": m["roles"],
    }


def dm_name(user_a: str, user_b: str) -> str:
    """Mattermost's `GetDMNameFromIds`: the lower id, two underscores, the higher id."""
    low, high = sorted((user_a, user_b))
    return f"{low}__{high}"


def group_name(user_ids: Iterable[str]) -> str:
    """Mattermost's `GetGroupNameFromUserIds`: sha1 hex of the sorted ids concatenated."""
    digest = hashlib.sha1(usedforsecurity=False)
    for user_id in sorted(user_ids):
        digest.update(user_id.encode())
    return digest.hexdigest()


def validate_channel_fields(name: str, display_name: str, header: str, purpose: str) -> None:
    """Mattermost's `Channel.IsValid` checks for an open or private channel."""
    if not display_name or len(display_name) > CHANNEL_DISPLAY_NAME_MAX:
        raise AppError(
            "model.channel.is_valid.display_name.app_error", "Invalid display name.", 400
        )
    if len(name) > CHANNEL_NAME_MAX:
        raise AppError("model.channel.is_valid.name.app_error", "Invalid channel name.", 400)
    if not CHANNEL_NAME_RE.match(name):
        raise AppError(
            "model.channel.is_valid.1_or_more.app_error",
            "Name must be 1 or more lowercase alphanumeric characters.",
            400,
        )
    if len(header) > CHANNEL_HEADER_MAX:
        raise AppError("model.channel.is_valid.header.app_error", "Invalid header.", 400)
    if len(purpose) > CHANNEL_PURPOSE_MAX:
        raise AppError("model.channel.is_valid.purpose.app_error", "Invalid purpose.", 400)


def validate_notify_props(props: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in props.items():
        if not isinstance(value, str) or "\x00" in value or "\x00" in key:
            raise AppError(
                "api.context.invalid_body_param.app_error", f"Invalid {key} in request body.", 400
            )
        rule = NOTIFY_PROP_VALUES.get(key)
        if rule is not None and value not in rule[1]:
            raise AppError(rule[0], f"Invalid {key} value.", 400)
        out[key] = value
    return out


def new_channel_row(
    *,
    team_id: str,
    type_: str,
    name: str,
    display_name: str,
    creator_id: str,
    header: str = "",
    purpose: str = "",
) -> dict[str, Any]:
    now = now_ms()
    return {
        "id": new_id(),
        "create_at": now,
        "update_at": now,
        "delete_at": 0,
        "team_id": team_id,
        "type": type_,
        "display_name": display_name,
        "name": name,
        "header": header,
        "purpose": purpose,
        "last_post_at": 0,
        "last_root_post_at": 0,
        "total_msg_count": 0,
        "total_msg_count_root": 0,
        "extra_update_at": 0,
        "creator_id": creator_id,
        "props": None,
        "event_seq": 0,
        "member_version": 0,
    }


async def bump_member_version(conn: AsyncConnection, channel_id: str) -> None:
    """Marks the channel's member list as changed, inside the caller's transaction."""
    await conn.execute(
        update(channels)
        .where(channels.c.id == channel_id)
        .values(member_version=channels.c.member_version + 1)
    )


async def get_member_row(conn: AsyncConnection, channel_id: str, user_id: str) -> Row[Any] | None:
    return (
        await conn.execute(
            select(channel_members).where(
                channel_members.c.channel_id == channel_id, channel_members.c.user_id == user_id
            )
        )
    ).first()


async def insert_member(
    conn: AsyncConnection, channel_id: str, user_id: str, admin: bool = False
) -> tuple[dict[str, Any], bool]:
    """Adds `user_id` to the channel unless already there: (ChannelMember JSON, was it added).

    The insert runs in a savepoint so that a concurrent insert of the same member (PostgreSQL)
    turns into "already a member" instead of failing the caller's transaction.
    """
    existing = await get_member_row(conn, channel_id, user_id)
    if existing is not None:
        return channel_member_json(existing), False
    now = now_ms()
    row = {
        "channel_id": channel_id,
        "user_id": user_id,
        "roles": "",
        "last_viewed_at": 0,
        "msg_count": 0,
        "mention_count": 0,
        "mention_count_root": 0,
        "urgent_mention_count": 0,
        "msg_count_root": 0,
        "notify_props": dict(DEFAULT_CHANNEL_NOTIFY_PROPS),
        "last_update_at": now,
        "scheme_user": True,
        "scheme_admin": admin,
        "scheme_guest": False,
    }
    try:
        async with conn.begin_nested():
            await conn.execute(insert(channel_members).values(**row))
    except IntegrityError:
        existing = await get_member_row(conn, channel_id, user_id)
        if existing is None:
            raise
        return channel_member_json(existing), False
    await bump_member_version(conn, channel_id)
    return channel_member_json(row), True
