"""A server's content as seen through the API, keyed by names instead of ids, so two servers
(one exported, one that imported the export) can be compared as plain data."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.support.api import API

Snapshot = dict[str, Any]
USER_FIELDS = ("email", "nickname", "first_name", "last_name", "position", "roles", "locale")


async def _all_users(api: API, token: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    page = 0
    while batch := await api.call("GET", f"/users?page={page}&per_page=200", token):
        found += batch
        page += 1
    return found


async def snapshot(api: API, token: str, usernames: set[str]) -> Snapshot:
    """Teams, channels, memberships (with favorites), posts, threads, reactions, files and
    saved posts of `usernames`."""
    everyone = await _all_users(api, token)
    names = {u["id"]: u["username"] for u in everyone}
    out: Snapshot = {"users": {}, "channels": {}, "teams": {}}
    channel_ids: dict[tuple[Any, ...], str] = {}
    for user in everyone:
        if user["username"] not in usernames:
            continue
        uid = user["id"]
        teams = await api.call("GET", f"/users/{uid}/teams", token)
        team_names = {t["id"]: t["name"] for t in teams}
        for t in teams:
            out["teams"][t["name"]] = {
                k: t[k] for k in ("display_name", "type", "description", "allow_open_invite")
            }
        team_roles = {
            team_names[m["team_id"]]: m["scheme_admin"]
            for m in await api.call("GET", f"/users/{uid}/teams/members", token)
        }
        prefs = await api.call("GET", f"/users/{uid}/preferences", token)
        chosen = {
            (p["category"], p["name"])
            for p in prefs
            if p["value"] == "true" and p["category"] in ("favorite_channel", "flagged_post")
        }
        saved = []
        for category, post_id in sorted(chosen):
            if category == "flagged_post":
                post = await api.call("GET", f"/posts/{post_id}", token)
                saved.append((post["create_at"], post["message"]))
        memberships = {}
        members = {
            m["channel_id"]: m
            for m in await api.call("GET", f"/users/{uid}/channel_members", token)
        }
        for channel in await api.call("GET", f"/users/{uid}/channels", token):
            key = await _channel_key(api, token, channel, team_names, names)
            channel_ids[key] = channel["id"]
            m = members[channel["id"]]
            memberships[str(key)] = {
                "admin": m["scheme_admin"],
                "msg_count": m["msg_count"],
                "mention_count": m["mention_count"],
                "last_viewed_at": m["last_viewed_at"],
                "desktop": m["notify_props"].get("desktop"),
                "favorite": ("favorite_channel", channel["id"]) in chosen,
            }
        out["users"][user["username"]] = {
            **{k: user[k] for k in USER_FIELDS},
            "delete_at": user["delete_at"],
            "notify_props": {
                k: user["notify_props"].get(k) for k in ("desktop", "push", "email", "comments")
            },
            "teams": team_roles,
            "channels": memberships,
            "saved": sorted(saved),
        }
    for key, channel_id in sorted(channel_ids.items(), key=lambda kv: str(kv[0])):
        out["channels"][str(key)] = await _channel(api, token, channel_id, names)
    return out


async def _channel_key(
    api: API,
    token: str,
    channel: dict[str, Any],
    team_names: dict[str, str],
    names: dict[str, str],
) -> tuple[Any, ...]:
    if channel["type"] in ("O", "P"):
        return (team_names.get(channel["team_id"], "?"), channel["name"])
    members = await api.call("GET", f"/channels/{channel['id']}/members", token)
    return (channel["type"], tuple(sorted(names[m["user_id"]] for m in members)))


async def _channel(api: API, token: str, channel_id: str, names: dict[str, str]) -> dict[str, Any]:
    channel = await api.call("GET", f"/channels/{channel_id}", token)
    listing = await api.call("GET", f"/channels/{channel_id}/posts?per_page=200", token)
    by_id = listing["posts"]
    posts = []
    for post_id in reversed(listing["order"]):
        p = by_id[post_id]
        root = by_id.get(p["root_id"]) if p["root_id"] else None
        files = []
        for info in (p.get("metadata") or {}).get("files", []):
            content = await api.raw("GET", f"/files/{info['id']}", token)
            assert content.status_code == 200
            files.append(
                (
                    info["name"],
                    info["size"],
                    info["mime_type"],
                    info.get("width"),
                    info.get("height"),
                    info.get("has_preview_image"),
                    hashlib.sha256(content.content).hexdigest(),
                )
            )
        posts.append(
            {
                "user": names[p["user_id"]],
                "message": p["message"],
                "create_at": p["create_at"],
                "edit_at": p["edit_at"],
                "is_pinned": p["is_pinned"],
                "root": None if root is None else (root["create_at"], root["message"]),
                "reply_count": p["reply_count"],
                "reactions": sorted(
                    (names[r["user_id"]], r["emoji_name"])
                    for r in (p.get("metadata") or {}).get("reactions", [])
                ),
                "files": files,
            }
        )
    threads = {}
    for p in by_id.values():
        if not p["root_id"] and p["reply_count"]:
            thread = await api.call("GET", f"/posts/{p['id']}/thread", token)
            threads[str((p["create_at"], p["message"]))] = [
                (thread["posts"][i]["create_at"], thread["posts"][i]["message"])
                for i in sorted(thread["order"], key=lambda i: thread["posts"][i]["create_at"])
            ]
    return {
        "display_name": channel["display_name"] if channel["type"] in ("O", "P") else "",
        "type": channel["type"],
        "header": channel["header"],
        "purpose": channel["purpose"],
        "posts": posts,
        "threads": threads,
    }


def differences(left: Any, right: Any, path: str = "") -> list[str]:
    """Where two snapshots differ, as readable lines (empty when equal)."""
    if isinstance(left, dict) and isinstance(right, dict):
        out = []
        for key in sorted(set(left) | set(right), key=str):
            if key not in left or key not in right:
                out.append(f"{path}/{key}: only in {'right' if key not in left else 'left'}")
            else:
                out += differences(left[key], right[key], f"{path}/{key}")
        return out
    return [] if left == right else [f"{path}: {left!r} != {right!r}"]
