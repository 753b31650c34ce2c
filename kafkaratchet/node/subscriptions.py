"""Which key-exchange partitions the exchange loop reads, and from where.

The key-exchange consumer is kafka-python's, which is not thread-safe: only the
exchange loop's thread calls this, with the loop's state.
"""

from __future__ import annotations

import logging
from typing import Any

from kafkaratchet.node.contract import ExchangeConsumer, ExchangeProducer
from kafkaratchet.node.state import ExchangeState
from kafkaratchet.ratelimit import RateLimiter

__all__ = ["Subscriptions"]

log = logging.getLogger(__name__)


class Subscriptions:
    """Assigns partitions of the key-exchange consumer ``kc`` and pins their read positions.

    ``kp`` (the key-exchange producer) creates a topic that does not exist yet by asking for its metadata.
    """

    def __init__(self, kc: ExchangeConsumer, kp: ExchangeProducer, limiter: RateLimiter) -> None:
        self._kc = kc
        self._kp = kp
        self._limiter = limiter

    def partitions(self, topic: str) -> list[Any]:
        from kafka import TopicPartition

        partitions = self._kc.partitions_for_topic(topic)
        if not partitions:
            try:
                self._kp.partitions_for(topic)  # a producer's metadata request creates the topic
            except Exception as exc:  # kafka-python raises its own errors (timeouts, auth)
                if self._limiter.allow(("create", topic)):
                    log.warning("cannot create or find topic %s: %s", topic, exc)
                return []
            partitions = self._kc.partitions_for_topic(topic)
        return [TopicPartition(topic, p) for p in sorted(partitions or ())]

    def follow(self, state: ExchangeState, topics: str | tuple[str, ...], start: Any) -> bool:
        """Assign every partition of ``topics`` and pin the read positions before returning.

        ``start`` is "beginning", "end", or ("time", seconds since the epoch). Pinning before a request
        is sent is what guarantees its answer cannot be skipped. A topic not found yet is remembered in
        ``state.unresolved`` and followed later; returns whether all of ``topics`` are followed now.
        """
        names = (topics,) if isinstance(topics, str) else topics
        tps: list[Any] = []
        for topic in names:
            if topic in state.following:
                continue
            found = self.partitions(topic)
            if found:
                tps += found
            else:
                state.unresolved[topic] = start
        if not tps:
            return all(topic in state.following for topic in names)
        state.assigned.update(tps)
        self._kc.assign(sorted(state.assigned, key=lambda tp: (tp.topic, tp.partition)))
        if start == "beginning":
            offsets = self._kc.beginning_offsets(tps)
        else:
            offsets = self._kc.end_offsets(tps)
            if isinstance(start, tuple):
                found_at = self._kc.offsets_for_times({tp: int(start[1] * 1000) for tp in tps})
                offsets = {tp: (found_at[tp].offset if found_at.get(tp) is not None else offsets[tp])
                           for tp in tps}
        for tp in tps:
            self._kc.seek(tp, offsets[tp])
        for topic in {tp.topic for tp in tps}:
            state.following[topic] = start if isinstance(start, str) else "time"
            state.unresolved.pop(topic, None)
            log.debug("following %s from %s", topic, start if isinstance(start, str) else "recent requests")
        return all(topic in state.following for topic in names)
