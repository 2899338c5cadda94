"""Ids in Mattermost's format: 26 characters of its base32 alphabet, and `is_valid_id`."""

from __future__ import annotations

import base64

import pytest

from hubbub.ids import RequestIds, is_valid_id, new_id, new_request_id, now_ms

MATTERMOST_ALPHABET = set("ybndrfg8ejkmcpqxot1uwisza345h769")


def test_new_id_is_26_characters_of_mattermosts_alphabet() -> None:
    for _ in range(500):
        value = new_id()
        assert len(value) == 26
        assert set(value) <= MATTERMOST_ALPHABET
        assert is_valid_id(value)


def test_new_id_encodes_16_random_bytes() -> None:
    # Undo the alphabet swap and decode: 26 base32 characters carry exactly 16 bytes.
    std = str.maketrans("ybndrfg8ejkmcpqxot1uwisza345h769", "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    raw = base64.b32decode(new_id().translate(std) + "======")
    assert len(raw) == 16
    # A UUIDv4: version nibble 4, variant bits 10.
    assert raw[6] >> 4 == 4
    assert raw[8] >> 6 == 0b10


def test_new_ids_do_not_repeat() -> None:
    ids = {new_id() for _ in range(10_000)}
    assert len(ids) == 10_000


def test_request_ids_are_valid_ids_that_do_not_repeat_across_processes() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert all(is_valid_id(i) for i in ids) and len(set(ids)) == 10_000
    # Another process (another prefix) never makes the same ones.
    other = RequestIds()
    assert not {other() for _ in range(1_000)} & set(ids)


def test_request_ids_are_the_encoding_of_prefix_and_counter() -> None:
    """The id made in parts (prefix once, counter's high characters every 256) is the whole
    16 bytes encoded, across the 256 and 2**48 boundaries."""
    for start in (1, 250, (1 << 40) - 3, (1 << 48) - 300):
        ids = RequestIds(prefix=bytes(range(10, 20)), start=start)
        for n in range(start, start + 600):
            assert ids() == ids.encoded(n), n
    assert RequestIds(prefix=bytes(10), start=1)() == "yyyyyyyyyyyyyyyyyyyyyyyyyr"


@pytest.mark.parametrize(
    "value",
    [
        "abcdefghijklmnopqrstuvwxyz",  # any lowercase letters and digits pass, as in Mattermost
        "0123456789abcdefghijklmnop",
        "ybndrfg8ejkmcpqxot1uwisza3",
    ],
)
def test_is_valid_id_accepts_26_lowercase_letters_and_digits(value: str) -> None:
    assert is_valid_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "me",
        "a" * 25,
        "a" * 27,
        "abcdefghijklmnopqrstuvwxy-",
        "abcdefghijklmnopqrstuvwxy_",
        "abcdefghijklmnopqrstuvwxy ",
        "abcdefghijklmnopqrstuvwxyz\n",  # 27 characters: `$` alone would let it through
        "abcdefghijklmnopqrstuvwxyé",
        None,
        26,
        b"abcdefghijklmnopqrstuvwxyz",
        ["abcdefghijklmnopqrstuvwxyz"],
    ],
)
def test_is_valid_id_rejects_anything_else(value: object) -> None:
    assert not is_valid_id(value)


def test_now_ms_is_milliseconds() -> None:
    import time

    before = int(time.time() * 1000)
    value = now_ms()
    after = int(time.time() * 1000)
    assert before - 1 <= value <= after + 1
