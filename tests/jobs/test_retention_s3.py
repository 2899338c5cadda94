"""Data retention with the files in S3 (a real moto_server): the objects of old files are gone
from the bucket, the others stay. The database side is the same as test_retention.py's, so this
runs on SQLite only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from hubbub.app import Hubbub
from hubbub.files.s3 import S3FileBackend
from tests.support.api import API, User
from tests.support.jobs_world import RETENTION_ENV, build, check_after, run_job
from tests.support.s3 import MotoServer, start_moto

PREFIX = "retention"


@pytest.fixture
def db_kind() -> str:
    return "sqlite"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    return moto.create_bucket()


@pytest.fixture
def config_overrides(moto: MotoServer, bucket: str) -> dict[str, str]:
    return {**RETENTION_ENV, **moto.node_env(bucket, prefix=PREFIX)}


@pytest.fixture(autouse=True)
async def close_file_store(node: Hubbub) -> AsyncIterator[None]:
    assert isinstance(node.files, S3FileBackend)
    yield
    await node.files.close()


async def test_retention_removes_old_files_from_the_bucket(
    api: API, node: Hubbub, admin: User, moto: MotoServer, bucket: str
) -> None:
    world = await build(api, node, admin)
    before = set(moto.keys(bucket, PREFIX))
    assert {f"{PREFIX}/{p}" for p in world.old_paths + world.kept_paths} <= before

    async def in_bucket(path: str) -> bool:
        return f"{PREFIX}/{path}" in moto.keys(bucket, PREFIX)

    job = await run_job(api, admin.token, "data_retention")
    await check_after(api, node, world, job, in_bucket)
