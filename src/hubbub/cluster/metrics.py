"""The cluster's Prometheus metrics: messages between nodes, with Mattermost's names, and the
outbox, hubbub's own.

* Cluster messages are the bus's (`bus.py`: session revocations, role changes, config reloads,
  websocket takeovers, ...). `mattermost_cluster_cluster_requests_total` counts the messages this
  node sent, `mattermost_cluster_cluster_event_type_totals{name}` the same by kind, and
  `mattermost_cluster_cluster_request_duration_seconds` times each send (the Redis `PUBLISH`
  round trip); `hubbub_cluster_messages_received_total{name}` counts what this node heard (its
  own messages too: every node hears every message).
* The outbox (`outbox.py`): `hubbub_outbox_backlog_rows` (events committed and not yet marked
  published; normally the last second's) and `hubbub_outbox_oldest_unpublished_seconds`,
  measured by every node's sweeper each round; `hubbub_outbox_republished_total` (rows the
  sweeper appended because their writer did not: a node died, Redis was away) and
  `hubbub_outbox_deferred_total` (rows a writer left to the sweeper).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ClusterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.requests = Counter(
            "mattermost_cluster_cluster_requests_total",
            "The total number of inter-node requests (cluster messages sent)",
            registry=r,
        )
        self.request_duration = Histogram(
            "mattermost_cluster_cluster_request_duration_seconds",
            "The total duration in seconds of the inter-node cluster requests",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )
        # A counter, exported as a gauge: prometheus_client would name a Counter's samples
        # `..._totals_total`, and dashboards built for Mattermost query this exact name.
        self.sent = Gauge(
            "mattermost_cluster_cluster_event_type_totals",
            "The total number of cluster requests sent for any type",
            ["name"],
            registry=r,
        )
        self.received = Counter(
            "hubbub_cluster_messages_received_total",
            "Cluster messages this node heard, by kind",
            ["name"],
            registry=r,
        )
        self.outbox_rows = Gauge(
            "hubbub_outbox_backlog_rows",
            "Outbox rows committed and not yet marked published",
            registry=r,
        )
        self.outbox_oldest = Gauge(
            "hubbub_outbox_oldest_unpublished_seconds",
            "Age of the oldest outbox row not yet marked published (0 when none)",
            registry=r,
        )
        self.outbox_republished = Counter(
            "hubbub_outbox_republished_total",
            "Outbox rows the sweeper appended because their writer did not",
            registry=r,
        )
        self.outbox_deferred = Counter(
            "hubbub_outbox_deferred_total",
            "Outbox rows a writer left to the sweeper (event log away, predecessor late)",
            registry=r,
        )
