"""A per-key log rate limit, bounded: what every background loop uses so hostile input cannot flood the logs.

Shared by the node, the controller and a node's credentials (trust updates read from the topics). Keys
must be things the sender does not choose (a topic we follow, a fixed reason, a verified identity).
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

__all__ = ["RateLimiter"]


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
