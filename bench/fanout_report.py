"""The fan-out benchmark's output: ratios and targets, the table, the JSON file and the chart."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

# The targets, stated for N=1000 connections and R=50 posts/s.
TARGET_CPU_RATIO = 1.5
TARGET_KIB_PER_CONN = 20.0
TARGET_P99_MS = 50.0

# (label, how to read the figure from one server's result, format)
ROWS: list[tuple[str, str, str]] = [
    ("server CPU µs/delivery", "server_cpu_us_per_delivery", "{:.1f}"),
    ("RSS KiB per idle conn", "kib_per_idle_conn", "{:.1f}"),
    ("latency p50 ms", "latency_ms.p50", "{:.1f}"),
    ("latency p99 ms", "latency_ms.p99", "{:.1f}"),
    ("latency max ms", "latency_ms.max", "{:.1f}"),
    ("deliveries/s", "deliveries_per_s", "{:,.0f}"),
    ("server CPU % (burst)", "server_cpu_percent", "{:.0f}"),
    ("  of which in kernel", "server_cpu_system_share", "{:.0%}"),
    ("client CPU % (burst)", "client_cpu_percent", "{:.0f}"),
    ("other processes CPU %", "other_cpu_percent", "{:.0f}"),
    ("RSS MiB: 0 → N conns → burst", "rss_mib", "{}"),
    ("connect N seconds", "connect_seconds", "{:.2f}"),
    ("missing deliveries", "missing", "{:,}"),
]


def figure(result: dict[str, Any], key: str) -> Any:
    if key == "rss_mib":
        return " → ".join(
            f"{result[k] / 1024:.0f}"
            for k in ("rss_before_kib", "rss_idle_kib", "rss_after_burst_kib")
            if k in result
        )
    value: Any = result
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def ratio(a: Any, b: Any) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float) and b and not math.isnan(b):
        return float(a) / float(b)
    return None


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    versions: dict[str, str | None] = {}
    for dist in ("hubbub", "websockets", "uvicorn", "uvloop", "starlette"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "hubbub_source": _source(),
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
    }


def _source() -> str:
    """The commit measured, and whether src/ had uncommitted changes (read-only git)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{commit}{' + uncommitted changes in src/' if dirty else ''}" or "unknown"


def build(args: argparse.Namespace, results: dict[str, Any]) -> dict[str, Any]:
    hub, base = results.get("hubbub"), results.get("baseline")
    report: dict[str, Any] = {
        "benchmark": "ws_fanout",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {
            "connections": args.connections,
            "posts": args.posts,
            "rate": args.rate,
            "client_procs": args.client_procs,
            "client_loop": "uvloop" if args.client_uvloop else "asyncio",
            "server_loop": args.loop,
            "quick": args.quick,
        },
        "machine": machine(),
        **results,
    }
    if hub and base:
        report["ratios"] = {
            key: ratio(figure(hub, key), figure(base, key))
            for _, key, _ in ROWS
            if key not in ("rss_mib", "missing", "other_cpu_percent")
        }
    if hub:
        cpu_ratio = report.get("ratios", {}).get("server_cpu_us_per_delivery")
        report["targets"] = {
            "at_target_load": args.connections == 1000 and args.rate == 50,
            "cpu_per_delivery_ratio": _target(cpu_ratio, TARGET_CPU_RATIO, "<="),
            "kib_per_idle_conn": _target(hub["kib_per_idle_conn"], TARGET_KIB_PER_CONN, "<="),
            "latency_p99_ms": _target(hub["latency_ms"]["p99"], TARGET_P99_MS, "<"),
            "every_delivery": hub["missing"] == 0 and hub["post_errors"] == 0,
        }
    return report


def _target(value: float | None, limit: float, op: str) -> dict[str, Any]:
    met = None if value is None else (value <= limit if op == "<=" else value < limit)
    return {"value": value, "limit": f"{op} {limit:g}", "met": met}


def complete(report: dict[str, Any]) -> bool:
    """True when every server got every post out to every client (targets aside)."""
    return all(
        r["missing"] == 0 and r["post_errors"] == 0
        for name in ("hubbub", "baseline")
        if (r := report.get(name))
    )


