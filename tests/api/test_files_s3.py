"""Uploads, downloads, thumbnails and permissions with the node's files in S3 (a real moto_server),
two nodes sharing one bucket, and the health check while the store is down and back.

The S3 driver does not touch the database, so these run on SQLite only; the database matrix is
covered by test_files.py.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from hubbub.app import Hubbub
from hubbub.config import LoadedConfig
from hubbub.files.s3 import S3FileBackend
from hubbub.store.tables import file_infos
from tests.support.api import API, User
from tests.support.files import World, error_id, make_world, png, upload, upload_one
from tests.support.s3 import MotoServer, start_moto

PREFIX = "hubbub-files"


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
async def world(api: API, admin: User) -> World:
    return await make_world(api, admin)


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    return moto.create_bucket()


@pytest.fixture
def config_overrides(moto: MotoServer, bucket: str) -> dict[str, str]:
    return moto.node_env(bucket, prefix=PREFIX)


@pytest.fixture(autouse=True)
async def close_file_store(node: Hubbub) -> AsyncIterator[None]:
    assert isinstance(node.files, S3FileBackend)
    yield
    await node.files.close()


async def stored_paths(node: Hubbub, file_id: str) -> tuple[str, str, str]:
    async with node.db.read() as conn:
        row = (
            await conn.execute(
                select(
                    file_infos.c.path, file_infos.c.thumbnail_path, file_infos.c.preview_path
                ).where(file_infos.c.id == file_id)
            )
        ).one()
    return row.path, row.thumbnail_path, row.preview_path


async def test_upload_lands_in_the_bucket_and_downloads_from_it(
    api: API, world: World, node: Hubbub, moto: MotoServer, bucket: str, tmp_path: Path
) -> None:
    content = bytes(range(256)) * 1000
    info = await upload_one(api, world.member.token, world.channel["id"], "data.bin", content)
    path, _, _ = await stored_paths(node, info["id"])
    cid, uid, fid = world.channel["id"], world.member.id, info["id"]
    assert path.endswith(f"/teams/noteam/channels/{cid}/users/{uid}/{fid}/data.bin")
    assert moto.keys(bucket) == [f"{PREFIX}/{path}"]
    assert moto.get(bucket, f"{PREFIX}/{path}") == content

    got = await api.raw("GET", f"/files/{fid}", world.admin.token)
    assert got.status_code == 200
    assert got.content == content
    assert got.headers["content-disposition"].startswith('attachment;filename="data.bin"')
    # Nothing went to the local directory the node would use with the local driver.
    assert not (tmp_path / "files").exists()


async def test_image_thumbnail_and_preview_are_objects_too(
    api: API, world: World, node: Hubbub, moto: MotoServer, bucket: str
) -> None:
    original = png(300, 200)
    info = await upload_one(api, world.admin.token, world.channel["id"], "pic.png", original)
    assert (info["width"], info["height"], info["has_preview_image"]) == (300, 200, True)
    path, thumb_path, preview_path = await stored_paths(node, info["id"])
    assert thumb_path.endswith("/pic_thumb.jpg") and preview_path.endswith("/pic_preview.jpg")
    assert moto.keys(bucket) == sorted(f"{PREFIX}/{p}" for p in (path, thumb_path, preview_path))

    thumb = await api.raw("GET", f"/files/{info['id']}/thumbnail", world.member.token)
    assert thumb.status_code == 200
    assert thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content == moto.get(bucket, f"{PREFIX}/{thumb_path}")
    assert Image.open(io.BytesIO(thumb.content)).size == (120, 80)
    preview = await api.raw("GET", f"/files/{info['id']}/preview", world.member.token)
    assert Image.open(io.BytesIO(preview.content)).size == (300, 200)
    got = await api.raw("GET", f"/files/{info['id']}", world.member.token)
    assert got.content == original


async def test_private_channel_files_are_only_for_its_members(api: API, world: World) -> None:
    private = await api.new_channel(world.admin.token, world.team["id"], type_="P")
    info = await upload_one(api, world.admin.token, private["id"], "secret.png", png(20, 20))
    fid = info["id"]
    for suffix in ("", "/info", "/thumbnail", "/preview"):
        resp = await api.raw("GET", f"/files/{fid}{suffix}", world.outsider.token)
        assert resp.status_code == 403, suffix
        assert error_id(resp) == "api.context.permissions.app_error"
    denied = await upload(api, world.outsider.token, private["id"], [("a.txt", b"a")])
    assert denied.status_code == 403
    await api.add_to_channel(world.admin.token, private["id"], world.outsider.id)
    for suffix in ("", "/info", "/thumbnail", "/preview"):
        resp = await api.raw("GET", f"/files/{fid}{suffix}", world.outsider.token)
        assert resp.status_code == 200, suffix


async def test_an_object_missing_from_the_bucket_is_404(
    api: API, world: World, node: Hubbub, moto: MotoServer, bucket: str
) -> None:
    info = await upload_one(api, world.admin.token, world.channel["id"], "gone.txt", b"gone")
    path, _, _ = await stored_paths(node, info["id"])
    moto.admin.delete_object(Bucket=bucket, Key=f"{PREFIX}/{path}")
    resp = await api.raw("GET", f"/files/{info['id']}", world.admin.token)
    assert resp.status_code == 404
    assert error_id(resp) == "api.file.file_reader.app_error"


async def test_a_second_node_on_the_same_bucket_serves_the_first_nodes_files(
    api: API, world: World, node_config: LoadedConfig
) -> None:
    info = await upload_one(api, world.member.token, world.channel["id"], "p.png", png(64, 64))
    other = Hubbub(node_config)
    await other.start()
    try:
        transport = httpx.ASGITransport(app=other.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://other.test") as client:
            there = API(client)
            got = await there.raw("GET", f"/files/{info['id']}", world.admin.token)
            assert got.content == png(64, 64)
            thumb = await there.raw("GET", f"/files/{info['id']}/thumbnail", world.admin.token)
            assert (
                thumb.content
                == (
                    await api.raw("GET", f"/files/{info['id']}/thumbnail", world.admin.token)
                ).content
            )
            back = await upload_one(there, world.member.token, world.channel["id"], "b.txt", b"B")
        got_back = await api.raw("GET", f"/files/{back['id']}", world.member.token)
        assert got_back.content == b"B"
    finally:
        await other.stop()
        await other.files.close()


# The store going down and coming back


@dataclass
class Outage:
    """A node whose S3 server the test stops and starts again."""

    server: MotoServer
    node: Hubbub
    api: API


@pytest.fixture
async def outage(node: Hubbub, moto: MotoServer) -> AsyncIterator[Outage]:
    # Failures the node does not turn into an AppError still answer 500, as they would behind
    # uvicorn, instead of surfacing in the test.
    transport = httpx.ASGITransport(app=node.asgi, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://n.test") as client:
            yield Outage(moto, node, API(client))
    finally:
        moto.ensure_running()  # for the module's next tests, whatever happened here


async def server_status(api: API, rest: bool = False) -> httpx.Response:
    query = "get_server_status=true" + ("&use_rest_semantics=true" if rest else "")
    return await api.raw("GET", f"/system/ping?{query}")


async def test_ping_reports_the_file_store_down_and_recovers(outage: Outage) -> None:
    healthy = await server_status(outage.api)
    assert healthy.status_code == 200, healthy.text
    assert (healthy.json()["status"], healthy.json()["filestore_status"]) == ("OK", "OK")

    outage.server.kill()
    down = await server_status(outage.api)
    assert down.status_code == 500
    body = down.json()
    assert (body["status"], body["filestore_status"], body["database_status"]) == (
        "UNHEALTHY",
        "UNHEALTHY",
        "OK",
    )
    assert down.headers["filestore_status"] == "UNHEALTHY"
    assert (await server_status(outage.api, rest=True)).status_code == 503
    # The plain ping (what most load balancers ask) does not look at the file store.
    assert (await outage.api.raw("GET", "/system/ping")).status_code == 200

    outage.server.start_again()  # a new moto on the same port, the bucket created again
    back = await server_status(outage.api)
    assert back.status_code == 200, back.text
    assert back.json()["filestore_status"] == "OK"


async def test_file_requests_fail_with_500_while_the_store_is_down(outage: Outage) -> None:
    api = outage.api
    admin = await api.new_user(prefix="admin")
    team = await api.new_team(admin.token)
    channel = await api.new_channel(admin.token, team["id"])
    info = await upload_one(api, admin.token, channel["id"], "before.txt", b"before")

    outage.server.kill()
    read = await api.raw("GET", f"/files/{info['id']}", admin.token)
    # A store that cannot be reached is not a missing file.
    assert read.status_code == 500
    assert error_id(read) == "api.file.file_reader.app_error"
    write = await upload(api, admin.token, channel["id"], [("during.txt", b"during")])
    assert write.status_code == 500
    assert write.headers["content-type"] == "application/json"
    async with outage.node.db.read() as conn:
        names = (await conn.execute(select(file_infos.c.name))).scalars().all()
    assert names == ["before.txt"]

    outage.server.start_again()  # empty: what was stored before the outage is gone
    after = await upload_one(api, admin.token, channel["id"], "after.txt", b"after")
    got = await api.raw("GET", f"/files/{after['id']}", admin.token)
    assert (got.status_code, got.content) == (200, b"after")
