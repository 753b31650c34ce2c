"""KafkaCrypto end to end on the real broker: key exchange, serializers, restarts, refusals."""

from __future__ import annotations

import logging
import os

import pytest
from .nodes import Cluster, drain

pytestmark = pytest.mark.integration


def test_three_round_trips_between_separate_nodes(cluster: Cluster, unique_root: str) -> None:
    prod = cluster.node("prod", "producer")
    cons = cluster.node("cons", "consumer")
    topic = f"{unique_root}.data"
    for round_no in range(3):
        producer = prod.producer()
        values = [os.urandom(64) for _ in range(20)]
        for value in values:
            producer.send(topic, key=b"k%d" % round_no, value=value)
        producer.flush()
        producer.close()
        consumer = cons.consumer(topic)
        records = drain(consumer, 20 * (round_no + 1))
        consumer.close()
        assert len(records) == 20 * (round_no + 1)
        assert all(r.key.isCleartext() and r.value.isCleartext() for r in records)
        got = [r.value.getMessage() for r in records if r.key.getMessage() == b"k%d" % round_no]
        assert sorted(got) == sorted(values), f"round {round_no}"


def test_one_config_for_producer_and_consumer_in_one_process(cluster: Cluster, unique_root: str) -> None:
    node = cluster.node("both", "prodcon")
    topic = unique_root
    producer = node.producer()
    producer.send(topic, value=b"to myself")
    producer.flush()
    consumer = node.consumer(topic)
    [record] = drain(consumer, 1)
    assert record.value.getMessage() == b"to myself"


def test_unauthorised_consumer_never_gets_keys(cluster: Cluster, unique_root: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    prod = cluster.node("prod", "producer")
    other = cluster.node("other", "consumer", topics=["somethingelse"])
    producer = prod.producer()
    for i in range(5):
        producer.send(unique_root, value=b"secret %d" % i)
    producer.flush()
    caplog.set_level(logging.INFO, logger="kafkaratchet")
    consumer = other.consumer(unique_root, wait=1.5)
    records = drain(consumer, 5)
    assert len(records) == 5
    assert not any(r.value.isCleartext() for r in records)
    assert all(r.value.isPossiblyDecryptable() for r in records)
    refusals = [r for r in caplog.records if "refused key request" in r.getMessage()]
    assert len(refusals) == 1, "the producer logs the refusal once (rate-limited), not per request"
    assert "topic-not-allowed" in refusals[0].getMessage()
