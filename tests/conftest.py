"""Shared fixtures: the database matrix (SQLite and a real PostgreSQL) and in-process nodes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from hubbub.app import Hubbub, Seams
from hubbub.config import LoadedConfig, load_config
from tests.support.api import API, User
from tests.support.postgres import PostgresInstance, fresh_postgres_database, start_postgres
from tests.support.recording import RecordingPublisher


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresInstance]:
    """A private PostgreSQL for the whole run, with a migrated template database."""
    instance = start_postgres()
    try:
        instance.psql("CREATE DATABASE hubbub_template")
        config = load_config(
            None,
            environ={
                "MM_SQLSETTINGS_DRIVERNAME": "postgres",
                "MM_SQLSETTINGS_DATASOURCE": instance.url_for("hubbub_template"),
            },
        )
        import asyncio

        from hubbub.store.db import Database
        from hubbub.store.migrate import migrate

        async def prepare() -> None:
            db = Database(config.settings.SqlSettings)
            try:
                await migrate(db)
            finally:
                await db.close()

        asyncio.run(prepare())
        yield instance
    finally:
        instance.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def node_env(db_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """MM_* variables for a node on a fresh database of the current kind."""
    env = {
        "MM_FILESETTINGS_DIRECTORY": str(tmp_path / "files"),
        "MM_SERVICESETTINGS_ENABLEUSERACCESSTOKENS": "true",
        "MM_SERVICESETTINGS_ENABLEBOTACCOUNTCREATION": "true",
        "MM_SERVICESETTINGS_ENABLEDEVELOPER": "true",
    }
    if db_kind == "sqlite":
        env["MM_SQLSETTINGS_DATASOURCE"] = str(tmp_path / "hubbub.db")
    else:
        instance = request.getfixturevalue("postgres")
        env["MM_SQLSETTINGS_DRIVERNAME"] = "postgres"
        env["MM_SQLSETTINGS_DATASOURCE"] = fresh_postgres_database(instance)
    return env


@pytest.fixture
def config_overrides() -> dict[str, str]:
    """Override in a test module to change settings (as MM_* variables)."""
    return {}


@pytest.fixture
def node_config(node_env: dict[str, str], config_overrides: dict[str, str]) -> LoadedConfig:
    return load_config(None, environ={**node_env, **config_overrides})


@pytest.fixture
async def node(node_config: LoadedConfig) -> AsyncIterator[Hubbub]:
    hub = Hubbub(node_config, seams=Seams(wrap_publisher=RecordingPublisher))
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


@pytest.fixture
async def api(node: Hubbub) -> AsyncIterator[API]:
    transport = httpx.ASGITransport(app=node.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://hubbub.test") as client:
        yield API(client)


@pytest.fixture
async def admin(api: API) -> User:
    """The first user: a system admin."""
    return await api.new_user(prefix="admin")
