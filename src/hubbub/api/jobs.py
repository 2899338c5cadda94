"""Job routes (Mattermost's `/api/v4/jobs...`), for `read_jobs` / `manage_jobs` (system admins by
default): list (paged, newest
first), by type, one job, create, cancel, and download what a job produced."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hubbub.api.auth import require_permission
from hubbub.api.http import JSONResponse, created, field, ok, paging, path_id, read_object
from hubbub.errors import bad_body, bad_param
from hubbub.jobs.service import JobsService
from hubbub.services.permissions import Permissions
from hubbub.services.session import Session

MAX_TYPE_LENGTH = 64


class JobRoutes:
    def __init__(self, jobs: JobsService, permissions: Permissions) -> None:
        self.jobs = jobs
        self.permissions = permissions

    async def _caller(self, request: Request, permission: str) -> Session:
        return await require_permission(request, self.permissions, permission)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/jobs", self.list_jobs, methods=["GET"]),
            Route("/jobs", self.create, methods=["POST"]),
            Route("/jobs/type/{job_type}", self.by_type, methods=["GET"]),
            Route("/jobs/{job_id}", self.get, methods=["GET"]),
            Route("/jobs/{job_id}/cancel", self.cancel, methods=["POST"]),
            Route("/jobs/{job_id}/download", self.download, methods=["GET"]),
        ]

    async def list_jobs(self, request: Request) -> Response:
        session = await self._caller(request, "read_jobs")
        page, per_page = paging(request)
        job_type = request.query_params.get("job_type") or None
        if job_type is not None:
            _check_type_text(job_type)
        found = await self.jobs.list(session, page, per_page, job_type)
        return JSONResponse([job.to_json() for job in found])

    async def by_type(self, request: Request) -> Response:
        session = await self._caller(request, "read_jobs")
        job_type = _check_type_text(request.path_params.get("job_type", ""))
        page, per_page = paging(request)
        found = await self.jobs.list(session, page, per_page, job_type)
        return JSONResponse([job.to_json() for job in found])

    async def get(self, request: Request) -> Response:
        session = await self._caller(request, "read_jobs")
        job = await self.jobs.get(session, path_id(request, "job_id"))
        return JSONResponse(job.to_json())

    async def create(self, request: Request) -> Response:
        session = await self._caller(request, "manage_jobs")
        body = await read_object(request, "job")
        job_type = _check_type_text(field(body, "type", str))
        raw: Any = body.get("data") or {}
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise bad_body("data")
        job = await self.jobs.create(session, job_type, raw)
        return created(job.to_json())

    async def cancel(self, request: Request) -> Response:
        session = await self._caller(request, "manage_jobs")
        await self.jobs.cancel(session, path_id(request, "job_id"))
        return ok()

    async def download(self, request: Request) -> Response:
        session = await self._caller(request, "read_jobs")
        result = await self.jobs.download(session, path_id(request, "job_id"))
        return Response(
            result.content,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{result.name}"'},
        )


def _check_type_text(value: str) -> str:
    if not (
        0 < len(value) <= MAX_TYPE_LENGTH and value.isascii() and value.replace("_", "").isalnum()
    ):
        raise bad_param("job_type")
    return value
