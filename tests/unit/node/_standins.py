"""Stand-in Kafka clients for the exchange loop's tests: topics that exist (or appear), and a fetcher.

``Cluster`` says which topics exist; ``LookupConsumer`` answers metadata and offset lookups from it and
counts them; ``FetchingConsumer`` also has the private fetcher kafka-python's consumer has (the one
:mod:`kafkaratchet.node.kafkawakeup` hooks into): each ``poll`` with no fetch in flight "sends" one (a
``kafka.future.Future`` the test completes with :meth:`FetchingConsumer.complete`).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Mapping
from typing import Any, NamedTuple

from kafka import TopicPartition
from kafka.future import Future


class Record(NamedTuple):
    value: bytes | None


class Cluster:
    """Topic name -> partition count; a test adds topics while the code under test runs."""

    def __init__(self, **topics: int) -> None:
        self.topics: dict[str, int] = dict(topics)

    def add(self, topic: str, partitions: int = 1) -> None:
        self.topics[topic] = partitions


class LookupConsumer:
    """Metadata and offsets from a :class:`Cluster`; counts every lookup, records assign and seek."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.lookups: collections.Counter[str] = collections.Counter()  # topic -> partitions_for_topic calls
        self.offset_calls: list[str] = []
        self.assigned: list[Any] = []
        self.positions: dict[Any, int] = {}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        self.lookups[topic] += 1
        count = self.cluster.topics.get(topic)
        return set(range(count)) if count else None

    def assign(self, partitions: list[Any]) -> None:
        self.assigned = list(partitions)

    def seek(self, partition: Any, offset: int) -> None:
        self.positions[partition] = offset

    def poll(self, timeout_ms: int = 0) -> Mapping[Any, list[Any]]:
        return {}

    def beginning_offsets(self, partitions: list[Any]) -> Mapping[Any, int]:
        self.offset_calls.append("beginning")
        return {tp: 0 for tp in partitions}

    def end_offsets(self, partitions: list[Any]) -> Mapping[Any, int]:
        self.offset_calls.append("end")
        return {tp: 100 + tp.partition for tp in partitions}

    def offsets_for_times(self, timestamps: Mapping[Any, int]) -> Mapping[Any, Any]:
        self.offset_calls.append("times")
        return {tp: None for tp in timestamps}


class _Fetcher:
    def __init__(self, wait_ms: int) -> None:
        self.config: dict[str, Any] = {"fetch_max_wait_ms": wait_ms}
        self._fetch_futures: collections.deque[Future] = collections.deque()


class FetchingConsumer(LookupConsumer):
    """A :class:`LookupConsumer` with kafka-python's private fetcher: polls are counted, fetches completed
    by the test. ``config`` names no cluster, so a running loop builds no lookup client of its own."""

    def __init__(self, cluster: Cluster, wait_ms: int = 100) -> None:
        super().__init__(cluster)
        self._fetcher = _Fetcher(wait_ms)
        self.config: dict[str, Any] = {"request_timeout_ms": 30_000}
        self.polls = 0
        self.waits: list[int] = []  # fetch_max_wait_ms of each fetch "sent"
        self.ready: collections.deque[tuple[Any, list[Any]]] = collections.deque()  # records for the next poll
        self._lock = threading.Lock()

    def poll(self, timeout_ms: int = 0) -> Mapping[Any, list[Any]]:
        with self._lock:
            self.polls += 1
            futures = self._fetcher._fetch_futures
            self._fetcher._fetch_futures = collections.deque(f for f in futures if not f.is_done)
            if not self._fetcher._fetch_futures and self.assigned:
                self._fetcher._fetch_futures.append(Future())
                self.waits.append(self._fetcher.config["fetch_max_wait_ms"])
            out: dict[Any, list[Any]] = {}
            while self.ready:
                tp, records = self.ready.popleft()
                out.setdefault(tp, []).extend(records)
            return out

    def in_flight(self) -> int:
        return sum(not f.is_done for f in list(self._fetcher._fetch_futures))

    def complete(self, topic: str | None = None, *values: bytes) -> None:
        """The fetch in flight comes back (with ``values`` read on ``topic``, if given)."""
        if topic is not None:
            self.ready.append((TopicPartition(topic, 0), [Record(v) for v in values]))
        for future in list(self._fetcher._fetch_futures):
            if not future.is_done:
                future.success(None)
