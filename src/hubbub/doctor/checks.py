"""The doctor's judgement: what the probes observed, turned into findings in plain words, each
with what it means for users and the fix. Pure functions (no I/O), unit tested.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "warn", "fail", "skip"]

# Mattermost's high-availability guide: `nofile 65536` for the server's user, and these kernel
# settings on every node (deploy/sysctl.d/90-hubbub.conf explains each one).
NOFILE_GUIDE = 65536
SOMAXCONN_GUIDE = 4096
SYN_BACKLOG_GUIDE = 8192
PORT_RANGE_GUIDE = (1025, 65000)
FIN_TIMEOUT_GUIDE = 30
SKEW_WARN_MS = 250.0
SKEW_FAIL_MS = 1000.0


@dataclass
class Finding:
    check: str
    status: Status
    summary: str
    explanation: str = ""
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# The proxy path


def upgrade(status: int, reason: str, seen: str, error: str) -> Finding:
    """The websocket handshake through the proxy; `seen` is what the node said arrived when it
    refused (`X-Hubbub-Upgrade-Seen`)."""
    name = "proxy: websocket upgrade"
    if status == 101:
        return Finding(name, "ok", "the websocket upgrade through the proxy answers 101")
    if status == 0:
        return Finding(
            name,
            "fail",
            f"no answer to the websocket handshake ({error})",
            "Clients cannot open their live connection at all.",
            "Check that the proxy listens on the site URL's address and port.",
        )
    parts = _seen(seen)
    if parts:
        if not parts.get("upgrade"):
            return Finding(
                name,
                "fail",
                f"the proxy does not pass the Upgrade header: hubbub got a plain request "
                f"({seen}) and refused it with {status}",
                "Without Upgrade and Connection headers the proxy turns the websocket handshake "
                "into an ordinary request. Clients then fall back to polling or show channels "
                "that never update, and reconnect in a loop.",
                "nginx, in the websocket location: proxy_http_version 1.1; "
                "proxy_set_header Upgrade $http_upgrade; "
                "proxy_set_header Connection $connection_upgrade; (with the map from "
                "`hubbub proxy-config nginx`).",
                {"seen": seen, "status": status},
            )
        if "upgrade" not in parts.get("connection", "").lower():
            return Finding(
                name,
                "fail",
                f"the proxy passes Upgrade but not 'Connection: upgrade' ({seen})",
                "The node sees an upgrade it may not perform, so it refuses the websocket.",
                "nginx: proxy_set_header Connection $connection_upgrade; "
                "(map $http_upgrade $connection_upgrade { default upgrade; '' close; }).",
                {"seen": seen, "status": status},
            )
    if status in {502, 503, 504}:
        return Finding(
            name,
            "fail",
            f"the proxy answered {status} {reason}: no node took the websocket",
            "The proxy could not reach a node in time, or every node is draining.",
            "Check the upstream list and that each node answers /api/v4/system/ping.",
            {"status": status},
        )
    return Finding(
        name,
        "fail",
        f"the websocket handshake answered {status} {reason} instead of 101",
        "Something between the client and hubbub refuses or rewrites the upgrade.",
        "Pass websocket upgrades to hubbub unchanged (see `hubbub proxy-config nginx`).",
        {"status": status, "seen": seen},
    )


def upstream_http_version(seen: str) -> Finding:
    """What HTTP version the proxy speaks to hubbub on the websocket path (from a plain GET
    there, which the node refuses while saying how it arrived)."""
    name = "proxy: HTTP version to hubbub"
    parts = _seen(seen)
    if not parts:
        return Finding(name, "skip", "could not tell (the node did not say how the request came)")
    version = parts.get("http", "")
    if version == "1.1":
        return Finding(name, "ok", "the proxy speaks HTTP/1.1 to hubbub on the websocket path")
    return Finding(
        name,
        "fail",
        f"the proxy speaks HTTP/{version} to hubbub on the websocket path",
        "A websocket handshake must be HTTP/1.1 (RFC 6455). Over HTTP/1.0 an upgrade works "
        "only by accident: Mattermost's server, many load balancers and some hubbub releases "
        "refuse it, and the proxy cannot keep connections to the nodes open either.",
        "nginx: proxy_http_version 1.1; in the websocket location (nginx defaults to 1.0).",
        {"seen": seen},
    )


def _seen(seen: str) -> dict[str, str]:
    """`HTTP/1.0; upgrade=websocket; connection=upgrade` -> {'http': '1.0', ...}."""
    if not seen.startswith("HTTP/"):
        return {}
    out = {}
    for i, part in enumerate(seen.split(";")):
        part = part.strip()
        if i == 0:
            out["http"] = part.removeprefix("HTTP/")
        else:
            key, _, value = part.partition("=")
            out[key.strip()] = value.strip()
    return out


def idle_timeout(
    *,
    cut_after: float | None,
    held_for: float,
    idle_max: float,
    ping_interval: float,
    pings: int,
    close_code: int | None,
) -> Finding:
    """The proxy's idle timeout, measured on a websocket the server did not ping, against the
    server's ping interval."""
    name = "proxy: idle websocket timeout"
    p = ping_interval
    data = {
        "cut_after_seconds": None if cut_after is None else round(cut_after, 1),
        "held_seconds": round(held_for, 1),
        "idle_max_seconds": idle_max,
        "ping_interval_seconds": p,
    }
    if pings:
        return Finding(
            name,
            "skip",
            "the server pinged the diagnostic websocket, so the proxy's timeout was not measured",
            "Only a system admin may ask for a websocket without pings.",
            "Run doctor with a system admin's token (--token or HUBBUB_TOKEN).",
            data,
        )
    if close_code is not None:
        return Finding(
            name,
            "warn",
            f"the websocket was closed with code {close_code} after {held_for:.0f} s idle "
            "(a close frame: the server or the proxy closed it on purpose)",
            "A proxy's idle timeout drops the TCP connection without a close frame; this "
            "was something else (a draining node, a websocket-aware balancer).",
            "Look at the node's close log line for this connection.",
            data,
        )
    if cut_after is None:
        if held_for >= 2 * p:
            return Finding(
                name,
                "ok",
                f"the proxy kept an idle websocket open for {held_for:.0f} s (the measurement's "
                f"limit), at least twice hubbub's ping interval of {p:g} s",
                data=data,
            )
        return Finding(
            name,
            "warn",
            f"the proxy kept an idle websocket open for {held_for:.0f} s, but that is less "
            f"than twice the ping interval ({p:g} s), so a timeout in between is not excluded",
            fix=f"Run again with --idle-max {int(2 * p) + 5} or more.",
            data=data,
        )
    t = cut_after
    if t <= p:
        return Finding(
            name,
            "fail",
            f"the proxy cuts an idle websocket after {t:.0f} s, before hubbub's ping every {p:g} s",
            "Every client that is quiet for that long loses its live connection, reconnects "
            "and refetches; the server log fills with closes classified proxy_idle_suspected "
            "or read_timeout (Mattermost's 'websocket.NextReader: i/o timeout'), and users see "
            "channels that load slowly or miss updates.",
            f"Raise the proxy's idle timeout to at least {int(2 * p) + 25} s (nginx: "
            f"proxy_read_timeout and proxy_send_timeout 75s in the websocket location; AWS "
            f"ALB: idle timeout 300 s), or lower ServiceSettings.WebsocketPingIntervalSeconds "
            f"to at most {max(1, int(t / 2))}.",
            data,
        )
    if t < 2 * p:
        return Finding(
            name,
            "warn",
            f"the proxy cuts an idle websocket after {t:.0f} s, less than two of hubbub's "
            f"pings ({p:g} s apart)",
            "One ping delayed or lost and the connection is dropped: the race between a "
            "60 s load-balancer timeout and a 60 s server ping that Mattermost operators "
            "hit.",
            f"Raise the proxy's idle timeout to at least {int(2 * p) + 25} s (nginx "
            f"proxy_read_timeout 75s; AWS ALB 300 s).",
            data,
        )
    return Finding(
        name,
        "ok",
        f"the proxy cuts an idle websocket after {t:.0f} s, well above hubbub's ping "
        f"interval of {p:g} s",
        data=data,
    )


