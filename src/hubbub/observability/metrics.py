"""Prometheus metrics, with Mattermost's names where one exists. One registry per node."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hubbub.config.settings import MetricsConfig, split_address
from hubbub.lifecycle import Component


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.websockets = Gauge(
            "mattermost_http_websockets_total", "Websocket connections on this node", registry=r
        )
        self.reconnects = Counter(
            "mattermost_websocket_reconnects_total",
            "Websocket reconnects by outcome (success, failure, lossless)",
            ["type"],
            registry=r,
        )
        self.events = Counter(
            "mattermost_websocket_event_total", "Events published, by type", ["type"], registry=r
        )
        self.broadcasts = Counter(
            "mattermost_websocket_broadcasts_total",
            "Events written to sockets, by type",
            ["name"],
            registry=r,
        )
        self.disconnects = Counter(
            "hubbub_websocket_disconnects_total",
            "Websocket closes by classified reason",
            ["reason"],
            registry=r,
        )
        self.client_reported = Counter(
            "hubbub_websocket_client_close_codes_total",
            "Close codes clients reported on reconnect (disconnect_err_code)",
            ["code"],
            registry=r,
        )
        self.dropped = Counter(
            "hubbub_websocket_dropped_events_total",
            "Ephemeral events dropped for slow consumers, by type",
            ["event"],
            registry=r,
        )
        self.scoped = Counter(
            "hubbub_websocket_scoped_events_total",
            "Typing and reaction events left out for connections that have another channel "
            "open (FeatureFlags.WebSocketEventScope), by type",
            ["event"],
            registry=r,
        )
        self.refused_actions = Counter(
            "hubbub_websocket_refused_actions_total",
            "Client websocket actions not run: over the connection's budget (rate_limited) or "
            "a user_typing within a second of the last one (typing_coalesced)",
            ["reason"],
            registry=r,
        )
        self.stale = Counter(
            "hubbub_websocket_stale_events_total",
            "Events a connection skipped because they committed before its hello "
            "(the client refetched them)",
            registry=r,
        )
        self.late_resyncs = Counter(
            "hubbub_websocket_late_event_resyncs_total",
            "Connections given a fresh hello because an event of a channel came after a later "
            "one of that channel",
            registry=r,
        )
        self.replayed = Counter(
            "hubbub_websocket_replayed_events_total", "Events replayed on resume", registry=r
        )
        self.delivery_latency = Histogram(
            "hubbub_event_publish_to_queue_seconds",
            "Time from publish to the event being queued on a socket",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )
        # HTTP, as Mattermost names them (hubbub.observability.http_metrics).
        self.http_requests = Counter(
            "mattermost_http_requests_total", "The total number of http API requests.", registry=r
        )
        self.http_errors = Counter(
            "mattermost_http_errors_total", "The total number of http API errors.", registry=r
        )
        self.api_time = Histogram(
            "mattermost_api_time",
            "Time to execute the api handler",
            ["handler", "method", "status_code", "origin_client", "page_load_context"],
            registry=r,
        )
        self.start_time = Gauge(
            "mattermost_system_server_start_time", "The time the server started.", registry=r
        )
        self.start_time.set_to_current_time()
        self.rate_limited = Counter(
            "hubbub_http_rate_limited_total",
            "API requests refused with 429 by RateLimitSettings",
            registry=r,
        )
        self.ratelimit_store_errors = Counter(
            "hubbub_ratelimit_store_errors_total",
            "Rate-limit decisions made in this node's memory because Redis did not answer",
            registry=r,
        )

        self._broadcast_children: dict[str, Any] = {}

    def broadcast(self, name: str) -> Any:
        """The per-event-type broadcast counter, looked up once per type (hot path)."""
        child = self._broadcast_children.get(name)
        if child is None:
            child = self._broadcast_children[name] = self.broadcasts.labels(name)
        return child


class MetricsEndpoint(Component):
    """The Prometheus endpoint on `MetricsSettings.ListenAddress` (when enabled)."""

    def __init__(self, settings: MetricsConfig, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self._server: Any = None

    async def start(self) -> None:
        if not self.settings.Enable:
            return
        from prometheus_client import start_http_server

        host, port = split_address(self.settings.ListenAddress)
        self._server, _ = start_http_server(port, host, self.registry)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
