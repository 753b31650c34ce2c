"""What both daemons share: a clean stop on SIGTERM / SIGINT (logging is kafkaratchet.tools.clirunner's)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType


def stop_event() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so the main thread can close everything in order."""
    event = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("received %s: stopping", signal.Signals(signum).name)
        event.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return event
