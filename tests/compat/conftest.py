"""A real `hubbub serve` process per database kind, shared by the tests of one module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import fresh_postgres_database
from tests.support.server import ServerProcess, start_server

# What a real deployment that serves bots turns on.
SERVER_ENV = {
    "MM_SERVICESETTINGS_ENABLEUSERACCESSTOKENS": "true",
    "MM_SERVICESETTINGS_ENABLEBOTACCOUNTCREATION": "true",
    "MM_LOGSETTINGS_CONSOLELEVEL": "INFO",
}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def hubbub_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp(f"compat-{request.param}")
    env = {**SERVER_ENV, "MM_FILESETTINGS_DIRECTORY": str(workdir / "files")}
    if request.param == "sqlite":
        env["MM_SQLSETTINGS_DATASOURCE"] = str(workdir / "hubbub.db")
    else:
        instance = request.getfixturevalue("postgres")
        env["MM_SQLSETTINGS_DRIVERNAME"] = "postgres"
        env["MM_SQLSETTINGS_DATASOURCE"] = fresh_postgres_database(instance)
    server = start_server(workdir, env)
    try:
        yield server
    finally:
        code = server.stop()
        # A clean SIGTERM shutdown; anything else means the node crashed or hung.
        assert code == 0, f"hubbub exited with {code}:\n{server.log()[-4000:]}"
