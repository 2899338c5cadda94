"""Data retention on SQLite and PostgreSQL with the local file store: exactly what is older than
the window goes (posts, reactions, thread counts, search hits, files), nothing newer; a second
run finds nothing; the API answers as Mattermost's clients expect."""

from __future__ import annotations

import pytest

from hubbub.app import Hubbub
from tests.support.api import API, User
from tests.support.jobs_world import RETENTION_ENV, build, check_after, run_job


@pytest.fixture
def config_overrides() -> dict[str, str]:
    return dict(RETENTION_ENV)


async def test_retention_deletes_exactly_what_is_older_than_the_window(
    api: API, node: Hubbub, admin: User
) -> None:
    world = await build(api, node, admin)
    job = await run_job(api, admin.token, "data_retention")
    await check_after(api, node, world, job, node.files.exists)
    assert int(job["data"]["message_cutoff"]) > 0 and job["progress"] == 100

    again = await run_job(api, admin.token, "data_retention")
    assert again["data"]["deleted_posts"] == "0" and again["data"]["deleted_files"] == "0"
