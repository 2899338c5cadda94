"""The browser tier: hubbub's web client and console in a real headless Chromium (Debian's
`/usr/bin/chromium`, driven by Playwright for Python; Playwright never downloads a browser here),
against real `hubbub serve` processes and, for failover and the console, a real cluster behind
nginx (tests/support/cluster.py).

Every wait is Playwright's `expect(...)` or `wait_for` with a deadline, never a sleep. When a test
fails, every page still open is saved as a screenshot (and its console log) under
`test-artifacts/<test>/` at the repository root (git-ignored), so a failure on CI can be seen.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.support.browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS, Pages

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


@pytest.fixture
def pages(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Pages]:
    opened = Pages(browser)
    try:
        yield opened
    finally:
        # Before the pages close: this fixture is torn down before `screenshots_on_failure`.
        _save_artifacts(request.node)
        opened.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


def _artifacts_folder(item: pytest.Item) -> Path:
    return ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)


@pytest.fixture(autouse=True)
def screenshots_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """Saves the pages of a failed test: those of the module's fixtures here, those of the
    test's own `pages` in that fixture's teardown (which runs first and closes them)."""
    shutil.rmtree(_artifacts_folder(request.node), ignore_errors=True)  # an earlier run's
    yield
    _save_artifacts(request.node)


def _save_artifacts(item: pytest.Item) -> None:
    if not item.stash.get(_FAILED, False):
        return
    folder = _artifacts_folder(item)
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
