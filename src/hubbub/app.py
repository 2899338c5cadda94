"""Composition root: builds every component of a node, wires them through constructor arguments,
and starts and stops them in dependency order (docs/architecture.md).

Nothing else in the code base constructs a service or a component, and nothing is attached to a
component after construction: what a component needs is a constructor argument, and what it
listens to (bus messages, event log resets) it subscribes to in its own constructor. The order in
`parts()` is the start order; stop runs it backwards, each part under its own deadline.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from hubbub.api.admin import AdminRoutes
from hubbub.api.avatars import AvatarRoutes
from hubbub.api.boot import BootRoutes
from hubbub.api.channel_members import ChannelMemberRoutes
from hubbub.api.channels import ChannelRoutes
from hubbub.api.client_config import ClientConfigRoutes
from hubbub.api.cluster import ClusterRoutes
from hubbub.api.doctor import DoctorRoutes
from hubbub.api.drafts import DraftRoutes
from hubbub.api.emoji import EmojiRoutes
from hubbub.api.errors import make_handlers
from hubbub.api.files import FileRoutes
from hubbub.api.forwarded import ForwardedHeaders, ProxyTrust
from hubbub.api.jobs import JobRoutes
from hubbub.api.mfa import MfaRoutes
from hubbub.api.middleware import APIMiddleware
from hubbub.api.operations import OperationRoutes
from hubbub.api.origins import OriginGuard, OriginPolicy
from hubbub.api.passwords import PasswordRoutes
from hubbub.api.posts import PostRoutes
from hubbub.api.preferences import PreferenceRoutes
from hubbub.api.ratelimit import RateLimiter, RateLimitMiddleware
from hubbub.api.reactions import ReactionRoutes
from hubbub.api.roles import RoleRoutes
from hubbub.api.routing import IndexedRouter
from hubbub.api.search import SearchRoutes
from hubbub.api.sidebar import SidebarRoutes
from hubbub.api.statuses import StatusRoutes
from hubbub.api.system import SystemRoutes
from hubbub.api.team_members import TeamMemberRoutes
from hubbub.api.teams import TeamRoutes
from hubbub.api.threads import ThreadRoutes
from hubbub.api.users import UserRoutes
from hubbub.api.websocket import WebSocketEndpoint
from hubbub.cluster.backends import build_backends, key_prefix
from hubbub.cluster.discovery import ClusterTiming, Discovery, NodeIdentity
from hubbub.cluster.events import EventPublisher
from hubbub.cluster.leader import Leader, current_holder
from hubbub.cluster.metrics import ClusterMetrics
from hubbub.cluster.outbox import Outbox
from hubbub.cluster.topology import ClusterCleanup, SharedStorageCheck
from hubbub.cluster.versions import VersionGate
from hubbub.config import ConfigError, LoadedConfig
from hubbub.config.live import ConfigStore, ConfigSync
from hubbub.config.settings import Settings, split_address
from hubbub.doctor.node_facts import NodeFacts
from hubbub.files import make_backend
from hubbub.ids import new_id
from hubbub.jobs.cleanup import Cleanup
from hubbub.jobs.export import BulkExport
from hubbub.jobs.importer import BulkImport
from hubbub.jobs.retention import DataRetention
from hubbub.jobs.scheduler import (
    SCHEDULER_LEASE,
    Reaper,
    Scheduler,
    SchedulerWatch,
    annotate_status,
    schedules_from,
)
from hubbub.jobs.service import JobsService
from hubbub.jobs.store import JobStore
from hubbub.jobs.worker import JobHandler, JobServer
from hubbub.lifecycle import Lifecycle, Part
from hubbub.observability.console import OperatorConsole
from hubbub.observability.console_watch import ConsoleWatch
from hubbub.observability.health import HealthMonitor
from hubbub.observability.http_metrics import HTTPMetrics
from hubbub.observability.metrics import Metrics, MetricsEndpoint
from hubbub.observability.node_report import NodeReport
from hubbub.observability.websocket_stats import WebsocketStats
from hubbub.realtime.commitclock import commit_clock
from hubbub.realtime.hub import Hub
from hubbub.realtime.presence import Presence
from hubbub.realtime.protocol import CloseReason
from hubbub.realtime.publisher import RealtimePublisher
from hubbub.realtime.session import ConnLimits
from hubbub.services.auth import AuthService
from hubbub.services.avatars import AvatarsService
from hubbub.services.channel_access import ChannelAccess
from hubbub.services.channel_lists import ChannelDirectory
from hubbub.services.channel_members import ChannelMembers
from hubbub.services.channels import ChannelsService
from hubbub.services.drafts import DraftsService
from hubbub.services.emoji import EmojiService
from hubbub.services.files import FilesService
from hubbub.services.mfa import MfaService
from hubbub.services.password_reset import PasswordResets
from hubbub.services.permissions import Permissions
from hubbub.services.post_lists import PostLists
from hubbub.services.post_render import PostRenderer
from hubbub.services.posts import PostsService
from hubbub.services.preferences import PreferencesService
from hubbub.services.reactions import ReactionsService
from hubbub.services.roles import RolesService
from hubbub.services.search import SearchService
from hubbub.services.server_info import ServerInfo
from hubbub.services.sidebar import SidebarService
from hubbub.services.statuses import StatusesService
from hubbub.services.team_access import TeamAccess
from hubbub.services.team_members import TeamMembers
from hubbub.services.teams import TeamsService
from hubbub.services.threads import ThreadsService
from hubbub.services.users import UsersService
from hubbub.store.consistency import MemoryPositions, PositionStore, RedisPositions
from hubbub.store.db import Database
from hubbub.store.migrate import Schema
from hubbub.store.monitor import DatabaseMetrics
from hubbub.store.recycle import DatabaseRecycler
from hubbub.version import version_id
from hubbub.web.routes import WebRoutes

log = logging.getLogger("hubbub.app")


def _same(publisher: EventPublisher) -> EventPublisher:
    return publisher


@dataclass(frozen=True)
class Seams:
    """Where a test puts its own component in place of, or around, the real one (recording the
    events a node publishes, an outbox that crashes on purpose) without test code in production
    paths. The defaults are production."""

    wrap_publisher: Callable[[EventPublisher], EventPublisher] = field(default=_same)
    outbox_class: type[Outbox] = Outbox


class Hubbub:
    """One node: every component, its HTTP application, and their lifetime."""

    def __init__(
        self, config: LoadedConfig, *, join_cluster: bool = True, seams: Seams | None = None
    ) -> None:
        seams = seams or Seams()
        # False for one-off CLI commands: they must not register as a node or take the lease.
        self.join_cluster = join_cluster
        s = self.settings = config.settings
        self.draining = False
        self.node_name = node_name(s)
        self.node_id = new_id()
        server_version = version_id(config.hash)

        # Storage
        self.metrics = Metrics()
        self.db = Database(s.SqlSettings, metrics=DatabaseMetrics(self.metrics.registry))
        self.schema = Schema(self.db)
        self.files = make_backend(s)

        # Realtime backends: memory on one node, Redis in a cluster
        self.backends = build_backends(
            s, self.db, self.node_name, seams.outbox_class, ClusterMetrics(self.metrics.registry)
        )
        eventlog, registry, bus = self.backends.eventlog, self.backends.registry, self.backends.bus
        self.publisher = RealtimePublisher(
            self.db, eventlog, registry, self.metrics, self.backends.outbox
        )
        self.events = seams.wrap_publisher(self.publisher)
        # Read-your-writes positions, shared by every node through Redis (store/consistency.py).
        ttl = s.SqlSettings.ReadYourWritesSeconds
        self.positions: PositionStore = (
            RedisPositions(self.backends.redis, key_prefix(s) + "lsn:", ttl)
            if self.backends.uses_redis
            else MemoryPositions(ttl)
        )
        # The running configuration, reloaded from disk on every node (config/live.py), and
        # connection recycling on every node (store/recycle.py).
        self.config_store = ConfigStore(config, appliers=[self._apply_settings])
        self.config_sync = ConfigSync(self.config_store, bus, self.node_id)
        self.recycler = DatabaseRecycler(self.db, bus, self.node_id)

        # Services are peers: each gets the others it uses here, none builds another.
        db, events = self.db, self.events
        self.users = UsersService(db, s, events)
        self.mfa = MfaService(db, s, self.users)
        self.auth = AuthService(db, s, self.users, bus, self.mfa)
        self.password_resets = PasswordResets(db, self.users)
        # Every permission check resolves roles through these two (services/permissions.py).
        self.roles = RolesService(db, events, bus)
        self.permissions = Permissions(db, self.roles)
        self.team_access = TeamAccess(db, self.permissions)
        self.team_members = TeamMembers(
            db, s, self.users, self.team_access, self.permissions, events
        )
        self.teams = TeamsService(
            db, s, self.users, self.team_access, self.permissions, self.team_members, events
        )
        self.channel_access = ChannelAccess(db, self.team_access, self.permissions)
        self.channels = ChannelsService(
            db, s, self.users, self.channel_access, self.permissions, self.team_access, events
        )
        self.channel_members = ChannelMembers(
            db, self.users, self.channel_access, self.permissions, self.team_access, events
        )
        self.channel_directory = ChannelDirectory(
            db, self.channel_access, self.team_access, self.permissions
        )
        self.file_infos = FilesService(db, s, self.files, self.channel_access, events)
        self.post_renderer = PostRenderer(self.users)
        self.threads = ThreadsService(
            db, s, self.channel_access, self.permissions, self.post_renderer, events
        )
        self.posts = PostsService(
            db,
            s,
            self.channel_access,
            self.permissions,
            self.file_infos,
            self.post_renderer,
            self.threads,
            events,
        )
        self.post_lists = PostLists(db, self.channel_access, self.permissions, self.post_renderer)
        self.emoji = EmojiService(db, s, self.files, self.permissions, events)
        self.reactions = ReactionsService(db, self.channel_access, self.emoji, events)
        self.statuses = StatusesService(db, s, events)
        self.search = SearchService(db, s, self.users, self.channel_access, self.post_lists)
        self.drafts = DraftsService(db, s, self.channel_access, self.permissions, events)
        self.avatars = AvatarsService(db, self.files, self.users, self.permissions, events)
        self.preferences = PreferencesService(db, events)
        self.sidebar = SidebarService(db, events, self.preferences)
        self.server_info = ServerInfo(db, self.metrics.registry)

        # Websockets
        self.origins = OriginPolicy.from_settings(s.ServiceSettings)
        # With an outbox, events can be appended after a client's hello (republished): the
        # hello's commit snapshot tells the hub which ones the client refetched instead.
        clock = commit_clock(self.db) if self.backends.outbox is not None else None
        self.hub = Hub(
            eventlog,
            registry,
            self.metrics,
            bus,
            before_hello=lambda user_id: self.db.note_hello(user_id, self.positions),
            clock=clock,
            event_scope=s.FeatureFlags.WebSocketEventScope,
            hold_after_skip=self.backends.uses_redis,
        )
        self.presence = Presence(self.statuses, registry)
        self.websocket = WebSocketEndpoint(
            auth=self.auth,
            hub=self.hub,
            registry=registry,
            presence=self.presence,
            channels=self.channel_access,
            permissions=self.permissions,
            events=self.events,
            metrics=self.metrics,
            limits=ConnLimits(
                ping_interval=s.ServiceSettings.WebsocketPingIntervalSeconds,
                pong_timeout=s.ServiceSettings.WebsocketPongTimeoutSeconds,
                actions_per_second=s.ServiceSettings.WebsocketActionsPerSecond,
                action_burst=s.ServiceSettings.WebsocketActionBurst,
                typing_interval=s.ServiceSettings.TimeBetweenUserTypingUpdatesMilliseconds / 4000,
            ),
            node_name=self.node_name,
            server_version=server_version,
            is_draining=lambda: self.draining,
            origins=self.origins,
        )

        # Jobs (docs/jobs.md): handlers per type, this node's workers, the API's service.
        jobs = s.JobSettings
        self.job_store = JobStore(db)
        handlers: list[JobHandler] = [
            DataRetention(db, self.files, s.DataRetentionSettings),
            Cleanup(db, self.job_store, self.files, s),
            BulkExport(db, self.files, s),
            BulkImport(db, self.files, s),
        ]
        self.job_server = JobServer(
            self.job_store,
            {h.job_type: h for h in handlers},
            bus,
            node_id=self.node_id,
            enabled=jobs.RunJobs and join_cluster,
            poll_seconds=jobs.PollSeconds,
            heartbeat_seconds=jobs.HeartbeatSeconds,
        )
        self.jobs = JobsService(
            self.job_store, self.job_server.handlers, self.files, self.job_server.announce
        )

        # Cluster: membership, the shared-storage check and the leader lease (docs/cluster.md).
        # The lease runs on a single node too: leader work is fenced the same way everywhere.
        timing = ClusterTiming.from_settings(s)
        member = s.ClusterSettings.Enable and join_cluster
        self.topology = SharedStorageCheck(
            self.files,
            self.node_id,
            self.node_name,
            enabled=member and s.FileSettings.DriverName == "local",
            grace_seconds=2 * timing.heartbeat,
        )
        self.health = HealthMonitor(
            {"database": self.db.ping},
            [self.backends.problems, self.topology.problems],
            degradations=[self.backends.degraded],
        )
        # What this node tells the operator console through its discovery row, every heartbeat.
        self.node_report = NodeReport(
            lambda: self.config,
            draining=lambda: self.draining,
            problems=self.health.problems,
            degraded=self.health.degraded,
            websockets=WebsocketStats(self.metrics, self.hub.count),
            database=self.db.status,
            restart_required=lambda: self.config_store.last_result.restart_required,
        )
        identity = NodeIdentity.from_settings(s, self.node_name)
        # Before migrations: a node too far from the cluster's version must not touch the schema.
        self.version_gate = VersionGate(
            self.db,
            cluster_name=identity.cluster_name,
            hostname=identity.hostname,
            port=identity.port,
            version=identity.version,
            live_seconds=timing.live,
            enabled=member,
        )
        self.discovery = Discovery(
            self.db,
            identity,
            enabled=member,
            timing=timing,
            node_id=self.node_id,
            schema_version=lambda: self.schema.revision,
            websocket_connections=self.hub.count,
            report=self.node_report,
            listeners=[self.topology.observe],
            config_hash=lambda: self.config.hash,
        )
        self.console = OperatorConsole(
            s,
            discovery=self.discovery,
            leader_id=lambda: current_holder(self.db),
            db=self.db,
            backends=self.backends,
            files=self.files,
            node_name=self.node_name,
        )
        self.leader = Leader(
            self.db,
            self.node_id,
            duties=[
                ConsoleWatch(self.console, db, registry, self.permissions, self.events).run,
                ClusterCleanup(self.discovery, self.topology).run,
                self.presence.expire_orphans,
                Reaper(
                    db,
                    self.job_store,
                    stale_seconds=jobs.StaleSeconds,
                    max_attempts=jobs.MaxAttempts,
                    wake=self.job_server.announce,
                ).run,
                SchedulerWatch(
                    db, patience_seconds=2 * timing.lease, run_scheduler=jobs.RunScheduler
                ).run,
            ],
            lease_seconds=timing.lease,
            renew_seconds=timing.heartbeat,
        )
        # Only nodes with RunScheduler contend for the scheduler's own lease (jobs/scheduler.py).
        self.job_scheduler = Leader(
            self.db,
            self.node_id,
            name=SCHEDULER_LEASE,
            duties=[
                Scheduler(db, self.job_store, schedules_from(s), wake=self.job_server.announce).run
            ],
            lease_seconds=timing.lease,
            renew_seconds=timing.heartbeat,
        )

        # Operations
        self.proxy_trust = ProxyTrust(
            s.ServiceSettings.TrustedProxies, s.ServiceSettings.TrustedProxyIPHeader
        )
        self.rate_limiter = RateLimiter(
            s.RateLimitSettings,
            self.metrics,
            redis=self.backends.redis,
            prefix=key_prefix(s) + "ratelimit:",
        )
        self.node_facts = NodeFacts(
            lambda: self.config,
            self.db,
            self.proxy_trust,
            node_name=self.node_name,
            version=server_version,
            websockets=self.hub.count,
            problems=self.health.problems,
        )
        self.metrics_endpoint = MetricsEndpoint(s.MetricsSettings, self.metrics.registry)
        self.lifecycle = Lifecycle()
        self.asgi: ASGIApp = self._build_asgi(server_version)

    @property
    def config(self) -> LoadedConfig:
        """The running configuration (it changes when config.json is reloaded)."""
        return self.config_store.current

    async def _apply_settings(self, settings: Settings) -> None:
        await self.db.reconfigure(settings.SqlSettings)

    async def reload_config(self) -> None:
        """SIGHUP: reload config.json here and on every node; a bad file is logged and
        refused (the running configuration stays)."""
        try:
            await self.config_sync.reload_everywhere()
        except ConfigError as exc:
            log.error(
                "configuration reload refused; the running configuration stays",
                extra={"error": str(exc)},
            )

    def parts(self) -> list[Part]:
        """Every component in start order: each one only needs those before it."""
        s = self.settings
        parts = [
            Part("version window", self.version_gate),
            Part("schema", self.schema),
            Part("database", self.db),
            Part("file store", self.files),
            Part("realtime backends", self.backends),
            Part("health", self.health),
        ]
        if self.join_cluster:
            parts += [
                Part("shared storage check", self.topology),
                Part("discovery", self.discovery),
                Part("leader", self.leader),
            ]
            if s.JobSettings.RunScheduler:
                parts.append(Part("job scheduler", self.job_scheduler))
            parts.append(Part("job server", self.job_server))
        # The hub last: on stop its sockets close (1012) while everything they need still runs.
        parts += [Part("hub", self.hub), Part("metrics endpoint", self.metrics_endpoint)]
        return parts

    async def cluster_status(self) -> list[dict[str, object]]:
        view = await self.discovery.view(await current_holder(self.db))
        return annotate_status(view, await current_holder(self.db, SCHEDULER_LEASE))

    def _api_routes(self) -> list[BaseRoute]:
        s = self.settings
        return [
            # Before UserRoutes: `/users/stats` would otherwise match `/users/{user_id}`.
            *BootRoutes(self.server_info, self.permissions).routes(),
            *ClientConfigRoutes(s, self.config.hash, self.users.count).routes(),
            *RoleRoutes(self.roles, self.permissions).routes(),
            *PreferenceRoutes(self.preferences, self.permissions).routes(),
            *SidebarRoutes(self.sidebar, self.permissions).routes(),
            *AvatarRoutes(s, self.avatars).routes(),
            *EmojiRoutes(self.emoji).routes(),
            *DraftRoutes(self.drafts).routes(),
            *ThreadRoutes(self.threads).routes(),
            *SystemRoutes(
                s,
                self.db,
                self.files,
                self.config.hash,
                lambda: self.draining,
                self.permissions,
                self.health.problems,
                self.health.degraded,
            ).routes(),
            *MfaRoutes(self.mfa, self.auth, self.permissions).routes(),
            *PasswordRoutes(self.users, self.auth, self.password_resets, self.permissions).routes(),
            *UserRoutes(s, self.users, self.auth, self.permissions, self.roles).routes(),
            *TeamRoutes(s, self.teams).routes(),
            *TeamMemberRoutes(s, self.team_members).routes(),
            *ChannelRoutes(s, self.channels, self.channel_access, self.channel_directory).routes(),
            *ChannelMemberRoutes(s, self.channel_members).routes(),
            *PostRoutes(s, self.posts, self.post_lists, self.statuses).routes(),
            *ReactionRoutes(s, self.reactions).routes(),
            *SearchRoutes(s, self.search, self.team_access).routes(),
            *FileRoutes(s, self.file_infos).routes(),
            *StatusRoutes(s, self.statuses, self.users, self.permissions).routes(),
            *ClusterRoutes(self.cluster_status, self.permissions).routes(),
            *JobRoutes(self.jobs, self.permissions).routes(),
            *AdminRoutes(self.console, self.permissions).routes(),
            *OperationRoutes(self.config_sync, self.recycler, self.permissions).routes(),
            *DoctorRoutes(self.node_facts, self.permissions).routes(),
            WebSocketRoute("/websocket", self.websocket),
            WebSocketRoute("/websocket/", self.websocket),
        ]

    def _build_asgi(self, server_version: str) -> ASGIApp:
        s = self.settings
        app = Starlette(
            # The pages and files outside /api/v4 come after it: they never see an API path.
            routes=[
                # Tried by first path segment, not route by route (api/routing.py).
                Mount("/api/v4", app=IndexedRouter(self._api_routes())),
                *WebRoutes(self.permissions, s.ServiceSettings.WebappDirectory).routes(),
            ],
            exception_handlers=make_handlers(s.ServiceSettings.EnableDeveloper),
            lifespan=None,
        )
        limited: ASGIApp = app
        if s.RateLimitSettings.Enable:
            limited = RateLimitMiddleware(
                app,
                self.rate_limiter,
                s.RateLimitSettings,
                s.ServiceSettings.EnableDeveloper,
            )
        api = APIMiddleware(
            OriginGuard(limited, self.origins),
            auth=self.auth,
            version_id=server_version,
            max_body=s.ServiceSettings.MaximumPayloadSizeBytes,
            max_upload=s.FileSettings.MaxFileSize + 64 * 1024,
            strict_csrf=s.ServiceSettings.ExperimentalStrictCSRFEnforcement,
            developer=s.ServiceSettings.EnableDeveloper,
            positions=self.positions,
            enforce_mfa=self.mfa.enforced,
        )
        measured = HTTPMetrics(api, self.metrics)
        return ForwardedHeaders(WebSocketFirst(self.websocket, measured), self.proxy_trust)

    async def start(self) -> None:
        await self.lifecycle.start(self.parts())
        log.info("database ready", extra={"schema_version": self.schema.revision})
        for name in self.config.ignored:
            log.info("config setting not implemented by hubbub, ignored", extra={"setting": name})

    async def drain(self) -> None:
        """Stops taking websockets; closes open ones with 1012 so clients resume elsewhere."""
        self.draining = True
        await self.hub.close_all(CloseReason.SERVER_DRAIN)

    async def stop(self) -> None:
        await self.lifecycle.stop()


class WebSocketFirst:
    """Sends `/api/v4/websocket` straight to the endpoint, past Starlette and the API middleware.

    A websocket lives for hours; every ASGI layer it passes keeps a coroutine frame (and often a
    copy of the scope) alive for that long, about 6 KiB per connection through the full stack.
    The endpoint resolves the session itself. Anything else, including an odd spelling of the
    path (`//`), takes the ordinary stack, which routes it to the same endpoint.
    """

    PATHS = frozenset({"/api/v4/websocket", "/api/v4/websocket/"})

    def __init__(self, websocket: ASGIApp, app: ASGIApp) -> None:
        self.websocket = websocket
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A plain GET on the websocket path too: the endpoint answers what arrived (a proxy
        # that dropped the upgrade), which `hubbub doctor` reads.
        if scope["type"] in {"websocket", "http"} and scope["path"] in self.PATHS:
            await self.websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def node_name(settings: Settings) -> str:
    """hostname:port unless ClusterSettings.OverrideHostname names the node."""
    override = settings.ClusterSettings.OverrideHostname
    if override:
        return override
    _, port = split_address(settings.ServiceSettings.ListenAddress)
    return f"{socket.gethostname()}:{port}"