def forwarded(request: dict[str, Any], proxies: list[str]) -> Finding:
    """How the node saw a request that came through the proxy."""
    name = "proxy: client address and scheme"
    xff = request.get("x_forwarded_for", "")
    peer = request.get("peer", "")
    data = {k: request.get(k) for k in ("peer", "client", "scheme", "x_forwarded_for")}
    if not xff:
        return Finding(
            name,
            "warn",
            "the proxy does not send X-Forwarded-For: hubbub sees every user as the proxy "
            f"({peer})",
            "Logs show the proxy's address instead of the users', and rate limiting of "
            "anonymous requests (login) treats everyone as one client.",
            "nginx: proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; "
            "proxy_set_header X-Forwarded-Proto $scheme;",
            data,
        )
    if not request.get("peer_trusted"):
        return Finding(
            name,
            "fail",
            f"the proxy ({peer}) sends X-Forwarded-For, but hubbub does not trust it: it is "
            f"not in ServiceSettings.TrustedProxies ({', '.join(proxies) or 'empty'})",
            "Every user appears as the proxy's address; rate limiting by address would "
            "then limit them all together.",
            f'Add the proxy to ServiceSettings.TrustedProxies, e.g. "{peer}/32".',
            data,
        )
    if not request.get("x_forwarded_proto"):
        return Finding(
            name,
            "warn",
            f"the proxy is trusted and forwards the client's address ({request.get('client')}) "
            "but not X-Forwarded-Proto",
            "hubbub cannot tell whether users came over https.",
            "nginx: proxy_set_header X-Forwarded-Proto $scheme;",
            data,
        )
    return Finding(
        name,
        "ok",
        f"the proxy ({peer}) is trusted and forwards the client's address "
        f"({request.get('client')}) and scheme ({request.get('scheme')})",
        data=data,
    )


