"""`Batcher`: concurrent submissions handled together, one batch at a time, newest value per
key, errors to every caller of the failed batch (hubbub/batching.py)."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.batching import Batcher


async def test_calls_of_one_turn_go_in_one_batch_and_each_gets_its_result() -> None:
    seen: list[dict[str, int]] = []

    async def handle(batch: dict[str, int]) -> dict[str, int]:
        seen.append(dict(batch))
        return {k: v * 10 for k, v in batch.items() if k != "missing"}

    batcher: Batcher[str, int, int] = Batcher(handle, -1)
    results = await asyncio.gather(
        batcher.submit("a", 1), batcher.submit("b", 2), batcher.submit("missing", 3)
    )
    assert results == [10, 20, -1]
    assert seen == [{"a": 1, "b": 2, "missing": 3}]


async def test_calls_during_a_batch_wait_for_the_next_one_and_the_newest_value_wins() -> None:
    release = asyncio.Event()
    seen: list[dict[str, str]] = []

    async def handle(batch: dict[str, str]) -> dict[str, str]:
        seen.append(dict(batch))
        if len(seen) == 1:
            await release.wait()
        return batch

    batcher: Batcher[str, str, str] = Batcher(handle, "")
    first = asyncio.create_task(batcher.submit("u", "online"))
    while not seen:
        await asyncio.sleep(0)
    later = [
        asyncio.create_task(batcher.submit("u", "offline")),
        asyncio.create_task(batcher.submit("u", "online")),
        asyncio.create_task(batcher.submit("v", "away")),
    ]
    await asyncio.sleep(0)
    release.set()
    assert await first == "online"
    # Both callers for "u" learn the outcome of the value that won.
    assert [await t for t in later] == ["online", "online", "away"]
    assert seen == [{"u": "online"}, {"u": "online", "v": "away"}]
    assert batcher.batches == 2


async def test_a_failed_batch_fails_its_callers_and_the_next_batch_still_runs() -> None:
    calls = 0

    async def handle(batch: dict[str, None]) -> dict[str, str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database gone")
        return {k: "ok" for k in batch}

    batcher: Batcher[str, None, str] = Batcher(handle, "")
    failing = asyncio.gather(batcher.submit("a", None), batcher.submit("b", None))
    with pytest.raises(RuntimeError, match="database gone"):
        await failing
    assert await batcher.submit("c", None) == "ok"


async def test_batches_are_at_most_max_batch_keys() -> None:
    sizes: list[int] = []

    async def handle(batch: dict[int, None]) -> dict[int, int]:
        sizes.append(len(batch))
        return {k: k for k in batch}

    batcher: Batcher[int, None, int] = Batcher(handle, -1, max_batch=4)
    assert await asyncio.gather(*(batcher.submit(i, None) for i in range(10))) == list(range(10))
    assert sizes == [4, 4, 2]


async def test_submit_many_gives_results_in_order_and_shares_the_batch() -> None:
    seen: list[set[str]] = []

    async def handle(batch: dict[str, None]) -> dict[str, str]:
        seen.append(set(batch))
        return {k: k.upper() for k in batch if k != "gone"}

    batcher: Batcher[str, None, str | None] = Batcher(handle, None)
    first, second = await asyncio.gather(
        batcher.submit_many(["b", "a", "gone"], None), batcher.submit_many(["a", "c"], None)
    )
    assert first == ["B", "A", None]
    assert second == ["A", "C"]
    assert seen == [{"a", "b", "c", "gone"}]


async def test_submit_many_raises_the_batch_error() -> None:
    async def handle(batch: dict[str, None]) -> dict[str, str]:
        raise LookupError("down")

    batcher: Batcher[str, None, str | None] = Batcher(handle, None)
    with pytest.raises(LookupError):
        await batcher.submit_many(["a", "b"], None)
