"""Mattermost's bulk format (the JSONL file `mmctl export` writes and `mmctl import` reads):
line types, their order, and the checks each line must pass on its own.

Every line is one JSON object with a `type` and an object of that name: `version` (first, once,
`"version": 1`), then `team`, `channel`, `user` (with its team and channel memberships), `post`
(with replies, reactions and attachments), `direct_channel` and `direct_post`, in that order.
`scheme`, `role`, `emoji` and `bot` lines are valid Mattermost lines that hubbub has nothing to
import into (no custom schemes or emoji); they are counted as skipped, not refused. Names are
compared in lower case, as Mattermost does on import. A line's unique key (what a re-run finds
instead of inserting again) is Mattermost's: team by name, channel by team and name, user by
username, post by channel, author, creation time and message, reply by its root and the same,
reaction by post, user and emoji, direct channel by its members.

`check_line` raises `LineError` with a message naming the field; the importer adds the checks
that need the database (references to teams, channels and users) and reports every bad line by
number before writing anything.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from hubbub.services.channel_model import CHANNEL_NAME_RE, GROUP_MAX_USERS, NOTIFY_PROP_VALUES
from hubbub.services.team_model import RESERVED_TEAM_NAMES, TEAM_NAME_RE
from hubbub.services.users import USERNAME_RE

VERSION = 1
DATA_DIR = "data"  # attachments inside the archive, as Mattermost's export lays them out

# The order lines must come in; types of equal rank may interleave.
RANK = {
    "version": 0,
    "scheme": 1,
    "role": 1,
    "emoji": 1,
    "team": 2,
    "channel": 3,
    "user": 4,
    "bot": 4,
    "post": 5,
    "direct_channel": 6,
    "direct_post": 7,
}
SKIPPED = frozenset({"scheme", "role", "emoji", "bot"})

SYSTEM_ROLES = {"system_user", "system_admin"}
TEAM_ROLES = {"team_user", "team_admin"}
CHANNEL_ROLES = {"channel_user", "channel_admin"}
MAX_REACTION_NAME = 64
Obj = dict[str, Any]


class LineError(Exception):
    """A line that cannot be imported; `str()` says why."""


def parse(raw: bytes) -> Obj:
    """One line as an object with a known `type` and its body; raises `LineError`."""
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise LineError(f"not valid JSON ({exc})") from None
    if not isinstance(line, dict):
        raise LineError("a line must be a JSON object")
    kind = line.get("type")
    if not isinstance(kind, str) or kind not in RANK:
        raise LineError(f"unknown line type {kind!r}; expected one of {', '.join(RANK)}")
    if kind == "version":
        if line.get("version") != VERSION:
            raise LineError(f"version must be the number {VERSION}")
    elif not isinstance(line.get(kind), dict):
        raise LineError(f"a {kind} line needs a {kind!r} object")
    return line


def _str(obj: Mapping[str, Any], key: str, *, required: bool = False, limit: int = 0) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise LineError(f"{key} is missing")
        return ""
    if not isinstance(value, str):
        raise LineError(f"{key} must be a string")
    if required and not value:
        raise LineError(f"{key} must not be empty")
    if limit and len(value) > limit:
        raise LineError(f"{key} is longer than {limit} characters")
    return value


def _int(obj: Mapping[str, Any], key: str, *, required: bool = False) -> int:
    value = obj.get(key)
    if value is None:
        if required:
            raise LineError(f"{key} is missing")
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**62:
        raise LineError(f"{key} must be a non-negative integer (milliseconds)")
    return value


def _list(obj: Mapping[str, Any], key: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise LineError(f"{key} must be a list")
    return value


def _roles(value: str, allowed: set[str], key: str) -> None:
    unknown = set(value.split()) - allowed
    if unknown:
        raise LineError(f"{key} has roles hubbub does not know: {', '.join(sorted(unknown))}")


def check_team(team: Obj) -> None:
    name = _str(team, "name", required=True).lower()
    if len(name) > 64 or len(name) < 2 or not TEAM_NAME_RE.match(name):
        raise LineError(f"team name {name!r} is not a valid team name")
    if name.startswith(RESERVED_TEAM_NAMES):
        raise LineError(f"team name {name!r} is reserved")
    _str(team, "display_name", required=True, limit=64)
    if team.get("type") not in ("O", "I"):
        raise LineError("team type must be 'O' (open) or 'I' (invite only)")
    _str(team, "description", limit=255)
    if team.get("allow_open_invite") is not None and not isinstance(
        team["allow_open_invite"], bool
    ):
        raise LineError("allow_open_invite must be true or false")


def check_channel(channel: Obj) -> None:
    _str(channel, "team", required=True)
    name = _str(channel, "name", required=True).lower()
    if len(name) > 64 or not CHANNEL_NAME_RE.match(name):
        raise LineError(f"channel name {name!r} is not a valid channel name")
    _str(channel, "display_name", limit=64)
    if channel.get("type") not in ("O", "P"):
        raise LineError("channel type must be 'O' (public) or 'P' (private)")
    _str(channel, "header", limit=1024)
    _str(channel, "purpose", limit=250)


def check_user(user: Obj) -> None:
    username = _str(user, "username", required=True).lower()
    if not USERNAME_RE.match(username):
        raise LineError(f"username {username!r} is not a valid username")
    email = _str(user, "email", required=True, limit=128)
    if "@" not in email:
        raise LineError(f"email {email!r} is not an email address")
    if user.get("password") is not None:
        _str(user, "password", required=True, limit=72)
    for key, limit in (("nickname", 64), ("first_name", 64), ("last_name", 64), ("position", 128)):
        _str(user, key, limit=limit)
    _str(user, "locale", limit=5)
    _roles(_str(user, "roles"), SYSTEM_ROLES, "roles")
    _int(user, "delete_at")
    props = user.get("notify_props")
    if props is not None and not (
        isinstance(props, dict) and all(isinstance(v, str) for v in props.values())
    ):
        raise LineError("notify_props must be an object of strings")
    for team in _list(user, "teams"):
        if not isinstance(team, dict):
            raise LineError("each of teams must be an object")
        _str(team, "name", required=True)
        _roles(_str(team, "roles"), TEAM_ROLES, "team roles")
        for channel in _list(team, "channels"):
            check_membership(channel)


def check_membership(channel: Any) -> None:
    if not isinstance(channel, dict):
        raise LineError("each of a team's channels must be an object")
    _str(channel, "name", required=True)
    _roles(_str(channel, "roles"), CHANNEL_ROLES, "channel roles")
    for key in ("last_viewed_at", "msg_count", "msg_count_root", "mention_count"):
        _int(channel, key)
    if channel.get("favorite") is not None and not isinstance(channel["favorite"], bool):
        raise LineError("favorite must be true or false")
    props = channel.get("notify_props")
    if props is None:
        return
    if not isinstance(props, dict):
        raise LineError("a channel's notify_props must be an object")
    for key, value in props.items():
        rule = NOTIFY_PROP_VALUES.get("push" if key == "mobile" else key)
        if not isinstance(value, str) or (rule is not None and value not in rule[1]):
            raise LineError(f"channel notify_props {key} has an invalid value {value!r}")


def check_post_body(post: Obj, max_size: int, parent_create_at: int = 0) -> None:
    _str(post, "user", required=True)
    message = post.get("message")
    if not isinstance(message, str):
        raise LineError("message is missing")
    if len(message) > max_size:
        raise LineError(f"message is longer than {max_size} characters")
    create_at = _int(post, "create_at", required=True)
    if create_at == 0:
        raise LineError("create_at must not be 0")
    _int(post, "edit_at")
    _str(post, "type", limit=64)
    if post.get("props") is not None and not isinstance(post["props"], dict):
        raise LineError("props must be an object")
    if post.get("is_pinned") is not None and not isinstance(post["is_pinned"], bool):
        raise LineError("is_pinned must be true or false")
    if not all(isinstance(name, str) and name for name in _list(post, "flagged_by")):
        raise LineError("flagged_by must be a list of usernames")
    for reaction in _list(post, "reactions"):
        if not isinstance(reaction, dict):
            raise LineError("each reaction must be an object")
        _str(reaction, "user", required=True)
        _str(reaction, "emoji_name", required=True, limit=MAX_REACTION_NAME)
        when = _int(reaction, "create_at", required=True)
        if when == 0:
            raise LineError("a reaction's create_at must not be 0")
        if when < create_at:
            raise LineError("a reaction's create_at is before its post's")
    for attachment in _list(post, "attachments"):
        if not isinstance(attachment, dict):
            raise LineError("each attachment must be an object")
        _str(attachment, "path", required=True)
    for reply in _list(post, "replies") if not parent_create_at else []:
        if not isinstance(reply, dict):
            raise LineError("each reply must be an object")
        check_post_body(reply, max_size, parent_create_at=create_at)
    if parent_create_at and _list(post, "replies"):
        raise LineError("a reply cannot have replies")


def check_post(post: Obj, max_size: int) -> None:
    _str(post, "team", required=True)
    _str(post, "channel", required=True)
    check_post_body(post, max_size)


def members_of(body: Obj, key: str) -> list[str]:
    members = _list(body, key)
    if not members or not all(isinstance(m, str) and m for m in members):
        raise LineError(f"{key} must be a list of usernames")
    if len(members) != 2 and not 3 <= len(members) <= GROUP_MAX_USERS:
        raise LineError(f"{key} must name 2 users (a direct channel) or 3 to 8 (a group)")
    return [m.lower() for m in members]


def participants(channel: Obj) -> list[Obj]:
    """A direct channel's members with their state: Mattermost's newer `participants`, or the
    older `members` (usernames only)."""
    given = channel.get("participants")
    if given is None:
        return [{"username": name} for name in members_of(channel, "members")]
    if not isinstance(given, list) or not all(isinstance(p, dict) for p in given):
        raise LineError("participants must be a list of objects")
    for participant in given:
        _str(participant, "username", required=True)
        check_membership({**participant, "name": participant["username"]})
    members_of({"participants": [p["username"] for p in given]}, "participants")
    return [{**p, "username": p["username"].lower()} for p in given]


def check_direct_channel(channel: Obj) -> None:
    members = [p["username"] for p in participants(channel)]
    for favoriter in _list(channel, "favorited_by"):
        if not isinstance(favoriter, str) or favoriter.lower() not in members:
            raise LineError(f"favorited_by names {favoriter!r}, who is not a member")
    _str(channel, "header", limit=1024)


def check_direct_post(post: Obj, max_size: int) -> None:
    members_of(post, "channel_members")
    check_post_body(post, max_size)


def check_line(line: Obj, max_size: int) -> None:
    """The checks of one parsed line that need nothing but the line."""
    kind = line["type"]
    if kind == "version" or kind in SKIPPED:
        return
    body = line[kind]
    if kind == "team":
        check_team(body)
    elif kind == "channel":
        check_channel(body)
    elif kind == "user":
        check_user(body)
    elif kind == "post":
        check_post(body, max_size)
    elif kind == "direct_channel":
        check_direct_channel(body)
    elif kind == "direct_post":
        check_direct_post(body, max_size)


def attachment_paths(body: Obj) -> list[str]:
    """Every attachment path of a post line's body and its replies."""
    found = [a["path"] for a in _list(body, "attachments")]
    for reply in _list(body, "replies"):
        found += [a["path"] for a in _list(reply, "attachments")]
    return found


def archive_name(path: str) -> str:
    """The member of the archive an attachment path names (with or without `data/`)."""
    return path if path.startswith(DATA_DIR + "/") else f"{DATA_DIR}/{path}"


_STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_MM = "ybndrfg8ejkmcpqxot1uwisza345h769"
_TO_MM = str.maketrans(_STD, _MM)


def derived_id(*parts: str) -> str:
    """A 26-character id in Mattermost's format, the same for the same parts: what an import
    run creates for a key is what a re-run after a crash creates again."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).digest()
    return base64.b32encode(digest).decode("ascii").rstrip("=").translate(_TO_MM)
