"""Configuration loading: Mattermost's defaults and section names, config.json, `MM_*` variables,
ignored settings, errors naming the key path, the cluster config hash and masking of secrets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hubbub.config import ConfigError, Settings, config_hash, load_config, masked

# Mattermost's own defaults (server/public/model/config.go, `SetDefaults` for a new install) for
# every setting hubbub implements that Mattermost also has.
MATTERMOST_DEFAULTS: dict[str, dict[str, Any]] = {
    "ServiceSettings": {
        "SiteURL": "",
        "ListenAddress": ":8065",
        "MaximumPayloadSizeBytes": 300000,
        "EnableDeveloper": False,
        "EnableUserAccessTokens": False,
        "EnableBotAccountCreation": False,
        "ExperimentalStrictCSRFEnforcement": False,
        "AllowCorsFrom": "",
        "CorsExposedHeaders": "",
        "CorsAllowCredentials": False,
        "CorsDebug": False,
        "EnableMultifactorAuthentication": False,
        "EnforceMultifactorAuthentication": False,
        "TimeBetweenUserTypingUpdatesMilliseconds": 5000,
        "SessionLengthWebInHours": 720,
        "SessionLengthMobileInHours": 720,
        "SessionCacheInMinutes": 10,
        "MaximumLoginAttempts": 10,
        "IdleTimeout": 60,
        "EnablePostSearch": True,
        "EnableCustomEmoji": True,
        "AllowSyncedDrafts": True,
        "CollapsedThreads": "always_on",
        "ThreadAutoFollow": True,
    },
    "TeamSettings": {
        "SiteName": "Mattermost",
        "MaxUsersPerTeam": 50,
        "EnableOpenServer": False,
        "EnableUserCreation": True,
        "MaxChannelsPerTeam": 2000,
        "RestrictCreationToDomains": "",
    },
    "PasswordSettings": {
        "MinimumLength": 8,
        "Lowercase": False,
        "Uppercase": False,
        "Number": False,
        "Symbol": False,
    },
    "SqlSettings": {
        "DataSourceReplicas": [],
        "DataSourceSearchReplicas": [],
        "MaxIdleConns": 20,
        "MaxOpenConns": 300,
        "QueryTimeout": 30,
        "ConnMaxLifetimeMilliseconds": 3600000,
        "ReplicaMonitorIntervalSeconds": 5,
    },
    "ClusterSettings": {"Enable": False, "ClusterName": "", "OverrideHostname": ""},
    "CacheSettings": {"CacheType": "lru", "RedisAddress": "", "RedisPassword": "", "RedisDB": -1},
    "FileSettings": {
        "EnableFileAttachments": True,
        "MaxFileSize": 104857600,
        "DriverName": "local",
        "AmazonS3AccessKeyId": "",
        "AmazonS3SecretAccessKey": "",
        "AmazonS3Bucket": "",
        "AmazonS3PathPrefix": "",
        "AmazonS3Region": "",
        "AmazonS3Endpoint": "s3.amazonaws.com",
        "AmazonS3SSL": True,
    },
    "LogSettings": {
        "EnableConsole": True,
        "ConsoleJson": True,
        "FileLevel": "INFO",
        "FileJson": True,
        "FileLocation": "",
    },
    "MetricsSettings": {"Enable": False, "ListenAddress": ":8067"},
    "RateLimitSettings": {
        "Enable": False,
        "PerSec": 10,
        "MaxBurst": 100,
        "MemoryStoreSize": 10000,
        "VaryByRemoteAddr": True,
        "VaryByUser": False,
        "VaryByHeader": "",
    },
    "JobSettings": {"RunJobs": True, "RunScheduler": True, "CleanupJobsThresholdDays": -1},
    "DataRetentionSettings": {
        "EnableMessageDeletion": False,
        "EnableFileDeletion": False,
        "MessageRetentionDays": 365,
        "MessageRetentionHours": 0,
        "FileRetentionDays": 365,
        "FileRetentionHours": 0,
        "DeletionJobStartTime": "02:00",
        "BatchSize": 3000,
        "TimeBetweenBatchesMilliseconds": 100,
    },
    "ExportSettings": {"Directory": "./export", "RetentionDays": 30},
    "ImportSettings": {"Directory": "./import", "RetentionDays": 30},
    "FeatureFlags": {"WebSocketEventScope": True},
}

# Where hubbub differs on purpose: it runs with no setup on SQLite (README, `make run`).
DELIBERATE_DIFFERENCES: dict[str, Any] = {
    "SqlSettings.DriverName": "sqlite",  # Mattermost: "postgres"
    "SqlSettings.DataSource": "./data/hubbub.db",  # Mattermost: a postgres:// URL
    # DESIGN §1: the single node keeps files in ./data/files beside ./data/hubbub.db.
    "FileSettings.Directory": "./data/files/",  # Mattermost: "./data/"
    # DEBUG would log every websocket frame (uvicorn hands its logger to the protocol).
    "LogSettings.ConsoleLevel": "INFO",  # Mattermost: "DEBUG"
    # stderr (the journal under systemd) is the log; a file is opt-in.
    "LogSettings.EnableFile": False,  # Mattermost: true
    # Read only from ServiceSettings.TrustedProxies (Mattermost reads it from anyone), so the
    # headers nginx sets are safe to default to.
    "ServiceSettings.TrustedProxyIPHeader": ["X-Forwarded-For", "X-Real-IP"],  # Mattermost: []
}

# Settings Mattermost does not have at all.
HUBBUB_ONLY = {
    "CacheSettings.RedisSentinels",
    "CacheSettings.RedisMasterName",
    "CacheSettings.RedisOutageNotReady",
    "ServiceSettings.WebsocketPingIntervalSeconds",
    "ServiceSettings.WebsocketPongTimeoutSeconds",
    "ServiceSettings.GracefulShutdownTimeoutSeconds",
    "ServiceSettings.MaxPostSize",
    "ServiceSettings.WebappDirectory",
    "ServiceSettings.TrustedProxies",
    "LogSettings.FileMaxSizeMB",
    "LogSettings.FileMaxBackups",
    "ServiceSettings.WebsocketActionsPerSecond",
    "ServiceSettings.WebsocketActionBurst",
    "ClusterSettings.HeartbeatSeconds",
    "ClusterSettings.LiveSeconds",
    "ClusterSettings.LeaseSeconds",
    "ClusterSettings.ExpireSeconds",
    "JobSettings.PollSeconds",
    "JobSettings.HeartbeatSeconds",
    "JobSettings.StaleSeconds",
    "JobSettings.MaxAttempts",
    "JobSettings.CleanupIntervalSeconds",
    "SqlSettings.ReplicaMaxLagBytes",
    "SqlSettings.ReplicaMaxLagSeconds",
    "SqlSettings.ReadYourWritesSeconds",
    "SqlSettings.MaxConnectionWaitMilliseconds",
}


def _declared() -> dict[str, Any]:
    data = Settings().model_dump(mode="json")
    return {
        f"{section}.{key}": value for section, keys in data.items() for key, value in keys.items()
    }


def test_every_setting_is_classified() -> None:
    # A new setting must be added to one of the three tables above, with Mattermost's default.
    expected = {f"{s}.{k}" for s, keys in MATTERMOST_DEFAULTS.items() for k in keys}
    assert set(_declared()) == expected | set(DELIBERATE_DIFFERENCES) | HUBBUB_ONLY


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (f"{section}.{key}", value)
        for section, keys in MATTERMOST_DEFAULTS.items()
        for key, value in keys.items()
    ],
)
def test_default_equals_mattermosts(path: str, value: Any) -> None:
    assert _declared()[path] == value


def test_deliberate_differences_are_what_the_readme_says() -> None:
    declared = _declared()
    for path, value in DELIBERATE_DIFFERENCES.items():
        assert declared[path] == value


def test_no_file_and_no_environment_gives_defaults() -> None:
    loaded = load_config(None, environ={})
    assert loaded.settings == Settings()
    assert loaded.ignored == []
    assert loaded.source == "defaults"


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


def test_config_json_sections_use_mattermosts_names(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "ServiceSettings": {"SiteURL": "https://chat.example.com", "ListenAddress": ":9000"},
            "TeamSettings": {"SiteName": "Example", "EnableOpenServer": True},
            "SqlSettings": {
                "DriverName": "postgres",
                "DataSource": "postgres://u:p@db/mm?sslmode=disable",
                "DataSourceReplicas": ["postgres://u:p@r1/mm"],
            },
            "FileSettings": {"MaxFileSize": 1024},
        },
    )
    loaded = load_config(path, environ={})
    s = loaded.settings
    assert s.ServiceSettings.SiteURL == "https://chat.example.com"
    assert s.ServiceSettings.ListenAddress == ":9000"
    assert s.TeamSettings.SiteName == "Example"
    assert s.TeamSettings.EnableOpenServer is True
    assert s.SqlSettings.DriverName == "postgres"
    assert s.SqlSettings.DataSourceReplicas == ["postgres://u:p@r1/mm"]
    assert s.FileSettings.MaxFileSize == 1024
    # Settings the file does not mention keep their defaults.
    assert s.ServiceSettings.MaximumPayloadSizeBytes == 300000
    assert loaded.source == str(path)
    assert loaded.ignored == []


def test_unknown_sections_and_settings_are_listed_as_ignored(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "ServiceSettings": {"SiteURL": "", "WebsocketURL": "", "EnableLinkPreviews": True},
            "EmailSettings": {"SMTPServer": "localhost"},
            "PluginSettings": {},
            "SqlSettings": {"Trace": False, "AtRestEncryptKey": "x" * 32},
        },
    )
    loaded = load_config(path, environ={})
    assert loaded.ignored == [
        "EmailSettings",
        "PluginSettings",
        "ServiceSettings.EnableLinkPreviews",
        "ServiceSettings.WebsocketURL",
        "SqlSettings.AtRestEncryptKey",
        "SqlSettings.Trace",
    ]


def test_mattermost_written_values_of_implemented_settings_load(tmp_path: Path) -> None:
    # What a fresh Mattermost writes into config.json for these settings must load unchanged.
    path = _write(tmp_path, MATTERMOST_DEFAULTS)
    loaded = load_config(path, environ={})
    assert loaded.ignored == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("false", False), ("False", False), ("0", False)],
)
def test_env_bool(text: str, expected: bool) -> None:
    s = load_config(None, environ={"MM_SERVICESETTINGS_ENABLEDEVELOPER": text}).settings
    assert s.ServiceSettings.EnableDeveloper is expected


def test_env_int_and_string() -> None:
    s = load_config(
        None,
        environ={
            "MM_SERVICESETTINGS_MAXIMUMPAYLOADSIZEBYTES": "2048",
            "MM_TEAMSETTINGS_SITENAME": "Team Chat",
            "MM_SERVICESETTINGS_SITEURL": "https://x.example.com/chat",
        },
    ).settings
    assert s.ServiceSettings.MaximumPayloadSizeBytes == 2048
    assert s.TeamSettings.SiteName == "Team Chat"
    assert s.ServiceSettings.SiteURL == "https://x.example.com/chat"


def test_env_list_as_json_array() -> None:
    s = load_config(
        None,
        environ={"MM_SQLSETTINGS_DATASOURCEREPLICAS": '["postgres://a/x", "postgres://b/x"]'},
    ).settings
    assert s.SqlSettings.DataSourceReplicas == ["postgres://a/x", "postgres://b/x"]


def test_env_list_space_separated() -> None:
    s = load_config(
        None,
        environ={"MM_SQLSETTINGS_DATASOURCESEARCHREPLICAS": " postgres://a/x  postgres://b/x "},
    ).settings
    assert s.SqlSettings.DataSourceSearchReplicas == ["postgres://a/x", "postgres://b/x"]


def test_env_overrides_config_json(tmp_path: Path) -> None:
    path = _write(tmp_path, {"ServiceSettings": {"SiteURL": "https://file.example.com"}})
    s = load_config(path, environ={"MM_SERVICESETTINGS_SITEURL": "https://env.example.com"})
    assert s.settings.ServiceSettings.SiteURL == "https://env.example.com"
    # Other MM_ variables and unrelated variables change nothing and are not "ignored" settings.
    other = load_config(path, environ={"MM_NOSUCHSECTION_FOO": "1", "PATH": "/bin"})
    assert other.settings.ServiceSettings.SiteURL == "https://file.example.com"
    assert other.ignored == []


@pytest.mark.parametrize(
    ("environ", "key_path"),
    [
        ({"MM_SERVICESETTINGS_ENABLEDEVELOPER": "maybe"}, "ServiceSettings.EnableDeveloper"),
        (
            {"MM_SERVICESETTINGS_MAXIMUMPAYLOADSIZEBYTES": "big"},
            "ServiceSettings.MaximumPayloadSizeBytes",
        ),
        (
            {"MM_SERVICESETTINGS_MAXIMUMPAYLOADSIZEBYTES": "10"},
            "ServiceSettings.MaximumPayloadSizeBytes",
        ),
        ({"MM_SQLSETTINGS_DRIVERNAME": "mysql"}, "SqlSettings.DriverName"),
        ({"MM_SQLSETTINGS_DATASOURCE": "  "}, "SqlSettings.DataSource"),
        ({"MM_SQLSETTINGS_DATASOURCEREPLICAS": "[1, 2]"}, "SqlSettings.DataSourceReplicas"),
        ({"MM_SQLSETTINGS_DATASOURCEREPLICAS": "[oops"}, "SqlSettings.DataSourceReplicas"),
        ({"MM_SERVICESETTINGS_LISTENADDRESS": "localhost"}, "ServiceSettings.ListenAddress"),
        ({"MM_SERVICESETTINGS_LISTENADDRESS": ":70000"}, "ServiceSettings.ListenAddress"),
        ({"MM_LOGSETTINGS_CONSOLELEVEL": "LOUD"}, "LogSettings.ConsoleLevel"),
        ({"MM_PASSWORDSETTINGS_MINIMUMLENGTH": "100"}, "PasswordSettings.MinimumLength"),
        ({"MM_FILESETTINGS_DRIVERNAME": "ftp"}, "FileSettings.DriverName"),
    ],
)
def test_invalid_env_value_names_the_key_path(environ: dict[str, str], key_path: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, environ=environ)
    assert key_path in str(info.value)


@pytest.mark.parametrize(
    ("data", "key_path"),
    [
        ({"SqlSettings": {"DriverName": "mysql"}}, "SqlSettings.DriverName"),
        (
            {"ServiceSettings": {"MaximumPayloadSizeBytes": "300000"}},
            "ServiceSettings.MaximumPayloadSizeBytes",
        ),
        ({"ServiceSettings": {"EnableDeveloper": "true"}}, "ServiceSettings.EnableDeveloper"),
        ({"TeamSettings": {"SiteName": 5}}, "TeamSettings.SiteName"),
        (
            {"SqlSettings": {"DataSourceReplicas": "postgres://a/x"}},
            "SqlSettings.DataSourceReplicas",
        ),
        ({"MetricsSettings": {"ListenAddress": "8067"}}, "MetricsSettings.ListenAddress"),
        ({"ServiceSettings": []}, "ServiceSettings"),
    ],
)
def test_invalid_file_value_names_the_key_path(
    tmp_path: Path, data: dict[str, Any], key_path: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, data), environ={})
    assert key_path in str(info.value)


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.json", environ={})
    broken = tmp_path / "broken.json"
    broken.write_text('{"ServiceSettings": ')
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(broken, environ={})
    with pytest.raises(ConfigError, match="JSON object"):
        load_config(_write(tmp_path, ["ServiceSettings"]), environ={})


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValueError):
        s.ServiceSettings.SiteURL = "x"


def test_config_hash_ignores_cluster_settings_only() -> None:
    base = load_config(None, environ={}).settings
    clustered = load_config(
        None,
        environ={
            "MM_CLUSTERSETTINGS_ENABLE": "true",
            "MM_CLUSTERSETTINGS_OVERRIDEHOSTNAME": "node-2",
            "MM_CLUSTERSETTINGS_CLUSTERNAME": "prod",
        },
    ).settings
    changed = load_config(None, environ={"MM_SERVICESETTINGS_SITEURL": "https://x"}).settings
    assert config_hash(base) == config_hash(clustered)
    assert config_hash(base) != config_hash(changed)
    assert config_hash(base) == config_hash(load_config(None, environ={}).settings)
    assert load_config(None, environ={}).hash == config_hash(base)


def test_masked_hides_secrets_but_not_empty_values() -> None:
    s = load_config(
        None,
        environ={
            "MM_SQLSETTINGS_DRIVERNAME": "postgres",
            "MM_SQLSETTINGS_DATASOURCE": "postgres://mmuser:secret@db/mattermost",
            "MM_SQLSETTINGS_DATASOURCEREPLICAS": "postgres://mmuser:secret@r1/mm postgres://x@r2/mm",
            "MM_FILESETTINGS_AMAZONS3SECRETACCESSKEY": "s3cr3t",
        },
    ).settings
    shown = masked(s)
    assert "secret" not in json.dumps(shown)
    assert "s3cr3t" not in json.dumps(shown)
    assert shown["SqlSettings"]["DataSource"] == "********"
    assert shown["SqlSettings"]["DataSourceReplicas"] == ["********", "********"]
    assert shown["SqlSettings"]["DataSourceSearchReplicas"] == []
    assert shown["CacheSettings"]["RedisPassword"] == ""
    assert shown["SqlSettings"]["DriverName"] == "postgres"
