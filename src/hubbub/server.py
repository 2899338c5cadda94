"""Running a node under uvicorn: lifespan, signals and graceful shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

from hubbub.app import Hubbub, Seams
from hubbub.cluster.versions import REFUSED_EXIT_STATUS, RefusedToJoin
from hubbub.config import LoadedConfig, split_address
from hubbub.http_writes import CoalescingHttpToolsProtocol
from hubbub.observability.logging import setup_logging
from hubbub.realtime.protocol import MAX_FRAME_BYTES
from hubbub.realtime.transport import HubbubWebSocketProtocol
from hubbub.store.migrate import SchemaError

log = logging.getLogger("hubbub.server")


class _Lifespan:
    """Wraps the node's ASGI app with a lifespan that starts and stops the node."""

    def __init__(self, node: Hubbub) -> None:
        self.node = node
        self.refused = False  # start-up refused for the version window or the schema

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.node.asgi(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.node.start()
                except (RefusedToJoin, SchemaError) as exc:
                    self.refused = True
                    log.error(
                        "refusing to start: %s",
                        exc,
                        extra={"reason": str(exc), "exit_status": REFUSED_EXIT_STATUS},
                    )
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                tune_gc()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.node.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Garbage collection for a long-running server process (done here, once per process, not
    in `Hubbub.start`, which tests call many times in one process).

    What start-up built (modules, the app, SQLAlchemy's caches: ~100k objects) lives as long as
    the process; freezing it keeps full collections short: they walked it every time and
    stalled the event loop for 100 ms and more at 1,000 websockets. Young collections every 700
    allocations promote whatever requests happen to hold at that moment, and the promoted
    objects then trigger full passes over every connection's objects; collecting young objects
    every 10,000 allocations promotes far fewer (a young pass over 10,000 objects takes a few
    ms). See docs/benchmarks.md.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)


class DrainingServer(uvicorn.Server):
    """uvicorn whose first SIGTERM/SIGINT drains the node before the usual shutdown.

    Drain: the health check answers non-200 and websockets are closed with 1012 at once; the node
    keeps answering HTTP for a short deregistration delay so the load balancer sees the failing
    health check, then uvicorn finishes in-flight requests within the graceful timeout. A second
    signal exits the ordinary way.
    """

    def __init__(self, config: uvicorn.Config, node: Hubbub) -> None:
        super().__init__(config)
        self.node = node
        self.loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None
        timeout = node.settings.ServiceSettings.GracefulShutdownTimeoutSeconds
        self.deregistration_delay = min(2.0, timeout / 2)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_task is not None or self.loop is None:
            super().handle_exit(sig, frame)
            return
        self.loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        log.info("draining: not ready, closing websockets with 1012")
        await self.node.drain()
        await asyncio.sleep(self.deregistration_delay)
        self.should_exit = True


def serve(config: LoadedConfig, seams: Seams | None = None) -> int:
    settings = config.settings
    setup_logging(settings.LogSettings)
    node = Hubbub(config, seams=seams)
    host, port = split_address(settings.ServiceSettings.ListenAddress)
    lifespan = _Lifespan(node)
    uv_config = uvicorn.Config(
        lifespan,
        host=host,
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        # Each answer's head and body in one write (hubbub.http_writes).
        http=CoalescingHttpToolsProtocol,
        ws=HubbubWebSocketProtocol,
        ws_max_size=MAX_FRAME_BYTES,
        ws_ping_interval=None,
        ws_ping_timeout=None,
        ws_per_message_deflate=False,
        # Client address and scheme from X-Forwarded-* are resolved by hubbub itself, trusted
        # only from ServiceSettings.TrustedProxies (hubbub.api.forwarded), in one place.
        proxy_headers=False,
        # Mattermost keeps idle keep-alive connections ServiceSettings.IdleTimeout (60 s);
        # uvicorn's own default (5 s) makes pooling clients race the close.
        timeout_keep_alive=settings.ServiceSettings.IdleTimeout,
        timeout_graceful_shutdown=settings.ServiceSettings.GracefulShutdownTimeoutSeconds,
        server_header=False,
    )
    server = DrainingServer(uv_config, node)

    reloads: set[asyncio.Task[None]] = set()

    def on_sighup() -> None:
        # SIGHUP reloads config.json, here and on every node (config/live.py).
        task = asyncio.get_running_loop().create_task(node.reload_config())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    async def run() -> None:
        server.loop = asyncio.get_running_loop()
        server.loop.add_signal_handler(signal.SIGHUP, on_sighup)
        log.info("hubbub listening", extra={"address": f"{host}:{port}"})
        await server.serve()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(run())
    if lifespan.refused:
        return REFUSED_EXIT_STATUS
    return 0 if server.started else 1


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when it is installed (`uvicorn[standard]` brings it; uvicorn picks it too), else
    asyncio's loop. `HUBBUB_EVENT_LOOP=asyncio` forces asyncio's (debugging, comparisons)."""
    if os.environ.get("HUBBUB_EVENT_LOOP", "auto") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
