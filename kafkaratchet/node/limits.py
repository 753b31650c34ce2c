"""A doubling backoff shared by the node's parts (the log rate limit is :mod:`kafkaratchet.ratelimit`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """A wait that doubles after each failure, from ``first`` up to ``limit`` seconds."""

    first: float
    limit: float

    def after(self, previous: float | None) -> float:
        """The next delay: ``first`` after a first failure, else twice ``previous`` (at most ``limit``)."""
        return self.first if previous is None else min(previous * 2, self.limit)
