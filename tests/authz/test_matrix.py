"""The authorization matrix: every route of the API is classified here, and every route that
reads or changes somebody else's data is tried by people who must not get in.

Against a real `hubbub serve` (SQLite) holding alice's secrets (tests/support/authz_scene.py),
`mallory` (in alice's team, in none of her channels), `eve` (in no team) and `carol` (in alice's
group channel only: she tries every probe that does not name it) try each guarded route with
alice's private channel, direct channel, group channel, invite-only team, posts, file, token,
preferences, sidebar, drafts and emoji. Each attempt must be refused (403 or 404, as Mattermost
answers), or for a listing or a search answer without any of the secrets; and a snapshot of
alice's things taken by the system admin before and after the attempts on a route
must be the same. For the reads, the insiders (alice, and the system admin) then get in, which
shows the probe reached a real door rather than a typo.

`test_every_route_is_classified` walks the application's routing table: a route added without
a line in `ROUTES` fails it, as does a line for a route that no longer exists;
`test_every_page_route_is_classified` does the same for the pages and files outside /api/v4
(`PAGES`), with hubbub's own client and with a WebappDirectory bundle. The websocket
half of the matrix is `test_events.py`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.authz_scene import Scene, small_png
from tests.support.rest import Account, Rest
from tests.support.routes import api_route_keys, page_route_keys

DENIED = frozenset({403, 404})


@dataclass(frozen=True)
class Probe:
    path: str  # with {placeholders} from Scene.values
    body: Any = None  # JSON, placeholders filled in strings
    upload: str = ""  # a multipart upload of a small PNG in this form field
    hidden: bool = False  # a listing or search: may answer 200, but without any secret
    denied: frozenset[int] = DENIED
    insiders: tuple[str, ...] = ()  # who gets in (reads only): "alice", "admin"


@dataclass(frozen=True)
class Door:
    kind: str  # public | own | shared | admin | guarded | websocket
    why: str = ""
    probes: tuple[Probe, ...] = field(default=())


def public(why: str) -> Door:
    """Needs no session, or concerns nobody's data."""
    return Door("public", why)


def own(why: str) -> Door:
    """Acts only on the caller's own data (nothing in the request names another's)."""
    return Door("own", why)


def shared(why: str) -> Door:
    """Data every signed-in user may see by Mattermost's default rules."""
    return Door("shared", why)


def admin(*probes: Probe) -> Door:
    return Door("admin", "system admin only", probes)


def guarded(*probes: Probe) -> Door:
    return Door("guarded", "", probes)


def read(path: str, *insiders: str, hidden: bool = False, body: Any = None) -> Probe:
    return Probe(path, body=body, hidden=hidden, insiders=insiders or ("alice", "admin"))


def write(path: str, body: Any = None, upload: str = "", denied: frozenset[int] = DENIED) -> Probe:
    return Probe(path, body=body, upload=upload, denied=denied)


ALICE = "/users/{alice}"
ALICE_T = "/users/{alice}/teams/{team}"
SELF_T = "/users/{self}/teams/{team}"
PREF = {"user_id": "{alice}", "category": "secret", "name": "n", "value": "x"}
CATEGORY = {
    "id": "{category}",
    "user_id": "{alice}",
    "team_id": "{team}",
    "display_name": "Hacked",
    "type": "custom",
    "channel_ids": [],
}
SECRET_POSTS = ("{private_post}", "{dm_post}", "{gm_post}")
SECRET_CHANNELS = ("{private}", "{dm}", "{gm}")


def each(template: str, values: tuple[str, ...], **kw: Any) -> tuple[Probe, ...]:
    """The same probe for each secret (`{x}` in `template` takes each of `values`)."""
    return tuple(write(template.replace("{x}", v), **kw) for v in values)


def reads(template: str, values: tuple[str, ...], *insiders: str) -> tuple[Probe, ...]:
    return tuple(read(template.replace("{x}", v), *insiders) for v in values)


