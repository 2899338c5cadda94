"""Running a node under uvicorn: lifespan, signals and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import uvicorn

from hubbub.app import Hubbub
from hubbub.config import LoadedConfig, split_address
from hubbub.observability.logging import setup_logging
from hubbub.realtime.protocol import MAX_FRAME_BYTES
from hubbub.realtime.transport import HubbubWebSocketProtocol

log = logging.getLogger("hubbub.server")


class _Lifespan:
    """Wraps the node's ASGI app with a lifespan that starts and stops the node."""

    def __init__(self, node: Hubbub) -> None:
        self.node = node

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.node.asgi(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.node.start()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.node.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def serve(config: LoadedConfig) -> int:
    settings = config.settings
    setup_logging(settings.LogSettings)
    node = Hubbub(config)
    host, port = split_address(settings.ServiceSettings.ListenAddress)
    uv_config = uvicorn.Config(
        _Lifespan(node),
        host=host,
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        ws=HubbubWebSocketProtocol,
        ws_max_size=MAX_FRAME_BYTES,
        ws_ping_interval=None,
        ws_ping_timeout=None,
        ws_per_message_deflate=False,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        timeout_graceful_shutdown=settings.ServiceSettings.GracefulShutdownTimeoutSeconds,
        server_header=False,
    )
    server = uvicorn.Server(uv_config)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        drain_tasks: set[asyncio.Task[None]] = set()

        def drain() -> None:
            # Report not-ready and close websockets with 1012 (clients resume elsewhere at
            # once), then let uvicorn finish in-flight requests within the graceful timeout.
            async def run_drain() -> None:
                await node.drain()
                server.should_exit = True

            drain_tasks.add(loop.create_task(run_drain()))

        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGTERM, drain)
            loop.add_signal_handler(signal.SIGINT, drain)
        log.info("hubbub listening", extra={"address": f"{host}:{port}"})
        await server.serve()

    asyncio.run(run())
    return 0 if server.started else 1
