"""Shared fixtures: one real Kafka cluster for the whole session.

``--broker kafka`` (the default; ``KAFKARATCHET_TEST_BROKER`` sets it too) starts
Apache Kafka itself: three KRaft nodes on loopback, replication factor 3,
``min.insync.replicas`` 2, no automatic topic creation, a SCRAM listener with
the standard authorizer (``kafkaratchet.tools.apachekafka``). ``--broker tansu``
starts the embedded broker instead. When ``KAFKA_BOOTSTRAP_SERVERS`` is set, that
cluster is used and nothing is started; tests that need to kill brokers or a
SASL listener say so and skip.
"""

from __future__ import annotations

import logging
import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from kafkaratchet import _aead
from kafkaratchet.errors import CryptoError
from kafkaratchet.tools.apachekafka import ApacheKafkaCluster
from kafkaratchet.tools.broker import EmbeddedBroker

log = logging.getLogger(__name__)

#: SCRAM users of the test cluster (README "Creating the topics" names their ACLs); passwords per session.
SASL_USERS = ("kr-admin", "kr-chainserver", "kr-controller", "kr-producer", "kr-consumer", "kr-subscriber",
              "kr-outsider")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--broker", choices=("kafka", "tansu"),
                     default=os.environ.get("KAFKARATCHET_TEST_BROKER", "kafka"),
                     help="engine for integration tests: kafka (Apache Kafka, 3 nodes; needs Java 17 and Maven) "
                          "or tansu (embedded); ignored when KAFKA_BOOTSTRAP_SERVERS is set")


@dataclass
class KafkaEngine:
    """The cluster the integration tests run on, and what a test may do with it."""

    kind: str  # "kafka" (started here), "tansu" (started here) or "external"
    bootstrap_servers: str
    cluster: ApacheKafkaCluster | None = None
    sasl_bootstrap_servers: str | None = None
    users: dict[str, str] = field(default_factory=dict)

    def require_cluster(self) -> ApacheKafkaCluster:
        """The Apache Kafka cluster this session started (to kill and restart brokers), or skip saying why."""
        if self.cluster is None:
            pytest.skip(f"needs the Apache Kafka cluster started by the test session (--broker kafka), "
                        f"not the {self.kind} broker")
        return self.cluster


@pytest.fixture(scope="session")
def kafka_engine(request: pytest.FixtureRequest) -> Iterator[KafkaEngine]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield KafkaEngine("external", external)
        return
    if request.config.getoption("--broker") == "tansu":
        broker = EmbeddedBroker().start()
        try:
            yield KafkaEngine("tansu", broker.bootstrap_servers)
        finally:
            broker.stop()
        return
    users = {name: secrets.token_urlsafe(18) for name in SASL_USERS}
    cluster = ApacheKafkaCluster(3, users=users, die_with_parent=True).start()
    try:
        yield KafkaEngine("kafka", cluster.bootstrap_servers, cluster, cluster.sasl_bootstrap_servers, users)
    finally:
        failed = request.session.testsfailed > 0
        cluster.stop(keep_logs=failed, grace=5.0)
        if failed:
            print(f"\nApache Kafka broker logs kept in {cluster.workdir}")


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_engine: KafkaEngine) -> str:
    return kafka_engine.bootstrap_servers


@pytest.fixture
def unique_root() -> str:
    """A root topic no other test uses, so tests never see each other's records."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module", params=_aead.ENGINES)
def aead_engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a module's tests once per AEAD engine (``pytestmark = pytest.mark.usefixtures("aead_engine")``).

    Module-scoped so that Hypothesis tests may use it; sealers built meanwhile keep the engine.
    """
    try:
        _aead.engine(request.param)  # built and self-tested once
    except CryptoError as e:  # e.g. no libsodium loadable through ctypes on this platform
        pytest.skip(f"AEAD engine {request.param} unavailable here: {e}")
    with _aead.use_engine(request.param) as engine:
        assert engine.name == request.param
        yield request.param
