"""The `hubbub` command, run as a real subprocess with a scrubbed environment."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from hubbub.app import Hubbub
from hubbub.config import load_config
from tests.support.cli import run, sqlite_env

# A slice of a real Mattermost config.json: known sections carry settings hubbub does not
# implement, and whole sections it does not know.
MATTERMOST_CONFIG = {
    "ServiceSettings": {
        "SiteURL": "https://chat.example.com",
        "WebsocketURL": "",
        "LicenseFileLocation": "",
        "ListenAddress": ":8065",
        "ConnectionSecurity": "",
        "EnableUserAccessTokens": True,
        "EnableLinkPreviews": True,
    },
    "TeamSettings": {
        "SiteName": "Example Chat",
        "MaxUsersPerTeam": 50,
        "EnableJoinLeaveMessageByDefault": True,
    },
    "SqlSettings": {
        "DriverName": "postgres",
        "DataSource": "postgres://mmuser:s3cretpw@localhost/mattermost?sslmode=disable",
        "DataSourceReplicas": [],
        "MaxIdleConns": 20,
        "Trace": False,
        "AtRestEncryptKey": "abcdefghijklmnopqrstuvwxyz012345",
    },
    "EmailSettings": {"EnableSignUpWithEmail": True, "SMTPServer": "localhost"},
    "PluginSettings": {"Enable": True, "Plugins": {}},
}


def test_version(tmp_path: Path) -> None:
    out = run("version", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("hubbub ")
    assert "Mattermost API" in out.stdout


def test_config_validate_lists_ignored_settings_of_a_mattermost_config(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(MATTERMOST_CONFIG))
    out = run("--config", str(path), "config", "validate", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"configuration OK ({path})")
    listed = [line.strip() for line in out.stdout.splitlines() if line.startswith("  ")]
    assert listed == [
        "EmailSettings",
        "PluginSettings",
        "ServiceSettings.ConnectionSecurity",
        "ServiceSettings.EnableLinkPreviews",
        "ServiceSettings.LicenseFileLocation",
        "ServiceSettings.WebsocketURL",
        "SqlSettings.AtRestEncryptKey",
        "SqlSettings.Trace",
        "TeamSettings.EnableJoinLeaveMessageByDefault",
    ]


def test_config_file_is_found_in_the_working_directory_and_through_hubbub_config(
    tmp_path: Path,
) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"TeamSettings": {"SiteName": "Here"}}))
    here = run("config", "show", cwd=tmp_path)
    assert json.loads(here.stdout)["TeamSettings"]["SiteName"] == "Here"
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"TeamSettings": {"SiteName": "There"}}))
    there = run("config", "show", cwd=tmp_path, env={"HUBBUB_CONFIG": str(other)})
    assert json.loads(there.stdout)["TeamSettings"]["SiteName"] == "There"


def test_config_show_masks_the_data_source(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(MATTERMOST_CONFIG))
    out = run("--config", str(path), "config", "show", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "s3cretpw" not in out.stdout
    shown = json.loads(out.stdout)
    assert shown["SqlSettings"]["DataSource"] == "********"
    assert shown["SqlSettings"]["DriverName"] == "postgres"
    assert shown["ServiceSettings"]["SiteURL"] == "https://chat.example.com"
    assert "EmailSettings" not in shown


def test_db_check_before_and_after_migrate(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    before = run("db", "check", cwd=tmp_path, env=env)
    assert before.returncode == 1, before.stdout + before.stderr
    assert json.loads(before.stdout)["up_to_date"] is False

    migrated = run("db", "migrate", cwd=tmp_path, env=env)
    assert migrated.returncode == 0, migrated.stderr
    revision = json.loads(migrated.stdout)["migrated_to"]

    after = run("db", "check", cwd=tmp_path, env=env)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout) == {"current": revision, "head": revision, "up_to_date": True}

    again = run("db", "migrate", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr


async def test_user_create_and_token_create_give_a_working_admin_token(tmp_path: Path) -> None:
    env = {**sqlite_env(tmp_path), "MM_SERVICESETTINGS_ENABLEUSERACCESSTOKENS": "true"}
    created = run(
        "user",
        "create",
        "--email",
        "root@example.com",
        "--username",
        "root",
        "--password",
        "password-123",
        "--system-admin",
        cwd=tmp_path,
        env=env,
    )
    assert created.returncode == 0, created.stderr
    user = json.loads(created.stdout)
    assert user["username"] == "root"
    assert "system_admin" in user["roles"].split()

    dup = run(
        "user",
        "create",
        "--email",
        "other@example.com",
        "--username",
        "root",
        "--password",
        "password-123",
        cwd=tmp_path,
        env=env,
    )
    assert dup.returncode == 1
    assert dup.stderr.startswith("hubbub: ")

    token = run("token", "create", "--user", "root", cwd=tmp_path, env=env)
    assert token.returncode == 0, token.stderr
    secret = token.stdout.strip()
    assert len(secret) == 26

    by_id = run("token", "create", "--user", user["id"], cwd=tmp_path, env=env)
    assert by_id.returncode == 0, by_id.stderr

    node = Hubbub(load_config(None, environ=env))
    await node.start()
    try:
        transport = httpx.ASGITransport(app=node.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://hubbub.test") as c:
            me = await c.get("/api/v4/users/me", headers={"Authorization": f"Bearer {secret}"})
    finally:
        await node.stop()
    assert me.status_code == 200, me.text
    assert me.json()["id"] == user["id"]


def test_token_create_warns_when_tokens_are_disabled(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    created = run(
        "user",
        "create",
        "--email",
        "a@example.com",
        "--username",
        "alice",
        "--password",
        "password-123",
        cwd=tmp_path,
        env=env,
    )
    assert created.returncode == 0, created.stderr
    token = run("token", "create", "--user", "alice", cwd=tmp_path, env=env)
    assert token.returncode == 0, token.stderr
    assert "EnableUserAccessTokens" in token.stderr
    missing = run("token", "create", "--user", "nobody", cwd=tmp_path, env=env)
    assert missing.returncode == 1
    assert missing.stderr.startswith("hubbub: ")


async def test_user_reset_token_sets_a_new_password_once(tmp_path: Path) -> None:
    env = {
        **sqlite_env(tmp_path),
        "MM_SERVICESETTINGS_SITEURL": "https://chat.example.com",
        "MM_PASSWORDSETTINGS_NUMBER": "true",
    }
    weak = run(
        "user",
        "create",
        "--email",
        "w@example.com",
        "--username",
        "weak",
        "--password",
        "no-digits-here",
        cwd=tmp_path,
        env=env,
    )
    assert weak.returncode == 1
    assert "model.user.is_valid.pwd_number.app_error" in weak.stderr
    created = run(
        "user",
        "create",
        "--email",
        "b@example.com",
        "--username",
        "bea",
        "--password",
        "password-123",
        cwd=tmp_path,
        env=env,
    )
    assert created.returncode == 0, created.stderr
    issued = run("user", "reset-token", "--user", "bea", cwd=tmp_path, env=env)
    assert issued.returncode == 0, issued.stderr
    out = json.loads(issued.stdout)
    assert len(out["token"]) == 64
    assert out["link"] == f"https://chat.example.com/reset_password_complete?token={out['token']}"
    missing = run("user", "reset-token", "--user", "nobody", cwd=tmp_path, env=env)
    assert missing.returncode == 1 and missing.stderr.startswith("hubbub: ")

    node = Hubbub(load_config(None, environ=env))
    await node.start()
    try:
        transport = httpx.ASGITransport(app=node.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://hubbub.test") as c:
            body = {"token": out["token"], "new_password": "new-password-456"}
            first = await c.post("/api/v4/users/password/reset", json=body)
            again = await c.post("/api/v4/users/password/reset", json=body)
            login = await c.post(
                "/api/v4/users/login", json={"login_id": "bea", "password": "new-password-456"}
            )
    finally:
        await node.stop()
    assert first.status_code == 200, first.text
    assert again.json()["id"] == "api.user.reset_password.invalid_link.app_error"
    assert login.status_code == 200, login.text


def test_serve_with_an_invalid_env_value_exits_with_the_key_path(tmp_path: Path) -> None:
    out = run(
        "serve", cwd=tmp_path, env={**sqlite_env(tmp_path), "MM_SQLSETTINGS_DRIVERNAME": "mysql"}
    )
    assert out.returncode != 0
    assert "SqlSettings.DriverName" in out.stderr


def test_serve_with_an_invalid_config_file_exits_with_the_key_path(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"ServiceSettings": {"MaximumPayloadSizeBytes": "lots"}}))
    out = run("--config", str(path), "serve", cwd=tmp_path)
    assert out.returncode != 0
    assert "ServiceSettings.MaximumPayloadSizeBytes" in out.stderr
    # The default command is serve too.
    default = run("--config", str(path), cwd=tmp_path)
    assert default.returncode != 0
    assert "ServiceSettings.MaximumPayloadSizeBytes" in default.stderr
