"""What a person does in hubbub's web client, as Playwright steps (one `Chat` per page).

Locators go by role and accessible name where a person would (labels, button names), so the
tests also check that the client is usable with a keyboard and a screen reader's names.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from playwright.sync_api import Locator, Page, WebSocket, expect

PASSWORD = "password-123"


@dataclass
class Chat:
    page: Page
    username: str = ""

    # Accounts and teams

    def sign_up(self, username: str, password: str = PASSWORD) -> None:
        self.username = username
        page = self.page
        page.goto("/")
        page.get_by_role("button", name="Create an account").click()
        page.get_by_label("Email", exact=True).fill(f"{username}@example.com")
        page.get_by_label("Username", exact=True).fill(username)
        page.locator("#signup-password").fill(password)
        page.get_by_role("button", name="Create account").click()

    def log_in(self, username: str, password: str = PASSWORD, path: str = "/") -> None:
        self.username = username
        self.page.goto(path)
        form = self.page.locator("form.auth-form:visible")
        form.get_by_label("Email or username").fill(username)
        form.get_by_label("Password").fill(password)
        form.get_by_role("button", name="Log in").click()

    def create_team(self, name: str) -> None:
        self.page.get_by_label("Team name").fill(name)
        self.page.get_by_role("button", name="Create team").click()
        self.wait_ready()

    def join_team(self, name: str) -> None:
        self.page.get_by_role("list", name="Teams you can join").get_by_role(
            "button", name=name
        ).click()
        self.wait_ready()

    def wait_ready(self) -> None:
        """The chat is shown and its websocket is open."""
        expect(self.page.locator("body")).to_have_attribute("data-ws-state", "open")
        expect(self.page.locator(".channel-title")).not_to_be_empty()

    # Channels

    def sidebar_link(self, name: str) -> Locator:
        return self.page.locator("nav.sidebar a.channel").filter(
            has=self.page.locator(".channel-name", has_text=re.compile(f"^{re.escape(name)}$"))
        )

    def open_channel(self, name: str) -> None:
        self.sidebar_link(name).click()
        expect(self.page.locator(".channel-title")).to_have_text(name)

    def create_channel(self, name: str) -> None:
        self.page.get_by_role("button", name="Create a channel").click()
        dialog = self.page.get_by_role("dialog")
        dialog.get_by_label("Name").fill(name)
        dialog.get_by_role("button", name="Create channel").click()
        expect(self.page.locator(".channel-title")).to_have_text(name)

    def join_channel(self, name: str) -> None:
        self.page.get_by_role("button", name="Browse channels").click()
        self.page.get_by_role("dialog").get_by_role(
            "button", name=re.compile(re.escape(name))
        ).click()
        expect(self.page.locator(".channel-title")).to_have_text(name)

    def open_direct(self, username: str) -> None:
        self.page.get_by_role("button", name="Write a direct message").click()
        dialog = self.page.get_by_role("dialog")
        dialog.get_by_label("Find someone by name or username").fill(username)
        dialog.locator(f'button[data-username="{username}"]').click()
        expect(self.page.locator(".channel-title")).not_to_have_text("")

    # Posts

    def composer(self) -> Locator:
        return self.page.locator("main .composer-input")

    def send(self, text: str, shown: str | None = None) -> Locator:
        """Sends `text`; the post must then be on screen once, reading `shown` (the rendered
        text, when Markdown changes it)."""
        box = self.composer()
        box.fill(text)
        box.press("Enter")
        post = self.post(text if shown is None else shown)
        expect(post).to_have_count(1)
        return post

    def post(self, text: str, where: str = "main") -> Locator:
        """The post(s) whose body is exactly `text` (a count of 1 means shown once)."""
        return self.page.locator(f"{where} .post").filter(
            has=self.page.locator(".post-body", has_text=re.compile(f"^{re.escape(text)}$"))
        )

    def thread_pane(self) -> Locator:
        return self.page.locator("aside.side-pane")

    def reply(self, root_text: str, text: str) -> None:
        self.post(root_text).get_by_role("button", name=re.compile("^(Reply|\\d+ repl)")).click()
        pane = self.thread_pane()
        expect(pane.get_by_role("heading", name="Thread")).to_be_visible()
        box = pane.get_by_label("Reply to this thread")
        box.fill(text)
        box.press("Enter")
        expect(self.post(text, "aside")).to_have_count(1)

    def react(self, text: str, emoji: str) -> None:
        post = self.post(text)
        post.hover()
        post.get_by_role("button", name="Add a reaction").click()
        post.get_by_role("group", name="Pick a reaction").get_by_role("button", name=emoji).click()

    def reaction(self, text: str, emoji: str) -> Locator:
        return self.post(text).locator(f'.reaction[data-emoji="{emoji}"]')

    def search(self, terms: str) -> Locator:
        box = self.page.get_by_role("searchbox", name="Search messages")
        box.fill(terms)
        box.press("Enter")
        return self.page.get_by_role("list", name="Search results")

    def typing_line(self) -> Locator:
        return self.page.locator("main .typing")

    def presence_of(self, text: str) -> Locator:
        return self.post(text).locator(".post-head .presence")

    def ws(self, name: str) -> str:
        return str(self.page.locator("body").get_attribute(f"data-ws-{name}") or "")


class SocketFrames:
    """Every websocket frame a page sends and receives from now on, in order: the sockets it
    opens later (a reload, a reconnect) included, since Playwright reports each new socket."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.frames: list[tuple[str, dict[str, Any]]] = []  # ("sent" | "received", message)
        page.on("websocket", self._socket)

    def _socket(self, ws: WebSocket) -> None:
        ws.on("framesent", lambda payload: self._add("sent", payload))
        ws.on("framereceived", lambda payload: self._add("received", payload))

    def _add(self, direction: str, payload: str | bytes) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if isinstance(message, dict):
            self.frames.append((direction, message))

    def mark(self) -> int:
        return len(self.frames)

    def sent(self, action: str, since: int = 0) -> list[dict[str, Any]]:
        return [
            m["data"] for d, m in self.frames[since:] if d == "sent" and m.get("action") == action
        ]

    def first_sent(self, action: str, since: int = 0) -> int:
        """The index of the first `action` sent at or after `since` (frames before it, and
        any they caused, came first)."""
        return next(
            i
            for i, (d, m) in enumerate(self.frames)
            if i >= since and d == "sent" and m.get("action") == action
        )

    def typing_channels(self, since: int = 0) -> list[str]:
        """The channel of every `typing` event received, in order."""
        return [
            m.get("broadcast", {}).get("channel_id", "")
            for d, m in self.frames[since:]
            if d == "received" and m.get("event") == "typing"
        ]

    def wait_replied(self, action: str, since: int = 0, timeout: float = 10.0) -> None:
        """Until every `action` sent since `since` has its reply (the server applied it).
        Sequence numbers restart with each socket, so a reply is looked for after its request."""
        deadline = time.monotonic() + timeout
        while True:
            frames = self.frames[since:]
            waiting = [
                i
                for i, (d, m) in enumerate(frames)
                if d == "sent"
                and m.get("action") == action
                and not any(
                    rd == "received" and r.get("seq_reply") == m.get("seq")
                    for rd, r in frames[i + 1 :]
                )
            ]
            if not waiting and self.sent(action, since):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"no reply to {action} within {timeout} s: {frames}")
            # Lets Playwright deliver the page's events (the frames) while waiting.
            self.page.wait_for_timeout(20)
