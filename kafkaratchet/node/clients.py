"""kafka-python's producer and consumer, with the few additions kafkacrypto users rely on."""

from __future__ import annotations

import time
from typing import Any

import kafka

__all__ = ["KafkaProducer", "KafkaConsumer", "assign_all"]


class KafkaProducer(kafka.KafkaProducer):  # type: ignore[misc]
    """kafka-python's producer; ``poll()`` exists (a no-op) so confluent-style loops keep working."""

    def poll(self, timeout: float | None = None) -> int:
        return 0


class KafkaConsumer(kafka.KafkaConsumer):  # type: ignore[misc]
    """kafka-python's consumer with kafkacrypto's ``assign_and_seek``."""

    def assign_and_seek(self, partition: Any, offset: int) -> None:
        """Add ``partition`` to the manual assignment and start reading it at ``offset``."""
        current = set(self.assignment() or ())
        current.add(partition)
        self.assign(list(current))
        self.seek(partition, offset)


def assign_all(consumer: Any, topic: str, timeout: float = 30.0, *, beginning: bool = True) -> list[Any]:
    """Assign every partition of ``topic`` (waiting for it to exist), from the beginning unless told not to.

    For consumers that need no group: the demo, the benchmarks, anything reading a whole topic.
    """
    deadline = time.monotonic() + timeout
    partitions = consumer.partitions_for_topic(topic)
    while not partitions and time.monotonic() < deadline:
        time.sleep(0.02)  # no metadata event to await: the topic appears when its first record is written
        partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise RuntimeError(f"topic {topic} did not appear within {timeout:.0f} s")
    tps = [kafka.TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    if beginning:
        consumer.seek_to_beginning(*tps)
    return tps
