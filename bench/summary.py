"""What every capacity benchmark ends with: one summary block, easy to find in a log and to
compare between a noisy and a quiet machine, and the full result as JSON in `bench/results/`.

The block starts with `=== SUMMARY <bench> ===` and ends with `=== END <bench> ===`; between them
`key: value` lines, the machine first (cores, CPU model, the 1-minute load average before the
run, and the share of a core other processes used during it, when the bench measured it).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from bench.fanout_report import machine

ROOT = Path(__file__).resolve().parents[1]


def block(bench: str, lines: list[tuple[str, Any]], context: dict[str, Any]) -> str:
    out = [f"=== SUMMARY {bench} ==="]
    m = context.get("machine") or {}
    out.append(f"machine: {m.get('cores')} cores, {m.get('cpu')}, {m.get('memory_gib')} GiB")
    out.append(f"commit: {m.get('hubbub_source')}")
    if "loadavg_before" in context:
        out.append(f"load average (1 min) before: {context['loadavg_before']:.2f}")
    if "other_cpu_percent" in context:
        out.append(f"other processes during the run: {context['other_cpu_percent']} % of a core")
    for key, value in lines:
        out.append(f"{key}: {value}")
    out.append(f"=== END {bench} ===")
    return "\n".join(out)


def context() -> dict[str, Any]:
    return {"machine": machine(), "loadavg_before": os.getloadavg()[0]}


def save(bench: str, result: dict[str, Any], results_dir: Path | None = None) -> Path:
    folder = results_dir or ROOT / "bench" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{bench}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    return path
