"""Posts, reactions and post lists in Mattermost's JSON shapes, and the pure rules around them.

No I/O: the services read rows and hand them here (`bumped_update_at` only builds SQL).
`post_json` renders one Post (a deleted post loses its message and metadata, as
`PreparePostForClient` does), `post_list` a PostList, and `post_list_etag` the ETag Mattermost
computes for a PostList (`PostList.Etag`).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Row, case

from hubbub.errors import AppError
from hubbub.store.tables import posts
from hubbub.version import etag

EMOJI_NAME_RE = re.compile(r"^[a-zA-Z0-9\-\+_]+$")
EMOJI_NAME_MAX = 64
MAX_FILE_IDS = 10
PENDING_KEY_MAX = 26
SYSTEM_TYPE_PREFIX = "system_"
EPHEMERAL_TYPE = "system_ephemeral"
PROP_FROM_BOT = "from_bot"

# `@name` where the `@` does not follow a word character (so e-mail addresses do not mention).
_MENTION_RE = re.compile(r"(?<![\w@])@([a-z0-9][a-z0-9.\-_]*)", re.IGNORECASE)


def dumps(value: Any) -> str:
    """JSON text for the JSON-in-JSON fields of events (`post`, `mentions`, `reaction`)."""
    return orjson.dumps(value).decode("utf-8")


def as_mapping(row: Row[Any] | Mapping[str, Any]) -> Mapping[Any, Any]:
    return row._mapping if isinstance(row, Row) else row


def post_json(
    row: Row[Any] | Mapping[str, Any],
    *,
    reply_count: int = 0,
    last_reply_at: int = 0,
    participants: list[dict[str, Any]] | None = None,
    reactions: Sequence[dict[str, Any]] = (),
    files: Sequence[dict[str, Any]] = (),
    pending_post_id: str = "",
) -> dict[str, Any]:
    """A Post as clients see it. `pending_post_id` is echoed only in the create response and the
    `posted` event: like Mattermost, hubbub does not return it on later reads."""
    p = as_mapping(row)
    deleted = bool(p["delete_at"])
    data: dict[str, Any] = {
        "id": p["id"],
        "create_at": p["create_at"],
        "update_at": p["update_at"],
        "edit_at": p["edit_at"],
        "delete_at": p["delete_at"],
        "is_pinned": p["is_pinned"],
        "user_id": p["user_id"],
        "channel_id": p["channel_id"],
        "root_id": p["root_id"],
        "original_id": p["original_id"],
        "message": "" if deleted else p["message"],
        "type": p["type"],
        "props": dict(p["props"] or {}),
        "hashtags": p["hashtags"],
        "file_ids": list(p["file_ids"] or []),
        "pending_post_id": pending_post_id,
        "reply_count": reply_count,
        "last_reply_at": last_reply_at,
        "participants": participants,
        "metadata": {}
        if deleted
        else {
            "embeds": [],
            "emojis": [],
            "files": list(files),
            "reactions": list(reactions),
        },
    }
    if p["has_reactions"]:
        data["has_reactions"] = True
    return data


def reaction_json(row: Row[Any] | Mapping[str, Any]) -> dict[str, Any]:
    r = as_mapping(row)
    return {
        "user_id": r["user_id"],
        "post_id": r["post_id"],
        "emoji_name": r["emoji_name"],
        "create_at": r["create_at"],
        "update_at": r["update_at"],
        "delete_at": r["delete_at"],
        "remote_id": "",
        "channel_id": r["channel_id"],
    }


def post_list(
    order: Sequence[str],
    posts: Mapping[str, dict[str, Any]],
    *,
    next_post_id: str = "",
    prev_post_id: str = "",
    has_next: bool | None = None,
) -> dict[str, Any]:
    """A PostList; `has_next` is present only when given (the paginated thread sets it)."""
    data: dict[str, Any] = {
        "order": list(order),
        "posts": dict(posts),
        "next_post_id": next_post_id,
        "prev_post_id": prev_post_id,
        "first_inaccessible_post_time": 0,
    }
    if has_next is not None:
        data["has_next"] = has_next
    return data


def post_list_etag(order: Sequence[str], posts: Iterable[Mapping[Any, Any]]) -> str:
    """Mattermost's `PostList.Etag`: the first id in `order`, then the id and `update_at` of the
    most recently updated post (ties to the larger id); plus the number of posts, so that a post
    added in the same millisecond as the latest change still changes the tag."""
    newest_id, newest_at, count = "0", 0, 0
    for p in posts:
        count += 1
        if p["update_at"] > newest_at or (p["update_at"] == newest_at and p["id"] > newest_id):
            newest_id, newest_at = p["id"], p["update_at"]
    return etag(order[0] if order else "", newest_id, newest_at, count)


def sort_newest_first(rows: Iterable[Mapping[Any, Any]]) -> list[str]:
    """Post ids newest first by (`create_at`, `id`), the order of every PostList we return."""
    ordered = sorted(rows, key=lambda p: (p["create_at"], p["id"]), reverse=True)
    return [p["id"] for p in ordered]


def check_message(message: str, max_size: int) -> None:
    """`Post.IsValid`'s message rule: at most `max_size` characters (runes)."""
    if len(message) > max_size:
        raise AppError(
            "model.post.is_valid.msg.app_error",
            f"The message is longer than the maximum of {max_size} characters.",
            400,
        )


def check_props(props: object) -> dict[str, Any]:
    if not isinstance(props, dict):
        raise AppError(
            "api.context.invalid_body_param.app_error", "Invalid props in request body.", 400
        )
    return props


def check_emoji_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > EMOJI_NAME_MAX:
        raise AppError(
            "api.context.invalid_param.app_error", "Invalid or missing emoji_name parameter.", 400
        )
    if not EMOJI_NAME_RE.match(name):
        raise AppError("model.reaction.is_valid.emoji_name.app_error", "Invalid emoji name.", 400)
    return name


def mentioned_usernames(message: str) -> set[str]:
    """Lower-cased candidate usernames from `@name` mentions.

    Like Mattermost, trailing `.`, `-` and `_` may be sentence punctuation (`@alice.`), so each
    shorter variant is a candidate too; the caller keeps those that are real usernames.
    """
    found: set[str] = set()
    for match in _MENTION_RE.finditer(message):
        name = match.group(1).lower()
        found.add(name)
        while name and name[-1] in ".-_":
            name = name[:-1]
            if name:
                found.add(name)
    return found


def pending_key(pending_post_id: str) -> str:
    """The value stored for idempotent posting. Clients send ids such as `<user_id>:<ms>` (40
    characters), longer than the column; those are stored as a 26-character digest."""
    if len(pending_post_id) <= PENDING_KEY_MAX:
        return pending_post_id
    digest = hashlib.sha256(pending_post_id.encode("utf-8")).digest()
    return "~" + base64.b32encode(digest).decode("ascii").lower()[: PENDING_KEY_MAX - 1]


def bumped_update_at(now: int) -> Any:
    """SQL for a post's new `update_at`: `now`, or one past the old value if that is not earlier,
    so the post's ETag changes even when two changes fall in the same millisecond."""
    return case((posts.c.update_at < now, now), else_=posts.c.update_at + 1)
