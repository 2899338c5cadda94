"""`hubbub jobs list|run|cancel|download` as a real subprocess beside a running `hubbub serve`
on SQLite: the server's workers run what the command creates."""

from __future__ import annotations

import gc
import json
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import run
from tests.support.server import ServerProcess, start_server

ENV = {"MM_JOBSETTINGS_POLLSECONDS": "0.2", "MM_JOBSETTINGS_RUNSCHEDULER": "false"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with warnings.catch_warnings():
        # As tests/api/test_bad_input.py: start_server leaves its log handle to the collector.
        warnings.simplefilter("ignore", ResourceWarning)
        started = start_server(tmp_path, ENV)
        gc.collect()
    try:
        yield started
    finally:
        assert started.stop() == 0, started.log()[-4000:]


def test_run_wait_list_download_and_cancel(server: ServerProcess, tmp_path: Path) -> None:
    env = {**ENV, "MM_SERVICESETTINGS_LISTENADDRESS": "127.0.0.1:0"}
    done = run("jobs", "run", "export_process", "--wait", "--timeout", "60", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout.splitlines()[-1])
    assert job["status"] == "success" and job["data"]["is_downloadable"] == "true"

    listed = run("jobs", "list", "--json", cwd=tmp_path, env=env)
    assert [j["id"] for j in json.loads(listed.stdout)] == [job["id"]]
    table = run("jobs", "list", "--type", "export_process", cwd=tmp_path, env=env)
    assert job["id"] in table.stdout and "success" in table.stdout

    saved = run("jobs", "download", job["id"], "-o", "out.zip", cwd=tmp_path, env=env)
    assert saved.returncode == 0, saved.stderr
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        assert "export.jsonl" in archive.namelist()

    imported = run(
        "jobs", "run", "import_process", "--file", "out.zip", "--wait", cwd=tmp_path, env=env
    )
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout.splitlines()[-1])["data"]["import_file"].startswith("import/")

    refused = run("jobs", "cancel", job["id"], cwd=tmp_path, env=env)
    assert refused.returncode == 1 and "already finished" in refused.stderr
    unknown = run("jobs", "run", "nonsense", cwd=tmp_path, env=env)
    assert unknown.returncode == 1 and "model.job.is_valid.type.app_error" in unknown.stderr
