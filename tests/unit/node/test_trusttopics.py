"""Trust topics: record keys that compaction keeps apart, and the checks of how a broker keeps the topics."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import kafka
import msgpack
import pytest
from kafka.errors import KafkaConnectionError

from kafkaratchet.node import trusttopics
from kafkaratchet.node.trusttopics import (
    CHAIN_KEY_PREFIX,
    ENTRY_KEY_PREFIX,
    TRUST_TOPIC_CONFIGS,
    chain_record_key,
    check_trust_topics,
    entry_record_key,
    start_trust_topic_check,
    trust_topic_problems,
)
from kafkaratchet.protocol.certs import Chain, Usage, issue_certificate, self_signed_root
from kafkaratchet.protocol.identity import SigningIdentity
from kafkaratchet.tools.broker import free_port

KAFKA_DEFAULTS = {"cleanup.policy": "delete", "retention.ms": "604800000", "retention.bytes": "-1"}


# ---------------------------------------------------------------------------------------- record keys


def _blake(data: bytes, person: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16, person=person).digest()


def test_entry_key_is_the_documented_digest_of_the_whole_value() -> None:
    value = b"\x94\x01\xa4deny\xc4\x03abc\xc0"
    key = entry_record_key(value)
    assert key == b"kr-trust-v2:" + _blake(value, b"kr-trust-entry")  # an independent implementation
    assert key == ENTRY_KEY_PREFIX + bytes.fromhex("cf72aedcd2675dff4d8ed4ae2292ed6a")  # pinned: writers agree
    assert len(key) == len(ENTRY_KEY_PREFIX) + 16


def test_two_denials_get_two_keys_and_a_replay_gets_the_same_key() -> None:
    admin = SigningIdentity.generate()
    first, second = (issue_certificate(admin, SigningIdentity.generate().public_key, usages=[]).encode()
                     for _ in range(2))
    assert entry_record_key(first) != entry_record_key(second), "compaction would keep only one denial"
    assert entry_record_key(first) == entry_record_key(bytes(first)), "a byte-identical replay collapses"
    assert entry_record_key(first[:-1] + bytes([first[-1] ^ 1])) != entry_record_key(first)


def _chain(root: SigningIdentity, subject: bytes, *, usages: list[str], topics: list[str] | None,
           expiry: int, pathlen: int | None = 0) -> Chain:
    return Chain.of(issue_certificate(root, subject, usages=usages, topics=topics, expiry=expiry, pathlen=pathlen))


def test_a_renewal_with_the_same_rights_has_the_same_key() -> None:
    root, node = SigningIdentity.generate(), SigningIdentity.generate()
    now = int(time.time())
    first = _chain(root, node.public_key, usages=[Usage.CONSUME, Usage.PRODUCE], topics=["orders", "pay"],
                   expiry=now + 60)
    renewed = _chain(root, node.public_key, usages=[Usage.PRODUCE, Usage.CONSUME], topics=["pay", "orders", "pay"],
                     expiry=now + 3600)
    assert first.encode() != renewed.encode()
    assert chain_record_key(first) == chain_record_key(renewed)
    rights = msgpack.packb([sorted([Usage.CONSUME, Usage.PRODUCE]), ["orders", "pay"], 0], use_bin_type=True)
    assert chain_record_key(first) == b"kr-chain-v1:" + node.public_key + _blake(rights, b"kr-chain-rights")
    assert chain_record_key(first).startswith(CHAIN_KEY_PREFIX + node.public_key)


def test_distinct_rights_or_subjects_have_distinct_keys() -> None:
    root, node = SigningIdentity.generate(), SigningIdentity.generate()
    expiry = int(time.time()) + 600
    base = dict(usages=[Usage.CONSUME], topics=["orders"], expiry=expiry)
    keys = [
        chain_record_key(_chain(root, node.public_key, **base)),  # type: ignore[arg-type]
        chain_record_key(_chain(root, node.public_key, usages=[Usage.CONSUME, Usage.PRODUCE], topics=["orders"],
                                expiry=expiry)),
        chain_record_key(_chain(root, node.public_key, usages=[Usage.CONSUME], topics=["pay"], expiry=expiry)),
        chain_record_key(_chain(root, node.public_key, usages=[Usage.CONSUME], topics=None, expiry=expiry)),
        chain_record_key(_chain(root, node.public_key, usages=[Usage.CONSUME], topics=[], expiry=expiry)),
        chain_record_key(_chain(root, node.public_key, usages=[Usage.CONSUME], topics=["orders"], expiry=expiry,
                                pathlen=None)),
        chain_record_key(_chain(root, SigningIdentity.generate().public_key, **base)),  # type: ignore[arg-type]
    ]
    assert len(set(keys)) == len(keys)


def test_the_chain_key_is_the_leafs_even_below_a_longer_chain() -> None:
    root, issuer, node = (SigningIdentity.generate() for _ in range(3))
    middle = issue_certificate(root, issuer.public_key, usages=[Usage.CHAIN_ISSUE, Usage.CONSUME], pathlen=1)
    leaf = issue_certificate(issuer, node.public_key, usages=[Usage.CONSUME], topics=["orders"])
    direct = _chain(root, node.public_key, usages=[Usage.CONSUME], topics=["orders"], expiry=0)
    assert chain_record_key(Chain.of(middle, leaf)) == chain_record_key(direct)
    assert chain_record_key(Chain.of(self_signed_root(root))).startswith(CHAIN_KEY_PREFIX + root.public_key)


# ---------------------------------------------------------------------------------------- topic configs


@pytest.mark.parametrize("configs", [
    {},  # every Apache Kafka default
    KAFKA_DEFAULTS,
    {"cleanup.policy": "compact,delete", "retention.ms": "604800000", "retention.bytes": "-1"},
    {"cleanup.policy": "delete,compact", "retention.ms": "-1", "retention.bytes": "1073741824"},
    {"cleanup.policy": "delete", "retention.ms": "forever"},
])
def test_a_topic_that_deletes_entries_is_flagged_with_the_fix(configs: dict[str, str]) -> None:
    [problem] = trust_topic_problems("denylist", configs)
    assert "trust topic denylist" in problem and "deletes trust entries" in problem
    assert "--entity-name denylist --add-config cleanup.policy=compact" in problem


def test_values_from_the_broker_cannot_forge_log_lines() -> None:
    [problem] = trust_topic_problems("denylist", {"cleanup.policy": "delete\nWARNING all is fine", "retention.ms": "1"})
    assert "\n" not in problem


def test_a_topic_that_never_deletes_but_is_not_compacted_is_flagged() -> None:
    [problem] = trust_topic_problems("chains", {"cleanup.policy": "delete", "retention.ms": "-1",
                                                "retention.bytes": "-1"})
    assert "not compacted" in problem and "cleanup.policy=compact" in problem


@pytest.mark.parametrize("configs", [
    dict(TRUST_TOPIC_CONFIGS),
    {"cleanup.policy": "compact", "retention.ms": "604800000"},  # retention does not apply to compaction
    {"cleanup.policy": "compact,delete", "retention.ms": "-1", "retention.bytes": "-1"},
    {"cleanup.policy": " Compact "},
])
def test_a_compacted_topic_without_deletion_passes(configs: dict[str, str]) -> None:
    assert trust_topic_problems("allowlist", configs) == []


def test_unclean_leader_election_is_flagged() -> None:
    [problem] = trust_topic_problems("allowlist", {**TRUST_TOPIC_CONFIGS, "unclean.leader.election.enable": "true"})
    assert "unclean.leader.election.enable=false" in problem


def test_the_recommended_configs_compact_and_never_delete() -> None:
    assert TRUST_TOPIC_CONFIGS["cleanup.policy"] == "compact"
    assert TRUST_TOPIC_CONFIGS["retention.ms"] == "-1"
    with pytest.raises(TypeError):
        TRUST_TOPIC_CONFIGS["cleanup.policy"] = "delete"  # type: ignore[index]


# ---------------------------------------------------------------------------------------- asking the broker


class FakeAdmin:
    """Stands in for kafka-python's KafkaAdminClient; the class attributes say how it behaves."""

    DEFAULT_CONFIG = {"bootstrap_servers": "", "client_id": "", "request_timeout_ms": 0,
                      "bootstrap_timeout_ms": 0, "sasl_plain_password": None}
    answer: Any = None
    fail: BaseException | None = None
    instances: list[FakeAdmin] = []

    def __init__(self, **config: Any) -> None:
        unknown = set(config) - set(self.DEFAULT_CONFIG)
        assert not unknown, f"the real client refuses unknown configs: {unknown}"
        logging.getLogger("kafka.admin.client").debug("Starting KafkaAdminClient with configuration: %s", config)
        self.config = config
        self.closed = False
        self.asked: list[Any] = []
        FakeAdmin.instances.append(self)

    def describe_configs(self, config_resources: list[Any], include_synonyms: bool = False,
                         config_filter: str = "modified") -> Any:
        self.asked = [(r.name, r.configs, config_filter) for r in config_resources]
        if self.fail is not None:
            raise self.fail
        return self.answer

    def close(self) -> None:
        self.closed = True


