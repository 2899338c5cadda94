"""Which web origins may use a browser's session with this site, and CORS (Mattermost's rules).

A browser attaches the `MMAUTHTOKEN` cookie to every request to this site, whichever page makes
it; a websocket upgrade is not subject to the same-origin policy at all. So a request that is
authenticated by the cookie is only honoured from an origin the site trusts:

* its own: `ServiceSettings.SiteURL` (scheme and host), or, with no SiteURL, the host the request
  was sent to (`Host`), as Mattermost's `OriginChecker` does; the scheme is not compared then,
  since a proxy that terminates TLS hides it, nor the port when `Host` has none (a proxy that
  forwards nginx's `$host` drops it);
* one listed in `ServiceSettings.AllowCorsFrom` (space-separated origins, one `*` wildcard in an
  entry, or `*` alone for any origin).

A request without an `Origin` header (a native app, a bot, curl) and one authenticated by a
token in a header is unaffected: another site's page cannot read a token or set the header on a
websocket, and a cross-origin `fetch` with an `Authorization` header needs a preflight that only
the allowed origins pass. `Origin: null` (a sandboxed frame, a file) is never trusted.

`OriginPolicy` holds the decision; `OriginGuard` applies it to HTTP (the refusal of a
cookie-authenticated state-changing request, CORS preflights and the CORS headers on answers, as
rs/cors does for Mattermost when `AllowCorsFrom` is set); the websocket endpoint asks the same
policy before it accepts an upgrade.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hubbub.api.auth import COOKIE_TOKEN
from hubbub.config.settings import ServiceConfig
from hubbub.errors import AppError

log = logging.getLogger("hubbub.cors")

# Mattermost's corsAllowedMethods; the preflight answers any requested header (`*`).
CORS_METHODS = frozenset({"POST", "GET", "OPTIONS", "PUT", "PATCH", "DELETE"})
CORS_MAX_AGE = "86400"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cross_origin_refused(origin: str) -> AppError:
    return AppError(
        "api.context.cross_origin.app_error",
        f"Requests with the session cookie are not accepted from the origin {origin!r}. Add it "
        "to ServiceSettings.AllowCorsFrom to allow it.",
        403,
    )


@dataclass(frozen=True, slots=True)
class _Pattern:
    """An allowed origin, lower-cased; with a `*`, the parts before and after it."""

    prefix: str
    suffix: str | None = None

    def matches(self, origin: str) -> bool:
        if self.suffix is None:
            return origin == self.prefix
        if len(origin) < len(self.prefix) + len(self.suffix):
            return False
        if not (origin.startswith(self.prefix) and origin.endswith(self.suffix)):
            return False
        # The `*` stands for host name labels only, never a path, a port or credentials.
        middle = origin[len(self.prefix) : len(origin) - len(self.suffix)]
        return all(c.isalnum() or c in ".-" for c in middle)


def _pattern(entry: str) -> _Pattern:
    entry = entry.lower().rstrip("/")
    star = entry.find("*")
    if star < 0:
        return _Pattern(entry)
    return _Pattern(entry[:star], entry[star + 1 :])


def _host_of(origin: str) -> tuple[str, str] | None:
    """(scheme, host[:port]) of an origin, lower-cased; None when it is not a URL origin."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return parts.scheme.lower(), parts.netloc.lower()


def _hostname(netloc: str) -> str:
    """`host` of `host:port` (IPv6 literals keep their brackets)."""
    if netloc.startswith("["):
        return netloc.split("]", 1)[0] + "]"
    return netloc.rsplit(":", 1)[0] if ":" in netloc else netloc


