"""`python -m tests.support.versioned_node serve`: the current code announcing another version.

`HUBBUB_TEST_ANNOUNCED_VERSION=0.4.0` replaces `hubbub.__version__` before anything else of
hubbub is imported, so the node announces that version in its discovery row and checks the
version window with it: a node of a release that does not exist yet, for the test that a node
too far from the cluster's version refuses to join. Test-only: production code reads no such
variable.
"""

from __future__ import annotations

import os
import sys

import hubbub

hubbub.__version__ = os.environ["HUBBUB_TEST_ANNOUNCED_VERSION"]

from hubbub.config import load_config  # noqa: E402  (after the version is replaced)
from hubbub.server import serve  # noqa: E402


def main() -> int:
    if sys.argv[1:] != ["serve"]:
        print("usage: python -m tests.support.versioned_node serve", file=sys.stderr)
        return 2
    return serve(load_config(os.environ.get("HUBBUB_CONFIG")))


if __name__ == "__main__":
    raise SystemExit(main())
