"""The routes outside `/api/v4`: hubbub's pages (strict Content-Security-Policy, no inline
script, revalidated pages, year-long cached files under a digest) and, with
`ServiceSettings.WebappDirectory`, a Mattermost web app bundle (a tiny fake one here): `root.html`
for the app's routes, `/static/` files with long cache headers, `/api/v4` untouched.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from hubbub.config import ConfigError, load_config
from hubbub.web.routes import PAGE_CSP
from tests.support.browser import Pages, serve
from tests.support.server import ServerProcess

ROOT_HTML = b"""<!doctype html><html><head><title>Mattermost</title>
<script src="/static/main.1234.js"></script></head><body><div id="root"></div></body></html>"""
MAIN_JS = b"document.title = 'fake web app ' + location.pathname;\n"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    client = tmp_path_factory.mktemp("release") / "client"
    (client / "images").mkdir(parents=True)
    (client / "root.html").write_bytes(ROOT_HTML)
    (client / "main.1234.js").write_bytes(MAIN_JS)
    (client / "images" / "logo.png").write_bytes(b"\x89PNG fake")
    return client


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = serve(tmp_path_factory.mktemp("own"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def bundle_server(
    tmp_path_factory: pytest.TempPathFactory, bundle: Path
) -> Iterator[ServerProcess]:
    server = serve(
        tmp_path_factory.mktemp("bundle"), MM_SERVICESETTINGS_WEBAPPDIRECTORY=str(bundle)
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own(own_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=own_server.url, timeout=10) as client:
        yield client


@pytest.fixture
def with_bundle(bundle_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=bundle_server.url, timeout=10) as client:
        yield client


def _assets(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/_hubbub/[^"]+)"', html)


@pytest.mark.parametrize("path", ["/", "/admin"])
def test_pages_have_a_strict_csp_and_no_inline_script(own: httpx.Client, path: str) -> None:
    response = own.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == PAGE_CSP
    assert "script-src 'self';" in PAGE_CSP and "unsafe" not in PAGE_CSP
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-cache"
    scripts = re.findall(r"<script\b[^>]*>", response.text)
    assert scripts and all('src="/_hubbub/' in tag for tag in scripts), scripts
    bodies = re.findall(r"<script\b[^>]*>(.*?)</script>", response.text, re.S)
    assert len(bodies) == len(scripts) and not "".join(bodies).strip(), "an inline script"
    assert not re.search(r"\son[a-z]+=", response.text), "an inline event handler"
    again = own.get(path, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304


def test_files_are_cached_for_a_year_under_a_digest(own: httpx.Client) -> None:
    page = (own.get("/")).text
    assets = _assets(page)
    assert any(a.endswith("/js/app.js") for a in assets), assets
    for asset in assets:
        response = own.get(asset)
        assert response.status_code == 200, asset
        assert response.headers["cache-control"] == "max-age=31556926, public, immutable"
    script = own.get(next(a for a in assets if a.endswith("app.js")))
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    revalidated = own.get(
        next(a for a in assets if a.endswith("app.js")),
        headers={"If-None-Match": script.headers["etag"]},
    )
    assert revalidated.status_code == 304
    # Another version's digest (a page from a node being upgraded) still gets the file, uncached.
    other = own.get("/_hubbub/0000000000000000/js/app.js")
    assert other.status_code == 200 and other.headers["cache-control"] == "no-cache"
    for missing in (
        "/_hubbub/x/js/nope.js",
        "/_hubbub/x/index.html",
        "/_hubbub/x/%2e%2e/routes.py",
    ):
        assert (own.get(missing)).status_code == 404, missing


def test_the_api_is_untouched(own: httpx.Client) -> None:
    ping = own.get("/api/v4/system/ping")
    assert ping.status_code == 200 and ping.headers["content-type"] == "application/json"
    missing = own.get("/api/v4/no/such/route")
    assert missing.status_code == 404
    assert missing.json()["id"] == "api.context.404.app_error"


def test_a_bundle_serves_root_html_for_the_apps_routes(
    with_bundle: httpx.Client,
) -> None:
    for path in (
        "/",
        "/login",
        "/garden/channels/town-square",
        "/garden/pl/abcdefghijklmnopqrstuvwxyz",
    ):
        response = with_bundle.get(path)
        assert response.status_code == 200, path
        assert response.content == ROOT_HTML, path
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache, max-age=31556926, public"
        assert response.headers["content-security-policy"] == "frame-ancestors 'self'"


def test_a_bundle_serves_its_static_files_with_long_cache_headers(
    with_bundle: httpx.Client,
) -> None:
    script = with_bundle.get("/static/main.1234.js")
    assert script.status_code == 200 and script.content == MAIN_JS
    assert script.headers["cache-control"] == "max-age=31556926, public"
    assert script.headers["content-type"].startswith("text/javascript")
    again = with_bundle.get(
        "/static/main.1234.js", headers={"If-None-Match": script.headers["etag"]}
    )
    assert again.status_code == 304
    logo = with_bundle.get("/static/images/logo.png")
    assert logo.status_code == 200 and logo.headers["content-type"] == "image/png"
    for missing in ("/static/nope.js", "/static/images/", "/static/%2e%2e/%2e%2e/etc/passwd"):
        response = with_bundle.get(missing)
        assert response.status_code == 404, missing
        assert response.headers["cache-control"] == "no-cache, public", missing
    robots = with_bundle.get("/robots.txt")
    assert robots.text == "User-agent: *\nDisallow: /\n"


def test_a_bundle_leaves_the_api_and_the_console_alone(
    with_bundle: httpx.Client,
) -> None:
    ping = with_bundle.get("/api/v4/system/ping")
    assert ping.status_code == 200 and ping.json()["status"] == "OK"
    for path in ("/api/v4/no/such/route", "/api/v4", "/api/v3/users"):
        response = with_bundle.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/json", path
        assert response.json()["id"] == "api.context.404.app_error", path
    console = with_bundle.get("/admin")
    assert console.status_code == 200 and "hubbub console" in console.text


def test_a_folder_without_root_html_is_a_startup_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ServiceSettings\.WebappDirectory"):
        load_config(None, environ={"MM_SERVICESETTINGS_WEBAPPDIRECTORY": str(tmp_path)})


# In Chromium


def test_chromium_runs_the_bundles_app_on_its_routes(
    bundle_server: ServerProcess, pages: Pages
) -> None:
    page = pages.open("webapp", bundle_server.url)
    page.goto("/garden/channels/town-square")
    expect(page).to_have_title("fake web app /garden/channels/town-square")


def test_chromium_loads_the_client_with_no_csp_violation(
    own_server: ServerProcess, pages: Pages
) -> None:
    for path, ready in (("/", "Log in to"), ("/admin", "Log in to")):
        page = pages.open(f"page{path.replace('/', '-')}", own_server.url)
        problems: list[str] = []
        page.on(
            "console",
            lambda m, p=problems: m.type == "error" and "401" not in m.text and p.append(m.text),
        )
        page.on("pageerror", lambda e, p=problems: p.append(str(e)))
        page.goto(path)
        expect(page.get_by_role("heading", level=1)).to_contain_text(ready)
        assert not problems, problems
