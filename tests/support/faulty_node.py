"""`python -m tests.support.faulty_node serve`: a real hubbub node with a fault built in.

The fault is a component the composition root takes through `Seams`, so production code carries
no test hook. `HUBBUB_FAULT_CRASH_AFTER_COMMIT=<event>`: the outbox kills the process (exit 137,
as SIGKILL would) right after a transaction with an event of that name committed and before the
event is published: a real crash at the worst moment, for the sweeper to repair.
"""

from __future__ import annotations

import logging
import os
import sys

from hubbub.app import Seams
from hubbub.cluster.outbox import Outbox, OutboxRow
from hubbub.config import load_config
from hubbub.server import serve

log = logging.getLogger("hubbub.test.faults")


class CrashAfterCommit(Outbox):
    crash_on = os.environ.get("HUBBUB_FAULT_CRASH_AFTER_COMMIT", "")

    async def publish(self, row: OutboxRow) -> None:
        if self.crash_on and row.meta.event == self.crash_on:
            log.error("test fault injection: dying after commit, before publish")
            os._exit(137)
        await super().publish(row)


def main() -> int:
    if sys.argv[1:] != ["serve"]:
        print("usage: python -m tests.support.faulty_node serve", file=sys.stderr)
        return 2
    return serve(load_config(os.environ.get("HUBBUB_CONFIG")), Seams(outbox_class=CrashAfterCommit))


if __name__ == "__main__":
    raise SystemExit(main())
