"""Password reset tokens, as Mattermost's `password_recovery` tokens: 64 random characters,
valid for one hour, used once. Mattermost mails the link; hubbub sends no mail, so an operator
issues the token (`hubbub user reset-token --user NAME`) and hands the link over, and the user
sets a new password with `POST /api/v4/users/password/reset`.
"""

from __future__ import annotations

import secrets
import string

import orjson
from sqlalchemy import delete, insert, select

from hubbub.errors import AppError
from hubbub.ids import now_ms
from hubbub.services.users import UsersService
from hubbub.store.db import Database
from hubbub.store.tables import tokens

TOKEN_TYPE = "password_recovery"
TOKEN_SIZE = 64
EXPIRY_MS = 60 * 60 * 1000
_ALPHABET = string.ascii_lowercase + string.digits


def invalid_link() -> AppError:
    return AppError(
        "api.user.reset_password.invalid_link.app_error",
        "The reset link provided is invalid.",
        400,
    )


class PasswordResets:
    def __init__(self, db: Database, users_service: UsersService) -> None:
        self.db = db
        self.users = users_service

    async def issue(self, user_id: str) -> dict[str, object]:
        """A new token for the user (and the expired tokens of everyone are removed)."""
        row = await self.users.get_row(user_id)
        if row.is_bot or row.delete_at:
            raise AppError(
                "api.user.send_password_reset.send.app_error",
                "A password reset is only possible for an active account with a password.",
                400,
            )
        token = "".join(secrets.choice(_ALPHABET) for _ in range(TOKEN_SIZE))
        now = now_ms()
        extra = orjson.dumps({"UserId": row.id, "Email": row.email}).decode()
        async with self.db.write() as conn:
            await conn.execute(
                delete(tokens).where(
                    tokens.c.type == TOKEN_TYPE, tokens.c.create_at <= now - EXPIRY_MS
                )
            )
            await conn.execute(
                insert(tokens).values(token=token, create_at=now, type=TOKEN_TYPE, extra=extra)
            )
        return {"token": token, "user_id": row.id, "expires_at": now + EXPIRY_MS}

    async def redeem(self, token: str, new_password: object) -> str:
        """Sets the new password of the token's user and spends the token; the user id."""
        password = self.users.validate_password(new_password)
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    select(tokens).where(tokens.c.token == token, tokens.c.type == TOKEN_TYPE)
                )
            ).first()
            if row is None:
                raise invalid_link()
            # Spent even when it turns out expired or stale: it can never be used again.
            await conn.execute(delete(tokens).where(tokens.c.token == token))
        expired = AppError(
            "api.user.reset_password.link_expired.app_error",
            "The password reset link has expired.",
            400,
        )
        if now_ms() - row.create_at >= EXPIRY_MS:
            raise expired
        data = orjson.loads(row.extra)
        user = await self.users.get_row(str(data.get("UserId", "")))
        if user.email != data.get("Email") or user.delete_at:
            raise expired
        await self.users.set_password(user.id, password)
        return str(user.id)
