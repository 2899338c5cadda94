"""Real Mattermost client libraries, driven from tests: mattermostdriver's websocket loop in a
thread (`DriverSocket`), an mmpy-bot that answers "ping" with "pong" (`BOT_SCRIPT`, run with
`MMPY_PYTHON` from the venv `make realtime-deps` makes beside the test venv), and
@mattermost/client's `WebSocketClient` under Node (`NodeClient`, tests/realtime/node)."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mattermostdriver import Driver
from mattermostdriver.websocket import Websocket

from tests.support.rest import Account, Org, Rest
from tests.support.wait import GiveUp, wait_until

NODE_DIR = Path(__file__).resolve().parents[1] / "realtime" / "node"
# The Makefile's $(VENV)/mmpy-bot: beside the packages of the venv running the tests.
MMPY_PYTHON = Path(sys.prefix) / "mmpy-bot" / "bin" / "python"


class ClosingWebsocket(Websocket):
    """The driver's Websocket, remembering its connection so the test can close it."""

    connection: Any = None

    async def _authenticate_websocket(self, websocket: Any, event_handler: Any) -> Any:
        self.connection = websocket
        return await super()._authenticate_websocket(websocket, event_handler)


class DriverSocket:
    """The driver's websocket loop in a thread, its messages in a queue; stopped on exit."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.received: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.failure: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def handler(message: str) -> None:
            self.received.put(json.loads(message))

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self.driver.init_websocket(handler, websocket_cls=ClosingWebsocket)
            # mattermostdriver leaves its socket open when its loop ends: close it here.
            if self.driver.websocket.connection is not None:
                loop.run_until_complete(self.driver.websocket.connection.close())
        except BaseException as exc:
            self.failure.append(exc)
        finally:
            loop.close()

    def wait(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> dict[str, Any]:
        return drain_until(self.received, self.seen, predicate, timeout, what)

    def wait_post(self, post_id: str, timeout: float = 10) -> dict[str, Any]:
        def is_post(m: dict[str, Any]) -> bool:
            return m.get("event") == "posted" and json.loads(m["data"]["post"])["id"] == post_id

        return self.wait(is_post, timeout, f"posted {post_id} at the driver")

    def __enter__(self) -> DriverSocket:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.driver.disconnect()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the driver's websocket loop did not stop"
        assert not self.failure, self.failure

    def events(self) -> list[dict[str, Any]]:
        return [m for m in self.seen if "event" in m]


def drain_until(
    source: queue.Queue[dict[str, Any]],
    seen: list[dict[str, Any]],
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float,
    what: str,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {what} within {timeout}s; got {seen}")
        try:
            message = source.get(timeout=left)
        except queue.Empty:
            continue
        seen.append(message)
        if predicate(message):
            return message


BOT_SCRIPT = """
from mmpy_bot import Bot, Message, Plugin, Settings, listen_to


class Pong(Plugin):
    @listen_to("^ping$")
    async def pong(self, message: Message):
        self.driver.reply_to(message, "pong")


Bot(settings=Settings(), plugins=[Pong()]).run()
"""


def bot_account(rest: Rest, org: Org) -> tuple[str, str]:
    bot = rest.call(
        "POST",
        "/bots",
        org.admin.token,
        {"username": f"pongbot{os.getpid()}", "display_name": "Pong", "description": "test"},
        201,
    )
    token = rest.call(
        "POST", f"/users/{bot['user_id']}/tokens", org.admin.token, {"description": "bot"}, 201
    )
    account = Account(id=bot["user_id"], username=bot["username"], token=token["token"])
    rest.join_team(org.admin, org.team["id"], account)
    rest.join_channel(org.admin, org.public["id"], account)
    return account.id, account.token


class NodeClient:
    """The ws-client.js process and the JSON lines it prints."""

    def __init__(self, ws_url: str, token: str, **env: str) -> None:
        node_bin = shutil.which("node")
        if node_bin is None:
            pytest.fail("node not found: install Debian's nodejs and npm (make services does)")
        if not (NODE_DIR / "node_modules" / "@mattermost" / "client").is_dir():
            pytest.fail(f"{NODE_DIR}/node_modules is missing: run `make realtime-deps` (npm ci)")
        self.lines: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [node_bin, str(NODE_DIR / "ws-client.js")],
            cwd=NODE_DIR,
            env={"PATH": os.environ.get("PATH", ""), "WS_URL": ws_url, "WS_TOKEN": token, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(json.loads(line))

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [line for line in self.lines if line["type"] == kind]

    def events(self) -> list[dict[str, Any]]:
        return self.of("event")

    def wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        def ok() -> bool:
            if self.proc.poll() is not None:
                raise GiveUp(
                    f"the node client exited with {self.proc.returncode}: {self.stderr[-20:]}"
                )
            return check()

        try:
            wait_until(ok, timeout, what)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; client output: {self.lines[-30:]}") from None

    def command(self, **cmd: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.command(cmd="quit")
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
