"""The Apache Kafka launcher without starting Kafka: its settings, its cache, and whom it may stop.

The cluster itself is exercised by every integration test (``--broker kafka``, the default).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkaratchet.errors import BrokerError
from kafkaratchet.tools import apachekafka
from kafkaratchet.tools.apachekafka import ApacheKafkaCluster, kafka_classpath, reap_orphans


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("KAFKARATCHET_CACHE", str(folder))
    return folder


def _settings(cluster: ApacheKafkaCluster, node: int) -> dict[str, str]:
    lines = cluster._properties(node).splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_three_nodes_replicate_and_create_nothing_by_themselves() -> None:
    cluster = ApacheKafkaCluster(3)
    settings = _settings(cluster, 2)
    assert settings["auto.create.topics.enable"] == "false"
    assert settings["default.replication.factor"] == "3"
    assert settings["min.insync.replicas"] == "2"
    assert settings["offsets.topic.replication.factor"] == "3"
    assert settings["transaction.state.log.min.isr"] == "2"
    assert settings["unclean.leader.election.enable"] == "false"
    assert settings["node.id"] == "2"
    assert settings["controller.quorum.voters"].count("@127.0.0.1:") == 3
    assert settings["allow.everyone.if.no.acl.found"] == "false"
    assert "StandardAuthorizer" in settings["authorizer.class.name"]


def test_every_listener_is_on_loopback() -> None:
    cluster = ApacheKafkaCluster(3)
    for node in cluster.node_ids:
        settings = _settings(cluster, node)
        for key in ("listeners", "advertised.listeners"):
            for listener in settings[key].split(","):
                assert listener.split("://", 1)[1].startswith("127.0.0.1:"), listener
    assert all(server.startswith("127.0.0.1:") for server in cluster.bootstrap_servers.split(","))


def test_super_users_are_anonymous_plaintext_and_those_named() -> None:
    cluster = ApacheKafkaCluster(1, users={"kr-admin": "pw", "kr-outsider": "pw2"}, super_users=["kr-admin"])
    assert _settings(cluster, 1)["super.users"] == "User:ANONYMOUS;User:kr-admin"
    assert _settings(cluster, 1)["default.replication.factor"] == "1"
    assert cluster._scram_args() == ["--add-scram", "SCRAM-SHA-512=[name=kr-admin,password=pw]",
                                     "--add-scram", "SCRAM-SHA-512=[name=kr-outsider,password=pw2]"]


def test_cached_classpath_is_used_while_its_jars_exist(cache: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    jar = tmp_path / "kafka.jar"
    jar.write_bytes(b"")
    folder = cache / f"apache-kafka-{apachekafka.KAFKA_VERSION}"
    folder.mkdir(parents=True)
    (folder / "classpath.txt").write_text(str(jar))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no java, no mvn: the cache must suffice
    assert kafka_classpath() == str(jar)
    jar.unlink()  # a jar gone (a cleaned Maven repository): resolve again, which needs the tools
    with pytest.raises(BrokerError, match="'java' is not on PATH"):
        kafka_classpath()


def _fake_broker(workdir: Path) -> subprocess.Popen[bytes]:
    """A process whose command line looks like one of this cluster's brokers."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", apachekafka._MAIN,
                             str(workdir / "node-1" / "server.properties")])


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_only_the_clusters_own_processes_are_stopped(tmp_path: Path,
                                                     processes: list[subprocess.Popen[bytes]]) -> None:
    workdir = tmp_path / "clusterA"
    broker = _fake_broker(workdir)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    other_cluster = _fake_broker(tmp_path / "clusterAB")  # a name that merely starts with this one's
    processes += [broker, bystander, other_cluster]
    stopped = apachekafka._stop_pids(workdir, {"1": broker.pid, "2": bystander.pid, "3": other_cluster.pid},
                                     grace=5.0)
    assert stopped == [broker.pid]
    assert broker.wait(timeout=10) is not None
    assert bystander.poll() is None and other_cluster.poll() is None


def test_a_dead_test_runs_cluster_is_reaped_and_a_live_ones_is_not(cache: Path,
                                                                  processes: list[subprocess.Popen[bytes]]) -> None:
    clusters = cache / "clusters"
    dead_owner = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_owner.wait()
    orphan_dir, kept_dir = clusters / "orphan", clusters / "kept"
    orphan, kept = _fake_broker(orphan_dir), _fake_broker(kept_dir)
    processes += [orphan, kept]
    for workdir, owner, pid in ((orphan_dir, dead_owner.pid, orphan.pid), (kept_dir, 1, kept.pid)):
        (workdir / "node-1" / "data").mkdir(parents=True)
        (workdir / "state.json").write_text(json.dumps({"owner_pid": owner, "die_with_parent": True,
                                                        "pids": {"1": pid}}))
    assert reap_orphans() == [orphan_dir]
    assert orphan.wait(timeout=10) is not None
    assert kept.poll() is None
    assert not (orphan_dir / "node-1" / "data").exists()
    assert (kept_dir / "state.json").exists()


def test_status_without_a_cluster_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert apachekafka.main(["status"]) == 1
    assert "no development cluster is running" in capsys.readouterr().out
    assert apachekafka.main(["down"]) == 0
