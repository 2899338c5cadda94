"""A failing browser test leaves what its pages showed: a screenshot and the console log of each
page under `test-artifacts/<test id>/`, both for pages of the test's own `pages` fixture (closed
when the test ends) and for pages a whole module shares. A passing test leaves nothing.

The probe tests run in a child pytest with this directory's conftest loaded as a plugin, so the
failures are real failures of real tests, and this test only reads what they left."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.browser import ARTIFACTS

PROBE = """
import pytest

from tests.support.browser import Pages


def _show(pages: Pages, name: str, text: str) -> None:
    page = pages.open(name, "http://127.0.0.1:9")
    page.set_content(f"<h1>{text}</h1>")
    page.evaluate("console.log('said by the probe')")


def test_own_pages_fail(pages: Pages) -> None:
    _show(pages, "own", "own page")
    assert False, "fails on purpose"


def test_module_pages_fail(module_browser_pages: Pages) -> None:
    _show(module_browser_pages, "shared", "shared page")
    assert False, "fails on purpose"


def test_passes(pages: Pages) -> None:
    _show(pages, "fine", "fine page")
"""

ROOT = Path(__file__).resolve().parents[2]


def test_a_failing_test_leaves_screenshots_and_console_logs(tmp_path: Path) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    folders = {
        name: ARTIFACTS / f"test_probe.py_{name}"
        for name in ("test_own_pages_fail", "test_module_pages_fail", "test_passes")
    }
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)
    try:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "tests.browser.conftest",
                "-p",
                "no:cacheprovider",
                "--rootdir",
                str(tmp_path),
                "-q",
                str(probe),
            ],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert "2 failed, 1 passed" in run.stdout, run.stdout + run.stderr
        for name, person in (("test_own_pages_fail", "own"), ("test_module_pages_fail", "shared")):
            shot = folders[name] / f"{person}.png"
            assert shot.read_bytes().startswith(b"\x89PNG"), shot
            log = (folders[name] / f"{person}.console.txt").read_text()
            assert "said by the probe" in log, log
        assert not folders["test_passes"].exists()
    finally:
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)
