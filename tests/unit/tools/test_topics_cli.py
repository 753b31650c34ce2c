"""``kafkaratchet topics create|check`` and the topic set-up behind it, against a stand-in admin client.

The real cluster runs it in tests/integration/test_acls.py (SASL, ACLs, a principal that may not create).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import kafka
import kafka.errors
import pytest

from kafkaratchet.files.provisioning import write_node
from kafkaratchet.files.settings import NodeSettings
from kafkaratchet.node import topicsetup
from kafkaratchet.node.topicsetup import (
    EXCHANGE_TOPIC_CONFIGS,
    TopicSpec,
    create_command,
    ensure_topics,
    node_topic_specs,
    root_name_problem,
    trust_topic_specs,
)
from kafkaratchet.node.trusttopics import TRUST_TOPIC_CONFIGS
from kafkaratchet.protocol.identity import SigningIdentity
from kafkaratchet.tools import cli as kr_cli

PASSWORD = "hunter2-never-printed"
TOPIC_AUTHORIZATION_FAILED, TOPIC_ALREADY_EXISTS, POLICY_VIOLATION = 29, 36, 44


class FakeCluster:
    """kafka-python's KafkaAdminClient in front of a cluster of ``brokers`` holding ``topics``."""

    DEFAULT_CONFIG = kafka.KafkaAdminClient.DEFAULT_CONFIG
    topics: dict[str, dict[str, Any]] = {}
    brokers = 3
    forbidden: set[str] = set()  # topics this principal may not create
    refuse: dict[str, tuple[int, str]] = {}  # topic -> (error code, message) on creation
    configs: dict[str, dict[str, str]] = {}  # what describe_configs reports per topic
    unreachable: BaseException | None = None
    instances: list[FakeCluster] = []

    def __init__(self, **config: Any) -> None:
        unknown = set(config) - set(self.DEFAULT_CONFIG)
        assert not unknown, f"the real client refuses unknown configs: {unknown}"
        if self.unreachable is not None:
            raise self.unreachable
        self.config = config
        self.closed = False
        FakeCluster.instances.append(self)

    def list_topics(self) -> list[str]:
        return list(self.topics)

    def describe_cluster(self) -> dict[str, Any]:
        return {"brokers": [{"broker_id": n} for n in range(self.brokers)]}

    def create_topics(self, new_topics: dict[str, dict[str, Any]], raise_errors: bool = True) -> dict[str, Any]:
        assert raise_errors is False
        results = []
        for name, options in new_topics.items():
            code, message = 0, None
            if name in self.forbidden:
                code, message = TOPIC_AUTHORIZATION_FAILED, "Authorization failed."
            elif name in self.refuse:
                code, message = self.refuse[name]
            elif name in self.topics:
                code, message = TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists."
            else:
                self.topics[name] = options
            results.append({"name": name, "error_code": code, "error_message": message})
        return {"topics": results}

    def describe_configs(self, resources: list[Any], config_filter: str = "modified") -> dict[str, Any]:
        return {"topic": {r.name: {k: {"value": v} for k, v in self.configs.get(r.name, {}).items()}
                          for r in resources if r.name in self.topics}}

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> type[FakeCluster]:
    monkeypatch.setattr(kafka, "KafkaAdminClient", FakeCluster)
    for name, value in (("topics", {}), ("brokers", 3), ("forbidden", set()), ("refuse", {}), ("configs", {}),
                        ("unreachable", None), ("instances", [])):
        monkeypatch.setattr(FakeCluster, name, value)
    return FakeCluster


def _config(directory: Path, crypto: dict[str, Any] | None = None, **kafka_settings: Any) -> str:
    store = write_node(directory, "admin", SigningIdentity.generate(), bootstrap_servers="kafka1:9093",
                       crypto=crypto, kafka=kafka_settings or None)
    return str(store.path)


def _sasl(directory: Path, crypto: dict[str, Any] | None = None) -> str:
    return _config(directory, crypto, security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                   sasl_plain_username="kr-producer", sasl_plain_password=PASSWORD)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = kr_cli.main(["topics", *argv])
    out, err = capsys.readouterr()
    return status, out, err


# ---------------------------------------------------------------------------------------- the command line


