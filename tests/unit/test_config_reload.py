"""Reloading config.json: live settings applied, the others listed as restart required, a bad
file refused with its key path while the running configuration stays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hubbub.cluster.bus import MemoryBus
from hubbub.config import ConfigError, Settings, load_config
from hubbub.config.live import ConfigReload, ConfigStore, ConfigSync


def _write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data))


async def test_live_settings_apply_and_others_wait_for_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    _write(path, {"SqlSettings": {"DataSource": str(tmp_path / "a.db")}})
    applied: list[Settings] = []

    async def apply(settings: Settings) -> None:
        applied.append(settings)

    store = ConfigStore(load_config(path, environ={}), appliers=[apply], environ={})
    before = store.current.hash
    _write(
        path,
        {
            "SqlSettings": {"DataSource": str(tmp_path / "a.db"), "QueryTimeout": 7},
            "TeamSettings": {"SiteName": "Elsewhere"},
        },
    )
    result = await store.reload()
    assert result.applied == ["SqlSettings.QueryTimeout"]
    assert result.restart_required == ["TeamSettings.SiteName"]
    assert store.current.settings.SqlSettings.QueryTimeout == 7
    assert store.current.settings.TeamSettings.SiteName == "Mattermost"  # still running as is
    assert store.current.hash == result.hash != before
    assert applied and applied[-1].SqlSettings.QueryTimeout == 7


async def test_a_bad_file_is_refused_and_the_running_config_stays(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    _write(path, {"SqlSettings": {"QueryTimeout": 9}})
    store = ConfigStore(load_config(path, environ={}), environ={})
    _write(path, {"SqlSettings": {"QueryTimeout": -1}})
    with pytest.raises(ConfigError, match=r"SqlSettings\.QueryTimeout"):
        await store.reload()
    assert store.current.settings.SqlSettings.QueryTimeout == 9


async def test_reload_everywhere_publishes_only_after_a_good_reload(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    _write(path, {})
    bus = MemoryBus("n1")
    seen: list[ConfigReload] = []

    async def record(message: ConfigReload) -> None:
        seen.append(message)

    bus.subscribe(ConfigReload, record)
    sync = ConfigSync(ConfigStore(load_config(path, environ={}), environ={}), bus, "n1")
    _write(path, {"SqlSettings": {"QueryTimeout": "x"}})
    with pytest.raises(ConfigError):
        await sync.reload_everywhere()
    assert seen == []
    _write(path, {"SqlSettings": {"QueryTimeout": 12}})
    await sync.reload_everywhere()
    assert seen == [ConfigReload("n1")]
