"""What the live nodes of a cluster must agree on, shared by the two views of it: the cluster
status (`discovery.cluster_view`, `GET /api/v4/cluster/status`, `hubbub cluster status`) and the
operator console (`observability/console.py`).

A value is compared with the majority of live nodes; a tie goes to the answering node's value,
else to the oldest node's. During a rolling upgrade two releases run side by side: their versions
differ (the *version mix*, yellow while every pair is within one minor version, `versions.py`),
and so do their schema revisions (each node reports the head it knows) and their config hashes
(a release may add settings). So schemas are compared only between nodes of the same version,
and configurations setting by setting over the settings both nodes have.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any, Protocol, TypeVar

from hubbub.cluster.versions import within_window


class Node(Protocol):
    """What the comparisons read of a node (`discovery.NodeInfo` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def props(self) -> dict[str, Any]: ...
    @property
    def node_name(self) -> str: ...


N = TypeVar("N", bound=Node)


def majority(values: Mapping[str, str], order: Sequence[str], me: str | None) -> str | None:
    """The most common value; a tie goes to this node's value, else the oldest node's."""
    if not values:
        return None
    counts = Counter(values.values())
    top = max(counts.values())
    tied = {v for v, n in counts.items() if n == top}
    if me is not None and values.get(me) in tied:
        return values[me]
    return next(values[n] for n in order if n in values and values[n] in tied)


def version_mix(live: Sequence[Node]) -> str | None:
    """The yellow reason when live nodes run different versions all within the window."""
    by_version: dict[str, list[str]] = {}
    for node in live:
        by_version.setdefault(node.version, []).append(node.node_name)
    if len(by_version) < 2:
        return None
    if not all(within_window(a, b) for a, b in combinations(by_version, 2)):
        return None
    listed = "; ".join(
        f"{version} on {', '.join(sorted(names))}" for version, names in sorted(by_version.items())
    )
    return f"version mix: {listed} (a rolling upgrade, within the one-minor window)"


def outside_window(node: Node, live: Sequence[Node]) -> list[str]:
    """The versions of live nodes that `node` must not run beside."""
    return sorted({n.version for n in live if not within_window(node.version, n.version)})


def same_version(node: Node, live: Sequence[N]) -> list[N]:
    return [n for n in live if n.version == node.version]


def differing_settings(node: Node, live: Sequence[Node], me: str | None) -> list[str] | None:
    """The settings whose digest on `node` differs from the majority's (over the nodes that have
    the setting), or None when `node` published no digests (an older release)."""
    mine = node.props.get("settings")
    if not isinstance(mine, dict) or not mine:
        return None
    published = {
        n.id: settings
        for n in live
        if isinstance(settings := n.props.get("settings"), dict) and settings
    }
    order = [n.id for n in live]
    out = []
    for name in sorted(mine):
        values = {nid: str(d[name]) for nid, d in published.items() if name in d}
        if values.get(node.id) != majority(values, order, me):
            out.append(name)
    return out
