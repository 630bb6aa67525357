from __future__ import annotations

import collections
import threading
from collections.abc import Hashable
from typing import Optional

__all__ = ["QueryVectorCache"]


class QueryVectorCache:
    """A thread-safe LRU cache of encoded queries: ``key -> {token: weight}``.

    :class:`SparseRetriever` keys it by ``(model_rev, exact text, top_k, min_weight)``,
    so a repeated query skips the LLM forward pass and a changed encoder never serves stale vectors.
    Values are copied on the way in and out (callers may mutate what they get).

    Args:
        maxsize: entries kept (least recently used dropped first); ``0`` disables caching.
    """

    def __init__(self, maxsize: int = 1024) -> None:
        if not isinstance(maxsize, int) or maxsize < 0:
            raise ValueError(f"maxsize must be an integer >= 0, got {maxsize!r}")
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._items: collections.OrderedDict[Hashable, dict[str, float]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Optional[dict[str, float]]:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return dict(value)

    def put(self, key: Hashable, value: dict[str, float]) -> None:
        if self.maxsize == 0:
            return
        with self._lock:
            self._items[key] = dict(value)
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"QueryVectorCache(size={len(self)}/{self.maxsize}, hits={self.hits}, misses={self.misses})"
