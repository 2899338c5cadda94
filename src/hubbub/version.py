"""Version strings in Mattermost's formats (X-Version-Id, hello, ETags)."""

from __future__ import annotations

from hubbub import MATTERMOST_VERSION, __version__


def version_id(config_hash: str) -> str:
    """`<version>.<build>.<configHash>.<licensed>` as Mattermost sends in X-Version-Id."""
    build = __version__.replace(".", "_")
    return f"{MATTERMOST_VERSION}.{build}.{config_hash}.false"


def etag(*parts: object) -> str:
    return ".".join([MATTERMOST_VERSION, *(str(p) for p in parts)])
