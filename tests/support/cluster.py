"""A cluster rig for tests: one PostgreSQL database, one Redis, N `hubbub serve` nodes, and an
nginx in front of all of them.

Every node runs with `ClusterSettings.Enable`, the same PostgreSQL database, the same Redis
(`CacheSettings.CacheType=redis`), the same file directory and its own metrics port. Node `i` is
named `node<i>` (`ClusterSettings.OverrideHostname`), which is what its `hello` reports as
`server_hostname` and what the connection registry in Redis records for each connection. A node
keeps its HTTP and metrics ports across restarts, so nginx's upstream list never changes, and it
appends every life to one log file, so `close_lines()` sees the closes of all of them.

Ports are picked free just before the nodes start; a node that exits because one of its ports
was taken in the meantime ("Address already in use") is started again on fresh ones, a few times,
before nginx is configured with the final list.

`HUBBUB_KEEP_CLUSTER=1` keeps the node logs (`<base>/node<i>/hubbub.log`) after the run.

Fault injection is real: `kill(i)` is SIGKILL, `stop(i)` is SIGTERM (drain, then exit),
`restart(i, env)` starts the node again (optionally with extra environment, or as
`module="tests.support.faulty_node"`, a node with a fault built in), and
`cluster.redis.restart()` is a Redis that lost its data. Processes are stopped by their PID only.

nginx: an `upstream` block with every node (`max_fails=1 fail_timeout=2s`), a websocket location
(HTTP/1.1, `Upgrade`/`Connection` headers) and a plain HTTP location with
`proxy_next_upstream error timeout http_502 http_503`. As nginx does by default, a POST that
already reached a node that then died is not retried on another one: the client sees a 502 and
must retry itself (with the same `pending_post_id`). Idle upstream connections are closed after
4 s, as in deploy/nginx.conf, well before a node's own keep-alive timeout, so nginx never sends a
POST on a connection the node is closing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tests.support.nginx import NGINX_PREAMBLE, Nginx, launch_nginx
from tests.support.node import Node
from tests.support.ports import ATTEMPTS, PortsKeptTaken, PortTaken, free_port, start_on_free_ports
from tests.support.postgres import PostgresInstance
from tests.support.redis import RedisInstance, start_redis
from tests.support.sentinel import SentinelSet
from tests.support.server import spawn_server
from tests.support.wait import wait_until

CLUSTER_NGINX_CONFIG = (
    NGINX_PREAMBLE
    + """\
    # Each request: when it ended, its answer and time, the nodes tried; and the chaos writers'
    # X-Chaos-Write header (tests/support/chaos.py measures each write here, at the proxy).
    log_format upstreams '$msec "$request" $status $request_time '
                         'upstream $upstream_addr $upstream_status $upstream_response_time '
                         'write $http_x_chaos_write';
    upstream hubbub {{
{servers}
        keepalive 32;
        keepalive_timeout 4s;
    }}
    server {{
        listen 127.0.0.1:{port};
        access_log {base}/access.log upstreams;
        location ~ ^/api/v4/websocket/?$ {{
            proxy_pass http://hubbub;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 1s;
            proxy_read_timeout {read_timeout};
            proxy_send_timeout {read_timeout};
            proxy_next_upstream error timeout http_502 http_503;
        }}
        location / {{
            proxy_pass http://hubbub;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 1s;
            proxy_read_timeout 30s;
            proxy_next_upstream error timeout http_502 http_503;
            client_max_body_size 100m;
        }}
    }}
}}
"""
)


def start_cluster_nginx(
    upstream_ports: list[int], read_timeout: str = "120s", worker_connections: int = 1024
) -> Nginx:
    """nginx on a free port in front of every port of `upstream_ports`; a proxied websocket
    takes two of its `worker_connections` (the client's and the upstream's)."""
    servers = "\n".join(
        f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in upstream_ports
    )

    def config(base: Path, port: int) -> str:
        return CLUSTER_NGINX_CONFIG.format(
            base=base,
            port=port,
            servers=servers,
            read_timeout=read_timeout,
            workers=worker_connections,
        )

    return start_on_free_ports(
        lambda: launch_nginx(config, "hubbub-cluster-nginx-", "the cluster config"), "nginx"
    )


def ping_status(url: str, server_status: bool = False, timeout: float = 2.0) -> tuple[int, Any]:
    """`GET /api/v4/system/ping` as (HTTP status, parsed body); (0, error) if nothing answered."""
    target = url + "/api/v4/system/ping" + ("?get_server_status=true" if server_status else "")
    try:
        with urllib.request.urlopen(target, timeout=timeout) as resp:
            return int(resp.status), orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        with contextlib.suppress(orjson.JSONDecodeError):
            return int(exc.code), orjson.loads(body)
        return int(exc.code), body.decode(errors="replace")
    except OSError as exc:
        return 0, str(exc)


@dataclass
class ClusterNode(Node):
    """One node of the cluster; keeps its ports and log file across restarts."""

    index: int = 0
    name: str = ""
    log_path: Path = field(default_factory=Path)
    lives: int = 0
    # The interpreter that runs the node: another release's virtualenv in the upgrade test.
    python: str = sys.executable

    @property
    def alive(self) -> bool:
        return self.server.proc.poll() is None

    def _spawn(
        self, extra_env: Mapping[str, str] | None = None, module: str = "hubbub.cli.main"
    ) -> None:
        env = {**self.env, **(extra_env or {})}
        self.server = spawn_server(
            self.server.workdir, env, self.log_path, self.port, module, python=self.python
        )
        self.lives += 1

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Waits for a ping answered with 200; raises `PortTaken` (or `ProcessExited`) at
        once if the node exits first."""
        server = self.server

        def ready() -> bool:
            if server.proc.poll() is not None:
                raise server.exited(self.name)
            status, _ = ping_status(self.url, timeout=1)
            return status == 200 and server.proc.poll() is None

        wait_until(ready, timeout, f"{self.name} on port {self.port} to answer ping with 200")

    def move_to_free_ports(self) -> None:
        """Starts the node again (it exited) on freshly picked HTTP and metrics ports."""
        port, self.metrics_port = free_port(), free_port()
        self.env["MM_SERVICESETTINGS_LISTENADDRESS"] = f"127.0.0.1:{port}"
        self.env["MM_METRICSSETTINGS_LISTENADDRESS"] = f"127.0.0.1:{self.metrics_port}"
        self.server.port = port
        self._spawn()

    def wait_started(self) -> None:
        """Waits for a node that was just started on picked ports, moving it to other ones
        when one was taken before it bound it."""
        clashes: list[PortTaken] = []
        while True:
            try:
                self.wait_ready()
                return
            except PortTaken as exc:
                clashes.append(exc)
                if len(clashes) >= ATTEMPTS:
                    raise PortsKeptTaken(self.name, clashes) from exc
                self.move_to_free_ports()

    def start(
        self,
        extra_env: Mapping[str, str] | None = None,
        wait: bool = True,
        module: str = "hubbub.cli.main",
    ) -> None:
        """`module` runs the node (`python -m module serve`): tests.support.faulty_node for a
        node with a fault built in."""
        if self.alive:
            raise RuntimeError(f"{self.name} is already running")
        # A killed node's port may still be held by connections in TIME_WAIT; uvicorn binds
        # with SO_REUSEADDR, so it can start at once.
        self._spawn(extra_env, module)
        if wait:
            self.wait_ready()

    def kill(self) -> None:
        """SIGKILL: the process dies at once, with no drain and no cleanup."""
        if self.alive:
            self.server.proc.send_signal(signal.SIGKILL)
        self.server.proc.wait(10)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM: drains (websockets closed with 1012) and exits."""
        return self.server.stop(signal.SIGTERM, timeout)

    def restart(
        self,
        extra_env: Mapping[str, str] | None = None,
        *,
        clean: bool = True,
        module: str = "hubbub.cli.main",
    ) -> None:
        if self.alive:
            if clean:
                self.stop()
            else:
                self.kill()
        self.start(extra_env, module=module)

    def health(self) -> tuple[int, Any]:
        """`/api/v4/system/ping?get_server_status=true` as (status, body)."""
        return ping_status(self.url, server_status=True)


@dataclass
class Cluster:
    nodes: list[ClusterNode]
    redis: RedisInstance
    database_url: str
    files_dir: Path
    base: Path
    name: str
    nginx: Nginx | None = None
    postgres: PostgresInstance | None = None
    owns_redis: bool = True
    owns_postgres: bool = False

    def __getitem__(self, index: int) -> ClusterNode:
        return self.nodes[index]

    def __iter__(self) -> Iterator[ClusterNode]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def nginx_port(self) -> int:
        if self.nginx is None:
            raise RuntimeError("this cluster has no nginx")
        return self.nginx.port

    @property
    def nginx_url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def redis_prefix(self) -> str:
        """The key prefix of this cluster's realtime data in Redis."""
        return f"hubbub:{self.name}:"

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    def stop(self, index: int) -> None:
        self.nodes[index].stop()

    def start(self, index: int, extra_env: Mapping[str, str] | None = None) -> None:
        self.nodes[index].start(extra_env)

    def restart(
        self, index: int, extra_env: Mapping[str, str] | None = None, *, clean: bool = True
    ) -> None:
        self.nodes[index].restart(extra_env, clean=clean)

    def alive(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.alive]

    def ensure_all_running(self) -> None:
        """Starts every node that is down (after a test killed one) and waits for all."""
        down = [n for n in self.nodes if not n.alive]
        for node in down:
            node._spawn()
        for node in self.nodes:
            node.wait_ready()

    def node_of_connection(self, connection_id: str) -> str:
        """The node name that opened (or last resumed) `connection_id`, from Redis."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.redis.port)
        try:
            value = client.hget(f"{self.redis_prefix}conn:{connection_id}", "n")
        finally:
            client.close()
        return value.decode() if isinstance(value, bytes) else ""

    def node_named(self, name: str) -> ClusterNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def close(self) -> None:
        errors: list[BaseException] = []
        if self.nginx is not None:
            with _collect(errors):
                self.nginx.stop()
        # SIGTERM to every node first, so their drains run in parallel.
        for node in self.nodes:
            if node.alive:
                node.server.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            with _collect(errors):
                try:
                    node.server.proc.wait(15)
                except subprocess.TimeoutExpired:
                    node.server.proc.kill()
                    node.server.proc.wait(5)
        if self.owns_redis:
            with _collect(errors):
                self.redis.stop()
        if self.owns_postgres and self.postgres is not None:
            with _collect(errors):
                self.postgres.stop()
        if os.environ.get("HUBBUB_KEEP_CLUSTER"):
            print(f"\ncluster logs kept in {self.base}/node*/hubbub.log")
        else:
            shutil.rmtree(self.base, ignore_errors=True)
        if errors:
            raise errors[0]


@contextlib.contextmanager
def _collect(errors: list[BaseException]) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        errors.append(exc)


def node_env(
    *,
    name: str,
    cluster_name: str,
    database_url: str,
    redis_port: int,
    files_dir: Path,
    metrics_port: int,
    port: int,
) -> dict[str, str]:
    return {
        "MM_SERVICESETTINGS_LISTENADDRESS": f"127.0.0.1:{port}",
        "MM_CLUSTERSETTINGS_ENABLE": "true",
        "MM_CLUSTERSETTINGS_CLUSTERNAME": cluster_name,
        "MM_CLUSTERSETTINGS_OVERRIDEHOSTNAME": name,
        "MM_SQLSETTINGS_DRIVERNAME": "postgres",
        "MM_SQLSETTINGS_DATASOURCE": database_url,
        "MM_CACHESETTINGS_CACHETYPE": "redis",
        "MM_CACHESETTINGS_REDISADDRESS": f"127.0.0.1:{redis_port}",
        "MM_FILESETTINGS_DIRECTORY": str(files_dir),
        "MM_SERVICESETTINGS_ENABLEUSERACCESSTOKENS": "true",
        "MM_SERVICESETTINGS_ENABLEBOTACCOUNTCREATION": "true",
        "MM_METRICSSETTINGS_ENABLE": "true",
        "MM_METRICSSETTINGS_LISTENADDRESS": f"127.0.0.1:{metrics_port}",
        "MM_LOGSETTINGS_CONSOLELEVEL": "INFO",
        "MM_LOGSETTINGS_CONSOLEJSON": "true",
    }


def start_cluster(
    database_url: str | None = None,
    *,
    nodes: int = 3,
    name: str | None = None,
    settings: Mapping[str, str] | None = None,
    postgres: PostgresInstance | None = None,
    redis: RedisInstance | None = None,
    sentinels: SentinelSet | None = None,
    with_nginx: bool = True,
    config_json: Mapping[str, Mapping[str, Any]] | None = None,
    python: str = sys.executable,
    nginx_worker_connections: int = 1024,
) -> Cluster:
    """Starts Redis (unless given), `nodes` nodes on `database_url` and nginx in front.

    Without `database_url`, a private PostgreSQL is started (or `postgres` is used) and its
    `postgres` database is the cluster's; the first node to start migrates it while the others
    wait on the migration lock. `settings` are extra MM_* variables for every node. With
    `sentinels`, the nodes find Redis through them (`CacheSettings.RedisSentinels`) and
    `cluster.redis` is the first master; the caller stops the sentinel set.
    `config_json` is written as each node's config.json; the settings it holds are not given as
    MM_* variables (which would win over the file), so a test can change them in the file and
    reload (`write_config`). `python` runs the nodes (`tests/support/releases.py`: an older
    release in its own virtualenv). `nginx_worker_connections` is nginx's `worker_connections`
    (1024: room for about 500 websockets).
    """
    from tests.support.postgres import start_postgres

    base = Path(tempfile.mkdtemp(prefix="hubbub-cluster-"))
    cluster_name = name or f"c{os.getpid()}x{free_port()}"
    owns_postgres = False
    if database_url is None:
        if postgres is None:
            postgres = start_postgres()
            owns_postgres = True
        database_url = postgres.url
    if sentinels is not None:
        redis = sentinels.master
        settings = {
            **(settings or {}),
            "MM_CACHESETTINGS_REDISSENTINELS": sentinels.spec,
            "MM_CACHESETTINGS_REDISMASTERNAME": sentinels.master_name,
        }
    owns_redis = redis is None
    redis_instance = redis or start_redis()
    files_dir = base / "files"
    files_dir.mkdir()
    members: list[ClusterNode] = []
    cluster = Cluster(
        nodes=members,
        redis=redis_instance,
        database_url=database_url,
        files_dir=files_dir,
        base=base,
        name=cluster_name,
        postgres=postgres,
        owns_redis=owns_redis,
        owns_postgres=owns_postgres,
    )
    try:
        for i in range(nodes):
            port, metrics_port = free_port(), free_port()
            workdir = base / f"node{i}"
            workdir.mkdir()
            env = node_env(
                name=f"node{i}",
                cluster_name=cluster_name,
                database_url=database_url,
                redis_port=redis_instance.port,
                files_dir=files_dir,
                metrics_port=metrics_port,
                port=port,
            )
            env.update(settings or {})
            if config_json is not None:
                write_config(workdir, config_json)
                for section, values in config_json.items():
                    for key in values:
                        env.pop(f"MM_{section}_{key}".upper(), None)
            log_path = workdir / "hubbub.log"
            node = ClusterNode(
                server=spawn_server(workdir, env, log_path, port, python=python),
                metrics_port=metrics_port,
                env=env,
                index=i,
                name=f"node{i}",
                log_path=log_path,
                lives=1,
                python=python,
            )
            members.append(node)
        for node in members:
            node.wait_started()
        if with_nginx:
            cluster.nginx = start_cluster_nginx(
                [n.port for n in members], worker_connections=nginx_worker_connections
            )
    except BaseException:
        cluster.close()
        raise
    return cluster


def write_config(workdir: Path, config: Mapping[str, Mapping[str, Any]]) -> None:
    """Writes `config` as the config.json of the node running in `workdir` (atomically: a node
    reloading at that moment reads the old file or the new one, never half of it)."""
    tmp = workdir / "config.json.tmp"
    tmp.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
    tmp.replace(workdir / "config.json")
