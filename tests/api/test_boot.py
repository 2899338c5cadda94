"""The small calls the official apps make on every load, and the client configuration they read
first; on SQLite and PostgreSQL."""

from __future__ import annotations

from hubbub import MATTERMOST_VERSION
from hubbub.app import Hubbub
from tests.support.api import API, User


async def test_client_config(api: API) -> None:
    resp = await api.raw("GET", "/config/client?format=old")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    config = resp.json()
    assert all(isinstance(v, str) for v in config.values())
    assert config["Version"] == MATTERMOST_VERSION
    assert config["EnableEmojiPicker"] == "true"
    # Served since issue 10's second half, with Mattermost's defaults.
    assert config["CollapsedThreads"] == "always_on"
    assert config["EnableCustomEmoji"] == "true"
    assert config["AllowSyncedDrafts"] == "true"
    assert config["PluginsEnabled"] == "true"
    assert config["EnableUserAccessTokens"] == "true"  # from the test configuration
    assert config["SQLDriverName"] in ("sqlite", "postgres")
    # Reports are only asked for when they can be counted.
    assert config["EnableClientMetrics"] == "false"
    # No account yet: the login page offers to create the first one.
    assert config["NoAccounts"] == "true"
    await api.new_user(prefix="first")
    assert (await api.call("GET", "/config/client?format=old"))["NoAccounts"] == "false"


async def test_server_limits_and_user_stats(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    limits = await api.call("GET", "/limits/server", token=user.token)
    assert limits == {
        "maxUsersLimit": 0,
        "maxUsersHardLimit": 0,
        "activeUserCount": 0,  # only admins see the count
        "singleChannelGuestCount": 0,
        "singleChannelGuestLimit": 0,
        "postHistoryLimit": 0,
        "lastAccessiblePostTime": 0,
    }
    assert (await api.call("GET", "/limits/server", token=admin.token))["activeUserCount"] == 2
    assert await api.call("GET", "/users/stats", token=user.token) == {"total_users_count": 2}
    await api.call("DELETE", f"/users/{user.id}", token=admin.token)
    assert await api.call("GET", "/users/stats", token=admin.token) == {"total_users_count": 1}
    await api.call("GET", "/users/stats", expect=401)
    await api.call("GET", "/limits/server", expect=401)


async def test_plugins_notices_and_trial(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    team = await api.new_team(admin.token)
    assert await api.call("GET", "/plugins/webapp") == []
    assert await api.call("GET", "/plugins/statuses", token=admin.token) == []
    assert await api.call("GET", "/plugins", token=admin.token) == {"active": [], "inactive": []}
    denied = await api.call("GET", "/plugins/statuses", token=user.token, expect=403)
    assert denied["id"] == "api.context.permissions.app_error"

    notices = await api.call(
        "GET", f"/system/notices/{team['id']}?clientVersion=11.9.0&locale=en", token=user.token
    )
    assert notices == []
    await api.call("GET", "/system/notices/bad", token=user.token, expect=400)
    assert await api.call(
        "PUT", "/system/notices/view", token=user.token, json=["some_notice"]
    ) == {"status": "OK"}

    assert await api.call("GET", "/trial-license/prev", token=user.token) == {"IsLicensed": "false"}


async def test_client_performance_reports_are_counted(api: API, admin: User, node: Hubbub) -> None:
    report = {
        "version": "0.1.0",
        "client_id": "abc",
        "labels": {"platform": "linux", "agent": "chrome"},
        "start": 1,
        "end": 2,
        "counters": [{"metric": "long_tasks", "value": 1, "timestamp": 1}],
        "histograms": [
            {"metric": "channel_switch", "value": 10, "timestamp": 1},
            {"metric": "page_load", "value": 100, "timestamp": 1},
        ],
    }

    def sample(name: str) -> float:
        return node.metrics.registry.get_sample_value(name) or 0.0

    before = sample("hubbub_client_performance_reports_total")
    assert await api.call("POST", "/client_perf", token=admin.token, json=report) == {
        "status": "OK"
    }
    assert sample("hubbub_client_performance_reports_total") == before + 1
    assert sample("hubbub_client_performance_samples_total") == 3
    bad = await api.call("POST", "/client_perf", token=admin.token, json=[1], expect=400)
    assert bad["id"] == "api.context.invalid_body_param.app_error"
    await api.call("POST", "/client_perf", json=report, expect=401)
