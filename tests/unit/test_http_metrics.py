"""HTTP metrics with Mattermost's names, on a small app in-process (no socket)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from hubbub.cluster.metrics import ClusterMetrics
from hubbub.observability.http_metrics import HTTPMetrics, origin_client
from hubbub.observability.metrics import Metrics
from hubbub.store.monitor import DatabaseMetrics


async def _user(request: Request) -> Response:
    if request.path_params["user_id"] == "missing":
        return JSONResponse({"id": "app.user.missing_account.const"}, status_code=404)
    return JSONResponse({"id": request.path_params["user_id"]})


def test_requests_errors_and_api_time_per_route_template() -> None:
    metrics = Metrics()
    app = HTTPMetrics(
        Starlette(routes=[Mount("/api/v4", routes=[Route("/users/{user_id}", _user)])]), metrics
    )

    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            await client.get("/api/v4/users/abc", headers={"X-Requested-With": "XMLHttpRequest"})
            await client.get("/api/v4/users/def")
            await client.get("/api/v4/users/jkl")
            await client.get("/api/v4/users/ghi", headers={"X-Page-Load-Context": "page_load"})
            await client.get("/api/v4/users/missing")
            await client.get("/api/v4/nowhere")
            await client.get("/static/app.js")  # outside the API: not counted

    asyncio.run(run())
    r = metrics.registry
    assert r.get_sample_value("mattermost_http_requests_total") == 6
    assert r.get_sample_value("mattermost_http_errors_total") == 2
    count = "mattermost_api_time_count"
    labels = {"handler": "/api/v4/users/{user_id}", "method": "GET", "page_load_context": ""}
    # The same labels twice (def, jkl): one child counted twice.
    assert r.get_sample_value(count, {**labels, "status_code": "200", "origin_client": ""}) == 2
    page_load = {**labels, "page_load_context": "page_load"}
    assert r.get_sample_value(count, {**page_load, "status_code": "200", "origin_client": ""}) == 1
    webapp = {**labels, "status_code": "200", "origin_client": "webapp"}
    assert r.get_sample_value(count, webapp) == 1
    assert r.get_sample_value(count, {**labels, "status_code": "404", "origin_client": ""}) == 1
    unmatched = {**labels, "handler": "unmatched", "status_code": "404", "origin_client": ""}
    assert r.get_sample_value(count, unmatched) == 1
    assert (r.get_sample_value("mattermost_system_server_start_time") or 0) > 1.7e9


def test_origin_client() -> None:
    assert origin_client({b"user-agent": b"rnbeta/2.0 Mattermost Mobile"}) == "mobile"
    assert origin_client({b"user-agent": b"Mozilla/5.0 Mattermost/5.9 Electron/28"}) == "desktop"
    assert origin_client({b"x-requested-with": b"XMLHttpRequest"}) == "webapp"
    assert origin_client({b"user-agent": b"python-httpx/0.27"}) == ""


def test_the_grafana_dashboard_only_uses_metrics_hubbub_exports() -> None:
    path = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "hubbub-dashboard.json"
    dashboard = json.loads(path.read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(?:mattermost|hubbub)_[a-z_]+", target["expr"])
    }
    registry = Metrics().registry
    DatabaseMetrics(registry)
    ClusterMetrics(registry)
    exported = set()
    for family in registry.collect():
        exported |= {family.name + suffix for suffix in ("", "_total", "_bucket", "_count", "_sum")}
    assert used and used <= exported, sorted(used - exported)