class OriginPolicy:
    """The site's trusted origins and its CORS answer, from `ServiceSettings`."""

    def __init__(
        self,
        *,
        site_url: str = "",
        allow_cors_from: str = "",
        exposed_headers: str = "",
        allow_credentials: bool = False,
        debug: bool = False,
    ) -> None:
        entries = allow_cors_from.split()
        self.cors_enabled = bool(entries)
        self.allow_all = "*" in entries
        self.patterns = [_pattern(e) for e in entries if e != "*"]
        self.site = _host_of(site_url.strip()) if site_url.strip() else None
        self.exposed = ", ".join(exposed_headers.split())
        self.allow_credentials = allow_credentials
        self.debug = debug

    @classmethod
    def from_settings(cls, service: ServiceConfig) -> OriginPolicy:
        return cls(
            site_url=service.SiteURL,
            allow_cors_from=service.AllowCorsFrom,
            exposed_headers=service.CorsExposedHeaders,
            allow_credentials=service.CorsAllowCredentials,
            debug=service.CorsDebug,
        )

    def _listed(self, origin: str) -> bool:
        if self.allow_all:
            return True
        lowered = origin.lower()
        return any(p.matches(lowered) for p in self.patterns)

    def _own(self, origin: str, host: str) -> bool:
        parsed = _host_of(origin)
        if parsed is None:
            return False
        if self.site is not None:
            return parsed == self.site
        host = host.lower()
        if not host:
            return False
        if parsed[1] == host:
            return True
        # A proxy forwarding nginx's `$host` drops the port the browser used: a Host without a
        # port then matches the origin's host name on any port.
        return ":" not in host.rsplit("]", 1)[-1] and _hostname(parsed[1]) == host

    def trusts(self, origin: str | None, host: str) -> bool:
        """May a request carrying the session cookie come from `origin` (None: no header)?
        `host` is the request's `Host` header."""
        if origin is None:
            return True
        if origin == "null":
            return False
        return self._own(origin, host) or self._listed(origin)

    def refusal(self, headers: Headers, method: str) -> AppError | None:
        """The error for a cookie-authenticated, state-changing request from an untrusted
        origin, else None. (A websocket upgrade is a GET: its endpoint asks `trusts`.)"""
        if method in SAFE_METHODS or not has_session_cookie(headers):
            return None
        origin = headers.get("origin")
        if self.trusts(origin, headers.get("host", "")):
            return None
        self._log("refused a cookie-authenticated request", origin or "")
        return cross_origin_refused(origin or "")

    # CORS (only with AllowCorsFrom set, as Mattermost wraps its router in rs/cors only then)

    def _cors_origin(self, origin: str) -> bytes:
        if self.allow_all and not self.allow_credentials:
            return b"*"
        return origin.encode("latin-1", "replace")

    def preflight_headers(self, headers: Headers) -> list[tuple[bytes, bytes]]:
        """The answer's headers to `OPTIONS` with `Access-Control-Request-Method`: always the
        `Vary` headers; the `Access-Control-Allow-*` ones only for an allowed origin and
        method."""
        out = [
            (b"vary", b"Origin"),
            (b"vary", b"Access-Control-Request-Method"),
            (b"vary", b"Access-Control-Request-Headers"),
        ]
        origin = headers.get("origin", "")
        method = headers.get("access-control-request-method", "").upper()
        if not origin or not self._listed(origin):
            self._log("preflight: origin not allowed", origin)
            return out
        if method not in CORS_METHODS:
            self._log(f"preflight: method {method!r} not allowed", origin)
            return out
        out += [
            (b"access-control-allow-origin", self._cors_origin(origin)),
            (b"access-control-allow-methods", method.encode()),
            (b"access-control-max-age", CORS_MAX_AGE.encode()),
        ]
        requested = ", ".join(
            h.strip() for h in headers.get("access-control-request-headers", "").split(",")
        ).strip(", ")
        if requested:
            out.append((b"access-control-allow-headers", requested.encode("latin-1", "replace")))
        if self.allow_credentials:
            out.append((b"access-control-allow-credentials", b"true"))
        self._log("preflight: allowed", origin)
        return out

    def response_headers(self, headers: Headers, method: str) -> list[tuple[bytes, bytes]]:
        """CORS headers for the answer to an actual (not preflight) request."""
        if method == "OPTIONS":
            return []
        out = [(b"vary", b"Origin")]
        origin = headers.get("origin", "")
        if not origin or not self._listed(origin) or method not in CORS_METHODS | {"HEAD"}:
            return out
        out.append((b"access-control-allow-origin", self._cors_origin(origin)))
        if self.exposed:
            out.append((b"access-control-expose-headers", self.exposed.encode()))
        if self.allow_credentials:
            out.append((b"access-control-allow-credentials", b"true"))
        return out

    def _log(self, what: str, origin: str) -> None:
        if self.debug:
            log.info("cors: %s", what, extra={"origin": origin})


def has_session_cookie(headers: Headers) -> bool:
    """The request carries a session cookie, which wins over any `Authorization` header
    (`hubbub.api.auth.token_from`): it is authenticated by the cookie."""
    cookie = headers.get("cookie", "")
    return COOKIE_TOKEN in cookie and bool(cookie_parser(cookie).get(COOKIE_TOKEN))


class OriginGuard:
    """ASGI middleware for HTTP: answers CORS preflights, refuses cookie-authenticated
    state-changing requests from untrusted origins (AppError 403, rendered by the API middleware
    around it), and adds the CORS headers to answers. Websockets pass through; their endpoint
    checks the same policy before accepting."""

    def __init__(self, app: ASGIApp, policy: OriginPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method: str = scope["method"]
        policy = self.policy
        if (
            policy.cors_enabled
            and method == "OPTIONS"
            and headers.get("access-control-request-method")
        ):
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": policy.preflight_headers(headers),
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        refusal = policy.refusal(headers, method)
        if refusal is not None:
            raise refusal
        if not policy.cors_enabled:
            await self.app(scope, receive, send)
            return
        extra = policy.response_headers(headers, method)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_cors)
