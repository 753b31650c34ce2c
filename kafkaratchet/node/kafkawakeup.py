"""The one place the node reaches into kafka-python's private API: fetch completions and the fetch wait.

kafka-python's ``KafkaConsumer.poll(timeout_ms)`` cannot be interrupted: it loops
until records arrive or the whole timeout has passed. The exchange loop must
react at once to what other threads ask (a deserializer missing a key), yet cost
next to nothing while idle. So it never blocks inside ``poll``: it calls
``poll(timeout_ms=0)`` (which sends the next fetches) and then waits on its own
event, which a command sets, or a fetch that completes, through a callback this
module hangs on kafka-python's in-flight fetch futures (and a metadata update,
which a newly assigned partition's first fetch waits for). How long the broker may
hold a fetch that finds no record (``fetch_max_wait_ms``) is set here too: short
while the node is busy, long while it idles.

Pinned against kafka-python 3.0.12 (``TESTED_VERSIONS``; the unit test
``tests/unit/node/test_kafkawakeup.py`` fails when kafka-python changes what is
used here): ``KafkaConsumer._fetcher``, ``Fetcher._fetch_futures`` (a deque of
``kafka.future.Future``, rebound only while the consumer's own thread sends
fetches), ``Fetcher.config["fetch_max_wait_ms"]`` (read for every fetch request
built), ``KafkaConsumer._cluster.add_listener`` / ``remove_listener`` (called
after each metadata update; optional). A consumer without them (another
kafka-python, a stand-in in a test) gets ``None`` from :func:`fetch_hooks`, and the loop falls back to polling with a
short timeout, as it always did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["FetchHooks", "TESTED_VERSIONS", "fetch_hooks"]

log = logging.getLogger(__name__)

#: kafka-python versions whose private fetcher this module was checked against
TESTED_VERSIONS = ("3.0.12",)

#: a fetch must come back well before the client gives up on it (``request_timeout_ms``)
_REQUEST_TIMEOUT_MARGIN_MS = 5_000


class FetchHooks:
    """The two private handles on a kafka-python consumer's fetcher; used by the exchange loop's thread only."""

    def __init__(self, fetcher: Any, request_timeout_ms: int, cluster: Any = None) -> None:
        self._fetcher = fetcher
        self._cluster = cluster
        self._listener: Callable[[Any], None] | None = None
        self._max_wait_ms = max(1, request_timeout_ms - _REQUEST_TIMEOUT_MARGIN_MS)
        self._armed: list[Any] = []  # futures that already carry our callback, until they complete
        #: the wait the consumer was built with (the caller's ``fetch_max_wait_ms``)
        self.configured_wait_ms = int(fetcher.config["fetch_max_wait_ms"])

    def arm(self, wake: Callable[[], None]) -> bool | None:
        """Have ``wake()`` called when any fetch in flight now completes (at once if one already has).

        Returns None when no fetch is in flight (nothing would call ``wake``), True when a fetch had
        completed already (``wake`` was called at once), else False. Callbacks run on kafka-python's IO
        thread, after the fetcher buffered the response; each future gets one callback however often
        this is called."""
        futures = list(self._fetcher._fetch_futures)  # a snapshot: the IO thread may rebind the deque
        self._armed = [f for f in self._armed if not f.is_done]
        if not futures:
            return None
        done = False
        for future in futures:
            if future.is_done:
                done = True
            elif not any(future is armed for armed in self._armed):
                self._armed.append(future)
                future.add_both(lambda _result: wake())  # runs at once if it completed meanwhile
        if done:
            wake()
        return done

    def listen(self, wake: Callable[[], None]) -> None:
        """Have ``wake()`` called after each metadata update of the consumer (until :meth:`close`): a
        partition just assigned is fetched once its leader is known, and nothing else would say so."""
        add = getattr(self._cluster, "add_listener", None)
        if add is None or self._listener is not None:
            return
        self._listener = lambda _cluster: wake()
        add(self._listener)

    def close(self) -> None:
        """Take the metadata listener off the consumer (which belongs to the caller and outlives the node)."""
        listener, self._listener = self._listener, None
        remove = getattr(self._cluster, "remove_listener", None)
        if listener is not None and remove is not None:
            remove(listener)

    @property
    def wait_ms(self) -> int:
        """The ``fetch_max_wait_ms`` the next fetch requests carry."""
        return int(self._fetcher.config["fetch_max_wait_ms"])

    def set_wait(self, wait_ms: int) -> None:
        """Fetches sent from now on may wait ``wait_ms`` at the broker (kept below the request timeout)."""
        wait_ms = max(0, min(int(wait_ms), self._max_wait_ms))
        if self._fetcher.config["fetch_max_wait_ms"] != wait_ms:
            self._fetcher.config["fetch_max_wait_ms"] = wait_ms


def fetch_hooks(consumer: Any) -> FetchHooks | None:
    """The hooks on ``consumer`` if it is a kafka-python consumer with the fetcher this module knows, else None."""
    fetcher = getattr(consumer, "_fetcher", None)
    futures = getattr(fetcher, "_fetch_futures", None)
    config = getattr(fetcher, "config", None)
    consumer_config = getattr(consumer, "config", None)
    if (fetcher is None or futures is None or not hasattr(futures, "__iter__")
            or not isinstance(config, dict) or not isinstance(config.get("fetch_max_wait_ms"), int)):
        return None
    request_timeout = 30_000
    if isinstance(consumer_config, dict) and isinstance(consumer_config.get("request_timeout_ms"), int):
        request_timeout = consumer_config["request_timeout_ms"]
    try:
        import kafka

        version = str(getattr(kafka, "__version__", "?"))
    except ImportError:  # pragma: no cover - a consumer with a fetcher came from somewhere
        version = "?"
    if version not in TESTED_VERSIONS:
        log.debug("kafka-python %s is not among the versions the fetch hooks were checked against (%s)",
                  version, ", ".join(TESTED_VERSIONS))
    return FetchHooks(fetcher, request_timeout, getattr(consumer, "_cluster", None))
