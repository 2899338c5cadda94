"""Browser tests' shared pieces: how Chromium is launched, the pages of each person (kept so that a
failing test can save what each showed), and a `hubbub serve` open to sign-ups."""

from __future__ import annotations

import gc
import os
import warnings
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page

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
