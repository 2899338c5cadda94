"""What a node tells the others about itself, for the operator console.

Every heartbeat a cluster node writes these props into its discovery row
(`cluster/discovery.py`); the console (`observability/console.py`) reads every node's row, so any
node can show the whole cluster. A node without a cluster reports only itself, in memory.

* `draining`, `problems`: whether the node takes traffic, and the failing readiness checks in
  words (the same list the health check reports);
* `settings`: one short digest per setting that the cluster's config hash covers, so a config
  mismatch can be told by name ("TeamSettings.SiteName") without any node publishing a value.
  Secret settings (passwords, data sources) get a slow, salted digest cut to 32 bits: enough to
  tell two nodes apart, too little to confirm a guessed password;
* `websockets`: the websocket figures over the last hour (`websocket_stats.py`);
* `database`: the database roles and their health (`store/monitor.py`), `restart_required`: the
  settings changed in config.json that the running node could not apply (`config/live.py`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from hubbub.config import LoadedConfig, Settings, config_hash
from hubbub.config.settings import SECRETS
from hubbub.observability.websocket_stats import WebsocketStats

# Left out of the comparison, as `config_hash` leaves them out: they differ per node by design.
PER_NODE = {
    ("ServiceSettings", "ListenAddress"),
    ("MetricsSettings", "ListenAddress"),
}


def setting_digests(settings: Settings) -> dict[str, str]:
    """`Section.Setting` -> a digest of its value, for every setting the config hash covers."""
    data = settings.model_dump(mode="json")
    out: dict[str, str] = {}
    for section, values in sorted(data.items()):
        if section == "ClusterSettings":
            continue
        for key, value in sorted(values.items()):
            if (section, key) in PER_NODE:
                continue
            name = f"{section}.{key}"
            blob = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
            if (section, key) in SECRETS:
                salt = b"hubbub-setting-digest:" + name.encode()
                out[name] = hashlib.scrypt(blob, salt=salt, n=2**12, r=8, p=1, dklen=4).hex()
            else:
                out[name] = hashlib.sha256(name.encode() + b"=" + blob).hexdigest()[:12]
    return out


class NodeReport:
    """The props this node adds to its discovery row (called at every heartbeat)."""

    def __init__(
        self,
        config: Callable[[], LoadedConfig],
        *,
        draining: Callable[[], bool],
        problems: Callable[[], list[str]],
        websockets: WebsocketStats,
        degraded: Callable[[], list[str]] = list,
        database: Callable[[], dict[str, Any]] = dict,
        restart_required: Callable[[], list[str]] = list,
    ) -> None:
        self.config = config
        self.draining = draining
        self.problems = problems
        self.degraded = degraded
        self.websockets = websockets
        self.database = database
        self.restart_required = restart_required
        self._digests: tuple[str, dict[str, str]] = ("", {})

    def settings(self) -> dict[str, str]:
        """The digests, computed again only when the configuration changed."""
        settings = self.config().settings
        current = config_hash(settings)
        if self._digests[0] != current:
            self._digests = (current, setting_digests(settings))
        return self._digests[1]

    def __call__(self) -> dict[str, Any]:
        return {
            "draining": self.draining(),
            "problems": self.problems(),
            "degraded": self.degraded(),
            "settings": self.settings(),
            "websockets": self.websockets.summary(),
            "database": self.database(),
            "restart_required": self.restart_required(),
        }
