"""The authenticated caller of a request or websocket."""

from __future__ import annotations

from dataclasses import dataclass


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
