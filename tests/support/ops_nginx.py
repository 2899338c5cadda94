"""nginx in front of one or more hubbub nodes, configured well or badly on purpose.

`ProxyShape` says what the websocket location does: pass `Upgrade`/`Connection` or not, speak
HTTP/1.1 or HTTP/1.0 to the upstream, which `proxy_read_timeout`, whether `X-Forwarded-For` /
`X-Forwarded-Proto` are set. The defaults are the config `hubbub proxy-config nginx` prints;
`hubbub doctor` tests turn one knob at a time and assert on the diagnosis. The plain location
always forwards the client's address (the rate-limiting tests need it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support.nginx import NGINX_PREAMBLE, Nginx, launch_nginx
from tests.support.ports import start_on_free_ports

_CONFIG = (
    NGINX_PREAMBLE.replace("{workers}", "512")
    + """\
    upstream hubbub {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location ~ ^/api/v4/websocket/?$ {{
            proxy_pass http://hubbub;
            proxy_http_version {http_version};
{upgrade}{forwarded}            proxy_set_header Host $host;
            proxy_connect_timeout 2s;
            proxy_read_timeout {read_timeout};
            proxy_send_timeout {read_timeout};
        }}
        location / {{
            proxy_pass http://hubbub;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
        }}
    }}
}}
"""
)

_UPGRADE = """\
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
"""
_FORWARDED = """\
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
"""


@dataclass(frozen=True)
class ProxyShape:
    upgrade_headers: bool = True
    http_version: str = "1.1"
    read_timeout: str = "75s"
    forwarded_headers: bool = True


def start_proxy(upstream_ports: list[int], shape: ProxyShape | None = None) -> Nginx:
    shape = shape or ProxyShape()
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in upstream_ports)

    def config(base: Path, port: int) -> str:
        return _CONFIG.format(
            base=base,
            port=port,
            servers=servers,
            http_version=shape.http_version,
            upgrade=_UPGRADE if shape.upgrade_headers else "",
            forwarded=_FORWARDED if shape.forwarded_headers else "",
            read_timeout=shape.read_timeout,
        )

    return start_on_free_ports(
        lambda: launch_nginx(config, "hubbub-ops-nginx-", f"the proxy config {shape}"), "nginx"
    )
