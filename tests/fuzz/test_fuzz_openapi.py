"""Property-based fuzzing of every operation hubbub implements, driven by Mattermost's OpenAPI spec.

The operations are the spec's (method, path) pairs that a route of a built app answers (matched
structurally: a spec parameter must land on a route parameter). Schemathesis generates requests
that follow the spec (positive) and that break it (negative); most path ids and body ids are
swapped for ids of real objects so handlers get past the lookup. Every request goes to a real
`hubbub serve` process with a system admin's token.

Properties: no 5xx, ever; every 4xx is an AppError with exactly `Content-Type: application/json`;
every JSON response has exactly that type; the server never logs an unhandled error; and the
admin's session is still good at the end.

`HUBBUB_FUZZ_EXAMPLES` (default 8) sets the examples per operation and generation mode. The run
is derandomized (the same cases every time); `HUBBUB_FUZZ_SEED=<n>` explores other cases.
"""

from __future__ import annotations

import gc
import os
import re
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from hubbub.app import Hubbub
from hubbub.config import load_config
from tests.support.postgres import fresh_postgres_database
from tests.support.server import ServerProcess, start_server

SPEC = Path("/work/shared/mattermost-openapi/openapi.yaml")
EXAMPLES = int(os.environ.get("HUBBUB_FUZZ_EXAMPLES", "8"))
SEED = os.environ.get("HUBBUB_FUZZ_SEED")  # unset: derandomized, the same cases every run
TIMEOUT = 10
PASSWORD = "fuzz-password-1"
APP_ERROR_KEYS = {"id", "message", "detailed_error", "request_id", "status_code"}

# Operations that would end the admin's own session or every session: the run needs its token.
EXCLUDED = {
    ("POST", "/api/v4/users/logout"),
    ("POST", "/api/v4/users/sessions/revoke/all"),
}

DELETES_SHARED = {
    "/api/v4/teams/{team_id}",
    "/api/v4/channels/{channel_id}",
    "/api/v4/users/{user_id}",
}


# --- Which operations hubbub implements ----------------------------------------------------------


def _starlette(app: Any) -> Starlette:
    while not isinstance(app, Starlette):
        app = app.app
    return app


def implemented_routes(tmp: Path) -> list[tuple[str, re.Pattern[str], set[str]]]:
    """(mount prefix, path regex, methods) for every HTTP route of a freshly built node."""
    env = {
        "MM_SQLSETTINGS_DATASOURCE": str(tmp / "routes.db"),
        "MM_FILESETTINGS_DIRECTORY": str(tmp / "files"),
    }
    app = _starlette(Hubbub(load_config(None, environ=env)).asgi)
    found = []
    for mount in app.routes:
        if isinstance(mount, Mount):
            for route in mount.routes:
                if isinstance(route, Route) and route.methods:
                    found.append((mount.path, route.path_regex, set(route.methods)))
    return found


_PARAM = re.compile(r"\{([^}]+)\}")


def is_implemented(
    method: str, path: str, routes: list[tuple[str, re.Pattern[str], set[str]]]
) -> bool:
    """True if a route takes this spec path with each spec parameter in a route parameter."""
    names = _PARAM.findall(path)
    sentinels = {f"zzsentinel{i}zz" for i in range(len(names))}
    concrete = path
    for i, name in enumerate(names):
        concrete = concrete.replace("{" + name + "}", f"zzsentinel{i}zz", 1)
    for prefix, regex, methods in routes:
        if method not in methods or not concrete.startswith(prefix + "/"):
            continue
        match = regex.match(concrete[len(prefix) :])
        if match is None:
            continue
        captured = set(match.groupdict().values())
        if captured == sentinels:
            return True
    return False


# --- A world of real objects to aim at -----------------------------------------------------------


