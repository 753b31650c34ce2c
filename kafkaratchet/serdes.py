"""The serializer and deserializer objects handed to Kafka clients.

They speak both kafka-python's interface (``serialize(topic, headers, data)``, or
the older ``serialize(topic, data)``) and confluent-kafka's (``obj(data, ctx)``
with ``ctx.topic``), so one object works with either client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kafka.serializer import Deserializer, Serializer

from .errors import KafkaRatchetError
from .message import KafkaCryptoMessage
from .sealing import Role

if TYPE_CHECKING:
    from .node import KafkaCrypto

__all__ = ["CryptoSerializer", "CryptoDeserializer"]


class CryptoSerializer(Serializer):
    """Seals bytes; passes ``None`` (tombstones) and still-encrypted messages through unchanged."""

    def __init__(self, node: KafkaCrypto, role: Role) -> None:
        self._node = node
        self._role = role

    def serialize(self, topic: str, *args: Any) -> bytes | None:  # (topic, data) or (topic, headers, data)
        data = args[-1] if args else None
        if data is None:
            return None
        if isinstance(data, KafkaCryptoMessage):
            if not data.isCleartext(retry=False):
                return data.toWire()  # forwarding an undecrypted record must not seal it twice
            data = data.getMessage(retry=False)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise KafkaRatchetError(
                f"the kafkaratchet serializer takes bytes, not {type(data).__name__}; "
                "stack an encoding serializer in front of it")
        return self._node.seal(topic, self._role, bytes(data))

    def __call__(self, data: Any, ctx: Any = None) -> bytes | None:
        """confluent-kafka's serializer call: ``ctx.topic`` names the topic."""
        return self.serialize(getattr(ctx, "topic", None) or "", data)

    def __repr__(self) -> str:
        return f"CryptoSerializer({self._role.name.lower()}, node={self._node.node_id!r})"


class CryptoDeserializer(Deserializer):
    """Opens records, waiting up to its bound for a missing key; never raises on bad bytes."""

    def __init__(self, node: KafkaCrypto, role: Role, wait: float) -> None:
        self._node = node
        self._role = role
        self.wait = wait

    def deserialize(self, topic: str, *args: Any) -> KafkaCryptoMessage | None:
        data = args[-1] if args else None
        if data is None:
            return None
        if isinstance(data, KafkaCryptoMessage):
            if data.isCleartext(retry=False):
                return data
            data = data.toWire()
        return self._node.open(topic, self._role, bytes(data), self.wait, self)

    def retry(self, message: KafkaCryptoMessage) -> bytes | None:
        """A later, non-blocking attempt (``KafkaCryptoMessage.isCleartext()``)."""
        try:
            return self._node.try_open(message.topic or "", self._role, message.toWire())
        except KafkaRatchetError:
            message.mark_undecryptable()
            return None

    def __call__(self, data: Any, ctx: Any = None) -> KafkaCryptoMessage | None:
        return self.deserialize(getattr(ctx, "topic", None) or "", data)

    def __repr__(self) -> str:
        return f"CryptoDeserializer({self._role.name.lower()}, node={self._node.node_id!r}, wait={self.wait})"
