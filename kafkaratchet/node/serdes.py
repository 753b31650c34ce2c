"""The serializer and deserializer objects handed to Kafka clients.

They speak both kafka-python's interface (``serialize(topic, headers, data)``, or
the older ``serialize(topic, data)``) and confluent-kafka's (``obj(data, ctx)``
with ``ctx.topic``), so one object works with either client. They know a node
only through :class:`~kafkaratchet.node.contract.RecordSealer` and
:class:`~kafkaratchet.node.contract.RecordOpener`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kafka.serializer import Deserializer, Serializer

from kafkaratchet.errors import KafkaRatchetError
from kafkaratchet.node.message import KafkaCryptoMessage
from kafkaratchet.protocol.records import Role

if TYPE_CHECKING:
    from kafkaratchet.node.contract import RecordOpener, RecordSealer

__all__ = ["CryptoSerializer", "CryptoDeserializer", "key_serializer", "value_serializer", "key_deserializer",
           "value_deserializer"]

_ABSENT: Any = object()  # the data argument was not passed: the two-argument form


class CryptoSerializer(Serializer):
    """Seals bytes; passes ``None`` (tombstones) and still-encrypted messages through unchanged."""

    __slots__ = ("_name", "_role", "_seal")

    def __init__(self, sealer: RecordSealer, role: Role, *, name: str = "") -> None:
        self._name = name
        self._role = role
        self._seal = sealer.seal  # bound once: this object is called for every record

    def serialize(self, topic: str, headers: Any = None, data: Any = _ABSENT) -> bytes | None:
        """kafka-python's ``serialize(topic, headers, data)``, or the older ``serialize(topic, data)``."""
        if data is _ABSENT:
            data = headers
        if type(data) is bytes:  # the hot path: everything else is decided in _other
            return self._seal(topic, self._role, data)
        if data is None:  # kafka-python asks the key serializer even for records without a key
            return None
        return self._other(topic, data)

    def _other(self, topic: str, data: Any) -> bytes | None:
        if isinstance(data, KafkaCryptoMessage):
            if not data.isCleartext(retry=False):
                return data.toWire()  # forwarding an undecrypted record must not seal it twice
            data = data.getMessage(retry=False)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise KafkaRatchetError(
                f"the kafkaratchet serializer takes bytes, not {type(data).__name__}; "
                "stack an encoding serializer in front of it")
        return self._seal(topic, self._role, bytes(data))

    def __call__(self, data: Any, ctx: Any = None) -> bytes | None:
        """confluent-kafka's serializer call: ``ctx.topic`` names the topic."""
        return self.serialize(getattr(ctx, "topic", None) or "", data)

    def __repr__(self) -> str:
        return f"CryptoSerializer({self._role.name.lower()}, node={self._name!r})"


class CryptoDeserializer(Deserializer):
    """Opens records, waiting up to its bound for a missing key; never raises on bad bytes."""

    __slots__ = ("_name", "_role", "wait", "_open", "_try_open")

    def __init__(self, opener: RecordOpener, role: Role, wait: float, *, name: str = "") -> None:
        self._name = name
        self._role = role
        self.wait = wait
        self._open = opener.open  # bound once: this object is called for every record
        self._try_open = opener.try_open

    def deserialize(self, topic: str, headers: Any = None, data: Any = _ABSENT) -> KafkaCryptoMessage | None:
        """kafka-python's ``deserialize(topic, headers, data)``, or the older ``deserialize(topic, data)``."""
        if data is _ABSENT:
            data = headers
        if type(data) is bytes:  # the hot path
            return self._open(topic, self._role, data, wait=self.wait, retrier=self)
        if data is None:
            return None
        if isinstance(data, KafkaCryptoMessage):
            if data.isCleartext(retry=False):
                return data
            data = data.toWire()
        return self._open(topic, self._role, bytes(data), wait=self.wait, retrier=self)

    def retry(self, message: KafkaCryptoMessage) -> bytes | None:
        """A later, non-blocking attempt (``KafkaCryptoMessage.isCleartext()``)."""
        try:
            return self._try_open(message.topic or "", self._role, message.toWire())
        except KafkaRatchetError:
            message.mark_undecryptable()
            return None

    def __call__(self, data: Any, ctx: Any = None) -> KafkaCryptoMessage | None:
        return self.deserialize(getattr(ctx, "topic", None) or "", data)

    def __repr__(self) -> str:
        return f"CryptoDeserializer({self._role.name.lower()}, node={self._name!r}, wait={self.wait})"


def key_serializer(sealer: RecordSealer, *, name: str = "") -> CryptoSerializer:
    """Seals record keys (``name`` names the node in the repr)."""
    return CryptoSerializer(sealer, Role.KEY, name=name)


def value_serializer(sealer: RecordSealer, *, name: str = "") -> CryptoSerializer:
    """Seals record values."""
    return CryptoSerializer(sealer, Role.VALUE, name=name)


def key_deserializer(opener: RecordOpener, wait: float, *, name: str = "") -> CryptoDeserializer:
    """Opens record keys, waiting up to ``wait`` seconds for a missing key."""
    return CryptoDeserializer(opener, Role.KEY, wait, name=name)


def value_deserializer(opener: RecordOpener, wait: float, *, name: str = "") -> CryptoDeserializer:
    """Opens record values, waiting up to ``wait`` seconds for a missing key."""
    return CryptoDeserializer(opener, Role.VALUE, wait, name=name)
