"""The harness itself: produce and consume through the real broker with kafka-python."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from .nodes import create_topics

if TYPE_CHECKING:
    from ..conftest import KafkaEngine

pytestmark = pytest.mark.integration


@pytest.mark.smoke
def test_produce_and_consume_every_partition(kafka_bootstrap: str, unique_root: str) -> None:
    create_topics(kafka_bootstrap, unique_root, partitions=4)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    sent = {f"k{i}".encode(): os.urandom(16) for i in range(40)}
    for key, value in sent.items():
        producer.send(unique_root, key=key, value=value)
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    partitions = consumer.partitions_for_topic(unique_root)
    assert partitions == {0, 1, 2, 3}, "the topic was created with 4 partitions"
    consumer.assign([TopicPartition(unique_root, p) for p in partitions])
    consumer.seek_to_beginning()
    received: dict[bytes, bytes] = {}
    deadline = time.monotonic() + 30
    while len(received) < len(sent) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            received.update((r.key, r.value) for r in records)
    consumer.close()
    assert received == sent


def test_a_broker_started_here_listens_on_loopback_only(kafka_engine: KafkaEngine) -> None:
    if kafka_engine.kind == "external":
        pytest.skip("an external cluster was given (KAFKA_BOOTSTRAP_SERVERS); no broker was started here")
    addresses = kafka_engine.bootstrap_servers.split(",")
    if kafka_engine.sasl_bootstrap_servers:
        addresses += kafka_engine.sasl_bootstrap_servers.split(",")
    for address in addresses:
        host, _, port = address.rpartition(":")
        assert host == "127.0.0.1" and int(port) > 0, address
