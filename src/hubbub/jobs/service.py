"""Jobs as administrators see them: list, read, create, cancel, download (the API and the CLI).

The API routes check the caller's permissions first (`read_jobs` to read, `manage_jobs` to create
or cancel: only the system admin role has them by default); `session` here only names who asked.
A job of an unknown type, or with data its type cannot use, is a 400 before anything is written;
a new job is announced to every node's workers at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from hubbub.errors import AppError
from hubbub.files import FileBackend
from hubbub.ids import now_ms
from hubbub.jobs.model import Job, JobStatus
from hubbub.jobs.store import JobStore
from hubbub.jobs.worker import JobHandler
from hubbub.services.session import Session

Announce = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Download:
    name: str
    content: bytes


class JobsService:
    def __init__(
        self,
        store: JobStore,
        handlers: Mapping[str, JobHandler],
        files: FileBackend,
        announce: Announce,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.store = store
        self.handlers = dict(handlers)
        self.files = files
        self.announce = announce
        self.clock = clock

    def check_type(self, job_type: str) -> JobHandler:
        handler = self.handlers.get(job_type)
        if handler is None:
            raise AppError(
                "model.job.is_valid.type.app_error",
                f"Invalid job type {job_type!r}; known: {', '.join(sorted(self.handlers))}.",
                400,
            )
        return handler

    # `session` None: the command line, which runs as the operator.

    async def list(
        self, session: Session | None, page: int, per_page: int, job_type: str | None = None
    ) -> list[Job]:
        return await self.store.page(page, per_page, job_type)

    async def get(self, session: Session | None, job_id: str) -> Job:
        return await self.store.get(job_id)

    async def create(self, session: Session | None, job_type: str, data: Mapping[str, str]) -> Job:
        checked = self.check_type(job_type).check_request(data)
        if session is not None:
            checked.setdefault("requested_by", session.user_id)
        job = await self.store.create(job_type, checked, self.clock())
        await self.announce(job_type)
        return job

    async def cancel(self, session: Session | None, job_id: str) -> Job:
        return await self.store.request_cancel(job_id, self.clock())

    async def download(self, session: Session | None, job_id: str) -> Download:
        """The file a job produced (`data.is_downloadable`, `data.export_file`)."""
        job = await self.get(session, job_id)
        path = job.data.get("export_file", "")
        if job.data.get("is_downloadable") != "true" or not path or job.status != JobStatus.SUCCESS:
            raise AppError(
                "api.job.unable_to_download_job",
                "Unable to download this job: it produced no file, or has not finished.",
                400,
            )
        try:
            content = await self.files.read(path)
        except FileNotFoundError:
            raise AppError(
                "api.job.unable_to_download_job.not_found",
                "The file this job produced is no longer stored.",
                404,
            ) from None
        return Download(path.rsplit("/", 1)[-1], content)