def site_url(url: str, configured: str) -> Finding:
    name = "site URL"
    if not configured:
        return Finding(
            name,
            "warn",
            "ServiceSettings.SiteURL is empty",
            "Links in notifications and the apps' server address rely on it.",
            f'Set ServiceSettings.SiteURL to "{url}" (or MM_SERVICESETTINGS_SITEURL).',
        )
    if _origin(url) == _origin(configured):
        return Finding(name, "ok", f"ServiceSettings.SiteURL is {configured}, as used here")
    return Finding(
        name,
        "fail",
        f"ServiceSettings.SiteURL is {configured}, but clients use {url}",
        "Links, redirects and the apps' origin checks use the site URL; a mismatch breaks "
        "sign-in from the apps and makes links point elsewhere.",
        f'Set ServiceSettings.SiteURL to "{url}" on every node, or point --url at the real '
        "public address.",
    )


def _origin(url: str) -> tuple[str, str, int]:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


# Each node


def clock(node: str, facts: dict[str, Any]) -> Finding:
    name = f"{node}: clock"
    skew = facts.get("skew_ms")
    if skew is None:
        return Finding(name, "skip", facts.get("note", "no database clock to compare with"))
    data = {"skew_ms": skew, "round_trip_ms": facts.get("round_trip_ms")}
    if abs(skew) >= SKEW_FAIL_MS:
        status: Status = "fail"
    elif abs(skew) >= SKEW_WARN_MS:
        status = "warn"
    else:
        return Finding(name, "ok", f"clock within {abs(skew):.0f} ms of the database's", data=data)
    return Finding(
        name,
        status,
        f"clock is {abs(skew):.0f} ms {'ahead of' if skew > 0 else 'behind'} the database's",
        "Posts, edits and reactions carry the node's time: with clocks apart they sort in "
        "the wrong order, and leases and heartbeats expire early or late. Mattermost's HA "
        "guide requires synchronised clocks.",
        "Run NTP on every node (systemd-timesyncd or chrony: `timedatectl set-ntp true`).",
        data,
    )


def node_state(name: str, entry: dict[str, Any]) -> Finding:
    """A node as the operator console sees it (version, config hash naming settings,
    readiness)."""
    state = entry.get("state", "green")
    reasons = [r for r in entry.get("reasons", []) if r != "ok"]
    summary = f"version {entry.get('version', '?')}, config {entry.get('config_hash', '?')}" + (
        ": " + "; ".join(reasons) if reasons else ""
    )
    if state == "green":
        return Finding(f"{name}: cluster view", "ok", summary)
    fixes = []
    if any(r.startswith("config mismatch") for r in reasons):
        fixes.append("make config.json (and MM_* variables) the same on every node")
    if any(r.startswith("version mismatch") for r in reasons):
        fixes.append(
            "upgrade the odd node: nodes may only be one minor version apart (docs/upgrades.md)"
        )
    if any(r.startswith("version mix") for r in reasons):
        fixes.append("finish the rolling upgrade so every node runs the same release")
    if any(r.startswith("down") for r in reasons):
        fixes.append("start the node or remove it from the proxy's upstreams")
    return Finding(
        f"{name}: cluster view",
        "fail" if state == "red" else "warn",
        summary,
        "The operator console (/admin) shows this node "
        + state
        + "; settings that differ are named without their values.",
        "; ".join(fixes) or "See the reasons above.",
    )


def host_limits(node: str, limits: dict[str, Any], expected_connections: int) -> Finding:
    name = f"{node}: open-file limit"
    soft = int(limits.get("nofile_soft", 0))
    used = limits.get("open_descriptors")
    data = {**limits, "expected_connections": expected_connections}
    need = expected_connections + 1000 if expected_connections else 0
    fix = (
        "LimitNOFILE=65536 in the systemd unit (deploy/hubbub.service), or "
        "'hubbub soft nofile 65536' and 'hubbub hard nofile 65536' in "
        "/etc/security/limits.conf; restart the node."
    )
    if need and soft < need:
        return Finding(
            name,
            "fail",
            f"this node may open {soft} files, too few for {expected_connections} websockets "
            "(each is one open file, plus the database and Redis pools)",
            "Past the limit new connections fail with 'too many open files' and users cannot "
            "connect at all.",
            fix,
            data,
        )
    if soft < NOFILE_GUIDE:
        return Finding(
            name,
            "warn",
            f"this node may open {soft} files (the HA guide asks for {NOFILE_GUIDE}); "
            f"{used if used is not None else '?'} are open now",
            "Each websocket is an open file: a busy node or a reconnect storm after another "
            "node fails hits the limit and refuses connections.",
            fix,
            data,
        )
    return Finding(name, "ok", f"this node may open {soft} files ({used} open now)", data=data)


