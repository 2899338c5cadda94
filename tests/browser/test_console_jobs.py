"""The console's jobs section on one node: a system admin starts a bulk export and a data
retention job from the page, watches them finish without reloading, downloads the export, and
cancels a job before a worker takes it (a node with `JobSettings.RunJobs` off holds it pending)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import Pages, serve
from tests.support.browser_chat import PASSWORD, Chat
from tests.support.rest import Rest
from tests.support.server import ServerProcess


def _admin_console(server: ServerProcess, pages: Pages, name: str) -> Page:
    rest = Rest(server.url)
    try:
        admin = rest.user(None, f"{name}admin")  # the first user is the system admin
    finally:
        rest.close()
    page = pages.open(name, server.url)
    Chat(page).log_in(admin.username, PASSWORD, path="/admin")
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    expect(page.get_by_text("No jobs yet.")).to_be_visible()
    return page


def _start(page: Page, label: str) -> None:
    page.get_by_label("New job").select_option(label=label)
    page.get_by_role("button", name="Start job").click()


@pytest.fixture
def working(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = serve(tmp_path_factory.mktemp("jobs"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = serve(tmp_path_factory.mktemp("idle"), MM_JOBSETTINGS_RUNJOBS="false")
    try:
        yield started
    finally:
        started.stop()


def test_an_admin_starts_jobs_and_downloads_the_export(
    working: ServerProcess, pages: Pages
) -> None:
    page = _admin_console(working, pages, "jobs")
    _start(page, "Bulk export")
    export = page.locator('table.jobs tr:has(th:text-is("export_process"))')
    expect(export).to_have_attribute("data-status", "success", timeout=30_000)
    expect(export.locator("progress")).to_have_attribute("value", "100")
    link = export.get_by_role("link", name="Download")
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename.endswith(".zip")

    _start(page, "Data retention")
    retention = page.locator('table.jobs tr:has(th:text-is("data_retention"))')
    expect(retention).to_have_attribute("data-status", "success", timeout=30_000)
    expect(page.locator(".job-result")).to_have_text("Start data_retention: done.")


def test_a_pending_job_is_canceled_from_the_page(idle: ServerProcess, pages: Pages) -> None:
    page = _admin_console(idle, pages, "cancel")
    _start(page, "Cleanup")
    row = page.locator('table.jobs tr:has(th:text-is("cleanup"))')
    expect(row).to_have_attribute("data-status", "pending")
    row.get_by_role("button", name="Cancel").click()
    expect(row).to_have_attribute("data-status", re.compile("^cancel"))
    expect(page.locator(".job-result")).to_have_text("Cancel cleanup: done.")
