"""`/api/v4/jobs` in Mattermost's shapes: who may call it, paging newest first, by type, create
(bad types and data refused before anything is written), cancel, download refusals, the cleanup
job's effect, and the scheduler on `/cluster/status`. SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import insert, select

from hubbub.app import Hubbub
from hubbub.ids import new_id, now_ms
from hubbub.store.tables import outbox, sessions, tokens
from tests.support.api import API, User
from tests.support.jobs_world import run_job

JOB_KEYS = {
    "id",
    "type",
    "priority",
    "create_at",
    "start_at",
    "last_activity_at",
    "status",
    "progress",
    "data",
}


@pytest.fixture
def config_overrides() -> dict[str, str]:
    # Neither workers nor the scheduler: jobs are only those a test creates, and stay pending.
    return {"MM_JOBSETTINGS_RUNJOBS": "false", "MM_JOBSETTINGS_RUNSCHEDULER": "false"}


async def test_only_system_admins_see_or_create_jobs(api: API, admin: User) -> None:
    user = await api.new_user(admin.token)
    for method, path in (("GET", "/jobs"), ("GET", "/jobs/type/cleanup"), ("POST", "/jobs")):
        body = await api.call(method, path, user.token, json={"type": "cleanup"}, expect=403)
        assert body["id"] == "api.context.permissions.app_error"
        await api.call(method, path, None, json={"type": "cleanup"}, expect=401)


async def test_create_list_page_get_and_cancel(api: API, admin: User) -> None:
    created = []
    for job_type in ("cleanup", "data_retention", "cleanup"):
        job = await api.call(
            "POST", "/jobs", admin.token, json={"type": job_type, "data": {"note": "x"}}, expect=201
        )
        assert set(job) == JOB_KEYS and job["status"] == "pending" and job["progress"] == 0
        assert job["data"] == {"note": "x", "requested_by": admin.id}
        created.append(job)
        time.sleep(0.002)  # distinct create_at: the listing is newest first
    listed = await api.call("GET", "/jobs?per_page=2", admin.token)
    assert [j["id"] for j in listed] == [created[2]["id"], created[1]["id"]]
    rest = await api.call("GET", "/jobs?page=1&per_page=2", admin.token)
    assert [j["id"] for j in rest] == [created[0]["id"]]
    by_type = await api.call("GET", "/jobs/type/cleanup", admin.token)
    assert [j["id"] for j in by_type] == [created[2]["id"], created[0]["id"]]
    assert await api.call("GET", "/jobs/type/export_process", admin.token) == []
    assert await api.call("GET", f"/jobs/{created[1]['id']}", admin.token) == created[1]

    assert await api.call("POST", f"/jobs/{created[1]['id']}/cancel", admin.token) == {
        "status": "OK"
    }
    canceled = await api.call("GET", f"/jobs/{created[1]['id']}", admin.token)
    assert canceled["status"] == "canceled"
    again = await api.call("POST", f"/jobs/{created[1]['id']}/cancel", admin.token, expect=400)
    assert again["id"] == "jobs.request_cancellation.status.error"


@pytest.mark.parametrize(
    ("body", "error_id"),
    [
        ({"type": "no_such_job"}, "model.job.is_valid.type.app_error"),
        ({"type": ""}, "api.context.invalid_param.app_error"),
        ({"type": "cleanup", "data": {"n": 1}}, "api.context.invalid_body_param.app_error"),
        ({"type": "cleanup", "data": ["x"]}, "api.context.invalid_body_param.app_error"),
        ({"data": {}}, "api.context.invalid_body_param.app_error"),
        ({"type": "import_process"}, "api.job.import.missing_file.app_error"),
        (
            {"type": "import_process", "data": {"import_file": "../etc/passwd"}},
            "api.job.import.bad_file.app_error",
        ),
    ],
)
async def test_bad_requests_create_nothing(
    api: API, admin: User, body: dict[str, object], error_id: str
) -> None:
    assert (await api.call("POST", "/jobs", admin.token, json=body, expect=400))["id"] == error_id
    assert await api.call("GET", "/jobs", admin.token) == []


async def test_a_job_without_a_file_cannot_be_downloaded(api: API, admin: User) -> None:
    job = await api.call("POST", "/jobs", admin.token, json={"type": "cleanup"}, expect=201)
    body = await api.call("GET", f"/jobs/{job['id']}/download", admin.token, expect=400)
    assert body["id"] == "api.job.unable_to_download_job"


@pytest.mark.parametrize("config_overrides", [{}])
async def test_the_cluster_status_names_the_scheduler(api: API, admin: User) -> None:
    (me,) = await api.call("GET", "/cluster/status", admin.token)
    assert me["job_scheduler"] is True and me["reasons"] == []


async def test_without_a_scheduler_the_status_says_so(api: API, admin: User) -> None:
    (me,) = await api.call("GET", "/cluster/status", admin.token)
    assert me["job_scheduler"] is False
    assert me["reasons"] and "RunScheduler" in me["reasons"][0]


@pytest.mark.parametrize("config_overrides", [{"MM_JOBSETTINGS_CLEANUPJOBSTHRESHOLDDAYS": "0"}])
async def test_cleanup_removes_expired_sessions_old_outbox_rows_and_finished_jobs(
    api: API, admin: User, node: Hubbub
) -> None:
    user = await api.new_user(admin.token)
    now = now_ms()
    async with node.db.write() as conn:
        row = (await conn.execute(select(sessions).where(sessions.c.user_id == user.id))).one()
        expired = {**row._asdict(), "id": new_id(), "token": new_id(), "expires_at": now - 1000}
        await conn.execute(insert(sessions).values(**expired))
        await conn.execute(
            insert(outbox).values(
                id=new_id(), create_at=now - 25 * 3_600_000, recipients=[], body="{}", meta={}
            )
        )
        # Password reset tokens: one past its hour, one still usable.
        for token, age in (("expired", 61 * 60_000), ("fresh", 59 * 60_000)):
            await conn.execute(
                insert(tokens).values(
                    token=token, create_at=now - age, type="password_recovery", extra=user.id
                )
            )
    first = await run_job(api, admin.token, "cleanup")
    assert first["status"] == "success", first
    assert first["data"]["deleted_sessions"] == "1"
    assert first["data"]["deleted_tokens"] == "1"
    async with node.db.read() as conn:
        assert list((await conn.execute(select(tokens.c.token))).scalars()) == ["fresh"]
    assert first["data"]["deleted_outbox_rows"] == "1"
    # The live session still works; the finished job is older than 0 days by the next run.
    await api.call("GET", "/users/me", user.token)
    second = await run_job(api, admin.token, "cleanup")
    assert second["data"]["deleted_jobs"] >= "1"
    await api.call("GET", f"/jobs/{first['id']}", admin.token, expect=404)
