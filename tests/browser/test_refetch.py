"""When a stream cannot be resumed, the server's fresh `hello` makes the client refetch.

One `hubbub serve` keeps its resume records in memory, so after it is SIGKILLed and started again
on the same port no resume is possible. While it is down, messages are posted through another
process on the same SQLite file (the page cannot reach that one, and nothing reaches the page
live). The page shows "Reconnecting…", gets a fresh hello with a new connection id once the
server is back, refetches, and shows what it missed exactly once, in order, without a reload.
"""

from __future__ import annotations

import gc
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.browser import Pages
from tests.support.browser_chat import PASSWORD, Chat
from tests.support.ports import free_port
from tests.support.rest import Rest
from tests.support.server import ServerProcess, launch_server

MISSED = [f"posted while the page was away {i}" for i in range(3)]


def _launch(workdir: Path, port: int) -> ServerProcess:
    env = {
        "MM_TEAMSETTINGS_ENABLEOPENSERVER": "true",
        "MM_FILESETTINGS_DIRECTORY": str(workdir / "files"),
        "MM_SQLSETTINGS_DATASOURCE": str(workdir / "hubbub.db"),
    }
    with warnings.catch_warnings():
        # The log file's handle is dropped here (the child keeps its own): as in serve().
        warnings.simplefilter("ignore", ResourceWarning)
        server = launch_server(workdir, env, port)
        gc.collect()
    return server


@pytest.fixture
def running() -> Iterator[list[ServerProcess]]:
    """The servers started by the test (all stopped at the end, whatever happened)."""
    started: list[ServerProcess] = []
    try:
        yield started
    finally:
        for server in started:
            server.stop()


def test_a_fresh_hello_refetches_what_the_page_missed(
    tmp_path_factory: pytest.TempPathFactory, running: list[ServerProcess], pages: Pages
) -> None:
    workdir = tmp_path_factory.mktemp("refetch")
    server = _launch(workdir, free_port())
    running.append(server)
    rest = Rest(server.url)
    try:
        reader = rest.user(None, "reader")
        writer = rest.user(reader, "writer")
        team = rest.team(reader)
        rest.join_team(reader, team["id"], writer)
        channel = rest.channel(reader, team["id"])
        rest.join_channel(reader, channel["id"], writer)
        rest.post(writer, channel["id"], "before the restart")
    finally:
        rest.close()

    page = pages.open("reader", server.url)
    chat = Chat(page)
    chat.log_in(reader.username, PASSWORD)
    chat.wait_ready()
    chat.open_channel(channel["display_name"])
    expect(chat.post("before the restart")).to_have_count(1)
    first_connection = chat.ws("connection-id")
    assert first_connection
    page.evaluate("window.__sameDocument = true")

    server.stop(signal.SIGKILL)
    expect(page.locator(".banner")).to_have_text("Reconnecting…")
    other = _launch(workdir, free_port())
    running.append(other)
    rest = Rest(other.url)
    try:
        for message in MISSED:
            rest.post(writer, channel["id"], message)
    finally:
        rest.close()
    other.stop()
    running.append(_launch(workdir, server.port))

    expect(page.locator("body")).to_have_attribute("data-ws-state", "open", timeout=40_000)
    expect(page.locator(".banner")).to_be_hidden()
    assert chat.ws("connection-id") not in {"", first_connection}  # a fresh hello, not a resume
    for message in ["before the restart", *MISSED]:
        expect(chat.post(message)).to_have_count(1)
    shown = page.locator("main .post .post-body").all_inner_texts()
    assert shown == ["before the restart", *MISSED]
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
    # And it is live again on the new stream.
    chat.send("back again")
