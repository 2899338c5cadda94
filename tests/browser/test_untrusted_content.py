"""Untrusted content renders as text: posts, display names, channel names and file names carrying
HTML or script are shown literally, whether they arrive with the history (REST), live (websocket)
or in search results, and no script of theirs runs (`window.__pwned` stays unset, no dialog).
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.support.browser import Pages, serve
from tests.support.browser_chat import PASSWORD, Chat
from tests.support.rest import Account, Rest
from tests.support.server import ServerProcess

FIRST = '<img src=x onerror="window.__pwned=1">'
LAST = "<script>window.__pwned=2</script>"
CHANNEL = "<b onmouseover=window.__pwned=3>Evil</b>"
FILE = "<img src=x onerror=window.__pwned=4>.png"
MESSAGE_LINES = [
    "<script>window.__pwned=5</script>",
    '<img src=x onerror="window.__pwned=6">',
    '<a href="javascript:window.__pwned=7">html link</a>',
    "[click me](javascript:window.__pwned=8)",
    "<iframe srcdoc='<script>parent.__pwned=9</script>'></iframe>",
]
LIVE = '<svg onload="window.__pwned=10"></svg> live **<i>pwned</i>**'


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = serve(tmp_path_factory.mktemp("untrusted"))
    try:
        yield started
    finally:
        started.stop()


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def _upload(server: ServerProcess, who: Account, channel_id: str) -> str:
    response = httpx.post(
        f"{server.url}/api/v4/files",
        headers={"Authorization": f"Bearer {who.token}"},
        data={"channel_id": channel_id},
        files={"files": (FILE, _png(), "image/png")},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    info = response.json()["file_infos"][0]
    assert info["name"] == FILE, info
    return str(info["id"])


def _no_script_ran(page: Page, dialogs: list[str]) -> None:
    assert page.evaluate("window.__pwned") is None
    assert not dialogs, dialogs
    # Nothing the posts carried became an element.
    injected = page.locator(
        ".post-body script, .post-body img, .post-body iframe, .post-body svg, "
        ".post-body i, .post-body b, .post-author *, .channel-name *"
    )
    expect(injected).to_have_count(0)


def test_html_and_script_in_posts_names_and_files_render_as_text(
    server: ServerProcess, pages: Pages
) -> None:
    rest = Rest(server.url)
    try:
        alice = rest.user(None, "alice")
        mallory = rest.user(alice, "mallory")
        rest.call(
            "PUT",
            f"/users/{mallory.id}/patch",
            mallory.token,
            {"first_name": FIRST, "last_name": LAST},
        )
        team = rest.team(alice)
        rest.join_team(alice, team["id"], mallory)
        channel = rest.call(
            "POST",
            "/channels",
            mallory.token,
            {"team_id": team["id"], "name": "evil", "display_name": CHANNEL, "type": "O"},
            201,
        )
        rest.join_channel(mallory, channel["id"], alice)
        file_id = _upload(server, mallory, channel["id"])
        rest.call(
            "POST",
            "/posts",
            mallory.token,
            {
                "channel_id": channel["id"],
                "message": "\n".join(MESSAGE_LINES),
                "file_ids": [file_id],
            },
            201,
        )

        page = pages.open("alice", server.url)
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        chat = Chat(page)
        chat.log_in(alice.username, PASSWORD)
        chat.wait_ready()

        # The channel's name, in the sidebar and as the title.
        link = chat.sidebar_link(CHANNEL)
        expect(link).to_have_count(1)
        link.hover()
        link.click()
        expect(page.locator(".channel-title")).to_have_text(CHANNEL)

        # The history: every line of the message, the author's name and the file's name.
        post = page.locator("main .post").first
        body = post.locator(".post-body")
        for line in MESSAGE_LINES[:3] + MESSAGE_LINES[4:]:
            expect(body).to_contain_text(line)
        expect(post.locator(".post-author")).to_have_text(f"{FIRST} {LAST}")
        expect(post.locator(".file-name")).to_have_text(FILE)
        thumbnail = post.get_by_role("img", name=FILE)
        expect(thumbnail).to_have_attribute("src", f"{server.url}/api/v4/files/{file_id}/thumbnail")
        # A Markdown link to javascript: keeps its text and is no link at all.
        expect(body).to_contain_text("click me")
        expect(body.get_by_role("link")).to_have_count(0)
        body.get_by_text("click me").click()
        _no_script_ran(page, dialogs)

        # Live, over the websocket.
        rest.post(mallory, channel["id"], LIVE)
        live = page.locator("main .post").filter(has_text="live")
        expect(live.locator(".post-body")).to_have_text(
            '<svg onload="window.__pwned=10"></svg> live <i>pwned</i>'
        )
        expect(live.locator(".post-body strong")).to_have_text("<i>pwned</i>")

        # In search results and in the direct-message list.
        results = chat.search("live")
        expect(results.locator(".search-result")).to_have_count(1)
        expect(results.locator(".post-author")).to_have_text(f"{FIRST} {LAST}")
        direct = rest.call("POST", "/channels/direct", mallory.token, [mallory.id, alice.id], 201)
        rest.post(mallory, direct["id"], "psst")
        expect(chat.sidebar_link(f"{FIRST} {LAST}")).to_have_count(1)
        _no_script_ran(page, dialogs)
    finally:
        rest.close()
