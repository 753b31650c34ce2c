"""Small bounded helpers shared by the node's parts: a per-key log rate limit and a doubling backoff."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["RateLimiter", "Backoff"]


class RateLimiter:
    """Says whether a message keyed ``key`` may be logged now (once per interval per key); thread-safe."""

    def __init__(self, interval: float, max_keys: int = 4096) -> None:
        self.interval = interval
        self._last: collections.OrderedDict[Any, float] = collections.OrderedDict()
        self._max = max_keys
        self._lock = threading.Lock()

    def allow(self, key: Any) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                return False
            self._last[key] = now
            self._last.move_to_end(key)
            while len(self._last) > self._max:
                self._last.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._last)


@dataclass(frozen=True)
class Backoff:
    """A wait that doubles after each failure, from ``first`` up to ``limit`` seconds."""

    first: float
    limit: float

    def after(self, previous: float | None) -> float:
        """The next delay: ``first`` after a first failure, else twice ``previous`` (at most ``limit``)."""
        return self.first if previous is None else min(previous * 2, self.limit)
