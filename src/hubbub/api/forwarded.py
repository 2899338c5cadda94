"""The client's real address and scheme behind a proxy, believed only from trusted proxies.

A node behind nginx sees nginx as its peer; the client's address arrives in a header
(`ServiceSettings.TrustedProxyIPHeader`, `X-Forwarded-For` first by default) and the scheme in
`X-Forwarded-Proto`. Anyone can send those headers, so they are read only when the direct peer
is in `ServiceSettings.TrustedProxies` (addresses or CIDRs, loopback by default). This is the
one place that decides it: uvicorn's own proxy-header handling is off (`hubbub.server`), and
`ForwardedHeaders` rewrites `scope["client"]` and `scope["scheme"]` before anything else sees
the request, so the rate limiter, the websocket close log and `hubbub doctor` agree. The direct
peer stays in `scope["hubbub.peer"]`.

In a chain (`client, office proxy, nginx`), `X-Forwarded-For` is read from the right: the first
address that is not itself a trusted proxy is the client. The leftmost entry is whatever the
client claimed and is never believed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# Addresses whose trust is remembered (the peers, mostly one proxy or loopback): parsing one
# costs more than the rest of this layer. Past this many (hops a client made up), it starts over.
TRUST_CACHE_SIZE = 1024


class ProxyTrust:
    def __init__(self, proxies: Sequence[str], ip_headers: Sequence[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(p.strip(), strict=False) for p in proxies if p.strip()
        )
        self.ip_headers = tuple(h.strip().lower() for h in ip_headers if h.strip())
        # The only headers read: the address headers and the scheme's, as raw names.
        self.header_names = frozenset(
            name.encode("latin-1") for name in (*self.ip_headers, "x-forwarded-proto")
        )
        self._trusted: dict[str, bool] = {}

    def trusts(self, address: str) -> bool:
        known = self._trusted.get(address)
        if known is None:
            if len(self._trusted) >= TRUST_CACHE_SIZE:
                self._trusted.clear()
            known = self._trusted[address] = self._in_networks(address)
        return known

    def _in_networks(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.networks)

    def client_address(self, peer: str, headers: dict[str, str]) -> str:
        """The client's address for a request from `peer` carrying `headers` (lower-case
        names): the peer itself unless it is a trusted proxy that forwarded an address."""
        if not self.trusts(peer):
            return peer
        for name in self.ip_headers:
            value = headers.get(name)
            if not value:
                continue
            hops = [h.strip() for h in value.split(",") if h.strip()]
            # From the right: skip our own proxies; the first other hop is the client.
            for hop in reversed(hops):
                if not self.trusts(hop):
                    return _valid(hop) or peer
            if hops:
                return _valid(hops[0]) or peer
        return peer

    def scheme(self, peer: str, headers: dict[str, str], default: str) -> str:
        proto = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        if proto not in {"http", "https"} or not self.trusts(peer):
            return default
        if default in {"ws", "wss"}:
            return "wss" if proto == "https" else "ws"
        return proto


def _valid(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address.strip("[]")))
    except ValueError:
        return ""


class ForwardedHeaders:
    """Outermost ASGI layer: sets the client address and scheme as `ProxyTrust` decides.

    `__call__` is a plain function returning the inner app's coroutine, so a websocket that
    lives for hours keeps no frame of this layer alive (see `hubbub.app.WebSocketFirst`).
    """

    def __init__(self, app: ASGIApp, trust: ProxyTrust) -> None:
        self.app = app
        self.trust = trust

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] in {"http", "websocket"}:
            client = scope.get("client")
            peer = client[0] if client else ""
            scope["hubbub.peer"] = peer
            if peer and self.trust.trusts(peer):
                names = self.trust.header_names
                headers = {
                    k.decode("latin-1").lower(): v.decode("latin-1")
                    for k, v in scope.get("headers", [])
                    if k.lower() in names
                }
                address = self.trust.client_address(peer, headers)
                if address != peer:
                    scope["client"] = (address, 0)
                scope["scheme"] = self.trust.scheme(peer, headers, scope.get("scheme", "http"))
        return self.app(scope, receive, send)
