"""kafka-python's producer and consumer, with the few additions kafkacrypto users rely on."""

from __future__ import annotations

from typing import Any

import kafka

__all__ = ["KafkaProducer", "KafkaConsumer"]


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
