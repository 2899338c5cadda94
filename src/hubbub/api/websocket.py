"""`GET /api/v4/websocket`: authentication, the action router, presence and the close log.

The protocol itself lives in `hubbub.realtime.protocol` (no I/O); each connection's state
(numbering, hold and release, overflow policy, checkpoints) in `hubbub.realtime.connstate` (no
I/O); its queues, keep-alive and close in `hubbub.realtime.session`; delivery and resume in
`hubbub.realtime.hub`. Refused upgrades are rendered by `hubbub.api.errors`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import Receive, Scope, Send

from hubbub import MATTERMOST_VERSION
from hubbub.api.auth import resolve_session
from hubbub.api.errors import render_error, send_error
from hubbub.api.middleware import security_headers
from hubbub.api.origins import OriginPolicy, cross_origin_refused, has_session_cookie
from hubbub.cluster.connections import ConnectionRegistry
from hubbub.cluster.events import Broadcast, Event, EventPublisher
from hubbub.errors import AppError, forbidden
from hubbub.ids import is_valid_id, now_ms
from hubbub.observability.metrics import Metrics
from hubbub.realtime.connstate import ConnState
from hubbub.realtime.hub import Hub
from hubbub.realtime.limits import ActionBudget, TypingGate, Verdict
from hubbub.realtime.presence import Presence
from hubbub.realtime.protocol import (
    CLOSE_UNSUPPORTED,
    VALID_CLIENT_CODES,
    ClientRequest,
    CloseReason,
    FrameError,
    classify_peer_close,
    error_reply,
    parse_request,
    reply,
)
from hubbub.realtime.scope import ChannelView
from hubbub.realtime.session import ConnInfo, ConnLimits, WebConn
from hubbub.services.auth import AuthService
from hubbub.services.channel_access import ChannelAccess
from hubbub.services.permissions import Permissions
from hubbub.services.session import Session
from hubbub.store.db import DatabaseBusy

log = logging.getLogger("hubbub.realtime")

REGISTRY_TIMEOUT = 3.0  # seconds a close may spend updating the (shared) connection registry
# `?hubbub_diagnostic=no_ping` (system admins only): no keep-alive pings on this socket, so
# `hubbub doctor` can measure when an idle proxy cuts it; closed after this much silence.
DIAGNOSTIC_PARAM = "hubbub_diagnostic"
DIAGNOSTIC_SILENCE_SECONDS = 900.0


class WebSocketEndpoint:
    """A raw ASGI app mounted at /api/v4/websocket."""

    def __init__(
        self,
        *,
        auth: AuthService,
        hub: Hub,
        registry: ConnectionRegistry,
        presence: Presence,
        channels: ChannelAccess,
        permissions: Permissions,
        events: EventPublisher,
        metrics: Metrics,
        limits: ConnLimits,
        node_name: str,
        server_version: str,
        is_draining: Callable[[], bool],
        origins: OriginPolicy,
    ) -> None:
        self.auth = auth
        self.hub = hub
        self.registry = registry
        self.presence = presence
        self.channels = channels
        self.permissions = permissions
        self.events = events
        self.metrics = metrics
        self.limits = limits
        self.node_name = node_name
        self.server_version = server_version
        self.is_draining = is_draining
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await _plain_error(scope, send, 400, "api.web_socket.connect.upgrade.app_error")
            return
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if self.is_draining():
            # Refuse rather than accept and hang: the client retries elsewhere at once.
            await _deny(scope, send, 503, "api.web_socket.connect.draining.app_error")
            return
        refused = self._cross_origin(scope)
        if refused is not None:
            # Cross-site websocket hijacking: another site's page opening a socket with the
            # user's cookie. Refused before the upgrade, so no hello and no event ever leaves.
            await send_error(send, render_error(refused, scope, developer=False), websocket=True)
            return
        opened = await self._open(scope, send)
        if opened is not None:
            # Only what the read loop needs stays referenced for the life of the socket.
            await self._read_loop(*opened, receive)

    def _cross_origin(self, scope: Scope) -> AppError | None:
        headers = Headers(scope=scope)
        if not has_session_cookie(headers):
            return None  # a token comes in the authentication challenge, never from a browser
        origin = headers.get("origin")
        if self.origins.trusts(origin, headers.get("host", "")):
            return None
        log.info(
            "websocket upgrade refused: session cookie from an untrusted origin",
            extra={"origin": origin or ""},
        )
        return cross_origin_refused(origin or "")

    async def _open(self, scope: Scope, send: Send) -> tuple[WebConn, str, int | None] | None:
        """Accepts the socket and attaches it when the upgrade carried credentials."""
        conn_http = HTTPConnection(scope)
        if "hubbub.session" in scope:
            session: Session | None = scope["hubbub.session"]
        else:
            # Dispatched straight here (hubbub.app.WebSocketFirst): look the token up ourselves.
            # An unusable token is not refused at upgrade: the socket stays unauthenticated
            # and may still answer the authentication challenge, as Mattermost's does.
            try:
                session, _ = await resolve_session(conn_http, self.auth, strict_csrf=False)
            except DatabaseBusy:
                # Overloaded: refused before the upgrade, the client retries (with backoff).
                await _deny(scope, send, 503, "api.context.server_busy.app_error")
                return None
        query = conn_http.query_params
        requested_id = query.get("connection_id", "")
        sequence = _int_or_none(query.get("sequence_number"))
        info = ConnInfo(
            remote=f"{scope['client'][0]}:{scope['client'][1]}" if scope.get("client") else "",
            forwarded_for=conn_http.headers.get("x-forwarded-for", ""),
            user_agent=conn_http.headers.get("user-agent", ""),
            node=self.node_name,
        )
        reported = _int_or_none(query.get("disconnect_err_code"))
        if reported is not None and reported in VALID_CLIENT_CODES:
            info.client_reported_code = reported
            self.metrics.client_reported.labels(str(reported)).inc()
        limits = self.limits
        if query.get(DIAGNOSTIC_PARAM) == "no_ping":
            # `hubbub doctor` measuring the proxy's idle timeout: this socket must stay silent.
            # Only a system admin may ask; a bounded silence, then the usual timeout closes it.
            if session is not None and await self.permissions.has(session, "manage_system"):
                limits = replace(
                    limits,
                    ping_interval=DIAGNOSTIC_SILENCE_SECONDS,
                    pong_timeout=DIAGNOSTIC_SILENCE_SECONDS + 1,
                )
            else:
                log.info("websocket diagnostic mode refused: not a system admin")
        link = scope.get("extensions", {}).get("hubbub.frames")
        if link is None:
            # Served by a server without hubbub's websocket protocol (see hubbub.server).
            await _deny(scope, send, 500, "api.web_socket.connect.upgrade.app_error")
            return None
        conn = WebConn(
            send,
            link,
            limits,
            self.registry,
            self.metrics,
            info,
            self.server_version,
            self._closed,
            skip_gate=self.hub.skip_gate if self.hub.hold_after_skip else None,
        )
        await send({"type": "websocket.accept"})
        # Nothing reads the upgrade's headers after this (ConnInfo has what the close log
        # needs); the scope lives as long as the socket, so let the list go (~1 KiB).
        scope["headers"] = []
        if session is not None:
            await self._register(conn, session, requested_id, sequence)
        else:
            conn.start_auth_timer()
        return conn, requested_id, sequence

    async def _register(
        self,
        conn: WebConn,
        session: Session,
        requested_id: str,
        sequence: int | None,
        reply_seq: int | None = None,
    ) -> bool:
        """Attaches (fresh or resumed); False when that failed and the socket was closed.
        `reply_seq` answers an authentication challenge as soon as the socket is attached,
        before the presence update (a database write)."""
        conn.authenticate(session.user_id, session.token)
        first_here = self.hub.user_connection_count(session.user_id) == 0
        try:
            await self.hub.attach(conn, requested_id, sequence)
        except Exception:
            # The shared registry or event log did not answer (Redis restarting, a stale pooled
            # connection): close with 1013 so the client retries at once, instead of letting the
            # exception drop the TCP connection without a close frame.
            log.warning(
                "websocket attach failed",
                extra={"user_id": conn.user_id, "requested_connection_id": requested_id},
                exc_info=True,
            )
            self.hub.remove(conn)
            await conn.close(CloseReason.BACKEND_ERROR)
            return False
        conn.start_keepalive()
        if reply_seq is not None:
            conn.send_reply(reply(reply_seq))
        if first_here:
            await self.presence.connected(session.user_id)
        return True

    async def _read_loop(
        self, conn: WebConn, requested_id: str, sequence: int | None, receive: Receive
    ) -> None:
        clock = asyncio.get_running_loop().time
        limits = self.limits
        budget = ActionBudget(clock(), limits.actions_per_second, limits.action_burst)
        typing = TypingGate(limits.typing_interval)
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                if conn.state is not ConnState.CLOSED:
                    code = int(message.get("code") or 1005)
                    got_close = bool(conn.link and conn.link.got_close_frame)
                    if conn.link and conn.link.close_frame_code is not None:
                        code = conn.link.close_frame_code
                    reason = classify_peer_close(
                        code, conn.since_last_frame(), self.limits.ping_interval, got_close
                    )
                    if conn.state is ConnState.CLOSING and conn.close_reason is not None:
                        reason = conn.close_reason
                    await conn.finish(reason, code)
                return
            if conn.state in (ConnState.CLOSING, ConnState.CLOSED):
                continue
            text = message.get("text")
            if text is None:
                # Binary (msgpack) frames are not supported: 1003, unsupported data.
                await conn.close(CloseReason.PROTOCOL_ERROR, CLOSE_UNSUPPORTED)
                continue
            verdict = budget.take(clock())
            if verdict is Verdict.CLOSE:
                self.metrics.refused_actions.labels("rate_limited").inc()
                await conn.close(CloseReason.RATE_LIMITED)
                continue
            try:
                parsed = parse_request(text)
            except FrameError:
                await conn.close(CloseReason.PROTOCOL_ERROR)
                continue
            if isinstance(parsed, AppError):
                conn.send_reply(error_reply(parsed))
                continue
            if verdict is Verdict.REFUSE:
                self.metrics.refused_actions.labels("rate_limited").inc()
                conn.send_reply(error_reply(_with_seq(_rate_limited(), parsed.seq)))
                continue
            try:
                await self._handle(conn, parsed, requested_id, sequence, typing)
            except Exception:
                log.exception("websocket action failed", extra={"action": parsed.action})
                conn.send_reply(
                    error_reply(
                        _with_seq(
                            AppError(
                                "api.web_socket_router.server_error.app_error",
                                "The websocket action failed.",
                                500,
                            ),
                            parsed.seq,
                        )
                    )
                )

    async def _handle(
        self,
        conn: WebConn,
        request: ClientRequest,
        requested_id: str,
        sequence: int | None,
        typing: TypingGate,
    ) -> None:
        if request.action == "authentication_challenge":
            if conn.state is not ConnState.AWAITING_AUTH:
                return  # Mattermost ignores a challenge on an authenticated socket
            token = request.data.get("token")
            session = await self.auth.resolve(token) if isinstance(token, str) and token else None
            if session is None:
                await conn.close(CloseReason.AUTH_FAILED)
                return
            await self._register(conn, session, requested_id, sequence, request.seq)
            return
        if conn.state is ConnState.AWAITING_AUTH:
            conn.send_reply(
                error_reply(
                    _with_seq(
                        AppError(
                            "api.web_socket_router.not_authenticated.app_error",
                            "No websocket session.",
                            401,
                        ),
                        request.seq,
                    )
                )
            )
            return
        try:
            data = await self._action(conn, request, typing)
        except AppError as exc:
            conn.send_reply(error_reply(_with_seq(exc, request.seq)))
            return
        conn.send_reply(reply(request.seq, data))

    async def _action(
        self, conn: WebConn, request: ClientRequest, typing: TypingGate
    ) -> dict[str, Any] | None:
        action, data = request.action, request.data
        if action == "ping":
            return {
                "text": "pong",
                "version": MATTERMOST_VERSION,
                "server_time": now_ms(),
                "node_id": self.node_name,
            }
        if action == "user_typing":
            channel_id = data.get("channel_id")
            parent_id = data.get("parent_id") or ""
            if not is_valid_id(channel_id) or not (parent_id == "" or is_valid_id(parent_id)):
                raise AppError(
                    "api.websocket_handler.invalid_param.app_error",
                    "Invalid channel_id parameter.",
                    400,
                )
            # Mattermost's rule: typing needs `create_post` in the channel.
            session = await self.auth.resolve(conn.session_token)
            channel = await self.channels.get_row(str(channel_id))
            if session is None or not await self.channels.has(session, channel, "create_post"):
                raise forbidden("create_post")
            if not typing.allow(asyncio.get_running_loop().time()):
                self.metrics.refused_actions.labels("typing_coalesced").inc()
                return None
            await self.events.publish(
                Event(
                    "typing",
                    {"parent_id": parent_id, "user_id": conn.user_id},
                    Broadcast(channel_id=str(channel_id), omit_users=frozenset({conn.user_id})),
                    ephemeral=True,
                )
            )
            return None
        if action == "presence":
            # What the client has open, for the scope of typing and reaction events.
            if conn.view is None:
                conn.view = ChannelView()
            conn.view.apply(data)
            return None
        if action == "get_statuses":
            return await self.presence.statuses_of(list(self.hub_users()))
        if action == "get_statuses_by_ids":
            ids = data.get("user_ids")
            if not isinstance(ids, list) or not all(is_valid_id(i) for i in ids):
                raise AppError(
                    "api.websocket_handler.invalid_param.app_error",
                    "Invalid user_ids parameter.",
                    400,
                )
            return await self.presence.statuses_of(ids)
        if action == "user_update_active_status":
            active = data.get("user_is_active")
            if not isinstance(active, bool):
                raise AppError(
                    "api.websocket_handler.invalid_param.app_error",
                    "Invalid user_is_active parameter.",
                    400,
                )
            await self.presence.activity(conn.user_id, active, bool(data.get("manual")))
            return None
        if action == "posted_notify_ack":
            return None
        raise AppError(
            "api.web_socket_router.bad_action.app_error", "Unknown websocket action.", 500
        )

    def hub_users(self) -> set[str]:
        return {c.user_id for c in self.hub.connections()}

    async def _closed(self, conn: WebConn, reason: CloseReason) -> None:
        self.hub.remove(conn)
        if not conn.connection_id:
            return
        if reason is CloseReason.REPLACED:
            return  # the record now belongs to the connection that took over
        try:
            # Bounded: with Redis unreachable, a close (or a drain) must still finish.
            await asyncio.wait_for(self._release(conn, reason), REGISTRY_TIMEOUT)
        except Exception:
            log.warning(
                "could not update the connection registry on close",
                extra={"connection_id": conn.connection_id},
                exc_info=True,
            )

    async def _release(self, conn: WebConn, reason: CloseReason) -> None:
        forget = reason is CloseReason.SESSION_REVOKED
        if await self.hub.release(conn.connection_id, conn.user_id, forget=forget):
            await self.presence.disconnected(conn.user_id)


def _rate_limited() -> AppError:
    return AppError(
        "api.web_socket_router.rate_limit.app_error",
        "Too many websocket actions: this one was not run. Slow down.",
        429,
    )


def _with_seq(error: AppError, seq: int) -> AppError:
    error.params["seq_reply"] = seq
    return error


def _int_or_none(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        return None


async def _deny(scope: Scope, send: Send, status: int, error_id: str) -> None:
    """Refuses the upgrade with an HTTP answer (the ASGI websocket denial response)."""
    error = AppError(error_id, "The server is not accepting websockets.", status)
    await send_error(send, render_error(error, scope, developer=False), websocket=True)


async def _plain_error(scope: Scope, send: Send, status: int, error_id: str) -> None:
    """A plain HTTP request on the websocket path: usually a proxy that did not pass the
    upgrade. The answer says what arrived (`X-Hubbub-Upgrade-Seen`, read by `hubbub doctor`)."""
    seen = upgrade_seen(scope)
    error = AppError(
        error_id,
        "Websocket upgrade required.",
        status,
        detailed_error=f"the request arrived as {seen}",
    )
    # It bypasses the API middleware (`WebSocketFirst`), so it adds the security headers itself.
    await send_error(
        send,
        render_error(error, scope, developer=True),
        [(b"x-hubbub-upgrade-seen", seen.encode("latin-1", "replace")), *security_headers([])],
    )


def upgrade_seen(scope: Scope) -> str:
    """`HTTP/1.0; upgrade=; connection=close`: how a request reached this node."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    return (
        f"HTTP/{scope.get('http_version', '1.1')}; upgrade={headers.get('upgrade', '')}; "
        f"connection={headers.get('connection', '')}"
    )
