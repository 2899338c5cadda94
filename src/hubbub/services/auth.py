"""Sessions, login and personal access tokens.

A token resolves to a `Session` from the sessions table or, for personal access tokens, from
the user_access_tokens table. Resolved sessions are cached for `SessionCacheInMinutes`; every
change that can invalidate one (logout, revoke, role change, deactivation) drops the cache
entries of that user, on every node (the `SessionsRevoked` and `UserSessionsChanged` bus
messages).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, or_, select, update

from hubbub.batching import Batcher
from hubbub.cluster.bus import BusMessage, ClusterBus
from hubbub.config import Settings
from hubbub.errors import AppError, not_found
from hubbub.ids import new_id, now_ms
from hubbub.services.mfa import MfaService
from hubbub.services.passwords import verify_password
from hubbub.services.session import Session
from hubbub.services.users import UsersService, user_json
from hubbub.store.db import Database
from hubbub.store.tables import sessions, user_access_tokens, users

HOUR_MS = 3_600_000


class SessionCache:
    """Token -> Session with a time-to-live; invalidated per user."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self._items: dict[str, tuple[float, Session]] = {}

    def get(self, token: str) -> Session | None:
        item = self._items.get(token)
        if item is None:
            return None
        if item[0] < time.monotonic():
            self._items.pop(token, None)
            return None
        return item[1]

    def put(self, session: Session) -> None:
        if self.ttl > 0:
            self._items[session.token] = (time.monotonic() + self.ttl, session)

    def drop_user(self, user_id: str) -> None:
        for token in [t for t, (_, s) in self._items.items() if s.user_id == user_id]:
            self._items.pop(token, None)

    def drop_token(self, token: str) -> None:
        self._items.pop(token, None)


@dataclass(frozen=True)
class SessionsRevoked(BusMessage, kind="revoke"):
    """These session tokens are revoked: every node drops them from its cache and closes the
    websockets opened with them."""

    tokens: list[str]


@dataclass(frozen=True)
class UserSessionsChanged(BusMessage, kind="invalidate_user"):
    """The user's sessions changed (roles, activation): every node drops its cached copies."""

    user_id: str


