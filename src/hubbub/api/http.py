"""Request parsing and response rendering shared by every route module.

Every JSON response goes out with exactly `Content-Type: application/json` (Mattermost clients
compare the header for equality). Parsing helpers raise `AppError`, never return partial data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from hubbub.errors import AppError, bad_param
from hubbub.ids import is_valid_id

JSON_TYPE = "application/json"
STATUS_OK = {"status": "OK"}
MAX_PER_PAGE = 200
DEFAULT_PER_PAGE = 60
MAX_PAGE = (2**63 - 1) // MAX_PER_PAGE
MAX_ID_LIST = 1000

T = TypeVar("T")


class JSONResponse(Response):
    media_type = JSON_TYPE

    def __init__(
        self, content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(orjson.dumps(content), status_code, dict(headers or {}))

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        super().init_headers(headers)
        # Starlette appends "; charset=utf-8" to text types only and already wrote exactly
        # JSON_TYPE unless `headers` named a type of its own: be explicit, clients compare.
        if headers and any(name.lower() == "content-type" for name in headers):
            self.headers["content-type"] = JSON_TYPE


def ok(
    content: Any = None, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return JSONResponse(STATUS_OK if content is None else content, status_code, headers)


def created(content: Any) -> Response:
    return JSONResponse(content, 201)


async def read_json(request: Request, name: str = "body") -> Any:
    """The parsed JSON body; an empty body is `None`. Malformed JSON is a 400 AppError."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise AppError(
            "api.context.invalid_body_param.app_error",
            f"Invalid or missing {name} in request body: not valid JSON.",
            400,
        ) from None
    if b"\\u0000" in raw and _has_nul(data):
        # PostgreSQL cannot store NUL characters in text; refuse them for every database alike.
        raise AppError(
            "api.context.invalid_body_param.app_error",
            f"Invalid {name} in request body: NUL characters are not allowed.",
            400,
        )
    return data


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


async def read_object(request: Request, name: str) -> dict[str, Any]:
    data = await read_json(request, name)
    if not isinstance(data, dict):
        raise AppError(
            "api.context.invalid_body_param.app_error",
            f"Invalid or missing {name} in request body: expected a JSON object.",
            400,
        )
    return data


async def read_list(request: Request, name: str, item: type[T] = str) -> list[T]:  # type: ignore[assignment]
    data = await read_json(request, name)
    if not isinstance(data, list) or not all(isinstance(x, item) for x in data):
        raise AppError(
            "api.context.invalid_body_param.app_error",
            f"Invalid or missing {name} in request body: expected a JSON array.",
            400,
        )
    return data


def field(data: Mapping[str, Any], key: str, kind: type[T], default: T | None = None) -> T:
    """A typed field of a JSON object: wrong type is a 400 naming the field."""
    value = data.get(key, default)
    if value is None:
        if default is not None:
            return default
        raise AppError(
            "api.context.invalid_body_param.app_error",
            f"Invalid or missing {key} in request body.",
            400,
        )
    if kind is int and isinstance(value, bool):
        raise AppError(
            "api.context.invalid_body_param.app_error", f"Invalid {key} in request body.", 400
        )
    if not isinstance(value, kind):
        raise AppError(
            "api.context.invalid_body_param.app_error", f"Invalid {key} in request body.", 400
        )
    return value


def optional_field(data: Mapping[str, Any], key: str, kind: type[T]) -> T | None:
    """A typed field that may be left out: absent or null is None (a patch leaves it as it is)."""
    if data.get(key) is None:
        return None
    return field(data, key, kind)


def optional_str_map(data: Mapping[str, Any], key: str) -> dict[str, str] | None:
    """A JSON object of strings that may be left out (absent or null: None)."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise AppError(
            "api.context.invalid_body_param.app_error", f"Invalid {key} in request body.", 400
        )
    return value


def id_list(values: list[str], name: str) -> list[str]:
    """A list of ids from a request body: 1 to `MAX_ID_LIST` valid ids, else a 400 naming `name`."""
    if not values or len(values) > MAX_ID_LIST or not all(is_valid_id(v) for v in values):
        raise bad_param(name)
    return values


def path_id(request: Request, name: str) -> str:
    """A 26-character id from the path; `me` is not accepted here (see `user_id_param`)."""
    value = request.path_params.get(name, "")
    if not is_valid_id(value):
        raise bad_param(name)
    return str(value)


_INT64 = range(-(2**63), 2**63)
_DIGITS = re.compile(r"[+-]?[0-9]+")


def _int64(raw: str) -> int | None:
    """What Go's `strconv.ParseInt(raw, 10, 64)` accepts, else None (Python's `int` is laxer:
    it takes `1_000`, spaces and non-ASCII digits, and has no range)."""
    if not _DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if value in _INT64 else None


def query_int(request: Request, name: str, default: int = 0) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    value = _int64(raw)
    if value is None:
        raise bad_param(name)
    return value


def query_bool(request: Request, name: str, default: bool = False) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    return raw.lower() in {"true", "1", "yes"}


def paging(request: Request) -> tuple[int, int]:
    """`page` (invalid or negative -> 0) and `per_page` (invalid -> 60, above 200 -> 200).

    `page` is also capped so that `page * per_page` stays a valid 64-bit SQL OFFSET.
    """
    page = _int64(request.query_params.get("page", "0")) or 0
    page = min(max(0, page), MAX_PAGE)
    raw = request.query_params.get("per_page", request.query_params.get("pageSize", ""))
    per_page = _int64(raw) if raw else DEFAULT_PER_PAGE
    if per_page is None or per_page < 0:
        per_page = DEFAULT_PER_PAGE
    return page, min(per_page, MAX_PER_PAGE)


def etag_response(request: Request, etag: str, build: Any) -> Response:
    """Answers 304 when `If-None-Match` equals `etag`, else the JSON of `build` with the ETag."""
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return JSONResponse(build, headers={"ETag": etag})