def kernel(node: str, sysctl: dict[str, str]) -> list[Finding]:
    """The kernel settings of Mattermost's HA guide, one finding each."""
    out: list[Finding] = []
    prefix = f"{node}: kernel "

    def number(key: str) -> int | None:
        value = sysctl.get(key, "").split()
        return int(value[0]) if value and value[0].lstrip("-").isdigit() else None

    somaxconn = number("net.core.somaxconn")
    if somaxconn is not None:
        out.append(
            Finding(prefix + "net.core.somaxconn", "ok", f"{somaxconn}")
            if somaxconn >= SOMAXCONN_GUIDE
            else Finding(
                prefix + "net.core.somaxconn",
                "warn",
                f"{somaxconn}, below the guide's {SOMAXCONN_GUIDE}",
                "The listen backlog: when a node restarts, thousands of clients reconnect at "
                "once; connections beyond the backlog are dropped and retried seconds later.",
                f"sysctl -w net.core.somaxconn={SOMAXCONN_GUIDE} (deploy/sysctl.d/"
                "90-hubbub.conf makes it permanent).",
            )
        )
    backlog = number("net.ipv4.tcp_max_syn_backlog")
    if backlog is not None:
        out.append(
            Finding(prefix + "net.ipv4.tcp_max_syn_backlog", "ok", f"{backlog}")
            if backlog >= SYN_BACKLOG_GUIDE
            else Finding(
                prefix + "net.ipv4.tcp_max_syn_backlog",
                "warn",
                f"{backlog}, below the guide's {SYN_BACKLOG_GUIDE}",
                "Half-open connections waiting for their handshake: a reconnect storm fills it.",
                f"sysctl -w net.ipv4.tcp_max_syn_backlog={SYN_BACKLOG_GUIDE}",
            )
        )
    ports = sysctl.get("net.ipv4.ip_local_port_range", "").split()
    if len(ports) == 2 and all(p.isdigit() for p in ports):
        low, high = int(ports[0]), int(ports[1])
        wanted = PORT_RANGE_GUIDE[1] - PORT_RANGE_GUIDE[0]
        out.append(
            Finding(prefix + "net.ipv4.ip_local_port_range", "ok", f"{low} {high}")
            if high - low >= wanted * 0.9
            else Finding(
                prefix + "net.ipv4.ip_local_port_range",
                "warn",
                f"{low} {high}: {high - low} local ports (the guide: "
                f"{PORT_RANGE_GUIDE[0]} {PORT_RANGE_GUIDE[1]})",
                "Every outgoing connection (proxy to node, node to PostgreSQL and Redis) "
                "takes a local port; a proxy host with many websockets runs out.",
                f'sysctl -w net.ipv4.ip_local_port_range="{PORT_RANGE_GUIDE[0]} '
                f'{PORT_RANGE_GUIDE[1]}" (on the proxy host too)',
            )
        )
    fin = number("net.ipv4.tcp_fin_timeout")
    if fin is not None:
        out.append(
            Finding(prefix + "net.ipv4.tcp_fin_timeout", "ok", f"{fin}")
            if fin <= FIN_TIMEOUT_GUIDE
            else Finding(
                prefix + "net.ipv4.tcp_fin_timeout",
                "warn",
                f"{fin} s, above the guide's {FIN_TIMEOUT_GUIDE}",
                "Closed connections hold their port longer, which the port range then lacks.",
                f"sysctl -w net.ipv4.tcp_fin_timeout={FIN_TIMEOUT_GUIDE}",
            )
        )
    reuse = number("net.ipv4.tcp_tw_reuse")
    if reuse is not None:
        out.append(
            Finding(prefix + "net.ipv4.tcp_tw_reuse", "ok", f"{reuse}")
            if reuse in (1, 2)
            else Finding(
                prefix + "net.ipv4.tcp_tw_reuse",
                "warn",
                f"{reuse}: ports in TIME_WAIT are not reused for new outgoing connections",
                "After a reconnect storm the proxy host can run out of ports to the nodes.",
                "sysctl -w net.ipv4.tcp_tw_reuse=1",
            )
        )
    return out


def exit_status(findings: list[Finding]) -> int:
    """0: nothing wrong; 1: something failed or needs attention (a warning)."""
    return 1 if any(f.status in {"fail", "warn"} for f in findings) else 0