def table(report: dict[str, Any]) -> str:
    cfg = report["config"]
    names = [n for n in ("hubbub", "baseline") if n in report]
    head = ["metric", *names] + (["hubbub/baseline"] if len(names) == 2 else [])
    rows = [head]
    for label, key, fmt in ROWS:
        row = [label]
        for name in names:
            value = figure(report[name], key)
            row.append("-" if value is None else fmt.format(value))
        if len(names) == 2:
            r = report.get("ratios", {}).get(key)
            row.append("" if r is None else f"{r:.2f}x")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        f"ws fan-out: N={cfg['connections']} connections, M={cfg['posts']} posts "
        f"at R={cfg['rate']:g}/s, {report['machine']['cores']} cores; "
        f"hubbub {report['machine']['hubbub_source']}",
        "",
    ]
    for i, row in enumerate(rows):
        rest = zip(row[1:], widths[1:], strict=True)
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in rest]
        lines.append("  ".join(cells))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    targets = report.get("targets")
    if targets:
        lines.append("")
        note = "" if targets["at_target_load"] else " (stated for N=1000, R=50; not this load)"
        lines.append(f"targets{note}:")
        for key in ("cpu_per_delivery_ratio", "kib_per_idle_conn", "latency_p99_ms"):
            t = targets[key]
            verdict = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
            value = "-" if t["value"] is None else f"{t['value']:.2f}"
            lines.append(f"  {key:<24} {value:>8}  (target {t['limit']})  {verdict}")
        lines.append(f"  {'every delivery':<24} {'yes' if targets['every_delivery'] else 'NO'}")
    return "\n".join(lines)


def save(report: dict[str, Any], directory: Path) -> tuple[Path, Path | None]:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = directory / f"ws_fanout-{stamp}.json"
    json_path.write_text(json.dumps(_finite(report), indent=1, allow_nan=False) + "\n")
    try:
        png_path: Path | None = chart(report, directory / f"ws_fanout-{stamp}.png")
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no chart")
        png_path = None
    return json_path, png_path


def _finite(value: Any) -> Any:
    """JSON has no NaN: a figure that could not be measured is null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def chart(report: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in ("hubbub", "baseline") if n in report]
    colors = {"hubbub": "tab:blue", "baseline": "tab:gray"}
    cfg = report["config"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    fig.suptitle(
        f"websocket fan-out: N={cfg['connections']}, M={cfg['posts']}, R={cfg['rate']:g}/s "
        f"({report['machine']['cores']} cores, {report['timestamp']})"
    )
    bars = [
        ("server CPU µs per delivery", "server_cpu_us_per_delivery", None),
        ("RSS KiB per idle connection", "kib_per_idle_conn", TARGET_KIB_PER_CONN),
        ("deliveries/s", "deliveries_per_s", None),
    ]
    for ax, (title, key, target) in zip(axes[0], bars, strict=True):
        values = [figure(report[n], key) or 0.0 for n in names]
        ax.bar(names, values, color=[colors[n] for n in names])
        for x, v in enumerate(values):
            ax.annotate(f"{v:,.1f}", (x, v), ha="center", va="bottom")
        if target is not None:
            ax.axhline(target, color="tab:red", linestyle="--", label=f"target {target:g}")
            ax.legend()
        ax.set_title(title)
    ax = axes[1][0]
    width = 0.35
    for k, n in enumerate(names):
        lat = report[n]["latency_ms"]
        xs = [i + (k - 0.5) * width for i in range(3)]
        ax.bar(xs, [lat["p50"], lat["p99"], lat["max"]], width, label=n, color=colors[n])
    ax.set_xticks(range(3), ["p50", "p99", "max"])
    ax.axhline(
        TARGET_P99_MS, color="tab:red", linestyle="--", label=f"p99 target {TARGET_P99_MS:g}"
    )
    ax.set_yscale("log")
    ax.set_title("post-to-receive latency, ms")
    ax.legend()
    ax = axes[1][1]
    for n in names:
        cdf = report[n]["latency_cdf_ms"]
        ax.plot(cdf, [q / 10 for q in range(1, 1000)], label=n, color=colors[n])
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms")
    ax.set_ylabel("percent of deliveries")
    ax.set_title("latency CDF")
    ax.legend()
    ax = axes[1][2]
    for n in names:
        series = report[n]["per_post_p50_ms"]
        ax.plot(range(len(series)), series, label=n, color=colors[n], linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("post index (sent at index / R seconds)")
    ax.set_ylabel("median latency of the post, ms")
    ax.set_title("latency over the burst")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
