"""Job rows in Mattermost's shape: statuses, types, the JSON clients read, and the claim that
fences a worker's writes.

A job's `data` is a map of strings to strings, as Mattermost's `Job.Data`: parameters given when
it was created (`import_file`), counts and results a run reports (`deleted_posts`,
`export_file`), a checkpoint a resumable job continues from, and, when it fails, `error`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import Row


class JobStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    ERROR = "error"
    CANCEL_REQUESTED = "cancel_requested"
    CANCELED = "canceled"


# A job in one of these is over: nothing changes it any more.
FINISHED = frozenset({JobStatus.SUCCESS, JobStatus.ERROR, JobStatus.CANCELED})
# A worker holds the job: its heartbeat must keep coming.
RUNNING = frozenset({JobStatus.IN_PROGRESS, JobStatus.CANCEL_REQUESTED})

DATA_RETENTION = "data_retention"
CLEANUP = "cleanup"
EXPORT_PROCESS = "export_process"
IMPORT_PROCESS = "import_process"

JobData = dict[str, str]


def string_data(values: Mapping[str, Any]) -> JobData:
    """`values` as Mattermost's string map: numbers and booleans become their text."""
    out: JobData = {}
    for key, value in values.items():
        if isinstance(value, bool):
            out[str(key)] = "true" if value else "false"
        elif value is not None:
            out[str(key)] = str(value)
    return out


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    type: str
    status: str
    create_at: int = 0
    start_at: int = 0
    last_activity_at: int = 0
    progress: int = 0
    priority: int = 0
    data: JobData = field(default_factory=dict)
    worker: str = ""
    attempts: int = 0
    schedule_key: str | None = None
    schedule_slot: int | None = None

    @classmethod
    def from_row(cls, row: Row[Any] | Mapping[str, Any]) -> Job:
        r = row._mapping if isinstance(row, Row) else row
        data = r["data"] if isinstance(r["data"], dict) else {}
        return cls(
            id=r["id"],
            type=r["type"],
            status=r["status"],
            create_at=int(r["create_at"]),
            start_at=int(r["start_at"]),
            last_activity_at=int(r["last_activity_at"]),
            progress=int(r["progress"]),
            priority=int(r["priority"]),
            data=string_data(data),
            worker=r["worker"],
            attempts=int(r["attempts"]),
            schedule_key=r["schedule_key"],
            schedule_slot=None if r["schedule_slot"] is None else int(r["schedule_slot"]),
        )

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_json(self) -> dict[str, Any]:
        """Mattermost's Job JSON."""
        return {
            "id": self.id,
            "type": self.type,
            "priority": self.priority,
            "create_at": self.create_at,
            "start_at": self.start_at,
            "last_activity_at": self.last_activity_at,
            "status": self.status,
            "progress": self.progress,
            "data": dict(self.data),
        }


@dataclass(frozen=True, slots=True)
class Claim:
    """A worker's hold on a job: every write it makes names the attempt it claimed, so a write
    from a worker whose job was reaped (and perhaps claimed again elsewhere) changes nothing."""

    job_id: str
    worker: str
    attempt: int


class JobLost(Exception):
    """The job is no longer this worker's: the reaper returned it to pending (its heartbeat was
    late) or another worker claimed it since."""


class JobCanceled(Exception):
    """An administrator asked to cancel the job while it ran."""