@pytest.mark.parametrize("argv", [["topics", "--help"], ["topics", "create", "--help"], ["topics", "check", "--help"]])
def test_help_names_every_option(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert kr_cli.main(argv) == 0
    out = capsys.readouterr().out
    if argv[1] == "--help":
        assert "create" in out and "check" in out and "compacted" in out
        return
    for option in ("--config", "--root", "--trust", "--bootstrap-servers"):
        assert option in out
    assert ("--partitions" in out and "--replication-factor" in out) == (argv[1] == "create")


@pytest.mark.parametrize(("argv", "message"), [
    (["create", "--bootstrap-servers", "k:9092"], "nothing to do: give --root R (repeatable) and/or --trust"),
    (["create", "--root", "orders"], "no Kafka cluster named: give --bootstrap-servers or --config NODE.config"),
    (["create", "--root", "orders.eu", "--bootstrap-servers", "k:9092"],
     "orders.eu is not a root topic: a root ends at the first '.' (its root is orders)"),
    (["check", "--root", "ord ers", "--bootstrap-servers", "k:9092"], "is not a legal Kafka topic name"),
    (["create", "--root", "o" * 245, "--bootstrap-servers", "k:9092"], "longer than Kafka's 249 characters"),
    (["create", "--root", "orders", "--partitions", "0", "--bootstrap-servers", "k:9092"],
     "--partitions: must be a positive integer"),
    (["create", "--trust", "--replication-factor", "x", "--bootstrap-servers", "k:9092"], "not an integer: 'x'"),
    (["remove", "--trust"], "invalid choice: 'remove'"),
])
def test_usage_errors_exit_2_with_one_line_and_touch_no_cluster(argv: list[str], message: str,
                                                                 cluster: type[FakeCluster],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, *argv)
    assert status == 2 and out == ""
    assert err.startswith("kafkaratchet: error: ") and err.count("\n") == 1 and message in err, err
    assert cluster.instances == []


def test_a_config_without_bootstrap_servers_is_named(tmp_path: Path, cluster: type[FakeCluster],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    store = write_node(tmp_path, "admin", SigningIdentity.generate())
    status, _out, err = _run(capsys, "create", "--config", str(store.path), "--trust")
    assert status == 2
    assert f"give --bootstrap-servers or bootstrap_servers in the [kafka] section of {store.path}" in err


def test_a_missing_config_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _out, err = _run(capsys, "create", "--config", str(tmp_path / "nope.config"), "--trust")
    assert status == 2 and "does not exist" in err


# ---------------------------------------------------------------------------------------- create


def test_create_makes_what_is_missing_with_the_settings_nodes_need(tmp_path: Path, cluster: type[FakeCluster],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cluster.topics = {"chains": {}}
    status, out, err = _run(capsys, "create", "--config", _sasl(tmp_path), "--root", "orders", "--trust")
    assert status == 0 and err == ""
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["created", "orders.reqs"], ["created", "orders.keys"], ["created", "orders.subs"],
        ["exists", "chains"], ["created", "allowlist"], ["created", "denylist"]]
    assert "cleanup.policy=delete retention.ms=86400000" in out.splitlines()[0]
    for name in ("orders.reqs", "orders.keys", "orders.subs"):
        assert cluster.topics[name] == {"num_partitions": -1, "replication_factor": -1,
                                        "configs": dict(EXCHANGE_TOPIC_CONFIGS)}
    for name in ("allowlist", "denylist"):
        assert cluster.topics[name] == {"num_partitions": 1, "replication_factor": -1,
                                        "configs": dict(TRUST_TOPIC_CONFIGS)}
    admin = cluster.instances[0]  # (a second one asked how the existing chains is configured)
    assert all(a.closed for a in cluster.instances)
    assert admin.config["security_protocol"] == "SASL_PLAINTEXT" and admin.config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert admin.config["sasl_plain_username"] == "kr-producer" and admin.config["sasl_plain_password"] == PASSWORD
    assert admin.config["bootstrap_servers"] == "kafka1:9093"
    assert PASSWORD not in out + err


def test_names_come_from_the_nodes_crypto_settings(tmp_path: Path, cluster: type[FakeCluster],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    crypto = {"reqs_suffix": "-requests", "keys_suffix": "-answers", "subs_suffix": "-subscriptions",
              "chains_topic": "kr-chains", "allowlist_topic": "kr-allow", "denylist_topic": "kr-deny"}
    status, out, _err = _run(capsys, "create", "--config", _config(tmp_path, crypto), "--root", "orders",
                             "--root", "payments", "--root", "orders", "--trust", "--bootstrap-servers", "other:1")
    assert status == 0
    assert sorted(cluster.topics) == sorted(["orders-requests", "orders-answers", "orders-subscriptions",
                                             "payments-requests", "payments-answers", "payments-subscriptions",
                                             "kr-chains", "kr-allow", "kr-deny"])
    assert len(out.splitlines()) == 9, "a root given twice is created once"
    assert cluster.instances[0].config["bootstrap_servers"] == "other:1", "--bootstrap-servers wins"


def test_partitions_and_replication_factor(cluster: type[FakeCluster], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _err = _run(capsys, "create", "--bootstrap-servers", "k:9092", "--root", "orders", "--trust",
                             "--partitions", "6", "--replication-factor", "1")
    assert status == 0
    assert cluster.topics["orders.keys"]["num_partitions"] == 6
    assert cluster.topics["orders.keys"]["replication_factor"] == 1
    chains = cluster.topics["chains"]
    assert chains["num_partitions"] == 1, "trust topics keep one partition: one order"
    assert chains["replication_factor"] == 1
    assert chains["configs"]["min.insync.replicas"] == "1", "2 of 1 replica would refuse every acks=all write"
    assert "partitions=6 replication.factor=1" in out


def test_a_one_broker_cluster_gets_trust_topics_it_can_write(cluster: type[FakeCluster],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    cluster.brokers = 1
    status, out, _err = _run(capsys, "create", "--bootstrap-servers", "k:9092", "--trust")
    assert status == 0
    assert all(cluster.topics[t]["configs"]["min.insync.replicas"] == "1" for t in ("chains", "allowlist", "denylist"))
    assert "note     chains: min.insync.replicas=1 instead of 2: the cluster has 1 broker" in out
    [created] = [line for line in out.splitlines() if line.startswith("created  chains")]
    assert "min.insync.replicas=1 " in created, "the settings printed are those the topic got"


def test_each_topic_that_could_not_be_created_is_named_with_why(tmp_path: Path, cluster: type[FakeCluster],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    cluster.forbidden = {"orders.reqs", "orders.keys", "denylist"}
    cluster.refuse = {"allowlist": (POLICY_VIOLATION, "Topic name\nnot allowed by policy")}
    cluster.topics = {"chains": {}}
    status, out, err = _run(capsys, "create", "--config", _sasl(tmp_path), "--root", "orders", "--trust")
    assert status == 1
    lines = out.splitlines()
    why = "not authorised: User:kr-producer may not create it (it needs Create on the topic or on the cluster)"
    assert lines[0] == f"refused  orders.reqs  {why}"
    assert lines[2] == "created  orders.subs  cleanup.policy=delete retention.ms=86400000"
    assert lines[3] == "exists   chains"
    assert lines[4] == "failed   allowlist  PolicyViolationError: Topic name not allowed by policy"
    assert err == ("kafkaratchet: error: could not create 4 of 6 topics: orders.reqs, orders.keys, denylist "
                   f"({why}); allowlist (PolicyViolationError: Topic name not allowed by policy)\n")


def test_a_topic_created_meanwhile_by_another_counts_as_existing(cluster: type[FakeCluster],
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeCluster, "list_topics", lambda self: [])
    cluster.topics = {"chains": {}}
    status, out, _err = _run(capsys, "create", "--bootstrap-servers", "k:9092", "--trust")
    assert status == 0 and out.splitlines()[0] == "exists   chains"


def test_existing_trust_topics_that_lose_entries_fail_the_command(cluster: type[FakeCluster],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cluster.topics = {"chains": {}, "allowlist": {}, "denylist": {}}
    cluster.configs = {"chains": dict(TRUST_TOPIC_CONFIGS), "allowlist": dict(TRUST_TOPIC_CONFIGS),
                       "denylist": {"cleanup.policy": "delete", "retention.ms": "604800000"}}
    status, out, err = _run(capsys, "create", "--bootstrap-servers", "k:9092", "--trust")
    assert status == 1
    [problem] = [line for line in out.splitlines() if line.startswith("problem")]
    assert "trust topic denylist: cleanup.policy=delete with retention.ms=604800000 deletes trust entries" in problem
    assert "--entity-name denylist --add-config cleanup.policy=compact,retention.ms=-1" in problem
    assert err == ("kafkaratchet: error: trust topics set up so that they lose entries: denylist "
                   "(fix printed above)\n")


def test_an_unreachable_cluster_is_one_line_naming_where_and_who(tmp_path: Path, cluster: type[FakeCluster],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cluster.unreachable = kafka.errors.KafkaTimeoutError("Unable to bootstrap from kafka1:9093")
    status, out, err = _run(capsys, "create", "--config", _sasl(tmp_path), "--trust")
    assert status == 1 and out == ""
    assert err == ("kafkaratchet: error: cannot work with Kafka at kafka1:9093 as User:kr-producer: "
                   "KafkaTimeoutError: Unable to bootstrap from kafka1:9093\n")
    assert PASSWORD not in err


def test_the_admin_clients_configuration_is_not_logged(tmp_path: Path, cluster: type[FakeCluster],
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def noisy_init(self: FakeCluster, **config: Any) -> None:  # what kafka-python does at DEBUG
        logging.getLogger("kafka.admin.client").debug("Starting KafkaAdminClient with configuration: %s", config)
        self.config, self.closed = config, False

    monkeypatch.setattr(FakeCluster, "__init__", noisy_init)
    status = kr_cli.main(["-vvv", "topics", "create", "--config", _sasl(tmp_path), "--trust"])
    err = capsys.readouterr().err
    assert status == 0 and "kafkaratchet.node.topicsetup INFO: created topic chains" in err
    assert PASSWORD not in err


# ---------------------------------------------------------------------------------------- check


def test_check_reports_missing_topics_and_the_command_that_creates_them(tmp_path: Path, cluster: type[FakeCluster],
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    config = _sasl(tmp_path)
    cluster.topics = {"orders.reqs": {}, "chains": {}, "allowlist": {}, "denylist": {}}
    cluster.configs = {"chains": dict(TRUST_TOPIC_CONFIGS), "allowlist": {"cleanup.policy": "delete"},
                       "denylist": dict(TRUST_TOPIC_CONFIGS, **{"unclean.leader.election.enable": "true"})}
    status, out, err = _run(capsys, "check", "--config", config, "--root", "orders", "--trust")
    assert status == 1
    lines = out.splitlines()
    assert lines[:6] == ["exists   orders.reqs", "missing  orders.keys", "missing  orders.subs", "exists   chains",
                         "exists   allowlist", "exists   denylist"]
    assert lines[6].startswith("problem  trust topic allowlist: cleanup.policy=delete")
    assert lines[7].startswith("problem  trust topic denylist: unclean.leader.election.enable=true")
    assert err == (f"kafkaratchet: error: 2 of 6 topics missing (orders.keys, orders.subs); create them with: "
                   f"kafkaratchet topics create --config {config} --root orders; trust topics set up so that they "
                   "lose entries: allowlist, denylist (fix printed above)\n")
    assert cluster.topics.keys() == {"orders.reqs", "chains", "allowlist", "denylist"}, "check creates nothing"


def test_check_of_a_complete_setup_exits_0(cluster: type[FakeCluster], capsys: pytest.CaptureFixture[str]) -> None:
    cluster.topics = {name: {} for name in ("orders.reqs", "orders.keys", "orders.subs")}
    status, out, err = _run(capsys, "check", "--bootstrap-servers", "k:9092", "--root", "orders")
    assert (status, err) == (0, "")
    assert out.splitlines() == ["exists   orders.reqs", "exists   orders.keys", "exists   orders.subs"]


def test_check_without_a_config_names_the_bootstrap_servers_in_its_advice(
        cluster: type[FakeCluster], capsys: pytest.CaptureFixture[str]) -> None:
    status, _out, err = _run(capsys, "check", "--bootstrap-servers", "k:9092", "--trust")
    assert status == 1
    assert "create them with: kafkaratchet topics create --bootstrap-servers k:9092 --trust\n" in err


# ---------------------------------------------------------------------------------------- the library


def test_specs_follow_the_settings() -> None:
    settings = NodeSettings(reqs_suffix="_r", keys_suffix="_k", subs_suffix="_s", chains_topic="c",
                            allowlist_topic="a", denylist_topic="d")
    specs = node_topic_specs(settings, ["x", "y", "x"], trust=True, partitions=2, replication_factor=3)
    assert [s.name for s in specs] == ["x_r", "x_k", "x_s", "y_r", "y_k", "y_s", "c", "a", "d"]
    assert {(s.partitions, s.replication_factor) for s in specs[:6]} == {(2, 3)}
    assert {(s.partitions, s.replication_factor) for s in specs[6:]} == {(1, 3)}
    assert dict(specs[-1].configs) == dict(TRUST_TOPIC_CONFIGS)
    assert node_topic_specs(settings) == []


def test_trust_specs_never_ask_more_in_sync_replicas_than_there_are() -> None:
    assert trust_topic_specs(["c"], replication_factor=1)[0].configs["min.insync.replicas"] == "1"
    assert trust_topic_specs(["c"], replication_factor=3)[0].configs["min.insync.replicas"] == "2"
    assert trust_topic_specs(["c"])[0].configs["min.insync.replicas"] == "2"
    assert TRUST_TOPIC_CONFIGS["min.insync.replicas"] == "2", "the shared constant is never changed"


@pytest.mark.parametrize(("root", "problem"), [
    ("orders", None), ("a-b_C9", None), ("", "empty"), ("orders.eu", "its root is orders"),
    ("or/ders", "not a legal Kafka topic name"), ("x" * 244, None), ("x" * 245, "longer than"),
])
def test_root_names(root: str, problem: str | None) -> None:
    found = root_name_problem(root, NodeSettings())
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_a_root_may_hold_dots_when_the_separator_is_another() -> None:
    assert root_name_problem("orders.eu", NodeSettings(topic_separator="/")) is None


def test_create_command_names_roots_and_trust() -> None:
    settings = NodeSettings(chains_topic="kr-chains", reqs_suffix="-rq")
    specs = [TopicSpec("orders-rq"), TopicSpec("pay.keys"), TopicSpec("kr-chains")]
    assert create_command(specs, settings=settings, config="a.config") == \
        "kafkaratchet topics create --config a.config --root orders --root pay --trust"
    assert create_command([TopicSpec("orders.keys")], bootstrap_servers="k:1") == \
        "kafkaratchet topics create --bootstrap-servers k:1 --root orders"


def test_ensure_uses_a_given_client_and_leaves_it_open(cluster: type[FakeCluster]) -> None:
    admin = FakeCluster()
    cluster.instances.clear()
    result = ensure_topics({}, [TopicSpec("a"), TopicSpec("a-2", 3, 1, {"x": "y"})], admin=admin)
    assert result.created == ["a", "a-2"] and not admin.closed and cluster.instances == []
    assert cluster.topics["a-2"] == {"num_partitions": 3, "replication_factor": 1, "configs": {"x": "y"}}


def test_ensure_survives_a_client_error_per_topic(cluster: type[FakeCluster], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: FakeCluster, new_topics: dict[str, Any], raise_errors: bool = True) -> dict[str, Any]:
        raise kafka.errors.RequestTimedOutError("no answer in time")

    monkeypatch.setattr(FakeCluster, "create_topics", broken)
    result = ensure_topics({"bootstrap_servers": "k:1"}, [TopicSpec("a")])
    assert result.failed == {"a": "RequestTimedOutError: no answer in time"}
    assert result.missing == ["a"]


def test_cluster_authorization_counts_as_forbidden(cluster: type[FakeCluster]) -> None:
    cluster.refuse = {"a": (31, "Cluster authorization failed.")}
    assert ensure_topics({"bootstrap_servers": "k:1"}, [TopicSpec("a")]).forbidden == ["a"]


def test_the_module_names_its_public_api() -> None:
    assert set(topicsetup.__all__) <= set(dir(topicsetup))
