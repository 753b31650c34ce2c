"""confluent-kafka support (the ``confluent`` extra).

kafkaratchet's serializer objects are also confluent-kafka serializers: they are
called as ``obj(data, ctx)`` and read the topic from ``ctx.topic``. This module
builds the configuration entries for ``SerializingProducer`` and
``DeserializingConsumer``; the key exchange itself keeps running on the
kafka-python clients handed to :class:`~kafkaratchet.KafkaCrypto`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kafkaratchet.node import KafkaCrypto

__all__ = ["producer_config", "consumer_config"]


def producer_config(crypto: KafkaCrypto, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` plus ``key.serializer`` and ``value.serializer`` that seal."""
    return {**config, "key.serializer": crypto.getKeySerializer(), "value.serializer": crypto.getValueSerializer()}


def consumer_config(crypto: KafkaCrypto, config: dict[str, Any], *, max_key_wait_intervals: int | None = None,
                    key_wait_interval: float | None = None) -> dict[str, Any]:
    """``config`` plus ``key.deserializer`` and ``value.deserializer`` that open records."""
    return {**config,
            "key.deserializer": crypto.getKeyDeserializer(max_key_wait_intervals, key_wait_interval),
            "value.deserializer": crypto.getValueDeserializer(max_key_wait_intervals, key_wait_interval)}
