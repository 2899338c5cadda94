"""The browser tier: hubbub's web client and console in a real headless Chromium (Debian's
`/usr/bin/chromium`, driven by Playwright for Python; Playwright never downloads a browser here),
against real `hubbub serve` processes and, for failover and the console, a real cluster behind
nginx (tests/support/cluster.py).

Every wait is Playwright's `expect(...)` or `wait_for` with a deadline, never a sleep. When a test
fails, every page still open is saved as a screenshot (and its console log) under
`test-artifacts/<test>/` at the repository root (git-ignored), so a failure on CI can be seen.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.support.server import ServerProcess, start_server

CHROMIUM = os.environ.get("HUBBUB_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

expect.set_options(timeout=15_000)


# One browser per module, not per session: while Playwright's sync API runs, its event loop is the
# thread's running loop, and the async tests of other tiers in the same session need theirs.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/ensure-system-packages (it installs chromium)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Pages:
    """Browser contexts (one per person: their own cookies) and their pages, kept so that a
    failing test can save what each of them showed."""

    live: dict[str, Page] = {}
    logs: dict[str, list[str]] = {}

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []

    def open(self, name: str, base_url: str, viewport: dict[str, int] | None = None) -> Page:
        context = self.browser.new_context(base_url=base_url, viewport=viewport or LAPTOP)
        self.contexts.append(context)
        context.set_default_timeout(15_000)
        page = context.new_page()
        log = Pages.logs.setdefault(name, [])
        page.on("console", lambda m: log.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: log.append(f"pageerror: {e}"))
        Pages.live[name] = page
        return page

    def close(self) -> None:
        for context in self.contexts:
            for page in context.pages:
                for name, live in list(Pages.live.items()):
                    if live is page:
                        del Pages.live[name]
                        Pages.logs.pop(name, None)
            context.close()
        self.contexts.clear()


@pytest.fixture
def pages(browser: Browser) -> Iterator[Pages]:
    opened = Pages(browser)
    try:
        yield opened
    finally:
        opened.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def screenshots_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not request.node.stash.get(_FAILED, False):
        return
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    for name, page in list(Pages.live.items()):
        try:
            page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
        except Exception as exc:  # a closed page: keep going, say why
            (folder / f"{name}.error.txt").write_text(repr(exc))
        (folder / f"{name}.console.txt").write_text("\n".join(Pages.logs.get(name, [])))


@pytest.fixture(scope="module")
def module_browser_pages(browser: Browser) -> Iterator[Pages]:
    """Pages that live for a whole module (a conversation several tests continue)."""
    opened = Pages(browser)
    try:
        yield opened
    finally:
        opened.close()


def serve(workdir: Path, **settings: str) -> ServerProcess:
    """`hubbub serve` on SQLite in `workdir`, open to sign-ups (`MM_*` overrides as keywords)."""
    env = {
        "MM_TEAMSETTINGS_ENABLEOPENSERVER": "true",
        "MM_FILESETTINGS_DIRECTORY": str(workdir / "files"),
        "MM_SQLSETTINGS_DATASOURCE": str(workdir / "hubbub.db"),
        **settings,
    }
    with warnings.catch_warnings():
        # start_server drops its handle on the log file (the child keeps its own descriptor):
        # collect it here, where its ResourceWarning is expected (as tests/realtime does).
        warnings.simplefilter("ignore", ResourceWarning)
        server = start_server(workdir, env)
        gc.collect()
    return server
