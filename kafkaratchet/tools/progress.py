"""A dependency-free progress bar for long command-line work (stderr; quiet when not a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``with Progress("sending", total) as bar: bar.advance(n)``; redraws at most 10 times a second."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream or sys.stderr
        self.width = width
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0
        self._started = time.monotonic()
        self._next_line = 0.25

    def advance(self, count: int = 1) -> None:
        self.done = min(self.total, self.done + count)
        now = time.monotonic()
        if self._tty and (now - self._last >= 0.1 or self.done == self.total):
            self._last = now
            filled = int(self.width * self.done / self.total)
            rate = self.done / max(now - self._started, 1e-9)
            self.stream.write(f"\r{self.label:<12} [{'#' * filled}{'.' * (self.width - filled)}] "
                              f"{self.done}/{self.total} ({rate:,.0f}/s)")
            self.stream.flush()
        elif not self._tty and self.done / self.total >= self._next_line:
            self._next_line += 0.25
            self.stream.write(f"{self.label}: {self.done}/{self.total}\n")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()
