"""The previous release of hubbub beside the current code, for the rolling-upgrade test.

`previous_release()` reads CHANGELOG.md: the newest release older than the running code whose
heading names its commit (`## 0.1.0 (commit <sha>, <date>)`). `installed(release)` checks that
commit out into a temporary git worktree and gives it a virtualenv of its own, with nothing
fetched: the checkout's `src` goes onto the venv's path through a `.pth` file, which is what
`pip install -e` writes for this package, and its dependencies are the running venv's packages
(the current lock file's pins; a release whose dependencies moved would need its own install
here). Nothing of the current checkout is importable from that venv, so `import hubbub` there is
the old release, which `installed` checks before handing it out.

The worktree needs the commit in the local repository: a full clone has it; a shallow one fetches
it from its origin, and when that fails too the error says so.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hubbub import __version__
from hubbub.cluster.versions import Version

REPO = Path(__file__).resolve().parents[2]
_HEADING = re.compile(r"^## (\d+\.\d+\.\d+) \(commit ([0-9a-f]{40})\b", re.MULTILINE)


@dataclass(frozen=True)
class Release:
    version: str
    commit: str


@dataclass(frozen=True)
class InstalledRelease:
    release: Release
    checkout: Path
    python: Path


def previous_release(changelog: Path = REPO / "CHANGELOG.md") -> Release:
    current = Version.parse(__version__)
    older = [
        Release(version, commit)
        for version, commit in _HEADING.findall(changelog.read_text())
        if Version.parse(version) < current
    ]
    if not older:
        raise LookupError(f"{changelog} names no release older than {__version__} with a commit")
    return max(older, key=lambda r: Version.parse(r.version))


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


# For the release's processes: a PYTHONPATH naming the current checkout's src would win over the
# venv's .pth (an empty value counts as unset).
RELEASE_ENV = {"PYTHONPATH": ""}


def _run(python: Path, code: str) -> str:
    return subprocess.run(
        [str(python), "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, **RELEASE_ENV},
    ).stdout.strip()


@contextlib.contextmanager
def installed(release: Release) -> Iterator[InstalledRelease]:
    """The release checked out and installed; both removed on exit."""
    try:
        _git("cat-file", "-e", f"{release.commit}^{{commit}}")
    except RuntimeError:
        # A shallow clone: the commit is fetched from where the clone came from, if it can be.
        try:
            _git("fetch", "--quiet", "origin", release.commit)
            _git("cat-file", "-e", f"{release.commit}^{{commit}}")
        except RuntimeError as exc:
            raise RuntimeError(
                f"commit {release.commit} (hubbub {release.version}) is not in {REPO} and "
                f"could not be fetched ({exc}); the upgrade test needs the full history"
            ) from None
    base = Path(tempfile.mkdtemp(prefix=f"hubbub-{release.version}-"))
    checkout = base / "checkout"
    _git("worktree", "add", "--detach", str(checkout), release.commit)
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(base / "venv")],
            check=True,
            timeout=120,
        )
        python = base / "venv" / "bin" / "python"
        site = Path(_run(python, "import sysconfig; print(sysconfig.get_paths()['purelib'])"))
        (site / "hubbub-release.pth").write_text(f"{checkout / 'src'}\n")
        (site / "zz-dependencies.pth").write_text(f"{sysconfig.get_paths()['purelib']}\n")
        found = _run(python, "import hubbub; print(hubbub.__version__, hubbub.__file__)")
        version, where = found.split(" ", 1)
        if version != release.version or not where.startswith(str(checkout)):
            raise RuntimeError(f"the release venv imports hubbub {found}, not {release}")
        yield InstalledRelease(release, checkout, python)
    finally:
        with contextlib.suppress(RuntimeError):
            _git("worktree", "remove", "--force", str(checkout))
        shutil.rmtree(base, ignore_errors=True)
        with contextlib.suppress(RuntimeError):
            _git("worktree", "prune")
