"""The authenticated caller of a request or websocket."""

from __future__ import annotations

from dataclasses import dataclass

from hubbub.errors import forbidden


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    token: str
    user_id: str
    roles: str
    csrf_token: str
    expires_at: int  # ms; 0 means never (access tokens)
    device_id: str = ""
    is_access_token: bool = False
    is_bot: bool = False
    mfa_active: bool = False

    @property
    def is_system_admin(self) -> bool:
        return "system_admin" in self.roles.split()

    def to_json(self, create_at: int = 0, last_activity_at: int = 0) -> dict[str, object]:
        return {
            "id": self.id,
            "token": "",
            "create_at": create_at,
            "expires_at": self.expires_at,
            "last_activity_at": last_activity_at,
            "user_id": self.user_id,
            "device_id": self.device_id,
            "roles": self.roles,
            "is_oauth": False,
            "props": {"csrf": self.csrf_token},
            "team_members": [],
        }


def require_self_or_admin(session: Session, user_id: str) -> None:
    """Acting on another user's data needs `edit_other_users` (system admins)."""
    if session.user_id != user_id and not session.is_system_admin:
        raise forbidden("edit_other_users")
