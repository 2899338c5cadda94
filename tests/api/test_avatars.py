"""Profile pictures over the API, on SQLite and PostgreSQL: the generated default, caching, upload
(resized, stored in the file store), back to the default, `last_picture_update` and
`user_updated`, and Mattermost's errors for others' pictures, non-images and oversized bodies."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from hubbub.app import Hubbub
from tests.support.api import API, User


def jpeg(width: int, height: int, colour: tuple[int, int, int] = (20, 120, 220)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG")
    return out.getvalue()


async def test_default_upload_and_reset(api: API, admin: User, node: Hubbub) -> None:
    user = await api.new_user(admin.token)
    first = await api.raw("GET", f"/users/{user.id}/image?_=0", token=user.token)
    assert first.status_code == 200
    assert first.headers["content-type"] == "image/png"
    assert first.headers["cache-control"] == "max-age=86400, private"
    image = Image.open(io.BytesIO(first.content))
    assert (image.format, image.size) == ("PNG", (128, 128))
    etag = first.headers["etag"]
    again = await api.raw(
        "GET", f"/users/{user.id}/image", token=admin.token, headers={"If-None-Match": etag}
    )
    assert again.status_code == 304
    default = await api.raw("GET", f"/users/{user.id}/image/default", token=admin.token)
    assert default.status_code == 200 and default.content == first.content
    # Another user's default differs: other initials (the colour comes from the id, and two ids
    # may well get the same one of the palette's colours).
    other = await api.new_user(admin.token, prefix="zed")
    theirs = await api.raw("GET", f"/users/{other.id}/image", token=user.token)
    assert theirs.content != first.content

    uploaded = await api.call(
        "POST",
        "/users/me/image",
        token=user.token,
        files={"image": ("me.jpg", jpeg(300, 200), "image/jpeg")},
    )
    assert uploaded == {"status": "OK"}
    me = await api.call("GET", "/users/me", token=user.token)
    assert me["last_picture_update"] > 0
    [updated] = node.events.named("user_updated")
    assert updated.data["user"]["last_picture_update"] == me["last_picture_update"]
    stored = await node.files.read(f"users/{user.id}/profile.png")
    picture = await api.raw("GET", f"/users/{user.id}/image", token=admin.token)
    assert picture.content == stored
    assert picture.headers["etag"] == str(me["last_picture_update"])
    assert Image.open(io.BytesIO(picture.content)).size == (128, 128)
    # A second upload is served at once: the node keeps pictures by their version.
    await api.call(
        "POST",
        "/users/me/image",
        token=user.token,
        files={"image": ("me.jpg", jpeg(200, 200, (200, 30, 30)), "image/jpeg")},
    )
    second = await api.raw("GET", f"/users/{user.id}/image", token=admin.token)
    assert second.content == await node.files.read(f"users/{user.id}/profile.png")
    assert second.content != picture.content
    # The default stays available.
    default = await api.raw("GET", f"/users/{user.id}/image/default", token=user.token)
    assert default.content == first.content

    await api.call("DELETE", f"/users/{user.id}/image", token=user.token)
    me = await api.call("GET", "/users/me", token=user.token)
    assert me["last_picture_update"] == 0
    assert not await node.files.exists(f"users/{user.id}/profile.png")
    back = await api.raw("GET", f"/users/{user.id}/image", token=user.token)
    assert back.content == first.content
    assert len(node.events.named("user_updated")) == 3
    # New initials, a new generated picture (the node keeps generated ones by colour and letters).
    await api.call(
        "PUT", "/users/me/patch", token=user.token, json={"first_name": "Quinn", "last_name": "Xu"}
    )
    renamed = await api.raw("GET", f"/users/{user.id}/image", token=user.token)
    assert renamed.content != first.content
    assert renamed.headers["etag"] != etag


async def test_admin_may_change_others(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    other = await api.new_user(admin.token)
    files = {"image": ("a.jpg", jpeg(50, 50), "image/jpeg")}
    denied = await api.call(
        "POST", f"/users/{user.id}/image", token=other.token, files=files, expect=403
    )
    assert denied["id"] == "api.context.permissions.app_error"
    await api.call("DELETE", f"/users/{user.id}/image", token=other.token, expect=403)
    await api.call("POST", f"/users/{user.id}/image", token=admin.token, files=files)
    await api.call("DELETE", f"/users/{user.id}/image", token=admin.token)


async def test_bad_uploads(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    not_image = await api.call(
        "POST",
        "/users/me/image",
        token=user.token,
        files={"image": ("a.png", b"not an image at all", "image/png")},
        expect=400,
    )
    assert not_image["id"] == "api.user.upload_profile_user.decode.app_error"
    no_file = await api.call(
        "POST",
        "/users/me/image",
        token=user.token,
        files={"picture": ("a.jpg", jpeg(10, 10), "image/jpeg")},
        expect=400,
    )
    assert no_file["id"] == "api.user.upload_profile_user.no_file.app_error"
    unknown = await api.call("GET", "/users/" + "x" * 26 + "/image", token=user.token, expect=404)
    assert unknown["id"] == "app.user.missing_account.const"
    await api.call("GET", "/users/nope/image", token=user.token, expect=400)
    await api.call("GET", f"/users/{user.id}/image", expect=401)
    me = await api.call("GET", "/users/me", token=user.token)
    assert me["last_picture_update"] == 0


class TestLimits:
    @pytest.fixture
    def config_overrides(self) -> dict[str, str]:
        return {"MM_FILESETTINGS_MAXFILESIZE": "20000"}

    async def test_oversized_picture(self, api: API, admin: User) -> None:
        user = await api.new_user(admin.token)
        # Above MaxFileSize, below the proxy-level cap (MaxFileSize + 64 KiB) of the middleware.
        noisy = Image.frombytes("RGB", (100, 100), bytes(range(256)) * 118)
        out = io.BytesIO()
        noisy.save(out, "BMP")
        assert len(out.getvalue()) > 20000
        body = await api.call(
            "POST",
            "/users/me/image",
            token=user.token,
            files={"image": ("big.bmp", out.getvalue(), "image/bmp")},
            expect=413,
        )
        assert body["id"] == "api.user.upload_profile_user.too_large.app_error"
