"""`GET /api/v4/hubbub/console` (the operator console's data) on SQLite and PostgreSQL: system
admins only, one node without clustering, the data tier probed, websocket figures present."""

from __future__ import annotations

from hubbub.app import Hubbub
from tests.support.api import API, User


async def test_only_system_admins_get_the_console(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    refused = await api.call("GET", "/hubbub/console", token=user.token, expect=403)
    assert refused["id"] == "api.context.permissions.app_error"
    await api.call("GET", "/hubbub/console", expect=401)
    await api.call("GET", "/hubbub/console", token="x" * 26, expect=401)


async def test_the_console_page_is_403_for_someone_signed_in_who_is_not_an_admin(
    api: API, admin: User
) -> None:
    user = await api.new_user(admin.token)
    refused = await api.client.get("/admin", headers={"Cookie": f"MMAUTHTOKEN={user.token}"})
    assert refused.status_code == 403
    # The same page (it says "Forbidden" in words once it asks the API), never cached as a 304.
    assert 'src="/_hubbub/' in refused.text
    again = await api.client.get(
        "/admin",
        headers={"Cookie": f"MMAUTHTOKEN={user.token}", "If-None-Match": refused.headers["etag"]},
    )
    assert again.status_code == 403
    allowed = await api.client.get("/admin", headers={"Cookie": f"MMAUTHTOKEN={admin.token}"})
    assert allowed.status_code == 200 and allowed.text == refused.text
    # Not signed in: the page, which asks to log in.
    assert (await api.client.get("/admin")).status_code == 200
    assert (
        await api.client.get("/admin", headers={"Authorization": f"Bearer {user.token}"})
    ).status_code == 403


async def test_one_node_without_a_cluster(api: API, admin: User, node: Hubbub) -> None:
    view = await api.call("GET", "/hubbub/console", token=admin.token)
    assert view["cluster_enabled"] is False
    assert view["answered_by"] == node.node_name
    [me] = view["nodes"]
    assert me["state"] == "green" and me["reasons"] == ["ok"], me
    assert me["this_node"] is True and me["leader"] is True
    assert set(me["websockets"]) >= {
        "connections",
        "window_seconds",
        "disconnects",
        "resumes",
        "refetches",
        "slow_consumer_closes",
        "dropped_events",
    }
    database = view["data"]["database"]
    assert database["status"] == "ok" and database["driver"] == node.db.driver
    assert database["role"] in {"primary", "single file (no replicas)"}
    assert view["data"]["redis"]["used"] is False
    files = view["data"]["files"]
    assert files["status"] == "ok" and files["driver"] == "local" and files["shared"] is True


async def test_a_draining_node_is_yellow(api: API, admin: User, node: Hubbub) -> None:
    node.draining = True
    try:
        view = await api.call("GET", "/hubbub/console", token=admin.token)
    finally:
        node.draining = False
    [me] = view["nodes"]
    assert me["state"] == "yellow"
    assert me["reasons"] == ["draining: finishing requests, websockets moved away"]
