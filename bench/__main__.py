"""`python -m bench [NAME] [OPTIONS]`: one benchmark by name, or all of them in turn.

    fanout      bench.ws_fanout          websocket fan-out against a bare websockets server
    realistic   bench.realistic_users    Mattermost load-test users in steps, KPIs
    posts       bench.posts_per_sec      posts/s into one channel against Synapse
    connect     bench.connect            1,000 websockets at once against the bare server
    storm       bench.reconnect_storm    SIGKILL one of 3 nodes with 2,000 clients connected
    reads       bench.read_cost          server CPU per request of the users' most frequent reads
    tenk        bench.ws_fanout with 10,000 idle websockets and 2 posts/s to all of them
    all         every one of the above (the default); OPTIONS (e.g. --quick) go to each

`make bench BENCH_ARGS="realistic --quick"` runs `python -m bench realistic --quick`.
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHES = {
    "fanout": ["bench.ws_fanout"],
    "realistic": ["bench.realistic_users"],
    "posts": ["bench.posts_per_sec"],
    "connect": ["bench.connect"],
    "storm": ["bench.reconnect_storm"],
    "reads": ["bench.read_cost"],
    "tenk": ["bench.ws_fanout", "-n", "10000", "-m", "60", "-r", "2", "--client-procs", "4"],
}
# --quick for the 10,000-websocket run: the same shape at a size that runs in a minute.
TENK_QUICK = ["bench.ws_fanout", "-n", "300", "-m", "10", "-r", "2", "--client-procs", "2"]


def command(name: str, options: list[str]) -> list[str]:
    if name == "tenk" and "--quick" in options:
        return [sys.executable, "-m", *TENK_QUICK, *[o for o in options if o != "--quick"]]
    return [sys.executable, "-m", *BENCHES[name], *options]


def main(argv: list[str]) -> int:
    name = argv[0] if argv and not argv[0].startswith("-") else "all"
    options = argv[1:] if argv and not argv[0].startswith("-") else argv
    if name in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    if name != "all":
        if name not in BENCHES:
            print(f"unknown benchmark {name!r}; one of: {', '.join(BENCHES)}, all", file=sys.stderr)
            return 2
        return subprocess.call(command(name, options))
    codes: dict[str, int] = {}
    for bench in BENCHES:
        started = time.monotonic()
        print(f"\n##### {bench} #####", flush=True)
        codes[bench] = subprocess.call(command(bench, options))
        print(f"##### {bench}: exit {codes[bench]} in {time.monotonic() - started:.0f} s #####")
    print("\n" + "\n".join(f"{b}: {'ok' if c == 0 else f'exit {c}'}" for b, c in codes.items()))
    return max(codes.values())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
