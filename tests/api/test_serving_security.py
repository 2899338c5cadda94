"""Uploaded files cannot run as the site's own pages, and every answer carries the security
headers: files, previews and thumbnails of each type, the API's answers and errors, the pages."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from PIL import Image

from tests.support.api import API, User
from tests.support.files import World, make_world, png, upload_one


def image(kind: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), "blue").save(out, kind)
    return out.getvalue()


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
HTML = b"<!doctype html><script>fetch('/api/v4/users/me')</script>"

# name, content, inline when viewed (not downloaded)
FILES = [
    ("a.png", png(40, 30), True),
    ("a.jpg", image("JPEG"), True),
    ("a.gif", image("GIF"), True),
    ("a.webp", image("WEBP"), True),
    ("a.bmp", image("BMP"), True),
    ("a.svg", SVG, False),
    ("a.html", HTML, False),
    ("a.htm", HTML, False),
    ("a.xhtml", HTML, False),
    ("a.xml", b"<?xml version='1.0'?><x/>", False),
    ("a.js", b"alert(1)", False),
    ("a.css", b"body{}", False),
    ("a.pdf", b"%PDF-1.4 fake", False),
    ("a.txt", b"hello", False),
    ("a.json", b"{}", False),
    ("a.mp4", b"\x00\x00\x00\x18ftypmp42", False),
    ("a.tiff", image("TIFF"), False),
    ("noextension", HTML, False),
]


@pytest.fixture
async def world(api: API, admin: User) -> World:
    return await make_world(api, admin)


def assert_inert(resp: httpx.Response, inline: bool) -> None:
    assert resp.status_code == 200, resp.text
    disposition = resp.headers["content-disposition"]
    assert disposition.startswith("inline;" if inline else "attachment;"), disposition
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "DENY"
    csp = resp.headers["content-security-policy"]
    for directive in ("default-src 'none'", "sandbox", "frame-ancestors 'none'"):
        assert directive in csp, csp
    assert resp.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(("name", "content", "inline"), FILES, ids=[f[0] for f in FILES])
async def test_each_file_type_is_served_inert(
    api: API, world: World, name: str, content: bytes, inline: bool
) -> None:
    info = await upload_one(api, world.admin.token, world.channel["id"], name, content)
    got = await api.raw("GET", f"/files/{info['id']}", world.member.token)
    assert got.content == content
    assert_inert(got, inline)
    assert "html" not in got.headers["content-type"] or not inline
    assert "svg" not in got.headers["content-type"] or not inline
    download = await api.raw("GET", f"/files/{info['id']}?download=1", world.member.token)
    assert_inert(download, inline=False)


async def test_html_named_as_an_image_keeps_the_image_type(api: API, world: World) -> None:
    # The type comes from the name, never from the bytes, and the browser may not sniff: the
    # HTML inside is shown as a broken image, never run.
    info = await upload_one(api, world.admin.token, world.channel["id"], "evil.png", HTML)
    got = await api.raw("GET", f"/files/{info['id']}", world.member.token)
    assert got.headers["content-type"] == "image/png"
    assert_inert(got, inline=True)


async def test_previews_and_thumbnails_are_inert(api: API, world: World) -> None:
    info = await upload_one(api, world.admin.token, world.channel["id"], "p.png", png(300, 200))
    for kind in ("thumbnail", "preview"):
        got = await api.raw("GET", f"/files/{info['id']}/{kind}", world.member.token)
        assert got.headers["content-type"] == "image/jpeg"
        assert_inert(got, inline=True)


async def test_api_answers_and_errors_carry_the_security_headers(api: API, admin: User) -> None:
    for resp in [
        await api.raw("GET", "/system/ping"),
        await api.raw("GET", "/users/me", admin.token),
        await api.raw("GET", "/users/me"),  # 401
        await api.raw("GET", "/no/such/route"),  # 404
        await api.raw("POST", "/users/login", content=b"{"),  # 400
    ]:
        assert resp.headers["x-content-type-options"] == "nosniff", resp.request.url
        assert resp.headers["referrer-policy"] == "no-referrer", resp.request.url
        assert resp.headers["x-frame-options"] == "SAMEORIGIN", resp.request.url
        assert "frame-ancestors" in resp.headers["content-security-policy"], resp.request.url


@pytest.mark.parametrize("path", ["/", "/admin", "/nothing-here"])
async def test_pages_carry_the_security_headers(api: API, path: str) -> None:
    resp = await api.client.get(path)
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["referrer-policy"] == "no-referrer"
    assert resp.headers["x-frame-options"] in {"DENY", "SAMEORIGIN"}
    assert "frame-ancestors" in resp.headers["content-security-policy"]


async def test_custom_emoji_and_profile_pictures_are_inert(api: API, admin: User) -> None:
    # Both are user uploads served from the site's own origin, like files.
    emoji = await api.call(
        "POST",
        "/emoji",
        token=admin.token,
        data={"emoji": json.dumps({"name": "inert", "creator_id": admin.id})},
        files={"image": ("e.gif", image("GIF"), "image/gif")},
    )
    got = await api.raw("GET", f"/emoji/{emoji['id']}/image", admin.token)
    assert got.status_code == 200 and got.headers["content-type"] == "image/gif"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["x-frame-options"] == "DENY"
    for directive in ("default-src 'none'", "sandbox", "frame-ancestors 'none'"):
        assert directive in got.headers["content-security-policy"]
    await api.call(
        "POST",
        f"/users/{admin.id}/image",
        token=admin.token,
        files={"image": ("me.png", png(40, 30), "image/png")},
    )
    for path in (f"/users/{admin.id}/image", f"/users/{admin.id}/image/default"):
        picture = await api.raw("GET", path, admin.token)
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
        assert picture.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors" in picture.headers["content-security-policy"]
