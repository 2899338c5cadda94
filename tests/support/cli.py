"""Running the `hubbub` command line in a subprocess, as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def run(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith("MM_") and k != "HUBBUB_CONFIG"
    }
    return subprocess.run(
        [sys.executable, "-m", "hubbub.cli.main", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {
        "MM_SQLSETTINGS_DATASOURCE": str(tmp_path / "hubbub.db"),
        "MM_FILESETTINGS_DIRECTORY": str(tmp_path / "files"),
    }