ROUTES: dict[str, Door] = {
    # Boot and system
    "GET /limits/server": shared("limits; the active user count only with the users console"),
    "GET /users/stats": shared("the number of users, as Mattermost shows every user"),
    "GET /plugins/webapp": public("an empty list; asked before login"),
    "GET /plugins/statuses": admin(write("/plugins/statuses")),
    "GET /plugins": admin(write("/plugins")),
    "PUT /system/notices/view": own("marks notices viewed for the caller"),
    "GET /system/notices/{team_id}": shared("always an empty list"),
    "GET /trial-license/prev": public("no licence"),
    "POST /client_perf": own("client metrics, dropped"),
    "GET /config/client": public("the client configuration, as Mattermost serves it"),
    "GET /system/ping": public("the health check"),
    "GET /license/client": public("the client licence (none)"),
    "GET /cluster/status": admin(write("/cluster/status")),
    "GET /hubbub/console": admin(write("/hubbub/console")),
    "GET /hubbub/doctor": admin(write("/hubbub/doctor")),
    "POST /config/reload": admin(write("/config/reload")),
    "POST /database/recycle": admin(write("/database/recycle")),
    "GET /jobs": admin(write("/jobs")),
    "POST /jobs": admin(write("/jobs", {"type": "cleanup"})),
    "GET /jobs/type/{job_type}": admin(write("/jobs/type/cleanup")),
    "GET /jobs/{job_id}": admin(write("/jobs/{job}")),
    "POST /jobs/{job_id}/cancel": admin(write("/jobs/{job}/cancel")),
    "GET /jobs/{job_id}/download": admin(write("/jobs/{job}/download")),
    # Roles
    "GET /roles": admin(write("/roles")),
    "POST /roles/names": shared("role definitions; every client reads them"),
    "GET /roles/name/{role_name}": shared("role definitions"),
    "GET /roles/{role_id}": shared("role definitions"),
    "PUT /roles/{role_id}/patch": admin(
        write("/roles/{channel_user_role}/patch", {"permissions": []})
    ),
    # Preferences
    "GET /users/{user_id}/preferences": guarded(read(ALICE + "/preferences")),
    "PUT /users/{user_id}/preferences": guarded(write(ALICE + "/preferences", [PREF])),
    "POST /users/{user_id}/preferences/delete": guarded(
        write(ALICE + "/preferences/delete", [PREF])
    ),
    "GET /users/{user_id}/preferences/{category}": guarded(read(ALICE + "/preferences/secret")),
    "GET /users/{user_id}/preferences/{category}/name/{name}": guarded(
        read(ALICE + "/preferences/secret/name/n")
    ),
    # Sidebar categories
    "GET /users/{user_id}/teams/{team_id}/channels/categories": guarded(
        read(ALICE_T + "/channels/categories")
    ),
    "POST /users/{user_id}/teams/{team_id}/channels/categories": guarded(
        write(ALICE_T + "/channels/categories", {**CATEGORY, "id": ""})
    ),
    "PUT /users/{user_id}/teams/{team_id}/channels/categories": guarded(
        write(ALICE_T + "/channels/categories", [CATEGORY]),
        write(SELF_T + "/channels/categories", [CATEGORY], denied=frozenset({400, 403, 404})),
    ),
    "GET /users/{user_id}/teams/{team_id}/channels/categories/order": guarded(
        read(ALICE_T + "/channels/categories/order")
    ),
    "PUT /users/{user_id}/teams/{team_id}/channels/categories/order": guarded(
        write(ALICE_T + "/channels/categories/order", ["{category}"])
    ),
    "GET /users/{user_id}/teams/{team_id}/channels/categories/{category_id}": guarded(
        read(ALICE_T + "/channels/categories/{category}"),
        write(SELF_T + "/channels/categories/{category}"),
    ),
    "PUT /users/{user_id}/teams/{team_id}/channels/categories/{category_id}": guarded(
        write(ALICE_T + "/channels/categories/{category}", CATEGORY),
        write(SELF_T + "/channels/categories/{category}", CATEGORY),
    ),
    "DELETE /users/{user_id}/teams/{team_id}/channels/categories/{category_id}": guarded(
        write(ALICE_T + "/channels/categories/{category}"),
        write(SELF_T + "/channels/categories/{category}"),
    ),
    # Avatars
    "GET /users/{user_id}/image": shared("profile pictures are visible to every user"),
    "POST /users/{user_id}/image": guarded(write(ALICE + "/image", upload="image")),
    "DELETE /users/{user_id}/image": guarded(write(ALICE + "/image")),
    "GET /users/{user_id}/image/default": shared("a generated picture"),
    # Custom emoji: server-wide, as in Mattermost
    "POST /emoji": own("creates the caller's emoji (create_emojis: the permission table)"),
    "GET /emoji": shared("custom emoji are server-wide"),
    "POST /emoji/search": shared("custom emoji are server-wide"),
    "GET /emoji/autocomplete": shared("custom emoji are server-wide"),
    "POST /emoji/names": shared("custom emoji are server-wide"),
    "GET /emoji/name/{emoji_name}": shared("custom emoji are server-wide"),
    "GET /emoji/{emoji_id}": shared("custom emoji are server-wide"),
    "DELETE /emoji/{emoji_id}": guarded(write("/emoji/{emoji}")),
    "GET /emoji/{emoji_id}/image": shared("custom emoji are server-wide"),
    # Drafts
    "POST /drafts": guarded(
        *(write("/drafts", {"channel_id": c, "message": "x"}) for c in SECRET_CHANNELS)
    ),
    "GET /users/{user_id}/teams/{team_id}/drafts": guarded(read(ALICE_T + "/drafts", "alice")),
    "DELETE /users/{user_id}/channels/{channel_id}/drafts": guarded(
        write(ALICE + "/channels/{private}/drafts")
    ),
    "DELETE /users/{user_id}/channels/{channel_id}/drafts/{root_id}": guarded(
        write(ALICE + "/channels/{private}/drafts/{private_post}")
    ),
    # Threads
    "GET /users/{user_id}/teams/{team_id}/threads": guarded(read(ALICE_T + "/threads")),
    "PUT /users/{user_id}/teams/{team_id}/threads/read": guarded(write(ALICE_T + "/threads/read")),
    "GET /users/{user_id}/teams/{team_id}/threads/{thread_id}": guarded(
        read(ALICE_T + "/threads/{private_post}", "alice"),
        write(SELF_T + "/threads/{private_post}"),
    ),
    "PUT /users/{user_id}/teams/{team_id}/threads/{thread_id}/following": guarded(
        write(ALICE_T + "/threads/{private_post}/following"),
        write(SELF_T + "/threads/{private_post}/following"),
    ),
    "DELETE /users/{user_id}/teams/{team_id}/threads/{thread_id}/following": guarded(
        write(ALICE_T + "/threads/{private_post}/following"),
        write(SELF_T + "/threads/{private_post}/following"),
    ),
    "PUT /users/{user_id}/teams/{team_id}/threads/{thread_id}/read/{timestamp}": guarded(
        write(ALICE_T + "/threads/{private_post}/read/{private_post_at}"),
        write(SELF_T + "/threads/{private_post}/read/{private_post_at}"),
    ),
    "POST /users/{user_id}/teams/{team_id}/threads/{thread_id}/set_unread/{post_id}": guarded(
        write(ALICE_T + "/threads/{private_post}/set_unread/{private_post}"),
        write(SELF_T + "/threads/{private_post}/set_unread/{private_post}"),
    ),
    # Users
    "POST /users": public("sign-up follows TeamSettings (tests/api/test_users.py)"),
    "GET /users": shared("the user directory, as Mattermost shows every user"),
    "POST /users/login": public("login"),
    "POST /users/mfa": public(
        "whether a login id needs an MFA code (Mattermost asks it signed out)"
    ),
    "POST /users/password/reset": public("redeems a reset token: the token is the credential"),
    "POST /users/{user_id}/mfa/generate": guarded(write(ALICE + "/mfa/generate")),
    "PUT /users/{user_id}/mfa": guarded(write(ALICE + "/mfa", {"activate": False})),
    "PUT /users/{user_id}/password": guarded(
        write(ALICE + "/password", {"new_password": "Pwned-pass-123"})
    ),
    "POST /users/logout": own("ends the caller's session"),
    "POST /users/ids": shared("user profiles"),
    "POST /users/group_channels": guarded(
        read("/users/group_channels", "alice", hidden=True, body=["{gm}"])
    ),
    "PUT /users/sessions/device": own("ties a device id to the caller's own session"),
    "POST /users/usernames": shared("user profiles"),
    "POST /users/search": shared("user profiles (inactive ones only for admins)"),
    "GET /users/autocomplete": shared("user profiles"),
    "GET /users/username/{username}": shared("user profiles"),
    "GET /users/email/{email}": shared("user profiles (ShowEmailAddress defaults to true)"),
    "GET /users/{user_id}": shared("user profiles"),
    "DELETE /users/{user_id}": guarded(write(ALICE)),
    "PUT /users/{user_id}/patch": guarded(write(ALICE + "/patch", {"nickname": "pwned"})),
    "PUT /users/{user_id}": guarded(write(ALICE, {"id": "{alice}", "nickname": "pwned"})),
    "PUT /users/{user_id}/roles": guarded(
        write(ALICE + "/roles", {"roles": "system_user"}),
        write("/users/{self}/roles", {"roles": "system_user system_admin"}),
    ),
    "PUT /users/{user_id}/active": guarded(write(ALICE + "/active", {"active": False})),
    "GET /users/{user_id}/sessions": guarded(read(ALICE + "/sessions")),
    "POST /users/{user_id}/sessions/revoke": guarded(
        write(ALICE + "/sessions/revoke", {"session_id": "a" * 26})
    ),
    "POST /users/{user_id}/sessions/revoke/all": guarded(write(ALICE + "/sessions/revoke/all")),
    "POST /users/{user_id}/tokens": guarded(write(ALICE + "/tokens", {"description": "x"})),
    "GET /users/{user_id}/tokens": guarded(read(ALICE + "/tokens")),
    "GET /users/tokens/{token_id}": guarded(read("/users/tokens/{token}")),
    "POST /users/tokens/revoke": guarded(write("/users/tokens/revoke", {"token_id": "{token}"})),
    "POST /users/tokens/disable": guarded(write("/users/tokens/disable", {"token_id": "{token}"})),
    "POST /users/tokens/enable": guarded(write("/users/tokens/enable", {"token_id": "{token}"})),
    "POST /bots": admin(write("/bots", {"username": "mallorybot"})),
    "GET /bots": guarded(read("/bots", "admin")),
    "GET /bots/{bot_user_id}": guarded(read("/bots/{bot}", "admin")),
    # Statuses
    "POST /users/status/ids": shared("presence is visible to every user"),
    "GET /users/{user_id}/status": shared("presence is visible to every user"),
    "PUT /users/{user_id}/status": guarded(
        write(ALICE + "/status", {"user_id": "{alice}", "status": "dnd"})
    ),
    # Teams
    "POST /teams": own("creates a team the caller owns (create_team: the permission table)"),
    "GET /teams": guarded(read("/teams?per_page=200", "admin", hidden=True)),
    "GET /teams/name/{name}/exists": shared("whether a team name is taken, as Mattermost"),
    "GET /teams/name/{name}": guarded(read("/teams/name/{team2_name}", "alice")),
    "GET /teams/{team_id}": guarded(read("/teams/{team2}", "alice")),
    "PUT /teams/{team_id}": guarded(
        write("/teams/{team}", {"id": "{team}", "display_name": "Pwned"}),
        write("/teams/{team2}", {"id": "{team2}", "display_name": "Pwned"}),
    ),
    "DELETE /teams/{team_id}": guarded(write("/teams/{team}"), write("/teams/{team2}")),
    "PUT /teams/{team_id}/patch": guarded(
        write("/teams/{team}/patch", {"display_name": "Pwned"}),
        write("/teams/{team2}/patch", {"display_name": "Pwned"}),
    ),
    "GET /users/{user_id}/teams": guarded(read(ALICE + "/teams")),
    "GET /teams/{team_id}/stats": guarded(read("/teams/{team2}/stats", "alice")),
    "GET /teams/{team_id}/members": guarded(read("/teams/{team2}/members", "alice")),
    "POST /teams/{team_id}/members": guarded(
        write("/teams/{team2}/members", {"team_id": "{team2}", "user_id": "{self}"})
    ),
    "POST /teams/{team_id}/members/batch": guarded(
        write("/teams/{team2}/members/batch", [{"team_id": "{team2}", "user_id": "{self}"}])
    ),
    "POST /teams/{team_id}/members/ids": guarded(
        read("/teams/{team2}/members/ids", "alice", body=["{alice}"])
    ),
    "GET /teams/{team_id}/members/{user_id}": guarded(
        read("/teams/{team2}/members/{alice}", "alice")
    ),
    "DELETE /teams/{team_id}/members/{user_id}": guarded(
        write("/teams/{team}/members/{alice}"), write("/teams/{team2}/members/{alice}")
    ),
    "PUT /teams/{team_id}/members/{user_id}/roles": guarded(
        write("/teams/{team}/members/{self}/roles", {"roles": "team_user team_admin"}),
        write("/teams/{team}/members/{alice}/roles", {"roles": "team_user team_admin"}),
    ),
    "GET /users/{user_id}/teams/members": guarded(read(ALICE + "/teams/members")),
    "GET /users/{user_id}/teams/unread": guarded(read(ALICE + "/teams/unread")),
    # Channels
    "POST /channels": guarded(
        write(
            "/channels",
            {"team_id": "{team2}", "name": "pwned", "display_name": "Pwned", "type": "O"},
        )
    ),
    "POST /channels/direct": guarded(write("/channels/direct", ["{alice}", "{bob}"])),
    "POST /channels/group": own("a group channel always includes the caller"),
    "GET /channels/{channel_id}": guarded(*reads("/channels/{x}", SECRET_CHANNELS, "alice")),
    "PUT /channels/{channel_id}": guarded(
        *(write(f"/channels/{c}", {"id": c, "display_name": "Pwned"}) for c in SECRET_CHANNELS)
    ),
    "DELETE /channels/{channel_id}": guarded(write("/channels/{private}")),
    "PUT /channels/{channel_id}/patch": guarded(
        *each("/channels/{x}/patch", SECRET_CHANNELS, body={"header": "pwned"})
    ),
    "POST /channels/{channel_id}/restore": guarded(write("/channels/{archived}/restore")),
    "GET /channels/{channel_id}/stats": guarded(*reads("/channels/{x}/stats", SECRET_CHANNELS)),
    "GET /teams/{team_id}/channels": guarded(read("/teams/{team2}/channels", "alice")),
    # These two answer public channels only, to everyone (alice included), as Mattermost.
    "POST /teams/{team_id}/channels/ids": guarded(
        Probe("/teams/{team}/channels/ids", body=["{private}", "{archived}"], hidden=True)
    ),
    "GET /teams/{team_id}/channels/deleted": guarded(
        read("/teams/{team}/channels/deleted", "alice", hidden=True)
    ),
    "POST /teams/{team_id}/channels/search": guarded(
        Probe("/teams/{team}/channels/search", body={"term": "chan"}, hidden=True)
    ),
    "GET /teams/{team_id}/channels/name/{channel_name}": guarded(
        read("/teams/{team}/channels/name/{private_name}", "alice")
    ),
    "GET /teams/name/{team_name}/channels/name/{channel_name}": guarded(
        read("/teams/name/{team_name}/channels/name/{private_name}", "alice")
    ),
    "GET /users/{user_id}/teams/{team_id}/channels": guarded(read(ALICE_T + "/channels")),
    "GET /users/{user_id}/channels": guarded(read(ALICE + "/channels")),
    "POST /channels/members/{user_id}/view": guarded(
        write("/channels/members/{alice}/view", {"channel_id": "{private}"})
    ),
    "GET /channels/{channel_id}/members": guarded(
        *reads("/channels/{x}/members", SECRET_CHANNELS, "alice")
    ),
    "POST /channels/{channel_id}/members": guarded(
        *each("/channels/{x}/members", ("{private}", "{archived}"), body={"user_id": "{self}"})
    ),
    "POST /channels/{channel_id}/members/ids": guarded(
        *(read(f"/channels/{c}/members/ids", "alice", body=["{alice}"]) for c in SECRET_CHANNELS)
    ),
    "GET /channels/{channel_id}/members/{user_id}": guarded(
        *reads("/channels/{x}/members/{alice}", SECRET_CHANNELS, "alice")
    ),
    "DELETE /channels/{channel_id}/members/{user_id}": guarded(
        write("/channels/{private}/members/{bob}")
    ),
    "PUT /channels/{channel_id}/members/{user_id}/roles": guarded(
        write("/channels/{private}/members/{bob}/roles", {"roles": "channel_user channel_admin"}),
        write("/channels/{public}/members/{self}/roles", {"roles": "channel_user channel_admin"}),
    ),
    "PUT /channels/{channel_id}/members/{user_id}/notify_props": guarded(
        write("/channels/{private}/members/{alice}/notify_props", {"desktop": "none"})
    ),
    "GET /users/{user_id}/teams/{team_id}/channels/members": guarded(
        read(ALICE_T + "/channels/members")
    ),
    "GET /users/{user_id}/channel_members": guarded(read(ALICE + "/channel_members")),
    "GET /users/{user_id}/channels/{channel_id}/unread": guarded(
        read(ALICE + "/channels/{private}/unread"),
        write("/users/{self}/channels/{private}/unread"),
    ),
    # Posts
    "POST /posts": guarded(
        *(write("/posts", {"channel_id": c, "message": "pwned"}) for c in SECRET_CHANNELS),
        # A reply in a channel one is in, to a thread of a channel one is not.
        write(
            "/posts",
            {"channel_id": "{public}", "root_id": "{private_post}", "message": "pwned"},
            denied=frozenset({400, 403, 404}),
        ),
    ),
    "POST /posts/ephemeral": admin(
        write(
            "/posts/ephemeral",
            {"user_id": "{alice}", "post": {"channel_id": "{private}", "message": "pwned"}},
        )
    ),
    "POST /posts/ids": guarded(read("/posts/ids", hidden=True, body=list(SECRET_POSTS))),
    "GET /posts/{post_id}": guarded(*reads("/posts/{x}", SECRET_POSTS)),
    "PUT /posts/{post_id}": guarded(
        *(write(f"/posts/{p}", {"id": p, "message": "pwned"}) for p in SECRET_POSTS)
    ),
    "DELETE /posts/{post_id}": guarded(*each("/posts/{x}", SECRET_POSTS)),
    "PUT /posts/{post_id}/patch": guarded(
        *each("/posts/{x}/patch", SECRET_POSTS, body={"message": "pwned"})
    ),
    "GET /posts/{post_id}/thread": guarded(*reads("/posts/{x}/thread", SECRET_POSTS)),
    "POST /posts/{post_id}/pin": guarded(*each("/posts/{x}/pin", SECRET_POSTS)),
    "POST /posts/{post_id}/unpin": guarded(*each("/posts/{x}/unpin", SECRET_POSTS)),
    "GET /channels/{channel_id}/posts": guarded(*reads("/channels/{x}/posts", SECRET_CHANNELS)),
    "GET /channels/{channel_id}/pinned": guarded(*reads("/channels/{x}/pinned", SECRET_CHANNELS)),
    "GET /users/{user_id}/channels/{channel_id}/posts/unread": guarded(
        read(ALICE + "/channels/{private}/posts/unread"),
        write("/users/{self}/channels/{private}/posts/unread"),
    ),
    # Reactions
    "POST /posts/ids/reactions": guarded(
        read("/posts/ids/reactions", hidden=True, body=list(SECRET_POSTS))
    ),
    "GET /posts/{post_id}/reactions": guarded(*reads("/posts/{x}/reactions", SECRET_POSTS)),
    "POST /reactions": guarded(
        *(
            write("/reactions", {"user_id": "{self}", "post_id": p, "emoji_name": "smile"})
            for p in SECRET_POSTS
        )
    ),
    "DELETE /users/{user_id}/posts/{post_id}/reactions/{emoji_name}": guarded(
        write(ALICE + "/posts/{private_post}/reactions/smile"),
        write("/users/{self}/posts/{private_post}/reactions/smile"),
    ),
    # Search
    "POST /teams/{team_id}/posts/search": guarded(
        read("/teams/{team}/posts/search", "alice", hidden=True, body={"terms": "xylophonesecret"})
    ),
    "POST /posts/search": guarded(
        read("/posts/search", "alice", hidden=True, body={"terms": "xylophonesecret"})
    ),
    # Files
    "POST /files": guarded(write("/files", upload="files")),
    "GET /files/{file_id}": guarded(read("/files/{file}")),
    "GET /files/{file_id}/info": guarded(read("/files/{file}/info")),
    "GET /files/{file_id}/thumbnail": guarded(read("/files/{file}/thumbnail")),
    "GET /files/{file_id}/preview": guarded(read("/files/{file}/preview")),
    "GET /posts/{post_id}/files/info": guarded(read("/posts/{private_post}/files/info")),
    # The websocket: events are filtered per connection (test_events.py)
    "WS /websocket": Door("websocket", "test_events.py"),
    "WS /websocket/": Door("websocket", "test_events.py"),
}


