"""Deserializer and serializer semantics kafkacrypto users rely on, on a real node."""

from __future__ import annotations

import threading
import time

import pytest

from kafkaratchet import KafkaCryptoMessage, KafkaRatchetError

from .nodes import Cluster, drain

pytestmark = pytest.mark.integration


def test_none_stays_none_both_ways(cluster: Cluster, unique_root: str) -> None:
    node = cluster.node("n", "prodcon")
    assert node.crypto.getValueSerializer().serialize(unique_root, None, None) is None
    assert node.crypto.getKeySerializer().serialize(unique_root, None) is None
    assert node.crypto.getValueDeserializer().deserialize(unique_root, None, None) is None
    cluster.topic(unique_root)
    producer = node.producer()
    producer.send(unique_root, key=b"k", value=None)  # a tombstone
    producer.flush()
    [record] = drain(node.consumer(unique_root), 1)
    assert record.value is None and record.key.getMessage() == b"k"


def test_cleartext_message_is_sealed_and_ciphertext_passes_through(cluster: Cluster, unique_root: str) -> None:
    node = cluster.node("n", "prodcon")
    serializer = node.crypto.getValueSerializer()
    deserializer = node.crypto.getValueDeserializer()
    sealed = serializer.serialize(unique_root, None, KafkaCryptoMessage.of_cleartext(b"hello"))
    assert sealed != b"hello" and deserializer.deserialize(unique_root, sealed).getMessage() == b"hello"
    pending = KafkaCryptoMessage(sealed, topic=unique_root)  # still encrypted, e.g. bound for a dead-letter topic
    assert serializer.serialize(unique_root, None, pending) == sealed  # not sealed twice


def test_bytes_that_are_not_ours(cluster: Cluster, unique_root: str) -> None:
    strict = cluster.node("strict", "prodcon")
    message = strict.crypto.getValueDeserializer().deserialize(unique_root, None, b'{"plain": "json"}')
    assert not message.isCleartext() and not message.isPossiblyDecryptable()
    assert bytes(message) == b'{"plain": "json"}'
    lenient = cluster.node("lenient", "prodcon", crypto={"allow_plaintext": True})
    message = lenient.crypto.getValueDeserializer().deserialize(unique_root, None, b'{"plain": "json"}')
    assert message.isCleartext() and message.getMessage() == b'{"plain": "json"}'


def test_serializer_refuses_non_bytes_with_our_error(cluster: Cluster, unique_root: str) -> None:
    node = cluster.node("n", "prodcon")
    with pytest.raises(KafkaRatchetError, match="takes bytes"):
        node.crypto.getValueSerializer().serialize(unique_root, None, {"a": 1})


def test_wait_ends_when_the_key_arrives_and_retry_works_later(cluster: Cluster, unique_root: str) -> None:
    prod = cluster.node("prod", "producer")
    cons = cluster.node("cons", "consumer")
    sealed = prod.crypto.getValueSerializer().serialize(unique_root, None, b"late key")
    # no wait: comes back pending, and the request goes out in the background
    pending = cons.crypto.getValueDeserializer(max_key_wait_intervals=0).deserialize(unique_root, None, sealed)
    assert not pending.isCleartext(retry=False) and pending.isPossiblyDecryptable()
    # a waiting deserializer is the event that the key has arrived; then the old message opens on retry
    waited = cons.crypto.getValueDeserializer(max_key_wait_intervals=1, key_wait_interval=30.0)
    assert waited.deserialize(unique_root, None, sealed).getMessage() == b"late key"
    assert pending.isCleartext() and pending.getMessage() == b"late key"


def test_waiting_deserializer_wakes_on_arrival_not_at_the_bound(cluster: Cluster, unique_root: str) -> None:
    prod = cluster.node("prod", "producer")
    cons = cluster.node("cons", "consumer")
    sealed = prod.crypto.getValueSerializer().serialize(unique_root, None, b"x")
    deserializer = cons.crypto.getValueDeserializer(max_key_wait_intervals=1, key_wait_interval=60.0)
    result: list[KafkaCryptoMessage] = []
    worker = threading.Thread(target=lambda: result.append(deserializer.deserialize(unique_root, None, sealed)))
    started = time.monotonic()
    worker.start()
    worker.join(timeout=60)
    elapsed = time.monotonic() - started
    assert result and result[0].getMessage() == b"x"
    assert elapsed < 30, "the wait ended on the key's arrival, well before the 60 s bound"


def test_many_threads_share_one_node(cluster: Cluster, unique_root: str) -> None:
    node = cluster.node("n", "prodcon")
    serializer = node.crypto.getValueSerializer()
    deserializer = node.crypto.getValueDeserializer()
    errors: list[BaseException] = []

    def work(tag: int) -> None:
        try:
            for i in range(200):
                data = b"%d-%d" % (tag, i)
                topic = f"{unique_root}.t{tag % 3}"
                sealed = serializer.serialize(topic, None, data)
                assert deserializer.deserialize(topic, None, sealed).getMessage() == data
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
