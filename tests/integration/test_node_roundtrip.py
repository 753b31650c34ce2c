"""KafkaCrypto end to end on the real broker: key exchange, serializers, restarts, refusals."""

from __future__ import annotations

import logging
import os
import time

import pytest
from kafka import KafkaConsumer as RawConsumer
from kafka import KafkaProducer as KafkaProducerRaw
from kafka import TopicPartition

from .nodes import Cluster, drain, read_to_end

pytestmark = pytest.mark.integration


@pytest.mark.smoke
def test_three_round_trips_between_separate_nodes(cluster: Cluster, unique_root: str) -> None:
    prod = cluster.node("prod", "producer")
    cons = cluster.node("cons", "consumer")
    topic = f"{unique_root}.data"
    cluster.topic(topic)
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
    cluster.topic(topic)
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
    cluster.topic(unique_root)
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

    def refused() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "refused key request" in r.getMessage()]

    deadline = time.monotonic() + 30
    while not refused():  # the consumer gave up waiting; the producer judges its request in its own time
        assert time.monotonic() < deadline, "the producer never judged the request"
        time.sleep(0.05)
    refusals = refused()
    assert len(refusals) == 1, "the producer logs the refusal once (rate-limited), not per request"
    assert "topic-not-allowed" in refusals[0].getMessage()


def test_late_consumer_decrypts_all_1000_records(cluster: Cluster, unique_root: str) -> None:
    prod = cluster.node("prod", "producer")
    cluster.topic(unique_root)
    producer = prod.producer()
    values = {os.urandom(32) for _ in range(1000)}
    for value in values:
        producer.send(unique_root, value=value)
    producer.flush()
    cons = cluster.node("late", "consumer")
    records = drain(cons.consumer(unique_root), 1000)
    assert len(records) == 1000
    assert {r.value.getMessage() for r in records} == values


def test_consumer_restarted_mid_stream_decrypts_everything_after(cluster: Cluster, unique_root: str) -> None:
    prod = cluster.node("prod", "producer")
    cluster.topic(unique_root)
    producer = prod.producer()
    store = cluster.provision("cons", "consumer")
    first = cluster.start(store)
    for i in range(50):
        producer.send(unique_root, value=b"before %d" % i)
    producer.flush()
    assert all(r.value.isCleartext() for r in drain(first.consumer(unique_root), 50))
    first.close()
    for i in range(50):
        producer.send(unique_root, value=b"after %d" % i)
    producer.flush()
    second = cluster.start(store)  # same files, fresh process state: must ask for keys again
    records = drain(second.consumer(unique_root), 100)
    assert sorted(r.value.getMessage() for r in records) == sorted(
        [b"before %d" % i for i in range(50)] + [b"after %d" % i for i in range(50)])


def test_producer_restarted_mid_stream_leaves_nothing_undecryptable(cluster: Cluster, unique_root: str) -> None:
    store = cluster.provision("prod", "producer")
    first = cluster.start(store)
    cluster.topic(unique_root)
    producer = first.producer()
    for i in range(30):
        producer.send(unique_root, value=b"epoch0 %d" % i)
    producer.flush()
    first.crypto.ratchet()  # records after this use a new key; the old one must survive the restart
    for i in range(30):
        producer.send(unique_root, value=b"epoch1 %d" % i)
    producer.flush()
    first.close()
    second = cluster.start(store)
    cons = cluster.node("cons", "consumer")
    consumer = cons.consumer(unique_root)
    records = drain(consumer, 60)  # the restarted producer answers before it has sealed anything again
    producer = second.producer()
    for i in range(30):
        producer.send(unique_root, value=b"restarted %d" % i)
    producer.flush()
    records += drain(consumer, 30)
    assert len(records) == 90
    assert all(r.value.isCleartext() for r in records)
    assert {r.value.getMessage().split()[0] for r in records} == {b"epoch0", b"epoch1", b"restarted"}


def test_broker_sees_no_plaintext_on_any_topic(cluster: Cluster, unique_root: str) -> None:
    prod = cluster.node("prod", "producer")
    cons = cluster.node("cons", "consumer")
    sentinel_key, sentinel_value = b"SENTINEL-KEY-7f3a", b"SENTINEL-VALUE-91c2"
    cluster.topic(f"{unique_root}.x")
    producer = prod.producer()
    for i in range(20):
        producer.send(f"{unique_root}.x", key=sentinel_key + b"%d" % i, value=sentinel_value + b"%d" % i)
    producer.flush()
    assert all(r.value.isCleartext() for r in drain(cons.consumer(f"{unique_root}.x"), 20))
    raw = RawConsumer(bootstrap_servers=cluster.bootstrap, enable_auto_commit=False)
    try:
        topics = [f"{unique_root}.x", f"{unique_root}.reqs", f"{unique_root}.keys"]
        partitions = [TopicPartition(t, p) for t in topics for p in raw.partitions_for_topic(t) or ()]
        raw.assign(partitions)
        raw.seek_to_beginning()
        blobs = read_to_end(raw, timeout=30)
    finally:
        raw.close()
    seen_topics = {r.topic for r in blobs}
    assert seen_topics == set(topics), "every data and key-exchange topic was read back"
    for record in blobs:
        for part in (record.key or b"", record.value or b""):
            assert b"SENTINEL" not in part


def test_records_copied_to_another_topic_or_role_do_not_open(cluster: Cluster, unique_root: str) -> None:
    node = cluster.node("both", "prodcon")
    cluster.topic(f"{unique_root}.a", f"{unique_root}.b")
    serialize = node.crypto.getValueSerializer()
    sealed = serialize.serialize(f"{unique_root}.a", None, b"payload")
    sealed_key = node.crypto.getKeySerializer().serialize(f"{unique_root}.a", None, b"k")
    raw = KafkaProducerRaw(bootstrap_servers=cluster.bootstrap)
    raw.send(f"{unique_root}.b", key=sealed_key, value=sealed)  # copied to a sibling topic, same root
    raw.send(f"{unique_root}.a", key=sealed, value=sealed_key)  # key and value swapped
    raw.send(f"{unique_root}.a", key=sealed_key, value=sealed)  # the original, as a control
    raw.flush()
    raw.close()
    records = drain(node.consumer(f"{unique_root}.a", f"{unique_root}.b", wait=1.0), 3)
    by_topic = {(r.topic, bytes(r.value.toWire()) == sealed): r for r in records}
    original = by_topic[(f"{unique_root}.a", True)]
    assert original.value.getMessage() == b"payload" and original.key.getMessage() == b"k"
    copied = by_topic[(f"{unique_root}.b", True)]
    swapped = by_topic[(f"{unique_root}.a", False)]
    for message in (copied.value, copied.key, swapped.value, swapped.key):
        assert not message.isCleartext() and not message.isPossiblyDecryptable()
