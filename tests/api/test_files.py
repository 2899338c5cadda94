"""File uploads, downloads, infos, thumbnails and previews, and attaching files to posts."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from hubbub.api.files import content_disposition
from hubbub.app import Hubbub
from tests.support.api import API, User
from tests.support.files import World, error_id, make_world, png, upload, upload_one


@pytest.fixture
async def world(api: API, admin: User) -> World:
    return await make_world(api, admin)


async def test_upload_one_file_then_download_and_info(api: API, world: World) -> None:
    content = b"hello, files\n"
    resp = await upload(api, world.member.token, world.channel["id"], [("notes.txt", content)])
    assert resp.status_code == 201, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["client_ids"] == []
    [info] = body["file_infos"]
    assert info["user_id"] == world.member.id
    assert info["channel_id"] == world.channel["id"]
    assert (info["name"], info["extension"], info["size"]) == ("notes.txt", "txt", len(content))
    assert info["mime_type"] == "text/plain"
    assert info["create_at"] > 0 and info["delete_at"] == 0
    assert info["mini_preview"] is None
    for absent in ("post_id", "has_preview_image", "width", "height", "path"):
        assert absent not in info

    got = await api.raw("GET", f"/files/{info['id']}", world.member.token)
    assert got.status_code == 200
    assert got.content == content
    assert got.headers["content-type"] == "text/plain"
    assert got.headers["content-disposition"].startswith('attachment;filename="notes.txt"')
    assert got.headers["x-content-type-options"] == "nosniff"

    assert await api.call("GET", f"/files/{info['id']}/info", world.admin.token) == info


async def test_upload_several_files_with_client_ids(api: API, world: World) -> None:
    files = [(f"f{i}.bin", bytes([i]) * (i + 1)) for i in range(3)]
    resp = await upload(api, world.admin.token, world.channel["id"], files, ["c0", "c1", "c2"])
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["client_ids"] == ["c0", "c1", "c2"]
    assert [i["name"] for i in body["file_infos"]] == ["f0.bin", "f1.bin", "f2.bin"]
    assert len({i["id"] for i in body["file_infos"]}) == 3
    for (_, content), info in zip(files, body["file_infos"], strict=True):
        got = await api.raw("GET", f"/files/{info['id']}", world.member.token)
        assert got.content == content


async def test_client_ids_must_match_the_files(api: API, world: World) -> None:
    resp = await upload(api, world.admin.token, world.channel["id"], [("a.txt", b"a")], ["x", "y"])
    assert resp.status_code == 400
    assert error_id(resp) == "api.file.upload_file.incorrect_number_of_client_ids.app_error"


async def test_channel_id_as_query_parameter_and_raw_body(api: API, world: World) -> None:
    cid = world.channel["id"]
    resp = await api.raw(
        "POST", f"/files?channel_id={cid}", world.admin.token, files=[("files", ("q.txt", b"q"))]
    )
    assert resp.status_code == 201, resp.text
    raw = await api.raw(
        "POST", f"/files?channel_id={cid}&filename=raw.txt", world.admin.token, content=b"raw!"
    )
    assert raw.status_code == 201, raw.text
    [info] = raw.json()["file_infos"]
    assert (info["name"], info["size"]) == ("raw.txt", 4)


async def test_image_gets_dimensions_thumbnail_preview_and_mini_preview(
    api: API, world: World
) -> None:
    info = await upload_one(api, world.admin.token, world.channel["id"], "pic.png", png(300, 200))
    assert info["mime_type"] == "image/png"
    assert (info["width"], info["height"], info["has_preview_image"]) == (300, 200, True)
    mini = Image.open(io.BytesIO(base64.b64decode(info["mini_preview"])))
    assert (mini.format, mini.size) == ("JPEG", (16, 16))

    thumb = await api.raw("GET", f"/files/{info['id']}/thumbnail", world.member.token)
    assert thumb.status_code == 200
    assert thumb.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(thumb.content))
    assert image.format == "JPEG"
    assert image.size == (120, 80)

    preview = await api.raw("GET", f"/files/{info['id']}/preview", world.member.token)
    assert preview.status_code == 200
    assert Image.open(io.BytesIO(preview.content)).size == (300, 200)

    original = await api.raw("GET", f"/files/{info['id']}", world.member.token)
    assert original.headers["content-type"] == "image/png"
    assert original.headers["content-disposition"].startswith("inline;")
    download = await api.raw("GET", f"/files/{info['id']}?download=1", world.member.token)
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.content == png(300, 200)


async def test_wide_image_preview_is_at_most_1920_wide(api: API, world: World) -> None:
    info = await upload_one(api, world.admin.token, world.channel["id"], "w.png", png(2400, 60))
    preview = await api.raw("GET", f"/files/{info['id']}/preview", world.admin.token)
    assert Image.open(io.BytesIO(preview.content)).size == (1920, 48)
    thumb = await api.raw("GET", f"/files/{info['id']}/thumbnail", world.admin.token)
    assert Image.open(io.BytesIO(thumb.content)).size == (120, 3)


async def test_transparent_png_and_image_without_extension(api: API, world: World) -> None:
    info = await upload_one(
        api, world.admin.token, world.channel["id"], "noext", png(40, 40, "RGBA")
    )
    assert info["mime_type"] == "image/png"
    assert info["has_preview_image"] is True


async def test_non_image_has_no_thumbnail_or_preview(api: API, world: World) -> None:
    info = await upload_one(api, world.admin.token, world.channel["id"], "a.pdf", b"%PDF-1.4")
    thumb = await api.raw("GET", f"/files/{info['id']}/thumbnail", world.admin.token)
    assert thumb.status_code == 404
    assert error_id(thumb) == "api.file.get_file_thumbnail.no_thumbnail.app_error"
    preview = await api.raw("GET", f"/files/{info['id']}/preview", world.admin.token)
    assert preview.status_code == 404
    assert error_id(preview) == "api.file.get_file_preview.no_preview.app_error"


async def test_corrupt_image_is_stored_as_a_plain_file(api: API, world: World) -> None:
    broken = png(50, 50)[:60] + b"\x00garbage" * 10
    info = await upload_one(api, world.admin.token, world.channel["id"], "broken.png", broken)
    assert info["mime_type"] == "image/png"
    assert "has_preview_image" not in info
    got = await api.raw("GET", f"/files/{info['id']}", world.admin.token)
    assert got.content == broken
    thumb = await api.raw("GET", f"/files/{info['id']}/thumbnail", world.admin.token)
    assert thumb.status_code == 404


async def test_decompression_bomb_is_refused(api: API, world: World) -> None:
    bomb = png(6000, 6000, "1")  # 36 megapixels in a few kilobytes
    assert len(bomb) < 100_000
    resp = await upload(api, world.admin.token, world.channel["id"], [("bomb.png", bomb)])
    assert resp.status_code == 400
    assert error_id(resp) == "api.file.upload_file.large_image_detailed.app_error"


@pytest.mark.parametrize("config_overrides", [{"MM_FILESETTINGS_MAXFILESIZE": "1000"}])
async def test_too_large_file_is_413(api: API, world: World) -> None:
    cid = world.channel["id"]
    ok = await upload(api, world.admin.token, cid, [("ok.bin", b"x" * 1000)])
    assert ok.status_code == 201, ok.text
    over = await upload(api, world.admin.token, cid, [("big.bin", b"x" * 1001)])
    assert over.status_code == 413
    assert error_id(over) == "api.file.upload_file.too_large_detailed.app_error"
    # Far above the limit the body itself is refused before it is read.
    huge = await upload(api, world.admin.token, cid, [("huge.bin", b"x" * 200_000)])
    assert huge.status_code == 413


@pytest.mark.parametrize("config_overrides", [{"MM_FILESETTINGS_ENABLEFILEATTACHMENTS": "false"}])
async def test_uploads_disabled_is_501(api: API, world: World) -> None:
    resp = await upload(api, world.admin.token, world.channel["id"], [("a.txt", b"a")])
    assert resp.status_code == 501
    assert error_id(resp) == "api.file.attachments.disabled.app_error"


async def test_bad_uploads_are_400(api: API, world: World) -> None:
    cid = world.channel["id"]
    token = world.admin.token
    no_files = await api.raw("POST", "/files", token, data={"channel_id": cid})
    assert no_files.status_code == 400
    no_channel = await api.raw("POST", "/files", token, files=[("files", ("a.txt", b"a"))])
    assert no_channel.status_code == 400
    bad_channel = await upload(api, token, "not-an-id", [("a.txt", b"a")])
    assert bad_channel.status_code == 400
    empty_raw = await api.raw("POST", f"/files?channel_id={cid}&filename=e.txt", token)
    assert empty_raw.status_code == 400
    broken = await api.raw(
        "POST",
        "/files",
        token,
        content=b"--x\r\nnonsense",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert broken.status_code == 400
    no_boundary = await api.raw(
        "POST", "/files", token, content=b"abc", headers={"content-type": "multipart/form-data"}
    )
    assert no_boundary.status_code == 400
    field_not_file = await api.raw(
        "POST", "/files", token, data={"channel_id": cid, "files": "just text"}
    )
    assert field_not_file.status_code == 400


async def test_upload_needs_post_permission(api: API, world: World) -> None:
    resp = await upload(api, world.outsider.token, world.channel["id"], [("a.txt", b"a")])
    assert resp.status_code == 403
    anonymous = await upload(api, "", world.channel["id"], [("a.txt", b"a")])
    assert anonymous.status_code == 401


async def test_names_are_sanitized_and_encoded(api: API, world: World) -> None:
    cid = world.channel["id"]
    info = await upload_one(api, world.admin.token, cid, "../../etc/passwd", b"root")
    assert info["name"] == "passwd"
    win = await upload_one(api, world.admin.token, cid, "C:\\temp\\x.txt", b"x")
    assert win["name"] == "x.txt"
    uni = await upload_one(api, world.admin.token, cid, "résumé 日本.txt", b"cv")
    got = await api.raw("GET", f"/files/{uni['id']}", world.admin.token)
    disposition = got.headers["content-disposition"]
    assert disposition.startswith('attachment;filename="r_sum_ __.txt"')
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20%E6%97%A5%E6%9C%AC.txt" in disposition
    long = await upload_one(api, world.admin.token, cid, "n" * 500 + ".txt", b"l")
    assert len(long["name"]) <= 256 and long["name"].endswith(".txt")


def test_content_disposition_cannot_break_out_of_the_header() -> None:
    value = content_disposition("attachment", 'a"b\\c\r\nX-Evil: 1;.txt')
    assert value == (
        'attachment;filename="a_b_c__X-Evil: 1;.txt"; '
        "filename*=UTF-8''a%22b%5Cc%0D%0AX-Evil%3A%201%3B.txt"
    )


async def test_html_is_never_served_inline(api: API, world: World) -> None:
    info = await upload_one(api, world.admin.token, world.channel["id"], "x.html", b"<script>")
    got = await api.raw("GET", f"/files/{info['id']}", world.admin.token)
    assert got.headers["content-type"] == "text/html"
    assert got.headers["content-disposition"].startswith("attachment;")


async def test_unknown_and_invalid_file_ids(api: API, world: World) -> None:
    unknown = await api.raw("GET", "/files/" + "a" * 26 + "/info", world.admin.token)
    assert unknown.status_code == 404
    invalid = await api.raw("GET", "/files/nope/info", world.admin.token)
    assert invalid.status_code == 400
    info = await upload_one(api, world.admin.token, world.channel["id"], "a.txt", b"a")
    anonymous = await api.raw("GET", f"/files/{info['id']}")
    assert anonymous.status_code == 401


async def test_private_channel_files_are_only_for_its_members(api: API, world: World) -> None:
    private = await api.new_channel(world.admin.token, world.team["id"], type_="P")
    info = await upload_one(api, world.admin.token, private["id"], "secret.png", png(20, 20))
    fid = info["id"]
    for suffix in ("", "/info", "/thumbnail", "/preview"):
        resp = await api.raw("GET", f"/files/{fid}{suffix}", world.outsider.token)
        assert resp.status_code == 403, suffix
        assert error_id(resp) == "api.context.permissions.app_error"
    await api.add_to_channel(world.admin.token, private["id"], world.outsider.id)
    for suffix in ("", "/info", "/thumbnail", "/preview"):
        resp = await api.raw("GET", f"/files/{fid}{suffix}", world.outsider.token)
        assert resp.status_code == 200, suffix


async def test_attach_files_to_a_post(api: API, world: World) -> None:
    cid = world.channel["id"]
    first = await upload_one(api, world.member.token, cid, "one.txt", b"1")
    second = await upload_one(api, world.member.token, cid, "two.png", png(10, 10))
    post = await api.call(
        "POST",
        "/posts",
        world.member.token,
        json={"channel_id": cid, "message": "with files", "file_ids": [first["id"], second["id"]]},
        expect=201,
    )
    assert post["file_ids"] == [first["id"], second["id"]]

    infos = await api.call("GET", f"/posts/{post['id']}/files/info", world.admin.token)
    assert [i["id"] for i in infos] == [first["id"], second["id"]]
    assert all(i["post_id"] == post["id"] for i in infos)
    info = await api.call("GET", f"/files/{first['id']}/info", world.member.token)
    assert info["post_id"] == post["id"]

    # Attached files cannot be attached again.
    again = await api.call(
        "POST",
        "/posts",
        world.member.token,
        json={"channel_id": cid, "message": "again", "file_ids": [first["id"]]},
        expect=201,
    )
    assert again["file_ids"] == []


async def test_only_own_unattached_files_of_the_channel_attach(api: API, world: World) -> None:
    cid = world.channel["id"]
    admins = await upload_one(api, world.admin.token, cid, "admin.txt", b"a")
    other = await api.new_channel(world.admin.token, world.team["id"])
    await api.add_to_channel(world.admin.token, other["id"], world.member.id)
    elsewhere = await upload_one(api, world.member.token, other["id"], "else.txt", b"e")
    mine = await upload_one(api, world.member.token, cid, "mine.txt", b"m")
    post = await api.call(
        "POST",
        "/posts",
        world.member.token,
        json={
            "channel_id": cid,
            "message": "mixed",
            "file_ids": [admins["id"], elsewhere["id"], mine["id"], "x" * 26],
        },
        expect=201,
    )
    assert post["file_ids"] == [mine["id"]]
    infos = await api.call("GET", f"/posts/{post['id']}/files/info", world.member.token)
    assert [i["id"] for i in infos] == [mine["id"]]


async def test_post_file_infos_permissions(api: API, world: World) -> None:
    private = await api.new_channel(world.admin.token, world.team["id"], type_="P")
    info = await upload_one(api, world.admin.token, private["id"], "p.txt", b"p")
    post = await api.call(
        "POST",
        "/posts",
        world.admin.token,
        json={"channel_id": private["id"], "message": "p", "file_ids": [info["id"]]},
        expect=201,
    )
    resp = await api.raw("GET", f"/posts/{post['id']}/files/info", world.outsider.token)
    assert resp.status_code == 403
    plain = await api.call(
        "POST",
        "/posts",
        world.admin.token,
        json={"channel_id": private["id"], "message": "no files"},
        expect=201,
    )
    assert await api.call("GET", f"/posts/{plain['id']}/files/info", world.admin.token) == []
    missing = await api.raw("GET", "/posts/" + "a" * 26 + "/files/info", world.admin.token)
    assert missing.status_code == 404


async def test_files_live_in_the_backend_under_mattermosts_layout(
    api: API, world: World, node: Hubbub
) -> None:
    info = await upload_one(api, world.member.token, world.channel["id"], "layout.txt", b"L")
    from sqlalchemy import select

    from hubbub.store.tables import file_infos

    async with node.db.read() as conn:
        path = (
            await conn.execute(select(file_infos.c.path).where(file_infos.c.id == info["id"]))
        ).scalar_one()
    day, rest = path.split("/", 1)
    assert len(day) == 8 and day.isdigit()
    cid, uid, fid = world.channel["id"], world.member.id, info["id"]
    assert rest == f"teams/noteam/channels/{cid}/users/{uid}/{fid}/layout.txt"
    assert await node.files.read(path) == b"L"
