"""The console's database card on a real PostgreSQL primary with a streaming replica
(tests/support/replicated.py), in Chromium: the primary's role, the replica streaming from it,
and this node's view of it as its read replica: in rotation, out for lag while its replay is
paused (saying how far behind it is), and back in once it has caught up. No reload: the page
redraws on its own."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.support.browser import Pages, serve
from tests.support.browser_chat import PASSWORD, Chat
from tests.support.replicated import ReplicatedPostgres, start_replicated
from tests.support.rest import Rest
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicatedPostgres]:
    started = start_replicated()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def server(
    pair: ReplicatedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    started = serve(
        tmp_path_factory.mktemp("replica-console"),
        MM_SQLSETTINGS_DRIVERNAME="postgres",
        MM_SQLSETTINGS_DATASOURCE=pair.primary.url,
        MM_SQLSETTINGS_DATASOURCEREPLICAS=pair.replica.url,
        MM_SQLSETTINGS_REPLICAMONITORINTERVALSECONDS="1",
        MM_SQLSETTINGS_REPLICAMAXLAGSECONDS="1",
    )
    try:
        yield started
    finally:
        started.stop()


def test_the_database_card_shows_roles_and_a_replicas_lag(
    pair: ReplicatedPostgres, server: ServerProcess, pages: Pages
) -> None:
    rest = Rest(server.url)
    try:
        admin = rest.user(None, "admin")  # the first account: a system admin
    finally:
        rest.close()
    page = pages.open("console", server.url)
    Chat(page).log_in(admin.username, PASSWORD, path="/admin")
    card = page.get_by_role("region", name="Database")
    expect(card.locator("dt", has_text="Role").locator("+ dd")).to_have_text("primary")
    streaming = card.locator("dt", has_text="Streaming replicas").locator("+ dd")
    expect(streaming).to_contain_text(re.compile(r": streaming, lag [\d.]+ s"))
    replica = card.locator('.routed-replicas li[data-replica="replica-0"]')
    expect(replica).to_have_attribute("data-healthy", "true")
    expect(replica).to_contain_text(f"replica-0 at 127.0.0.1:{pair.replica.port}")
    expect(replica).to_contain_text("in rotation")

    pair.wait_replayed()
    pair.pause_replay()
    pair.primary.psql("CREATE TABLE lag_marker (x int); INSERT INTO lag_marker VALUES (1)")
    expect(replica).to_have_attribute("data-healthy", "false", timeout=30_000)
    expect(replica).to_contain_text(re.compile(r"out: lagging, behind by [1-9]\d* bytes"))

    pair.resume_replay()
    expect(replica).to_have_attribute("data-healthy", "true", timeout=30_000)
    expect(replica).to_contain_text("in rotation")
