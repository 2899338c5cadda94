"""Team rows: Mattermost's Team JSON shape and the name and field rules a team must satisfy.

Pure functions, no I/O: `TeamAccess`, `TeamsService` and `TeamMembers` share them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row

from hubbub.errors import AppError

TEAM_NAME_MIN = 2
TEAM_NAME_MAX = 64
TEAM_DISPLAY_NAME_MAX = 64
TEAM_NAME_RE = re.compile(r"^[a-z0-9]+([a-z\-0-9]+|(__)?)[a-z0-9]+$")
# Mattermost refuses team names that *start* with any of these (`IsReservedTeamName`).
RESERVED_TEAM_NAMES = (
    "admin",
    "api",
    "channel",
    "claim",
    "error",
    "files",
    "help",
    "landing",
    "login",
    "mfa",
    "oauth",
    "plug",
    "plugins",
    "post",
    "signup",
    "boards",
    "playbooks",
)


def team_json(row: Row[Any] | Mapping[str, Any], sanitize: bool = False) -> dict[str, Any]:
    """A Team in Mattermost's shape; `sanitize` blanks `email` and `invite_id` as `Sanitize()`."""
    t = row._mapping if isinstance(row, Row) else row
    data: dict[str, Any] = {
        "id": t["id"],
        "create_at": t["create_at"],
        "update_at": t["update_at"],
        "delete_at": t["delete_at"],
        "display_name": t["display_name"],
        "name": t["name"],
        "description": t["description"],
        "email": "" if sanitize else t["email"],
        "type": t["type"],
        "company_name": t["company_name"],
        "allowed_domains": t["allowed_domains"],
        "invite_id": "" if sanitize else t["invite_id"],
        "allow_open_invite": t["allow_open_invite"],
        "scheme_id": None,
        "group_constrained": None,
        "policy_id": None,
        "cloud_limits_archived": False,
    }
    if t["last_team_icon_update"]:
        data["last_team_icon_update"] = t["last_team_icon_update"]
    return data


def validate_team_name(name: str) -> None:
    if len(name) > TEAM_NAME_MAX:
        raise AppError("model.team.is_valid.url.app_error", "Invalid URL Identifier.", 400)
    if name.startswith(RESERVED_TEAM_NAMES):
        raise AppError(
            "model.team.is_valid.reserved.app_error", "This URL is unavailable. Try another.", 400
        )
    if len(name) < TEAM_NAME_MIN or not TEAM_NAME_RE.match(name):
        raise AppError(
            "model.team.is_valid.characters.app_error",
            "Name must be 2 or more lowercase alphanumeric characters.",
            400,
        )


def validate_team_fields(values: Mapping[str, Any]) -> None:
    """Mattermost's `Team.IsValid` for the fields a client can set."""
    display_name = values.get("display_name")
    if display_name is not None and (not display_name or len(display_name) > TEAM_DISPLAY_NAME_MAX):
        raise AppError("model.team.is_valid.name.app_error", "Invalid name.", 400)
    if len(values.get("description", "")) > 255:
        raise AppError("model.team.is_valid.description.app_error", "Invalid description.", 400)
    if len(values.get("company_name", "")) > 64:
        raise AppError("model.team.is_valid.company.app_error", "Invalid company name.", 400)
    if len(values.get("allowed_domains", "")) > 1000:
        raise AppError("model.team.is_valid.domains.app_error", "Invalid allowed domains.", 400)
    if "name" in values:
        validate_team_name(values["name"])
    if values.get("type", "O") not in ("O", "I"):
        raise AppError("model.team.is_valid.type.app_error", "Invalid type.", 400)
