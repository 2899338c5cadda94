"""Multi-factor authentication with TOTP, as Mattermost's (`ServiceSettings.
EnableMultifactorAuthentication`): a user generates a secret (shown as a QR code), proves they
stored it by activating MFA with a code, and from then on logs in with a code as well.

The secret lives in `users.mfa_secret`; the time steps of the codes already accepted live in
`users.mfa_used_timestamps` and are written with a compare-and-set on their previous value, so
the same code cannot log in twice, even raced on two nodes at once. Codes themselves are
`hubbub.services.totp`.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import segno
from sqlalchemy import Row, or_, select, update

from hubbub.config import Settings
from hubbub.errors import AppError
from hubbub.services import totp
from hubbub.services.users import UsersService
from hubbub.store.db import Database
from hubbub.store.tables import users


def mfa_disabled() -> AppError:
    return AppError(
        "mfa.mfa_disabled.app_error",
        "Multi-factor authentication has been disabled on this server.",
        501,
    )


def _parse_steps(raw: str) -> list[int]:
    return [int(s) for s in raw.split() if s.isdigit()]


def issuer_of(site_url: str) -> str:
    """The name an authenticator app shows: the site's host, else "Mattermost" (as Mattermost)."""
    host = urlsplit(site_url.strip()).netloc if "://" in site_url else site_url.strip()
    host = host.removeprefix("www.")
    return host or "Mattermost"


class MfaService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        users_service: UsersService,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.settings = settings
        self.users = users_service
        self.clock = clock

    @property
    def enabled(self) -> bool:
        return self.settings.ServiceSettings.EnableMultifactorAuthentication

    @property
    def enforced(self) -> bool:
        service = self.settings.ServiceSettings
        return service.EnableMultifactorAuthentication and service.EnforceMultifactorAuthentication

    async def generate(self, user_id: str) -> dict[str, str]:
        """A new secret for the user (replacing one not yet activated) and its QR code, a
        base64 PNG of the `otpauth://` URI, as Mattermost's `mfa/generate` answers."""
        row = await self.users.get_row(user_id)
        if not self.enabled:
            raise mfa_disabled()
        if row.is_bot:
            raise AppError(
                "api.user.activate_mfa.email_and_ldap_only.app_error",
                "MFA is not available for this account type.",
                400,
            )
        if row.mfa_active:
            raise AppError(
                "mfa.generate_qr_code.active.app_error",
                "MFA is already active: turn it off before generating a new secret.",
                400,
            )
        secret = totp.new_secret()
        uri = totp.otpauth_uri(issuer_of(self.settings.ServiceSettings.SiteURL), row.email, secret)
        png = io.BytesIO()
        segno.make(uri, error="h").save(png, kind="png", scale=4, border=4)
        async with self.db.write() as conn:
            await conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(mfa_secret=secret, mfa_used_timestamps="")
            )
        return {"secret": secret, "qr_code": base64.b64encode(png.getvalue()).decode()}

    async def activate(self, user_id: str, code: str) -> None:
        row = await self.users.get_row(user_id)
        if not self.enabled:
            raise mfa_disabled()
        bad = AppError("mfa.activate.bad_token.app_error", "Invalid MFA token.", 401)
        if not row.mfa_secret:
            raise bad
        if not await self._accept(row, code):
            raise bad
        async with self.db.write() as conn:
            await conn.execute(update(users).where(users.c.id == user_id).values(mfa_active=True))

    async def deactivate(self, user_id: str) -> None:
        await self.users.get_row(user_id)
        async with self.db.write() as conn:
            await conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(mfa_active=False, mfa_secret="", mfa_used_timestamps="")
            )

    async def check_login(self, row: Row[Any], code: str) -> None:
        """Raises unless the user needs no code or `code` is valid and unused (Mattermost's
        `CheckUserMfa`): a missing or malformed code is `mfa.validate_token.authenticate`, which
        tells clients to ask for one; a wrong code is `bad_code`."""
        if not row.mfa_active or not self.enabled:
            return
        if not totp.well_formed(code):
            raise AppError(
                "mfa.validate_token.authenticate.app_error",
                "Enter your MFA token.",
                401,
            )
        if not await self._accept(row, code):
            raise AppError("api.user.check_user_mfa.bad_code.app_error", "Invalid MFA token.", 401)

    async def required_for(self, login_id: str) -> bool:
        """`POST /users/mfa`: whether logging in as `login_id` needs a code."""
        if not self.enabled or not login_id:
            return False
        lowered = login_id.lower()
        async with self.db.read() as conn:
            active = (
                await conn.execute(
                    select(users.c.mfa_active).where(
                        or_(users.c.username == lowered, users.c.email == lowered)
                    )
                )
            ).scalar_one_or_none()
        return bool(active)

    async def _accept(self, row: Row[Any], code: str) -> bool:
        """Verifies `code` and records its step; False when invalid or already used (also when
        a concurrent login used it first: the compare-and-set lost)."""
        now = self.clock()
        previous = row.mfa_used_timestamps
        step = totp.verify(row.mfa_secret, code, now, _parse_steps(previous))
        if step is None:
            return False
        kept = totp.recent_steps([*_parse_steps(previous), step], now)
        async with self.db.write() as conn:
            result = await conn.execute(
                update(users)
                .where(users.c.id == row.id, users.c.mfa_used_timestamps == previous)
                .values(mfa_used_timestamps=" ".join(map(str, kept)))
            )
        return bool(result.rowcount)
