"""The websocket half of the authorization matrix: nobody receives the events of a channel they
cannot read (bob, who is in those channels, hears them: the silence is not a lost stream).

`mallory` (in alice's team, in none of her channels) and `eve` (in no team) hold websockets
while alice and bob use the private channel, the direct and the group channel: posts, a reply,
an edit, a reaction, a pin, typing, a file, a header change, a new private channel, members
coming and going, a thread followed, a draft, a preference. Then the system admin posts where
each of the two will see it (the public channel for mallory, a direct channel for eve): once
that arrives, everything published before it has been delivered, and nothing that arrived may
name any of alice's secrets. mallory and eve also try to subscribe themselves to typing in the
private channel, which the server refuses, and claim (`presence`) to have alice's private, direct
and group channels open, which must not let them hear those channels.
"""

from __future__ import annotations

import json
from typing import Any

from tests.support.authz_scene import SECRET_WORD, Scene, small_png
from tests.support.node import Node
from tests.support.rest import Account, Rest
from tests.support.ws import RawWS, hello_of, read_until_post


def _call(rest: Rest, who: Account, method: str, path: str, body: Any = None) -> Any:
    resp = rest.http.request(
        method, path, json=body, headers={"Authorization": f"Bearer {who.token}"}
    )
    assert resp.status_code < 300, f"{method} {path}: {resp.status_code} {resp.text[:300]}"
    return resp.json() if resp.content else None


def _alice_and_bob_busy(rest: Rest, scene: Scene, alice_ws: RawWS) -> list[str]:
    """Everything the outsiders must not hear about; returns new secrets made on the way."""
    alice, bob, carol = scene.alice, scene.bob, scene.carol
    made: list[str] = []
    for channel in (scene.private, scene.dm, scene.gm):
        cid = channel["id"]
        root = rest.post(alice, cid, f"live {SECRET_WORD}")
        made.append(root["id"])
        reply = {"channel_id": cid, "root_id": root["id"], "message": f"re {SECRET_WORD}"}
        made.append(_call(rest, bob, "POST", "/posts", reply)["id"])
        _call(rest, alice, "PUT", f"/posts/{root['id']}/patch", {"message": SECRET_WORD * 2})
        reaction = {"user_id": bob.id, "post_id": root["id"], "emoji_name": "smile"}
        _call(rest, bob, "POST", "/reactions", reaction)
        _call(rest, alice, "POST", f"/posts/{root['id']}/pin")
        _call(rest, alice, "PUT", f"/channels/{cid}/patch", {"header": SECRET_WORD})
        typing = alice_ws.request(9, "user_typing", {"channel_id": cid, "parent_id": ""})
        assert typing["status"] == "OK", typing
        follow = f"/users/{alice.id}/teams/{scene.team['id']}/threads/{root['id']}/following"
        _call(rest, alice, "PUT", follow)
        _call(rest, alice, "POST", "/drafts", {"channel_id": cid, "message": SECRET_WORD})
        _call(rest, alice, "POST", f"/channels/members/{alice.id}/view", {"channel_id": cid})
    upload = rest.http.post(
        "/files",
        headers={"Authorization": f"Bearer {alice.token}"},
        data={"channel_id": scene.private["id"]},
        files=[("files", ("live.png", small_png(), "image/png"))],
    )
    assert upload.status_code == 201, upload.text
    file_id = upload.json()["file_infos"][0]["id"]
    made.append(file_id)
    body = {"channel_id": scene.private["id"], "message": SECRET_WORD, "file_ids": [file_id]}
    made.append(_call(rest, alice, "POST", "/posts", body)["id"])
    fresh = rest.channel(alice, scene.team["id"], "P")
    made.append(fresh["id"])
    rest.join_channel(alice, fresh["id"], bob)
    rest.join_channel(alice, scene.private["id"], carol)
    _call(rest, alice, "DELETE", f"/channels/{scene.private['id']}/members/{carol.id}")
    pref = {"user_id": alice.id, "category": "secret", "name": "live", "value": SECRET_WORD}
    _call(rest, alice, "PUT", f"/users/{alice.id}/preferences", [pref])
    _call(rest, alice, "DELETE", f"/posts/{made[0]}")
    return made


def test_outsiders_hear_nothing_of_channels_they_cannot_read(
    live_node: Node, rest: Rest, scene: Scene
) -> None:
    people = (scene.alice, scene.bob, scene.mallory, scene.eve)
    sockets = {a.username: live_node.connect(a) for a in people}
    try:
        for ws in sockets.values():
            hello_of(ws)
        for outsider in (scene.mallory, scene.eve):
            ws = sockets[outsider.username]
            refused = ws.request(
                7, "user_typing", {"channel_id": scene.private["id"], "parent_id": ""}
            )
            assert refused["status"] == "FAIL", refused
            # Saying one has alice's channels open only narrows what one hears (scope.py).
            for n, view in enumerate(
                (
                    {"channel_id": scene.private["id"], "team_id": scene.team["id"]},
                    {"thread_channel_id": scene.dm["id"], "is_thread_view": False},
                    {"thread_channel_id": scene.gm["id"], "is_thread_view": True},
                )
            ):
                assert ws.request(20 + n, "presence", view)["status"] == "OK"
        made = _alice_and_bob_busy(rest, scene, sockets[scene.alice.username])
        secrets = [*scene.secrets(), *made]
        eve_dm = _call(
            rest, scene.admin, "POST", "/channels/direct", [scene.admin.id, scene.eve.id]
        )
        for outsider, channel_id in (
            (scene.mallory, scene.public["id"]),
            (scene.eve, eve_dm["id"]),
        ):
            marker = rest.post(scene.admin, channel_id, "all delivered before this")
            seen: list[dict[str, Any]] = []
            read_until_post(sockets[outsider.username], marker["id"], timeout=10, seen=seen)
            heard = [json.dumps(m) for m in seen]
            leaks = [(s, h[:200]) for h in heard for s in secrets if s in h]
            assert not leaks, f"{outsider.username} heard {leaks}"
            events = sorted({m.get("event", "") for m in seen})
            print(f"{outsider.username} heard {len(seen)} events, none secret: {events}")
            if outsider is scene.mallory:
                # bob, in the same public channel and in alice's, heard it all by this marker:
                # the events were published, so the outsiders' silence means something.
                bobs: list[dict[str, Any]] = []
                read_until_post(sockets[scene.bob.username], marker["id"], timeout=10, seen=bobs)
                assert sum(SECRET_WORD in json.dumps(m) for m in bobs) >= 9, bobs
    finally:
        for ws in sockets.values():
            ws.close()
