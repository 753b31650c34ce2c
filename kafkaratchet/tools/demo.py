"""``kafkaratchet demo``: the whole system on one machine in a few seconds.

Starts the embedded broker (unless a cluster is named), provisions a producer
and a consumer with separate identities under a throwaway root of trust, sends
records, decrypts them on the consumer, reads the raw records back from the
broker to show they are ciphertext, and reports key-exchange latency and
throughput.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafkaratchet.errors import BrokerError
from kafkaratchet.files.provisioning import issue_node_chain, write_node
from kafkaratchet.protocol.certs import self_signed_root
from kafkaratchet.protocol.identity import SigningIdentity
from kafkaratchet.tools.broker import EmbeddedBroker
from kafkaratchet.tools.progress import Progress

log = logging.getLogger(__name__)


@dataclass
class DemoResult:
    records: int
    decrypted: int
    undecryptable: int
    first_record_latency: float
    produce_rate: float
    consume_rate: float
    raw_checked: int
    raw_plaintext_leaks: int

    @property
    def ok(self) -> bool:
        return self.decrypted == self.records and self.raw_plaintext_leaks == 0 and self.raw_checked > 0


def run_demo(bootstrap: str, workdir: Path, records: int, size: int, out: Any) -> DemoResult:
    from kafkaratchet.node import KafkaCrypto
    from kafkaratchet.node.clients import KafkaConsumer, KafkaProducer, assign_all

    root = SigningIdentity.generate()
    root_cert = self_signed_root(root)
    stores = {}
    for name, role in (("demo-producer", "producer"), ("demo-consumer", "consumer")):
        identity = SigningIdentity.generate()
        chain = issue_node_chain(root, None, identity.public_key, role, lifetime=3600)
        stores[name] = write_node(workdir, name, identity, chains=[chain], roots=[root_cert],
                                  bootstrap_servers=bootstrap)
        print(f"provisioned {name:<14} {identity.fingerprint}  role={role}", file=out)

    topic = f"demo{os.urandom(4).hex()}.readings"
    sentinel = b"DEMO-PLAINTEXT-"
    nodes = []
    try:
        for store in stores.values():
            kp = KafkaProducer(**store.get_kafka_config("producer", extra="crypto"))
            kc = KafkaConsumer(**store.get_kafka_config("consumer", extra="crypto"))
            nodes.append((KafkaCrypto(None, kp, kc, config=store), kp, kc))
        producer_node, consumer_node = nodes[0][0], nodes[1][0]
        for node, _, _ in nodes:
            node.wait_ready(30)
        _create_topic(stores["demo-producer"].get_kafka_config("producer"), topic)

        producer = KafkaProducer(**stores["demo-producer"].get_kafka_config("producer"), linger_ms=5,
                                 value_serializer=producer_node.getValueSerializer(),
                                 key_serializer=producer_node.getKeySerializer())
        payload = os.urandom(max(0, size - len(sentinel) - 8))
        started = time.monotonic()
        with Progress("sending", records) as bar:
            for i in range(records):
                producer.send(topic, key=b"%d" % i, value=sentinel + b"%08d" % i + payload)
                bar.advance()
            producer.flush()
        produce_rate = records / (time.monotonic() - started)
        producer.close()

        config = stores["demo-consumer"].get_kafka_config("consumer")
        config.pop("group_id", None)
        consumer = KafkaConsumer(**config, enable_auto_commit=False,
                                 value_deserializer=consumer_node.getValueDeserializer(),
                                 key_deserializer=consumer_node.getKeyDeserializer())
        started = time.monotonic()
        assign_all(consumer, topic)
        first: float | None = None
        decrypted = undecryptable = 0
        deadline = time.monotonic() + 60 + records / 500
        with Progress("receiving", records) as bar:
            while decrypted + undecryptable < records and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=200).values():
                    for record in batch:
                        if record.value.isCleartext():
                            if first is None:
                                first = time.monotonic() - started
                            decrypted += record.value.getMessage().startswith(sentinel)
                        else:
                            undecryptable += 1
                        bar.advance()
        consume_rate = (decrypted + undecryptable) / max(time.monotonic() - started, 1e-9)
        consumer.close()

        raw = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        raw_checked = leaks = 0
        try:
            assign_all(raw, topic)
            deadline = time.monotonic() + 30
            while raw_checked < records and time.monotonic() < deadline:
                for batch in raw.poll(timeout_ms=200).values():
                    for record in batch:
                        raw_checked += 1
                        leaks += sentinel in (record.value or b"") or sentinel in (record.key or b"")
        finally:
            raw.close()
    finally:
        for node, kp, kc in nodes:
            node.close()
            kp.close()
            kc.close()
    return DemoResult(records, decrypted, undecryptable, first if first is not None else float("nan"),
                      produce_rate, consume_rate, raw_checked, leaks)


def _create_topic(kafka_config: dict[str, Any], topic: str) -> None:
    """The demo's data topic, with the broker's default partitions and replication: a cluster without
    automatic topic creation has none, and a send to a missing topic blocks for a minute and fails."""
    from kafkaratchet.node.topicsetup import TopicSpec, ensure_topics

    result = ensure_topics(kafka_config, [TopicSpec(topic)])
    if result.missing:
        why = result.failed.get(topic, "this principal may not create topics")
        raise BrokerError(f"cannot create the demo topic {topic}: {why}")


def main(bootstrap: str | None, records: int, size: int, keep: Path | None, out: Any) -> int:
    with contextlib.ExitStack() as stack:
        if bootstrap is None:
            print("starting the embedded Kafka-protocol broker (Tansu) on 127.0.0.1 ...", file=out)
            broker = stack.enter_context(EmbeddedBroker())
            bootstrap = broker.bootstrap_servers
            print(f"broker pid {broker.pid} at {bootstrap}", file=out)
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            workdir = keep
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kafkaratchet-demo-")))
        result = run_demo(bootstrap, workdir, records, size, out)
    print("", file=out)
    print(f"records sent                 {result.records}", file=out)
    print(f"decrypted by the consumer    {result.decrypted}", file=out)
    print(f"returned undecryptable       {result.undecryptable}", file=out)
    print(f"subscribe -> first cleartext {result.first_record_latency * 1000:.0f} ms "
          "(includes the key exchange)", file=out)
    print(f"produce throughput           {result.produce_rate:,.0f} records/s", file=out)
    print(f"consume throughput           {result.consume_rate:,.0f} records/s", file=out)
    print(f"raw records read back        {result.raw_checked}, plaintext found in "
          f"{result.raw_plaintext_leaks}", file=out)
    print("OK: every record was ciphertext on the broker and cleartext at the consumer" if result.ok
          else "FAILED: see the numbers above", file=out)
    return 0 if result.ok else 1


__all__ = ["main", "run_demo", "DemoResult"]
