"""Logging in Mattermost's shape: JSON lines with timestamp, level, msg, caller and fields, to
the console (stderr) and, with `LogSettings.EnableFile`, to a file rotated by size.

An exception is always one field, `error` (`ConnectionError: Error 111 connecting to ...`), on
the same line. Its traceback (`stacktrace`) is printed only the first time that error is seen
in a minute (the same logger, message, exception type and raising line): a loop that retries
while Redis restarts logs one line per retry, not kilobytes of the same traceback each time
(`TracebackThrottle`, docs/operations.md, "Logs").
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from hubbub.config.settings import LogConfig

_TRACE = "hubbub_stacktrace"  # set on a record by the throttle: print its traceback or not
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    _TRACE,
}
_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
}
TRACEBACK_EVERY = 60.0  # seconds between two tracebacks of the same error
LOG_FILE_NAME = "hubbub.log"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


def error_line(exc: BaseException | None) -> str:
    """`Type: message` on one line (a chained cause is named, not printed)."""
    if exc is None:
        return ""
    text = " ".join(str(exc).split()) or "(no message)"
    line = f"{type(exc).__name__}: {text}"
    cause = exc.__cause__
    if cause is None and not exc.__suppress_context__:
        cause = exc.__context__
    if cause is not None:
        line += f" (from {type(cause).__name__}: {' '.join(str(cause).split())[:200]})"
    return line


class TracebackThrottle(logging.Filter):
    """Decides once per record whether its traceback is printed: the first time an error is
    seen within `every` seconds. Installed on every handler; the first handler's decision is
    stored on the record, so the console and the file agree."""

    def __init__(
        self, every: float = TRACEBACK_EVERY, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.every = every
        self.clock = clock
        self.seen: dict[tuple[str, ...], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or hasattr(record, _TRACE):
            return True
        exc = record.exc_info[1]
        tb = record.exc_info[2]
        where = ""
        if tb is not None:
            last = traceback.extract_tb(tb)[-1]
            where = f"{last.filename}:{last.lineno}"
        key = (record.name, str(record.msg), type(exc).__name__, where)
        now = self.clock()
        first = now - self.seen.get(key, -self.every) >= self.every
        if first:
            self.seen[key] = now
            if len(self.seen) > 1000:  # distinct errors only; keep it bounded anyway
                oldest = min(self.seen, key=self.seen.__getitem__)
                del self.seen[oldest]
        setattr(record, _TRACE, first)
        return True


def _wants_trace(record: logging.LogRecord) -> bool:
    return bool(record.exc_info) and bool(getattr(record, _TRACE, True))


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
            entry["error"] = error_line(record.exc_info[1])
            if _wants_trace(record):
                entry["stacktrace"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{self.formatTime(record)} {record.levelname:<5} {record.getMessage()}"
        if extra:
            line += " " + extra
        if record.exc_info:
            line += f" error={error_line(record.exc_info[1])!r}"
            if _wants_trace(record):
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


def log_file_path(location: str) -> Path:
    """`FileLocation` as Mattermost reads it: a directory (the log file inside it), or a file;
    empty means ./logs/."""
    path = Path(location or "./logs")
    if path.suffix == ".log" and not path.is_dir():
        return path
    return path / LOG_FILE_NAME


def file_handler(settings: LogConfig) -> logging.Handler:
    path = log_file_path(settings.FileLocation)
    path.parent.mkdir(parents=True, exist_ok=True)
    max_bytes = settings.FileMaxSizeMB * 1024 * 1024
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=settings.FileMaxBackups, encoding="utf-8"
    )
    handler.setFormatter(JSONFormatter() if settings.FileJson else ConsoleFormatter())
    handler.setLevel(_LEVELS[settings.FileLevel])
    return handler


def setup_logging(settings: LogConfig, throttle: TracebackThrottle | None = None) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    throttle = throttle or TracebackThrottle()
    handlers: list[logging.Handler] = []
    if settings.EnableConsole:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(JSONFormatter() if settings.ConsoleJson else ConsoleFormatter())
        console.setLevel(_LEVELS[settings.ConsoleLevel])
        handlers.append(console)
    if settings.EnableFile:
        handlers.append(file_handler(settings))
    if not handlers:
        root.addHandler(logging.NullHandler())
        return
    for handler in handlers:
        handler.addFilter(throttle)
        root.addHandler(handler)
    root.setLevel(min(h.level for h in handlers))
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, QuietClientErrors) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(QuietClientErrors())
