"""The composition root's lifecycle: start in order, stop in reverse, each stop under its own
deadline, and one broken component never keeps the others from stopping."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from hubbub.app import Hubbub
from hubbub.config import load_config
from hubbub.lifecycle import Component, Lifecycle, Part


class Recorder(Component):
    def __init__(
        self,
        name: str,
        log: list[str],
        *,
        fail_start: bool = False,
        fail_stop: bool = False,
        hang_stop: bool = False,
    ) -> None:
        self.name = name
        self.log = log
        self.fail_start = fail_start
        self.fail_stop = fail_stop
        self.hang_stop = hang_stop

    async def start(self) -> None:
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        if self.hang_stop:
            await asyncio.Event().wait()
        if self.fail_stop:
            raise RuntimeError(f"{self.name} cannot stop")


async def test_starts_in_order_and_stops_in_reverse() -> None:
    log: list[str] = []
    lifecycle = Lifecycle()
    await lifecycle.start([Part(n, Recorder(n, log)) for n in ("db", "bus", "hub")])
    assert lifecycle.started == ["db", "bus", "hub"]
    await lifecycle.stop()
    assert log == ["start db", "start bus", "start hub", "stop hub", "stop bus", "stop db"]
    assert lifecycle.stop_failures == []


async def test_a_failing_or_hanging_stop_never_skips_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    lifecycle = Lifecycle()
    await lifecycle.start(
        [
            Part("db", Recorder("db", log)),
            Part("bus", Recorder("bus", log, fail_stop=True)),
            Part("leader", Recorder("leader", log, hang_stop=True), stop_timeout=0.05),
            Part("hub", Recorder("hub", log)),
        ]
    )
    with caplog.at_level(logging.ERROR, logger="hubbub.lifecycle"):
        await lifecycle.stop()
    assert [line for line in log if line.startswith("stop")] == [
        "stop hub",
        "stop leader",
        "stop bus",
        "stop db",
    ]
    assert lifecycle.stop_failures == ["leader", "bus"]
    messages = [(r.getMessage(), getattr(r, "component", "")) for r in caplog.records]
    assert ("component did not stop in time; going on with the others", "leader") in messages
    assert ("component failed to stop; going on with the others", "bus") in messages


async def test_a_failed_start_stops_what_already_started() -> None:
    """The part that failed is stopped too: it may have started a task or opened a
    connection before it raised (`Component.stop()` is safe after a partial start)."""
    log: list[str] = []
    lifecycle = Lifecycle()
    with pytest.raises(RuntimeError, match="bus cannot start"):
        await lifecycle.start(
            [
                Part("db", Recorder("db", log)),
                Part("bus", Recorder("bus", log, fail_start=True)),
                Part("hub", Recorder("hub", log)),
            ]
        )
    assert log == ["start db", "stop bus", "stop db"]
    assert lifecycle.started == []


async def test_stopping_twice_stops_once() -> None:
    log: list[str] = []
    lifecycle = Lifecycle()
    await lifecycle.start([Part("db", Recorder("db", log))])
    await lifecycle.stop()
    await lifecycle.stop()
    assert log == ["start db", "stop db"]


def test_the_node_starts_its_parts_in_dependency_order(tmp_path: Path) -> None:
    config = load_config(None, environ={"MM_SQLSETTINGS_DATASOURCE": str(tmp_path / "h.db")})
    names = [p.name for p in Hubbub(config).parts()]
    assert names == [
        "version window",
        "schema",
        "database",
        "file store",
        "realtime backends",
        "health",
        "shared storage check",
        "discovery",
        "leader",
        "job scheduler",
        "job server",
        "hub",
        "metrics endpoint",
    ]
    one_off = [p.name for p in Hubbub(config, join_cluster=False).parts()]
    assert "leader" not in one_off and "discovery" not in one_off
    # Every part is a distinct component: nothing is started twice.
    parts = Hubbub(config).parts()
    assert len({id(p.component) for p in parts}) == len(parts)


async def test_a_node_whose_component_fails_to_stop_still_closes_its_database(
    tmp_path: Path,
) -> None:
    config = load_config(None, environ={"MM_SQLSETTINGS_DATASOURCE": str(tmp_path / "h.db")})
    node = Hubbub(config)
    await node.start()

    async def broken() -> None:
        raise RuntimeError("leader release failed")

    node.leader.stop = broken  # type: ignore[method-assign]
    await node.stop()
    assert node.lifecycle.stop_failures == ["leader"]
    # The database came after the leader in the reverse walk: its pool is closed.
    assert node.db.primary.pool.checkedout() == 0
    assert node.lifecycle.started == []