def _v3(configs: dict[str, dict[str, str]]) -> dict[str, Any]:
    return {"topic": {name: {k: {"value": v, "config_source": "DEFAULT_CONFIG"} for k, v in c.items()}
                      for name, c in configs.items()}}


@pytest.fixture
def fake_admin(monkeypatch: pytest.MonkeyPatch) -> type[FakeAdmin]:
    monkeypatch.setattr(kafka, "KafkaAdminClient", FakeAdmin)
    monkeypatch.setattr(FakeAdmin, "answer", None)
    monkeypatch.setattr(FakeAdmin, "fail", None)
    monkeypatch.setattr(FakeAdmin, "instances", [])
    return FakeAdmin


NODE_CONFIG = {"bootstrap_servers": "kafka1:9092", "enable_auto_commit": False, "fetch_max_wait_ms": 100,
               "request_timeout_ms": 305000, "sasl_plain_password": "hunter2-not-for-logs"}


def test_check_reads_every_config_of_the_topics_with_the_nodes_settings(fake_admin: type[FakeAdmin],
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake_admin.answer = _v3({"chains": dict(TRUST_TOPIC_CONFIGS), "allowlist": KAFKA_DEFAULTS,
                             "denylist": {"cleanup.policy": "compact,delete", "retention.ms": "86400000"}})
    problems = check_trust_topics(NODE_CONFIG, ["chains", "allowlist", "denylist"])
    assert len(problems) == 2
    assert "trust topic allowlist" in problems[0] and "trust topic denylist" in problems[1]
    [admin] = fake_admin.instances
    assert admin.closed
    assert admin.asked == [("chains", None, "all"), ("allowlist", None, "all"), ("denylist", None, "all")]
    assert admin.config["bootstrap_servers"] == "kafka1:9092"
    assert "enable_auto_commit" not in admin.config and "fetch_max_wait_ms" not in admin.config
    assert admin.config["request_timeout_ms"] <= 10_000 and admin.config["bootstrap_timeout_ms"] <= 10_000
    assert "hunter2-not-for-logs" not in caplog.text, "kafka-python logs the admin configuration at DEBUG"


def test_check_reads_kafka_python_2_answers(fake_admin: type[FakeAdmin], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kafkaratchet.node.trusttopics")
    class Response:
        def __init__(self, resources: list[Any]) -> None:
            self.resources = resources

    fake_admin.answer = [Response([
        (0, None, 2, "chains", [("cleanup.policy", "compact", False, 5, False, [])]),
        (0, None, 2, "allowlist", [("cleanup.policy", "delete", False, 5, False, []),
                                   ("retention.ms", "604800000", False, 5, False, [])]),
        (29, "Topic authorization failed.", 2, "denylist", []),
    ])]
    [problem] = check_trust_topics(NODE_CONFIG, ["chains", "allowlist", "denylist"])
    assert "trust topic allowlist" in problem
    assert "no cleanup.policy reported for denylist (error code 29)" in caplog.text


def test_check_concludes_nothing_from_a_topic_reported_without_its_cleanup_policy(
        fake_admin: type[FakeAdmin]) -> None:
    # Tansu reports only what a topic was created with; kafka-python 3 turns an authorisation error into {}
    fake_admin.answer = _v3({"chains": {}, "allowlist": {"retention.ms": "1000"}})
    assert check_trust_topics(NODE_CONFIG, ["chains", "allowlist", "denylist"]) == []


@pytest.mark.parametrize(("error", "why"), [
    (KafkaConnectionError("socket disconnected"), "cannot describe topic configs: KafkaConnectionError"),
    (RuntimeError("a client bug"), "skipped: RuntimeError: a client bug"),
])
def test_check_never_raises_and_closes_its_client(fake_admin: type[FakeAdmin], error: BaseException, why: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kafkaratchet.node.trusttopics")
    fake_admin.fail = error
    assert check_trust_topics(NODE_CONFIG, ["chains"]) == []
    assert fake_admin.instances[0].closed
    assert why in caplog.text
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "kafkaratchet.node.trusttopics")


def test_check_without_bootstrap_servers_asks_nobody(fake_admin: type[FakeAdmin]) -> None:
    assert check_trust_topics({"enable_auto_commit": False}, ["chains"]) == []
    assert fake_admin.instances == []


def test_check_against_no_broker_returns_nothing() -> None:
    started = time.monotonic()
    config = {"bootstrap_servers": f"127.0.0.1:{free_port()}", "bootstrap_timeout_ms": 500,
              "request_timeout_ms": 500, "reconnect_backoff_ms": 50}
    assert check_trust_topics(config, ["chains"]) == []
    assert time.monotonic() - started < 15


def test_start_warns_once_per_problem_off_the_callers_thread(fake_admin: type[FakeAdmin],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="kafkaratchet.node.trusttopics")
    fake_admin.answer = _v3({"chains": KAFKA_DEFAULTS, "allowlist": KAFKA_DEFAULTS,
                             "denylist": dict(TRUST_TOPIC_CONFIGS)})
    thread = start_trust_topic_check(NODE_CONFIG, ["chains", "allowlist", "denylist"])
    assert thread.daemon
    thread.join(10)
    warnings = [r.getMessage() for r in caplog.records if r.name == trusttopics.__name__]
    assert len(warnings) == 2
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == trusttopics.__name__)
    assert "--entity-name chains" in warnings[0] and "--entity-name allowlist" in warnings[1]
