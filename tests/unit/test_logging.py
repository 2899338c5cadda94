"""Log lines: an exception is one `error` field; its traceback is printed once per distinct
error per minute (fake clock); the file handler writes JSON and rotates by size."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hubbub.config.settings import LogConfig
from hubbub.observability.logging import (
    JSONFormatter,
    TracebackThrottle,
    error_line,
    log_file_path,
    setup_logging,
)
from tests.support.clock import FakeClock


def _record(logger: str, msg: str, exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException as caught:
        return logging.LogRecord(
            logger,
            logging.WARNING,
            __file__,
            1,
            msg,
            None,
            (type(caught), caught, caught.__traceback__),
        )


def test_error_is_one_line_and_the_traceback_comes_once_a_minute() -> None:
    clock = FakeClock()
    throttle = TracebackThrottle(every=60, clock=clock.monotonic)
    fmt = JSONFormatter()

    def emit(msg: str, exc: BaseException) -> dict[str, object]:
        record = _record("hubbub.cluster", msg, exc)
        throttle.filter(record)
        line = fmt.format(record)
        assert "\n" not in line
        return dict(json.loads(line))

    refused = ConnectionError("Error 111 connecting to 127.0.0.1:6379.\nConnection refused.")
    first = emit("cluster bus disconnected; retrying", refused)
    assert first["error"] == (
        "ConnectionError: Error 111 connecting to 127.0.0.1:6379. Connection refused."
    )
    assert "Traceback" in str(first["stacktrace"])
    again = emit("cluster bus disconnected; retrying", refused)
    assert "stacktrace" not in again and again["error"] == first["error"]
    # Another error (type or message) is distinct: its first traceback is printed.
    other = emit("cluster bus disconnected; retrying", TimeoutError("Timeout reading"))
    assert "stacktrace" in other
    assert "stacktrace" in emit("could not renew the leader lease", refused)
    clock.advance(61)
    assert "stacktrace" in emit("cluster bus disconnected; retrying", refused)


def test_a_chained_cause_is_named_on_the_same_line() -> None:
    try:
        try:
            raise OSError("connection reset")
        except OSError as inner:
            raise RuntimeError("publish failed") from inner
    except RuntimeError as exc:
        assert error_line(exc) == "RuntimeError: publish failed (from OSError: connection reset)"


def test_log_file_location_is_a_directory_or_a_file(tmp_path: Path) -> None:
    assert log_file_path("") == Path("logs/hubbub.log")
    assert log_file_path(str(tmp_path)) == tmp_path / "hubbub.log"
    assert log_file_path(str(tmp_path / "node.log")) == tmp_path / "node.log"


def test_the_file_gets_json_at_its_level_and_rotates_by_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = LogConfig(
        EnableConsole=True,
        ConsoleLevel="ERROR",
        EnableFile=True,
        FileLevel="INFO",
        FileJson=True,
        FileLocation=str(tmp_path),
        FileMaxSizeMB=1,
        FileMaxBackups=2,
    )
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging(settings)
        log = logging.getLogger("hubbub.test")
        log.debug("not written anywhere")
        log.info("written to the file only", extra={"node": "n1"})
        for handler in root.handlers:
            handler.flush()
        lines = (tmp_path / "hubbub.log").read_text().splitlines()
        assert [json.loads(x)["msg"] for x in lines] == ["written to the file only"]
        assert json.loads(lines[0])["node"] == "n1"
        assert "written to the file only" not in capsys.readouterr().err  # console: ERROR
        filler = "x" * 1000
        for i in range(2500):  # ~2.6 MB: rotates twice, keeps two old files
            log.info(filler, extra={"i": i})
        files = sorted(p.name for p in tmp_path.iterdir())
        assert files == ["hubbub.log", "hubbub.log.1", "hubbub.log.2"]
        assert all((tmp_path / f).stat().st_size <= 1024 * 1024 + 2000 for f in files)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
