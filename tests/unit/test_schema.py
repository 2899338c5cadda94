"""The migrated schema and `hubbub.store.tables.metadata` agree (SQLite and PostgreSQL).

Full-text search objects are created by raw SQL in the migration and are not in the metadata:
the FTS5 table `posts_fts*` (SQLite) and the generated column `posts.message_tsv` (PostgreSQL).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from hubbub.config import load_config
from hubbub.store.db import Database
from hubbub.store.migrate import head_revision, migrate
from hubbub.store.tables import metadata
from tests.support.postgres import (
    PostgresInstance,
    empty_postgres_database,
    fresh_postgres_database,
)


def _include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    if type_ == "table" and name is not None and name.startswith("posts_fts"):
        return False
    if type_ == "column" and name == "message_tsv":
        return False
    if type_ == "index" and name == "ix_posts_message_tsv":
        return False
    return not (type_ == "table" and name == "alembic_version")


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "include_object": _include_object,
            "compare_type": True,
            "compare_server_default": False,
        },
    )
    return list(compare_metadata(context, metadata))


def _fts_present(connection: Connection, is_sqlite: bool) -> bool:
    from sqlalchemy import inspect

    inspector = inspect(connection)
    if is_sqlite:
        return "posts_fts" in inspector.get_table_names()
    return "message_tsv" in {c["name"] for c in inspector.get_columns("posts")}


@pytest.fixture
def data_source(db_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    if db_kind == "sqlite":
        return {"MM_SQLSETTINGS_DATASOURCE": str(tmp_path / "schema.db")}
    instance = request.getfixturevalue("postgres")
    return {
        "MM_SQLSETTINGS_DRIVERNAME": "postgres",
        "MM_SQLSETTINGS_DATASOURCE": fresh_postgres_database(instance),
    }


async def test_migrated_schema_matches_metadata(data_source: dict[str, str]) -> None:
    db = Database(load_config(None, environ=data_source).settings.SqlSettings)
    try:
        assert await migrate(db) == head_revision()
        async with db.primary.connect() as conn:
            diff = await conn.run_sync(_diff)
            fts = await conn.run_sync(_fts_present, db.is_sqlite)
    finally:
        await db.close()
    assert diff == [], "\n".join(repr(d) for d in diff)
    # The exclusions above hide something real, not nothing.
    assert fts


async def test_nodes_starting_at_once_migrate_once_under_the_lock(
    postgres: PostgresInstance,
) -> None:
    """Four nodes' migrations at the same moment on an empty PostgreSQL database: the advisory
    lock lets one migrate while the others wait, then find nothing to do (without it, two
    would create the same tables and one would fail)."""
    env = {
        "MM_SQLSETTINGS_DRIVERNAME": "postgres",
        "MM_SQLSETTINGS_DATASOURCE": empty_postgres_database(postgres),
    }
    dbs = [Database(load_config(None, environ=env).settings.SqlSettings) for _ in range(4)]
    try:
        revisions = await asyncio.gather(*(migrate(db) for db in dbs))
        async with dbs[0].primary.connect() as conn:
            diff = await conn.run_sync(_diff)
    finally:
        for db in dbs:
            await db.close()
    assert revisions == [head_revision()] * 4
    assert diff == [], "\n".join(repr(d) for d in diff)
