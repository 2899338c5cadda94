"""Release versions and the rolling-upgrade window (cluster/versions.py): which versions may
share a cluster, and what a refused node says."""

from __future__ import annotations

import pytest

from hubbub import __version__
from hubbub.cluster.versions import Version, window_problem, within_window


def test_versions_parse_and_order() -> None:
    assert Version.parse("0.2.0") == Version(0, 2, 0)
    assert Version.parse("1.10.3-rc1") == Version(1, 10, 3)
    assert Version.parse("0.10.0") > Version.parse("0.9.9")
    assert str(Version.parse(" 0.2.1 ")) == "0.2.1"
    Version.parse(__version__)  # hubbub's own version follows the scheme
    for bad in ("0.2", "v0.2.0", "dev", ""):
        with pytest.raises(ValueError, match=r"MAJOR\.MINOR\.PATCH"):
            Version.parse(bad)


def test_the_window_is_one_minor_within_one_major() -> None:
    assert within_window("0.2.0", "0.2.7")
    assert within_window("0.2.0", "0.1.9") and within_window("0.1.9", "0.2.0")
    assert not within_window("0.3.0", "0.1.0")
    assert not within_window("1.0.0", "0.9.0")
    assert within_window("dev", "dev") and not within_window("dev", "0.2.0")


def test_window_problem_names_the_nodes_outside() -> None:
    assert window_problem("0.2.0", []) is None
    assert window_problem("0.2.0", [("n1", "0.1.0"), ("n2", "0.2.0")]) is None
    problem = window_problem("0.3.0", [("n1", "0.1.0"), ("n2", "0.2.0"), ("n3", "0.1.0")])
    assert problem is not None
    assert "hubbub 0.3.0" in problem and "n1 runs 0.1.0, n3 runs 0.1.0" in problem
    assert "n2" not in problem and "docs/upgrades.md" in problem