@dataclass
class World:
    base: str
    admin_token: str
    ids: dict[str, list[str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def call(self, method: str, path: str, expect: int, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        resp = requests.request(
            method, f"{self.base}/api/v4{path}", headers=headers, timeout=TIMEOUT, **kw
        )
        assert resp.status_code == expect, f"setup {method} {path}: {resp.status_code} {resp.text}"
        return resp.json()


def build_world(server: ServerProcess) -> World:
    base = server.url
    first = requests.post(
        f"{base}/api/v4/users",
        json={"email": "admin@example.com", "username": "admin", "password": PASSWORD},
        timeout=TIMEOUT,
    )
    assert first.status_code == 201, first.text
    login = requests.post(
        f"{base}/api/v4/users/login",
        json={"login_id": "admin", "password": PASSWORD},
        timeout=TIMEOUT,
    )
    assert login.status_code == 200, login.text
    world = World(base=base, admin_token=login.headers["Token"])
    admin_id = first.json()["id"]

    victim = world.call(
        "POST",
        "/users",
        201,
        json={"email": "victim@example.com", "username": "victim", "password": PASSWORD},
    )
    team = world.call(
        "POST", "/teams", 201, json={"name": "fuzz", "display_name": "Fuzz", "type": "O"}
    )
    world.call(
        "POST",
        f"/teams/{team['id']}/members",
        201,
        json={"team_id": team["id"], "user_id": victim["id"]},
    )
    channel = world.call(
        "POST",
        "/channels",
        201,
        json={"team_id": team["id"], "name": "fuzz-chan", "display_name": "Fuzz", "type": "O"},
    )
    world.call("POST", f"/channels/{channel['id']}/members", 201, json={"user_id": victim["id"]})
    uploaded = world.call(
        "POST",
        "/files",
        201,
        data={"channel_id": channel["id"]},
        files={"files": ("fuzz.txt", b"fuzz file", "text/plain")},
    )
    file_id = uploaded["file_infos"][0]["id"]
    posts = [
        world.call(
            "POST",
            "/posts",
            201,
            json={"channel_id": channel["id"], "message": f"post {i}", "file_ids": []},
        )
        for i in range(6)
    ]
    with_file = world.call(
        "POST",
        "/posts",
        201,
        json={"channel_id": channel["id"], "message": "file", "file_ids": [file_id]},
    )
    world.call(
        "POST",
        "/reactions",
        201,
        json={"user_id": admin_id, "post_id": posts[0]["id"], "emoji_name": "smile"},
    )
    token = world.call("POST", f"/users/{victim['id']}/tokens", 201, json={"description": "fuzz"})
    bot = world.call("POST", "/bots", 201, json={"username": "fuzzbot", "display_name": "Bot"})

    world.ids = {
        # The victim, never the admin: some operations deactivate or demote their user.
        "user_id": [victim["id"]],
        "team_id": [team["id"]],
        "channel_id": [channel["id"]],
        "post_id": [p["id"] for p in posts] + [with_file["id"]],
        "root_id": [posts[1]["id"]],
        "file_id": [file_id],
        "token_id": [token["id"]],
        "bot_user_id": [bot["user_id"]],
        "other_user_id": [admin_id],
    }
    world.names = {
        "username": "victim",
        "email": "victim@example.com",
        "name": "fuzz",
        "team_name": "fuzz",
        "channel_name": "fuzz-chan",
        "emoji_name": "smile",
    }
    return world


# --- Checks --------------------------------------------------------------------------------------


def check_response(response: requests.Response) -> list[str]:
    problems = []
    status = response.status_code
    ctype = response.headers.get("content-type", "")
    if status >= 500:
        problems.append(f"server error {status}: {response.content[:300]!r}")
    if ctype.startswith("application/json") and ctype != "application/json":
        problems.append(f"JSON with Content-Type {ctype!r}")
    if 400 <= status < 500:
        if ctype != "application/json":
            problems.append(f"{status} with Content-Type {ctype!r}: {response.content[:200]!r}")
        else:
            try:
                body = response.json()
            except ValueError:
                body = None
            if not isinstance(body, dict) or not set(body) >= APP_ERROR_KEYS:
                problems.append(f"{status} body is not an AppError: {response.content[:200]!r}")
            elif body["status_code"] != status:
                problems.append(f"{status} AppError says status_code {body['status_code']}")
    return problems


# --- The run -------------------------------------------------------------------------------------


@dataclass
class Tally:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    by_status: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: dict[str, list[str]] = field(default_factory=dict)


def inject(case: schemathesis.Case, world: World, choose: Callable[[int], int]) -> None:
    """Swaps most generated ids for real ones; the rest stay as generated."""
    for name in list(case.path_parameters):
        if choose(4) == 0:
            continue
        if name in world.ids:
            pool = world.ids[name]
            case.path_parameters[name] = pool[choose(len(pool))]
        elif name in world.names:
            case.path_parameters[name] = world.names[name]
    if isinstance(case.body, dict) and choose(4) != 0:
        for key in list(case.body):
            if key in world.ids and isinstance(case.body[key], str):
                pool = world.ids[key]
                case.body[key] = pool[choose(len(pool))]


def fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    world: World,
    session: requests.Session,
    tally: Tally,
    label: str,
) -> None:
    strategy = operation.as_strategy(generation_mode=mode)
    auth = {"Authorization": f"Bearer {world.admin_token}"}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=SEED is None,
        database=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=hypothesis.Verbosity.quiet,
    )
    @given(case=strategy, data=st.data())
    def run(case: schemathesis.Case, data: st.DataObject) -> None:
        inject(case, world, lambda n: data.draw(st.integers(0, n - 1)))
        # Sent by hand, not with `case.call`: negative generation also drops the credentials at
        # send time, and requests without them are covered in tests/api/test_bad_input.py.
        kwargs = case.as_transport_kwargs(base_url=world.base, headers=auth)
        kwargs["headers"] = {**kwargs.get("headers", {}), **auth}
        response = session.request(**kwargs, timeout=TIMEOUT, allow_redirects=False)
        tally.requests += 1
        tally.operations[label] += 1
        tally.statuses[response.status_code] += 1
        tally.by_status[(label, response.status_code)] += 1
        problems = check_response(response)
        if problems:
            curl = case.as_curl_command(headers=auth, base_url=world.base)
            tally.failures.setdefault(label, []).extend(f"{p}\n    {curl}" for p in problems)

    if SEED is not None:
        run = hypothesis.seed(int(SEED))(run)
    run()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzz_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    env = {
        "MM_FILESETTINGS_DIRECTORY": str(workdir / "files"),
        "MM_SERVICESETTINGS_ENABLEUSERACCESSTOKENS": "true",
        "MM_SERVICESETTINGS_ENABLEBOTACCOUNTCREATION": "true",
        # Off, the MFA endpoints answer 501 as Mattermost's do: on, they are fuzzed for real.
        "MM_SERVICESETTINGS_ENABLEMULTIFACTORAUTHENTICATION": "true",
        "MM_LOGSETTINGS_CONSOLELEVEL": "WARN",
    }
    if request.param == "sqlite":
        env["MM_SQLSETTINGS_DATASOURCE"] = str(workdir / "hubbub.db")
    else:
        env["MM_SQLSETTINGS_DRIVERNAME"] = "postgres"
        env["MM_SQLSETTINGS_DATASOURCE"] = fresh_postgres_database(
            request.getfixturevalue("postgres")
        )
    with warnings.catch_warnings():
        # start_server leaves its log handle to the collector (see tests/compat/conftest.py).
        warnings.simplefilter("ignore", ResourceWarning)
        server = start_server(workdir, env)
        gc.collect()
    try:
        yield server
    finally:
        assert server.stop() == 0, server.log()[-4000:]


def load_schema() -> Any:
    # The merged spec loads as is (425 operations, none broken), so no preprocessing.
    return schemathesis.openapi.from_path(SPEC)


def test_fuzz_implemented_operations(
    fuzz_server: ServerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    routes = implemented_routes(tmp_path)
    schema = load_schema()
    operations = []
    for result in schema.get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        if key not in EXCLUDED and is_implemented(key[0], key[1], routes):
            operations.append(operation)
    # Deletions last, and of those the ones that archive or deactivate a shared object at the
    # very end, so that the shared objects live as long as possible.
    operations.sort(
        key=lambda op: (
            op.method.upper() == "DELETE",
            op.method.upper() == "DELETE" and op.path in DELETES_SHARED,
            op.path,
            op.method,
        )
    )

    world = build_world(fuzz_server)
    tally = Tally()
    with requests.Session() as session:
        for operation in operations:
            label = f"{operation.method.upper()} {operation.path}"
            t0 = time.monotonic()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                fuzz_operation(operation, mode, world, session, tally, label)
            tally.seconds[label] += time.monotonic() - t0

    elapsed = time.monotonic() - started
    me = requests.get(
        f"{world.base}/api/v4/users/me",
        headers={"Authorization": f"Bearer {world.admin_token}"},
        timeout=TIMEOUT,
    )
    succeeded = {label for (label, status), _ in tally.by_status.items() if status < 300}
    with capsys.disabled():
        print(
            f"\nfuzz: {len(operations)} operations of {len(list(schema.get_all_operations()))} "
            f"in the spec ({len(succeeded)} answered 2xx at least once), {tally.requests} "
            f"requests in {elapsed:.1f}s; statuses {dict(sorted(tally.statuses.items()))}"
        )
        if os.environ.get("HUBBUB_FUZZ_PROFILE"):
            for label, secs in sorted(tally.seconds.items(), key=lambda kv: -kv[1]):
                codes = {c: n for (lb, c), n in sorted(tally.by_status.items()) if lb == label}
                print(f"  {secs:5.2f}s {label} {codes}")
    log = fuzz_server.log()
    report = "\n".join(
        f"{label}:\n  " + "\n  ".join(sorted(set(problems))[:5])
        for label, problems in sorted(tally.failures.items())
    )
    assert not tally.failures, f"{len(tally.failures)} operations misbehaved:\n{report}"
    assert "unhandled error" not in log and "Traceback" not in log, log[-6000:]
    assert me.status_code == 200, "the admin's session did not survive the run"
    # Guard against a silently empty run (a spec or routing change that matches nothing).
    assert len(operations) >= 60
    assert all(tally.operations[f"{op.method.upper()} {op.path}"] > 0 for op in operations)
