"""The harness itself: produce and consume through the real broker with kafka-python."""

from __future__ import annotations

import os
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

pytestmark = pytest.mark.integration


def test_produce_and_consume_every_partition(kafka_bootstrap: str, unique_root: str) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    sent = {f"k{i}".encode(): os.urandom(16) for i in range(40)}
    for key, value in sent.items():
        producer.send(unique_root, key=key, value=value)
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    partitions = consumer.partitions_for_topic(unique_root)
    assert partitions, "topic was not created"
    consumer.assign([TopicPartition(unique_root, p) for p in partitions])
    consumer.seek_to_beginning()
    received: dict[bytes, bytes] = {}
    deadline = time.monotonic() + 30
    while len(received) < len(sent) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            received.update((r.key, r.value) for r in records)
    consumer.close()
    assert received == sent


def test_embedded_broker_is_loopback_only(kafka_bootstrap: str) -> None:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("an external cluster was given; the embedded broker is not running")
    host, _, port = kafka_bootstrap.rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0
