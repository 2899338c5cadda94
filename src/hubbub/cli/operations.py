"""`hubbub config reload` and `hubbub db recycle`: the operator actions of
`POST /api/v4/config/reload` and `POST /api/v4/database/recycle` from the command line.

Both first load this machine's configuration (a config.json that does not validate is refused
with its key path, exit 2). Then:

* with `--url` (and `--token` or `HUBBUB_TOKEN`): the endpoint of that node, which acts on every
  node of its cluster;
* otherwise, in a cluster (`CacheSettings.CacheType=redis`): the message itself goes on the
  cluster bus in Redis, so every node acts (exit 1 when no node is listening);
* otherwise (a single node): send it SIGHUP (reload) or use `--url`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING

from hubbub.config import LoadedConfig

if TYPE_CHECKING:
    from hubbub.cluster.bus import BusMessage

Loader = Callable[[argparse.Namespace], LoadedConfig]


def _call(url: str, token: str, path: str) -> int:
    request = urllib.request.Request(
        url.rstrip("/") + "/api/v4" + path,
        method="POST",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        print(f"hubbub: {path} answered {exc.code}: {exc.read().decode(errors='replace')}")
        return 1
    except OSError as exc:
        print(f"hubbub: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(body, indent=2))
    return 0


async def _publish(config: LoadedConfig, message: BusMessage) -> int:
    """Publishes on the bus the nodes listen to, through the Redis the nodes use (the
    sentinels' master when `CacheSettings.RedisSentinels` is set); the number of listeners."""
    from hubbub.cluster.backends import bus_channel, make_redis

    redis = make_redis(config.settings.CacheSettings)
    try:
        channel = bus_channel(config.settings)
        return int(await redis.publish(channel, message.encode(f"cli:{socket.gethostname()}")))
    finally:
        await redis.aclose()


def _act(args: argparse.Namespace, config: LoadedConfig, path: str, message: BusMessage) -> int:
    token = args.token or os.environ.get("HUBBUB_TOKEN", "")
    if args.url:
        if not token:
            print("hubbub: --url needs --token (or HUBBUB_TOKEN)", file=sys.stderr)
            return 2
        return _call(args.url, token, path)
    if config.settings.CacheSettings.CacheType != "redis":
        print(
            "hubbub: this configuration has no cluster bus (CacheSettings.CacheType is not "
            "redis): send SIGHUP to the hubbub process, or pass --url and --token",
            file=sys.stderr,
        )
        return 2
    try:
        nodes = asyncio.run(_publish(config, message))
    except Exception as exc:
        print(f"hubbub: cannot publish on the cluster bus: {exc}", file=sys.stderr)
        return 1
    print(f"sent to {nodes} node(s) on the cluster bus")
    return 0 if nodes else 1


def cmd_config_reload(args: argparse.Namespace, config: LoadedConfig) -> int:
    from hubbub.config.live import ConfigReload

    print(f"configuration OK ({config.source}), hash {config.hash}")
    return _act(args, config, "/config/reload", ConfigReload("cli"))


def cmd_db_recycle(args: argparse.Namespace, config: LoadedConfig) -> int:
    from hubbub.store.recycle import DatabaseRecycle

    return _act(args, config, "/database/recycle", DatabaseRecycle("cli"))


def add_target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="a node's base URL (acts through its API)")
    parser.add_argument("--token", help="a system admin's token (default: $HUBBUB_TOKEN)")
