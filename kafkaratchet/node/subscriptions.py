"""Which key-exchange partitions the exchange loop reads, and from where.

The key-exchange consumer is kafka-python's, which is not thread-safe: only the
exchange loop's thread calls this, with the loop's state.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kafkaratchet.node.contract import ExchangeConsumer, ExchangeProducer
from kafkaratchet.node.lookups import TopicLookups
from kafkaratchet.node.state import ExchangeState
from kafkaratchet.node.topiccreator import TopicCreator
from kafkaratchet.ratelimit import RateLimiter

__all__ = ["Subscriptions"]

log = logging.getLogger(__name__)


class Subscriptions:
    """Assigns partitions of the key-exchange consumer ``kc`` and pins their read positions.

    A topic that does not exist yet is created through ``creator`` (when the node may) and otherwise
    looked up again only after the creator's backoff: no metadata request a second for a missing topic.
    Partitions and offsets are looked up on ``lookups``: by default ``kc`` itself; a running exchange
    loop gives it an admin client (:mod:`.lookups`) that asks for one topic at a time and never waits
    behind the consumer's fetches.
    """

    def __init__(self, kc: ExchangeConsumer, kp: ExchangeProducer, limiter: RateLimiter,
                 creator: TopicCreator | None = None, lookups: TopicLookups | None = None) -> None:
        self._kc = kc
        self._kp = kp
        self._limiter = limiter
        self.creator = creator
        self.lookups: TopicLookups = kc if lookups is None else lookups

    def partitions(self, topic: str) -> list[Any]:
        """The partitions of ``topic``, creating it if it is missing; [] while it cannot be found."""
        return self.resolve([topic]).get(topic, [])

    def resolve(self, topics: list[str]) -> dict[str, list[Any]]:
        """Partitions of those of ``topics`` that exist (or could be created now), one creation for all."""
        from kafka import TopicPartition

        creator = self.creator
        found: dict[str, list[Any]] = {}
        absent = []
        for topic in topics:
            if creator is not None and not creator.due(topic):
                continue
            partitions = self.lookups.partitions_for_topic(topic)
            if partitions:
                found[topic] = [TopicPartition(topic, p) for p in sorted(partitions)]
            else:
                absent.append(topic)
        if absent and creator is not None:
            for topic in creator.ensure(absent):
                # a topic just created may not be in the metadata yet: the next due lookup finds it
                partitions = self.lookups.partitions_for_topic(topic)
                if partitions:
                    found[topic] = [TopicPartition(topic, p) for p in sorted(partitions)]
        if creator is not None:
            for topic in found:
                creator.found(topic)
        return found

    def follow(self, state: ExchangeState, topics: str | tuple[str, ...], start: Any) -> bool:
        """Assign every partition of ``topics`` and pin the read positions before returning.

        ``start`` is "beginning", "end", or ("time", seconds since the epoch). Pinning before a request
        is sent is what guarantees its answer cannot be skipped. A topic not found yet is remembered in
        ``state.unresolved`` and followed later; returns whether all of ``topics`` are followed now.
        """
        names = (topics,) if isinstance(topics, str) else topics
        try:
            return self._follow(state, names, start)
        except Exception:  # a broker error mid-way: maintain() tries again, nothing is forgotten
            for topic in names:
                if topic not in state.following:
                    state.unresolved.setdefault(topic, start)
            raise

    def _follow(self, state: ExchangeState, names: tuple[str, ...], start: Any) -> bool:
        tps: list[Any] = []
        resolved = self.resolve([t for t in names if t not in state.following])
        for topic in names:
            if topic in state.following:
                continue
            found = resolved.get(topic)
            if found:
                tps += found
            else:
                state.unresolved[topic] = start
        if not tps:
            return all(topic in state.following for topic in names)
        lookups = self.lookups
        assignment = sorted(state.assigned.union(tps), key=lambda tp: (tp.topic, tp.partition))
        if start == "beginning":
            offsets = lookups.beginning_offsets(tps)
        else:
            offsets = lookups.end_offsets(tps)
            if isinstance(start, tuple):
                found_at = lookups.offsets_for_times({tp: int(start[1] * 1000) for tp in tps})
                offsets = {tp: (found_at[tp].offset if found_at.get(tp) is not None else offsets[tp])
                           for tp in tps}
        state.assigned.update(tps)
        self._kc.assign(assignment)
        for tp in tps:
            self._kc.seek(tp, offsets[tp])
        state.last_activity = time.monotonic()  # the new partitions' first fetches should not wait long
        for topic in {tp.topic for tp in tps}:
            state.following[topic] = start if isinstance(start, str) else "time"
            state.unresolved.pop(topic, None)
            log.debug("following %s from %s", topic, start if isinstance(start, str) else "recent requests")
        return all(topic in state.following for topic in names)
