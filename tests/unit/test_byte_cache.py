from hubbub.services.byte_cache import BytesLRU


def test_keeps_what_fits_and_drops_the_least_recently_used() -> None:
    cache = BytesLRU(max_bytes=10, max_item=10)
    cache.put("a", b"aaaa")
    cache.put("b", b"bbbb")
    assert cache.get("a") == b"aaaa"  # a is now the most recently used
    cache.put("c", b"cccc")  # 12 bytes: b goes
    assert cache.get("b") is None
    assert cache.get("a") == b"aaaa"
    assert cache.get("c") == b"cccc"
    assert cache.size == 8
    assert (cache.hits, cache.misses) == (3, 1)


def test_replacing_a_key_counts_its_size_once() -> None:
    cache = BytesLRU(max_bytes=10, max_item=10)
    cache.put("a", b"aaaa")
    cache.put("a", b"aaaaaa")
    assert cache.size == 6
    assert len(cache) == 1


def test_a_value_over_the_item_limit_is_not_kept() -> None:
    cache = BytesLRU(max_bytes=100)  # items up to 12 bytes
    cache.put("small", b"x" * 12)
    cache.put("big", b"x" * 13)
    assert cache.get("big") is None
    assert cache.get("small") == b"x" * 12
