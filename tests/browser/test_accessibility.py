"""Accessibility of the client and the console, measured in the page Chromium draws:

* contrast: every piece of visible text (and every form control's value) against the background
  it is drawn on reaches WCAG 2 AA (4.5:1, or 3:1 for large text), computed from the styles the
  browser applied;
* labels: every visible control (input, select, text area, button, link) has an accessible name;
* keyboard: a person without a mouse skips to the messages, opens a channel, writes, opens a
  thread and closes it again, and the focused element is outlined.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import Pages, serve
from tests.support.browser_chat import PASSWORD, Chat
from tests.support.rest import Account, Rest
from tests.support.server import ServerProcess

# WCAG 2 relative luminance and contrast ratio. The background is the element's own and its
# ancestors', composited over white in order (alpha included); text colour is composited over it.
# Returns every text-bearing, visible element whose ratio is below its threshold.
LOW_CONTRAST = """() => {
  const parse = (value) => {
    const m = value.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const over = (top, under) => ({
    r: top.r * top.a + under.r * (1 - top.a),
    g: top.g * top.a + under.g * (1 - top.a),
    b: top.b * top.a + under.b * (1 - top.a),
    a: 1,
  });
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) layers.push(c);
    }
    let bg = { r: 255, g: 255, b: 255, a: 1 };
    for (const layer of layers.reverse()) bg = over(layer, bg);
    return bg;
  };
  const channel = (v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const luminance = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const ratio = (a, b) => {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  const hasText = (el) =>
    [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim()) ||
    (["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName) && el.value && el.type !== "file");
  const low = [];
  let checked = 0;
  for (const el of document.body.querySelectorAll("*")) {
    if (!hasText(el) || el.disabled) continue;
    if (!el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) continue;
    if (el.closest(".visually-hidden")) continue;
    const rect = el.getBoundingClientRect();
    if (rect.width < 2 || rect.height < 2) continue;
    const style = getComputedStyle(el);
    const bg = background(el);
    const fg = over(parse(style.color), bg);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    const need = large ? 3 : 4.5;
    const got = ratio(fg, bg);
    checked += 1;
    if (got < need) {
      const text = (el.value || el.textContent || "").trim().slice(0, 40);
      const where = `${el.tagName.toLowerCase()}.${el.className} "${text}"`;
      low.push(`${where}: ${got.toFixed(2)} < ${need} (${style.color} on ${JSON.stringify(bg)})`);
    }
  }
  return { checked, low };
}"""

# Visible controls without an accessible name (label, aria-label(ledby), text, title).
UNNAMED = """() => {
  const name = (el) => {
    const by = el.getAttribute("aria-labelledby");
    const parts = [
      el.getAttribute("aria-label"),
      by && by.split(" ").map((id) => document.getElementById(id)?.textContent).join(" "),
      el.labels && [...el.labels].map((l) => l.textContent).join(" "),
      ["BUTTON", "A"].includes(el.tagName) ? el.textContent : "",
      el.getAttribute("title"),
    ];
    return parts.filter(Boolean).join(" ").trim();
  };
  const unnamed = [];
  for (const el of document.querySelectorAll("input, select, textarea, button, a[href]")) {
    if (el.type === "hidden") continue;
    // Hidden ones (the file inputs behind their "Attach" buttons) are not in the accessibility
    // tree: nothing announces them.
    if (!el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) continue;
    if (!name(el)) unnamed.push(el.outerHTML.slice(0, 120));
  }
  return unnamed;
}"""


@dataclass
class Scene:
    server: ServerProcess
    reader: Account
    channel: dict[str, Any]
    quiet: dict[str, Any]
    root_id: str


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """A team with a conversation that shows most of what the client draws: a mention of the
    reader, a link, code, a reply count, a reaction, and an unread channel with a badge."""
    server = serve(tmp_path_factory.mktemp("a11y"))
    rest = Rest(server.url)
    try:
        reader = rest.user(None, "reader")  # the first account: a system admin
        other = rest.user(reader, "other")
        team = rest.team(reader)
        rest.join_team(reader, team["id"], other)
        channel = rest.channel(reader, team["id"])
        quiet = rest.channel(reader, team["id"])
        for c in (channel, quiet):
            rest.join_channel(reader, c["id"], other)
        root = rest.post(other, channel["id"], "Plan for **Saturday**: see https://example.com")
        rest.call(
            "POST",
            "/posts",
            reader.token,
            {"channel_id": channel["id"], "message": "Count me in", "root_id": root["id"]},
            201,
        )
        rest.call(
            "POST",
            "/reactions",
            reader.token,
            {"user_id": reader.id, "post_id": root["id"], "emoji_name": "+1"},
            201,
        )
        rest.post(other, channel["id"], f"> quoted\n\n@{reader.username} run `make test` please")
        rest.post(other, quiet["id"], f"@{reader.username} a mention elsewhere")
        yield Scene(server, reader, channel, quiet, root["id"])
    finally:
        rest.close()
        server.stop()


def _open(pages: Pages, scene: Scene, name: str, path: str = "/") -> Page:
    chat = Chat(pages.open(name, scene.server.url))
    chat.log_in(scene.reader.username, PASSWORD, path=path)
    return chat.page


def _assert_contrast(page: Page, at_least: int = 20) -> None:
    found = page.evaluate(LOW_CONTRAST)
    assert found["checked"] >= at_least, found  # the page really had text on it
    assert not found["low"], "\n".join(found["low"])


def test_the_client_has_readable_contrast_and_named_controls(scene: Scene, pages: Pages) -> None:
    page = _open(pages, scene, "reader")
    Chat(page).wait_ready()
    Chat(page).open_channel(scene.channel["display_name"])
    expect(page.locator("main .post")).to_have_count(2)
    expect(page.locator("main .mention-me")).to_have_count(1)
    expect(page.locator("nav.sidebar .badge")).to_have_text("1")
    page.locator("main .post").first.get_by_role("button", name="1 reply").click()
    expect(page.locator("aside .post")).to_have_count(2)
    _assert_contrast(page)
    assert page.evaluate(UNNAMED) == []
    # The login form, before anyone signs in.
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    _assert_contrast(page, at_least=5)  # a heading, two labels, a button, a link
    assert page.evaluate(UNNAMED) == []


def test_the_console_has_readable_contrast_and_named_controls(scene: Scene, pages: Pages) -> None:
    page = _open(pages, scene, "console", "/admin")
    expect(page.locator("table.nodes tbody tr")).to_have_count(1)
    expect(page.locator("table.nodes tr[data-state=green]")).to_have_count(1)
    _assert_contrast(page)
    assert page.evaluate(UNNAMED) == []


def _tab_until(page: Page, selector: str, backwards: bool = False, limit: int = 80) -> None:
    """Presses Tab (or Shift+Tab) until the focused element matches `selector`."""
    key = "Shift+Tab" if backwards else "Tab"
    for _ in range(limit):
        page.keyboard.press(key)
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    focused = page.evaluate("document.activeElement.outerHTML.slice(0, 200)")
    raise AssertionError(f"{selector} not reached with {key} in {limit} presses: at {focused}")


def test_a_keyboard_alone_is_enough(scene: Scene, pages: Pages) -> None:
    page = _open(pages, scene, "keyboard")
    chat = Chat(page)
    chat.wait_ready()
    # The page starts with the cursor in the message box. Tab goes round the page to the skip
    # link, which shows itself when focused and leads into the messages.
    _tab_until(page, "a.skip")
    skip = page.get_by_role("link", name="Skip to messages")
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('main') !== null")

    # A channel from the sidebar: focused, it is outlined; Enter opens it and puts the cursor
    # in its message box.
    quiet = scene.quiet["display_name"]
    _tab_until(page, f'nav.sidebar a.channel[data-channel-id="{scene.quiet["id"]}"]')
    outline = page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, parseFloat(s.outlineWidth)]; }"
    )
    assert outline[0] != "none" and outline[1] >= 2, outline
    page.keyboard.press("Enter")
    expect(page.locator(".channel-title")).to_have_text(quiet)
    expect(chat.composer()).to_be_focused()
    page.keyboard.type("Written without a mouse")
    page.keyboard.press("Enter")
    expect(chat.post("Written without a mouse")).to_have_count(1)

    # Back to the first channel, then from the message box back to a post's reply count: Enter
    # opens the thread with the cursor in its reply box, Escape closes it.
    _tab_until(page, f'nav.sidebar a.channel[data-channel-id="{scene.channel["id"]}"]', True)
    page.keyboard.press("Enter")
    expect(chat.composer()).to_be_focused()
    _tab_until(page, f'main .post[data-post-id="{scene.root_id}"] button.reply', backwards=True)
    page.keyboard.press("Enter")
    reply_box = chat.thread_pane().get_by_label("Reply to this thread")
    expect(reply_box).to_be_focused()
    page.keyboard.type("A reply by keyboard")
    page.keyboard.press("Enter")
    expect(chat.post("A reply by keyboard", "aside")).to_have_count(1)
    page.keyboard.press("Escape")
    expect(chat.thread_pane()).to_be_hidden()
