"""What both daemons share: logging set-up and a clean stop on SIGTERM / SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType


def configure_logging(verbose: int) -> None:
    level = {0: logging.INFO, 1: logging.DEBUG}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbose < 2:
        logging.getLogger("kafka").setLevel(logging.WARNING)


def stop_event() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so the main thread can close everything in order."""
    event = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("received %s: stopping", signal.Signals(signum).name)
        event.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return event
