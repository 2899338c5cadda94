"""Path parameters that need the caller: `me` in place of a user id."""

from __future__ import annotations

from starlette.requests import Request

from hubbub.api.auth import require_session
from hubbub.errors import bad_param
from hubbub.ids import is_valid_id


def user_id_param(request: Request, name: str = "user_id") -> str:
    value = request.path_params.get(name, "")
    if value == "me":
        return require_session(request).user_id
    if not is_valid_id(value):
        raise bad_param(name)
    return str(value)
