"""The authorization matrix's scene (tests/authz/): a real server holding somebody's private
things, and the people around them.

- `alice` owns the secrets: a private channel `private` (with `bob`), a direct channel with
  `bob`, a group channel with `bob` and `carol`, an invite-only team `team2`, an archived private
  channel `archived`, posts in each (with the word `SECRET_WORD`, a reaction, a pin, a file), a
  draft, preferences, a custom sidebar category, a personal access token, a custom emoji.
- `mallory` is in `team` and its public channel `public`, in nothing of alice's; she holds the
  `system_user_access_token` role, so the token endpoints get past their own permission and
  have to decide on whose token it is.
- `eve` is in no team at all.
- `carol` is in `team`, `public` and the group channel, in none of alice's other things: the
  matrix has her try every door that does not name the group channel.
- `admin` is the system admin (the first user).

`values(attacker)` gives every placeholder a probe may use: ids of the secrets, `self` (the
attacker's own id), names.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image

from tests.support.rest import Account, Rest

SECRET_WORD = "xylophonesecret"


def small_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (6, 6), "blue").save(out, "PNG")
    return out.getvalue()


@dataclass
class Scene:
    admin: Account
    alice: Account
    bob: Account
    carol: Account
    mallory: Account
    eve: Account
    team: dict[str, Any]
    team2: dict[str, Any]
    public: dict[str, Any]
    private: dict[str, Any]
    archived: dict[str, Any]
    dm: dict[str, Any]
    gm: dict[str, Any]
    private_post: dict[str, Any]
    dm_post: dict[str, Any]
    gm_post: dict[str, Any]
    file_id: str
    token_id: str
    category_id: str
    emoji_id: str
    job_id: str
    channel_user_role: str
    bot_id: str

    def secrets(self) -> list[str]:
        """Strings that must never reach mallory or eve."""
        return [
            SECRET_WORD,
            self.private["id"],
            self.archived["id"],
            self.dm["id"],
            self.gm["id"],
            self.team2["id"],
            self.private_post["id"],
            self.dm_post["id"],
            self.gm_post["id"],
            self.file_id,
        ]

    def secrets_of_others(self) -> list[str]:
        """What must never reach carol, who is in the group channel (and so may see its posts,
        which carry `SECRET_WORD`) but not in the private channel, the DM or `team2`."""
        group = {SECRET_WORD, self.gm["id"], self.gm_post["id"]}
        return [s for s in self.secrets() if s not in group]

    def values(self, attacker: Account) -> dict[str, str]:
        return {
            "self": attacker.id,
            "alice": self.alice.id,
            "alice_name": self.alice.username,
            "bob": self.bob.id,
            "team": self.team["id"],
            "team_name": self.team["name"],
            "team2": self.team2["id"],
            "team2_name": self.team2["name"],
            "public": self.public["id"],
            "private": self.private["id"],
            "private_name": self.private["name"],
            "archived": self.archived["id"],
            "dm": self.dm["id"],
            "gm": self.gm["id"],
            "private_post": self.private_post["id"],
            "dm_post": self.dm_post["id"],
            "gm_post": self.gm_post["id"],
            "private_post_at": str(self.private_post["create_at"]),
            "file": self.file_id,
            "token": self.token_id,
            "category": self.category_id,
            "emoji": self.emoji_id,
            "job": self.job_id,
            "channel_user_role": self.channel_user_role,
            "bot": self.bot_id,
        }


def _call(rest: Rest, method: str, path: str, who: Account, body: Any = None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {who.token}"}
    resp = rest.http.request(method, path, json=body, headers=headers, **kw)
    assert resp.status_code < 300, f"{method} {path}: {resp.status_code} {resp.text[:300]}"
    return resp.json() if resp.content else None


def _secret_post(rest: Rest, author: Account, channel_id: str) -> dict[str, Any]:
    return rest.post(author, channel_id, f"the {SECRET_WORD} of {channel_id}")


def make_scene(rest: Rest) -> Scene:
    admin = rest.user(None, "admin")
    alice, bob, carol, mallory, eve = (
        rest.user(admin, n) for n in ("alice", "bob", "carol", "mallory", "eve")
    )
    team = rest.team(admin)
    for user in (alice, bob, carol, mallory):
        rest.join_team(admin, team["id"], user)
    public = rest.channel(admin, team["id"], "O")
    for user in (alice, bob, carol, mallory):
        rest.join_channel(admin, public["id"], user)
    private = rest.channel(alice, team["id"], "P")
    rest.join_channel(alice, private["id"], bob)
    archived = rest.channel(alice, team["id"], "P")
    rest.post(alice, archived["id"], f"archived {SECRET_WORD}")
    _call(rest, "DELETE", f"/channels/{archived['id']}", alice)
    dm = _call(rest, "POST", "/channels/direct", alice, [alice.id, bob.id])
    gm = _call(rest, "POST", "/channels/group", alice, [alice.id, bob.id, carol.id])
    name = f"inviteonly{alice.id[:8]}"
    team2 = _call(rest, "POST", "/teams", alice, {"name": name, "display_name": name, "type": "I"})

    upload = rest.http.post(
        "/files",
        headers={"Authorization": f"Bearer {alice.token}"},
        data={"channel_id": private["id"]},
        files=[("files", ("secret.png", small_png(), "image/png"))],
    )
    assert upload.status_code == 201, upload.text
    file_id = upload.json()["file_infos"][0]["id"]
    private_post = _call(
        rest,
        "POST",
        "/posts",
        alice,
        {"channel_id": private["id"], "message": f"the {SECRET_WORD}", "file_ids": [file_id]},
    )
    reply = {"channel_id": private["id"], "root_id": private_post["id"], "message": "reply"}
    _call(rest, "POST", "/posts", bob, reply)
    _call(
        rest,
        "POST",
        "/reactions",
        alice,
        {"user_id": alice.id, "post_id": private_post["id"], "emoji_name": "smile"},
    )
    _call(rest, "POST", f"/posts/{private_post['id']}/pin", alice)
    dm_post = _secret_post(rest, alice, dm["id"])
    gm_post = _secret_post(rest, alice, gm["id"])

    _call(rest, "POST", "/drafts", alice, {"channel_id": private["id"], "message": "draft"})
    pref = {"user_id": alice.id, "category": "secret", "name": "n", "value": SECRET_WORD}
    _call(rest, "PUT", f"/users/{alice.id}/preferences", alice, [pref])
    category = _call(
        rest,
        "POST",
        f"/users/{alice.id}/teams/{team['id']}/channels/categories",
        alice,
        {"user_id": alice.id, "team_id": team["id"], "display_name": "Mine", "channel_ids": []},
    )
    for user in (alice, mallory):
        roles = {"roles": "system_user system_user_access_token"}
        _call(rest, "PUT", f"/users/{user.id}/roles", admin, roles)
    token = _call(rest, "POST", f"/users/{alice.id}/tokens", alice, {"description": "mine"})
    emoji = httpx.post(
        str(rest.http.base_url) + "/emoji",
        headers={"Authorization": f"Bearer {alice.token}"},
        data={"emoji": f'{{"name": "alicemoji", "creator_id": "{alice.id}"}}'},
        files={"image": ("e.png", small_png(), "image/png")},
        timeout=10,
    )
    assert emoji.status_code < 300, emoji.text
    job = _call(rest, "POST", "/jobs", admin, {"type": "cleanup"})
    role = _call(rest, "GET", "/roles/name/channel_user", admin)
    bot = _call(rest, "POST", "/bots", admin, {"username": "adminsbot"})
    return Scene(
        admin=admin,
        alice=alice,
        bob=bob,
        carol=carol,
        mallory=mallory,
        eve=eve,
        team=team,
        team2=team2,
        public=public,
        private=private,
        archived=archived,
        dm=dm,
        gm=gm,
        private_post=private_post,
        dm_post=dm_post,
        gm_post=gm_post,
        file_id=file_id,
        token_id=token["id"],
        category_id=category["id"],
        emoji_id=emoji.json()["id"],
        job_id=job["id"],
        channel_user_role=role["id"],
        bot_id=bot["user_id"],
    )
