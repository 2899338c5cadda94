"""Preferences over the API, on SQLite and PostgreSQL: any category/name/value, only one's own
(or anyone's with edit_other_users), Mattermost's validation and error ids, and the events."""

from __future__ import annotations

import json

from hubbub.app import Hubbub
from tests.support.api import API, User


def _pref(user: User, category: str, name: str, value: str) -> dict[str, str]:
    return {"user_id": user.id, "category": category, "name": name, "value": value}


async def test_save_read_replace_and_delete(api: API, admin: User, node: Hubbub) -> None:
    user = await api.new_user(admin.token)
    assert await api.call("GET", "/users/me/preferences", token=user.token) == []
    theme = _pref(user, "display_settings", "use_military_time", "true")
    recent = _pref(user, "recent_emojis", user.id, '[{"name":"smile","usageCount":2}]')
    body = await api.call("PUT", "/users/me/preferences", token=user.token, json=[theme, recent])
    assert body == {"status": "OK"}
    stored = await api.call("GET", f"/users/{user.id}/preferences", token=user.token)
    assert sorted(stored, key=lambda p: p["category"]) == [theme, recent]

    # Saving the same key again replaces its value.
    await api.call(
        "PUT", "/users/me/preferences", token=user.token, json=[{**theme, "value": "false"}]
    )
    one = await api.call(
        "GET", "/users/me/preferences/display_settings/name/use_military_time", token=user.token
    )
    assert one == {**theme, "value": "false"}
    category = await api.call("GET", "/users/me/preferences/recent_emojis", token=user.token)
    assert category == [recent]

    await api.call("POST", "/users/me/preferences/delete", token=user.token, json=[recent])
    left = await api.call("GET", "/users/me/preferences", token=user.token)
    assert left == [{**theme, "value": "false"}]

    [changed, *_] = node.events.named("preferences_changed")
    assert changed.broadcast.user_id == user.id
    # JSON-in-JSON, as Mattermost sends it.
    assert isinstance(changed.data["preferences"], str)
    assert json.loads(changed.data["preferences"]) == [theme, recent]
    [deleted] = node.events.named("preferences_deleted")
    assert deleted.broadcast.user_id == user.id
    assert json.loads(deleted.data["preferences"]) == [recent]


async def test_missing_category_and_name(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    missing = await api.call(
        "GET", "/users/me/preferences/nothing_here", token=user.token, expect=404
    )
    assert missing["id"] == "api.preference.preferences_category.get.app_error"
    # Mattermost answers a missing single preference with 400.
    one = await api.call(
        "GET", "/users/me/preferences/nothing_here/name/x", token=user.token, expect=400
    )
    assert one["id"] == "app.preference.get.app_error"
    # Path segments are [A-Za-z0-9_]+; anything else is no route at all.
    await api.call("GET", "/users/me/preferences/bad-name", token=user.token, expect=404)


async def test_other_users_preferences(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    other = await api.new_user(admin.token)
    pref = _pref(user, "tutorial_step", user.id, "999")
    await api.call("PUT", "/users/me/preferences", token=user.token, json=[pref])

    denied = await api.call("GET", f"/users/{user.id}/preferences", token=other.token, expect=403)
    assert denied["id"] == "api.context.permissions.app_error"
    await api.call(
        "PUT", f"/users/{user.id}/preferences", token=other.token, json=[pref], expect=403
    )
    await api.call(
        "POST", f"/users/{user.id}/preferences/delete", token=other.token, json=[pref], expect=403
    )
    # A system admin has edit_other_users.
    assert await api.call("GET", f"/users/{user.id}/preferences", token=admin.token) == [pref]

    # Preferences in the body must belong to the user in the path.
    foreign = _pref(other, "tutorial_step", other.id, "1")
    wrong = await api.call(
        "PUT", "/users/me/preferences", token=user.token, json=[foreign], expect=403
    )
    assert wrong["id"] == "api.preference.update_preferences.set.app_error"
    wrong = await api.call(
        "POST", "/users/me/preferences/delete", token=user.token, json=[foreign], expect=403
    )
    assert wrong["id"] == "api.preference.delete_preferences.delete.app_error"
    await api.call("GET", "/users/me/preferences", expect=401)
    await api.call("GET", "/users/nonsense/preferences", token=user.token, expect=400)


async def test_validation(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)

    async def rejected(pref: dict[str, str]) -> str:
        body = await api.call(
            "PUT", "/users/me/preferences", token=user.token, json=[pref], expect=400
        )
        return str(body["id"])

    assert (
        await rejected(_pref(user, "", "n", "v")) == "model.preference.is_valid.category.app_error"
    )
    assert (
        await rejected(_pref(user, "c" * 33, "n", "v"))
        == "model.preference.is_valid.category.app_error"
    )
    assert (
        await rejected(_pref(user, "c", "n" * 33, "v"))
        == "model.preference.is_valid.name.app_error"
    )
    assert (
        await rejected(_pref(user, "c", "n", "v" * 20_001))
        == "model.preference.is_valid.value.app_error"
    )
    assert (
        await rejected(_pref(user, "theme", "", "not json"))
        == "model.preference.is_valid.theme.app_error"
    )
    assert (
        await rejected(_pref(user, "sidebar_settings", "limit_visible_dms_gms", "41"))
        == "model.preference.is_valid.limit_visible_dms_gms.app_error"
    )
    body = await api.call(
        "PUT", "/users/me/preferences", token=user.token, json={"not": "a list"}, expect=400
    )
    assert body["id"] == "api.context.invalid_param.app_error"
    # Nothing was stored by the rejected requests.
    assert await api.call("GET", "/users/me/preferences", token=user.token) == []


async def test_theme_colours_are_cleaned(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    theme = {"sidebarBg": "#145dbf", "buttonBg": "red; }", "type": "Denim", "image": "x"}
    pref = _pref(user, "theme", "", json.dumps(theme))
    await api.call("PUT", "/users/me/preferences", token=user.token, json=[pref])
    [stored] = await api.call("GET", "/users/me/preferences/theme", token=user.token)
    assert json.loads(stored["value"]) == {**theme, "buttonBg": "#ffffff"}
