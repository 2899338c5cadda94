"""The pure post rules: mentions, pending-id keys, PostList ETags, Post JSON of deleted posts."""

from __future__ import annotations

from typing import Any

import pytest

from hubbub.errors import AppError
from hubbub.services.post_model import (
    check_emoji_name,
    check_message,
    mentioned_usernames,
    pending_key,
    post_json,
    post_list,
    post_list_etag,
    sort_newest_first,
)


def row(**over: Any) -> dict[str, Any]:
    base = {
        "id": "p" * 26,
        "create_at": 10,
        "update_at": 10,
        "edit_at": 0,
        "delete_at": 0,
        "is_pinned": False,
        "user_id": "u" * 26,
        "channel_id": "c" * 26,
        "root_id": "",
        "original_id": "",
        "message": "hello",
        "type": "",
        "props": {"a": 1},
        "hashtags": "",
        "file_ids": ["f" * 26],
        "has_reactions": False,
    }
    return {**base, **over}


def test_mentions() -> None:
    assert mentioned_usernames("hi @Alice, and @bob.") == {"alice", "bob.", "bob"}
    assert mentioned_usernames("mail me at x@example.com") == set()
    assert mentioned_usernames("@a_b_ @@c") == {"a_b_", "a_b"}
    assert mentioned_usernames("no mentions") == set()


def test_pending_key() -> None:
    assert pending_key("short") == "short"
    long = "u" * 26 + ":1700000000000"
    key = pending_key(long)
    assert len(key) == 26 and key.startswith("~") and key == pending_key(long)
    assert pending_key(long + "1") != key


def test_post_json_of_a_deleted_post_hides_content() -> None:
    live = post_json(row(has_reactions=True), reactions=[{"emoji_name": "x"}])
    assert live["message"] == "hello" and live["has_reactions"] is True
    assert live["metadata"]["reactions"] == [{"emoji_name": "x"}]
    gone = post_json(row(delete_at=5), reactions=[{"emoji_name": "x"}])
    assert gone["message"] == "" and gone["metadata"] == {}
    assert "has_reactions" not in gone


def test_post_list_and_etag() -> None:
    a, b = row(id="a" * 26, create_at=1, update_at=5), row(id="b" * 26, create_at=2, update_at=5)
    assert sort_newest_first([a, b]) == ["b" * 26, "a" * 26]
    tag = post_list_etag(["b" * 26], [a, b])
    assert tag.endswith(f".{'b' * 26}.{'b' * 26}.5.2")
    assert post_list_etag(["b" * 26], [a]) != tag
    assert "has_next" not in post_list([], {})
    assert post_list([], {}, has_next=False)["has_next"] is False


def test_validation() -> None:
    check_message("x" * 10, 10)
    with pytest.raises(AppError) as e:
        check_message("x" * 11, 10)
    assert e.value.id == "model.post.is_valid.msg.app_error"
    assert check_emoji_name("+1") == "+1"
    for bad in ("", "a b", "x" * 65, 3):
        with pytest.raises(AppError):
            check_emoji_name(bad)
