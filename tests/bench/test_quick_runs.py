"""The capacity benchmarks' `--quick` paths run end to end, so the benchmarks do not rot.

Each runs as `python -m bench NAME --quick` against a real `hubbub serve` and must exit 0 and
print its summary block; each takes 20-30 s on 2 cores. Nothing here judges a figure. The posts/s
benchmark runs without its Synapse half (`--only hubbub`): Synapse is installed by `make bench`,
not by `make test`. The reconnect storm's quick run is left out: starting its three nodes,
PostgreSQL, Redis and nginx makes it 35-55 s; run `make bench BENCH_ARGS="storm --quick"`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

RUNS = {
    "realistic": ["realistic", "--quick"],
    "posts": ["posts", "--quick", "--only", "hubbub"],
    "connect": ["connect", "--quick"],
    "reads": ["reads", "--quick"],
}
SUMMARY = {
    "realistic": "realistic_users",
    "posts": "posts_per_sec",
    "connect": "connect",
    "reads": "read_cost",
}


@pytest.mark.parametrize("name", list(RUNS))
def test_quick_run_exits_0_with_a_summary(name: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *RUNS[name], "--results", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    tail = (proc.stdout[-3000:], proc.stderr[-3000:])
    assert proc.returncode == 0, tail
    assert f"=== SUMMARY {SUMMARY[name]} ===" in proc.stdout, tail
    assert f"=== END {SUMMARY[name]} ===" in proc.stdout, tail
    assert list(tmp_path.glob("*.json")), "no result file written"