# The routes outside /api/v4: static pages and files, the same for everybody, that carry nobody's
# data (the pages fetch it through the API above). Their headers: tests/api/test_page_headers.py.
PAGES: dict[str, str] = {
    "GET /": "hubbub's web client page (no WebappDirectory)",
    "GET /admin": "the console page; its data comes from the admin-only API routes",
    "GET /admin/": "the console page",
    "GET /_hubbub/{digest}/{name:path}": "hubbub's script, style and image files",
    "GET /static/{name:path}": "the WebappDirectory bundle's files",
    "GET /robots.txt": "keeps crawlers out (with a bundle)",
    "GET /{anything:path}": "the bundle's root.html for the app's own routes (with a bundle)",
}


def fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format_map(values)
    if isinstance(value, list):
        return [fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    return value


def send(
    rest: Rest, who: Account, method: str, probe: Probe, values: dict[str, str]
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {who.token}", "X-Requested-With": "XMLHttpRequest"}
    path = fill(probe.path, values)
    if probe.upload:
        data = {"channel_id": values["private"]} if probe.upload == "files" else {}
        files = [(probe.upload, ("x.png", small_png(), "image/png"))]
        return rest.http.request(method, path, headers=headers, data=data, files=files)
    body = fill(probe.body, values)
    return rest.http.request(method, path, headers=headers, json=body)


def _names_the_group(probe: Probe) -> bool:
    return "{gm" in probe.path or "{gm" in repr(probe.body)


def snapshot(rest: Rest, scene: Scene) -> dict[str, Any]:
    """Alice's things as the system admin (and alice, for her drafts) sees them."""
    v = scene.values(scene.admin)
    paths = [
        "/channels/{private}",
        "/channels/{dm}",
        "/channels/{gm}",
        "/channels/{archived}",
        "/channels/{private}/members",
        "/channels/{dm}/members",
        "/channels/{gm}/members",
        "/channels/{private}/posts",
        "/channels/{dm}/posts",
        "/channels/{gm}/posts",
        "/posts/{private_post}/reactions",
        "/files/{file}/info",
        "/users/{alice}",
        "/users/{alice}/preferences",
        "/users/{alice}/teams/{team}/channels/categories",
        "/users/{alice}/tokens",
        "/users/{alice}/teams",
        "/teams/{team}",
        "/teams/{team}/members",
        "/teams/{team2}",
        "/teams/{team2}/members",
        "/teams/{team2}/channels",
        "/emoji/{emoji}",
        "/roles/{channel_user_role}",
        "/jobs/{job}",
    ]
    state: dict[str, Any] = {}
    for path in paths:
        resp = rest.http.get(
            fill(path, v), headers={"Authorization": f"Bearer {scene.admin.token}"}
        )
        state[path] = (resp.status_code, _stable(resp))
    drafts = rest.http.get(
        fill("/users/{alice}/teams/{team}/drafts", v),
        headers={"Authorization": f"Bearer {scene.alice.token}"},
    )
    state["drafts"] = (drafts.status_code, _stable(drafts))
    return state


def _stable(resp: httpx.Response) -> Any:
    if "json" not in resp.headers.get("content-type", ""):
        return resp.content
    return resp.json()


GUARDED = [key for key, door in ROUTES.items() if door.kind in ("guarded", "admin")]


@pytest.mark.parametrize("route", GUARDED)
def test_outsiders_are_refused(route: str, rest: Rest, scene: Scene, findings: list[str]) -> None:
    method = route.split()[0]
    door = ROUTES[route]
    before = snapshot(rest, scene)
    for attacker in (scene.mallory, scene.eve, scene.carol):
        values = scene.values(attacker)
        insider_of_gm = attacker is scene.carol
        secrets = scene.secrets_of_others() if insider_of_gm else scene.secrets()
        for probe in door.probes:
            if insider_of_gm and not probe.hidden and _names_the_group(probe):
                continue  # carol is in it: the insiders' side of that door
            resp = send(rest, attacker, method, probe, values)
            where = f"{attacker.username}: {method} {fill(probe.path, values)}"
            findings.append(f"{door.kind} | {route} | {where} -> {resp.status_code}")
            if probe.hidden and resp.status_code == 200:
                leaked = [s for s in secrets if s in resp.text]
                assert not leaked, f"{where} showed {leaked}"
                continue
            assert resp.status_code in probe.denied, f"{where}: {resp.status_code} {resp.text}"
            if resp.status_code in (403, 404) and resp.content:
                body = resp.json()
                assert {"id", "message", "status_code"} <= set(body), f"{where}: {body}"
    after = snapshot(rest, scene)
    changed = [path for path in before if before[path] != after[path]]
    assert not changed, f"{route}: refused, yet changed {changed}"
    for probe in door.probes:
        for name in probe.insiders:
            insider = getattr(scene, name)
            resp = send(rest, insider, method, probe, scene.values(insider))
            assert resp.status_code == 200, (
                f"{route}: the insider {name} must get in: {resp.status_code} {resp.text[:300]}"
            )
            if probe.hidden:
                assert any(s in resp.text for s in scene.secrets()), (
                    f"{route}: {name} sees no secret, so the probe shows nothing"
                )


def test_every_route_is_classified(tmp_path: Path) -> None:
    actual = set(api_route_keys(tmp_path))
    unclassified = sorted(actual - set(ROUTES))
    assert not unclassified, (
        "routes not in tests/authz/test_matrix.py ROUTES (classify them, and probe them if they "
        f"touch anyone else's data): {unclassified}"
    )
    stale = sorted(set(ROUTES) - actual)
    assert not stale, f"ROUTES lists routes the application no longer has: {stale}"
    for key, door in ROUTES.items():
        assert door.kind in ("public", "own", "shared", "admin", "guarded", "websocket"), key
        assert door.probes or door.why, f"{key}: say why it needs no probe"


def test_every_page_route_is_classified(tmp_path: Path) -> None:
    bundle = tmp_path / "client"
    bundle.mkdir()
    (bundle / "root.html").write_text("<!doctype html>")
    actual = set(page_route_keys(tmp_path)) | set(page_route_keys(tmp_path, str(bundle)))
    unclassified = sorted(actual - set(PAGES))
    assert not unclassified, (
        "routes outside /api/v4 not in tests/authz/test_matrix.py PAGES (a route that serves "
        f"anyone's data belongs under /api/v4, in ROUTES): {unclassified}"
    )
    stale = sorted(set(PAGES) - actual)
    assert not stale, f"PAGES lists routes the application no longer has: {stale}"


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Every attempt and its answer (`kind | route | who: request -> status`), summed up at the
    end (shown with `-s`): the routes per kind, and the attempts per kind, attacker and status."""
    seen: list[str] = []
    yield seen
    out = tmp_path_factory.mktemp("authz") / "findings.txt"
    out.write_text("\n".join(seen) + "\n")
    print(f"\nauthorization matrix, all attempts in {out}")
    print(f"  {summary(seen)}")


def summary(seen: list[str]) -> str:
    routes = Counter(door.kind for door in ROUTES.values())
    lines = [f"routes by kind {dict(sorted(routes.items()))}, pages {len(PAGES)}"]
    tried: dict[str, set[str]] = {}
    by_kind: dict[str, Counter[str]] = {}
    by_who: dict[str, Counter[str]] = {}
    for line in seen:
        kind, route, attempt = line.split(" | ")
        who, status = attempt.split(":", 1)[0], attempt.rsplit(" ", 1)[1]
        tried.setdefault(kind, set()).add(route)
        by_kind.setdefault(kind, Counter())[status] += 1
        by_who.setdefault(who.rstrip("0123456789x"), Counter())[status] += 1
    for kind, counts in sorted(by_kind.items()):
        attempts = sum(counts.values())
        lines.append(f"{kind}: {len(tried[kind])} routes, {attempts} attempts {dict(counts)}")
    for who, counts in sorted(by_who.items()):
        lines.append(f"{who}: {sum(counts.values())} attempts {dict(counts)}")
    lines.append(f"total: {len(seen)} attempts {dict(Counter(x.rsplit(' ', 1)[1] for x in seen))}")
    return "\n  ".join(lines)
