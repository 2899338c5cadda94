"""Typed settings per config.json section, with Mattermost's names and defaults.

Only settings hubbub implements are declared here. Anything else found in a config.json is kept
aside by the loader and reported as ignored, so an operator can bring a real Mattermost file.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class ServiceConfig(_Section):
    SiteURL: str = ""
    ListenAddress: str = ":8065"
    MaximumPayloadSizeBytes: int = Field(default=300000, ge=1024)
    EnableDeveloper: bool = False
    EnableUserAccessTokens: bool = False
    EnableBotAccountCreation: bool = False
    ExperimentalStrictCSRFEnforcement: bool = False
    # Cross-origin requests (hubbub/api/origins.py): space-separated origins (`*`: any), the
    # headers a cross-origin script may read, and whether it may send the session cookie.
    AllowCorsFrom: str = ""
    CorsExposedHeaders: str = ""
    CorsAllowCredentials: bool = False
    CorsDebug: bool = False
    EnableMultifactorAuthentication: bool = False
    EnforceMultifactorAuthentication: bool = False
    # Clients send `user_typing` at most this often; past a burst of 5, a connection's typing is
    # published at most once per quarter of it (0: every one). hubbub/realtime/limits.py
    TimeBetweenUserTypingUpdatesMilliseconds: int = Field(default=5000, ge=0)
    # hubbub's own: the actions one websocket connection may send, per second and at once;
    # beyond them actions are refused (429 reply), and a client that goes on is closed (1008).
    WebsocketActionsPerSecond: float = Field(default=10.0, gt=0)
    WebsocketActionBurst: int = Field(default=50, ge=1)
    SessionLengthWebInHours: int = Field(default=720, ge=1)
    SessionLengthMobileInHours: int = Field(default=720, ge=1)
    SessionCacheInMinutes: int = Field(default=10, ge=0)
    MaximumLoginAttempts: int = Field(default=10, ge=1)
    EnablePostSearch: bool = True
    # How long an idle keep-alive HTTP connection stays open (uvicorn's keep-alive timeout),
    # as in Mattermost; clients that pool connections reuse them within it.
    IdleTimeout: int = Field(default=60, ge=1)
    WebsocketPingIntervalSeconds: int = Field(default=25, ge=1)
    WebsocketPongTimeoutSeconds: int = Field(default=60, ge=2)
    GracefulShutdownTimeoutSeconds: int = Field(default=30, ge=0)
    MaxPostSize: int = Field(default=16383, ge=1)
    EnableCustomEmoji: bool = True
    AllowSyncedDrafts: bool = True
    CollapsedThreads: Literal["disabled", "default_on", "default_off", "always_on"] = "always_on"
    ThreadAutoFollow: bool = True
    # hubbub's own: the `client/` folder of a Mattermost release to serve instead of hubbub's
    # web client (docs/web.md). Empty: hubbub's client at `/`.
    WebappDirectory: str = ""
    # Which request headers carry the client's address (the first one present wins), as in
    # Mattermost; read only when the direct peer is one of TrustedProxies (hubbub's own: a
    # list of addresses or CIDRs). Mattermost's default header list is empty and it believes
    # the header from anyone; hubbub believes it from the proxies only, so it can default to
    # the headers nginx sets (docs/operations.md, "Client addresses behind a proxy").
    TrustedProxyIPHeader: list[str] = Field(
        default_factory=lambda: ["X-Forwarded-For", "X-Real-IP"]
    )
    TrustedProxies: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])

    @field_validator("ListenAddress")
    @classmethod
    def _address(cls, value: str) -> str:
        _split_address(value)
        return value

    @field_validator("TrustedProxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
        return value

    @field_validator("AllowCorsFrom")
    @classmethod
    def _origins(cls, value: str) -> str:
        for entry in value.split():
            if entry != "*" and (
                "://" not in entry or entry.count("*") > 1 or "/" in entry.split("://", 1)[1]
            ):
                raise ValueError(
                    f"{entry!r} is not an origin: expected `*` or scheme://host[:port] (one `*` "
                    "wildcard allowed), separated by spaces"
                )
        return value

    @field_validator("WebappDirectory")
    @classmethod
    def _webapp(cls, value: str) -> str:
        if value and not Path(value, "root.html").is_file():
            raise ValueError(f"{value!r} has no root.html (expected a release's client/ folder)")
        return value


class TeamConfig(_Section):
    SiteName: str = "Mattermost"
    MaxUsersPerTeam: int = Field(default=50, ge=1)
    EnableOpenServer: bool = False
    EnableUserCreation: bool = True
    MaxChannelsPerTeam: int = Field(default=2000, ge=1)
    RestrictCreationToDomains: str = ""


class PasswordConfig(_Section):
    MinimumLength: int = Field(default=8, ge=5, le=72)
    Lowercase: bool = False
    Uppercase: bool = False
    Number: bool = False
    Symbol: bool = False


class SqlConfig(_Section):
    DriverName: Literal["sqlite", "postgres"] = "sqlite"
    DataSource: str = "./data/hubbub.db"
    DataSourceReplicas: list[str] = Field(default_factory=list)
    DataSourceSearchReplicas: list[str] = Field(default_factory=list)
    MaxIdleConns: int = Field(default=20, ge=0)
    MaxOpenConns: int = Field(default=300, ge=1)
    QueryTimeout: int = Field(default=30, ge=1)
    ConnMaxLifetimeMilliseconds: int = Field(default=3600000, ge=0)
    # hubbub's own: how long a request waits for a pooled connection (or, on SQLite, for its
    # turn at the single writer) before it is answered 503 `api.context.server_busy.app_error`
    # with Retry-After, so an overloaded node sheds work instead of piling it up.
    MaxConnectionWaitMilliseconds: int = Field(default=3000, ge=1)
    # Mattermost's: how often every replica is probed (health, lag) and a failed one re-probed.
    ReplicaMonitorIntervalSeconds: int = Field(default=5, ge=1)
    # hubbub's own (docs/design/database.md): a replica leaves rotation while it is behind the
    # primary by more than ReplicaMaxLagBytes of WAL or ReplicaMaxLagSeconds of replay time, and
    # a user's writes keep that user's reads on the primary (or on a replica that has replayed
    # them) for ReadYourWritesSeconds.
    ReplicaMaxLagBytes: int = Field(default=16 * 1024 * 1024, ge=0)
    ReplicaMaxLagSeconds: float = Field(default=30.0, ge=0)
    ReadYourWritesSeconds: float = Field(default=60.0, gt=0)

    @field_validator("DataSource")
    @classmethod
    def _source(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class ClusterConfig(_Section):
    Enable: bool = False
    ClusterName: str = ""
    OverrideHostname: str = ""
    # hubbub's own (Mattermost has no such settings): how often nodes heartbeat and renew the
    # leader lease, and when a node's row counts as stale (LiveSeconds) or is deleted
    # (ExpireSeconds). 0 for LiveSeconds / LeaseSeconds: 4 / 3 heartbeats.
    HeartbeatSeconds: float = Field(default=5.0, gt=0)
    LiveSeconds: float = Field(default=0.0, ge=0)
    LeaseSeconds: float = Field(default=0.0, ge=0)
    ExpireSeconds: float = Field(default=3600.0, gt=0)

    @model_validator(mode="after")
    def _timing(self) -> ClusterConfig:
        heartbeat = self.HeartbeatSeconds
        if self.LiveSeconds and self.LiveSeconds <= heartbeat:
            raise ValueError(
                f"LiveSeconds ({self.LiveSeconds:g}) must exceed HeartbeatSeconds ({heartbeat:g})"
            )
        if self.LeaseSeconds and self.LeaseSeconds <= heartbeat:
            raise ValueError(
                f"LeaseSeconds ({self.LeaseSeconds:g}) must exceed HeartbeatSeconds "
                f"({heartbeat:g}), which is also the lease renewal interval"
            )
        live = self.LiveSeconds or 4 * heartbeat
        if self.ExpireSeconds < live:
            raise ValueError(
                f"ExpireSeconds ({self.ExpireSeconds:g}) must not be below the live window "
                f"({live:g})"
            )
        return self


class CacheConfig(_Section):
    CacheType: Literal["lru", "redis"] = "lru"
    RedisAddress: str = ""
    RedisPassword: str = ""
    RedisDB: int = Field(default=-1, ge=-1)  # -1: the server default (0)
    # hubbub: Redis under Sentinel. "host:port,host:port" of the sentinels; with it, the master
    # named RedisMasterName is used and RedisAddress is ignored (docs/design/redis-backends.md).
    RedisSentinels: str = ""
    RedisMasterName: str = "mymaster"
    # hubbub: while Redis is unreachable a node stays ready (degraded: REST works, events wait
    # in the outbox); true makes it report not-ready instead.
    RedisOutageNotReady: bool = False

    @field_validator("RedisSentinels")
    @classmethod
    def _sentinels(cls, value: str) -> str:
        if value.strip():
            from hubbub.cluster.redis_eventlog import parse_sentinels

            parse_sentinels(value)
        return value


class FileConfig(_Section):
    EnableFileAttachments: bool = True
    MaxFileSize: int = Field(default=104857600, ge=1)
    DriverName: Literal["local", "amazons3"] = "local"
    Directory: str = "./data/files/"
    AmazonS3AccessKeyId: str = ""
    AmazonS3SecretAccessKey: str = ""
    AmazonS3Bucket: str = ""
    AmazonS3PathPrefix: str = ""
    AmazonS3Region: str = ""
    AmazonS3Endpoint: str = "s3.amazonaws.com"
    AmazonS3SSL: bool = True


class LogConfig(_Section):
    EnableConsole: bool = True
    ConsoleLevel: Literal["DEBUG", "INFO", "WARN", "ERROR"] = "INFO"
    ConsoleJson: bool = True
    # Mattermost writes ./logs/mattermost.log by default; hubbub logs to stderr (the journal
    # under systemd) unless EnableFile is set. FileLocation: a directory (hubbub.log inside it)
    # or a file path ending in .log; "": ./logs/ (docs/operations.md, "Logs").
    EnableFile: bool = False
    FileLevel: Literal["DEBUG", "INFO", "WARN", "ERROR"] = "INFO"
    FileJson: bool = True
    FileLocation: str = ""
    # hubbub's own: size-based rotation of the log file (Mattermost rotates at 100 MB and keeps
    # its old files; hubbub keeps FileMaxBackups of them). 0 MB: never rotate.
    FileMaxSizeMB: int = Field(default=100, ge=0)
    FileMaxBackups: int = Field(default=10, ge=0)


class MetricsConfig(_Section):
    Enable: bool = False
    ListenAddress: str = ":8067"

    @field_validator("ListenAddress")
    @classmethod
    def _address(cls, value: str) -> str:
        _split_address(value)
        return value


class RateLimitConfig(_Section):
    Enable: bool = False
    PerSec: int = Field(default=10, ge=1)
    MaxBurst: int = Field(default=100, ge=0)
    MemoryStoreSize: int = Field(default=10000, ge=1)
    VaryByRemoteAddr: bool = True
    VaryByUser: bool = False
    VaryByHeader: str = ""


class JobConfig(_Section):
    RunJobs: bool = True
    RunScheduler: bool = True
    CleanupJobsThresholdDays: int = Field(default=-1, ge=-1)  # -1: finished jobs are kept
    # hubbub's own (docs/jobs.md): how often an idle worker looks for pending jobs, how often a
    # running job's worker marks it alive, when the leader's reaper counts a silent job as
    # abandoned and how many times a job is tried, and the period of the cleanup job.
    PollSeconds: float = Field(default=15.0, gt=0)
    HeartbeatSeconds: float = Field(default=5.0, gt=0)
    StaleSeconds: float = Field(default=60.0, gt=0)
    MaxAttempts: int = Field(default=3, ge=1)
    CleanupIntervalSeconds: float = Field(default=3600.0, gt=0)

    @model_validator(mode="after")
    def _timing(self) -> JobConfig:
        if self.StaleSeconds <= 2 * self.HeartbeatSeconds:
            raise ValueError(
                f"StaleSeconds ({self.StaleSeconds:g}) must exceed two heartbeats "
                f"(HeartbeatSeconds {self.HeartbeatSeconds:g})"
            )
        return self


class DataRetentionConfig(_Section):
    EnableMessageDeletion: bool = False
    EnableFileDeletion: bool = False
    MessageRetentionDays: int = Field(default=365, ge=0)
    MessageRetentionHours: int = Field(default=0, ge=0)  # when above 0, used instead of days
    FileRetentionDays: int = Field(default=365, ge=0)
    FileRetentionHours: int = Field(default=0, ge=0)
    DeletionJobStartTime: str = "02:00"  # UTC, HH:MM
    BatchSize: int = Field(default=3000, ge=1)
    TimeBetweenBatchesMilliseconds: int = Field(default=100, ge=0)

    @field_validator("DeletionJobStartTime")
    @classmethod
    def _start_time(cls, value: str) -> str:
        hours, sep, minutes = value.partition(":")
        if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
            raise ValueError(f"must look like 'HH:MM', got {value!r}")
        if not (0 <= int(hours) <= 23 and 0 <= int(minutes) <= 59):
            raise ValueError(f"must be a time of day between 00:00 and 23:59, got {value!r}")
        return value

    @model_validator(mode="after")
    def _windows(self) -> DataRetentionConfig:
        if self.MessageRetentionDays <= 0 and self.MessageRetentionHours <= 0:
            raise ValueError("MessageRetentionDays or MessageRetentionHours must be at least 1")
        if self.FileRetentionDays <= 0 and self.FileRetentionHours <= 0:
            raise ValueError("FileRetentionDays or FileRetentionHours must be at least 1")
        return self

    @property
    def message_retention_hours(self) -> int:
        return self.MessageRetentionHours or 24 * self.MessageRetentionDays

    @property
    def file_retention_hours(self) -> int:
        return self.FileRetentionHours or 24 * self.FileRetentionDays


class ExportConfig(_Section):
    Directory: str = "./export"  # inside the file store
    RetentionDays: int = Field(default=30, ge=1)


class ImportConfig(_Section):
    Directory: str = "./import"  # inside the file store
    RetentionDays: int = Field(default=30, ge=1)


class FeatureFlagsConfig(_Section):
    # Typing and reaction events only to connections that have their channel (or thread) open,
    # as told by the clients' `presence` actions (hubbub/realtime/scope.py). Mattermost's
    # default since v10; the client configuration tells the web app to send `presence`.
    WebSocketEventScope: bool = True


class Settings(BaseModel):
    """The whole configuration. Sections are named exactly as in Mattermost's config.json."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ServiceSettings: ServiceConfig = Field(default_factory=ServiceConfig)
    TeamSettings: TeamConfig = Field(default_factory=TeamConfig)
    PasswordSettings: PasswordConfig = Field(default_factory=PasswordConfig)
    SqlSettings: SqlConfig = Field(default_factory=SqlConfig)
    ClusterSettings: ClusterConfig = Field(default_factory=ClusterConfig)
    CacheSettings: CacheConfig = Field(default_factory=CacheConfig)
    FileSettings: FileConfig = Field(default_factory=FileConfig)
    LogSettings: LogConfig = Field(default_factory=LogConfig)
    MetricsSettings: MetricsConfig = Field(default_factory=MetricsConfig)
    RateLimitSettings: RateLimitConfig = Field(default_factory=RateLimitConfig)
    JobSettings: JobConfig = Field(default_factory=JobConfig)
    DataRetentionSettings: DataRetentionConfig = Field(default_factory=DataRetentionConfig)
    ExportSettings: ExportConfig = Field(default_factory=ExportConfig)
    ImportSettings: ImportConfig = Field(default_factory=ImportConfig)
    FeatureFlags: FeatureFlagsConfig = Field(default_factory=FeatureFlagsConfig)


SECTIONS: dict[str, type[_Section]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in Settings.model_fields.items()
}

# Settings whose values `config show` masks.
SECRETS = {
    ("SqlSettings", "DataSource"),
    ("SqlSettings", "DataSourceReplicas"),
    ("SqlSettings", "DataSourceSearchReplicas"),
    ("CacheSettings", "RedisPassword"),
    ("FileSettings", "AmazonS3SecretAccessKey"),
}


def _split_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"must look like 'host:port' or ':port', got {value!r}")
    return host, int(port)


def split_address(value: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """Turns `host:port` or `:port` into a bindable pair (an empty host means `default_host`)."""
    host, port = _split_address(value)
    return (host.strip("[]") or default_host), port
