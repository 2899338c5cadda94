"""The running configuration, reloaded from disk without a restart, on every node.

`ConfigStore` holds the node's current `LoadedConfig`. `reload()` reads config.json (and the
`MM_*` variables) again exactly as start-up does; a file that does not validate is refused with
the key path in the message, and the running configuration stays. Of a valid file, the settings
that can change live (`LIVE_SECTIONS`: every `SqlSettings` field but `DriverName`: data sources,
pools, replica monitoring) are applied through the appliers the root passes in
(`Database.reconfigure`); every other changed setting is listed as "restart required" and keeps
its running value, so the node's config hash is always the hash of what it runs.

`ConfigSync` makes a reload cluster-wide, which Mattermost's `POST /api/v4/config/reload` is not:
the node that gets the request (or SIGHUP, or `hubbub config reload`) reloads first, and only if
its file is valid publishes `ConfigReload` on the cluster bus; every other node then reloads its
own config.json. `/api/v4/cluster/status` shows the nodes' hashes converging.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hubbub.cluster.bus import BusMessage, ClusterBus
from hubbub.config.loader import ConfigError, LoadedConfig, load_config
from hubbub.config.settings import Settings

log = logging.getLogger("hubbub.config")

# Section -> the settings of it that cannot change without a restart (all others can).
LIVE_SECTIONS: dict[str, frozenset[str]] = {"SqlSettings": frozenset({"DriverName"})}

Applier = Callable[[Settings], Awaitable[None]]


@dataclass(frozen=True)
class ReloadResult:
    applied: list[str] = field(default_factory=list)  # changed and now in effect
    restart_required: list[str] = field(default_factory=list)  # changed in the file only
    hash: str = ""


def _diff(old: Settings, new: Settings) -> list[str]:
    a, b = old.model_dump(mode="json"), new.model_dump(mode="json")
    return [
        f"{section}.{key}"
        for section in sorted(a)
        for key in sorted(a[section])
        if a[section][key] != b[section].get(key)
    ]


def effective(running: Settings, loaded: Settings) -> Settings:
    """`running` with the live settings of `loaded`."""
    data = running.model_dump(mode="json")
    fresh = loaded.model_dump(mode="json")
    for section, fixed in LIVE_SECTIONS.items():
        for key, value in fresh[section].items():
            if key not in fixed:
                data[section][key] = value
    return Settings.model_validate(data)


class ConfigStore:
    def __init__(
        self,
        config: LoadedConfig,
        *,
        appliers: Sequence[Applier] = (),
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.appliers = list(appliers)
        self.environ = config.environ if environ is None else environ
        self._lock = asyncio.Lock()
        self.last_result = ReloadResult(hash=config.hash)

    @property
    def current(self) -> LoadedConfig:
        return self.config

    @property
    def path(self) -> str | None:
        return None if self.config.source == "defaults" else self.config.source

    async def reload(self) -> ReloadResult:
        """Reads the configuration again; raises `ConfigError` (key path in the message) and
        keeps the running configuration when the file is invalid."""
        async with self._lock:
            loaded = load_config(self.path, self.environ)
            running = self.config.settings
            new = effective(running, loaded.settings)
            applied = _diff(running, new)
            restart = [k for k in _diff(new, loaded.settings)]
            self.config = LoadedConfig(
                settings=new, ignored=loaded.ignored, source=loaded.source, environ=self.environ
            )
            if applied:
                for apply in self.appliers:
                    await apply(new)
            result = ReloadResult(applied, restart, self.config.hash)
            self.last_result = result
            log.info(
                "configuration reloaded",
                extra={"applied": applied, "config_hash": result.hash, "source": loaded.source},
            )
            if restart:
                log.warning("restart required: " + ", ".join(restart))
            return result


@dataclass(frozen=True)
class ConfigReload(BusMessage, kind="config_reload"):
    """Every node reads its config.json again (sent after the origin's own reload worked)."""

    origin: str


class ConfigSync:
    """Reload here, then on every other node through the bus."""

    def __init__(self, store: ConfigStore, bus: ClusterBus, node_id: str) -> None:
        self.store = store
        self.bus = bus
        self.node_id = node_id
        bus.subscribe(ConfigReload, self._on_reload)

    async def reload_everywhere(self) -> ReloadResult:
        """Raises `ConfigError` (nothing is published) when this node's file is invalid."""
        result = await self.store.reload()
        await self.bus.publish(ConfigReload(self.node_id))
        return result

    async def _on_reload(self, message: ConfigReload) -> None:
        if message.origin == self.node_id:
            return
        try:
            await self.store.reload()
        except ConfigError as exc:
            log.error(
                "configuration reload refused; the running configuration stays",
                extra={"error": str(exc), "origin": message.origin},
            )

    def describe(self) -> dict[str, Any]:
        r = self.store.last_result
        return {"config_hash": r.hash, "restart_required": r.restart_required}
