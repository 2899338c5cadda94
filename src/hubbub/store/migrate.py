"""Running Alembic migrations under a lock, and checking the schema version.

The first node to start migrates; others starting at the same moment wait on the lock
(a PostgreSQL advisory lock, or a lock file next to a SQLite database) and then find nothing to do.
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from hubbub.lifecycle import Component
from hubbub.store.db import Database

_LOCK_KEY = 0x68756262  # "hubb"
_SCRIPTS = Path(__file__).parent / "migrations"


class SchemaError(Exception):
    """The database schema cannot be used by this build."""


def _alembic_config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _check_known(connection: Connection) -> str | None:
    current = _current(connection)
    scripts = ScriptDirectory.from_config(_alembic_config())
    if current is not None:
        try:
            scripts.get_revision(current)
        except Exception:
            raise SchemaError(
                f"the database schema is at revision {current}, which this build does not know "
                f"(newest known: {head_revision()}); upgrade hubbub before starting it"
            ) from None
    return current


def _upgrade(connection: Connection) -> None:
    _check_known(connection)
    command.upgrade(_alembic_config(connection), "head")


async def migrate(db: Database) -> str:
    """Brings the schema to head under a lock and returns the revision."""
    if db.is_sqlite:
        url = str(db.primary.url)
        lock_file = None
        if ":memory:" not in url:
            lock_path = Path(url.split("///", 1)[1] + ".migrate.lock")
            lock_file = lock_path.open("w")
            fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            async with db.primary.begin() as conn:
                await conn.run_sync(_upgrade)
        finally:
            if lock_file is not None:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
                lock_file.close()
    else:
        async with db.primary.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
            await conn.commit()
            try:
                await conn.run_sync(_upgrade)
                await conn.commit()
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
                await conn.commit()
    return head_revision()


async def check(db: Database) -> dict[str, Any]:
    """Reports the current and head revisions without changing anything."""
    async with db.primary.connect() as conn:
        current = await conn.run_sync(_check_known)
    head = head_revision()
    return {"current": current, "head": head, "up_to_date": current == head}


class Schema(Component):
    """The schema as a component: brought to this build's revision at start (under the lock);
    `revision` is what discovery and the status endpoints report afterwards."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.revision = ""

    async def start(self) -> None:
        self.revision = await migrate(self.db)
