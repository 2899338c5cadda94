"""Two people, each in their own browser context (their own cookies), against a real
`hubbub serve`: they sign up, meet in a team and a channel, and use the client as people do.

The tests of this module continue one conversation (module-scoped pages): each starts from what
the one before left, and each checks one thing the client promises, live on the other screen.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.support.browser import Pages, serve
from tests.support.browser_chat import Chat, SocketFrames
from tests.support.server import ServerProcess

TEAM = "Garden"
CHANNEL = "Plans"


@dataclass
class Duo:
    server: ServerProcess
    alice: Chat
    bob: Chat
    workdir: Path


@pytest.fixture(scope="module")
def duo(module_browser_pages: Pages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Duo]:
    workdir = tmp_path_factory.mktemp("duo")
    server = serve(workdir)
    try:
        alice = Chat(module_browser_pages.open("alice", server.url))
        bob = Chat(module_browser_pages.open("bob", server.url))
        yield Duo(server, alice, bob, workdir)
    finally:
        module_browser_pages.close()
        server.stop()


def test_sign_up_and_meet_in_a_team_and_a_channel(duo: Duo) -> None:
    alice, bob = duo.alice, duo.bob
    alice.sign_up("alice")
    alice.create_team(TEAM)
    expect(alice.page.locator(".channel-title")).to_have_text("Town Square")
    alice.create_channel(CHANNEL)

    bob.sign_up("bob")
    bob.join_team(TEAM)
    bob.join_channel(CHANNEL)
    # The first account is the system admin: only alice gets the console link.
    expect(alice.page.get_by_role("link", name="Console")).to_be_visible()
    expect(bob.page.get_by_role("link", name="Console")).to_have_count(0)


def test_chat_both_ways_live(duo: Duo) -> None:
    alice, bob = duo.alice, duo.bob
    alice.send("Hi Bob, **welcome**", shown="Hi Bob, welcome")
    expect(bob.post("Hi Bob, welcome")).to_have_count(1)
    expect(bob.post("Hi Bob, welcome").locator("strong")).to_have_text("welcome")
    bob.send("Thanks Alice!")
    expect(alice.post("Thanks Alice!")).to_have_count(1)
    # Each post once on each screen, even though it came by POST and by websocket.
    expect(alice.post("Hi Bob, welcome")).to_have_count(1)
    expect(bob.post("Thanks Alice!")).to_have_count(1)


def test_typing_and_presence(duo: Duo) -> None:
    alice, bob = duo.alice, duo.bob
    bob.composer().fill("I am writing something long")
    expect(alice.typing_line()).to_have_text("bob is typing…")
    alice.composer().fill("me too")
    expect(bob.typing_line()).to_have_text("alice is typing…")
    # Sending clears the author's typing line on the other screen at once.
    bob.composer().press("Enter")
    expect(alice.post("I am writing something long")).to_have_count(1)
    expect(alice.typing_line()).to_have_text("")
    alice.composer().fill("")

    for person in (alice, bob):
        expect(person.page.locator(".me .presence")).to_have_attribute("data-status", "online")
    expect(alice.presence_of("Thanks Alice!")).to_have_attribute("data-status", "online")
    expect(bob.presence_of("Hi Bob, welcome")).to_have_attribute("data-status", "online")


def test_reply_in_a_thread(duo: Duo) -> None:
    alice, bob = duo.alice, duo.bob
    alice.reply("Thanks Alice!", "Glad you made it")
    # Bob sees the count under his post, opens the thread and reads the reply.
    replies = bob.post("Thanks Alice!").get_by_role("button", name="1 reply")
    expect(replies).to_be_visible()
    replies.click()
    expect(bob.post("Glad you made it", "aside")).to_have_count(1)
    # Replies live in the thread, not in the channel's list.
    expect(bob.post("Glad you made it")).to_have_count(0)
    bob.thread_pane().get_by_label("Reply to this thread").fill("Me too")
    bob.thread_pane().get_by_label("Reply to this thread").press("Enter")
    expect(alice.post("Me too", "aside")).to_have_count(1)
    expect(alice.post("Thanks Alice!").get_by_role("button", name="2 replies")).to_be_visible()
    for person in (alice, bob):
        person.thread_pane().get_by_role("button", name="Close").click()
        expect(person.thread_pane()).to_be_hidden()


def test_reactions(duo: Duo) -> None:
    alice, bob = duo.alice, duo.bob
    bob.react("Hi Bob, welcome", "+1")
    mine = bob.reaction("Hi Bob, welcome", "+1")
    expect(mine).to_have_attribute("aria-pressed", "true")
    theirs = alice.reaction("Hi Bob, welcome", "+1")
    expect(theirs.locator(".count")).to_have_text("1")
    expect(theirs).to_have_attribute("aria-pressed", "false")
    theirs.click()  # alice adds hers by clicking the same reaction
    expect(mine.locator(".count")).to_have_text("2")
    mine.click()  # bob takes his back
    expect(theirs.locator(".count")).to_have_text("1")
    expect(theirs).to_have_attribute("aria-pressed", "true")


def test_upload_an_image_and_see_its_thumbnail(duo: Duo) -> None:
    alice, bob = duo.alice, duo.bob
    picture = duo.workdir / "sunflower.png"
    Image.new("RGB", (640, 480), (250, 200, 30)).save(picture)
    alice.page.locator("main input[type=file]").set_input_files(str(picture))
    upload = alice.page.get_by_role("list", name="Attachments to send").locator("li")
    expect(upload).to_contain_text("sunflower.png")
    expect(upload.locator("progress")).to_have_attribute("value", "1")
    alice.composer().fill("Our first sunflower")
    alice.composer().press("Enter")

    for person in (alice, bob):
        post = person.post("Our first sunflower")
        expect(post).to_have_count(1)
        thumbnail = post.get_by_role("img", name="sunflower.png")
        expect(thumbnail).to_be_visible()
        # The image actually loaded (the thumbnail endpoint answered with an image).
        expect(thumbnail).to_have_js_property("complete", True)
        assert thumbnail.evaluate("img => img.naturalWidth") > 0
        expect(post.locator(".file-name")).to_have_text("sunflower.png")


def test_search(duo: Duo) -> None:
    results = duo.bob.search("sunflower")
    expect(results.locator(".search-result")).to_have_count(1)
    expect(results).to_contain_text("Our first sunflower")
    results.get_by_role("button", name="Jump").click()
    expect(duo.bob.thread_pane().get_by_role("heading", name="Thread")).to_be_visible()
    expect(duo.bob.post("Our first sunflower", "aside")).to_have_count(1)
    duo.bob.thread_pane().get_by_role("button", name="Close").click()


def test_edit_and_delete_own_posts(duo: Duo) -> None:
    alice, bob = duo.alice, duo.bob
    post_id = alice.send("Meet at 5").get_attribute("data-post-id")
    post = alice.page.locator(f'main .post[data-post-id="{post_id}"]')
    expect(bob.post("Meet at 5")).to_have_count(1)
    # Only one's own posts can be edited.
    expect(bob.post("Meet at 5").get_by_role("button", name="Edit")).to_have_count(0)
    post.hover()
    post.get_by_role("button", name="Edit").click()
    box = post.get_by_label("Edit message")
    box.fill("Meet at 6")
    box.press("Enter")
    expect(bob.post("Meet at 6")).to_have_count(1)
    expect(bob.post("Meet at 6").locator(".edited")).to_have_text("(edited)")
    expect(bob.post("Meet at 5")).to_have_count(0)

    edited = alice.post("Meet at 6")
    edited.hover()
    edited.get_by_role("button", name="Delete").click()
    alice.page.get_by_role("alertdialog", name="Delete this message?").get_by_role(
        "button", name="Delete"
    ).click()
    expect(alice.post("Meet at 6")).to_have_count(0)
    expect(bob.post("Meet at 6")).to_have_count(0)


def test_unread_and_mention_counts_and_a_direct_message(duo: Duo) -> None:
    alice, bob = duo.alice, duo.bob
    alice.open_channel("Town Square")
    bob.send("@alice have a look at this")
    plans = alice.sidebar_link(CHANNEL)
    expect(plans).to_have_class(re.compile(r"\bunread\b"))
    expect(plans.locator(".badge")).to_have_text("1")
    alice.open_channel(CHANNEL)
    expect(alice.post("@alice have a look at this").locator(".mention-me")).to_have_text("@alice")
    expect(plans.locator(".badge")).to_have_count(0)
    expect(plans).not_to_have_class(re.compile(r"\bunread\b"))

    alice.open_direct("bob")
    expect(alice.page.locator(".channel-title")).to_have_text("bob")
    alice.send("Just between us")
    dm = bob.sidebar_link("alice")
    expect(dm).to_be_visible()
    expect(dm.locator(".badge")).to_have_text("1")
    dm.click()
    expect(bob.post("Just between us")).to_have_count(1)
    expect(dm.locator(".badge")).to_have_count(0)


def test_typing_reaches_only_the_pages_showing_its_channel_or_thread(duo: Duo) -> None:
    """FeatureFlags.WebSocketEventScope (on by default, as in Mattermost): the client tells the
    server which channel and which thread it shows (`presence` actions when a socket opens, on
    each channel switch, and when a thread is opened or closed), so typing elsewhere is not even
    sent to it. Events reach a page in the order they were published, so a typing event of the
    other channel, published first, would have arrived before the one that is shown."""
    alice, bob = duo.alice, duo.bob
    frames = SocketFrames(alice.page)
    bob_frames = SocketFrames(bob.page)
    for person in (alice, bob):
        person.page.reload()  # a new socket: the scope is told when it opens
        person.wait_ready()
    alice.open_channel(CHANNEL)
    plans = alice.page.evaluate("location.hash.slice(1)")
    frames.wait_replied("presence")
    assert {"channel_id": plans} in frames.sent("presence")
    assert {"thread_channel_id": "", "is_thread_view": False} in frames.sent("presence")
    assert {"thread_channel_id": "", "is_thread_view": True} in frames.sent("presence")

    bob.open_channel("Town Square")
    square = bob.page.evaluate("location.hash.slice(1)")
    bob.composer().fill("for the square")
    bob.open_channel(CHANNEL)
    bob.composer().fill("for the plans")
    expect(alice.typing_line()).to_have_text("bob is typing…")
    assert {"channel_id": square, "parent_id": ""} in bob_frames.sent("user_typing")
    bob_frames.wait_replied("user_typing")
    assert set(frames.typing_channels()) == {plans}

    # A thread open in the pane keeps its channel's typing coming while another channel is shown.
    opened = frames.mark()
    alice.post("Thanks Alice!").get_by_role("button", name="2 replies").click()
    expect(alice.post("Me too", "aside")).to_have_count(1)
    alice.open_channel("Town Square")
    frames.wait_replied("presence", opened)
    assert {"thread_channel_id": plans, "is_thread_view": False} in frames.sent("presence", opened)
    bob.post("Thanks Alice!").get_by_role("button", name="2 replies").click()
    bob.thread_pane().get_by_label("Reply to this thread").fill("typing in the thread")
    expect(alice.thread_pane().locator(".typing")).to_have_text("bob is typing…")
    bob.thread_pane().get_by_role("button", name="Close").click()

    # Closed: the thread's channel is out of scope again.
    closed = frames.mark()
    alice.thread_pane().get_by_role("button", name="Close").click()
    frames.wait_replied("presence", closed)
    assert frames.sent("presence", closed) == [{"thread_channel_id": "", "is_thread_view": False}]
    bob.open_channel("Town Square")
    bob.open_channel(CHANNEL)  # a new message box: its first keystroke announces typing
    bob.composer().fill("plans again")
    bob.open_channel("Town Square")
    bob.composer().fill("square again")
    expect(alice.typing_line()).to_have_text("bob is typing…")
    # Counted from the presence the page sent: the thread's typing was received before it.
    assert set(frames.typing_channels(frames.first_sent("presence", closed))) == {square}
    for person in (alice, bob):
        person.composer().fill("")


def test_presence_goes_offline_when_the_last_tab_closes(
    duo: Duo, browser_pages_carol: Chat
) -> None:
    carol = browser_pages_carol
    duo.alice.open_channel(CHANNEL)
    carol.join_team(TEAM)
    carol.join_channel(CHANNEL)
    carol.send("Carol here")
    dot = duo.alice.presence_of("Carol here")
    expect(dot).to_have_attribute("data-status", "online")
    carol.page.context.close()
    # Others learn of a status by asking (every 15 s), as with Mattermost.
    expect(dot).to_have_attribute("data-status", "offline", timeout=40_000)
    expect(dot).to_have_attribute("aria-label", "offline")


@pytest.fixture
def browser_pages_carol(duo: Duo, pages: Pages) -> Chat:
    carol = Chat(pages.open("carol", duo.server.url))
    carol.sign_up("carol")
    return carol
