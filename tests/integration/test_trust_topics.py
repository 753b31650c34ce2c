"""Trust topics on a real broker: the chain server keys what it publishes, and nodes say when a topic deletes."""

from __future__ import annotations

import logging
import time

import pytest
from kafka import KafkaConsumer

from kafkaratchet.node import trusttopics
from kafkaratchet.node.clients import assign_all
from kafkaratchet.node.trusttopics import CHAIN_KEY_PREFIX, TRUST_TOPIC_CONFIGS, chain_record_key, check_trust_topics
from kafkaratchet.protocol.certs import Chain, Usage
from kafkaratchet.protocol.identity import SigningIdentity
from kafkaratchet.services.chainserver import KafkaCryptoChainServer

from .nodes import Cluster, create_topics, drain

pytestmark = pytest.mark.integration

DELETING = {"cleanup.policy": "delete", "retention.ms": "604800000"}


def _create(bootstrap: str, topics: dict[str, dict[str, str]]) -> None:
    """One partition each, the broker's replication factor, these settings (none: the broker's defaults)."""
    for name, configs in topics.items():
        create_topics(bootstrap, name, partitions=1, **configs)


def test_check_on_the_broker_flags_only_a_deleting_topic(kafka_bootstrap: str, unique_root: str) -> None:
    deleting, compacted, auto, missing = (f"{unique_root}-{n}" for n in ("del", "cmp", "auto", "missing"))
    _create(kafka_bootstrap, {deleting: DELETING, compacted: dict(TRUST_TOPIC_CONFIGS),
                              auto: {}})  # auto: the broker's defaults, as its automatic creation would give
    problems = check_trust_topics({"bootstrap_servers": kafka_bootstrap, "enable_auto_commit": False},
                                  [deleting, compacted, auto, missing])
    assert [p for p in problems if deleting in p], problems
    assert not [p for p in problems if compacted in p or missing in p], problems
    # Tansu reports no config of a topic created with its defaults (nothing to conclude); Apache Kafka
    # reports its default cleanup.policy=delete and retention.ms=604800000: a problem
    assert len(problems) in (1, 2)


def test_the_chain_server_publishes_each_chain_under_its_key(cluster: Cluster, unique_root: str) -> None:
    topic = f"{unique_root}-chains"
    store = cluster.provision("chains", "chainserver", crypto={"chains_topic": topic, "chain_lifetime": 60})
    server = KafkaCryptoChainServer(None, config=store)
    consumer_key, producer_key = SigningIdentity.generate().public_key, SigningIdentity.generate().public_key
    server.add_key(consumer_key, {Usage.CONSUME}, ["orders"])
    server.add_key(producer_key, {Usage.PRODUCE})
    try:
        assert server.run_once() == 2
        assert server.run_once(time.time() + 55) == 2  # renewed: same rights, so the same keys
    finally:
        server.close()
    raw = KafkaConsumer(bootstrap_servers=cluster.bootstrap, enable_auto_commit=False)
    try:
        assign_all(raw, topic)
        records = drain(raw, 4, timeout=30)
    finally:
        raw.close()
    assert len(records) == 4
    for record in records:
        assert record.key == chain_record_key(Chain.decode(record.value))
    keys = [r.key for r in records]
    assert {k[len(CHAIN_KEY_PREFIX):][:32] for k in keys} == {consumer_key, producer_key}
    assert len(set(keys)) == 2, "a renewal replaces the chain it renews once the topic is compacted"


def test_a_node_warns_at_start_about_each_trust_topic_that_deletes(cluster: Cluster, unique_root: str,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    names = {kind: f"{unique_root}-{kind}" for kind in ("chains", "allowlist", "denylist")}
    _create(cluster.bootstrap, {names["chains"]: DELETING, names["allowlist"]: DELETING,
                                names["denylist"]: dict(TRUST_TOPIC_CONFIGS)})
    caplog.set_level(logging.WARNING, logger=trusttopics.__name__)
    crypto = {f"{kind}_topic": name for kind, name in names.items()}
    cluster.node("n", "consumer", crypto=crypto)  # ready without waiting for the check
    deadline = time.monotonic() + 20
    warnings: list[str] = []
    while time.monotonic() < deadline:
        warnings = [r.getMessage() for r in caplog.records if r.name == trusttopics.__name__]
        if len(warnings) >= 2:
            break
        time.sleep(0.1)  # the check runs on its own thread; no event to wait on from here
    assert len(warnings) == 2, warnings
    assert {names["chains"], names["allowlist"]} == {w.split(":")[0].removeprefix("trust topic ") for w in warnings}
    assert all("cleanup.policy=compact" in w and "kafka-configs.sh" in w for w in warnings)
