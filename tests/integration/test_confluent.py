"""confluent-kafka's SerializingProducer and DeserializingConsumer with kafkaratchet's serdes."""

from __future__ import annotations

import time

import pytest

from kafkaratchet.node.confluent import consumer_config, producer_config

from .nodes import Cluster

pytestmark = pytest.mark.integration
confluent_kafka = pytest.importorskip("confluent_kafka", reason="confluent-kafka is not installed "
                                      "(pip install 'kafkaratchet[confluent]')")


@pytest.mark.smoke
def test_confluent_round_trip(cluster: Cluster, unique_root: str) -> None:
    prod = cluster.node("prod", "producer")
    cons = cluster.node("cons", "consumer")
    topic = f"{unique_root}.cf"
    cluster.topic(topic)
    config = producer_config(prod.crypto, {"bootstrap.servers": cluster.bootstrap})
    producer = confluent_kafka.SerializingProducer(config)
    sent = {b"k%d" % i: b"confluent value %d" % i for i in range(10)}
    for key, value in sent.items():
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0
    consumer = confluent_kafka.DeserializingConsumer(consumer_config(cons.crypto, {
        "bootstrap.servers": cluster.bootstrap, "group.id": f"{unique_root}-g", "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000}))
    try:
        consumer.subscribe([topic])
        got: dict[bytes, bytes] = {}
        deadline = time.monotonic() + 60
        while len(got) < len(sent) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            got[message.key().getMessage()] = message.value().getMessage()
    finally:
        consumer.close()
    assert got == sent
