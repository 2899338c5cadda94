"""Logging in Mattermost's shape: JSON lines with timestamp, level, msg, caller and fields."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from hubbub.config.settings import LogConfig

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower().replace("warning", "warn"),
            "msg": record.getMessage(),
            "caller": f"{record.module}.py:{record.lineno}",
            "logger": record.name,
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{self.formatTime(record)} {record.levelname:<5} {record.getMessage()}"
        if extra:
            line += " " + extra
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class QuietClientErrors(logging.Filter):
    """uvicorn logs a traceback at error level for every websocket text message that is not
    UTF-8 (it then closes with 1007), and a client can send those at will, filling the log:
    one info line without the traceback instead; the close itself is logged by hubbub."""

    MESSAGE = "Invalid UTF-8 sequence received from client"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith(self.MESSAGE):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        return True


def setup_logging(settings: LogConfig) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if not settings.EnableConsole:
        root.addHandler(logging.NullHandler())
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if settings.ConsoleJson else ConsoleFormatter())
    root.addHandler(handler)
    root.setLevel(_LEVELS[settings.ConsoleLevel])
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, QuietClientErrors) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(QuietClientErrors())
