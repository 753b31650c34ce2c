"""The contract between the node and the serializers, declared once.

A serializer needs something that seals a record for a topic and role; a
deserializer needs something that opens one (waiting a bounded time for a
missing key) and that can try again later without waiting. These two small
interfaces are all ``serdes`` and ``confluent`` know of the node, so another
client adapter is a new file, not a new branch in the node. The other way round,
``ExchangeProducer`` and ``ExchangeConsumer`` name the nine client methods the
node's management thread calls: the Kafka-client boundary, typed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from kafkaratchet.node.message import KafkaCryptoMessage, Retrier
from kafkaratchet.protocol.records import Role

__all__ = ["RecordSealer", "RecordOpener", "ExchangeProducer", "ExchangeConsumer"]


class RecordSealer(Protocol):
    def seal(self, topic: str, role: Role, data: bytes) -> bytes:
        """The sealed record for ``data`` on ``topic`` as ``role`` (never touches the network)."""
        ...


class RecordOpener(Protocol):
    def open(self, topic: str, role: Role, data: bytes, *, wait: float,
             retrier: Retrier | None) -> KafkaCryptoMessage:
        """A cleartext message, or a not-cleartext one that ``retrier`` can retry; waits at most ``wait`` s."""
        ...

    def try_open(self, topic: str, role: Role, data: bytes) -> bytes | None:
        """The cleartext if the key is known now (never waits); DecryptionError if it cannot be."""
        ...


class ExchangeProducer(Protocol):
    """What the node calls on its key-exchange producer (a kafka-python ``KafkaProducer``)."""

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any:
        """Queue a record; returns the client's future."""
        ...

    def partitions_for(self, topic: str) -> Any:
        """The topic's partitions (a metadata request, which lets the broker create it)."""
        ...


class ExchangeConsumer(Protocol):
    """What the node calls on its key-exchange consumer (a kafka-python ``KafkaConsumer``, used with assign())."""

    def partitions_for_topic(self, topic: str) -> Any: ...

    def assign(self, partitions: list[Any]) -> None: ...

    def seek(self, partition: Any, offset: int) -> None: ...

    def poll(self, timeout_ms: int = 0) -> Mapping[Any, list[Any]]: ...

    def beginning_offsets(self, partitions: list[Any]) -> Mapping[Any, int]: ...

    def end_offsets(self, partitions: list[Any]) -> Mapping[Any, int]: ...

    def offsets_for_times(self, timestamps: Mapping[Any, int]) -> Mapping[Any, Any]: ...
