"""What was looked up lately: a small cache of values that expire."""

from __future__ import annotations

import time
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

#: Past this many keys a cache drops them all, so a flood of new ones cannot grow it.
CAPACITY = 10_000


class Recent(Generic[K, V]):
    """Values kept for ``ttl_s`` seconds (none at all when it is 0)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        hit = self._entries.get(key)
        return hit[1] if hit is not None and time.monotonic() - hit[0] < self.ttl_s else None

    def put(self, key: K, value: V) -> None:
        if self.ttl_s > 0:
            if len(self._entries) > CAPACITY:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), value)

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)
