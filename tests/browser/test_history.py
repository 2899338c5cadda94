"""A long channel: the client shows the newest page, loads older posts as the reader scrolls to
the top (here with the keyboard: Home in the focused message list), keeps every post once and in
order, and says when it reached the start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.support.browser import Pages, serve
from tests.support.browser_chat import PASSWORD, Chat
from tests.support.rest import Rest
from tests.support.server import ServerProcess

POSTS = 80
PAGE = 30


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = serve(tmp_path_factory.mktemp("history"))
    try:
        yield started
    finally:
        started.stop()


def test_older_posts_load_on_scroll_each_once_in_order(server: ServerProcess, pages: Pages) -> None:
    rest = Rest(server.url)
    try:
        reader = rest.user(None, "reader")
        team = rest.team(reader)
        channel = rest.channel(reader, team["id"])
        messages = [f"message number {i:03d}" for i in range(POSTS)]
        for message in messages:
            rest.post(reader, channel["id"], message)
    finally:
        rest.close()

    chat = Chat(pages.open("reader", server.url))
    chat.log_in(reader.username, PASSWORD)
    chat.wait_ready()
    chat.open_channel(channel["display_name"])
    bodies = chat.page.locator("main .post .post-body")
    expect(bodies).to_have_count(PAGE)
    expect(bodies.last).to_have_text(messages[-1])
    start = chat.page.get_by_text(f"This is the start of {channel['display_name']}.")
    expect(start).to_have_count(0)

    scroller = chat.page.locator("main .scroller")
    for shown in (2 * PAGE, POSTS):
        scroller.focus()
        scroller.press("Home")
        expect(bodies).to_have_count(shown)
    expect(start).to_be_visible()
    assert bodies.all_inner_texts() == messages
