"""The client on a phone-sized screen (390 x 844): the channel list is a drawer opened with the
menu button (which says whether it is open), choosing a channel closes it, and a thread covers
the conversation until it is closed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.support.browser import PHONE, Pages, serve
from tests.support.browser_chat import PASSWORD, Chat
from tests.support.rest import Rest
from tests.support.server import ServerProcess


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = serve(tmp_path_factory.mktemp("phone"))
    try:
        yield started
    finally:
        started.stop()


def test_drawer_channels_and_a_full_screen_thread(server: ServerProcess, pages: Pages) -> None:
    rest = Rest(server.url)
    try:
        someone = rest.user(None, "pocket")
        team = rest.team(someone)
        channel = rest.channel(someone, team["id"])
        root = rest.post(someone, channel["id"], "Lunch at noon?")
        rest.call(
            "POST",
            "/posts",
            someone.token,
            {"channel_id": channel["id"], "message": "Yes please", "root_id": root["id"]},
            201,
        )
    finally:
        rest.close()

    chat = Chat(pages.open("phone", server.url, viewport=PHONE))
    chat.log_in(someone.username, PASSWORD)
    chat.wait_ready()
    sidebar = chat.page.get_by_role("navigation", name="Channels")
    menu = chat.page.get_by_role("button", name="Show channels")
    expect(sidebar).not_to_be_in_viewport()
    expect(menu).to_have_attribute("aria-expanded", "false")

    menu.click()
    expect(sidebar).to_be_in_viewport()
    expect(menu).to_have_attribute("aria-expanded", "true")
    chat.open_channel(channel["display_name"])
    expect(sidebar).not_to_be_in_viewport()
    expect(menu).to_have_attribute("aria-expanded", "false")

    chat.post("Lunch at noon?").get_by_role("button", name="1 reply").click()
    pane = chat.thread_pane()
    expect(chat.post("Yes please", "aside")).to_be_in_viewport()
    box = pane.bounding_box()
    assert box is not None and box["width"] == PHONE["width"], box
    pane.get_by_role("button", name="Close").click()
    expect(chat.post("Lunch at noon?")).to_be_in_viewport()
    chat.send("See you there")
