"""Roles change what the API allows on every node at once: a role patched through node A, and a
role given to a user through node A, decide the very next requests on nodes B and C.

Each node keeps the role definitions in memory (60 s at most); B and C learn of a patch from the
`roles_changed` bus message over Redis, and of a user's new roles from `invalidate_user`. The
deadline below is far shorter than that cache, so a node that missed the message fails the test.
Every figure printed is the time from A's answer to B's (or C's) first request that obeys.
"""

from __future__ import annotations

import time
from typing import Any

from tests.support.cluster import Cluster
from tests.support.rest import Org, Rest
from tests.support.wait import wait_until

DEADLINE = 3.0  # seconds; the role cache would keep a stale copy for 60


def _status(rest: Rest, method: str, path: str, token: str, json: Any = None) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return rest.http.request(method, path, json=json, headers=headers).status_code


def _obeyed_within(check: Any, what: str) -> float:
    started = time.monotonic()
    wait_until(check, timeout=DEADLINE, what=what, interval=0.005)
    return time.monotonic() - started


def test_role_patch_on_a_decides_posting_on_b_and_c(
    cluster: Cluster, rests: list[Rest], org: Org
) -> None:
    a, others = rests[0], rests[1:]
    channel = org.public["id"]

    def post_status(rest: Rest) -> int:
        return _status(
            rest, "POST", "/posts", org.alice.token, {"channel_id": channel, "message": "m"}
        )

    # B and C have read (and cached) the roles: posting works there.
    for rest in others:
        assert post_status(rest) == 201
    role = a.call("GET", "/roles/name/channel_user", org.admin.token)
    default = role["permissions"]
    without = [p for p in default if p != "create_post"]
    try:
        a.call("PUT", f"/roles/{role['id']}/patch", org.admin.token, {"permissions": without})
        for i, rest in enumerate(others, start=1):
            took = _obeyed_within(
                lambda rest=rest: post_status(rest) == 403, f"node {i} refuses create_post"
            )
            print(f"node {i} refused {took * 1000:.1f} ms after the patch on node 0")
    finally:
        a.call("PUT", f"/roles/{role['id']}/patch", org.admin.token, {"permissions": default})
    for i, rest in enumerate(others, start=1):
        took = _obeyed_within(lambda rest=rest: post_status(rest) == 201, f"node {i} allows again")
        print(f"node {i} allowed {took * 1000:.1f} ms after the restore on node 0")


def test_user_roles_given_on_a_decide_tokens_on_b(
    cluster: Cluster, rests: list[Rest], org: Org
) -> None:
    a, b = rests[0], rests[1]
    path = f"/users/{org.bob.id}/tokens"

    def token_status() -> int:
        return _status(b, "POST", path, org.bob.token, {"description": "cross-node"})

    assert token_status() == 403  # a plain user: no create_user_access_token
    roles = {"roles": "system_user system_user_access_token"}
    a.call("PUT", f"/users/{org.bob.id}/roles", org.admin.token, roles)
    took = _obeyed_within(lambda: token_status() == 201, "node 1 lets bob create a token")
    print(f"node 1 allowed {took * 1000:.1f} ms after the grant on node 0")
    a.call("PUT", f"/users/{org.bob.id}/roles", org.admin.token, {"roles": "system_user"})
    took = _obeyed_within(lambda: token_status() == 403, "node 1 refuses bob again")
    print(f"node 1 refused {took * 1000:.1f} ms after the removal on node 0")


def test_team_and_channel_admin_given_on_a_decide_on_b(
    cluster: Cluster, rests: list[Rest], org: Org
) -> None:
    """Membership roles are read with each check: a `team_admin` or `channel_admin` given or
    taken through node A decides carol's and bob's next request on node B."""
    a, b = rests[0], rests[1]
    team = org.team["id"]
    channel = org.private["id"]

    def patch_team() -> int:  # manage_team: team_admin, not team_user
        body = {"display_name": f"renamed {time.monotonic_ns()}"}
        return _status(b, "PUT", f"/teams/{team}/patch", org.carol.token, body)

    def set_alices_channel_roles() -> int:  # manage_channel_roles: channel_admin only
        path = f"/channels/{channel}/members/{org.alice.id}/roles"
        return _status(b, "PUT", path, org.bob.token, {"roles": "channel_user"})

    doors = [
        ("team_admin", patch_team, f"/teams/{team}/members/{org.carol.id}/roles", "team_user"),
        (
            "channel_admin",
            set_alices_channel_roles,
            f"/channels/{channel}/members/{org.bob.id}/roles",
            "channel_user",
        ),
    ]
    for role, door, grant, plain in doors:
        assert door() == 403, f"{role}: allowed before the grant"
        try:
            a.call("PUT", grant, org.admin.token, {"roles": f"{plain} {role}"})
            took = _obeyed_within(lambda door=door: door() == 200, f"node 1 obeys {role}")
            print(f"node 1 allowed {took * 1000:.1f} ms after {role} was given on node 0")
        finally:
            a.call("PUT", grant, org.admin.token, {"roles": plain})
        took = _obeyed_within(lambda door=door: door() == 403, f"node 1 forgets {role}")
        print(f"node 1 refused {took * 1000:.1f} ms after {role} was taken on node 0")
