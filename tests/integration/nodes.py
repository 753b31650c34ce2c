"""Real nodes on the real broker: provision, build the key-exchange clients, start KafkaCrypto."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import TopicPartition

from kafkaratchet import KafkaConsumer, KafkaCrypto, KafkaCryptoStore, KafkaProducer
from kafkaratchet.files.provisioning import issue_node_chain, write_node
from kafkaratchet.node.topicsetup import TopicSpec, ensure_topics, exchange_topic_specs
from kafkaratchet.node.trusttopics import entry_record_key
from kafkaratchet.protocol.certs import self_signed_root
from kafkaratchet.protocol.identity import SigningIdentity


@dataclass
class Node:
    """A provisioned node: its store, its KafkaCrypto, and the clients it owns."""

    store: KafkaCryptoStore
    crypto: KafkaCrypto
    clients: list[Any] = field(default_factory=list)

    def producer(self, **extra: Any) -> KafkaProducer:
        config = self.store.get_kafka_config("producer")
        config.update(key_serializer=self.crypto.getKeySerializer(),
                      value_serializer=self.crypto.getValueSerializer(), linger_ms=0, **extra)
        producer = KafkaProducer(**config)
        self.clients.append(producer)
        return producer

    def consumer(self, *topics: str, wait: float = 10.0, **extra: Any) -> KafkaConsumer:
        """A consumer assigned to every partition of ``topics`` from the beginning (no group)."""
        config = self.store.get_kafka_config("consumer")
        config.pop("group_id", None)
        config.update(key_deserializer=self.crypto.getKeyDeserializer(max_key_wait_intervals=1,
                                                                      key_wait_interval=wait),
                      value_deserializer=self.crypto.getValueDeserializer(max_key_wait_intervals=1,
                                                                          key_wait_interval=wait),
                      enable_auto_commit=False, **extra)
        consumer = KafkaConsumer(**config)
        self.clients.append(consumer)
        partitions = []
        for topic in topics:
            deadline = time.monotonic() + 10
            found = consumer.partitions_for_topic(topic)
            while not found and time.monotonic() < deadline:
                time.sleep(0.05)
                found = consumer.partitions_for_topic(topic)
            assert found, f"topic {topic} does not exist"
            partitions += [TopicPartition(topic, p) for p in found]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        return consumer

    def close(self) -> None:
        self.crypto.close()
        for client in self.clients:
            client.close()
        self.clients.clear()


class Cluster:
    """One root of trust, and as many nodes under it as a test asks for."""

    def __init__(self, bootstrap: str, directory: Path) -> None:
        self.bootstrap = bootstrap
        self.directory = directory
        self.root = SigningIdentity.generate()
        self.root_cert = self_signed_root(self.root)
        self.nodes: list[Node] = []

    def provision(self, node_id: str, role: str, *, topics: list[str] | None = None,
                  crypto: dict[str, Any] | None = None, root: SigningIdentity | None = None,
                  lifetime: int = 0) -> KafkaCryptoStore:
        signer = root or self.root
        identity = SigningIdentity.generate()
        chain = issue_node_chain(signer, None, identity.public_key, role, topics=topics, lifetime=lifetime)
        return write_node(self.directory, node_id, identity, chains=[chain],
                          roots=[self_signed_root(signer)], bootstrap_servers=self.bootstrap,
                          crypto=crypto)

    def start(self, store: KafkaCryptoStore) -> Node:
        kp = KafkaProducer(**store.get_kafka_config("producer", extra="crypto"))
        kc = KafkaConsumer(**store.get_kafka_config("consumer", extra="crypto"))
        crypto = KafkaCrypto(None, kp, kc, config=store)
        assert crypto.wait_ready(30), "management topics were not followed in time"
        node = Node(store, crypto, [kp, kc])
        self.nodes.append(node)
        return node

    def topic(self, *names: str, partitions: int = 4, **configs: str) -> None:
        """Create data topics: :func:`create_topics`."""
        create_topics(self.bootstrap, *names, partitions=partitions, **configs)

    def exchange_topics(self, root: str) -> list[str]:
        """Create ``root``'s key-exchange topics, as a node of that root would (for tests that play one by hand)."""
        return create_exchange_topics(self.bootstrap, root)

    def node(self, node_id: str, role: str, **kwargs: Any) -> Node:
        return self.start(self.provision(node_id, role, **kwargs))

    def close(self) -> None:
        for node in reversed(self.nodes):
            node.close()


def create_topics(bootstrap: str, *names: str, partitions: int = 4, **configs: str) -> None:
    """Create data topics with the broker's replication factor (the cluster creates none by itself);
    an existing one is left as it is. Clients find a new topic at their next metadata request."""
    specs = [TopicSpec(name, partitions, -1, configs) for name in names]
    result = ensure_topics({"bootstrap_servers": bootstrap}, specs)
    assert not result.missing, f"could not create {result.missing}: {result.failed}"


def create_exchange_topics(bootstrap: str, root: str) -> list[str]:
    """``root.reqs``, ``root.keys`` and ``root.subs`` with the settings a node gives them; their names."""
    specs = exchange_topic_specs(root)
    result = ensure_topics({"bootstrap_servers": bootstrap}, specs)
    assert not result.missing, f"could not create {result.missing}: {result.failed}"
    return [spec.name for spec in specs]


def publish_trust(bootstrap: str, topic: str, *values: bytes) -> None:
    """Write trust records the way ``kafkaratchet-provision`` does, keyed for the compacted trust topics
    (a compacted topic refuses records without a key), and wait until the broker has them all."""
    from kafka import KafkaProducer as RawProducer

    producer = RawProducer(bootstrap_servers=bootstrap)
    try:
        for future in [producer.send(topic, key=entry_record_key(v), value=v) for v in values]:
            future.get(timeout=30)
    finally:
        producer.close()


def read_to_end(consumer: Any, timeout: float = 60.0) -> list[Any]:
    """Every record of the consumer's assigned partitions up to their end offsets as of this call.

    Counts positions, not records: an end offset is one past the last offset of a partition, which
    is not the number of records it holds (compaction, control records, a log start above 0)."""
    ends = consumer.end_offsets(list(consumer.assignment()))
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    while any(consumer.position(tp) < end for tp, end in ends.items()):
        assert time.monotonic() < deadline, f"not at the end offsets {ends} after {timeout:.0f} s"
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
    return records


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until it returns something true (returned), for at most ``timeout`` seconds:
    for state that no event announces (another node's key ring, a consumer group's assignment)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for: {what}")
        time.sleep(0.05)


def drain(consumer: KafkaConsumer, count: int, timeout: float = 60.0,
          stop: Callable[[list[Any]], bool] | None = None) -> list[Any]:
    """Poll until ``count`` records arrived (or ``timeout``); returns the records."""
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(records) < count and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
        if stop is not None and stop(records):
            break
    return records
