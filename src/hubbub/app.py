"""Composition root: builds every service explicitly, then starts and stops them in order.

Start-up reads top-down (store, files, services, routes); shutdown runs in reverse.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from hubbub.api.boot import BootRoutes
from hubbub.api.channels import ChannelRoutes
from hubbub.api.client_config import ClientConfigRoutes
from hubbub.api.cluster import ClusterRoutes
from hubbub.api.errors import make_handlers
from hubbub.api.files import FileRoutes
from hubbub.api.middleware import APIMiddleware
from hubbub.api.posts import PostRoutes
from hubbub.api.preferences import PreferenceRoutes
from hubbub.api.roles import RoleRoutes
from hubbub.api.search import SearchRoutes
from hubbub.api.sidebar import SidebarRoutes
from hubbub.api.statuses import StatusRoutes
from hubbub.api.system import SystemRoutes
from hubbub.api.teams import TeamRoutes
from hubbub.api.users import UserRoutes
from hubbub.api.websocket import WebSocketEndpoint
from hubbub.cluster.backends import build_backends
from hubbub.cluster.discovery import ClusterTiming, Discovery, NodeIdentity
from hubbub.cluster.leader import Leader, current_holder, run_as_leader
from hubbub.cluster.topology import SharedStorageCheck
from hubbub.config import LoadedConfig
from hubbub.config.settings import Settings, split_address
from hubbub.files import make_backend
from hubbub.observability.health import HealthMonitor
from hubbub.observability.metrics import Metrics
from hubbub.realtime.hub import Hub
from hubbub.realtime.presence import Presence
from hubbub.realtime.protocol import CloseReason
from hubbub.realtime.publisher import RealtimePublisher
from hubbub.realtime.session import ConnLimits
from hubbub.services.auth import AuthService
from hubbub.services.channels import ChannelsService
from hubbub.services.files import FilesService
from hubbub.services.permissions import Permissions
from hubbub.services.posts import PostsService
from hubbub.services.preferences import PreferencesService
from hubbub.services.roles import RolesService
from hubbub.services.search import SearchService
from hubbub.services.server_info import ServerInfo
from hubbub.services.sidebar import SidebarService
from hubbub.services.statuses import StatusesService
from hubbub.services.teams import TeamsService
from hubbub.services.users import UsersService
from hubbub.store.db import Database
from hubbub.store.migrate import migrate
from hubbub.version import version_id

log = logging.getLogger("hubbub.app")


class Hubbub:
    """One node: its database, file store, services and HTTP application."""

    def __init__(self, config: LoadedConfig, *, join_cluster: bool = True) -> None:
        self.config = config
        # False for one-off CLI commands: they must not register as a node or take the lease.
        self.join_cluster = join_cluster
        settings = config.settings
        self.settings = settings
        self.draining = False

        self.db = Database(settings.SqlSettings)
        self.files = make_backend(settings)

        self.metrics = Metrics()
        self.node_name = node_name(settings)
        self.backends = build_backends(settings, self.db, self.node_name)
        self.eventlog = self.backends.eventlog
        self.registry = self.backends.registry
        self.bus = self.backends.bus
        self.events = RealtimePublisher(
            self.db, self.eventlog, self.registry, self.metrics, outbox=self.backends.outbox
        )

        self.users = UsersService(self.db, settings, self.events)
        self.auth = AuthService(self.db, settings, self.users)
        self.teams = TeamsService(self.db, settings, self.users, self.events)
        self.channels = ChannelsService(self.db, settings, self.users, self.teams, self.events)
        self.file_infos = FilesService(self.db, settings, self.files, self.channels, self.events)
        self.posts = PostsService(
            self.db, settings, self.users, self.channels, self.file_infos, self.events
        )
        self.statuses = StatusesService(self.db, settings, self.events)
        self.search = SearchService(self.db, settings, self.users, self.channels, self.posts)
        self.roles = RolesService(self.db, self.events)
        self.permissions = Permissions(self.db, self.roles)
        self.preferences = PreferencesService(self.db, self.events)
        self.sidebar = SidebarService(self.db, self.events, self.preferences)
        self.server_info = ServerInfo(self.db, self.metrics.registry)

        self.hub = Hub(self.eventlog, self.registry, self.metrics)
        self.presence = Presence(self.statuses)
        self.websocket = WebSocketEndpoint(
            auth=self.auth,
            hub=self.hub,
            presence=self.presence,
            channels=self.channels,
            events=self.events,
            metrics=self.metrics,
            limits=ConnLimits(
                ping_interval=settings.ServiceSettings.WebsocketPingIntervalSeconds,
                pong_timeout=settings.ServiceSettings.WebsocketPongTimeoutSeconds,
            ),
            node_name=self.node_name,
            server_version=version_id(config.hash),
            is_draining=lambda: self.draining,
        )
        self._wire_bus()
        self.health = HealthMonitor()
        self.health.add_probe("database", self.db.ping)
        self.health.add_source(self.backends.problems)
        self._build_cluster()
        self._metrics_server: Any = None

        self.asgi: ASGIApp = self._build_asgi()

    def _wire_bus(self) -> None:
        """Revocations and cache invalidations go through the bus, so every node follows."""

        async def publish_revoke(tokens: set[str]) -> None:
            await self.bus.publish("revoke", tokens=sorted(tokens))

        async def publish_invalidate(user_id: str) -> None:
            await self.bus.publish("invalidate_user", user_id=user_id)

        async def on_revoke(message: dict[str, Any]) -> None:
            tokens = set(message.get("tokens", []))
            for token in tokens:
                self.auth.cache.drop_token(token)
            await self.websocket.close_revoked(tokens)

        async def on_invalidate(message: dict[str, Any]) -> None:
            self.auth.cache.drop_user(str(message.get("user_id", "")))

        async def on_takeover(message: dict[str, Any]) -> None:
            await self.hub.take_over_local(
                str(message.get("connection_id", "")), str(message.get("instance", ""))
            )

        self.auth.revocation_listeners.append(publish_revoke)
        self.auth.invalidation_listeners.append(publish_invalidate)
        self.bus.on("revoke", on_revoke)
        self.bus.on("invalidate_user", on_invalidate)
        self.bus.on("takeover", on_takeover)
        self.hub.bus = self.bus
        on_reset = getattr(self.eventlog, "on_reset", None)
        if on_reset is not None:
            on_reset(self.hub.reset_all)

    def _build_cluster(self) -> None:
        """Membership, the leader lease and the shared-storage check (docs/cluster.md)."""
        s = self.settings
        timing = ClusterTiming.from_env()
        member = s.ClusterSettings.Enable and self.join_cluster
        self.discovery = Discovery(
            self.db,
            NodeIdentity.from_settings(s, self.node_name),
            enabled=member,
            timing=timing,
            websocket_connections=lambda: self.hub.count(),
        )
        # The lease runs on a single node too: leader work is fenced the same way everywhere.
        self.leader = Leader(
            self.db,
            self.discovery.node_id,
            lease_seconds=timing.lease,
            renew_seconds=timing.heartbeat,
        )
        self.topology = SharedStorageCheck(
            self.files,
            self.discovery.node_id,
            self.node_name,
            enabled=member and s.FileSettings.DriverName == "local",
            grace_seconds=2 * timing.heartbeat,
        )
        self.discovery.listeners.append(self.topology.observe)
        self.leader.duties.append(self._clean_up_cluster)
        self.leader.duties.append(self._expire_presence)
        self.health.add_source(self.topology.problems)

    async def _clean_up_cluster(self, token: int) -> None:
        """Leader duty: drop expired discovery rows and the markers of nodes gone for good."""
        if not self.discovery.enabled:
            return
        await self.discovery.delete_expired(lambda conn: run_as_leader(conn, token))
        known = [node.id for node in await self.discovery.all_nodes()]
        await self.topology.sweep(known, self.discovery.timing.expire)

    async def _expire_presence(self, token: int) -> None:
        """Leader duty: users shown online or away with no live connection on any node (their
        node died without closing them) go offline."""
        present = await self.statuses.automatic_present_users()
        if not present:
            return
        connected = await self.registry.connected_users()
        for user_id in present:
            # Checked again one by one: the user may have connected since the snapshot.
            if user_id not in connected and await self.registry.live_connections(user_id) == 0:
                await self.presence.disconnected(user_id)

    async def cluster_status(self) -> list[dict[str, Any]]:
        return await self.discovery.view(await current_holder(self.db))

    def _api_routes(self) -> list[BaseRoute]:
        s = self.settings
        return [
            # Before UserRoutes: `/users/stats` would otherwise match `/users/{user_id}`.
            *BootRoutes(self.server_info, self.permissions).routes(),
            *ClientConfigRoutes(s, self.config.hash, self.users.count).routes(),
            *RoleRoutes(self.roles, self.permissions).routes(),
            *PreferenceRoutes(self.preferences, self.permissions).routes(),
            *SidebarRoutes(self.sidebar, self.permissions).routes(),
            *SystemRoutes(
                s,
                self.db,
                self.files,
                self.config.hash,
                lambda: self.draining,
                self.health.problems,
            ).routes(),
            *UserRoutes(s, self.users, self.auth).routes(),
            *TeamRoutes(s, self.teams, self.users).routes(),
            *ChannelRoutes(s, self.channels, self.teams, self.users).routes(),
            *PostRoutes(s, self.posts, self.channels, self.statuses).routes(),
            *SearchRoutes(s, self.search, self.teams).routes(),
            *FileRoutes(s, self.file_infos, self.channels).routes(),
            *StatusRoutes(s, self.statuses, self.users).routes(),
            *ClusterRoutes(self.cluster_status).routes(),
            WebSocketRoute("/websocket", self.websocket),
            WebSocketRoute("/websocket/", self.websocket),
        ]

    def _build_asgi(self) -> ASGIApp:
        s = self.settings
        app = Starlette(
            routes=[Mount("/api/v4", routes=self._api_routes())],
            exception_handlers=make_handlers(s.ServiceSettings.EnableDeveloper),  # type: ignore[arg-type]
            lifespan=None,
        )
        api = APIMiddleware(
            app,
            auth=self.auth,
            version_id=version_id(self.config.hash),
            max_body=s.ServiceSettings.MaximumPayloadSizeBytes,
            max_upload=s.FileSettings.MaxFileSize + 64 * 1024,
            strict_csrf=s.ServiceSettings.ExperimentalStrictCSRFEnforcement,
            developer=s.ServiceSettings.EnableDeveloper,
        )
        return WebSocketFirst(self.websocket, api)

    async def start(self) -> None:
        revision = await migrate(self.db)
        self.db.start()
        await self.backends.start()
        self.hub.start()
        await self.health.start()
        log.info("database ready", extra={"schema_version": revision})
        if self.join_cluster:
            await self.topology.start()
            await self.discovery.start(revision)
            await self.leader.start()
        for name in self.config.ignored:
            log.info("config setting not implemented by hubbub, ignored", extra={"setting": name})

        metrics = self.settings.MetricsSettings
        if metrics.Enable:
            from prometheus_client import start_http_server

            host, port = split_address(metrics.ListenAddress)
            self._metrics_server, _ = start_http_server(port, host, self.metrics.registry)

    async def drain(self) -> None:
        """Stops taking websockets; closes open ones with 1012 so clients resume elsewhere."""
        self.draining = True
        await self.hub.close_all(CloseReason.SERVER_DRAIN)

    async def stop(self) -> None:
        if self.hub.count():
            await self.hub.close_all(CloseReason.SERVER_DRAIN)
        await self.hub.stop()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        if self.join_cluster:
            await self.leader.stop()
            await self.discovery.stop()
            await self.topology.stop()
        await self.health.stop()
        await self.backends.stop()
        await self.files.close()
        await self.db.close()


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
        if scope["type"] == "websocket" and scope["path"] in self.PATHS:
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
