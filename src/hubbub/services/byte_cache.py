"""`BytesLRU`: a least-recently-used map of keys to byte strings, bounded by their total size.

For answers that are expensive to make and never change under their key: a key names a version
(a profile picture's `last_picture_update`, a generated picture's colour and letters), so a new
version is a new key and nothing is ever invalidated. Not thread-safe: use it on the event loop.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class BytesLRU:
    def __init__(self, max_bytes: int, max_item: int | None = None) -> None:
        self.max_bytes = max_bytes
        # A value larger than this is not kept (one big value would push out everything else).
        self.max_item = max_bytes // 8 if max_item is None else max_item
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> bytes | None:
        value = self._items.get(key)
        if value is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: Hashable, value: bytes) -> None:
        if len(value) > self.max_item:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= len(old)
        self._items[key] = value
        self.size += len(value)
        while self.size > self.max_bytes:
            _, dropped = self._items.popitem(last=False)
            self.size -= len(dropped)