class AuthService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        users_service: UsersService,
        bus: ClusterBus,
        mfa: MfaService,
    ) -> None:
        self.db = db
        self.settings = settings
        self.users = users_service
        self.bus = bus
        self.mfa = mfa
        self.cache = SessionCache(settings.ServiceSettings.SessionCacheInMinutes * 60)
        self._lookups: Batcher[str, None, Session | None] = Batcher(self._load, None)
        bus.subscribe(SessionsRevoked, self._on_revoked)
        bus.subscribe(UserSessionsChanged, self._on_user_changed)

    async def _revoked(self, tokens: set[str]) -> None:
        for token in tokens:
            self.cache.drop_token(token)
        await self.bus.publish(SessionsRevoked(sorted(tokens)))

    async def _on_revoked(self, message: SessionsRevoked) -> None:
        for token in message.tokens:
            self.cache.drop_token(token)

    async def invalidate_user_everywhere(self, user_id: str) -> None:
        """Drops the user's cached sessions here and, through the bus, on every other node."""
        self.cache.drop_user(user_id)
        await self.bus.publish(UserSessionsChanged(user_id))

    async def _on_user_changed(self, message: UserSessionsChanged) -> None:
        self.cache.drop_user(message.user_id)

    async def login(
        self, login_id: object, password: object, device_id: str = "", mfa_token: str = ""
    ) -> tuple[dict[str, Any], Session]:
        if not isinstance(login_id, str) or not login_id or not isinstance(password, str):
            raise AppError(
                "api.user.login.blank_pwd.app_error", "Login id and password are required.", 400
            )
        lowered = login_id.lower()
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(users).where(or_(users.c.username == lowered, users.c.email == lowered))
                )
            ).first()
        invalid = AppError(
            "api.user.login.invalid_credentials_email_username",
            "Enter a valid email or username and/or password.",
            401,
        )
        if row is None:
            raise invalid
        if row.is_bot:
            raise AppError(
                "api.user.login.bot_login_forbidden.app_error", "Bot login is forbidden.", 401
            )
        if row.delete_at:
            raise AppError(
                "api.user.login.inactive.app_error",
                "Login failed because your account has been deactivated.",
                401,
            )
        limit = self.settings.ServiceSettings.MaximumLoginAttempts
        if row.failed_attempts >= limit:
            raise AppError(
                "api.user.check_user_login_attempts.too_many.app_error",
                "Your account is locked because of too many failed password attempts.",
                401,
            )
        if not await verify_password(row.password, password):
            await self._count_failure(row.id)
            raise invalid
        try:
            await self.mfa.check_login(row, mfa_token)
        except AppError:
            # Without a code this was the client asking whether one is needed (Mattermost's
            # pre-flight); a wrong code counts as a failed attempt.
            if mfa_token:
                await self._count_failure(row.id)
            raise
        session = await self.create_session(row.id, row.roles, device_id)
        async with self.db.write() as conn:
            await conn.execute(
                update(users)
                .where(users.c.id == row.id)
                .values(failed_attempts=0, last_login=now_ms())
            )
        return user_json(row), session

    async def _count_failure(self, user_id: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(failed_attempts=users.c.failed_attempts + 1)
            )

    async def double_check_password(self, user_id: str, password: object) -> None:
        """For a signed-in user proving who they are again (changing their password): the
        login's attempt limit and failure count apply (Mattermost's `DoubleCheckPassword`)."""
        row = await self.users.get_row(user_id)
        if row.failed_attempts >= self.settings.ServiceSettings.MaximumLoginAttempts:
            raise AppError(
                "api.user.check_user_login_attempts.too_many.app_error",
                "Your account is locked because of too many failed password attempts.",
                401,
            )
        if not isinstance(password, str) or not await verify_password(row.password, password):
            await self._count_failure(row.id)
            raise AppError(
                "api.user.update_password.incorrect.app_error",
                'The "Current Password" you entered is incorrect. Please check that Caps Lock '
                "is off and try again.",
                400,
            )
        async with self.db.write() as conn:
            await conn.execute(update(users).where(users.c.id == row.id).values(failed_attempts=0))

    async def create_session(self, user_id: str, roles: str, device_id: str = "") -> Session:
        service = self.settings.ServiceSettings
        hours = service.SessionLengthMobileInHours if device_id else service.SessionLengthWebInHours
        now = now_ms()
        session = Session(
            id=new_id(),
            token=new_id(),
            user_id=user_id,
            roles=roles,
            csrf_token=new_id(),
            expires_at=now + hours * HOUR_MS,
            device_id=device_id,
        )
        async with self.db.write() as conn:
            await conn.execute(
                insert(sessions).values(
                    id=session.id,
                    token=session.token,
                    create_at=now,
                    expires_at=session.expires_at,
                    last_activity_at=now,
                    user_id=user_id,
                    device_id=device_id,
                    roles=roles,
                    is_oauth=False,
                    csrf_token=session.csrf_token,
                    props={},
                )
            )
        return session

    async def resolve(self, token: str) -> Session | None:
        """The live session for `token`, or None when it is unknown, expired or revoked.
        Lookups that miss the cache at the same time are made together (`_load`)."""
        cached = self.cache.get(token)
        if cached is not None and (not cached.expires_at or cached.expires_at > now_ms()):
            return cached
        return await self._lookups.submit(token, None)

    async def _load(self, wanted: dict[str, None]) -> dict[str, Session | None]:
        """Sessions for many tokens in two queries (sessions, then personal access tokens for
        the rest) instead of up to two per token: a burst of websockets (each resolving its
        token) or of requests after a restart comes down to a few queries."""
        tokens = list(wanted)
        found: dict[str, Session | None] = {}
        now = now_ms()
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(
                        sessions,
                        users.c.roles.label("user_roles"),
                        users.c.delete_at,
                        users.c.is_bot,
                        users.c.mfa_active,
                    )
                    .join(users, users.c.id == sessions.c.user_id)
                    .where(sessions.c.token.in_(tokens))
                )
            ).all()
            for row in rows:
                if (row.expires_at and row.expires_at <= now) or row.delete_at:
                    found[row.token] = None
                    continue
                found[row.token] = Session(
                    id=row.id,
                    token=row.token,
                    user_id=row.user_id,
                    roles=row.user_roles,
                    csrf_token=row.csrf_token,
                    expires_at=row.expires_at,
                    device_id=row.device_id,
                    is_bot=row.is_bot,
                    mfa_active=row.mfa_active,
                )
            rest = [t for t in tokens if t not in found]
            if rest and self.settings.ServiceSettings.EnableUserAccessTokens:
                pats = (
                    await conn.execute(
                        select(
                            user_access_tokens,
                            users.c.roles,
                            users.c.delete_at,
                            users.c.is_bot,
                            users.c.mfa_active,
                        )
                        .join(users, users.c.id == user_access_tokens.c.user_id)
                        .where(user_access_tokens.c.token.in_(rest))
                    )
                ).all()
                for pat in pats:
                    if not pat.is_active or pat.delete_at:
                        continue
                    found[pat.token] = Session(
                        id=pat.id,
                        token=pat.token,
                        user_id=pat.user_id,
                        roles=pat.roles,
                        csrf_token="",
                        expires_at=0,
                        is_access_token=True,
                        is_bot=pat.is_bot,
                        mfa_active=pat.mfa_active,
                    )
        for session in found.values():
            if session is not None:
                self.cache.put(session)
        return found

    async def attach_device(self, session: Session, device_id: str) -> None:
        """Ties a mobile device (its push id) to this session, as the mobile app asks on
        start-up: the session now lasts `SessionLengthMobileInHours`, and the user's other
        sessions on the same device end (one session per device, as in Mattermost). A
        personal access token has no session row: nothing to attach."""
        if session.is_access_token:
            return
        hours = self.settings.ServiceSettings.SessionLengthMobileInHours
        same_device = (
            sessions.c.user_id == session.user_id,
            sessions.c.device_id == device_id,
            sessions.c.id != session.id,
        )
        async with self.db.write() as conn:
            tokens = set(
                (await conn.execute(select(sessions.c.token).where(*same_device))).scalars()
            )
            await conn.execute(delete(sessions).where(*same_device))
            await conn.execute(
                update(sessions)
                .where(sessions.c.id == session.id)
                .values(device_id=device_id, expires_at=now_ms() + hours * HOUR_MS)
            )
        self.cache.drop_token(session.token)
        if tokens:
            await self._revoked(tokens)

    async def revoke_session(self, session_id: str, user_id: str) -> None:
        where = (sessions.c.id == session_id, sessions.c.user_id == user_id)
        async with self.db.write() as conn:
            tokens = set((await conn.execute(select(sessions.c.token).where(*where))).scalars())
            await conn.execute(delete(sessions).where(*where))
        if not tokens:
            raise not_found("session", "app.session.get.app_error")
        self.cache.drop_user(user_id)
        await self._revoked(tokens)

    async def logout(self, session: Session) -> None:
        if not session.is_access_token:
            async with self.db.write() as conn:
                await conn.execute(delete(sessions).where(sessions.c.id == session.id))
            await self._revoked({session.token})

    async def list_sessions(self, user_id: str) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(sessions)
                    .where(sessions.c.user_id == user_id)
                    .order_by(sessions.c.last_activity_at.desc())
                )
            ).all()
        return [
            Session(
                id=r.id,
                token="",
                user_id=r.user_id,
                roles=r.roles,
                csrf_token=r.csrf_token,
                expires_at=r.expires_at,
                device_id=r.device_id,
            ).to_json(r.create_at, r.last_activity_at)
            for r in rows
        ]

    async def revoke_all(self, user_id: str, keep_session_id: str = "") -> None:
        """Ends every session of the user (but `keep_session_id`'s) on every node."""
        where = [sessions.c.user_id == user_id]
        if keep_session_id:
            where.append(sessions.c.id != keep_session_id)
        async with self.db.write() as conn:
            tokens = set((await conn.execute(select(sessions.c.token).where(*where))).scalars())
            await conn.execute(delete(sessions).where(*where))
        self.cache.drop_user(user_id)
        await self._revoked(tokens)

    # Personal access tokens

    def _require_tokens_enabled(self) -> None:
        if not self.settings.ServiceSettings.EnableUserAccessTokens:
            raise AppError(
                "app.user_access_token.disabled",
                "Personal access tokens are disabled on this server.",
                501,
            )

    async def create_access_token(
        self, user_id: str, description: str, check_enabled: bool = True
    ) -> dict[str, Any]:
        if check_enabled:
            self._require_tokens_enabled()
        if not description or len(description) > 255:
            raise AppError(
                "model.user_access_token.is_valid.description.app_error",
                "Invalid description, must be 255 or less characters.",
                400,
            )
        await self.users.get_row(user_id)
        token = {
            "id": new_id(),
            "token": new_id(),
            "user_id": user_id,
            "description": description,
            "is_active": True,
            "create_at": now_ms(),
        }
        async with self.db.write() as conn:
            await conn.execute(insert(user_access_tokens).values(**token))
        return {k: token[k] for k in ("id", "token", "user_id", "description", "is_active")}

    async def list_access_tokens(self, user_id: str) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(user_access_tokens).where(user_access_tokens.c.user_id == user_id)
                )
            ).all()
        return [
            {
                "id": r.id,
                "user_id": r.user_id,
                "description": r.description,
                "is_active": r.is_active,
            }
            for r in rows
        ]

    async def get_access_token(self, token_id: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            r = (
                await conn.execute(
                    select(user_access_tokens).where(user_access_tokens.c.id == token_id)
                )
            ).first()
        if r is None:
            raise not_found("token", "app.user_access_token.get_by_id.app_error")
        return {
            "id": r.id,
            "user_id": r.user_id,
            "description": r.description,
            "is_active": r.is_active,
        }

    async def set_access_token_active(self, token_id: str, active: bool) -> None:
        token = await self.get_access_token(token_id)
        async with self.db.write() as conn:
            await conn.execute(
                update(user_access_tokens)
                .where(user_access_tokens.c.id == token_id)
                .values(is_active=active)
            )
        self.cache.drop_user(token["user_id"])
        if not active:
            await self._revoked({await self._token_value(token_id)})

    async def _token_value(self, token_id: str) -> str:
        async with self.db.read() as conn:
            value = (
                await conn.execute(
                    select(user_access_tokens.c.token).where(user_access_tokens.c.id == token_id)
                )
            ).scalar_one_or_none()
        return value or ""

    async def revoke_access_token(self, token_id: str) -> None:
        token = await self.get_access_token(token_id)
        value = await self._token_value(token_id)
        async with self.db.write() as conn:
            await conn.execute(
                delete(user_access_tokens).where(user_access_tokens.c.id == token_id)
            )
        self.cache.drop_user(token["user_id"])
        await self._revoked({value})
